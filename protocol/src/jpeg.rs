//! The one reader of a JPEG's frame header (SOF): the kiosk checks the size of a still it
//! took, the relay needs size and component count to embed a page in a PDF. Pure, no I/O;
//! it reads only the markers before the first scan and never decodes image data.

/// What a JPEG's frame header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub width: u32,
    pub height: u32,
    /// Colour components: 1 (grey), 3 (YCbCr/RGB), 4 (CMYK).
    pub components: u8,
}

/// The frame header of a baseline, extended, progressive or lossless JPEG; `None` when the
/// bytes do not start with SOI, a segment is cut short, the scan starts first, or the header
/// names a zero width or height.
pub fn frame_header(bytes: &[u8]) -> Option<FrameHeader> {
    if bytes.get(..2)? != [0xFF, 0xD8] {
        return None;
    }
    let mut i = 2;
    while i + 4 <= bytes.len() {
        if bytes[i] != 0xFF {
            return None;
        }
        let marker = bytes[i + 1];
        // Fill bytes before a marker.
        if marker == 0xFF {
            i += 1;
            continue;
        }
        let len = usize::from(u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]));
        // SOF0…SOF15 except DHT (C4), JPG (C8) and DAC (CC), which share the range.
        if (0xC0..=0xCF).contains(&marker) && !matches!(marker, 0xC4 | 0xC8 | 0xCC) {
            let seg = bytes.get(i + 4..i + 2 + len)?;
            let height = u32::from(u16::from_be_bytes([*seg.get(1)?, *seg.get(2)?]));
            let width = u32::from(u16::from_be_bytes([*seg.get(3)?, *seg.get(4)?]));
            let components = *seg.get(5)?;
            return (width > 0 && height > 0).then_some(FrameHeader {
                width,
                height,
                components,
            });
        }
        // Start of scan: entropy-coded data follows, and no frame header came before it.
        if marker == 0xDA || len < 2 {
            return None;
        }
        i += 2 + len;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_size_and_components_after_other_segments() {
        // SOI, APP0 (length 4), SOF0 for 3264x2448 with one component.
        let jpeg = [
            0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0x00, 0x00, 0xFF, 0xC0, 0x00, 0x0B, 0x08, 0x09,
            0x90, 0x0C, 0xC0, 0x01, 0x01, 0x11, 0x00,
        ];
        assert_eq!(
            frame_header(&jpeg),
            Some(FrameHeader {
                width: 3264,
                height: 2448,
                components: 1
            })
        );
        assert_eq!(frame_header(&jpeg[..12]), None, "cut inside the header");
    }

    #[test]
    fn reads_a_progressive_header_after_fill_bytes() {
        let jpeg = [
            0xFF, 0xD8, 0xFF, 0xFF, 0xC2, 0x00, 0x0B, 0x08, 0x00, 0x10, 0x00, 0x20, 0x03, 0x01,
            0x11, 0x00, 0xFF, 0xD9,
        ];
        assert_eq!(
            frame_header(&jpeg),
            Some(FrameHeader {
                width: 32,
                height: 16,
                components: 3
            })
        );
    }

    #[test]
    fn refuses_what_is_not_a_frame_header() {
        assert_eq!(frame_header(b"not a jpeg"), None);
        assert_eq!(frame_header(&[0xFF, 0xD8]), None);
        // DHT is in the SOF range but is not a frame header; the scan starts before any.
        let dht_then_scan = [
            0xFF, 0xD8, 0xFF, 0xC4, 0x00, 0x02, 0xFF, 0xDA, 0x00, 0x02, 0x00,
        ];
        assert_eq!(frame_header(&dht_then_scan), None);
        // Zero width.
        let zero = [
            0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x0B, 0x08, 0x00, 0x10, 0x00, 0x00, 0x03, 0x01, 0x11,
            0x00,
        ];
        assert_eq!(frame_header(&zero), None);
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut b = vec![0xFF, 0xD8];
            b.extend(bytes);
            let _ = frame_header(&b);
        }
    }
}
