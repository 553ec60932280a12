//! A ticket (号) as the queue core keeps it.

use protocol::queue::{AppointmentSlot, TicketChannel, TicketState, TicketView};

/// Why a ticket ended without being served, or how it was handed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndReason {
    /// The resident gave up at the kiosk.
    ResidentCancelled,
    ClerkCancelled,
    /// Marked by the clerk.
    NoShowMarked,
    /// Recalled the configured number of times without the resident starting.
    NoShowRecalls,
    /// Called longer than the configured time without the resident starting.
    NoShowTimeout,
    /// Left over from an earlier service day.
    DayClosed,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::ResidentCancelled => "resident_cancelled",
            EndReason::ClerkCancelled => "clerk_cancelled",
            EndReason::NoShowMarked => "no_show_marked",
            EndReason::NoShowRecalls => "no_show_recalls",
            EndReason::NoShowTimeout => "no_show_timeout",
            EndReason::DayClosed => "day_closed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "resident_cancelled" => EndReason::ResidentCancelled,
            "clerk_cancelled" => EndReason::ClerkCancelled,
            "no_show_marked" => EndReason::NoShowMarked,
            "no_show_recalls" => EndReason::NoShowRecalls,
            "no_show_timeout" => EndReason::NoShowTimeout,
            "day_closed" => EndReason::DayClosed,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    pub id: String,
    pub centre_id: String,
    /// Service day (Shanghai local date) as days since 1970-01-01.
    pub service_day: i64,
    pub number: String,
    /// The per-day, per-prefix sequence number inside `number`.
    pub number_seq: u32,
    pub channel: TicketChannel,
    pub category_id: String,
    pub state: TicketState,
    pub created_ms: i64,
    /// Call-order key: arrival time, kept across transfers and returns to the queue.
    pub queue_ms: i64,
    /// Tie-breaker for equal `queue_ms`; unique within a centre.
    pub seq: u64,
    pub appointment: Option<AppointmentSlot>,
    pub device_id: Option<String>,
    pub extension_point_id: Option<String>,
    pub window_id: Option<String>,
    pub target_window_id: Option<String>,
    pub clerk_id: Option<String>,
    pub first_called_ms: Option<i64>,
    pub called_ms: Option<i64>,
    pub serving_ms: Option<i64>,
    pub finished_ms: Option<i64>,
    pub recalls: u32,
    pub end_reason: Option<EndReason>,
}

impl Ticket {
    /// Seconds from arrival to first call, once called.
    pub fn wait_seconds(&self) -> Option<i64> {
        self.first_called_ms
            .map(|c| (c - self.created_ms).max(0) / 1000)
    }

    /// Seconds of service, once served.
    pub fn service_seconds(&self) -> Option<i64> {
        match (self.serving_ms, self.finished_ms) {
            (Some(s), Some(f)) if self.state == TicketState::Served => Some((f - s).max(0) / 1000),
            _ => None,
        }
    }

    pub fn view(&self) -> TicketView {
        TicketView {
            id: self.id.clone(),
            number: self.number.clone(),
            channel: self.channel,
            category_id: self.category_id.clone(),
            state: self.state,
            created_ms: self.created_ms,
            called_ms: self.called_ms,
            serving_ms: self.serving_ms,
            finished_ms: self.finished_ms,
            appointment: self.appointment,
            window_id: self.window_id.clone(),
            target_window_id: self.target_window_id.clone(),
            recalls: self.recalls,
            extension_point_id: self.extension_point_id.clone(),
            ahead: None,
            eta_seconds: None,
        }
    }
}

/// Days since 1970-01-01 in Shanghai (UTC+8, no daylight saving).
pub fn service_day(now_ms: i64) -> i64 {
    const SHANGHAI_OFFSET_MS: i64 = 8 * 3600 * 1000;
    (now_ms + SHANGHAI_OFFSET_MS).div_euclid(86_400_000)
}
