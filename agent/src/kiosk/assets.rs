//! The kiosk page's files, compiled into the agent so a kiosk is one binary to deploy.
//!
//! The spoken prompts are small Ogg/Opus files committed beside the page
//! (`agent/web/kiosk/audio/`, rendered by `render-audio.sh` with espeak-ng): rendering at
//! build time would make every build of the agent need espeak-ng and opus-tools, and the
//! committed files are a few kilobytes each.

/// (name, content type, content) of the page's text files.
const TEXT: &[(&str, &str, &str)] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_str!("../../web/kiosk/index.html"),
    ),
    (
        "kiosk.css",
        "text/css; charset=utf-8",
        include_str!("../../web/kiosk/kiosk.css"),
    ),
    (
        "kiosk.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/kiosk/kiosk.js"),
    ),
    (
        "appointments.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/kiosk/appointments.js"),
    ),
    (
        "i18n.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/kiosk/i18n.js"),
    ),
    (
        "media.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/kiosk/media.js"),
    ),
    // The script the relay's pages share too (elements, time, requests).
    (
        "common.js",
        web_common::JS_CONTENT_TYPE,
        web_common::COMMON_JS,
    ),
];

macro_rules! audio {
    ($name:literal) => {
        (
            $name,
            include_bytes!(concat!("../../web/kiosk/audio/", $name)).as_slice(),
        )
    };
}

/// The spoken prompts: `<prompt>.<language>.ogg`.
const AUDIO: &[(&str, &[u8])] = &[
    audio!("welcome.zh.ogg"),
    audio!("welcome.en.ogg"),
    audio!("taken.zh.ogg"),
    audio!("taken.en.ogg"),
    audio!("called.zh.ogg"),
    audio!("called.en.ogg"),
    audio!("evaluate.zh.ogg"),
    audio!("evaluate.en.ogg"),
    audio!("thanks.zh.ogg"),
    audio!("thanks.en.ogg"),
    audio!("closed.zh.ogg"),
    audio!("closed.en.ogg"),
    audio!("offline.zh.ogg"),
    audio!("offline.en.ogg"),
    audio!("still-there.zh.ogg"),
    audio!("still-there.en.ogg"),
];

pub fn text(name: &str) -> Option<(&'static str, &'static str)> {
    TEXT.iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, mime, body)| (*mime, *body))
}

pub fn audio(name: &str) -> Option<&'static [u8]> {
    AUDIO.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_references_only_files_that_exist() {
        let (_, page) = text("index.html").expect("index.html");
        for reference in page.split("/kiosk/assets/").skip(1) {
            let name: String = reference.chars().take_while(|c| *c != '"').collect();
            assert!(
                text(&name).is_some(),
                "index.html references unknown {name}"
            );
        }
        let (_, script) = text("kiosk.js").expect("kiosk.js");
        for reference in script.split("speak('").skip(1) {
            let prompt: String = reference.chars().take_while(|c| *c != '\'').collect();
            for lang in ["zh", "en"] {
                let name = format!("{prompt}.{lang}.ogg");
                assert!(
                    audio(&name).is_some(),
                    "kiosk.js speaks {name}, which is missing"
                );
            }
        }
    }

    #[test]
    fn audio_files_are_ogg_and_small() {
        for (name, bytes) in AUDIO {
            assert!(bytes.starts_with(b"OggS"), "{name} is not an Ogg file");
            assert!(bytes.len() < 64 * 1024, "{name} is {} bytes", bytes.len());
        }
    }

    #[test]
    fn no_inline_script_or_style_in_the_page() {
        let (_, page) = text("index.html").expect("index.html");
        assert!(!page.contains(" style="), "inline style attribute");
        assert!(!page.contains("<style"), "inline style element");
        for chunk in page.split("<script").skip(1) {
            let tag: String = chunk.chars().take_while(|c| *c != '>').collect();
            assert!(tag.contains("src="), "inline script: <script{tag}>");
        }
        assert!(!page.contains("onclick"), "inline event handler");
    }
}
