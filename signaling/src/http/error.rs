//! Errors of HTTP handlers, mapped to status codes in one place.
//!
//! Clients get a code and a short bilingual message; internal details stay in the log. A
//! subsystem's refusal with its own message ([`ApiError::Refused`]) gets its status from its
//! code here, as queue refusals do.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use protocol::control::{ErrorBody, ErrorCode};
use serde_json::json;
use tracing::error;

use crate::queue::QueueError;
use crate::queue::driver::OpError;
use crate::registry::fields::{FieldError, label};
use crate::registry::lifecycle::LifecycleError;
use crate::registry::service::StepError;
use crate::store::StoreError;
use crate::store::registry::CommitError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("请先登录 / please log in")]
    Unauthenticated,
    #[error("用户名或密码错误 / wrong username or password")]
    BadLogin,
    /// A wrong, expired or already used second-factor code.
    #[error("验证码错误或已使用，请输入验证器上新的 6 位数字 / wrong or already used code")]
    BadCode,
    #[error("尝试次数过多，请稍后再试 / too many attempts, try again later")]
    TooManyAttempts,
    /// Too many failed logins for this account or address; the lockout ends by itself.
    #[error(
        "登录失败次数过多，已暂时锁定，请 {minutes} 分钟后再试 / too many failed logins: locked, try again in {minutes} min"
    )]
    LockedOut { minutes: u64 },
    #[error("没有权限 / not allowed")]
    Forbidden,
    #[error("未找到 / not found")]
    NotFound,
    #[error("{0}")]
    BadRequest(String),
    #[error("服务繁忙，请稍后再试 / busy, try again shortly")]
    Busy,
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// A form's fields, each with its problem (sent as `fields` beside the message).
    #[error("表单有误，请修改后再提交 / the form has errors: {}", summary(.0))]
    Invalid(Vec<FieldError>),
    /// A subsystem refused the request and says why; the status follows from the code.
    #[error("{1}")]
    Refused(ErrorCode, String),
    #[error("{0}")]
    TooLarge(String),
    /// A subsystem that is not available now (`Internal` code, status 503).
    #[error("{0}")]
    Unavailable(String),
    #[error("服务内部错误 / internal error")]
    Internal(String),
}

fn summary(fields: &[FieldError]) -> String {
    fields
        .iter()
        .map(|f| format!("{}：{}", label(&f.field), f.message))
        .collect::<Vec<_>>()
        .join("；")
}

/// The status of a refusal with `code`.
fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::Forbidden => StatusCode::FORBIDDEN,
        ErrorCode::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorCode::LimitExceeded => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::BadMessage => StatusCode::BAD_REQUEST,
        _ => StatusCode::CONFLICT,
    }
}

impl From<LifecycleError> for ApiError {
    fn from(e: LifecycleError) -> Self {
        let code = match &e {
            LifecycleError::NotFound => ErrorCode::NotFound,
            LifecycleError::Reason(_) => ErrorCode::BadMessage,
            LifecycleError::Exists(_) => ErrorCode::Conflict,
            LifecycleError::WrongState { .. }
            | LifecycleError::NothingChanged
            | LifecycleError::DivisionFixed => ErrorCode::InvalidState,
        };
        ApiError::Refused(code, e.to_string())
    }
}

impl From<CommitError> for ApiError {
    fn from(e: CommitError) -> Self {
        match e {
            CommitError::Store(s) => s.into(),
            CommitError::DeviceInUse(_) => ApiError::Invalid(vec![FieldError {
                field: "device_id".into(),
                message: e.to_string(),
            }]),
            other => ApiError::Refused(ErrorCode::Conflict, other.to_string()),
        }
    }
}

impl From<StepError> for ApiError {
    fn from(e: StepError) -> Self {
        match e {
            StepError::Invalid(fields) => ApiError::Invalid(fields),
            StepError::Lifecycle(e) => e.into(),
            StepError::Commit(e) => e.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

impl From<OpError> for ApiError {
    fn from(e: OpError) -> Self {
        match e {
            OpError::Refused(q) => ApiError::Queue(q),
            OpError::Timeout | OpError::Unavailable => ApiError::Busy,
            OpError::Store => ApiError::Internal("queue store failure".into()),
        }
    }
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthenticated | ApiError::BadLogin | ApiError::BadCode => {
                StatusCode::UNAUTHORIZED
            }
            ApiError::TooManyAttempts | ApiError::LockedOut { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Busy => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Queue(q) => status_of(q.code()),
            ApiError::Invalid(_) => StatusCode::BAD_REQUEST,
            ApiError::Refused(code, _) => status_of(*code),
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn body(&self) -> ErrorBody {
        let code = match self {
            ApiError::Unauthenticated | ApiError::BadLogin | ApiError::BadCode => {
                ErrorCode::Unauthenticated
            }
            ApiError::TooManyAttempts | ApiError::LockedOut { .. } => ErrorCode::LimitExceeded,
            ApiError::Forbidden => ErrorCode::Forbidden,
            ApiError::NotFound => ErrorCode::NotFound,
            ApiError::BadRequest(_) => ErrorCode::BadMessage,
            ApiError::Busy => ErrorCode::Timeout,
            ApiError::Queue(q) => q.code(),
            ApiError::Invalid(_) => ErrorCode::BadMessage,
            ApiError::Refused(code, _) => *code,
            ApiError::TooLarge(_) => ErrorCode::LimitExceeded,
            ApiError::Unavailable(_) | ApiError::Internal(_) => ErrorCode::Internal,
        };
        ErrorBody {
            code,
            message: self.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(detail) = &self {
            error!(%detail, "request failed");
        }
        if let ApiError::Invalid(fields) = &self {
            let ErrorBody { code, message } = self.body();
            let body = json!({ "code": code, "message": message, "fields": fields });
            return (self.status(), Json(body)).into_response();
        }
        (self.status(), Json(self.body())).into_response()
    }
}
