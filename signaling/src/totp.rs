//! Time-based one-time passwords (RFC 6238 over RFC 4226's HOTP): the second factor of staff
//! logins. HMAC-SHA-1, 6 digits, 30-second steps, a code of the step before or after the
//! current one accepted (clocks of phones drift); the caller refuses a step at or below the
//! last one used, so a code cannot be replayed.
//!
//! Also the secret's text forms (base32, grouped by four for typing; the `otpauth://` URI that
//! authenticator apps read from a QR code, drawn here as SVG) and the one-time recovery codes.
//!
//! Pure functions: the time is passed in (Unix milliseconds), nothing is stored here.

use aws_lc_rs::hmac;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Seconds per step (RFC 6238's default, what every authenticator app assumes).
pub const STEP_SECS: i64 = 30;
/// Digits of a code.
pub const DIGITS: u32 = 6;
/// Steps accepted on either side of the current one.
pub const WINDOW: i64 = 1;
/// Bytes of a new secret (160 bits, RFC 4226's recommendation for HMAC-SHA-1).
pub const SECRET_BYTES: usize = 20;
/// Recovery codes given at enrollment.
pub const RECOVERY_CODES: usize = 10;

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// HOTP (RFC 4226 §5.3): HMAC-SHA-1 of the counter, dynamically truncated, modulo 10^digits.
pub fn hotp(secret: &[u8], counter: u64, digits: u32) -> u32 {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let tag = hmac::sign(&key, &counter.to_be_bytes());
    let mac = tag.as_ref();
    // SHA-1 gives 20 bytes; the offset is at most 15, so offset + 3 < 20.
    let offset = usize::from(mac[mac.len() - 1] & 0x0f);
    let bin = (u32::from(mac[offset] & 0x7f) << 24)
        | (u32::from(mac[offset + 1]) << 16)
        | (u32::from(mac[offset + 2]) << 8)
        | u32::from(mac[offset + 3]);
    bin % 10u32.pow(digits)
}

/// The step a Unix time in milliseconds falls in (times before 1970 are step 0).
pub fn step_at(now_ms: i64) -> i64 {
    now_ms.max(0) / 1000 / STEP_SECS
}

/// The 6-digit code of a step, zero-padded.
pub fn code_for_step(secret: &[u8], step: i64) -> String {
    let counter = u64::try_from(step).unwrap_or(0);
    format!(
        "{:0width$}",
        hotp(secret, counter, DIGITS),
        width = DIGITS as usize
    )
}

/// The code an authenticator shows at `now_ms`.
pub fn code_at(secret: &[u8], now_ms: i64) -> String {
    code_for_step(secret, step_at(now_ms))
}

/// Whether `input` looks like a TOTP code (six digits, spaces allowed) rather than a recovery code.
pub fn looks_like_code(input: &str) -> bool {
    let digits: Vec<char> = input.chars().filter(|c| !c.is_whitespace()).collect();
    digits.len() == DIGITS as usize && digits.iter().all(char::is_ascii_digit)
}

/// The step whose code `input` is, within the window around `now_ms` and after `last_step`;
/// `None` when it matches none (wrong, too old, too new, or already used). Compared in
/// constant time per step.
pub fn verify(secret: &[u8], input: &str, now_ms: i64, last_step: i64) -> Option<i64> {
    let input: String = input.chars().filter(|c| !c.is_whitespace()).collect();
    if !looks_like_code(&input) {
        return None;
    }
    let now = step_at(now_ms);
    let mut found = None;
    for step in (now - WINDOW)..=(now + WINDOW) {
        let expected = code_for_step(secret, step);
        let same = expected
            .bytes()
            .zip(input.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
        if same && step > last_step && found.is_none() {
            found = Some(step);
        }
    }
    found
}

/// A fresh random secret.
pub fn new_secret() -> [u8; SECRET_BYTES] {
    let mut s = [0u8; SECRET_BYTES];
    rand::rng().fill_bytes(&mut s);
    s
}

/// RFC 4648 base32 without padding (what `otpauth://` URIs carry).
pub fn base32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(BASE32[((buffer >> bits) & 31) as usize]));
        }
        buffer &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(char::from(BASE32[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// Base32 text back to bytes; spaces, dashes and case are ignored. `None` for any other character.
pub fn from_base32(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in text.chars().filter(|c| !matches!(c, ' ' | '-' | '=')) {
        let c = u8::try_from(c.to_ascii_uppercase()).ok()?;
        let value = BASE32.iter().position(|&b| b == c)?;
        buffer = (buffer << 5) | u32::try_from(value).ok()?;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((buffer >> bits) & 0xff).ok()?);
        }
        buffer &= (1 << bits) - 1;
    }
    Some(out)
}

/// The secret in groups of four characters, for typing into an app by hand.
pub fn grouped(secret_base32: &str) -> String {
    secret_base32
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

fn uri_escape(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The `otpauth://totp/ISSUER:ACCOUNT?…` URI that authenticator apps read from a QR code.
pub fn otpauth_uri(issuer: &str, account: &str, secret: &[u8]) -> String {
    let issuer = uri_escape(issuer);
    format!(
        "otpauth://totp/{issuer}:{}?secret={}&issuer={issuer}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        uri_escape(account),
        base32(secret)
    )
}

/// The QR code of `text` as a standalone SVG document (black on white, with its quiet zone).
pub fn qr_svg(text: &str) -> Option<String> {
    let code = qrcode::QrCode::with_error_correction_level(text, qrcode::EcLevel::M).ok()?;
    Some(
        code.render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(240, 240)
            .dark_color(qrcode::render::svg::Color("#000000"))
            .light_color(qrcode::render::svg::Color("#ffffff"))
            .build(),
    )
}

/// Fresh recovery codes: 16 base32 characters (80 bits) each, shown as four groups of four.
pub fn new_recovery_codes() -> Vec<String> {
    (0..RECOVERY_CODES)
        .map(|_| {
            let mut bytes = [0u8; 10];
            rand::rng().fill_bytes(&mut bytes);
            grouped(&base32(&bytes)).replace(' ', "-")
        })
        .collect()
}

/// How a recovery code is stored and looked up: the SHA-256 of its normalised form (80 random
/// bits make a slow hash unnecessary, as for session tokens).
pub fn recovery_code_hash(input: &str) -> String {
    let normal: String = input
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    hex::encode(Sha256::digest(normal.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_SECRET: &[u8] = b"12345678901234567890";

    #[test]
    fn rfc4226_hotp_vectors() {
        let expected = [
            755224, 287082, 359152, 969429, 338314, 254676, 287922, 162583, 399871, 520489,
        ];
        for (counter, want) in expected.iter().enumerate() {
            assert_eq!(
                hotp(RFC_SECRET, counter as u64, 6),
                *want,
                "counter {counter}"
            );
        }
    }

    #[test]
    fn rfc6238_sha1_vectors() {
        // Appendix B, SHA-1 column, 8 digits; the 6-digit code is the same value mod 10^6.
        for (secs, want8) in [
            (59_i64, 94287082_u32),
            (1111111109, 7081804),
            (1111111111, 14050471),
            (1234567890, 89005924),
            (2000000000, 69279037),
            (20000000000, 65353130),
        ] {
            let step = step_at(secs * 1000);
            assert_eq!(hotp(RFC_SECRET, step as u64, 8), want8, "time {secs}");
            assert_eq!(
                code_at(RFC_SECRET, secs * 1000),
                format!("{:06}", want8 % 1_000_000),
                "time {secs}"
            );
        }
    }

    #[test]
    fn a_code_is_accepted_one_step_either_side_and_never_twice() {
        let now = 1_234_567_890_000;
        let step = step_at(now);
        let current = code_at(RFC_SECRET, now);
        assert_eq!(verify(RFC_SECRET, &current, now, 0), Some(step));
        assert_eq!(
            verify(RFC_SECRET, &current, now, step),
            None,
            "the same step again is a replay"
        );
        let previous = code_for_step(RFC_SECRET, step - 1);
        let next = code_for_step(RFC_SECRET, step + 1);
        assert_eq!(verify(RFC_SECRET, &previous, now, 0), Some(step - 1));
        assert_eq!(verify(RFC_SECRET, &next, now, 0), Some(step + 1));
        let stale = code_for_step(RFC_SECRET, step - 2);
        assert_ne!(stale, current);
        assert_eq!(verify(RFC_SECRET, &stale, now, 0), None, "two steps old");
        assert_eq!(verify(RFC_SECRET, "12345", now, 0), None);
        assert_eq!(verify(RFC_SECRET, "abcdef", now, 0), None);
        assert_eq!(verify(b"another secret......", &current, now, 0), None);
        let spaced = format!("{} {}", &current[..3], &current[3..]);
        assert_eq!(verify(RFC_SECRET, &spaced, now, 0), Some(step));
    }

    #[test]
    fn base32_round_trips_and_matches_rfc4648() {
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32(b"f"), "MY");
        assert_eq!(base32(RFC_SECRET), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        let secret = new_secret();
        let text = base32(&secret);
        assert_eq!(text.len(), 32);
        assert_eq!(from_base32(&text).as_deref(), Some(&secret[..]));
        assert_eq!(
            from_base32(&grouped(&text).to_lowercase()).as_deref(),
            Some(&secret[..])
        );
        assert_eq!(from_base32("A1"), None);
        assert_eq!(grouped("ABCDEFGHIJ"), "ABCD EFGH IJ");
    }

    #[test]
    fn the_uri_and_its_qr_code() {
        let uri = otpauth_uri("远程虚拟窗口", "wang min", RFC_SECRET);
        assert!(uri.starts_with("otpauth://totp/%E8%BF%9C"), "{uri}");
        assert!(uri.contains(":wang%20min?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&"));
        assert!(uri.ends_with("&algorithm=SHA1&digits=6&period=30"));
        let svg = qr_svg(&uri).expect("fits in a QR code");
        assert!(svg.contains("<svg") && svg.contains("</svg>"));
        assert!(!svg.contains("<script"));
    }

    #[test]
    fn recovery_codes_are_distinct_and_hash_whatever_the_typing() {
        let codes = new_recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        let unique: std::collections::HashSet<_> = codes.iter().collect();
        assert_eq!(unique.len(), RECOVERY_CODES);
        let code = &codes[0];
        assert_eq!(code.len(), 19);
        assert_eq!(
            recovery_code_hash(code),
            recovery_code_hash(&code.replace('-', " ").to_lowercase())
        );
        assert_ne!(recovery_code_hash(code), recovery_code_hash(&codes[1]));
        assert!(!looks_like_code(code));
        assert!(looks_like_code("123 456"));
    }
}
