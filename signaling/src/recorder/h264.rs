//! The little of H.264 the muxer needs: picture size from an SPS and the `avcC` record
//! Matroska's `V_MPEG4/ISO/AVC` carries as codec private data.

/// Reads bits MSB first, skipping emulation-prevention bytes (00 00 03).
struct Bits<'a> {
    data: &'a [u8],
    byte: usize,
    bit: u8,
    zeros: u8,
}

impl<'a> Bits<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self {
            data,
            byte: 0,
            bit: 0,
            zeros: 0,
        }
    }

    fn u1(&mut self) -> Option<u32> {
        if self.bit == 0 {
            // Entering a new byte: drop an emulation-prevention 0x03 after two zero bytes.
            let b = *self.data.get(self.byte)?;
            if self.zeros >= 2 && b == 0x03 {
                self.byte += 1;
                self.zeros = 0;
            }
            let b = *self.data.get(self.byte)?;
            self.zeros = if b == 0 { self.zeros + 1 } else { 0 };
        }
        let b = *self.data.get(self.byte)?;
        let v = (b >> (7 - self.bit)) & 1;
        self.bit += 1;
        if self.bit == 8 {
            self.bit = 0;
            self.byte += 1;
        }
        Some(u32::from(v))
    }

    fn u(&mut self, n: u32) -> Option<u32> {
        let mut v = 0;
        for _ in 0..n {
            v = (v << 1) | self.u1()?;
        }
        Some(v)
    }

    fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while self.u1()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        Some((1u32 << zeros) - 1 + self.u(zeros)?)
    }

    fn se(&mut self) -> Option<i32> {
        let k = self.ue()?;
        let v = k.div_ceil(2) as i32;
        Some(if k % 2 == 1 { v } else { -v })
    }
}

/// Width and height in pixels from an SPS NAL unit (with its one-byte NAL header).
pub fn sps_dimensions(nal: &[u8]) -> Option<(u16, u16)> {
    if nal.first()? & 0x1f != 7 {
        return None;
    }
    let mut r = Bits::new(&nal[1..]);
    let profile_idc = r.u(8)?;
    r.u(16)?; // constraint flags, level
    r.ue()?; // seq_parameter_set_id
    let mut chroma_format_idc = 1;
    if matches!(
        profile_idc,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    ) {
        chroma_format_idc = r.ue()?;
        if chroma_format_idc == 3 {
            r.u1()?; // separate_colour_plane_flag
        }
        r.ue()?; // bit_depth_luma_minus8
        r.ue()?; // bit_depth_chroma_minus8
        r.u1()?; // qpprime_y_zero_transform_bypass_flag
        if r.u1()? == 1 {
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.u1()? == 1 {
                    let size = if i < 6 { 16 } else { 64 };
                    let (mut last, mut next) = (8i32, 8i32);
                    for _ in 0..size {
                        if next != 0 {
                            next = (last + r.se()? + 256) % 256;
                        }
                        last = if next == 0 { last } else { next };
                    }
                }
            }
        }
    }
    r.ue()?; // log2_max_frame_num_minus4
    match r.ue()? {
        0 => {
            r.ue()?; // log2_max_pic_order_cnt_lsb_minus4
        }
        1 => {
            r.u1()?;
            r.se()?;
            r.se()?;
            let n = r.ue()?;
            if n > 255 {
                return None;
            }
            for _ in 0..n {
                r.se()?;
            }
        }
        _ => {}
    }
    r.ue()?; // max_num_ref_frames
    r.u1()?; // gaps_in_frame_num_value_allowed_flag
    let width_mbs = r.ue()? + 1;
    let height_map_units = r.ue()? + 1;
    let frame_mbs_only = r.u1()?;
    if frame_mbs_only == 0 {
        r.u1()?; // mb_adaptive_frame_field_flag
    }
    r.u1()?; // direct_8x8_inference_flag
    let (mut cl, mut cr, mut ct, mut cb) = (0, 0, 0, 0);
    if r.u1()? == 1 {
        cl = r.ue()?;
        cr = r.ue()?;
        ct = r.ue()?;
        cb = r.ue()?;
    }
    let (crop_x, crop_y) = match chroma_format_idc {
        0 => (1, 2 - frame_mbs_only),
        1 => (2, 2 * (2 - frame_mbs_only)),
        2 => (2, 2 - frame_mbs_only),
        _ => (1, 2 - frame_mbs_only),
    };
    let width = (width_mbs * 16).checked_sub(crop_x * (cl + cr))?;
    let height = ((2 - frame_mbs_only) * height_map_units * 16).checked_sub(crop_y * (ct + cb))?;
    Some((u16::try_from(width).ok()?, u16::try_from(height).ok()?))
}

/// AVCDecoderConfigurationRecord (ISO/IEC 14496-15 §5.2.4.1) for one SPS and one PPS, with
/// 4-byte NAL length fields.
pub fn avcc(sps: &[u8], pps: &[u8]) -> Option<Vec<u8>> {
    if sps.len() < 4 {
        return None;
    }
    let mut v = Vec::with_capacity(11 + sps.len() + pps.len());
    v.extend_from_slice(&[1, sps[1], sps[2], sps[3], 0xff, 0xe1]);
    v.extend_from_slice(&u16::try_from(sps.len()).ok()?.to_be_bytes());
    v.extend_from_slice(sps);
    v.push(1);
    v.extend_from_slice(&u16::try_from(pps.len()).ok()?.to_be_bytes());
    v.extend_from_slice(pps);
    Some(v)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Writes bits MSB first (no emulation prevention; test values avoid 00 00 0x).
    struct W {
        out: Vec<u8>,
        n: u32,
    }

    impl W {
        fn bit(&mut self, b: u32) {
            if self.n.is_multiple_of(8) {
                self.out.push(0);
            }
            if b != 0 {
                let last = self.out.len() - 1;
                self.out[last] |= 0x80 >> (self.n % 8);
            }
            self.n += 1;
        }
        fn u(&mut self, v: u32, n: u32) {
            for i in (0..n).rev() {
                self.bit((v >> i) & 1);
            }
        }
        fn ue(&mut self, v: u32) {
            let x = v + 1;
            let len = 32 - x.leading_zeros();
            self.u(0, len - 1);
            self.u(x, len);
        }
    }

    fn baseline_sps(width_mbs: u32, height_mbs: u32, crop_bottom: u32) -> Vec<u8> {
        let mut w = W {
            out: vec![0x67],
            n: 8,
        };
        w.u(66, 8); // baseline
        w.u(0xc0, 8);
        w.u(30, 8);
        w.ue(0); // sps id
        w.ue(0); // log2_max_frame_num_minus4
        w.ue(0); // poc type 0
        w.ue(0); // log2_max_poc_lsb_minus4
        w.ue(1); // max_num_ref_frames
        w.bit(0);
        w.ue(width_mbs - 1);
        w.ue(height_mbs - 1);
        w.bit(1); // frame_mbs_only
        w.bit(1); // direct_8x8
        if crop_bottom > 0 {
            w.bit(1);
            w.ue(0);
            w.ue(0);
            w.ue(0);
            w.ue(crop_bottom);
        } else {
            w.bit(0);
        }
        w.bit(0); // vui
        w.bit(1); // rbsp stop bit
        w.out
    }

    /// An SPS for 640×480 (40×30 macroblocks), used by other tests too.
    pub(crate) const SPS_640X480: [u8; 9] = [0x67, 0x42, 0xc0, 0x1e, 0xf4, 0x05, 0x01, 0xec, 0x80];

    #[test]
    fn dimensions_from_generated_sps() {
        assert_eq!(sps_dimensions(&baseline_sps(40, 30, 0)), Some((640, 480)));
        // 1920×1080 is coded as 1088 lines with 8 cropped (4 units of 2 lines).
        assert_eq!(
            sps_dimensions(&baseline_sps(120, 68, 4)),
            Some((1920, 1080))
        );
        assert_eq!(sps_dimensions(&SPS_640X480), Some((640, 480)));
        assert_eq!(baseline_sps(40, 30, 0), SPS_640X480.to_vec());
        assert_eq!(sps_dimensions(&[0x68, 0x00]), None);
        assert_eq!(sps_dimensions(&[0x67]), None);
    }

    #[test]
    fn emulation_prevention_is_skipped() {
        let mut r = Bits::new(&[0x00, 0x00, 0x03, 0x01]);
        assert_eq!(r.u(16), Some(0));
        assert_eq!(r.u(8), Some(1));
    }

    #[test]
    fn avcc_layout() {
        let sps = baseline_sps(40, 30, 0);
        let v = avcc(&sps, &[0x68, 0xce]).expect("sps long enough");
        assert_eq!(&v[..6], &[1, 66, 0xc0, 30, 0xff, 0xe1]);
        assert_eq!(v.len(), 6 + 2 + sps.len() + 1 + 2 + 2);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_sps_never_panics(mut bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            bytes.insert(0, 0x67);
            let _ = sps_dimensions(&bytes);
        }
    }
}
