//! The document camera's check: one full-resolution still from the device the kiosk serves with
//! (its `StillCamera`), decoded from JPEG and judged for size, sharpness and exposure against the
//! profile.
//!
//! Everything here blocks; the runner calls it on a worker thread with a time limit, and every
//! GStreamer wait inside is bounded too.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use device_profiles::VideoSpec;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use protocol::device::{ColourMode, DeviceKind, ImageSize};
use protocol::inspection::{CheckOutcome, CheckResult};

use super::camera::{CameraSource, Running, Size, not_run, offered_caps};
use super::check::{Check, bi};
use super::video_analysis::{self, Luma};
use crate::devices::still::{StillCamera, StillRequest};
use crate::media::elements;

const DOCUMENT: Option<DeviceKind> = Some(DeviceKind::DocumentCamera);

/// The document camera's checks: `document_camera.still` and `document_camera.image`.
pub fn check_document_camera(camera: &dyn StillCamera, spec: &VideoSpec) -> Vec<CheckResult> {
    let min = Size {
        width: spec.self_test.min_resolution.width,
        height: spec.self_test.min_resolution.height,
    };
    let reconnect = || {
        bi(
            "检查高拍仪USB线（接终端主机的USB口，不经集线器）；确认配置 devices.document_camera 指向文档镜头（建议用 /dev/v4l/by-id/… 路径）",
            "check the document camera's USB cable (into the kiosk itself, no hub); check that devices.document_camera names the document lens (prefer a /dev/v4l/by-id/… path)",
        )
    };
    if let Some(path) = camera.device_path()
        && !Path::new(path).exists()
    {
        return vec![
            Check::new("document_camera.still", DOCUMENT).fail(
                bi(
                    format!("未找到高拍仪 {path}（noDevice）"),
                    format!("noDevice: no document camera at {path}"),
                ),
                reconnect(),
            ),
            not_run("document_camera.image", DOCUMENT),
        ];
    }
    let mut sizes = camera.resolutions();
    if sizes.is_empty()
        && let Some(path) = camera.device_path()
    {
        // The profile names no sizes: the device's own list (UVC descriptors), largest first.
        match offered_caps(&CameraSource::V4l2(PathBuf::from(path))) {
            Ok(caps) => sizes = jpeg_sizes(&caps),
            Err(e) => {
                return vec![
                    Check::new("document_camera.still", DOCUMENT).fail(
                        bi(
                            format!("高拍仪无法打开（hardwareError）：{e}"),
                            format!("hardwareError: the document camera does not open: {e}"),
                        ),
                        reconnect(),
                    ),
                    not_run("document_camera.image", DOCUMENT),
                ];
            }
        }
    }
    let Some(largest) = sizes.first().copied() else {
        return vec![
            Check::new("document_camera.still", DOCUMENT).fail(
                bi(
                    "高拍仪不提供 MJPEG 拍照分辨率（hardwareError）",
                    "hardwareError: the document camera offers no MJPEG still size",
                ),
                bi(
                    "确认接入的是设备配置中的高拍仪型号、devices.document_camera 指向文档镜头；否则更换高拍仪或为该型号添加设备配置",
                    "check that the document camera is the model the kiosk profile names and devices.document_camera is its document lens; otherwise replace it or add a profile for its model",
                ),
            ),
            not_run("document_camera.image", DOCUMENT),
        ];
    };
    let started = Instant::now();
    let request = StillRequest {
        colour: ColourMode::Colour,
        size: largest,
    };
    let cancel = AtomicBool::new(false);
    let still = match camera.capture(&request, &cancel) {
        Ok(s) => s,
        Err(e) => {
            return vec![
                Check::new("document_camera.still", DOCUMENT).fail(
                    bi(format!("高拍仪拍照失败：{e}"), format!("hardwareError: the document camera took no still: {e}")),
                    bi(
                        "重新插拔高拍仪；确认配置 devices.document_camera 指向文档镜头；仍失败则重启终端",
                        "replug the document camera; check devices.document_camera names the document lens; if it still fails, restart the kiosk",
                    ),
                ),
                not_run("document_camera.image", DOCUMENT),
            ];
        }
    };
    let took = started.elapsed();
    let size = still.size;
    let still_check = Check::new("document_camera.still", DOCUMENT)
        .measure("width", f64::from(size.width), "px")
        .measure("height", f64::from(size.height), "px")
        .measure("bytes", still.jpeg.len() as f64, "B")
        .measure("capture_time", took.as_secs_f64() * 1000.0, "ms");
    let big_enough = Size {
        width: size.width,
        height: size.height,
    }
    .covers(min);
    let still_result = if big_enough {
        still_check.pass(bi(
            format!(
                "全分辨率拍照成功：{}×{}，用时 {:.1} 秒",
                size.width,
                size.height,
                took.as_secs_f64()
            ),
            format!(
                "online: full-resolution still {}x{} in {:.1} s",
                size.width,
                size.height,
                took.as_secs_f64()
            ),
        ))
    } else {
        still_check.fail(
            bi(
                format!("照片分辨率 {}×{} 低于要求的 {min}", size.width, size.height),
                format!("hardwareError: the still is {}x{}, below the profile's {min}", size.width, size.height),
            ),
            bi(
                "确认接入的是文档镜头而不是人像镜头（devices.document_camera）；否则更换高拍仪",
                "check that devices.document_camera is the document lens, not the face lens; otherwise replace the document camera",
            ),
        )
    };
    let image = match decode_jpeg_luma(&still.jpeg) {
        Ok(luma) => judge_document(&luma, spec),
        Err(e) => Check::new("document_camera.image", DOCUMENT).fail(
            bi(
                format!("照片无法解码：{e}"),
                format!("hardwareError: the still does not decode: {e}"),
            ),
            bi(
                "重新插拔高拍仪后再检查",
                "replug the document camera and check again",
            ),
        ),
    };
    vec![still_result, image]
}

/// The MJPEG frame sizes in `caps`, largest first (ranges, which UVC devices do not use for
/// MJPEG, are left out).
pub fn jpeg_sizes(caps: &gst::Caps) -> Vec<ImageSize> {
    let mut sizes: Vec<ImageSize> = caps
        .iter()
        .filter(|s| s.name() == "image/jpeg")
        .filter_map(|s| {
            let width = u32::try_from(s.get::<i32>("width").ok()?).ok()?;
            let height = u32::try_from(s.get::<i32>("height").ok()?).ok()?;
            Some(ImageSize { width, height })
        })
        .collect();
    sizes.sort_by_key(|s| std::cmp::Reverse(u64::from(s.width) * u64::from(s.height)));
    sizes.dedup();
    sizes
}

/// Sharpness and exposure of a document still: the `document_camera.image` result.
pub fn judge_document(luma: &Luma, spec: &VideoSpec) -> CheckResult {
    let st = &spec.self_test;
    let e = video_analysis::exposure(luma, 2);
    let sharpness = video_analysis::sharpness(luma);
    let check = Check::new("document_camera.image", DOCUMENT)
        .measure("sharpness", sharpness, "")
        .measure("mean_luma", e.mean, "")
        .measure("clipped_high", e.clipped_high * 100.0, "%")
        .measure("clipped_low", e.clipped_low * 100.0, "%");
    if e.mean < video_analysis::BLACK_MEAN && e.stddev < video_analysis::BLACK_STDDEV {
        return check.fail(
            bi(
                format!("照片全黑（平均亮度 {:.0}）", e.mean),
                format!(
                    "hardwareError: the still is black (mean luma {:.0})",
                    e.mean
                ),
            ),
            bi(
                "检查高拍仪补光灯与镜头；仍全黑则更换高拍仪",
                "check the document camera's lamp and lens; if it stays black, replace it",
            ),
        );
    }
    let [lo, hi] = st.mean_luma;
    let mut outcome = CheckOutcome::Pass;
    let (mut zh, mut en, mut rzh, mut ren) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    if sharpness < st.min_sharpness {
        outcome = CheckOutcome::Fail;
        zh.push(format!(
            "照片模糊，小字难以辨认（清晰度 {sharpness:.2}，要求至少 {:.2}）",
            st.min_sharpness
        ));
        en.push(format!("the still is blurred, small print is illegible (sharpness {sharpness:.2}, at least {:.2})", st.min_sharpness));
        rzh.push("擦拭镜头，调整对焦或镜头高度，确认材料平放在拍摄区");
        ren.push("clean the lens, adjust focus or lens height, and lay the page flat in the capture area");
    }
    if e.mean < f64::from(lo)
        || e.mean > f64::from(hi)
        || e.clipped_high > 0.25
        || e.clipped_low > 0.25
    {
        outcome = outcome.max(CheckOutcome::Warn);
        if e.mean < f64::from(lo) || e.clipped_low > 0.25 {
            zh.push(format!(
                "照片偏暗（平均亮度 {:.0}，暗部溢出 {:.0}%）",
                e.mean,
                e.clipped_low * 100.0
            ));
            en.push(format!(
                "the still is dark (mean luma {:.0}, {:.0}% crushed)",
                e.mean,
                e.clipped_low * 100.0
            ));
            rzh.push("打开高拍仪补光灯，避免遮挡光线");
            ren.push("switch on the document camera's lamp and keep shadows off the platen");
        } else {
            zh.push(format!(
                "照片过曝（平均亮度 {:.0}，过曝 {:.0}%）",
                e.mean,
                e.clipped_high * 100.0
            ));
            en.push(format!(
                "the still is over-exposed (mean luma {:.0}, {:.0}% clipped)",
                e.mean,
                e.clipped_high * 100.0
            ));
            rzh.push("调低补光灯亮度，避免反光和阳光直射");
            ren.push("dim the lamp and keep glare and sunshine off the platen");
        }
    }
    let summary_zh = format!("清晰度 {sharpness:.2}，平均亮度 {:.0}", e.mean);
    let summary_en = format!("sharpness {sharpness:.2}, mean luma {:.0}", e.mean);
    if outcome == CheckOutcome::Pass {
        return check.pass(bi(
            format!("清晰度与曝光正常：{summary_zh}"),
            format!("online: focus and exposure OK, {summary_en}"),
        ));
    }
    check.outcome(
        outcome,
        bi(
            format!("{}；{summary_zh}", zh.join("；")),
            format!("{}; {summary_en}", en.join("; ")),
        ),
        bi(rzh.join("；"), ren.join("; ")),
    )
}

/// Decodes a JPEG to its luma plane with GStreamer (`appsrc ! jpegdec ! videoconvert ! GRAY8`).
pub fn decode_jpeg_luma(jpeg: &[u8]) -> Result<Luma, String> {
    gst::init().map_err(|e| e.to_string())?;
    let pipeline = gst::Pipeline::with_name("selftest-jpeg");
    let src = gst_app::AppSrc::builder()
        .caps(&gst::Caps::builder("image/jpeg").build())
        .format(gst::Format::Time)
        .build();
    let dec = elements::make("jpegdec").map_err(|e| e.to_string())?;
    let convert = elements::make("videoconvert").map_err(|e| e.to_string())?;
    let sink = gst_app::AppSink::builder()
        .caps(
            &gst::Caps::builder("video/x-raw")
                .field("format", "GRAY8")
                .build(),
        )
        .sync(false)
        .build();
    let chain: [&gst::Element; 4] = [src.upcast_ref(), &dec, &convert, sink.upcast_ref()];
    pipeline.add_many(chain).map_err(|e| e.to_string())?;
    gst::Element::link_many(chain).map_err(|e| e.to_string())?;
    let running = Running(pipeline);
    running
        .0
        .set_state(gst::State::Playing)
        .map_err(|e| format!("{e}"))?;
    let mut buffer = gst::Buffer::from_slice(jpeg.to_vec());
    if let Some(b) = buffer.get_mut() {
        b.set_pts(gst::ClockTime::ZERO);
    }
    src.push_buffer(buffer).map_err(|e| e.to_string())?;
    src.end_of_stream().map_err(|e| e.to_string())?;
    let bus = running.0.bus().ok_or("no bus")?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error])
            && let gst::MessageView::Error(err) = msg.view()
        {
            return Err(err.error().to_string());
        }
        if let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_mseconds(100)) {
            let (buffer, caps) = (
                sample.buffer().ok_or("empty sample")?,
                sample.caps().ok_or("no caps")?,
            );
            let info = gst_video::VideoInfo::from_caps(caps).map_err(|e| e.to_string())?;
            let map = buffer.map_readable().map_err(|e| e.to_string())?;
            let stride = usize::try_from(info.stride()[0]).map_err(|_| "negative stride")?;
            return Luma::from_strided(
                info.width() as usize,
                info.height() as usize,
                stride,
                map.as_slice(),
            )
            .ok_or_else(|| "decoded frame smaller than its caps".to_owned());
        }
        if sink.is_eos() {
            return Err("the decoder produced no picture".into());
        }
    }
    Err("decoding timed out".into())
}

/// The still size the profile's device offers, for display.
pub fn size_text(s: ImageSize) -> String {
    format!("{}x{}", s.width, s.height)
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use device_profiles::PixelFormat;

    use super::*;
    use crate::selftest::camera::tests::spec;

    #[test]
    fn jpeg_sizes_are_read_from_the_device_caps_largest_first() {
        gst::init().expect("gst");
        let offered = gst::Caps::from_str(
            "image/jpeg, width=(int)1920, height=(int)1080, framerate=(fraction)30/1; \
             image/jpeg, width=(int)3264, height=(int)2448, framerate=(fraction)15/1; \
             video/x-raw, format=(string)YUY2, width=(int)4000, height=(int)3000, framerate=(fraction)5/1; \
             image/jpeg, width=(int)[ 1, 100 ], height=(int)[ 1, 100 ]",
        )
        .expect("caps");
        let sizes: Vec<(u32, u32)> = jpeg_sizes(&offered)
            .into_iter()
            .map(|s| (s.width, s.height))
            .collect();
        assert_eq!(sizes, vec![(3264, 2448), (1920, 1080)]);
    }

    /// A still camera on a device node that is not there.
    struct Unplugged;

    impl StillCamera for Unplugged {
        fn resolutions(&self) -> Vec<ImageSize> {
            Vec::new()
        }
        fn model(&self) -> String {
            "uvc".into()
        }
        fn capture(
            &self,
            _: &StillRequest,
            _: &AtomicBool,
        ) -> Result<crate::devices::still::Still, crate::devices::still::CaptureError> {
            Err(crate::devices::still::CaptureError::Pipeline(
                "unplugged".into(),
            ))
        }
        fn device_path(&self) -> Option<&str> {
            Some("/dev/rvw-no-such-document-camera")
        }
    }

    #[test]
    fn an_unplugged_document_camera_is_no_device_with_its_path() {
        let results = check_document_camera(&Unplugged, &spec(vec![PixelFormat::Mjpeg]));
        assert_eq!(results[0].outcome, CheckOutcome::Fail);
        assert!(
            results[0]
                .detail
                .zh
                .contains("未找到高拍仪 /dev/rvw-no-such-document-camera"),
            "{:?}",
            results[0]
        );
        assert!(results[0].detail.en.starts_with("noDevice"));
        let remedy = results[0].remedy.as_ref().expect("remedy");
        assert!(remedy.zh.contains("devices.document_camera"));
        assert_eq!(results[1].outcome, CheckOutcome::Skipped);
    }
}
