//! A kiosk's upload (`POST /api/v1/uploads`): the credential, kind and digest headers, then
//! the body's checks (digest, card photo size, the JPEG frame header a document or snapshot
//! must carry), and for an accepted JPEG the PDF page the clerk's export embeds it in.
//! Input: three header lines separated by `\n`, a blank line, the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};
use signaling::cases::pdf::{JpegPage, jpeg_info, write_pdf};
use signaling::http::cases::{check_upload, claimed_sha256, upload_credential, upload_kind};

fuzz_target!(|data: &[u8]| {
    let split = data
        .windows(2)
        .position(|w| w == b"\n\n")
        .unwrap_or(data.len());
    let head = String::from_utf8_lossy(&data[..split]);
    let body = data.get(split + 2..).unwrap_or_default();
    let mut lines = head.split('\n');
    let (authorization, kind, digest) = (lines.next(), lines.next(), lines.next());
    let _ = upload_credential(authorization);
    let Ok(item_kind) = upload_kind(kind.unwrap_or_default()) else {
        return;
    };
    // A digest header of the input's own, or the body's real digest so the checks behind it
    // are reached.
    let _ = claimed_sha256(digest);
    let real = hex::encode(Sha256::digest(body));
    let claimed = claimed_sha256(Some(&real)).expect("a real digest is well-formed");
    if let Ok(checked) = check_upload(item_kind, &claimed, body)
        && let Some((width, height)) = checked.size
    {
        let (w, h, components) = jpeg_info(body).expect("an accepted JPEG has a frame header");
        assert_eq!((w, h), (width, height));
        let pdf = write_pdf(
            &[JpegPage {
                jpeg: body,
                width,
                height,
                components,
            }],
            head.as_ref(),
        );
        assert!(pdf.starts_with(b"%PDF-1.4"));
        assert!(pdf.ends_with(b"%%EOF\n"));
    }
});
