//! The text of an identity card as the kiosk's reader decodes it (GA 490 layouts): the card
//! types, and the dates, sex and 民族 codes on them. Every personal value is a [`Pii`], so a
//! stray `Debug` never prints it. Rendering for a screen, masked or not, is in
//! [`crate::card_view`]; the device protocol that carries a card is in [`crate::device`].

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Pii;

/// The text of an identity card, by card type (GA 490 layouts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "card_type", rename_all = "snake_case")]
pub enum IdCard {
    /// 居民身份证
    Resident(ResidentCard),
    /// 港澳台居民居住证 (type flag 'J')
    HkMacaoTaiwanPermit(PermitCard),
    /// 外国人永久居留身份证, 2017 edition (type flag 'I')
    ForeignPermanentResident(ForeignResidentCard),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResidentCard {
    /// 姓名
    pub name: Pii<String>,
    /// 性别
    pub gender: Pii<Gender>,
    /// 民族 (GB 3304)
    pub nation: Pii<Nation>,
    /// 出生
    pub birth_date: Pii<CardDate>,
    /// 住址
    pub address: Pii<String>,
    /// 公民身份号码 (18 characters, check digit verified)
    pub id_number: Pii<String>,
    /// 签发机关
    pub issuing_authority: Pii<String>,
    pub valid_from: Pii<CardDate>,
    pub valid_until: Pii<ValidUntil>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PermitCard {
    pub name: Pii<String>,
    pub gender: Pii<Gender>,
    pub birth_date: Pii<CardDate>,
    pub address: Pii<String>,
    /// 公民身份号码 (18 characters, 81/82/83 prefix, check digit verified)
    pub id_number: Pii<String>,
    pub issuing_authority: Pii<String>,
    pub valid_from: Pii<CardDate>,
    pub valid_until: Pii<ValidUntil>,
    /// 通行证号码
    pub pass_number: Pii<String>,
    /// 签发次数
    pub issue_count: Pii<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForeignResidentCard {
    /// 英文姓名
    pub english_name: Pii<String>,
    /// 中文姓名 (may be empty)
    pub chinese_name: Pii<String>,
    pub gender: Pii<Gender>,
    /// 永久居留证号码 (15 characters)
    pub card_number: Pii<String>,
    /// 国籍/地区代码 (ISO 3166-1 alpha-3)
    pub nationality: Pii<String>,
    pub birth_date: Pii<CardDate>,
    /// 签发日期
    pub valid_from: Pii<CardDate>,
    pub valid_until: Pii<ValidUntil>,
    /// 证件版本号
    pub card_version: Pii<String>,
    /// 受理机关代码
    pub authority_code: Pii<String>,
}

/// GB/T 2261.1 sex codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Gender {
    /// 0 未知的性别
    Unknown,
    /// 1 男
    Male,
    /// 2 女
    Female,
    /// 9 未说明的性别
    Unspecified,
}

/// GB 3304 nationality (民族) with its code, e.g. `{"code":1,"name":"汉"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nation {
    pub code: u8,
    pub name: String,
}

/// A calendar date from a card, `"YYYY-MM-DD"` on the wire. Construction checks the month and
/// day ranges (not leap years: the card is the authority).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CardDate {
    year: u16,
    month: u8,
    day: u8,
}

impl CardDate {
    pub fn new(year: u16, month: u8, day: u8) -> Option<Self> {
        ((1..=12).contains(&month) && (1..=31).contains(&day) && year >= 1).then_some(Self {
            year,
            month,
            day,
        })
    }
    pub fn year(self) -> u16 {
        self.year
    }
    pub fn month(self) -> u8 {
        self.month
    }
    pub fn day(self) -> u8 {
        self.day
    }
}

impl fmt::Display for CardDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

impl std::str::FromStr for CardDate {
    type Err = &'static str;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let b = s.as_bytes();
        let digits = |r: std::ops::Range<usize>| -> Option<u16> {
            let part = s.get(r)?;
            if part.bytes().all(|c| c.is_ascii_digit()) {
                part.parse().ok()
            } else {
                None
            }
        };
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return Err("expected YYYY-MM-DD");
        }
        let (Some(y), Some(m), Some(d)) = (digits(0..4), digits(5..7), digits(8..10)) else {
            return Err("expected YYYY-MM-DD");
        };
        CardDate::new(y, m as u8, d as u8).ok_or("month or day out of range")
    }
}

impl Serialize for CardDate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for CardDate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// End of validity: a date, or 长期 (long-term, no end), `"long_term"` on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValidUntil {
    Date(CardDate),
    /// 长期
    LongTerm,
}

impl Serialize for ValidUntil {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ValidUntil::Date(d) => d.serialize(s),
            ValidUntil::LongTerm => s.serialize_str("long_term"),
        }
    }
}

impl<'de> Deserialize<'de> for ValidUntil {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s == "long_term" {
            Ok(ValidUntil::LongTerm)
        } else {
            s.parse()
                .map(ValidUntil::Date)
                .map_err(serde::de::Error::custom)
        }
    }
}
