//! The web apps' files (clerk console, supervisor and operations pages), compiled into the
//! binary so a relay is one file to deploy.
//!
//! Each app lives in `signaling/web/<app>/`; its page is served at `/<app>` (the console also
//! at `/`), and its files at `/assets/<app>/<file>`. To add a file, add one `web_file!` line.
//! The script every page shares (`web_common::COMMON_JS`, also served by the agent) is at
//! `/assets/shared/common.js`.

use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// An app's file: (app, name, content type, content).
macro_rules! web_file {
    ($app:literal, $name:literal, $mime:expr) => {
        (
            $app,
            $name,
            $mime,
            include_str!(concat!("../../web/", $app, "/", $name)),
        )
    };
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

const FILES: &[(&str, &str, &str, &str)] = &[
    web_file!("console", "index.html", HTML),
    web_file!("console", "console.js", JS),
    web_file!("console", "media.js", JS),
    web_file!("console", "media.css", CSS),
    web_file!("console", "devices.js", JS),
    web_file!("console", "devices.css", CSS),
    web_file!("console", "appointments.js", JS),
    web_file!("console", "console.css", CSS),
    web_file!("recordings", "index.html", HTML),
    web_file!("recordings", "recordings.js", JS),
    web_file!("recordings", "recordings.css", CSS),
    web_file!("supervisor", "index.html", HTML),
    web_file!("supervisor", "supervisor.js", JS),
    web_file!("supervisor", "stats.js", JS),
    web_file!("supervisor", "followups.js", JS),
    web_file!("supervisor", "deadletters.js", JS),
    web_file!("supervisor", "supervisor.css", CSS),
    web_file!("ops", "index.html", HTML),
    web_file!("ops", "ops.js", JS),
    web_file!("ops", "util.js", JS),
    web_file!("ops", "registry.js", JS),
    web_file!("ops", "ops.css", CSS),
    web_file!("ops", "public.css", CSS),
    web_file!("book", "index.html", HTML),
    web_file!("book", "book.js", JS),
    web_file!("book", "book.css", CSS),
    ("shared", "common.js", JS, web_common::COMMON_JS),
];

fn find(app: &str, name: &str) -> Option<(&'static str, &'static str)> {
    FILES
        .iter()
        .find(|(a, n, _, _)| *a == app && *n == name)
        .map(|(_, _, mime, body)| (*mime, *body))
}

fn respond(mime: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, mime),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// `/`: the clerk console.
pub async fn console() -> Result<Response, ApiError> {
    let (mime, body) = find("console", "index.html").ok_or(ApiError::NotFound)?;
    Ok(respond(mime, body))
}

/// `/{app}`: an app's page.
pub async fn page(Path(app): Path<String>) -> Result<Response, ApiError> {
    let (mime, body) = find(&app, "index.html").ok_or(ApiError::NotFound)?;
    Ok(respond(mime, body))
}

/// `/assets/{app}/{file}`.
pub async fn file(Path((app, name)): Path<(String, String)>) -> Result<Response, ApiError> {
    let (mime, body) = find(&app, &name).ok_or(ApiError::NotFound)?;
    Ok(respond(mime, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_app_has_a_page_and_pages_reference_only_known_files() {
        let apps: std::collections::BTreeSet<&str> = FILES
            .iter()
            .map(|(a, ..)| *a)
            .filter(|a| *a != "shared")
            .collect();
        for app in apps {
            let (_, page) =
                find(app, "index.html").unwrap_or_else(|| panic!("{app} has no index.html"));
            for reference in page.split(&format!("/assets/{app}/")).skip(1) {
                let name: String = reference.chars().take_while(|c| *c != '"').collect();
                assert!(
                    find(app, &name).is_some(),
                    "{app}/index.html references unknown {name}"
                );
            }
        }
    }

    #[test]
    fn every_script_that_imports_the_shared_module_finds_it() {
        for (app, name, _, body) in FILES.iter().filter(|(_, n, ..)| n.ends_with(".js")) {
            for import in body.split(" from \"").skip(1) {
                let path: String = import.chars().take_while(|c| *c != '"').collect();
                if let Some(file) = path.strip_prefix("/assets/shared/") {
                    assert!(
                        find("shared", file).is_some(),
                        "{app}/{name} imports {path}"
                    );
                }
            }
        }
    }
}
