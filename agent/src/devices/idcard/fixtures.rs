//! Made-up cards for the simulator, the demo and tests: one of each card type, one resident
//! card valid 长期. Names, addresses and numbers are invented; the ID numbers carry valid
//! check characters (computed, so they stay valid if a digit is edited here).

use protocol::Pii;
use protocol::device::{
    CardDate, ForeignResidentCard, Gender, IdCard, PermitCard, ResidentCard, ValidUntil,
};

use super::id_number::check_character;
use super::tables;

fn date(y: u16, m: u8, d: u8) -> CardDate {
    // The fixture dates below are literal and valid; a bad edit fails every test loudly.
    CardDate::new(y, m, d).unwrap_or_else(|| panic!("fixture date {y}-{m}-{d} is invalid"))
}

fn number(first17: &str) -> String {
    let check = check_character(first17)
        .unwrap_or_else(|| panic!("fixture number {first17} is not 17 digits"));
    format!("{first17}{check}")
}

fn nation(code: u8) -> protocol::device::Nation {
    tables::nation(code).unwrap_or_else(|| panic!("fixture nation {code} is not in GB 3304"))
}

/// 居民身份证 with a dated validity.
pub fn resident() -> IdCard {
    IdCard::Resident(ResidentCard {
        name: Pii::new("王小明".into()),
        gender: Pii::new(Gender::Male),
        nation: Pii::new(nation(1)),
        birth_date: Pii::new(date(1990, 3, 7)),
        address: Pii::new("上海市虚拟区示例路100弄1号101室".into()),
        id_number: Pii::new(number("31010119900307123")),
        issuing_authority: Pii::new("上海市公安局虚拟分局".into()),
        valid_from: Pii::new(date(2015, 6, 1)),
        valid_until: Pii::new(ValidUntil::Date(date(2035, 6, 1))),
    })
}

/// 居民身份证 valid 长期.
pub fn resident_long_term() -> IdCard {
    IdCard::Resident(ResidentCard {
        name: Pii::new("李秀英".into()),
        gender: Pii::new(Gender::Female),
        nation: Pii::new(nation(3)),
        birth_date: Pii::new(date(1950, 11, 20)),
        address: Pii::new("上海市虚拟区测试镇样板村8号".into()),
        id_number: Pii::new(number("31011519501120002")),
        issuing_authority: Pii::new("上海市公安局虚拟分局".into()),
        valid_from: Pii::new(date(2010, 1, 1)),
        valid_until: Pii::new(ValidUntil::LongTerm),
    })
}

/// 港澳台居民居住证 (type 'J').
pub fn permit() -> IdCard {
    IdCard::HkMacaoTaiwanPermit(PermitCard {
        name: Pii::new("陈大文".into()),
        gender: Pii::new(Gender::Male),
        birth_date: Pii::new(date(1985, 6, 15)),
        address: Pii::new("上海市虚拟区演示路9号".into()),
        id_number: Pii::new(number("81000019850615003")),
        issuing_authority: Pii::new("上海市公安局虚拟分局".into()),
        valid_from: Pii::new(date(2019, 1, 1)),
        valid_until: Pii::new(ValidUntil::Date(date(2024, 1, 1))),
        pass_number: Pii::new("H00000000".into()),
        issue_count: Pii::new(1),
    })
}

/// 外国人永久居留身份证, 2017 edition (type 'I').
pub fn foreigner() -> IdCard {
    IdCard::ForeignPermanentResident(ForeignResidentCard {
        english_name: Pii::new("SAMPLE, ALEX".into()),
        chinese_name: Pii::new("亚历克斯".into()),
        gender: Pii::new(Gender::Male),
        card_number: Pii::new("XXX310000000001".into()),
        nationality: Pii::new("XXX".into()),
        birth_date: Pii::new(date(1980, 8, 1)),
        valid_from: Pii::new(date(2018, 3, 1)),
        valid_until: Pii::new(ValidUntil::Date(date(2028, 3, 1))),
        card_version: Pii::new("01".into()),
        authority_code: Pii::new("3100".into()),
    })
}

/// All fixture cards, in the order the simulator presents them.
pub fn cards() -> Vec<IdCard> {
    vec![resident(), resident_long_term(), permit(), foreigner()]
}

/// A stand-in for the 1024-byte WLT photo: a recognisable, deterministic pattern (not a
/// decodable image).
pub fn photo() -> Vec<u8> {
    let mut photo = b"SIMULATED-WLT-PHOTO".to_vec();
    photo.extend((0..1024 - photo.len()).map(|i| (i % 251) as u8));
    photo
}
