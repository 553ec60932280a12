//! The booking QR as SVG, drawn on the relay (no script library, no CDN): the page shows it
//! as an image, the resident shows it to the kiosk's scanner.

use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};

/// The SVG of `payload` (medium error correction, a 4-module quiet zone); `None` when the
/// payload is too long for a QR code.
pub fn svg(payload: &str) -> Option<String> {
    let code = QrCode::with_error_correction_level(payload.as_bytes(), EcLevel::M).ok()?;
    Some(
        code.render::<svg::Color<'_>>()
            .min_dimensions(200, 200)
            .quiet_zone(true)
            .dark_color(svg::Color("#000000"))
            .light_color(svg::Color("#ffffff"))
            .build(),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_booking_payload_renders_as_svg() {
        let s = super::svg("RVWB1:ABCDEFGH").expect("fits");
        assert!(s.starts_with("<?xml") && s.contains("<svg"), "{}", &s[..80]);
        assert!(s.len() < 20_000, "{} bytes", s.len());
        assert!(super::svg(&"X".repeat(5000)).is_none());
    }
}
