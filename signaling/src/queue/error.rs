//! Why a queue operation was refused.

use protocol::control::{ErrorBody, ErrorCode};
use protocol::queue::TicketState;
use thiserror::Error;

/// A refused operation. Refusals change nothing; the text is for the clerk or the resident.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum QueueError {
    #[error("没有这个号 / no such ticket")]
    NoSuchTicket,
    #[error("没有这个窗口 / no such window")]
    NoSuchWindow,
    #[error("没有这个事项类别 / no such service category")]
    NoSuchCategory,
    #[error("请先选择窗口 / sign in to a window first")]
    NoWindow,
    #[error("该窗口已由其他工作人员使用 / another clerk is signed in to this window")]
    WindowTaken,
    #[error("请先办结、过号或挂起当前号 / finish, mark no-show or park the current ticket first")]
    TicketInHand,
    #[error("该号不在本窗口 / the ticket is not at this window")]
    NotAtThisWindow,
    #[error("该号当前状态不能执行此操作 / not possible in this state: {}", .0.label())]
    InvalidState(TicketState),
    #[error("本窗口不能办理该号（窗口类型或事项不符）/ this window may not take the ticket")]
    NotEligible,
    #[error("当前没有可叫的号 / no ticket waiting for this window")]
    QueueEmpty,
    #[error("排队人数已满，请稍后再取号 / the queue is full, please try later")]
    QueueFull,
    #[error("本设备已有一个号 / this kiosk already holds a ticket")]
    DeviceHasTicket,
    #[error("只能取消本设备的号 / a kiosk may cancel only its own ticket")]
    NotYourTicket,
    #[error("预约时段无效 / the appointment slot is invalid")]
    BadAppointment,
    #[error("窗口暂停服务中，请先恢复服务 / the window is paused: resume it first")]
    WindowPaused,
    #[error("窗口没有暂停 / the window is not paused")]
    NotPaused,
    #[error("暂停时长应为 1 到 240 分钟 / a pause lasts 1 to 240 minutes")]
    BadPause,
}

impl QueueError {
    pub fn code(&self) -> ErrorCode {
        match self {
            QueueError::NoSuchTicket | QueueError::NoSuchWindow | QueueError::NoSuchCategory => {
                ErrorCode::NotFound
            }
            QueueError::NoWindow
            | QueueError::TicketInHand
            | QueueError::NotAtThisWindow
            | QueueError::InvalidState(_)
            | QueueError::DeviceHasTicket
            | QueueError::WindowPaused
            | QueueError::NotPaused => ErrorCode::InvalidState,
            QueueError::WindowTaken => ErrorCode::Conflict,
            QueueError::NotEligible => ErrorCode::NotEligible,
            QueueError::QueueEmpty => ErrorCode::QueueEmpty,
            QueueError::QueueFull => ErrorCode::LimitExceeded,
            QueueError::NotYourTicket => ErrorCode::Forbidden,
            QueueError::BadAppointment | QueueError::BadPause => ErrorCode::BadMessage,
        }
    }

    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            code: self.code(),
            message: self.to_string(),
        }
    }
}
