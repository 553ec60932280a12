//! ID card reader (身份证阅读器): the [`IdCardReader`] trait, the SAM serial driver that
//! implements it, the card-text parser, and a simulated reader that speaks the same protocol on
//! a pseudo-terminal.
//!
//! How it is driven: the caller (the device-command handler, the self-test, the CLI) owns one
//! reader and calls it from a blocking thread (`tokio::task::spawn_blocking`): every call is
//! bounded by the reply timeout and, for [`IdCardReader::read_card`], by the caller's wait;
//! cancellation is a flag the read polls between card-presence checks.
//!
//! What it deliberately does not do:
//! - decode the 1024-byte WLT photo: that needs the vendor's licensed library, so the photo
//!   stays opaque bytes and decoding goes through the [`PhotoDecoder`] plug-in trait, which has
//!   no implementation here ([`NoPhotoDecoder`] says "not installed");
//! - keep fingerprints: the fingerprint read (`30 10`) is understood so a reader configured for
//!   it works, but the fingerprint bytes are zeroed and dropped as soon as the frame is parsed;
//! - log personal data: every field read from a card is a [`protocol::Pii`], and error
//!   messages name fields, never values.
//!
//! Layers: [`frame`] (bytes ↔ frames, sans-IO), [`status`] (SW3 codes), [`text`] + [`tables`] +
//! [`id_number`] (the 256-byte text block), [`sam`] (the serial driver), [`simulator`] (the
//! protocol-level simulator), [`cli`] (`agent card-reader`). What a screen may show of a card
//! is [`protocol::card_view`]'s rule, shared with the relay.

pub mod cli;
pub mod fixtures;
pub mod frame;
pub mod id_number;
pub mod photo;
pub mod sam;
pub mod simulator;
pub mod status;
pub mod tables;
pub mod text;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use protocol::Pii;
use protocol::device::{
    CompletionCode, DeviceErrorCode, Empty, ErrorDescription, EventBody, IdCard, IdCardReadResult,
};

pub use photo::{DecodedPhoto, NoPhotoDecoder, PhotoDecoder, PhotoError};
pub use sam::{LinkStats, SamConfig, SamSerialReader};

/// A card read from the reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardRead {
    pub card: IdCard,
    /// The card photo as stored on the card (WLT, 1024 bytes). Opaque: see [`PhotoDecoder`].
    pub photo_wlt: Pii<Vec<u8>>,
    /// Whether the card carries a fingerprint file; `None` unless the read asked for it.
    pub has_fingerprint: Option<bool>,
}

impl CardRead {
    /// The `IdCard.Read` completion payload; the photo travels separately (HTTPS upload) and is
    /// referred to by `photo_upload_id`.
    pub fn to_result(&self, photo_upload_id: Option<String>) -> IdCardReadResult {
        IdCardReadResult {
            card: Some(self.card.clone()),
            view: None,
            photo_upload_id,
            has_fingerprint: self.has_fingerprint,
        }
    }
}

/// Facts about the reader for the device registry and the self-test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReaderInfo {
    /// The SAM id (安全模块号), e.g. `05.01-20101231-000012345-123456789`.
    pub sam_id: String,
}

/// Options of one read.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// How long to wait for a card (and for the previous card to be lifted).
    pub wait: Duration,
    /// Ask for the fingerprint file too (its bytes are discarded at once).
    pub with_fingerprint_check: bool,
    /// Set to end the wait early with [`IdCardError::Canceled`].
    pub cancel: Option<Arc<AtomicBool>>,
}

impl ReadOptions {
    pub fn wait(wait: Duration) -> Self {
        ReadOptions {
            wait,
            with_fingerprint_check: false,
            cancel: None,
        }
    }

    fn canceled(&self) -> bool {
        self.cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::Relaxed))
    }
}

/// Progress of a read, for the kiosk screen and the XFS-style events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadProgress {
    /// No card yet: prompt the resident to place it.
    WaitingForCard,
    /// The previous card is still on the reader: prompt to lift it.
    RemoveCard,
    /// A card was found and is being read: do not move it.
    CardDetected,
}

impl ReadProgress {
    /// The `IdCard.*` event sent to the clerk's console.
    pub fn event(self) -> EventBody {
        match self {
            ReadProgress::WaitingForCard => EventBody::IdCardInsertCard(Empty {}),
            ReadProgress::RemoveCard => EventBody::IdCardRemoveCard(Empty {}),
            ReadProgress::CardDetected => EventBody::IdCardMediaDetected(Empty {}),
        }
    }
}

/// A reader of identity cards. The SAM serial protocol is one implementation; readers with a
/// vendor protocol or USB-HID framing would be others.
pub trait IdCardReader: Send {
    /// Checks the security module and reads its id.
    fn self_test(&mut self) -> Result<ReaderInfo, IdCardError>;

    /// Resets the reader to its power-on state.
    fn reset(&mut self) -> Result<(), IdCardError>;

    /// Waits up to `options.wait` for a card and reads it. After a successful read the card
    /// must leave the field before another read returns a card.
    fn read_card(
        &mut self,
        options: &ReadOptions,
        progress: &mut dyn FnMut(ReadProgress),
    ) -> Result<CardRead, IdCardError>;
}

/// The SAM commands, for error messages and statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SamCommand {
    Reset,
    Status,
    ReadSamId,
    FindCard,
    SelectCard,
    ReadCard,
    ReadCardWithFingerprint,
}

impl SamCommand {
    /// CMD and PARA bytes.
    pub fn code(self) -> (u8, u8) {
        match self {
            SamCommand::Reset => (0x10, 0xFF),
            SamCommand::Status => (0x11, 0xFF),
            SamCommand::ReadSamId => (0x12, 0xFF),
            SamCommand::FindCard => (0x20, 0x01),
            SamCommand::SelectCard => (0x20, 0x02),
            SamCommand::ReadCard => (0x30, 0x01),
            SamCommand::ReadCardWithFingerprint => (0x30, 0x10),
        }
    }

    pub fn from_code(cmd: u8, para: u8) -> Option<SamCommand> {
        [
            SamCommand::Reset,
            SamCommand::Status,
            SamCommand::ReadSamId,
            SamCommand::FindCard,
            SamCommand::SelectCard,
            SamCommand::ReadCard,
            SamCommand::ReadCardWithFingerprint,
        ]
        .into_iter()
        .find(|c| c.code() == (cmd, para))
    }
}

impl std::fmt::Display for SamCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (cmd, para) = self.code();
        write!(f, "{self:?} ({cmd:02X} {para:02X})")
    }
}

/// Everything that can go wrong with a reader. `Display` is "中文 / English"; no variant
/// carries personal data.
#[derive(Debug, thiserror::Error)]
pub enum IdCardError {
    #[error("{} / {}: {path}: {source}", self.zh(), self.en())]
    Open {
        path: String,
        #[source]
        source: serialport::Error,
    },
    #[error("{} / {}: {source}", self.zh(), self.en())]
    Io {
        #[source]
        source: std::io::Error,
    },
    #[error("{} / {} ({command}, {timeout_ms} ms)", self.zh(), self.en())]
    Timeout {
        command: SamCommand,
        timeout_ms: u64,
    },
    #[error("{} / {} ({command}): {source}", self.zh(), self.en())]
    CorruptReply {
        command: SamCommand,
        #[source]
        source: frame::FrameError,
    },
    #[error("{} / {} ({command}): {reason}", self.zh(), self.en())]
    UnexpectedReply {
        command: SamCommand,
        reason: &'static str,
    },
    #[error("{status} ({command})")]
    Sam {
        command: SamCommand,
        status: status::Sw3,
    },
    #[error("{} / {}", self.zh(), self.en())]
    NoCard,
    #[error("{} / {}", self.zh(), self.en())]
    CardNotRemoved,
    #[error("{} / {}: {source}", self.zh(), self.en())]
    CardData {
        #[source]
        source: text::TextError,
    },
    #[error("{} / {}", self.zh(), self.en())]
    Canceled,
}

impl IdCardError {
    /// The Chinese text, for clerks and residents.
    pub fn zh(&self) -> &'static str {
        match self {
            IdCardError::Open { .. } => "无法打开阅读器串口",
            IdCardError::Io { .. } => "阅读器串口读写失败",
            IdCardError::Timeout { .. } => "阅读器无应答",
            IdCardError::CorruptReply { .. } => "阅读器应答数据损坏",
            IdCardError::UnexpectedReply { .. } => "阅读器应答格式不符",
            IdCardError::Sam { status, .. } => status.zh(),
            IdCardError::NoCard => "未检测到证件，请将证件放在阅读区",
            IdCardError::CardNotRemoved => "请先取走上一张证件",
            IdCardError::CardData { .. } => "证件信息无法识别",
            IdCardError::Canceled => "读卡已取消",
        }
    }

    /// The English text, for maintainers.
    pub fn en(&self) -> &'static str {
        match self {
            IdCardError::Open { .. } => "cannot open the reader's serial port",
            IdCardError::Io { .. } => "serial I/O with the reader failed",
            IdCardError::Timeout { .. } => "no reply from the reader",
            IdCardError::CorruptReply { .. } => "corrupt reply from the reader",
            IdCardError::UnexpectedReply { .. } => "unexpected reply layout",
            IdCardError::Sam { status, .. } => status.en(),
            IdCardError::NoCard => "no card was placed on the reader",
            IdCardError::CardNotRemoved => "the previous card was not lifted off the reader",
            IdCardError::CardData { .. } => "the card data did not parse",
            IdCardError::Canceled => "the read was canceled",
        }
    }

    /// For the device command completion.
    pub fn description(&self) -> ErrorDescription {
        ErrorDescription {
            zh: self.zh().to_string(),
            en: self.to_string(),
        }
    }

    pub fn completion_code(&self) -> CompletionCode {
        match self {
            IdCardError::Open { .. } => CompletionCode::DeviceNotReady,
            IdCardError::Io { .. }
            | IdCardError::Timeout { .. }
            | IdCardError::CorruptReply { .. }
            | IdCardError::UnexpectedReply { .. } => CompletionCode::HardwareError,
            IdCardError::Sam { status, .. } => match status {
                status::Sw3::SamSelfTestFailed | status::Sw3::SamNotAuthorised => {
                    CompletionCode::HardwareError
                }
                _ => CompletionCode::CommandErrorCode,
            },
            IdCardError::NoCard => CompletionCode::Timeout,
            IdCardError::CardNotRemoved | IdCardError::CardData { .. } => {
                CompletionCode::CommandErrorCode
            }
            IdCardError::Canceled => CompletionCode::Canceled,
        }
    }

    pub fn error_code(&self) -> Option<DeviceErrorCode> {
        match self {
            IdCardError::Open { .. } | IdCardError::Canceled => None,
            IdCardError::Io { .. }
            | IdCardError::Timeout { .. }
            | IdCardError::CorruptReply { .. }
            | IdCardError::UnexpectedReply { .. } => Some(DeviceErrorCode::LinkError),
            IdCardError::Sam { status, .. } => Some(match status {
                status::Sw3::SamSelfTestFailed | status::Sw3::SamNotAuthorised => {
                    DeviceErrorCode::SamFault
                }
                status::Sw3::UnknownCardType => DeviceErrorCode::UnsupportedCardType,
                _ => DeviceErrorCode::CardReadFailed,
            }),
            IdCardError::NoCard => Some(DeviceErrorCode::NoCard),
            IdCardError::CardNotRemoved => Some(DeviceErrorCode::CardNotRemoved),
            IdCardError::CardData {
                source: text::TextError::UnsupportedCardType(_),
            } => Some(DeviceErrorCode::UnsupportedCardType),
            IdCardError::CardData { .. } => Some(DeviceErrorCode::InvalidCardData),
        }
    }
}
