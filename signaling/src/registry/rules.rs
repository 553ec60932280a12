//! Rules for single fields of the registry forms. Each takes what a person typed and returns
//! the canonical value, or a message for the form (Chinese first, English too).
//!
//! **Institution name (设备摆放机构名称).** Attachment 1 gives the pattern
//! `××街道××居委会 延伸服务点`, and its 填表说明 1 requires the name to follow the official
//! division naming (按照区划名称统一规范). The rule derived from both:
//!
//! ```text
//! name       = 街镇 committee [space] "延伸服务点"
//! 街镇       = the row's street/town exactly as in the division list (e.g. 天平路街道, 华泾镇)
//! committee  = the residents' or villagers' committee: a name ending in 居委会 or 村委会,
//!              of Chinese characters, digits and brackets, e.g. 永嘉路居委会, 北杨村村委会
//! ```
//!
//! The stored form has exactly one half-width space before 延伸服务点, as the form prints it,
//! so every point is spelt the same on the public map however it was typed.
//!
//! **Phone (摆放点位联系电话).** Accepted, after removing spaces and dashes (`-`, `—`, `–`,
//! `－`) and brackets around the area code:
//!
//! | input | stored |
//! |---|---|
//! | a Shanghai landline with area code: `021` + 8 digits, the first of them 2–9 (`021-64041234`, `(021)64041234`, `02164041234`, `021—64041234`) | `021-64041234` |
//! | the 8 digits alone (`64041234`) | `021-64041234` |
//! | either, with an extension `转` + 1–6 digits (`021-64041234转801`) | `021-64041234转801` |
//! | a mainland mobile: 11 digits `1[3-9]…`, optionally after `+86`/`86` (`138 1234 5678`) | `13812345678` |
//!
//! Anything else is refused: other area codes (`010-…`), 7-digit numbers, service numbers
//! (`400…`, `12345`), letters.
//!
//! **URL (远程设备 URL).** `http://` or `https://`, a host, an optional port and path; no user
//! name or password in it, no spaces, at most 200 characters. The form's example is a private
//! address (`http://10.11.160.170`), so private addresses are allowed. Stored as typed (trimmed).
//!
//! **Remote device id (远程设备 ID).** The id the kiosk authenticates with: 1–64 of
//! `A–Z a–z 0–9 . _ -`.

use super::divisions::{DivisionProblem, Divisions};

/// Why a value was refused, for the form: Chinese first, then English.
pub type Problem = String;

pub const NAME_SUFFIX: &str = "延伸服务点";
const COMMITTEE_SUFFIXES: [&str; 2] = ["居委会", "村委会"];
const MAX_NAME_CHARS: usize = 60;
pub const MAX_ADDRESS_CHARS: usize = 100;
pub const MAX_HOURS_TEXT_CHARS: usize = 100;
pub const MAX_REMARKS_CHARS: usize = 200;
pub const MAX_REASON_CHARS: usize = 200;
const MAX_URL_CHARS: usize = 200;
const MAX_DEVICE_ID_CHARS: usize = 64;

fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// A free-text field: trimmed, without control characters, at most `max` characters.
pub fn text(value: &str, max: usize, required: bool) -> Result<String, Problem> {
    let v = value.trim();
    if required && v.is_empty() {
        return Err("必填 / required".into());
    }
    if has_control(v) {
        return Err(
            "不能包含换行或控制字符 / must not contain line breaks or control characters".into(),
        );
    }
    if v.chars().count() > max {
        return Err(format!("最多{max}个字 / at most {max} characters"));
    }
    Ok(v.to_owned())
}

pub fn district(divisions: &Divisions, value: &str) -> Result<String, Problem> {
    let v = value.trim();
    if v.is_empty() {
        return Err("请选择区 / choose a district".into());
    }
    if !divisions.is_district(v) {
        return Err(format!(
            "“{v}”不在区划名录中 / {v:?} is not a district in the division list"
        ));
    }
    Ok(v.to_owned())
}

pub fn street(divisions: &Divisions, district: &str, value: &str) -> Result<String, Problem> {
    let v = value.trim();
    if v.is_empty() {
        return Err("请选择街镇 / choose a street or town".into());
    }
    match divisions.check_street(district, v) {
        Ok(()) => Ok(v.to_owned()),
        Err(DivisionProblem::UnknownDistrict) => {
            Err("请先选择正确的区 / choose a valid district first".into())
        }
        Err(DivisionProblem::StreetsNotConfigured) => Err(format!(
            "{district}的街镇名录尚未配置，须由市里提供官方区划名录后才能登记 / the streets of {district} are not configured yet; the official division list must be supplied"
        )),
        Err(DivisionProblem::UnknownStreet) => Err(format!(
            "“{v}”不是{district}的街镇 / {v:?} is not a street or town of {district}"
        )),
    }
}

fn committee_char(c: char) -> bool {
    ('\u{4e00}'..='\u{9fff}').contains(&c)
        || c.is_ascii_digit()
        || matches!(c, '（' | '）' | '(' | ')' | '·')
}

/// The institution name, checked against the row's street (see the module note).
pub fn institution_name(street: &str, value: &str) -> Result<String, Problem> {
    let v = value.trim();
    let example = format!("如“{street}××居委会 {NAME_SUFFIX}”");
    if v.is_empty() {
        return Err(format!("必填，{example} / required"));
    }
    if street.is_empty() {
        return Err("请先选择街镇 / choose the street or town first".into());
    }
    if v.chars().count() > MAX_NAME_CHARS {
        return Err(format!(
            "最多{MAX_NAME_CHARS}个字 / at most {MAX_NAME_CHARS} characters"
        ));
    }
    let Some(rest) = v.strip_prefix(street) else {
        return Err(format!(
            "须以所在街镇名称“{street}”开头，{example} / must start with the street or town name"
        ));
    };
    let Some(committee) = rest.strip_suffix(NAME_SUFFIX) else {
        return Err(format!(
            "须以“{NAME_SUFFIX}”结尾，{example} / must end with {NAME_SUFFIX}"
        ));
    };
    let committee = committee
        .strip_suffix(' ')
        .or_else(|| committee.strip_suffix('\u{3000}'))
        .unwrap_or(committee);
    let body = COMMITTEE_SUFFIXES
        .iter()
        .find_map(|s| committee.strip_suffix(s));
    match body {
        Some(b) if !b.is_empty() && b.chars().all(committee_char) => {
            Ok(format!("{street}{committee} {NAME_SUFFIX}"))
        }
        _ => Err(format!(
            "街镇名称与“{NAME_SUFFIX}”之间须为居委会或村委会的规范名称（以“居委会”或“村委会”结尾，只含汉字、数字和括号），{example} / the residents' or villagers' committee must come between the street name and {NAME_SUFFIX}"
        )),
    }
}

/// A Shanghai landline or a mobile number, in canonical form (see the module note).
pub fn phone(value: &str) -> Result<String, Problem> {
    const HELP: &str = "请填写上海固定电话（021-8位号码，可加“转”分机号）或11位手机号 / enter a Shanghai landline (021 and 8 digits, optionally 转 and an extension) or an 11-digit mobile number";
    let v = value.trim();
    if v.is_empty() {
        return Err(format!("必填。{HELP}"));
    }
    let (main, extension) = match v.split_once('转') {
        Some((m, e)) => (m, Some(e.trim())),
        None => (v, None),
    };
    let mut s: String = main
        .chars()
        .filter(|c| !matches!(c, ' ' | '\u{3000}' | '-' | '—' | '–' | '－'))
        .collect();
    for bracketed in ["(021)", "（021）"] {
        if let Some(rest) = s.strip_prefix(bracketed) {
            s = format!("021{rest}");
        }
    }
    if !s.chars().all(|c| c.is_ascii_digit() || c == '+') {
        return Err(HELP.into());
    }
    let digits = s.trim_start_matches('+');
    if s.starts_with('+') && !digits.starts_with("86") {
        return Err(HELP.into());
    }
    let is_mobile = |d: &str| {
        d.len() == 11 && d.starts_with('1') && matches!(d.as_bytes().get(1), Some(b'3'..=b'9'))
    };
    let local_ok = |d: &str| d.len() == 8 && !d.starts_with('0') && !d.starts_with('1');
    let landline = if let Some(local) = digits.strip_prefix("021") {
        local_ok(local).then(|| local.to_owned())
    } else if local_ok(digits) && !s.starts_with('+') {
        Some(digits.to_owned())
    } else {
        None
    };
    if let Some(local) = landline {
        return match extension {
            None => Ok(format!("021-{local}")),
            Some(e) if (1..=6).contains(&e.len()) && e.chars().all(|c| c.is_ascii_digit()) => {
                Ok(format!("021-{local}转{e}"))
            }
            Some(_) => Err(format!(
                "分机号须为1至6位数字 / the extension must be 1-6 digits. {HELP}"
            )),
        };
    }
    let mobile = digits
        .strip_prefix("86")
        .filter(|d| is_mobile(d))
        .or_else(|| (is_mobile(digits) && !s.starts_with('+')).then_some(digits));
    match (mobile, extension) {
        (Some(m), None) => Ok(m.to_owned()),
        (Some(_), Some(_)) => Err(format!(
            "手机号不能带分机号 / a mobile number has no extension. {HELP}"
        )),
        (None, _) => Err(HELP.into()),
    }
}

/// The remote device's URL (see the module note).
pub fn url(value: &str) -> Result<String, Problem> {
    const HELP: &str = "请填写以 http:// 或 https:// 开头的地址，如 http://10.11.160.170 / enter an http:// or https:// address";
    let v = value.trim();
    if v.is_empty() {
        return Err(format!("必填。{HELP}"));
    }
    if v.chars().count() > MAX_URL_CHARS {
        return Err(format!(
            "最多{MAX_URL_CHARS}个字符 / at most {MAX_URL_CHARS} characters"
        ));
    }
    if v.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("地址中不能有空格 / no spaces. {HELP}"));
    }
    let parsed = url::Url::parse(v).map_err(|_| HELP.to_owned())?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(HELP.into());
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("缺少主机地址 / the host is missing. {HELP}"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("地址中不能包含用户名或密码 / must not contain a user name or password".into());
    }
    if parsed.fragment().is_some() {
        return Err(format!("地址中不能有“#” / no fragment. {HELP}"));
    }
    Ok(v.to_owned())
}

/// The remote device id the kiosk authenticates with.
pub fn device_id(value: &str) -> Result<String, Problem> {
    let v = value.trim();
    let ok = !v.is_empty()
        && v.len() <= MAX_DEVICE_ID_CHARS
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(v.to_owned())
    } else {
        Err(format!(
            "须为1至{MAX_DEVICE_ID_CHARS}位英文字母、数字或 . _ - / 1-{MAX_DEVICE_ID_CHARS} letters, digits, '.', '_' or '-'"
        ))
    }
}

/// A reason (原因) that a form requires.
pub fn reason(value: &str) -> Result<String, Problem> {
    text(value, MAX_REASON_CHARS, true).map_err(|e| format!("请填写原因：{e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn institution_names_follow_the_form_pattern() {
        let ok = |street: &str, input: &str, stored: &str| {
            assert_eq!(
                institution_name(street, input).as_deref(),
                Ok(stored),
                "{input}"
            );
        };
        ok(
            "天平路街道",
            "天平路街道永嘉路居委会 延伸服务点",
            "天平路街道永嘉路居委会 延伸服务点",
        );
        ok(
            "天平路街道",
            "天平路街道永嘉路居委会延伸服务点",
            "天平路街道永嘉路居委会 延伸服务点",
        );
        ok(
            "天平路街道",
            " 天平路街道永嘉路居委会\u{3000}延伸服务点 ",
            "天平路街道永嘉路居委会 延伸服务点",
        );
        ok(
            "华泾镇",
            "华泾镇北杨村村委会延伸服务点",
            "华泾镇北杨村村委会 延伸服务点",
        );
        ok(
            "徐家汇街道",
            "徐家汇街道汇站街第二居委会 延伸服务点",
            "徐家汇街道汇站街第二居委会 延伸服务点",
        );
        ok(
            "龙华街道",
            "龙华街道龙华（一）居委会延伸服务点",
            "龙华街道龙华（一）居委会 延伸服务点",
        );

        let refused = |street: &str, input: &str, says: &str| {
            let e = institution_name(street, input).expect_err(input);
            assert!(e.contains(says), "{input}: {e}");
        };
        refused("天平路街道", "", "必填");
        refused("天平路街道", "湖南路街道永嘉路居委会 延伸服务点", "开头");
        refused("天平路街道", "永嘉路居委会 延伸服务点", "开头");
        refused("天平路街道", "天平路街道永嘉路居委会", "结尾");
        refused("天平路街道", "天平路街道永嘉路居委会 服务点", "结尾");
        refused("天平路街道", "天平路街道 延伸服务点", "居委会或村委会");
        refused(
            "天平路街道",
            "天平路街道居委会 延伸服务点",
            "居委会或村委会",
        );
        refused(
            "天平路街道",
            "天平路街道永嘉路社区 延伸服务点",
            "居委会或村委会",
        );
        refused(
            "天平路街道",
            "天平路街道永嘉路 居委会 延伸服务点",
            "居委会或村委会",
        );
        refused(
            "天平路街道",
            "天平路街道Yongjia居委会 延伸服务点",
            "居委会或村委会",
        );
        refused(
            "天平路街道",
            &format!("天平路街道{}居委会 延伸服务点", "长".repeat(60)),
            "最多",
        );
    }

    #[test]
    fn phone_numbers_in_every_accepted_form() {
        for (input, stored) in [
            ("021-64041234", "021-64041234"),
            ("021—64041234", "021-64041234"),
            ("021 6404 1234", "021-64041234"),
            ("02164041234", "021-64041234"),
            ("(021)64041234", "021-64041234"),
            ("（021）64041234", "021-64041234"),
            ("64041234", "021-64041234"),
            ("021-64041234转801", "021-64041234转801"),
            ("64041234 转 8", "021-64041234转8"),
            ("13812345678", "13812345678"),
            ("138 1234 5678", "13812345678"),
            ("138-1234-5678", "13812345678"),
            ("+86 138 1234 5678", "13812345678"),
            ("8613812345678", "13812345678"),
            ("19912345678", "19912345678"),
        ] {
            assert_eq!(phone(input).as_deref(), Ok(stored), "{input}");
        }
    }

    #[test]
    fn phone_numbers_that_are_refused() {
        for input in [
            "",
            "010-64041234",  // Beijing
            "0571-87654321", // another area code
            "021-6404123",   // 7 digits
            "021-640412345", // 9 digits
            "021-04041234",  // local numbers do not start with 0
            "021-14041234",  // … or 1
            "6404123",
            "12345", // the government hotline is not a point's phone
            "400-820-1234",
            "12812345678", // no mobile numbers start 12
            "1381234567",  // 10 digits
            "+1 138 1234 5678",
            "+8664041234", // a landline after a country code without area code
            "021-6404abcd",
            "021-64041234转",
            "021-64041234转1234567",
            "13812345678转1",
            "tel:021-64041234",
        ] {
            assert!(phone(input).is_err(), "accepted {input:?}");
        }
    }

    #[test]
    fn device_urls() {
        for ok in [
            "http://10.11.160.170",
            "https://kiosk-01.example.gov.cn:8443/status",
            " http://10.0.0.1/ ",
        ] {
            assert_eq!(url(ok).as_deref(), Ok(ok.trim()), "{ok}");
        }
        for bad in [
            "",
            "10.11.160.170",
            "ftp://10.11.160.170",
            "javascript:alert(1)",
            "http://",
            "http://user:pw@10.0.0.1",
            "http://10.0.0.1/a b",
            "http://10.0.0.1/#x",
            &format!("http://{}.cn", "a".repeat(200)),
        ] {
            assert!(url(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn device_ids() {
        assert_eq!(device_id(" kiosk-tp.01_a ").as_deref(), Ok("kiosk-tp.01_a"));
        for bad in ["", "k:1", "k 1", "设备1", &"k".repeat(65), "k/1"] {
            assert!(device_id(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn free_text_fields() {
        assert_eq!(text("  示范路1号 ", 100, true).as_deref(), Ok("示范路1号"));
        assert!(text("", 100, true).is_err());
        assert_eq!(text("", 100, false).as_deref(), Ok(""));
        assert!(text("a\nb", 100, false).is_err());
        assert!(text(&"字".repeat(101), 100, false).is_err());
        assert!(reason(" ").expect_err("required").contains("原因"));
    }

    #[test]
    fn districts_and_streets_come_from_the_division_list() {
        let d = Divisions::builtin();
        assert_eq!(district(&d, " 徐汇区 ").as_deref(), Ok("徐汇区"));
        assert!(district(&d, "示范区").is_err());
        assert!(district(&d, "").is_err());
        assert_eq!(
            street(&d, "徐汇区", "天平路街道").as_deref(),
            Ok("天平路街道")
        );
        assert!(
            street(&d, "徐汇区", "外滩街道")
                .expect_err("other district")
                .contains("不是徐汇区的街镇")
        );
        assert!(
            street(&d, "崇明区", "城桥镇")
                .expect_err("not configured")
                .contains("尚未配置")
        );
        assert!(street(&d, "徐汇区", "").is_err());
    }
}
