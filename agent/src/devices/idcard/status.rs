//! SW3 status codes of SAM replies, with their meaning in Chinese and English (table from the
//! open implementations, `reference/idcard-sam-protocol.md` §1.4).

use std::fmt;

/// An SW3 byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sw3 {
    /// 0x90 操作成功
    Success,
    /// 0x9F 寻找证/卡成功
    FindSuccess,
    /// 0x91 证/卡中此项无内容
    NoContent,
    /// 0x10 接收数据校验和错
    ChecksumError,
    /// 0x11 接收数据长度错
    LengthError,
    /// 0x21 接收数据命令错
    CommandError,
    /// 0x23 越权操作
    Unauthorised,
    /// 0x24 无法识别的错误
    Unrecognised,
    /// 0x31 证/卡认证SAM失败
    CardAuthenticatesSamFailed,
    /// 0x32 SAM认证证/卡失败
    SamAuthenticatesCardFailed,
    /// 0x33 信息验证错误
    VerificationFailed,
    /// 0x40 无法识别的卡类型
    UnknownCardType,
    /// 0x41 读证/卡操作失败
    ReadFailed,
    /// 0x47 取随机数失败
    RandomFailed,
    /// 0x60 SAM自检失败
    SamSelfTestFailed,
    /// 0x66 SAM未经授权
    SamNotAuthorised,
    /// 0x80 寻找证/卡失败
    FindFailed,
    /// 0x81 选取证/卡失败
    SelectFailed,
    /// A code not in the table.
    Other(u8),
}

impl Sw3 {
    pub fn from_byte(b: u8) -> Sw3 {
        match b {
            0x90 => Sw3::Success,
            0x9F => Sw3::FindSuccess,
            0x91 => Sw3::NoContent,
            0x10 => Sw3::ChecksumError,
            0x11 => Sw3::LengthError,
            0x21 => Sw3::CommandError,
            0x23 => Sw3::Unauthorised,
            0x24 => Sw3::Unrecognised,
            0x31 => Sw3::CardAuthenticatesSamFailed,
            0x32 => Sw3::SamAuthenticatesCardFailed,
            0x33 => Sw3::VerificationFailed,
            0x40 => Sw3::UnknownCardType,
            0x41 => Sw3::ReadFailed,
            0x47 => Sw3::RandomFailed,
            0x60 => Sw3::SamSelfTestFailed,
            0x66 => Sw3::SamNotAuthorised,
            0x80 => Sw3::FindFailed,
            0x81 => Sw3::SelectFailed,
            other => Sw3::Other(other),
        }
    }

    pub fn byte(self) -> u8 {
        match self {
            Sw3::Success => 0x90,
            Sw3::FindSuccess => 0x9F,
            Sw3::NoContent => 0x91,
            Sw3::ChecksumError => 0x10,
            Sw3::LengthError => 0x11,
            Sw3::CommandError => 0x21,
            Sw3::Unauthorised => 0x23,
            Sw3::Unrecognised => 0x24,
            Sw3::CardAuthenticatesSamFailed => 0x31,
            Sw3::SamAuthenticatesCardFailed => 0x32,
            Sw3::VerificationFailed => 0x33,
            Sw3::UnknownCardType => 0x40,
            Sw3::ReadFailed => 0x41,
            Sw3::RandomFailed => 0x47,
            Sw3::SamSelfTestFailed => 0x60,
            Sw3::SamNotAuthorised => 0x66,
            Sw3::FindFailed => 0x80,
            Sw3::SelectFailed => 0x81,
            Sw3::Other(b) => b,
        }
    }

    pub fn zh(self) -> &'static str {
        match self {
            Sw3::Success => "操作成功",
            Sw3::FindSuccess => "寻找证/卡成功",
            Sw3::NoContent => "证/卡中此项无内容",
            Sw3::ChecksumError => "接收数据校验和错",
            Sw3::LengthError => "接收数据长度错",
            Sw3::CommandError => "接收数据命令错",
            Sw3::Unauthorised => "越权操作",
            Sw3::Unrecognised => "无法识别的错误",
            Sw3::CardAuthenticatesSamFailed => "证/卡认证SAM失败",
            Sw3::SamAuthenticatesCardFailed => "SAM认证证/卡失败",
            Sw3::VerificationFailed => "信息验证错误",
            Sw3::UnknownCardType => "无法识别的卡类型",
            Sw3::ReadFailed => "读证/卡操作失败，请取走证件后重新放置",
            Sw3::RandomFailed => "取随机数失败",
            Sw3::SamSelfTestFailed => "SAM自检失败，阅读器不能接收命令",
            Sw3::SamNotAuthorised => "SAM未经授权",
            Sw3::FindFailed => "寻找证/卡失败",
            Sw3::SelectFailed => "选取证/卡失败",
            Sw3::Other(_) => "未知状态码",
        }
    }

    pub fn en(self) -> &'static str {
        match self {
            Sw3::Success => "success",
            Sw3::FindSuccess => "card found",
            Sw3::NoContent => "the card has no content for this item",
            Sw3::ChecksumError => "the reader received a bad checksum",
            Sw3::LengthError => "the reader received a bad length",
            Sw3::CommandError => "the reader received a bad command",
            Sw3::Unauthorised => "operation not permitted",
            Sw3::Unrecognised => "unrecognised error",
            Sw3::CardAuthenticatesSamFailed => "the card failed to authenticate the SAM",
            Sw3::SamAuthenticatesCardFailed => "the SAM failed to authenticate the card",
            Sw3::VerificationFailed => "information verification failed",
            Sw3::UnknownCardType => "unknown card type",
            Sw3::ReadFailed => "reading the card failed; lift the card and place it again",
            Sw3::RandomFailed => "getting a random number failed",
            Sw3::SamSelfTestFailed => "SAM self-test failed; the reader cannot accept commands",
            Sw3::SamNotAuthorised => "the SAM is not authorised",
            Sw3::FindFailed => "no card found",
            Sw3::SelectFailed => "selecting the card failed",
            Sw3::Other(_) => "unknown status code",
        }
    }
}

impl fmt::Display for Sw3 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} / {} (SW3={:#04x})",
            self.zh(),
            self.en(),
            self.byte()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_roundtrips_and_has_text() {
        for b in 0..=255u8 {
            let s = Sw3::from_byte(b);
            assert_eq!(s.byte(), b);
            assert!(!s.zh().is_empty() && !s.en().is_empty());
        }
        assert_eq!(Sw3::from_byte(0x60), Sw3::SamSelfTestFailed);
        assert_eq!(
            Sw3::from_byte(0x41).to_string(),
            "读证/卡操作失败，请取走证件后重新放置 / reading the card failed; lift the card and place it again (SW3=0x41)"
        );
    }
}
