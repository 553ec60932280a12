//! What a clerk's screen shows of an identity card: labelled lines, masked by default
//! (GB/T 35273: mask personal information on display).
//!
//! The relay stores the card itself encrypted and gives the console a masked [`CardView`];
//! the full view is returned only by the audited reveal. The kiosk's card-reader command line
//! prints the same view (and [`card_json`]), so the masking rule lives here alone. Pure
//! functions, no I/O.

use serde::{Deserialize, Serialize};

use crate::idcard::{CardDate, Gender, IdCard, ValidUntil};

/// One labelled line, e.g. `姓名: 王**`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardLine {
    pub label: String,
    pub value: String,
}

/// A card for display.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardView {
    /// The case item holding the encrypted card (for the reveal), when stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case_item_id: Option<String>,
    pub masked: bool,
    /// 证件类型 in Chinese.
    pub card_type: String,
    pub lines: Vec<CardLine>,
}

/// `310101199003071230` → `310***********1230`; values shorter than 10 are masked whole.
pub fn mask_number(number: &str) -> String {
    let chars: Vec<char> = number.chars().collect();
    if chars.len() < 10 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 7))
}

/// `王小明` → `王**`; a one-character name → `*`.
pub fn mask_name(name: &str) -> String {
    let mut chars = name.chars();
    match (chars.next(), chars.clone().count()) {
        (None, _) => String::new(),
        (Some(_), 0) => "*".into(),
        (Some(first), rest) => format!("{first}{}", "*".repeat(rest)),
    }
}

/// Keeps the first `keep` characters and a fixed `***`, hiding the length.
pub fn mask_prefix(text: &str, keep: usize) -> String {
    let head: String = text.chars().take(keep).collect();
    format!("{head}***")
}

fn gender(g: Gender) -> &'static str {
    match g {
        Gender::Male => "男",
        Gender::Female => "女",
        Gender::Unknown => "未知",
        Gender::Unspecified => "未说明",
    }
}

fn until(v: &ValidUntil) -> String {
    match v {
        ValidUntil::Date(d) => d.to_string(),
        ValidUntil::LongTerm => "长期".into(),
    }
}

/// The card as labelled lines; personal values masked when `masked`.
pub fn card_view(card: &IdCard, masked: bool) -> CardView {
    let m = |hidden: String, plain: &str| if masked { hidden } else { plain.to_owned() };
    let born = |d: &CardDate| m(format!("{:04}-**-**", d.year()), &d.to_string());
    let line = |label: &str, value: String| CardLine {
        label: label.to_owned(),
        value,
    };
    let (card_type, lines) = match card {
        IdCard::Resident(c) => (
            "居民身份证",
            vec![
                line("姓名", m(mask_name(c.name.expose()), c.name.expose())),
                line("性别", gender(*c.gender.expose()).into()),
                line("民族", c.nation.expose().name.clone()),
                line("出生", born(c.birth_date.expose())),
                line(
                    "住址",
                    m(mask_prefix(c.address.expose(), 3), c.address.expose()),
                ),
                line(
                    "公民身份号码",
                    m(mask_number(c.id_number.expose()), c.id_number.expose()),
                ),
                line(
                    "签发机关",
                    m(
                        mask_prefix(c.issuing_authority.expose(), 3),
                        c.issuing_authority.expose(),
                    ),
                ),
                line(
                    "有效期限",
                    format!(
                        "{} 至 {}",
                        c.valid_from.expose(),
                        until(c.valid_until.expose())
                    ),
                ),
            ],
        ),
        IdCard::HkMacaoTaiwanPermit(c) => (
            "港澳台居民居住证",
            vec![
                line("姓名", m(mask_name(c.name.expose()), c.name.expose())),
                line("性别", gender(*c.gender.expose()).into()),
                line("出生", born(c.birth_date.expose())),
                line(
                    "住址",
                    m(mask_prefix(c.address.expose(), 3), c.address.expose()),
                ),
                line(
                    "公民身份号码",
                    m(mask_number(c.id_number.expose()), c.id_number.expose()),
                ),
                line(
                    "签发机关",
                    m(
                        mask_prefix(c.issuing_authority.expose(), 3),
                        c.issuing_authority.expose(),
                    ),
                ),
                line(
                    "有效期限",
                    format!(
                        "{} 至 {}",
                        c.valid_from.expose(),
                        until(c.valid_until.expose())
                    ),
                ),
                line(
                    "通行证号码",
                    m(mask_number(c.pass_number.expose()), c.pass_number.expose()),
                ),
                line("签发次数", c.issue_count.expose().to_string()),
            ],
        ),
        IdCard::ForeignPermanentResident(c) => (
            "外国人永久居留身份证",
            vec![
                line(
                    "英文姓名",
                    m(mask_name(c.english_name.expose()), c.english_name.expose()),
                ),
                line(
                    "中文姓名",
                    m(mask_name(c.chinese_name.expose()), c.chinese_name.expose()),
                ),
                line("性别", gender(*c.gender.expose()).into()),
                line("国籍", c.nationality.expose().clone()),
                line("出生", born(c.birth_date.expose())),
                line(
                    "证件号码",
                    m(mask_number(c.card_number.expose()), c.card_number.expose()),
                ),
                line(
                    "有效期限",
                    format!(
                        "{} 至 {}",
                        c.valid_from.expose(),
                        until(c.valid_until.expose())
                    ),
                ),
            ],
        ),
    };
    CardView {
        case_item_id: None,
        masked,
        card_type: card_type.into(),
        lines,
    }
}

/// The card in its wire shape (JSON) with the personal values masked as in [`card_view`], and
/// `"masked": true`; unmasked it is exactly the wire form.
pub fn card_json(card: &IdCard, masked: bool) -> serde_json::Value {
    let mut value = serde_json::to_value(card).unwrap_or(serde_json::Value::Null);
    if !masked {
        return value;
    }
    if let serde_json::Value::Object(fields) = &mut value {
        for (key, field) in fields.iter_mut() {
            let Some(text) = field.as_str() else { continue };
            let hidden = match key.as_str() {
                "name" | "english_name" | "chinese_name" => mask_name(text),
                "id_number" | "card_number" | "pass_number" => mask_number(text),
                "address" | "issuing_authority" => mask_prefix(text, 3),
                "birth_date" => format!("{}-**-**", text.get(..4).unwrap_or("****")),
                _ => continue,
            };
            *field = serde_json::Value::String(hidden);
        }
        fields.insert("masked".into(), true.into());
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Pii;
    use crate::idcard::{Nation, ResidentCard};

    fn resident() -> IdCard {
        let date = |y, m, d| CardDate::new(y, m, d).expect("valid");
        IdCard::Resident(ResidentCard {
            name: Pii::new("王小明".into()),
            gender: Pii::new(Gender::Male),
            nation: Pii::new(Nation {
                code: 1,
                name: "汉".into(),
            }),
            birth_date: Pii::new(date(1990, 3, 7)),
            address: Pii::new("上海市虚拟区示例路100弄".into()),
            id_number: Pii::new("310101199003071230".into()),
            issuing_authority: Pii::new("上海市公安局虚拟分局".into()),
            valid_from: Pii::new(date(2015, 6, 1)),
            valid_until: Pii::new(ValidUntil::LongTerm),
        })
    }

    #[test]
    fn masked_view_hides_personal_values_and_plain_view_shows_them() {
        let card = resident();
        let masked = serde_json::to_string(&card_view(&card, true)).expect("json");
        for secret in [
            "王小明",
            "310101199003071230",
            "示例路",
            "1990-03-07",
            "虚拟分局",
        ] {
            assert!(!masked.contains(secret), "{secret} in {masked}");
        }
        assert!(masked.contains("310***********1230"));
        assert!(masked.contains("王**"));
        let plain = serde_json::to_string(&card_view(&card, false)).expect("json");
        for shown in ["王小明", "310101199003071230", "1990-03-07", "长期"] {
            assert!(plain.contains(shown), "{shown} missing");
        }
    }

    #[test]
    fn masked_json_hides_the_same_values_and_plain_json_is_the_wire_form() {
        let card = resident();
        let masked = card_json(&card, true);
        assert_eq!(masked["masked"], true);
        assert_eq!(masked["id_number"], "310***********1230");
        assert_eq!(masked["name"], "王**");
        assert_eq!(masked["birth_date"], "1990-**-**");
        let text = masked.to_string();
        for secret in [
            "王小明",
            "310101199003071230",
            "示例路",
            "1990-03-07",
            "虚拟分局",
        ] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        let plain = card_json(&card, false);
        assert_eq!(plain, serde_json::to_value(&card).expect("json"));
        assert!(plain.get("masked").is_none());
    }
}
