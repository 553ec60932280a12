//! Errors of HTTP handlers, mapped to status codes in one place.
//!
//! Clients get a code and a short bilingual message; internal details stay in the log.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use protocol::control::{ErrorBody, ErrorCode};
use tracing::error;

use crate::queue::QueueError;
use crate::queue::driver::OpError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("请先登录 / please log in")]
    Unauthenticated,
    #[error("用户名或密码错误 / wrong username or password")]
    BadLogin,
    #[error("尝试次数过多，请稍后再试 / too many attempts, try again later")]
    TooManyAttempts,
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
    #[error("服务内部错误 / internal error")]
    Internal(String),
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
            ApiError::Unauthenticated | ApiError::BadLogin => StatusCode::UNAUTHORIZED,
            ApiError::TooManyAttempts => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Busy => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Queue(q) => match q.code() {
                ErrorCode::NotFound => StatusCode::NOT_FOUND,
                ErrorCode::Forbidden => StatusCode::FORBIDDEN,
                ErrorCode::LimitExceeded => StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::BadMessage => StatusCode::BAD_REQUEST,
                _ => StatusCode::CONFLICT,
            },
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn body(&self) -> ErrorBody {
        let code = match self {
            ApiError::Unauthenticated | ApiError::BadLogin => ErrorCode::Unauthenticated,
            ApiError::TooManyAttempts => ErrorCode::LimitExceeded,
            ApiError::Forbidden => ErrorCode::Forbidden,
            ApiError::NotFound => ErrorCode::NotFound,
            ApiError::BadRequest(_) => ErrorCode::BadMessage,
            ApiError::Busy => ErrorCode::Timeout,
            ApiError::Queue(q) => q.code(),
            ApiError::Internal(_) => ErrorCode::Internal,
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
        (self.status(), Json(self.body())).into_response()
    }
}
