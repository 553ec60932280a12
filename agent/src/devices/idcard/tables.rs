//! Code tables printed on the card as codes: sex (GB/T 2261.1) and nationality (GB 3304).

use protocol::device::{Gender, Nation};

/// GB/T 2261.1 sex code.
pub fn gender_from_code(code: char) -> Option<Gender> {
    match code {
        '0' => Some(Gender::Unknown),
        '1' => Some(Gender::Male),
        '2' => Some(Gender::Female),
        '9' => Some(Gender::Unspecified),
        _ => None,
    }
}

pub fn gender_code(gender: Gender) -> char {
    match gender {
        Gender::Unknown => '0',
        Gender::Male => '1',
        Gender::Female => '2',
        Gender::Unspecified => '9',
    }
}

pub fn gender_zh(gender: Gender) -> &'static str {
    match gender {
        Gender::Unknown => "未知",
        Gender::Male => "男",
        Gender::Female => "女",
        Gender::Unspecified => "未说明",
    }
}

/// GB 3304 names for codes 01–56 (index = code − 1).
const NATIONS: [&str; 56] = [
    "汉",
    "蒙古",
    "回",
    "藏",
    "维吾尔",
    "苗",
    "彝",
    "壮",
    "布依",
    "朝鲜",
    "满",
    "侗",
    "瑶",
    "白",
    "土家",
    "哈尼",
    "哈萨克",
    "傣",
    "黎",
    "傈僳",
    "佤",
    "畲",
    "高山",
    "拉祜",
    "水",
    "东乡",
    "纳西",
    "景颇",
    "柯尔克孜",
    "土",
    "达斡尔",
    "仫佬",
    "羌",
    "布朗",
    "撒拉",
    "毛南",
    "仡佬",
    "锡伯",
    "阿昌",
    "普米",
    "塔吉克",
    "怒",
    "乌孜别克",
    "俄罗斯",
    "鄂温克",
    "德昂",
    "保安",
    "裕固",
    "京",
    "塔塔尔",
    "独龙",
    "鄂伦春",
    "赫哲",
    "门巴",
    "珞巴",
    "基诺",
];

/// The GB 3304 name of a code: 01–56, 97 其他, 98 外国血统中国籍人士.
pub fn nation_name(code: u8) -> Option<&'static str> {
    match code {
        1..=56 => Some(NATIONS[usize::from(code - 1)]),
        97 => Some("其他"),
        98 => Some("外国血统中国籍人士"),
        _ => None,
    }
}

pub fn nation(code: u8) -> Option<Nation> {
    nation_name(code).map(|name| Nation {
        code,
        name: name.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nation_table_is_complete() {
        assert_eq!(nation_name(1), Some("汉"));
        assert_eq!(nation_name(3), Some("回"));
        assert_eq!(nation_name(10), Some("朝鲜"));
        assert_eq!(nation_name(29), Some("柯尔克孜"));
        assert_eq!(nation_name(56), Some("基诺"));
        assert_eq!(nation_name(97), Some("其他"));
        assert_eq!(nation_name(98), Some("外国血统中国籍人士"));
        let known = (0..=u8::MAX).filter(|&c| nation_name(c).is_some()).count();
        assert_eq!(known, 58);
        assert_eq!(nation_name(0), None);
        assert_eq!(nation_name(57), None);
        assert_eq!(nation_name(99), None);
        let mut names: Vec<_> = NATIONS.to_vec();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 56, "a name appears twice");
    }

    #[test]
    fn gender_codes_roundtrip() {
        for c in ['0', '1', '2', '9'] {
            let g = gender_from_code(c).expect("known code");
            assert_eq!(gender_code(g), c);
        }
        assert_eq!(gender_from_code('3'), None);
        assert_eq!(gender_zh(Gender::Female), "女");
    }
}
