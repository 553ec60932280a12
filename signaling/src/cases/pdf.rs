//! A minimal PDF writer: one A4 page per JPEG, embedded as it is (`/DCTDecode`), scaled to fit
//! inside the margins and centred. Enough for a case's document pages; no fonts, no
//! compression of our own, no dependency.

use std::fmt::Write as _;

/// What the writer needs to know about a JPEG.
pub struct JpegPage<'a> {
    pub jpeg: &'a [u8],
    pub width: u32,
    pub height: u32,
    /// 1 (grey), 3 (YCbCr/RGB) or 4 (CMYK) components.
    pub components: u8,
}

/// Width, height and component count of a JPEG a PDF can show as it is: grey, RGB/YCbCr or
/// CMYK. The frame header is read by `protocol::jpeg`, the kiosk's reader as well.
pub fn jpeg_info(bytes: &[u8]) -> Option<(u32, u32, u8)> {
    let header = protocol::jpeg::frame_header(bytes)?;
    matches!(header.components, 1 | 3 | 4).then_some((
        header.width,
        header.height,
        header.components,
    ))
}

const PAGE_W: f64 = 595.0;
const PAGE_H: f64 = 842.0;
const MARGIN: f64 = 28.0;

/// The PDF bytes for `pages` (at least one).
pub fn write_pdf(pages: &[JpegPage<'_>], title: &str) -> Vec<u8> {
    let mut out: Vec<u8> = b"%PDF-1.4\n%\xE2\xE3\xCF\xD3\n".to_vec();
    let mut offsets: Vec<usize> = Vec::new();
    // Objects: 1 catalog, 2 pages, 3 info, then per page: page, contents, image.
    let n = pages.len();
    let obj = |out: &mut Vec<u8>, offsets: &mut Vec<usize>, body: &[u8]| {
        offsets.push(out.len());
        let id = offsets.len();
        out.extend(format!("{id} 0 obj\n").as_bytes());
        out.extend(body);
        out.extend(b"\nendobj\n");
    };
    let kids: String = (0..n).map(|i| format!("{} 0 R ", 4 + i * 3)).collect();
    obj(&mut out, &mut offsets, b"<< /Type /Catalog /Pages 2 0 R >>");
    obj(
        &mut out,
        &mut offsets,
        format!("<< /Type /Pages /Kids [{kids}] /Count {n} >>").as_bytes(),
    );
    let safe_title: String = title
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || " -_".contains(*c))
        .collect();
    obj(
        &mut out,
        &mut offsets,
        format!("<< /Title ({safe_title}) /Producer (rvw relay) >>").as_bytes(),
    );
    for (i, page) in pages.iter().enumerate() {
        let (page_id, contents_id, image_id) = (4 + i * 3, 5 + i * 3, 6 + i * 3);
        debug_assert_eq!(offsets.len() + 1, page_id);
        obj(
            &mut out,
            &mut offsets,
            format!(
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {PAGE_W} {PAGE_H}] /Resources << /XObject << /Im{i} {image_id} 0 R >> >> /Contents {contents_id} 0 R >>"
            )
            .as_bytes(),
        );
        let (w, h) = (f64::from(page.width), f64::from(page.height));
        let scale = ((PAGE_W - 2.0 * MARGIN) / w).min((PAGE_H - 2.0 * MARGIN) / h);
        let (dw, dh) = (w * scale, h * scale);
        let (x, y) = ((PAGE_W - dw) / 2.0, (PAGE_H - dh) / 2.0);
        let mut content = String::new();
        let _ = write!(
            content,
            "q {dw:.2} 0 0 {dh:.2} {x:.2} {y:.2} cm /Im{i} Do Q"
        );
        obj(
            &mut out,
            &mut offsets,
            format!(
                "<< /Length {} >>\nstream\n{content}\nendstream",
                content.len()
            )
            .as_bytes(),
        );
        let colour = match page.components {
            1 => "/DeviceGray",
            4 => "/DeviceCMYK",
            _ => "/DeviceRGB",
        };
        let mut image = format!(
            "<< /Type /XObject /Subtype /Image /Width {} /Height {} /ColorSpace {colour} /BitsPerComponent 8 /Filter /DCTDecode /Length {} >>\nstream\n",
            page.width,
            page.height,
            page.jpeg.len()
        )
        .into_bytes();
        image.extend(page.jpeg);
        image.extend(b"\nendstream");
        obj(&mut out, &mut offsets, &image);
    }
    let xref = out.len();
    let mut tail = format!("xref\n0 {}\n0000000000 65535 f \n", offsets.len() + 1);
    for o in &offsets {
        let _ = writeln!(tail, "{o:010} 00000 n ");
    }
    let _ = write!(
        tail,
        "trailer\n<< /Size {} /Root 1 0 R /Info 3 0 R >>\nstartxref\n{xref}\n%%EOF\n",
        offsets.len() + 1
    );
    out.extend(tail.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_one_page_per_image_with_a_consistent_xref() {
        let jpeg = [
            0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x0B, 0x08, 0x00, 0x10, 0x00, 0x20, 0x03, 0x01, 0x11,
            0x00, 0xFF, 0xD9,
        ];
        assert_eq!(jpeg_info(&jpeg), Some((32, 16, 3)));
        let page = JpegPage {
            jpeg: &jpeg,
            width: 32,
            height: 16,
            components: 3,
        };
        let pdf = write_pdf(
            &[
                page,
                JpegPage {
                    components: 1,
                    ..JpegPage {
                        jpeg: &jpeg,
                        width: 32,
                        height: 16,
                        components: 3,
                    }
                },
            ],
            "case",
        );
        let text = String::from_utf8_lossy(&pdf);
        assert!(text.starts_with("%PDF-1.4"));
        assert!(text.contains("/Count 2"));
        assert_eq!(text.matches("/DCTDecode").count(), 2);
        assert!(text.contains("/DeviceGray"));
        // Every xref offset (bytes) points at "N 0 obj".
        let at = pdf
            .windows(6)
            .rposition(|w| w == b"\nxref\n")
            .expect("xref")
            + 1;
        let table = std::str::from_utf8(&pdf[at..]).expect("ascii tail");
        for (n, line) in table.lines().skip(3).take(8).enumerate() {
            let off: usize = line[..10].parse().expect("offset");
            assert!(
                pdf[off..].starts_with(format!("{} 0 obj", n + 1).as_bytes()),
                "object {}",
                n + 1
            );
        }
    }
}
