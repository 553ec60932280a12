//! Control messages on the WebSocket between the relay and its clients.
//!
//! There is one enum per direction and per client kind: [`KioskToRelay`], [`RelayToKiosk`],
//! [`ClerkToRelay`] and [`RelayToClerk`]. Every message is a JSON object tagged with `"type"`.
//!
//! ## Versioning
//! The first message a client sends is `hello` with the protocol versions it speaks; the relay
//! answers `welcome` with the one it chose, or an `error` with code `unsupported_version` and
//! closes. [`PROTOCOL_VERSION`] is the only version so far.
//!
//! ## Unknown input
//! Within a version, new *fields* may be added: receivers ignore fields they do not know, and
//! every field added later must be optional for the receiver. A message whose `type` is unknown,
//! or that does not parse, is answered with `error` (code `bad_message` or `unknown_type`), is
//! counted, and does not close the connection unless the client keeps sending bad input.
//!
//! ## Requests
//! Client requests carry a client-chosen `request_id`; the relay answers each with exactly one
//! message carrying the same id (a result or an `error`). Pushed updates carry no request id.

use serde::{Deserialize, Serialize};

use crate::device::{Cancel, DeviceCommand, FromDevice, ToDevice};
use crate::queue::{AppointmentSlot, CategoryView, QueueOp, QueueStats, TicketView, WindowView};

/// The control protocol version this build speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// The largest control frame a peer may send, in bytes. Larger frames close the connection.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;

/// Picks the highest version both sides speak.
pub fn negotiate_version(offered: &[u32]) -> Option<u32> {
    offered
        .iter()
        .copied()
        .filter(|v| *v == PROTOCOL_VERSION)
        .max()
}

/// Machine-readable error codes. The accompanying message is for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame was not valid JSON or not a valid message.
    BadMessage,
    /// The `type` is not one this relay knows.
    UnknownType,
    UnsupportedVersion,
    /// `hello` has not been completed, or the credential is wrong.
    Unauthenticated,
    /// Authenticated, but not allowed to do this.
    Forbidden,
    NotFound,
    /// The operation does not fit the current state (e.g. finishing a ticket not being served).
    InvalidState,
    /// A window may not take this ticket (its mode or service categories exclude it).
    NotEligible,
    /// Someone else holds the resource (e.g. another clerk is signed in to the window).
    Conflict,
    /// Nothing to do (e.g. "call next" with an empty queue).
    QueueEmpty,
    /// A limit was reached (rate, size, queue capacity).
    LimitExceeded,
    /// The relay could not complete the request in time.
    Timeout,
    /// Outside the extension point's or the centre's service hours.
    OutOfHours,
    /// No remote window that could serve the category is open now (walk-in tickets are
    /// refused; an on-time appointment is still accepted).
    NoOpenWindow,
    /// Something failed inside the relay; details are in its log, not here.
    Internal,
}

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: ErrorCode,
    /// A short explanation for people, Chinese first (e.g. "当前没有等候的号 / no ticket waiting").
    pub message: String,
}

// ---------------------------------------------------------------------------------------------
// Kiosk ⇄ relay
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[allow(
    clippy::large_enum_variant,
    reason = "a wire message, built once per frame and sent at once; boxing the device \
              message would change every sender for no measurable gain"
)]
pub enum KioskToRelay {
    /// First message: versions, and the device's own credential.
    Hello {
        protocol_versions: Vec<u32>,
        device_id: String,
        secret: String,
        agent_version: String,
    },
    Heartbeat {
        seq: u64,
    },
    /// The resident takes a remote ticket for a service category.
    TakeTicket {
        request_id: u64,
        category_id: String,
    },
    /// The resident gives up the ticket (only this device's own ticket).
    CancelTicket {
        request_id: u64,
        ticket_id: String,
    },
    /// An acknowledge, event or completion of a device command, or an unsolicited device
    /// event. Request ids are the relay's (see [`RelayToKiosk::Device`]).
    Device {
        message: FromDevice,
    },
    /// The kiosk's media offer (the five transceivers of [`crate::media::Slot::ORDER`]), sent
    /// once online and again to restart ICE or reconnect media. Answered by `media_answer`.
    MediaOffer {
        request_id: u64,
        sdp: String,
    },
    /// 好差评: the resident's evaluation of a served ticket, sent from the kiosk's durable
    /// outbox until the relay acknowledges it. `evaluation.evaluation_id` is the idempotency
    /// key: the relay stores one evaluation per id and answers a repeat with the same
    /// `evaluation_stored` (`duplicate: true`). Answered by `evaluation_stored` or `error`.
    Evaluation {
        request_id: u64,
        evaluation: KioskEvaluation,
    },
    /// 预约签到: the resident shows their booking (QR on the scanner, or the last four digits
    /// of the mobile number and the booking code). Answered by `checked_in` (a ticket, with
    /// the appointment when on time) or `error`.
    CheckIn {
        request_id: u64,
        key: CheckInKey,
    },
    /// 预约办理 at the kiosk, step 1: the bookable slots of a category at this point.
    /// Answered by `booking_slots`.
    ListSlots {
        request_id: u64,
        category_id: String,
    },
    /// Step 2: send a verification code (验证码) to this mobile number. Answered by
    /// `verification_sent` or `error` (bad number, too many requests).
    RequestVerification {
        request_id: u64,
        phone: String,
    },
    /// Step 3: book the slot. `name` may be empty at the kiosk (typing Chinese names on a
    /// touch screen is hard for the elderly); the mobile number and its verification code
    /// identify the resident. Answered by `booked` or `error`.
    Book {
        request_id: u64,
        category_id: String,
        slot_start_ms: i64,
        phone: String,
        verification_code: String,
        #[serde(default)]
        name: String,
    },
}

/// How a resident identifies their booking at the kiosk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum CheckInKey {
    /// The booking's QR payload, as the kiosk's scanner read it.
    Qr { qr: String },
    /// The last four digits of the booking's mobile number and the booking code (预约码).
    Code { phone_tail: String, code: String },
}

/// Whether a check-in came within the booked slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arrival {
    /// Within the slot (or shortly before it): the ticket carries the appointment and is
    /// served first within its slot.
    OnTime,
    /// After the slot: an ordinary ticket, served by arrival (您已超过预约时段，按到场顺序办理).
    Late,
}

/// A slot the kiosk may offer for booking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookableSlot {
    pub start_ms: i64,
    pub end_ms: i64,
    /// Places left in the slot.
    pub free: u32,
}

/// A booking just made at the kiosk, as the resident is shown it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KioskBooking {
    /// 预约码, shown large ("请记下").
    pub booking_code: String,
    /// The QR payload the scanner accepts at check-in.
    pub qr: String,
    pub category_name: String,
    pub slot: AppointmentSlot,
    /// The mobile number masked (138****5678).
    pub phone_masked: String,
    /// The QR as an image (`data:image/svg+xml;base64,…`) for the screen, when the relay
    /// draws one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qr_image: Option<String>,
}

// `welcome` is larger than the other messages; each message is built, sent once and dropped.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RelayToKiosk {
    Welcome {
        protocol_version: u32,
        device_id: String,
        extension_point: ExtensionPointInfo,
        centre: CentreInfo,
        categories: Vec<CategoryView>,
        /// The device's current ticket, if it already has one (e.g. after a reconnect).
        ticket: Option<KioskTicketStatus>,
        server_time_ms: i64,
        heartbeat_interval_ms: u64,
        /// STUN/TURN servers for the media connection, with short-lived credentials.
        #[serde(default)]
        ice_servers: Vec<IceServer>,
    },
    HeartbeatAck {
        seq: u64,
        server_time_ms: i64,
    },
    TicketTaken {
        request_id: u64,
        ticket: KioskTicketStatus,
    },
    TicketCancelled {
        request_id: u64,
        ticket_id: String,
    },
    /// Pushed whenever the device's ticket changes: position, estimate, called, served…
    TicketStatus {
        ticket: KioskTicketStatus,
    },
    /// Pushed after `welcome` and whenever it changes: which categories a remote window could
    /// serve now (windows signed in, paused or closed).
    Staffing {
        categories: Vec<CategoryStaffing>,
    },
    /// A device command or cancel from the clerk serving this kiosk's ticket. The relay
    /// assigns the request ids on this leg, unique per kiosk connection.
    Device {
        message: ToDevice,
    },
    /// The relay's answer to `media_offer`.
    MediaAnswer {
        request_id: u64,
        sdp: String,
    },
    /// A short message the serving clerk typed for the resident (a word they did not catch,
    /// an address). The kiosk shows it large until the next one or until dismissed.
    TypedMessage {
        message: TypedMessage,
    },
    /// Whether the kiosk should send its camera, document preview and microphone now. True
    /// while a clerk serves its ticket; false otherwise, so no uplink is spent while waiting.
    /// On true the kiosk starts with a keyframe.
    MediaSending {
        sending: bool,
    },
    /// The check-in was accepted: the ticket (with its appointment when `on_time`).
    CheckedIn {
        request_id: u64,
        arrival: Arrival,
        ticket: KioskTicketStatus,
    },
    /// The bookable slots of a category, earliest first (empty: none in the booking horizon).
    BookingSlots {
        request_id: u64,
        category_id: String,
        slots: Vec<BookableSlot>,
    },
    /// A verification code is on its way to the number.
    VerificationSent {
        request_id: u64,
    },
    Booked {
        request_id: u64,
        booking: KioskBooking,
    },
    /// The evaluation with this id is stored (now, or already before when `duplicate`).
    EvaluationStored {
        request_id: u64,
        evaluation_id: String,
        duplicate: bool,
    },
    Error {
        request_id: Option<u64>,
        #[serde(flatten)]
        error: ErrorBody,
    },
}

/// 好差评 level, from 非常满意 (5) to 非常不满意 (1). The two lowest are 差评 (bad reviews).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvaluationLevel {
    /// 非常不满意
    VeryDissatisfied,
    /// 不满意
    Dissatisfied,
    /// 基本满意
    Basic,
    /// 满意
    Satisfied,
    /// 非常满意
    VerySatisfied,
}

impl EvaluationLevel {
    /// Best first, as the kiosk shows them.
    pub const ALL: [EvaluationLevel; 5] = [
        EvaluationLevel::VerySatisfied,
        EvaluationLevel::Satisfied,
        EvaluationLevel::Basic,
        EvaluationLevel::Dissatisfied,
        EvaluationLevel::VeryDissatisfied,
    ];

    /// 5 (非常满意) … 1 (非常不满意), the star count of the 好差评 system.
    pub fn score(self) -> u8 {
        match self {
            EvaluationLevel::VerySatisfied => 5,
            EvaluationLevel::Satisfied => 4,
            EvaluationLevel::Basic => 3,
            EvaluationLevel::Dissatisfied => 2,
            EvaluationLevel::VeryDissatisfied => 1,
        }
    }

    pub fn from_score(score: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.score() == score)
    }

    /// 差评: the two lowest levels, which need reasons and a follow-up.
    pub fn is_bad(self) -> bool {
        self.score() <= 2
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EvaluationLevel::VerySatisfied => "very_satisfied",
            EvaluationLevel::Satisfied => "satisfied",
            EvaluationLevel::Basic => "basic",
            EvaluationLevel::Dissatisfied => "dissatisfied",
            EvaluationLevel::VeryDissatisfied => "very_dissatisfied",
        }
    }

    pub fn name_zh(self) -> &'static str {
        match self {
            EvaluationLevel::VerySatisfied => "非常满意",
            EvaluationLevel::Satisfied => "满意",
            EvaluationLevel::Basic => "基本满意",
            EvaluationLevel::Dissatisfied => "不满意",
            EvaluationLevel::VeryDissatisfied => "非常不满意",
        }
    }
}

/// The reasons a resident may give for a bad review: (id, Chinese, English). The kiosk shows
/// them; the relay accepts no other ids.
pub const EVALUATION_REASONS: [(&str, &str, &str); 7] = [
    ("attitude", "服务态度不好", "Staff were unfriendly"),
    ("too_slow", "等候或办理时间太长", "It took too long"),
    ("unclear", "解释说明不清楚", "The explanation was unclear"),
    ("not_resolved", "事情没有办成", "My matter was not resolved"),
    ("audio_video", "视频或声音不清楚", "Poor picture or sound"),
    ("device", "设备不好用", "The machine was hard to use"),
    ("other", "其他原因", "Another reason"),
];

/// Whether `id` is one of [`EVALUATION_REASONS`].
pub fn is_evaluation_reason(id: &str) -> bool {
    EVALUATION_REASONS.iter().any(|(r, _, _)| *r == id)
}

/// A resident's evaluation of a served ticket, as the kiosk sends it. The relay binds it to
/// the session that served the ticket (centre, window, clerk, category, extension point,
/// device) itself; the kiosk only says which ticket and what the resident chose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KioskEvaluation {
    /// Chosen by the kiosk when the resident answers (or the time runs out); the idempotency
    /// key from the kiosk to the 好差评 system. 1–64 characters of `[A-Za-z0-9_-]`.
    pub evaluation_id: String,
    /// 办件编号: the served ticket.
    pub ticket_id: String,
    /// `None`: the resident did not answer in time (unrated, 未评价).
    pub level: Option<EvaluationLevel>,
    /// Ids from [`EVALUATION_REASONS`]; at least one for a bad review, none otherwise.
    #[serde(default)]
    pub reasons: Vec<String>,
    /// When the resident answered (or the time ran out), relay time in Unix ms.
    pub evaluated_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CentreInfo {
    pub id: String,
    pub name: String,
}

/// 延伸点: the place where the kiosk stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtensionPointInfo {
    pub id: String,
    pub name: String,
    pub phone: String,
    /// The hours as people read them.
    pub service_hours: String,
    /// The hours as data, when set: the kiosk takes tickets only while open.
    #[serde(default)]
    pub hours: Option<crate::hours::ServiceHours>,
}

/// What the kiosk shows the resident about their ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KioskTicketStatus {
    pub ticket_id: String,
    pub number: String,
    pub category_name: String,
    pub state: crate::queue::TicketState,
    /// Tickets ahead of this one that compete for the same windows (0 = next).
    pub ahead: Option<u32>,
    /// Estimated wait in seconds; `None` when no window that can serve it is open.
    pub eta_seconds: Option<u32>,
    /// The window that called the ticket, once called.
    pub window_name: Option<String>,
    pub recalls: u32,
    /// While waiting: whether a window that could serve the ticket can call now. Absent from
    /// relays that do not know.
    #[serde(default)]
    pub availability: Option<Availability>,
    /// Once called: who serves the resident (岗位、照片、工号 shown as the standard asks).
    /// Boxed: most statuses carry none, and the status travels inside other enums.
    #[serde(default)]
    pub serving_clerk: Option<Box<ServingClerk>>,
    /// 预约: the booked slot, when the ticket came from an on-time check-in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appointment: Option<AppointmentSlot>,
}

/// The clerk serving a kiosk's ticket, as the resident sees them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServingClerk {
    /// The staff record's id (not shown).
    pub id: String,
    pub name: String,
    /// 岗位; empty when not set.
    #[serde(default)]
    pub post: String,
    /// 工号; empty when not set.
    #[serde(default)]
    pub staff_number: String,
    /// The photo as a `data:` URL (JPEG or PNG, at most 64 KiB before encoding).
    #[serde(default)]
    pub photo: Option<String>,
}

/// Whether a window that could serve a ticket (or a category) can call now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Availability {
    /// Windows signed in, with the clerk's console connected, not paused.
    pub open: u32,
    /// When none is open but some are paused (窗口暂停服务): the pause that ends first.
    pub paused: Option<crate::queue::WindowPause>,
}

/// One service category's remote windows right now, for the kiosk's choice screen: a kiosk
/// offers only categories with an open window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CategoryStaffing {
    pub category_id: String,
    #[serde(flatten)]
    pub availability: Availability,
    /// When none is open: when a remote window serving the category opens next by the
    /// windows' working hours (Unix ms), if the relay knows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_opening_ms: Option<i64>,
}

// ---------------------------------------------------------------------------------------------
// Clerk ⇄ relay
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClerkToRelay {
    /// First message. The clerk is already authenticated by the session cookie or bearer token
    /// presented on the WebSocket upgrade.
    Hello {
        protocol_versions: Vec<u32>,
    },
    /// Sign in to a window (and leave any other).
    OpenWindow {
        request_id: u64,
        window_id: String,
    },
    /// Leave the window (only when no ticket is in hand).
    CloseWindow {
        request_id: u64,
    },
    /// A queue operation at the clerk's current window.
    Queue {
        request_id: u64,
        op: QueueOp,
    },
    /// Ask for a fresh full snapshot (e.g. after the console noticed a gap).
    Snapshot {
        request_id: u64,
    },
    Ping {
        seq: u64,
    },
    /// Operate a device of the kiosk whose ticket the clerk is serving. The command's own
    /// `request_id` is the console's; acknowledge, events and completion come back as
    /// [`RelayToClerk::Device`] with that id.
    DeviceCommand {
        ticket_id: String,
        command: DeviceCommand,
    },
    /// Cancel a device command this console sent.
    DeviceCancel {
        ticket_id: String,
        cancel: Cancel,
    },
    /// The console's media offer (the five transceivers of [`crate::media::Slot::ORDER`]),
    /// sent once signed in and again to restart ICE. Answered by `media_answer`.
    MediaOffer {
        request_id: u64,
        sdp: String,
    },
    /// Show the resident of the ticket this clerk serves a short typed message (at most
    /// [`TYPED_MESSAGE_MAX_CHARS`] characters). Answered by `typed_message_sent` once it is in
    /// the case record and on its way to the kiosk, or by `error`.
    TypeToResident {
        request_id: u64,
        ticket_id: String,
        text: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RelayToClerk {
    Welcome {
        protocol_version: u32,
        clerk: ClerkInfo,
        centre: CentreInfo,
        windows: Vec<WindowView>,
        categories: Vec<CategoryView>,
        server_time_ms: i64,
        /// STUN/TURN servers for the media connection, with short-lived credentials.
        #[serde(default)]
        ice_servers: Vec<IceServer>,
    },
    /// The whole queue of the centre, at `version`.
    Snapshot {
        request_id: Option<u64>,
        version: u64,
        tickets: Vec<TicketView>,
        windows: Vec<WindowView>,
        stats: QueueStats,
        server_time_ms: i64,
    },
    /// Incremental change after `version - 1`. A console that sees a gap asks for a snapshot.
    Update {
        version: u64,
        tickets: Vec<TicketView>,
        windows: Vec<WindowView>,
        stats: QueueStats,
        server_time_ms: i64,
    },
    WindowOpened {
        request_id: u64,
        window: WindowView,
    },
    WindowClosed {
        request_id: u64,
    },
    /// The queue operation succeeded; `ticket` is its state afterwards.
    Done {
        request_id: u64,
        ticket: Option<TicketView>,
    },
    Pong {
        seq: u64,
        server_time_ms: i64,
    },
    /// A device message for the console, with the console's own request ids: the answers to
    /// its device commands, and unsolicited events of the served kiosk's devices.
    Device {
        ticket_id: String,
        message: FromDevice,
    },
    /// The relay's answer to `media_offer`.
    MediaAnswer {
        request_id: u64,
        sdp: String,
    },
    /// The typed message is recorded and on its way to the kiosk.
    TypedMessageSent {
        request_id: u64,
        message: TypedMessage,
    },
    /// Which session's media the console now receives (`None`: none), and how the kiosk's own
    /// media connection is doing.
    MediaSession {
        ticket_id: Option<String>,
        kiosk_media: KioskMedia,
    },
    Error {
        request_id: Option<u64>,
        #[serde(flatten)]
        error: ErrorBody,
    },
}

/// The longest typed message, in characters (Unicode scalar values).
pub const TYPED_MESSAGE_MAX_CHARS: usize = 200;

/// A message the serving clerk typed for the resident of a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypedMessage {
    /// The relay's id for it, increasing within a relay's run.
    pub message_id: u64,
    pub ticket_id: String,
    /// What the kiosk shows. May name a person or an address: never logged.
    pub text: String,
    /// When the relay accepted it (Unix ms).
    pub sent_ms: i64,
}

/// Why a typed message cannot be sent as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypedTextError {
    Empty,
    TooLong,
    ControlCharacter,
}

impl std::fmt::Display for TypedTextError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TypedTextError::Empty => "消息是空的 / the message is empty",
            TypedTextError::TooLong => {
                "消息太长，最多 200 个字 / the message is too long (at most 200 characters)"
            }
            TypedTextError::ControlCharacter => {
                "消息含有不能显示的字符 / the message has characters that cannot be shown"
            }
        })
    }
}

impl std::error::Error for TypedTextError {}

/// The text as the kiosk will show it: trimmed, 1 to [`TYPED_MESSAGE_MAX_CHARS`] characters,
/// no control characters other than line breaks (and no more than a few of those).
pub fn typed_text(text: &str) -> Result<String, TypedTextError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(TypedTextError::Empty);
    }
    if text.chars().count() > TYPED_MESSAGE_MAX_CHARS {
        return Err(TypedTextError::TooLong);
    }
    if text.chars().any(|c| c.is_control() && c != '\n') || text.matches('\n').count() > 4 {
        return Err(TypedTextError::ControlCharacter);
    }
    Ok(text.to_owned())
}

/// A STUN or TURN server as WebRTC's `RTCIceServer` has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// The served kiosk's media connection, as the relay sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KioskMedia {
    /// No session, or its kiosk has no media connection yet.
    None,
    Connected,
    /// The kiosk's media connection dropped; it is reconnecting.
    Lost,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClerkInfo {
    pub id: String,
    pub username: String,
    pub display_name: String,
    pub roles: Vec<String>,
}

/// A ticket issued by the centre's own ticket machine (HTTP API), for the record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssueTicketRequest {
    pub category_id: String,
    /// 预约: the appointment slot, if the resident booked one (Unix ms, half-open).
    #[serde(default)]
    pub appointment: Option<AppointmentSlot>,
}
