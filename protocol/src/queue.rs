//! Views of the unified call queue (统一叫号排队系统) as clients see them.

use serde::{Deserialize, Serialize};

/// Where a ticket came from. The ticket number tells them apart: remote tickets start with
/// [`REMOTE_PREFIX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketChannel {
    /// From the centre's own ticket machine (现场取号).
    OnSite,
    /// From an extension-point kiosk (延伸点远程取号).
    Remote,
}

/// The letter that starts every remote ticket number ("Y" for 延伸), e.g. `YA007`.
pub const REMOTE_PREFIX: char = 'Y';

/// What kind of tickets a window may call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowMode {
    /// 综合窗口: on-site tickets only.
    OnSite,
    /// 远程虚拟窗口: remote tickets only.
    Remote,
    /// A comprehensive window that also takes remote tickets (统筹设置).
    Combined,
}

impl WindowMode {
    pub fn admits(self, channel: TicketChannel) -> bool {
        matches!(
            (self, channel),
            (WindowMode::Combined, _)
                | (WindowMode::OnSite, TicketChannel::OnSite)
                | (WindowMode::Remote, TicketChannel::Remote)
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketState {
    Waiting,
    Called,
    Serving,
    Parked,
    Served,
    NoShow,
    Cancelled,
}

impl TicketState {
    /// A terminal state never changes again.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TicketState::Served | TicketState::NoShow | TicketState::Cancelled
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TicketState::Waiting => "waiting",
            TicketState::Called => "called",
            TicketState::Serving => "serving",
            TicketState::Parked => "parked",
            TicketState::Served => "served",
            TicketState::NoShow => "no_show",
            TicketState::Cancelled => "cancelled",
        }
    }

    /// The state's name as clerks and residents read it, Chinese and English.
    pub fn label(self) -> &'static str {
        match self {
            TicketState::Waiting => "等候中 / waiting",
            TicketState::Called => "已叫号 / called",
            TicketState::Serving => "办理中 / being served",
            TicketState::Parked => "已挂起 / parked",
            TicketState::Served => "已办结 / served",
            TicketState::NoShow => "已过号 / no-show",
            TicketState::Cancelled => "已取消 / cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "waiting" => TicketState::Waiting,
            "called" => TicketState::Called,
            "serving" => TicketState::Serving,
            "parked" => TicketState::Parked,
            "served" => TicketState::Served,
            "no_show" => TicketState::NoShow,
            "cancelled" => TicketState::Cancelled,
            _ => return None,
        })
    }
}

/// 预约: a booked slot, Unix milliseconds, half-open `[start_ms, end_ms)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppointmentSlot {
    pub start_ms: i64,
    pub end_ms: i64,
}

impl AppointmentSlot {
    pub fn contains(&self, now_ms: i64) -> bool {
        self.start_ms <= now_ms && now_ms < self.end_ms
    }
}

/// 事项类别
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CategoryView {
    pub id: String,
    /// The letter(s) of its ticket numbers, e.g. "A".
    pub prefix: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketView {
    pub id: String,
    pub number: String,
    pub channel: TicketChannel,
    pub category_id: String,
    pub state: TicketState,
    pub created_ms: i64,
    pub called_ms: Option<i64>,
    pub serving_ms: Option<i64>,
    pub finished_ms: Option<i64>,
    pub appointment: Option<AppointmentSlot>,
    /// The window that called, serves or parked the ticket.
    pub window_id: Option<String>,
    /// Set when the ticket was transferred to one particular window.
    pub target_window_id: Option<String>,
    pub recalls: u32,
    /// The extension point of a remote ticket.
    pub extension_point_id: Option<String>,
    /// Position in call order among waiting tickets of the same category (0 = next).
    pub ahead: Option<u32>,
    pub eta_seconds: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowView {
    pub id: String,
    pub name: String,
    pub mode: WindowMode,
    pub category_ids: Vec<String>,
    /// The clerk signed in to the window, if any.
    pub clerk_id: Option<String>,
    pub clerk_name: Option<String>,
    /// False when the clerk's console is disconnected (the window is kept for them).
    pub clerk_connected: bool,
    pub current_ticket_id: Option<String>,
    /// Set while the clerk has paused the window (暂停服务); it calls nothing meanwhile.
    #[serde(default)]
    pub pause: Option<WindowPause>,
}

/// Why a clerk stepped away from their window (离岗须有明显的暂停标识).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PauseReason {
    /// 暂离
    Away,
    /// 会议
    Meeting,
    /// 培训
    Training,
}

impl PauseReason {
    pub fn as_str(self) -> &'static str {
        match self {
            PauseReason::Away => "away",
            PauseReason::Meeting => "meeting",
            PauseReason::Training => "training",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "away" => Some(PauseReason::Away),
            "meeting" => Some(PauseReason::Meeting),
            "training" => Some(PauseReason::Training),
            _ => None,
        }
    }

    /// The word on the pause sign.
    pub fn label(self) -> &'static str {
        match self {
            PauseReason::Away => "暂离",
            PauseReason::Meeting => "会议",
            PauseReason::Training => "培训",
        }
    }
}

/// A window's pause: since when, why, and when the clerk expects to be back (Unix ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowPause {
    pub reason: PauseReason,
    pub since_ms: i64,
    pub until_ms: i64,
}

/// The longest pause a clerk may announce, in minutes (a half working day).
pub const MAX_PAUSE_MINUTES: u32 = 240;

/// Operations a clerk performs at their window. Every operation on a particular ticket names
/// it, so that a click made on a stale screen cannot act on a different ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum QueueOp {
    /// Call the next eligible ticket (appointments within their slot first, then by waiting time).
    CallNext,
    /// Call a chosen waiting ticket out of order.
    Call { ticket_id: String },
    /// Call the current ticket again.
    Recall { ticket_id: String },
    /// The called resident did not come (过号).
    NoShow { ticket_id: String },
    /// The resident is here: start serving.
    Start { ticket_id: String },
    /// Service complete (办结).
    Finish { ticket_id: String },
    /// Send the ticket to another service category or another window; it keeps its place by
    /// original arrival time.
    Transfer {
        ticket_id: String,
        category_id: Option<String>,
        window_id: Option<String>,
    },
    /// Put the current ticket aside at this window (e.g. the resident fetches a document).
    Park { ticket_id: String },
    /// Take a parked ticket back at this window (it becomes called again).
    Resume { ticket_id: String },
    /// Put a parked ticket back into the waiting queue at its original place.
    ReturnToQueue { ticket_id: String },
    /// Cancel a ticket that is waiting, called or parked.
    Cancel { ticket_id: String },
    /// Pause the window (暂停服务) for `minutes` (1 to [`MAX_PAUSE_MINUTES`]); it calls nothing
    /// until resumed, and residents waiting for it see the pause sign with the expected return.
    PauseWindow { reason: PauseReason, minutes: u32 },
    /// End the window's pause: it calls again.
    ResumeWindow,
}

impl QueueOp {
    pub fn name(&self) -> &'static str {
        match self {
            QueueOp::CallNext => "call_next",
            QueueOp::Call { .. } => "call",
            QueueOp::Recall { .. } => "recall",
            QueueOp::NoShow { .. } => "no_show",
            QueueOp::Start { .. } => "start",
            QueueOp::Finish { .. } => "finish",
            QueueOp::Transfer { .. } => "transfer",
            QueueOp::Park { .. } => "park",
            QueueOp::Resume { .. } => "resume",
            QueueOp::ReturnToQueue { .. } => "return_to_queue",
            QueueOp::Cancel { .. } => "cancel",
            QueueOp::PauseWindow { .. } => "pause_window",
            QueueOp::ResumeWindow => "resume_window",
        }
    }
}

/// Today's figures for the centre.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueueStats {
    pub waiting_on_site: u32,
    pub waiting_remote: u32,
    pub windows: Vec<ServiceStats>,
    pub clerks: Vec<ServiceStats>,
}

/// Served count and averages for one window or one clerk.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceStats {
    pub id: String,
    pub name: String,
    pub served: u32,
    pub avg_wait_seconds: Option<u32>,
    pub avg_service_seconds: Option<u32>,
}
