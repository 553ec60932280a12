//! The clerk console's files, compiled into the binary so a relay is one file to deploy.

use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

const INDEX: &str = include_str!("../../web/console/index.html");

/// A console file by name, with its content type.
macro_rules! console_file {
    ($name:literal, $mime:expr) => {
        (
            $name,
            $mime,
            include_str!(concat!("../../web/console/", $name)),
        )
    };
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

const FILES: &[(&str, &str, &str)] = &[
    console_file!("console.js", JS),
    console_file!("media.js", JS),
    console_file!("devices.js", JS),
    console_file!("devices.css", CSS),
    console_file!("console.css", CSS),
];

pub async fn index() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        INDEX,
    )
        .into_response()
}

pub async fn file(Path(name): Path<String>) -> Result<Response, ApiError> {
    let (_, mime, body) = FILES
        .iter()
        .find(|(n, _, _)| *n == name)
        .ok_or(ApiError::NotFound)?;
    Ok((
        [
            (header::CONTENT_TYPE, *mime),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        *body,
    )
        .into_response())
}
