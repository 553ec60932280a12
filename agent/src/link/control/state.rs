//! What the control link tells the rest of the agent: the kiosk's state as the link knows it,
//! the errors of its requests, and the signals for the media connection. Plain data; the
//! [`super::core`] produces it.

use protocol::control::{
    CategoryStaffing, CentreInfo, ErrorCode, ExtensionPointInfo, IceServer, KioskTicketStatus,
    TypedMessage,
};

/// How many typed messages the kiosk keeps for its screen's short history.
pub const TYPED_MESSAGES_KEPT: usize = 5;
use protocol::queue::CategoryView;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkState {
    Connecting,
    Online,
    /// Not connected; retrying.
    Offline,
    /// The relay refused this device (credential or version); retrying slowly.
    Refused,
}

/// What the kiosk currently knows, for its screen and local API.
#[derive(Debug, Clone, Serialize)]
pub struct KioskState {
    pub link: LinkState,
    /// Why the link is not online, for technicians (no personal information).
    pub problem: Option<String>,
    pub device_id: String,
    pub centre: Option<CentreInfo>,
    pub extension_point: Option<ExtensionPointInfo>,
    pub categories: Vec<CategoryView>,
    /// Which categories a remote window could serve now; `None` until the relay says (a relay
    /// that never does leaves every category offered).
    pub staffing: Option<Vec<CategoryStaffing>>,
    /// The kiosk's ticket; after it ends, its final state stays until a new one is taken.
    pub ticket: Option<KioskTicketStatus>,
    /// The last few messages the serving clerk typed for this ticket's resident, oldest first
    /// (at most [`TYPED_MESSAGES_KEPT`]); cleared when another ticket comes.
    pub typed_messages: Vec<TypedMessage>,
    /// Relay time minus local time, from the last welcome or heartbeat answer.
    pub clock_offset_ms: i64,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize)]
#[serde(tag = "error", rename_all = "snake_case")]
pub enum LinkError {
    #[error(
        "暂时无法连接受理中心，请稍后再试 / not connected to the centre, please try again shortly"
    )]
    Offline,
    #[error("{message}")]
    Refused { code: ErrorCode, message: String },
    #[error("受理中心未及时响应，请重试 / the centre did not answer in time, please retry")]
    Timeout,
    #[error("当前没有号 / there is no ticket")]
    NoTicket,
}

/// What the link tells the kiosk's media connection.
#[derive(Debug, Clone, PartialEq)]
pub enum MediaSignal {
    /// The control connection is up (again): (re)offer media with these ICE servers.
    Online { ice_servers: Vec<IceServer> },
    /// The control connection is down.
    Offline,
    /// The relay's answer to the offer sent with this request id.
    Answer { request_id: u64, sdp: String },
    /// Send camera, document camera preview and microphone now (true) or stop (false).
    Sending(bool),
}
