//! The simulated cameras' pictures: a document page on the platen (document camera) or a
//! stand-in figure (kiosk camera), drawn into raw planes with a small built-in font and a
//! timestamp, then JPEG-encoded by GStreamer. The page background carries paper grain so the
//! JPEG is about as large as a real 8-megapixel page (≈3 MB), which is what uploads and the
//! benchmark need to be realistic.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use protocol::device::{ColourMode, ImageSize};

use super::{CaptureError, Planes, Still, StillCamera, StillRequest, gst};

/// What the simulated camera looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    /// A printed page on the document camera's platen.
    Page,
    /// A resident in front of the kiosk camera.
    Person,
}

pub struct SimulatedStillCamera {
    subject: Subject,
    resolutions: Vec<ImageSize>,
    /// The drawn picture without its timestamp, per size and colour mode.
    cache: Mutex<HashMap<(u32, u32, bool), Arc<Planes>>>,
}

impl SimulatedStillCamera {
    pub fn new(subject: Subject, mut resolutions: Vec<ImageSize>) -> Self {
        if resolutions.is_empty() {
            resolutions = match subject {
                Subject::Page => vec![ImageSize {
                    width: 3264,
                    height: 2448,
                }],
                Subject::Person => vec![ImageSize {
                    width: 1280,
                    height: 720,
                }],
            };
        }
        SimulatedStillCamera {
            subject,
            resolutions,
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn base(&self, size: ImageSize, colour: bool) -> Arc<Planes> {
        let key = (size.width, size.height, colour);
        if let Some(p) = self.cache.lock().ok().and_then(|c| c.get(&key).cloned()) {
            return p;
        }
        let planes = Arc::new(match self.subject {
            Subject::Page => draw_page(size, colour),
            Subject::Person => draw_person(size, colour),
        });
        if let Ok(mut c) = self.cache.lock() {
            c.insert(key, planes.clone());
        }
        planes
    }
}

impl StillCamera for SimulatedStillCamera {
    fn resolutions(&self) -> Vec<ImageSize> {
        self.resolutions.clone()
    }

    fn model(&self) -> String {
        match self.subject {
            Subject::Page => "simulated-document-camera".into(),
            Subject::Person => "simulated-camera".into(),
        }
    }

    fn capture(&self, request: &StillRequest, cancel: &AtomicBool) -> Result<Still, CaptureError> {
        let size = request.size;
        if !self.resolutions.contains(&size) {
            return Err(CaptureError::Resolution(size.width, size.height));
        }
        let colour = request.colour == ColourMode::Colour;
        let mut planes = (*self.base(size, colour)).clone();
        let scale = (size.width / 300).max(2);
        let stamp = chrono::Utc::now() + chrono::Duration::hours(8);
        let text = stamp.format("%Y-%m-%d %H:%M:%S%.3f UTC+8").to_string();
        let (x, y) = (size.width / 12, size.height - size.height / 10);
        fill(
            &mut planes,
            x - scale * 2,
            y - scale * 2,
            text_width(&text, scale) + scale * 4,
            9 * scale,
            255,
        );
        draw_text(&mut planes, x, y, scale, &text, 20);
        let jpeg = gst::encode_jpeg(&planes, 90, cancel)?;
        Ok(Still { jpeg, size })
    }
}

/// xorshift64*: deterministic paper grain.
fn grain(state: &mut u64) -> u8 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
}

fn blank(size: ImageSize, luma: u8, colour: bool) -> Planes {
    let (w, h) = (size.width as usize, size.height as usize);
    let c = (w.div_ceil(2)) * (h.div_ceil(2));
    Planes {
        size,
        y: vec![luma; w * h],
        uv: colour.then(|| (vec![128; c], vec![128; c])),
    }
}

/// Fills a rectangle of the luma plane (clipped).
fn fill(p: &mut Planes, x: u32, y: u32, w: u32, h: u32, luma: u8) {
    let (pw, ph) = (p.size.width, p.size.height);
    let (x1, y1) = ((x + w).min(pw), (y + h).min(ph));
    for row in y.min(ph)..y1 {
        let start = (row * pw + x.min(pw)) as usize;
        let end = (row * pw + x1) as usize;
        if start < end {
            p.y[start..end].fill(luma);
        }
    }
}

/// Tints a rectangle (chroma planes only; no-op in grey).
fn tint(p: &mut Planes, x: u32, y: u32, w: u32, h: u32, u: u8, v: u8) {
    let cw = p.size.width.div_ceil(2);
    let ch = p.size.height.div_ceil(2);
    let Some((up, vp)) = p.uv.as_mut() else {
        return;
    };
    let (cx0, cy0) = ((x / 2).min(cw), (y / 2).min(ch));
    let (cx1, cy1) = (((x + w) / 2).min(cw), ((y + h) / 2).min(ch));
    for row in cy0..cy1 {
        let (s, e) = ((row * cw + cx0) as usize, (row * cw + cx1) as usize);
        up[s..e].fill(u);
        vp[s..e].fill(v);
    }
}

fn draw_page(size: ImageSize, colour: bool) -> Planes {
    let (w, h) = (size.width, size.height);
    let mut p = blank(size, 70, colour);
    // The page, slightly inset from the platen edges.
    let (px, py, pw, ph) = (w / 16, h / 24, w - w / 8, h - h / 12);
    let mut rng = 0x9E37_79B9_7F4A_7C15_u64;
    for row in py..py + ph {
        let start = (row * w + px) as usize;
        for v in &mut p.y[start..start + pw as usize] {
            *v = 192 + (grain(&mut rng) >> 2);
        }
    }
    let scale = (w / 200).max(2);
    let margin = px + pw / 14;
    draw_text(
        &mut p,
        margin,
        py + ph / 18,
        scale * 2,
        "SIMULATED DOCUMENT CAMERA",
        15,
    );
    draw_text(
        &mut p,
        margin,
        py + ph / 18 + 14 * scale,
        scale,
        "TEST PAGE - RVW KIOSK AGENT",
        40,
    );
    // Ruled "paragraphs" of text.
    let line_h = 9 * scale / 2;
    let mut y = py + ph / 5;
    let mut n = 0u32;
    while y + line_h < py + ph - ph / 5 {
        let len = pw - pw / 7 - (n * 37 % 11) * pw / 40;
        fill(&mut p, margin, y, len, line_h / 2, 60);
        y += line_h;
        n += 1;
        if n.is_multiple_of(6) {
            y += line_h;
        }
    }
    // A box grid (a form), and a red seal in colour.
    let (gx, gy) = (margin, py + ph - ph / 5 + line_h);
    for i in 0..=4 {
        fill(&mut p, gx, gy + i * line_h * 2, pw / 2, scale / 2 + 1, 30);
    }
    for i in 0..=3 {
        fill(&mut p, gx + i * pw / 6, gy, scale / 2 + 1, line_h * 8, 30);
    }
    let (sx, sy, sd) = (px + pw - pw / 4, gy, pw / 6);
    fill(&mut p, sx, sy, sd, sd / 8, 90);
    fill(&mut p, sx, sy + sd - sd / 8, sd, sd / 8, 90);
    fill(&mut p, sx, sy, sd / 8, sd, 90);
    fill(&mut p, sx + sd - sd / 8, sy, sd / 8, sd, 90);
    tint(&mut p, sx, sy, sd, sd, 100, 220);
    draw_text(
        &mut p,
        sx + sd / 6,
        sy + sd / 2 - 5 * scale / 2,
        scale,
        "SEAL",
        90,
    );
    p
}

fn draw_person(size: ImageSize, colour: bool) -> Planes {
    let (w, h) = (size.width, size.height);
    let mut p = blank(size, 180, colour);
    tint(&mut p, 0, 0, w, h, 140, 120);
    // Head and shoulders.
    let (cx, head) = (w / 2, h / 4);
    fill(&mut p, cx - head / 2, h / 5, head, head + head / 4, 150);
    tint(
        &mut p,
        cx - head / 2,
        h / 5,
        head,
        head + head / 4,
        110,
        150,
    );
    fill(&mut p, cx - head, h / 5 + head + head / 3, head * 2, h, 60);
    tint(
        &mut p,
        cx - head,
        h / 5 + head + head / 3,
        head * 2,
        h,
        160,
        110,
    );
    let scale = (w / 200).max(2);
    draw_text(&mut p, w / 20, h / 20, scale, "SIMULATED KIOSK CAMERA", 20);
    p
}

/// 3×5 glyphs, rows top to bottom, bit 2 = left column.
fn glyph(c: char) -> [u8; 5] {
    match c.to_ascii_uppercase() {
        'A' => [2, 5, 7, 5, 5],
        'B' => [6, 5, 6, 5, 6],
        'C' => [3, 4, 4, 4, 3],
        'D' => [6, 5, 5, 5, 6],
        'E' => [7, 4, 6, 4, 7],
        'F' => [7, 4, 6, 4, 4],
        'G' => [3, 4, 5, 5, 3],
        'H' => [5, 5, 7, 5, 5],
        'I' => [7, 2, 2, 2, 7],
        'J' => [1, 1, 1, 5, 2],
        'K' => [5, 5, 6, 5, 5],
        'L' => [4, 4, 4, 4, 7],
        'M' => [5, 7, 7, 5, 5],
        'N' => [6, 5, 5, 5, 5],
        'O' => [2, 5, 5, 5, 2],
        'P' => [6, 5, 6, 4, 4],
        'Q' => [2, 5, 5, 6, 3],
        'R' => [6, 5, 6, 5, 5],
        'S' => [3, 4, 2, 1, 6],
        'T' => [7, 2, 2, 2, 2],
        'U' => [5, 5, 5, 5, 7],
        'V' => [5, 5, 5, 5, 2],
        'W' => [5, 5, 7, 7, 5],
        'X' => [5, 5, 2, 5, 5],
        'Y' => [5, 5, 2, 2, 2],
        'Z' => [7, 1, 2, 4, 7],
        '0' => [7, 5, 5, 5, 7],
        '1' => [2, 6, 2, 2, 7],
        '2' => [6, 1, 2, 4, 7],
        '3' => [6, 1, 2, 1, 6],
        '4' => [5, 5, 7, 1, 1],
        '5' => [7, 4, 6, 1, 6],
        '6' => [3, 4, 7, 5, 7],
        '7' => [7, 1, 2, 2, 2],
        '8' => [7, 5, 7, 5, 7],
        '9' => [7, 5, 7, 1, 6],
        '-' => [0, 0, 7, 0, 0],
        '+' => [0, 2, 7, 2, 0],
        ':' => [0, 2, 0, 2, 0],
        '.' => [0, 0, 0, 0, 2],
        '/' => [1, 1, 2, 4, 4],
        _ => [0; 5],
    }
}

fn text_width(text: &str, scale: u32) -> u32 {
    text.chars().count() as u32 * 4 * scale
}

/// Draws `text` with its top-left corner at (x, y); each font dot is `scale` pixels.
fn draw_text(p: &mut Planes, x: u32, y: u32, scale: u32, text: &str, luma: u8) {
    for (i, c) in text.chars().enumerate() {
        let gx = x + i as u32 * 4 * scale;
        for (row, bits) in glyph(c).iter().enumerate() {
            for col in 0..3u32 {
                if bits & (4 >> col) != 0 {
                    fill(
                        p,
                        gx + col * scale,
                        y + row as u32 * scale,
                        scale,
                        scale,
                        luma,
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::still::jpeg_size;

    #[test]
    fn simulated_stills_are_jpegs_of_the_asked_size() {
        let small = ImageSize {
            width: 640,
            height: 480,
        };
        let cam = SimulatedStillCamera::new(Subject::Page, vec![small]);
        let stop = AtomicBool::new(false);
        for colour in [ColourMode::Colour, ColourMode::Grey] {
            let still = cam
                .capture(
                    &StillRequest {
                        colour,
                        size: small,
                    },
                    &stop,
                )
                .expect("still");
            assert_eq!(jpeg_size(&still.jpeg), Some(small));
        }
        let other = StillRequest {
            colour: ColourMode::Colour,
            size: ImageSize {
                width: 1,
                height: 1,
            },
        };
        assert!(matches!(
            cam.capture(&other, &stop),
            Err(CaptureError::Resolution(1, 1))
        ));
    }
}
