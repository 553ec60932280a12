//! Device command envelope between the clerk console (through the relay) and a kiosk's devices.
//!
//! It follows the XFS4IoT pattern (CEN/TS 17852; `reference/peripherals.md` §2): the client sends
//! a [`DeviceCommand`] with a request id it chose and a timeout; the kiosk answers with one
//! [`Acknowledge`] (accepted, or why not), then any number of [`DeviceEvent`]s, then exactly one
//! [`Completion`] carrying a [`CompletionCode`]. [`Cancel`] asks the kiosk to end pending
//! commands; each cancelled command still completes, with `canceled`. Unsolicited messages
//! (status changes) carry no request id.
//!
//! About 730 lines before its golden tests: one file per wire contract, so every command, its
//! events and its completion body are read (and reviewed against XFS4IoT) in one place.
//!
//! Names on the wire are XFS4IoT's `Interface.Command` names (`"IdCard.Read"`, `"Common.Status"`);
//! codes and statuses are XFS4IoT's vocabulary spelt in snake_case like the rest of our protocol
//! (`timeOut` → `timeout`, `invalidRequestID` → `invalid_request_id`).
//!
//! Unknown-field policy: unknown fields are ignored (a newer peer may add optional fields); an
//! unknown command name fails the typed parse — the receiver then parses [`CommandHeader`],
//! which accepts any name, and completes with `unsupported_command`.
//!
//! Data only: no I/O, no timers. Everything read from an identity document is wrapped in
//! [`Pii`], so a logged message shows `{REDACTED}`. Binary results (the ID photo, document
//! images) are never in these messages: the agent uploads them over HTTPS and refers to them
//! by upload id.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Pii;
pub use crate::idcard::{
    CardDate, ForeignResidentCard, Gender, IdCard, Nation, PermitCard, ResidentCard, ValidUntil,
};

/// Client-chosen id correlating command → acknowledge → events → completion. Must be non-zero
/// and unique among the sender's pending commands (else `invalid_request_id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RequestId(pub u64);

/// The kinds of kiosk device the clerk can operate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    Camera,
    /// 高拍仪
    DocumentCamera,
    Microphone,
    Speaker,
    /// 身份证阅读器
    IdCardReader,
    /// 二维码/条码扫描器
    QrScanner,
    /// The kiosk's own screen, for prompts to the resident.
    Screen,
}

impl DeviceKind {
    /// The kinds with hardware behind them (and so a device profile): all but the screen.
    pub const HARDWARE: [DeviceKind; 6] = [
        DeviceKind::Camera,
        DeviceKind::DocumentCamera,
        DeviceKind::Microphone,
        DeviceKind::Speaker,
        DeviceKind::IdCardReader,
        DeviceKind::QrScanner,
    ];

    pub const ALL: [DeviceKind; 7] = [
        DeviceKind::Camera,
        DeviceKind::DocumentCamera,
        DeviceKind::Microphone,
        DeviceKind::Speaker,
        DeviceKind::IdCardReader,
        DeviceKind::QrScanner,
        DeviceKind::Screen,
    ];

    /// The snake_case wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceKind::Camera => "camera",
            DeviceKind::DocumentCamera => "document_camera",
            DeviceKind::Microphone => "microphone",
            DeviceKind::Speaker => "speaker",
            DeviceKind::IdCardReader => "id_card_reader",
            DeviceKind::QrScanner => "qr_scanner",
            DeviceKind::Screen => "screen",
        }
    }
}

impl fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Messages from the clerk console (via the relay) to a kiosk's devices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToDevice {
    Command(DeviceCommand),
    Cancel(Cancel),
}

/// Messages from a kiosk's devices back to the clerk console (via the relay).
// A completion carrying a card is larger than an acknowledge; messages are short-lived and
// passed by value once, so boxing would only add noise at every construction site.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FromDevice {
    Acknowledge(Acknowledge),
    Event(DeviceEvent),
    Completion(Completion),
    Unsolicited(Unsolicited),
}

/// A command for one device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceCommand {
    pub request_id: RequestId,
    pub device: DeviceKind,
    /// Milliseconds the kiosk may take before completing with `timeout`; 0 = no timeout, but
    /// still cancellable (XFS4IoT semantics). The kiosk caps it at its own maximum.
    pub timeout_ms: u32,
    #[serde(flatten)]
    pub body: CommandBody,
}

/// Command name and its payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", content = "payload")]
pub enum CommandBody {
    /// Report the device's status.
    #[serde(rename = "Common.Status")]
    Status(Empty),
    /// Return the device to a known state (XFS4IoT `*.Reset`).
    #[serde(rename = "Common.Reset")]
    Reset(Empty),
    /// Wait for an ID card on the reader and read it.
    #[serde(rename = "IdCard.Read")]
    IdCardRead(IdCardReadParams),
    /// Wait for one QR/barcode scan.
    #[serde(rename = "Scanner.Read")]
    ScannerRead(Empty),
    /// Capture a full-resolution still with the document camera (高拍仪) and upload it.
    #[serde(rename = "DocumentCamera.Capture")]
    DocumentCameraCapture(CaptureParams),
    /// Take a still of the resident with the kiosk camera (identity record) and upload it.
    #[serde(rename = "Camera.Snapshot")]
    CameraSnapshot(Empty),
    /// Show a message or a confirm/cancel question on the kiosk screen.
    #[serde(rename = "Screen.Prompt")]
    ScreenPrompt(PromptParams),
}

impl CommandBody {
    /// The wire name, e.g. `"IdCard.Read"`.
    pub fn name(&self) -> &'static str {
        match self {
            CommandBody::Status(_) => "Common.Status",
            CommandBody::Reset(_) => "Common.Reset",
            CommandBody::IdCardRead(_) => "IdCard.Read",
            CommandBody::ScannerRead(_) => "Scanner.Read",
            CommandBody::DocumentCameraCapture(_) => "DocumentCamera.Capture",
            CommandBody::CameraSnapshot(_) => "Camera.Snapshot",
            CommandBody::ScreenPrompt(_) => "Screen.Prompt",
        }
    }
}

/// An empty payload, `{}` on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Empty {}

/// The parts of a command any receiver can read, whatever its name: used to answer a command
/// whose name or payload this build does not understand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandHeader {
    pub request_id: RequestId,
    pub device: DeviceKind,
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct IdCardReadParams {
    /// Also ask the card for its fingerprint file. The kiosk discards the fingerprint bytes as
    /// soon as they arrive (biometric data is never kept or sent); asking only proves the card
    /// carries one.
    #[serde(default)]
    pub with_fingerprint_check: bool,
}

/// Colour mode of a still.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColourMode {
    #[default]
    Colour,
    /// 8-bit greyscale.
    Grey,
}

/// Width × height in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ImageSize {
    pub width: u32,
    pub height: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CaptureParams {
    #[serde(default)]
    pub colour: ColourMode,
    /// One of the resolutions the device reports (`Common.Status`); `None` = its largest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<ImageSize>,
}

/// What the resident is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromptKind {
    /// A message the resident acknowledges (知道了).
    #[default]
    Message,
    /// A question answered with confirm (确认) or cancel (取消).
    Confirm,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptParams {
    #[serde(default)]
    pub kind: PromptKind,
    /// The text shown; not personal information by policy (the clerk writes it for the screen).
    pub text: String,
}

/// Cancel pending commands; an empty list cancels every pending command of the sender.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cancel {
    #[serde(default)]
    pub request_ids: Vec<RequestId>,
}

/// The kiosk's first answer to a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acknowledge {
    pub request_id: RequestId,
    pub status: AckStatus,
}

/// XFS4IoT acknowledge status (`null` there is `accepted` here).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AckStatus {
    /// Queued or executing; events and a completion follow.
    Accepted,
    /// The message could not be parsed at all.
    InvalidMessage,
    /// Zero, or the id of a command still pending.
    InvalidRequestId,
    /// The device's command queue is full.
    TooManyRequests,
}

/// An intermediate event of a pending command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceEvent {
    pub request_id: RequestId,
    pub device: DeviceKind,
    #[serde(flatten)]
    pub body: EventBody,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", content = "payload")]
pub enum EventBody {
    /// The reader is waiting for a card: the kiosk prompts the resident to place it.
    #[serde(rename = "IdCard.InsertCardEvent")]
    IdCardInsertCard(Empty),
    /// A card was found in the field and is being read: the resident must not move it.
    #[serde(rename = "IdCard.MediaDetectedEvent")]
    IdCardMediaDetected(Empty),
    /// The previous card is still on the reader; it must be lifted before the next read.
    #[serde(rename = "IdCard.RemoveCardEvent")]
    IdCardRemoveCard(Empty),
    /// The kiosk asks the resident to place the material under the document camera.
    #[serde(rename = "DocumentCamera.PlaceDocumentEvent")]
    DocumentCameraPlaceDocument(Empty),
    /// The still was taken and is being uploaded.
    #[serde(rename = "Common.CapturedEvent")]
    Captured(ImageSize),
    /// The prompt is on the kiosk screen.
    #[serde(rename = "Screen.PromptShownEvent")]
    PromptShown(Empty),
}

/// The last message of a command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Completion {
    pub request_id: RequestId,
    pub device: DeviceKind,
    pub completion_code: CompletionCode,
    /// Device-specific reason when `completion_code` is `command_error_code`, and as detail for
    /// other failures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<DeviceErrorCode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_description: Option<ErrorDescription>,
    #[serde(flatten)]
    pub body: CompletionBody,
}

impl Completion {
    /// A completion without payload that ends `command` with `code`, e.g. when the relay must
    /// answer for a kiosk that is not connected or did not answer in time.
    pub fn failed(command: &DeviceCommand, code: CompletionCode, zh: &str, en: &str) -> Self {
        Self {
            request_id: command.request_id,
            device: command.device,
            completion_code: code,
            error_code: None,
            error_description: Some(ErrorDescription {
                zh: zh.to_owned(),
                en: en.to_owned(),
            }),
            body: CompletionBody::empty_for(&command.body),
        }
    }
}

impl CompletionBody {
    /// The payload-less completion body matching a command.
    pub fn empty_for(command: &CommandBody) -> Self {
        match command {
            CommandBody::Status(_) => CompletionBody::Status(None),
            CommandBody::Reset(_) => CompletionBody::Reset(None),
            CommandBody::IdCardRead(_) => CompletionBody::IdCardRead(None),
            CommandBody::ScannerRead(_) => CompletionBody::ScannerRead(None),
            CommandBody::DocumentCameraCapture(_) => CompletionBody::DocumentCameraCapture(None),
            CommandBody::CameraSnapshot(_) => CompletionBody::CameraSnapshot(None),
            CommandBody::ScreenPrompt(_) => CompletionBody::ScreenPrompt(None),
        }
    }
}

/// Name and payload of a completion: the payload is present on success only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", content = "payload")]
pub enum CompletionBody {
    #[serde(rename = "Common.Status")]
    Status(Option<StatusReport>),
    #[serde(rename = "Common.Reset")]
    Reset(Option<Empty>),
    #[serde(rename = "IdCard.Read")]
    IdCardRead(Option<IdCardReadResult>),
    #[serde(rename = "Scanner.Read")]
    ScannerRead(Option<ScanResult>),
    #[serde(rename = "DocumentCamera.Capture")]
    DocumentCameraCapture(Option<ImageResult>),
    #[serde(rename = "Camera.Snapshot")]
    CameraSnapshot(Option<ImageResult>),
    #[serde(rename = "Screen.Prompt")]
    ScreenPrompt(Option<PromptResult>),
    /// Completion of a command this build did not understand (`unsupported_command`); carries
    /// the name as received.
    #[serde(rename = "Common.Unsupported")]
    Unsupported(UnsupportedCommand),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnsupportedCommand {
    pub name: String,
}

/// XFS4IoT completion codes in snake_case. The ones that need a device-specific reason use
/// `command_error_code` plus [`DeviceErrorCode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CompletionCode {
    Success,
    CommandErrorCode,
    Canceled,
    DeviceNotReady,
    HardwareError,
    InternalError,
    InvalidCommand,
    InvalidRequestId,
    Timeout,
    UnsupportedCommand,
    InvalidData,
    UserError,
    UnsupportedData,
    SequenceError,
    /// Not an XFS4IoT completion code (XFS4IoT reports busy through status); we complete with
    /// it when a device that serves one command at a time is already serving another.
    DeviceBusy,
}

/// Device-specific failure reasons, for `command_error_code` and as detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceErrorCode {
    /// No card was placed before the timeout.
    NoCard,
    /// The previous card was not lifted off the reader.
    CardNotRemoved,
    /// The card was found but could not be read (move it away and place it again).
    CardReadFailed,
    /// The reader's security module (SAM) failed its self-test or is not authorised.
    SamFault,
    /// The card's data did not parse (bad field, bad check digit).
    InvalidCardData,
    /// The card is of a type this build does not read.
    UnsupportedCardType,
    /// The serial link to the device failed (timeouts, corrupt frames).
    LinkError,
    /// A scan was longer than the configured limit.
    ScanTooLong,
    /// The kiosk has no such device configured.
    NoDevice,
    /// The camera could not deliver a still.
    CaptureFailed,
    /// The still could not be uploaded to the relay.
    UploadFailed,
}

/// Error text for people: Chinese first (clerks and residents), English for maintainers.
/// Never contains personal information.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDescription {
    pub zh: String,
    pub en: String,
}

/// XFS4IoT `common.device` status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceStatus {
    Online,
    Offline,
    PowerOff,
    NoDevice,
    HardwareError,
    UserError,
    DeviceBusy,
    Starting,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReport {
    pub device: DeviceStatus,
    /// Model and firmware facts for the registry (e.g. the SAM id), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<String>,
    /// Still resolutions a camera offers, largest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resolutions: Vec<ImageSize>,
}

/// Messages without a request id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", content = "payload")]
pub enum Unsolicited {
    /// XFS4IoT `Common.StatusChangedEvent`.
    #[serde(rename = "Common.StatusChangedEvent")]
    StatusChanged(StatusChanged),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusChanged {
    pub device: DeviceKind,
    pub status: DeviceStatus,
}

/// An image the kiosk uploaded to the relay (`DocumentCamera.Capture`, `Camera.Snapshot`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageResult {
    /// The relay's id of the stored object (the case item).
    pub upload_id: String,
    pub bytes: u64,
    pub width: u32,
    pub height: u32,
    /// Lower-case hex SHA-256 of the JPEG, as verified by the relay.
    pub sha256: String,
    pub mime: String,
}

/// The resident's answer to `Screen.Prompt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromptAnswer {
    /// A message was acknowledged (知道了).
    Acknowledged,
    Confirmed,
    Cancelled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptResult {
    pub answer: PromptAnswer,
}

/// Result of `IdCard.Read`. The kiosk sends `card`; the relay stores it encrypted in the case
/// and gives the console `view` (masked) instead, never `card`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdCardReadResult {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card: Option<IdCard>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub view: Option<crate::card_view::CardView>,
    /// The card photo (WLT-compressed, 1024 bytes) as uploaded over HTTPS; `None` until the
    /// upload finished or when uploads are off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub photo_upload_id: Option<String>,
    /// Whether the card carries a fingerprint file (only when asked; the bytes are discarded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub has_fingerprint: Option<bool>,
}

/// Result of `Scanner.Read`: the scanned content, byte-exact and as text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanResult {
    /// The content as text (decoded per `encoding`).
    pub text: Pii<String>,
    /// How `text` was obtained from the bytes.
    pub encoding: ScanEncoding,
    /// The exact bytes, hex-encoded, when `encoding` is `lossy` (text alone would lose data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_hex: Option<Pii<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScanEncoding {
    Utf8,
    Gb18030,
    /// Neither UTF-8 nor GB18030: invalid sequences replaced by U+FFFD.
    Lossy,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Serialises `value`, compares with the golden text, and parses the text back.
    fn golden<T>(value: &T, json: &str)
    where
        T: Serialize + for<'de> Deserialize<'de> + PartialEq + fmt::Debug,
    {
        let text = serde_json::to_string(value).expect("serialises");
        assert_eq!(text, json);
        let back: T = serde_json::from_str(json).expect("parses");
        assert_eq!(&back, value);
    }

    fn date(y: u16, m: u8, d: u8) -> CardDate {
        CardDate::new(y, m, d).expect("valid date")
    }

    #[test]
    fn command_id_card_read() {
        golden(
            &ToDevice::Command(DeviceCommand {
                request_id: RequestId(7),
                device: DeviceKind::IdCardReader,
                timeout_ms: 30000,
                body: CommandBody::IdCardRead(IdCardReadParams {
                    with_fingerprint_check: false,
                }),
            }),
            r#"{"type":"command","request_id":7,"device":"id_card_reader","timeout_ms":30000,"name":"IdCard.Read","payload":{"with_fingerprint_check":false}}"#,
        );
    }

    #[test]
    fn command_status_reset_scanner() {
        golden(
            &ToDevice::Command(DeviceCommand {
                request_id: RequestId(1),
                device: DeviceKind::Camera,
                timeout_ms: 0,
                body: CommandBody::Status(Empty {}),
            }),
            r#"{"type":"command","request_id":1,"device":"camera","timeout_ms":0,"name":"Common.Status","payload":{}}"#,
        );
        golden(
            &ToDevice::Command(DeviceCommand {
                request_id: RequestId(2),
                device: DeviceKind::IdCardReader,
                timeout_ms: 5000,
                body: CommandBody::Reset(Empty {}),
            }),
            r#"{"type":"command","request_id":2,"device":"id_card_reader","timeout_ms":5000,"name":"Common.Reset","payload":{}}"#,
        );
        golden(
            &ToDevice::Command(DeviceCommand {
                request_id: RequestId(3),
                device: DeviceKind::QrScanner,
                timeout_ms: 60000,
                body: CommandBody::ScannerRead(Empty {}),
            }),
            r#"{"type":"command","request_id":3,"device":"qr_scanner","timeout_ms":60000,"name":"Scanner.Read","payload":{}}"#,
        );
    }

    #[test]
    fn fingerprint_flag_defaults_to_false_and_unknown_fields_are_ignored() {
        let c: ToDevice = serde_json::from_str(
            r#"{"type":"command","request_id":9,"device":"id_card_reader","timeout_ms":1,"name":"IdCard.Read","payload":{},"future":1}"#,
        )
        .expect("parses");
        let ToDevice::Command(c) = c else {
            panic!("not a command")
        };
        assert_eq!(c.body, CommandBody::IdCardRead(IdCardReadParams::default()));
        assert_eq!(c.body.name(), "IdCard.Read");
    }

    #[test]
    fn unknown_command_name_falls_back_to_the_header() {
        let json = r#"{"type":"command","request_id":5,"device":"document_camera","timeout_ms":1000,"name":"DocumentCamera.Fly","payload":{}}"#;
        assert!(serde_json::from_str::<ToDevice>(json).is_err());
        let header: CommandHeader = serde_json::from_str(json).expect("header parses");
        assert_eq!(
            header,
            CommandHeader {
                request_id: RequestId(5),
                device: DeviceKind::DocumentCamera,
                name: "DocumentCamera.Fly".into()
            }
        );
        golden(
            &FromDevice::Completion(Completion {
                request_id: RequestId(5),
                device: DeviceKind::DocumentCamera,
                completion_code: CompletionCode::UnsupportedCommand,
                error_code: None,
                error_description: None,
                body: CompletionBody::Unsupported(UnsupportedCommand { name: header.name }),
            }),
            r#"{"type":"completion","request_id":5,"device":"document_camera","completion_code":"unsupported_command","name":"Common.Unsupported","payload":{"name":"DocumentCamera.Fly"}}"#,
        );
    }

    #[test]
    fn capture_snapshot_and_prompt() {
        golden(
            &ToDevice::Command(DeviceCommand {
                request_id: RequestId(4),
                device: DeviceKind::DocumentCamera,
                timeout_ms: 30000,
                body: CommandBody::DocumentCameraCapture(CaptureParams {
                    colour: ColourMode::Grey,
                    resolution: Some(ImageSize {
                        width: 3264,
                        height: 2448,
                    }),
                }),
            }),
            r#"{"type":"command","request_id":4,"device":"document_camera","timeout_ms":30000,"name":"DocumentCamera.Capture","payload":{"colour":"grey","resolution":{"width":3264,"height":2448}}}"#,
        );
        let defaults: ToDevice = serde_json::from_str(
            r#"{"type":"command","request_id":4,"device":"document_camera","timeout_ms":1,"name":"DocumentCamera.Capture","payload":{}}"#,
        )
        .expect("parses");
        let ToDevice::Command(c) = defaults else {
            panic!("not a command")
        };
        assert_eq!(
            c.body,
            CommandBody::DocumentCameraCapture(CaptureParams::default())
        );
        golden(
            &ToDevice::Command(DeviceCommand {
                request_id: RequestId(5),
                device: DeviceKind::Screen,
                timeout_ms: 60000,
                body: CommandBody::ScreenPrompt(PromptParams {
                    kind: PromptKind::Confirm,
                    text: "是否同意？".into(),
                }),
            }),
            r#"{"type":"command","request_id":5,"device":"screen","timeout_ms":60000,"name":"Screen.Prompt","payload":{"kind":"confirm","text":"是否同意？"}}"#,
        );
        golden(
            &FromDevice::Completion(Completion {
                request_id: RequestId(4),
                device: DeviceKind::DocumentCamera,
                completion_code: CompletionCode::Success,
                error_code: None,
                error_description: None,
                body: CompletionBody::DocumentCameraCapture(Some(ImageResult {
                    upload_id: "u1".into(),
                    bytes: 3,
                    width: 2,
                    height: 1,
                    sha256: "ab".into(),
                    mime: "image/jpeg".into(),
                })),
            }),
            r#"{"type":"completion","request_id":4,"device":"document_camera","completion_code":"success","name":"DocumentCamera.Capture","payload":{"upload_id":"u1","bytes":3,"width":2,"height":1,"sha256":"ab","mime":"image/jpeg"}}"#,
        );
        golden(
            &FromDevice::Completion(Completion {
                request_id: RequestId(5),
                device: DeviceKind::Screen,
                completion_code: CompletionCode::Success,
                error_code: None,
                error_description: None,
                body: CompletionBody::ScreenPrompt(Some(PromptResult {
                    answer: PromptAnswer::Confirmed,
                })),
            }),
            r#"{"type":"completion","request_id":5,"device":"screen","completion_code":"success","name":"Screen.Prompt","payload":{"answer":"confirmed"}}"#,
        );
        golden(
            &FromDevice::Event(DeviceEvent {
                request_id: RequestId(4),
                device: DeviceKind::DocumentCamera,
                body: EventBody::Captured(ImageSize {
                    width: 3264,
                    height: 2448,
                }),
            }),
            r#"{"type":"event","request_id":4,"device":"document_camera","name":"Common.CapturedEvent","payload":{"width":3264,"height":2448}}"#,
        );
    }

    #[test]
    fn cancel() {
        golden(
            &ToDevice::Cancel(Cancel {
                request_ids: vec![RequestId(7), RequestId(8)],
            }),
            r#"{"type":"cancel","request_ids":[7,8]}"#,
        );
        let all: ToDevice = serde_json::from_str(r#"{"type":"cancel"}"#).expect("parses");
        assert_eq!(
            all,
            ToDevice::Cancel(Cancel {
                request_ids: vec![]
            })
        );
    }

    #[test]
    fn acknowledge() {
        golden(
            &FromDevice::Acknowledge(Acknowledge {
                request_id: RequestId(7),
                status: AckStatus::Accepted,
            }),
            r#"{"type":"acknowledge","request_id":7,"status":"accepted"}"#,
        );
        golden(
            &FromDevice::Acknowledge(Acknowledge {
                request_id: RequestId(7),
                status: AckStatus::InvalidRequestId,
            }),
            r#"{"type":"acknowledge","request_id":7,"status":"invalid_request_id"}"#,
        );
        golden(
            &FromDevice::Acknowledge(Acknowledge {
                request_id: RequestId(8),
                status: AckStatus::TooManyRequests,
            }),
            r#"{"type":"acknowledge","request_id":8,"status":"too_many_requests"}"#,
        );
    }

    #[test]
    fn events() {
        golden(
            &FromDevice::Event(DeviceEvent {
                request_id: RequestId(7),
                device: DeviceKind::IdCardReader,
                body: EventBody::IdCardInsertCard(Empty {}),
            }),
            r#"{"type":"event","request_id":7,"device":"id_card_reader","name":"IdCard.InsertCardEvent","payload":{}}"#,
        );
        golden(
            &FromDevice::Event(DeviceEvent {
                request_id: RequestId(7),
                device: DeviceKind::IdCardReader,
                body: EventBody::IdCardMediaDetected(Empty {}),
            }),
            r#"{"type":"event","request_id":7,"device":"id_card_reader","name":"IdCard.MediaDetectedEvent","payload":{}}"#,
        );
        golden(
            &FromDevice::Event(DeviceEvent {
                request_id: RequestId(7),
                device: DeviceKind::IdCardReader,
                body: EventBody::IdCardRemoveCard(Empty {}),
            }),
            r#"{"type":"event","request_id":7,"device":"id_card_reader","name":"IdCard.RemoveCardEvent","payload":{}}"#,
        );
    }

    fn resident() -> IdCard {
        IdCard::Resident(ResidentCard {
            name: Pii::new("张三".into()),
            gender: Pii::new(Gender::Male),
            nation: Pii::new(Nation {
                code: 1,
                name: "汉".into(),
            }),
            birth_date: Pii::new(date(1990, 1, 1)),
            address: Pii::new("上海市示例区示例路1号".into()),
            id_number: Pii::new("11010519491231002X".into()),
            issuing_authority: Pii::new("上海市公安局示例分局".into()),
            valid_from: Pii::new(date(2020, 1, 1)),
            valid_until: Pii::new(ValidUntil::LongTerm),
        })
    }

    #[test]
    fn completion_id_card_read_success() {
        golden(
            &FromDevice::Completion(Completion {
                request_id: RequestId(7),
                device: DeviceKind::IdCardReader,
                completion_code: CompletionCode::Success,
                error_code: None,
                error_description: None,
                body: CompletionBody::IdCardRead(Some(IdCardReadResult {
                    card: Some(resident()),
                    view: None,
                    photo_upload_id: Some("up-1".into()),
                    has_fingerprint: None,
                })),
            }),
            concat!(
                r#"{"type":"completion","request_id":7,"device":"id_card_reader","completion_code":"success","name":"IdCard.Read","payload":{"card":{"card_type":"resident","#,
                r#""name":"张三","gender":"male","nation":{"code":1,"name":"汉"},"birth_date":"1990-01-01","address":"上海市示例区示例路1号","#,
                r#""id_number":"11010519491231002X","issuing_authority":"上海市公安局示例分局","valid_from":"2020-01-01","valid_until":"long_term"},"#,
                r#""photo_upload_id":"up-1"}}"#
            ),
        );
    }

    #[test]
    fn completion_failure_has_codes_and_bilingual_text_and_null_payload() {
        golden(
            &FromDevice::Completion(Completion {
                request_id: RequestId(7),
                device: DeviceKind::IdCardReader,
                completion_code: CompletionCode::CommandErrorCode,
                error_code: Some(DeviceErrorCode::CardNotRemoved),
                error_description: Some(ErrorDescription {
                    zh: "请取走身份证后再放置".into(),
                    en: "lift the card off the reader first".into(),
                }),
                body: CompletionBody::IdCardRead(None),
            }),
            r#"{"type":"completion","request_id":7,"device":"id_card_reader","completion_code":"command_error_code","error_code":"card_not_removed","error_description":{"zh":"请取走身份证后再放置","en":"lift the card off the reader first"},"name":"IdCard.Read","payload":null}"#,
        );
        golden(
            &FromDevice::Completion(Completion {
                request_id: RequestId(8),
                device: DeviceKind::IdCardReader,
                completion_code: CompletionCode::Timeout,
                error_code: None,
                error_description: None,
                body: CompletionBody::Reset(None),
            }),
            r#"{"type":"completion","request_id":8,"device":"id_card_reader","completion_code":"timeout","name":"Common.Reset","payload":null}"#,
        );
    }

    #[test]
    fn every_completion_code_and_status_has_a_snake_case_name() {
        let codes = [
            (CompletionCode::Success, "success"),
            (CompletionCode::CommandErrorCode, "command_error_code"),
            (CompletionCode::Canceled, "canceled"),
            (CompletionCode::DeviceNotReady, "device_not_ready"),
            (CompletionCode::HardwareError, "hardware_error"),
            (CompletionCode::InternalError, "internal_error"),
            (CompletionCode::InvalidCommand, "invalid_command"),
            (CompletionCode::InvalidRequestId, "invalid_request_id"),
            (CompletionCode::Timeout, "timeout"),
            (CompletionCode::UnsupportedCommand, "unsupported_command"),
            (CompletionCode::InvalidData, "invalid_data"),
            (CompletionCode::UserError, "user_error"),
            (CompletionCode::UnsupportedData, "unsupported_data"),
            (CompletionCode::SequenceError, "sequence_error"),
            (CompletionCode::DeviceBusy, "device_busy"),
        ];
        for (code, name) in codes {
            golden(&code, &format!("\"{name}\""));
        }
        let statuses = [
            (DeviceStatus::Online, "online"),
            (DeviceStatus::Offline, "offline"),
            (DeviceStatus::PowerOff, "power_off"),
            (DeviceStatus::NoDevice, "no_device"),
            (DeviceStatus::HardwareError, "hardware_error"),
            (DeviceStatus::UserError, "user_error"),
            (DeviceStatus::DeviceBusy, "device_busy"),
            (DeviceStatus::Starting, "starting"),
        ];
        for (status, name) in statuses {
            golden(&status, &format!("\"{name}\""));
        }
        for kind in DeviceKind::ALL {
            golden(&kind, &format!("\"{}\"", kind.as_str()));
        }
    }

    #[test]
    fn completion_status_and_scan() {
        golden(
            &FromDevice::Completion(Completion {
                request_id: RequestId(1),
                device: DeviceKind::IdCardReader,
                completion_code: CompletionCode::Success,
                error_code: None,
                error_description: None,
                body: CompletionBody::Status(Some(StatusReport {
                    device: DeviceStatus::Online,
                    model: Some("sam-serial".into()),
                    serial_number: Some("05.01-20101231-0000012345-0123456789".into()),
                    resolutions: vec![],
                })),
            }),
            r#"{"type":"completion","request_id":1,"device":"id_card_reader","completion_code":"success","name":"Common.Status","payload":{"device":"online","model":"sam-serial","serial_number":"05.01-20101231-0000012345-0123456789"}}"#,
        );
        golden(
            &FromDevice::Completion(Completion {
                request_id: RequestId(3),
                device: DeviceKind::QrScanner,
                completion_code: CompletionCode::Success,
                error_code: None,
                error_description: None,
                body: CompletionBody::ScannerRead(Some(ScanResult {
                    text: Pii::new("https://example.invalid/q?a=1".into()),
                    encoding: ScanEncoding::Utf8,
                    raw_hex: None,
                })),
            }),
            r#"{"type":"completion","request_id":3,"device":"qr_scanner","completion_code":"success","name":"Scanner.Read","payload":{"text":"https://example.invalid/q?a=1","encoding":"utf8"}}"#,
        );
    }

    #[test]
    fn unsolicited_status_change() {
        golden(
            &FromDevice::Unsolicited(Unsolicited::StatusChanged(StatusChanged {
                device: DeviceKind::QrScanner,
                status: DeviceStatus::NoDevice,
            })),
            r#"{"type":"unsolicited","name":"Common.StatusChangedEvent","payload":{"device":"qr_scanner","status":"no_device"}}"#,
        );
    }

    #[test]
    fn other_card_types() {
        golden(
            &IdCard::HkMacaoTaiwanPermit(PermitCard {
                name: Pii::new("陈示例".into()),
                gender: Pii::new(Gender::Female),
                birth_date: Pii::new(date(1985, 6, 15)),
                address: Pii::new("上海市示例区".into()),
                id_number: Pii::new("810000198506150000".into()),
                issuing_authority: Pii::new("上海市公安局".into()),
                valid_from: Pii::new(date(2019, 1, 1)),
                valid_until: Pii::new(ValidUntil::Date(date(2024, 1, 1))),
                pass_number: Pii::new("H12345678".into()),
                issue_count: Pii::new(1),
            }),
            r#"{"card_type":"hk_macao_taiwan_permit","name":"陈示例","gender":"female","birth_date":"1985-06-15","address":"上海市示例区","id_number":"810000198506150000","issuing_authority":"上海市公安局","valid_from":"2019-01-01","valid_until":"2024-01-01","pass_number":"H12345678","issue_count":1}"#,
        );
        golden(
            &IdCard::ForeignPermanentResident(ForeignResidentCard {
                english_name: Pii::new("SAMPLE, ALEX".into()),
                chinese_name: Pii::new("".into()),
                gender: Pii::new(Gender::Unspecified),
                card_number: Pii::new("USA310080101234".into()),
                nationality: Pii::new("USA".into()),
                birth_date: Pii::new(date(1980, 8, 1)),
                valid_from: Pii::new(date(2018, 3, 1)),
                valid_until: Pii::new(ValidUntil::Date(date(2028, 3, 1))),
                card_version: Pii::new("01".into()),
                authority_code: Pii::new("3100".into()),
            }),
            r#"{"card_type":"foreign_permanent_resident","english_name":"SAMPLE, ALEX","chinese_name":"","gender":"unspecified","card_number":"USA310080101234","nationality":"USA","birth_date":"1980-08-01","valid_from":"2018-03-01","valid_until":"2028-03-01","card_version":"01","authority_code":"3100"}"#,
        );
    }

    #[test]
    fn personal_fields_do_not_show_in_debug() {
        let text = format!("{:?}", resident());
        assert!(!text.contains("11010519491231002X"), "{text}");
        assert!(!text.contains("张三"), "{text}");
    }

    #[test]
    fn dates_reject_bad_text() {
        for bad in [
            "1990-13-01",
            "1990-00-10",
            "1990-01-32",
            "19900101",
            "199a-01-01",
            "长期",
        ] {
            assert!(bad.parse::<CardDate>().is_err(), "{bad}");
            assert!(
                serde_json::from_str::<ValidUntil>(&format!("\"{bad}\"")).is_err(),
                "{bad}"
            );
        }
    }
}
