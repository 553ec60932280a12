//! The 256-byte text block of an identity card (GA 490 layouts), UCS-2 little-endian and
//! space-padded: parsing into [`protocol::device::IdCard`], and encoding (for the simulator's
//! fixture cards and round-trip tests).
//!
//! Three layouts share the block; the type flag at byte 248 tells them apart: blank for the
//! resident card (居民身份证), `J` for the 港澳台居民居住证, `I` for the 2017 外国人永久居留身份证.
//! Any other flag (e.g. the 2023 foreigner card) is [`TextError::UnsupportedCardType`].
//! Errors name the field but never carry its value.

use protocol::Pii;
use protocol::device::{
    CardDate, ForeignResidentCard, IdCard, PermitCard, ResidentCard, ValidUntil,
};

use super::id_number::{self, IdNumberError};
use super::tables;

pub const TEXT_LEN: usize = 256;

/// Why a text block did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("text block is {0} bytes, not 256")]
    Length(usize),
    #[error("field {0} is not valid UCS-2")]
    Encoding(&'static str),
    #[error("field {0} is empty")]
    Empty(&'static str),
    #[error("field {0} is not a YYYYMMDD date")]
    Date(&'static str),
    #[error("gender code is not in GB/T 2261.1")]
    Gender,
    #[error("nationality code is not in GB 3304")]
    Nation,
    #[error("{0}")]
    IdNumber(#[from] IdNumberError),
    #[error("the ID number's birth date differs from the birth field")]
    BirthMismatch,
    #[error("field {0} has characters it cannot have")]
    Format(&'static str),
    #[error("card type flag {0:?} is not supported")]
    UnsupportedCardType(char),
    #[error("field {0} is too long for the card layout")]
    TooLong(&'static str),
}

/// One field: name, offset and length in UCS-2 characters.
#[derive(Clone, Copy)]
struct Field(&'static str, usize, usize);

mod resident {
    use super::Field;
    pub const NAME: Field = Field("name", 0, 15);
    pub const GENDER: Field = Field("gender", 15, 1);
    pub const NATION: Field = Field("nation", 16, 2);
    pub const BIRTH: Field = Field("birth_date", 18, 8);
    pub const ADDRESS: Field = Field("address", 26, 35);
    pub const ID_NUMBER: Field = Field("id_number", 61, 18);
    pub const AUTHORITY: Field = Field("issuing_authority", 79, 15);
    pub const VALID_FROM: Field = Field("valid_from", 94, 8);
    pub const VALID_UNTIL: Field = Field("valid_until", 102, 8);
    // Permit ('J') fields after the resident layout's first 220 bytes.
    pub const PASS_NUMBER: Field = Field("pass_number", 110, 9);
    pub const ISSUE_COUNT: Field = Field("issue_count", 119, 2);
}

mod foreign {
    use super::Field;
    pub const ENGLISH_NAME: Field = Field("english_name", 0, 60);
    pub const GENDER: Field = Field("gender", 60, 1);
    pub const CARD_NUMBER: Field = Field("card_number", 61, 15);
    pub const NATIONALITY: Field = Field("nationality", 76, 3);
    pub const CHINESE_NAME: Field = Field("chinese_name", 79, 15);
    pub const VALID_FROM: Field = Field("valid_from", 94, 8);
    pub const VALID_UNTIL: Field = Field("valid_until", 102, 8);
    pub const BIRTH: Field = Field("birth_date", 110, 8);
    pub const VERSION: Field = Field("card_version", 118, 2);
    pub const AUTHORITY: Field = Field("authority_code", 120, 4);
}

const TYPE_FLAG: usize = 124;
const LONG_TERM: &str = "长期";

/// Parses a 256-byte text block.
pub fn parse(block: &[u8]) -> Result<IdCard, TextError> {
    if block.len() != TEXT_LEN {
        return Err(TextError::Length(block.len()));
    }
    let units: Vec<u16> = block
        .chunks_exact(2)
        .map(|p| u16::from_le_bytes([p[0], p[1]]))
        .collect();
    let text = Units(&units);
    match char::from_u32(u32::from(units[TYPE_FLAG])) {
        Some(' ' | '\0') => parse_resident(&text).map(IdCard::Resident),
        Some('J') => parse_permit(&text).map(IdCard::HkMacaoTaiwanPermit),
        Some('I') => parse_foreign(&text).map(IdCard::ForeignPermanentResident),
        Some(other) => Err(TextError::UnsupportedCardType(other)),
        None => Err(TextError::Encoding("type_flag")),
    }
}

struct Units<'a>(&'a [u16]);

impl Units<'_> {
    /// The field's text with trailing spaces and NULs removed.
    fn get(&self, f: Field) -> Result<String, TextError> {
        let Field(name, start, len) = f;
        let s: String = char::decode_utf16(self.0[start..start + len].iter().copied())
            .collect::<Result<_, _>>()
            .map_err(|_| TextError::Encoding(name))?;
        Ok(s.trim_end_matches([' ', '\0']).to_string())
    }

    fn required(&self, f: Field) -> Result<String, TextError> {
        let s = self.get(f)?;
        if s.is_empty() {
            Err(TextError::Empty(f.0))
        } else {
            Ok(s)
        }
    }

    fn date(&self, f: Field) -> Result<CardDate, TextError> {
        parse_date(&self.get(f)?).ok_or(TextError::Date(f.0))
    }

    fn valid_until(&self, f: Field) -> Result<ValidUntil, TextError> {
        let s = self.get(f)?;
        if s == LONG_TERM {
            Ok(ValidUntil::LongTerm)
        } else {
            parse_date(&s)
                .map(ValidUntil::Date)
                .ok_or(TextError::Date(f.0))
        }
    }

    fn gender(&self, f: Field) -> Result<protocol::device::Gender, TextError> {
        let s = self.get(f)?;
        let mut chars = s.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => tables::gender_from_code(c).ok_or(TextError::Gender),
            _ => Err(TextError::Gender),
        }
    }
}

fn parse_date(s: &str) -> Option<CardDate> {
    if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    CardDate::new(
        s[0..4].parse().ok()?,
        s[4..6].parse().ok()?,
        s[6..8].parse().ok()?,
    )
}

fn date_digits(d: CardDate) -> String {
    format!("{:04}{:02}{:02}", d.year(), d.month(), d.day())
}

/// Validates the ID number and that its birth date agrees with the birth field.
fn id_number(text: &Units, birth: CardDate) -> Result<String, TextError> {
    let number = id_number::validate(&text.get(resident::ID_NUMBER)?)?;
    if number[6..14] != date_digits(birth) {
        return Err(TextError::BirthMismatch);
    }
    Ok(number)
}

fn parse_resident(t: &Units) -> Result<ResidentCard, TextError> {
    let birth = t.date(resident::BIRTH)?;
    let nation_code = t.get(resident::NATION)?;
    let nation = if nation_code.len() == 2 && nation_code.bytes().all(|b| b.is_ascii_digit()) {
        nation_code.parse::<u8>().ok().and_then(tables::nation)
    } else {
        None
    }
    .ok_or(TextError::Nation)?;
    Ok(ResidentCard {
        name: Pii::new(t.required(resident::NAME)?),
        gender: Pii::new(t.gender(resident::GENDER)?),
        nation: Pii::new(nation),
        birth_date: Pii::new(birth),
        address: Pii::new(t.required(resident::ADDRESS)?),
        id_number: Pii::new(id_number(t, birth)?),
        issuing_authority: Pii::new(t.required(resident::AUTHORITY)?),
        valid_from: Pii::new(t.date(resident::VALID_FROM)?),
        valid_until: Pii::new(t.valid_until(resident::VALID_UNTIL)?),
    })
}

fn parse_permit(t: &Units) -> Result<PermitCard, TextError> {
    let birth = t.date(resident::BIRTH)?;
    let issue_count = t.get(resident::ISSUE_COUNT)?;
    if issue_count.is_empty() || !issue_count.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TextError::Format(resident::ISSUE_COUNT.0));
    }
    let pass_number = t.required(resident::PASS_NUMBER)?;
    if !pass_number.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(TextError::Format(resident::PASS_NUMBER.0));
    }
    Ok(PermitCard {
        name: Pii::new(t.required(resident::NAME)?),
        gender: Pii::new(t.gender(resident::GENDER)?),
        birth_date: Pii::new(birth),
        address: Pii::new(t.required(resident::ADDRESS)?),
        id_number: Pii::new(id_number(t, birth)?),
        issuing_authority: Pii::new(t.required(resident::AUTHORITY)?),
        valid_from: Pii::new(t.date(resident::VALID_FROM)?),
        valid_until: Pii::new(t.valid_until(resident::VALID_UNTIL)?),
        pass_number: Pii::new(pass_number),
        issue_count: Pii::new(
            issue_count
                .parse()
                .map_err(|_| TextError::Format(resident::ISSUE_COUNT.0))?,
        ),
    })
}

fn parse_foreign(t: &Units) -> Result<ForeignResidentCard, TextError> {
    let card_number = t.required(foreign::CARD_NUMBER)?;
    if card_number.chars().count() != 15 || !card_number.chars().all(|c| c.is_ascii_alphanumeric())
    {
        return Err(TextError::Format(foreign::CARD_NUMBER.0));
    }
    let nationality = t.required(foreign::NATIONALITY)?;
    if nationality.len() != 3 || !nationality.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(TextError::Format(foreign::NATIONALITY.0));
    }
    Ok(ForeignResidentCard {
        english_name: Pii::new(t.required(foreign::ENGLISH_NAME)?),
        chinese_name: Pii::new(t.get(foreign::CHINESE_NAME)?),
        gender: Pii::new(t.gender(foreign::GENDER)?),
        card_number: Pii::new(card_number),
        nationality: Pii::new(nationality),
        birth_date: Pii::new(t.date(foreign::BIRTH)?),
        valid_from: Pii::new(t.date(foreign::VALID_FROM)?),
        valid_until: Pii::new(t.valid_until(foreign::VALID_UNTIL)?),
        card_version: Pii::new(t.get(foreign::VERSION)?),
        authority_code: Pii::new(t.get(foreign::AUTHORITY)?),
    })
}

/// Encodes a card into a text block, space-padded. Fails if a value does not fit its field.
/// Used by the simulator; the kiosk only parses.
pub fn encode(card: &IdCard) -> Result<Vec<u8>, TextError> {
    let mut units = vec![u16::from(b' '); TEXT_LEN / 2];
    let mut put = |f: Field, value: &str| -> Result<(), TextError> {
        let Field(name, start, len) = f;
        let encoded: Vec<u16> = value.encode_utf16().collect();
        if encoded.len() > len {
            return Err(TextError::TooLong(name));
        }
        units[start..start + encoded.len()].copy_from_slice(&encoded);
        Ok(())
    };
    let until = |v: &ValidUntil| match v {
        ValidUntil::Date(d) => date_digits(*d),
        ValidUntil::LongTerm => LONG_TERM.to_string(),
    };
    let gender = |g: &Pii<protocol::device::Gender>| tables::gender_code(*g.expose()).to_string();
    match card {
        IdCard::Resident(c) => {
            put(resident::NAME, c.name.expose())?;
            put(resident::GENDER, &gender(&c.gender))?;
            put(resident::NATION, &format!("{:02}", c.nation.expose().code))?;
            put(resident::BIRTH, &date_digits(*c.birth_date.expose()))?;
            put(resident::ADDRESS, c.address.expose())?;
            put(resident::ID_NUMBER, c.id_number.expose())?;
            put(resident::AUTHORITY, c.issuing_authority.expose())?;
            put(resident::VALID_FROM, &date_digits(*c.valid_from.expose()))?;
            put(resident::VALID_UNTIL, &until(c.valid_until.expose()))?;
        }
        IdCard::HkMacaoTaiwanPermit(c) => {
            put(resident::NAME, c.name.expose())?;
            put(resident::GENDER, &gender(&c.gender))?;
            put(resident::BIRTH, &date_digits(*c.birth_date.expose()))?;
            put(resident::ADDRESS, c.address.expose())?;
            put(resident::ID_NUMBER, c.id_number.expose())?;
            put(resident::AUTHORITY, c.issuing_authority.expose())?;
            put(resident::VALID_FROM, &date_digits(*c.valid_from.expose()))?;
            put(resident::VALID_UNTIL, &until(c.valid_until.expose()))?;
            put(resident::PASS_NUMBER, c.pass_number.expose())?;
            put(
                resident::ISSUE_COUNT,
                &format!("{:02}", c.issue_count.expose()),
            )?;
            put(Field("type_flag", TYPE_FLAG, 1), "J")?;
        }
        IdCard::ForeignPermanentResident(c) => {
            put(foreign::ENGLISH_NAME, c.english_name.expose())?;
            put(foreign::GENDER, &gender(&c.gender))?;
            put(foreign::CARD_NUMBER, c.card_number.expose())?;
            put(foreign::NATIONALITY, c.nationality.expose())?;
            put(foreign::CHINESE_NAME, c.chinese_name.expose())?;
            put(foreign::VALID_FROM, &date_digits(*c.valid_from.expose()))?;
            put(foreign::VALID_UNTIL, &until(c.valid_until.expose()))?;
            put(foreign::BIRTH, &date_digits(*c.birth_date.expose()))?;
            put(foreign::VERSION, c.card_version.expose())?;
            put(foreign::AUTHORITY, c.authority_code.expose())?;
            put(Field("type_flag", TYPE_FLAG, 1), "I")?;
        }
    }
    Ok(units.iter().flat_map(|u| u.to_le_bytes()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::idcard::fixtures;
    use proptest::prelude::*;

    #[test]
    fn fixture_cards_roundtrip() {
        for card in fixtures::cards() {
            let block = encode(&card).expect("fixture fits");
            assert_eq!(block.len(), TEXT_LEN);
            assert_eq!(parse(&block), Ok(card));
        }
    }

    #[test]
    fn layout_offsets_match_the_reference() {
        let card = fixtures::resident();
        let block = encode(&card).expect("fits");
        let at = |byte: usize, len: usize| -> String {
            let units: Vec<u16> = block[byte..byte + len]
                .chunks_exact(2)
                .map(|p| u16::from_le_bytes([p[0], p[1]]))
                .collect();
            String::from_utf16_lossy(&units).trim_end().to_string()
        };
        // Byte offsets from the reference table: gender 30, nation 32, birth 36, id 122, end 204.
        assert_eq!(at(30, 2), "1");
        assert_eq!(at(32, 4), "01");
        assert_eq!(at(36, 16), "19900307");
        assert_eq!(at(122, 36), "310101199003071230");
        assert_eq!(at(204, 16), "20350601");
        let permit = encode(&fixtures::permit()).expect("fits");
        assert_eq!(&permit[248..250], &[b'J', 0]);
        let foreign = encode(&fixtures::foreigner()).expect("fits");
        assert_eq!(&foreign[248..250], &[b'I', 0]);
    }

    #[test]
    fn long_term_validity() {
        let card = parse(&encode(&fixtures::resident_long_term()).expect("fits")).expect("parses");
        let IdCard::Resident(c) = card else {
            panic!("resident")
        };
        assert_eq!(*c.valid_until.expose(), ValidUntil::LongTerm);
    }

    fn with_field(card: &IdCard, byte: usize, text: &str) -> Vec<u8> {
        let mut block = encode(card).expect("fits");
        for (i, u) in text.encode_utf16().enumerate() {
            block[byte + 2 * i..byte + 2 * i + 2].copy_from_slice(&u.to_le_bytes());
        }
        block
    }

    #[test]
    fn bad_fields_are_typed_errors_without_values() {
        let card = fixtures::resident();
        let cases: Vec<(Vec<u8>, TextError)> = vec![
            (
                with_field(&card, 122, "310101199003071231"),
                TextError::IdNumber(IdNumberError::CheckDigit),
            ),
            (
                with_field(&card, 122, "31010119900307123A"),
                TextError::IdNumber(IdNumberError::CheckDigit),
            ),
            (
                with_field(&card, 122, "3101011990030712  "),
                TextError::IdNumber(IdNumberError::Length(16)),
            ),
            (with_field(&card, 36, "19900308"), TextError::BirthMismatch),
            (
                with_field(&card, 36, "19901308"),
                TextError::Date("birth_date"),
            ),
            (with_field(&card, 30, "3"), TextError::Gender),
            (with_field(&card, 32, "57"), TextError::Nation),
            (with_field(&card, 32, "0x"), TextError::Nation),
            (
                with_field(&card, 204, "长久"),
                TextError::Date("valid_until"),
            ),
            (
                with_field(&card, 0, "               "),
                TextError::Empty("name"),
            ),
            (
                with_field(&card, 248, "Y"),
                TextError::UnsupportedCardType('Y'),
            ),
        ];
        for (block, expected) in cases {
            let err = parse(&block).expect_err("must fail");
            assert_eq!(err, expected);
            let message = err.to_string();
            assert!(!message.contains("3101011990"), "{message}");
        }
        let mut lone_surrogate = encode(&card).expect("fits");
        lone_surrogate[0..2].copy_from_slice(&0xD800u16.to_le_bytes());
        assert_eq!(parse(&lone_surrogate), Err(TextError::Encoding("name")));
        assert_eq!(parse(&[0; 10]), Err(TextError::Length(10)));
    }

    #[test]
    fn nul_padding_is_accepted() {
        let mut block = encode(&fixtures::resident()).expect("fits");
        // Zero the reserved tail and the name's padding, as some readers deliver it.
        block[220..].fill(0);
        block[6..30].fill(0);
        let IdCard::Resident(c) = parse(&block).expect("parses") else {
            panic!("resident")
        };
        assert_eq!(c.name.expose(), "王小明");
    }

    proptest! {
        #[test]
        fn parser_never_panics(block in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse(&block);
        }

        #[test]
        fn parser_never_panics_on_near_valid_blocks(
            edits in proptest::collection::vec((0usize..256, any::<u8>()), 1..8),
            which in 0usize..4,
        ) {
            let mut block = encode(&fixtures::cards()[which]).expect("fits");
            for (i, b) in edits { block[i] = b; }
            if let Ok(card) = parse(&block) {
                let again = encode(&card).expect("a parsed card fits its layout");
                prop_assert_eq!(parse(&again), Ok(card));
            }
        }
    }
}
