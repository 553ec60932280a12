//! Masking for screens and terminal output (GB/T 35273: mask personal information on
//! display). The clerk's console shows unmasked values only where the service needs them; the
//! CLI masks unless `--show-personal` is given.

use protocol::device::{Gender, IdCard, ValidUntil};

use super::tables;

/// `310101199003071230` → `310***********1230`: the region's first three and the last four
/// characters stay. Shorter values are masked whole.
pub fn id_number(number: &str) -> String {
    let chars: Vec<char> = number.chars().collect();
    if chars.len() < 10 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 7))
}

/// `王小明` → `王**`; a one-character name → `*`.
pub fn name(name: &str) -> String {
    let mut chars = name.chars();
    match (chars.next(), chars.clone().count()) {
        (None, _) => String::new(),
        (Some(_), 0) => "*".into(),
        (Some(first), rest) => format!("{first}{}", "*".repeat(rest)),
    }
}

/// Keeps the first `keep` characters and replaces the rest by a fixed `***`, hiding the length.
pub fn prefix(text: &str, keep: usize) -> String {
    let head: String = text.chars().take(keep).collect();
    format!("{head}***")
}

fn until(v: &ValidUntil) -> String {
    match v {
        ValidUntil::Date(d) => d.to_string(),
        ValidUntil::LongTerm => "长期".into(),
    }
}

fn gender(g: Gender) -> String {
    tables::gender_zh(g).into()
}

/// The card as labelled lines (`label`, value), masked unless `show_personal`.
pub fn card_lines(card: &IdCard, show_personal: bool) -> Vec<(&'static str, String)> {
    let m = |masked: String, plain: &str| {
        if show_personal {
            plain.to_string()
        } else {
            masked
        }
    };
    let year_only = |d: &protocol::device::CardDate| format!("{:04}-**-**", d.year());
    match card {
        IdCard::Resident(c) => vec![
            (
                "证件类型 / card type",
                "居民身份证 / resident ID card".into(),
            ),
            ("姓名 / name", m(name(c.name.expose()), c.name.expose())),
            ("性别 / sex", gender(*c.gender.expose())),
            ("民族 / ethnic group", c.nation.expose().name.clone()),
            (
                "出生 / born",
                m(
                    year_only(c.birth_date.expose()),
                    &c.birth_date.expose().to_string(),
                ),
            ),
            (
                "住址 / address",
                m(prefix(c.address.expose(), 3), c.address.expose()),
            ),
            (
                "公民身份号码 / ID number",
                m(id_number(c.id_number.expose()), c.id_number.expose()),
            ),
            (
                "签发机关 / issued by",
                m(
                    prefix(c.issuing_authority.expose(), 3),
                    c.issuing_authority.expose(),
                ),
            ),
            (
                "有效期限 / valid",
                format!(
                    "{} – {}",
                    c.valid_from.expose(),
                    until(c.valid_until.expose())
                ),
            ),
        ],
        IdCard::HkMacaoTaiwanPermit(c) => vec![
            (
                "证件类型 / card type",
                "港澳台居民居住证 / HK, Macao, Taiwan residence permit".into(),
            ),
            ("姓名 / name", m(name(c.name.expose()), c.name.expose())),
            ("性别 / sex", gender(*c.gender.expose())),
            (
                "出生 / born",
                m(
                    year_only(c.birth_date.expose()),
                    &c.birth_date.expose().to_string(),
                ),
            ),
            (
                "住址 / address",
                m(prefix(c.address.expose(), 3), c.address.expose()),
            ),
            (
                "公民身份号码 / ID number",
                m(id_number(c.id_number.expose()), c.id_number.expose()),
            ),
            (
                "签发机关 / issued by",
                m(
                    prefix(c.issuing_authority.expose(), 3),
                    c.issuing_authority.expose(),
                ),
            ),
            (
                "有效期限 / valid",
                format!(
                    "{} – {}",
                    c.valid_from.expose(),
                    until(c.valid_until.expose())
                ),
            ),
            (
                "通行证号码 / pass number",
                m(id_number(c.pass_number.expose()), c.pass_number.expose()),
            ),
            ("签发次数 / issue count", c.issue_count.expose().to_string()),
        ],
        IdCard::ForeignPermanentResident(c) => vec![
            (
                "证件类型 / card type",
                "外国人永久居留身份证 / foreign permanent resident ID card".into(),
            ),
            (
                "英文姓名 / name",
                m(name(c.english_name.expose()), c.english_name.expose()),
            ),
            (
                "中文姓名 / Chinese name",
                m(name(c.chinese_name.expose()), c.chinese_name.expose()),
            ),
            ("性别 / sex", gender(*c.gender.expose())),
            ("国籍 / nationality", c.nationality.expose().clone()),
            (
                "出生 / born",
                m(
                    year_only(c.birth_date.expose()),
                    &c.birth_date.expose().to_string(),
                ),
            ),
            (
                "证件号码 / card number",
                m(id_number(c.card_number.expose()), c.card_number.expose()),
            ),
            (
                "有效期限 / valid",
                format!(
                    "{} – {}",
                    c.valid_from.expose(),
                    until(c.valid_until.expose())
                ),
            ),
        ],
    }
}

/// The card as JSON in its wire shape, with personal values masked as in [`card_lines`]
/// unless `show_personal` (then it is exactly the wire form). Masked output has
/// `"masked": true`.
pub fn card_json(card: &IdCard, show_personal: bool) -> serde_json::Value {
    let mut value = serde_json::to_value(card).unwrap_or(serde_json::Value::Null);
    if show_personal {
        return value;
    }
    if let serde_json::Value::Object(fields) = &mut value {
        for (key, field) in fields.iter_mut() {
            let Some(text) = field.as_str() else { continue };
            let masked = match key.as_str() {
                "name" | "english_name" | "chinese_name" => name(text),
                "id_number" | "card_number" | "pass_number" => id_number(text),
                "address" | "issuing_authority" => prefix(text, 3),
                "birth_date" => format!("{}-**-**", text.get(..4).unwrap_or("****")),
                _ => continue,
            };
            *field = serde_json::Value::String(masked);
        }
        fields.insert("masked".into(), true.into());
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::idcard::fixtures;

    #[test]
    fn masks() {
        assert_eq!(id_number("310101199003071230"), "310***********1230");
        assert_eq!(id_number("H00000000"), "*********");
        assert_eq!(name("王小明"), "王**");
        assert_eq!(name("张三"), "张*");
        assert_eq!(name("张"), "*");
        assert_eq!(name(""), "");
        assert_eq!(prefix("上海市虚拟区示例路", 3), "上海市***");
    }

    #[test]
    fn masked_output_hides_every_personal_value() {
        for card in fixtures::cards() {
            let text = format!("{:?} {}", card_lines(&card, false), card_json(&card, false));
            for secret in [
                "310101199003071230",
                "王小明",
                "示例路",
                "19900307",
                "1990-03-07",
                "H00000000",
                "SAMPLE",
                "亚历克斯",
                "XXX310000000001",
            ] {
                assert!(!text.contains(secret), "{secret} in {text}");
            }
            let plain = format!("{:?}", card_lines(&card, true));
            assert!(!plain.contains("***"), "{plain}");
        }
    }
}
