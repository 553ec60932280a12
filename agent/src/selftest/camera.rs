//! The camera check.
//!
//! Camera: the device must offer a mode the profile accepts (format, at least
//! `min_resolution`, at least `min_frame_rate`); then frames are captured through GStreamer in
//! the preferred mode, decoded to luma and judged by [`video_analysis`](super::video_analysis):
//! black, flat, frozen, exposure, sharpness and the frame rate the timestamps show. A simulated
//! kiosk's camera is the same `videotestsrc` the live video uses (a black or frozen camera is
//! that source drawing black or a still picture), so the same analysis runs on it.
//!
//! The document camera's check is in [`document_camera`](super::document_camera).
//!
//! Everything here blocks; the runner calls it on a worker thread with a time limit, and every
//! GStreamer wait inside is bounded too.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use device_profiles::{PixelFormat, VideoSpec};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use protocol::device::DeviceKind;
use protocol::inspection::CheckResult;

use super::check::{Check, bi};
use super::video_analysis::{self, FrameFindings, Luma, Picture};
use crate::devices::faults::CameraFault;
use crate::media::VideoSource;
use crate::media::elements;

/// Where the camera's frames come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CameraSource {
    V4l2(PathBuf),
    /// The simulated camera (the live video's test source), optionally with a fault.
    Simulated(Option<CameraFault>),
}

/// Frames before this much capture time are not judged: exposure and white balance settle.
const WARM_UP: Duration = Duration::from_millis(500);
/// How much capture time is judged.
const JUDGED: Duration = Duration::from_millis(1000);
/// At most this many frames are kept for judging.
const MAX_FRAMES: usize = 30;
/// The longest the capture may take, start-up included.
const CAPTURE_LIMIT: Duration = Duration::from_secs(6);

const CAMERA: Option<DeviceKind> = Some(DeviceKind::Camera);

/// A picture size. (The profiles' own resolution type is not nameable outside their crate:
/// `device_profiles::Resolution` is the resolver's result.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size {
    pub width: u32,
    pub height: u32,
}

impl Size {
    pub fn covers(self, other: Size) -> bool {
        self.width >= other.width && self.height >= other.height
    }
}

impl std::fmt::Display for Size {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}", self.width, self.height)
    }
}

/// A capture mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode {
    pub format: PixelFormat,
    pub size: Size,
    pub fps: u32,
}

impl Mode {
    fn caps(&self) -> gst::Caps {
        let (name, raw) = caps_name(self.format);
        let mut b = gst::Caps::builder(name)
            .field("width", self.size.width as i32)
            .field("height", self.size.height as i32)
            .field("framerate", gst::Fraction::new(self.fps as i32, 1));
        if let Some(raw) = raw {
            b = b.field("format", raw);
        }
        b.build()
    }
}

fn caps_name(format: PixelFormat) -> (&'static str, Option<&'static str>) {
    match format {
        PixelFormat::Mjpeg => ("image/jpeg", None),
        PixelFormat::Yuyv => ("video/x-raw", Some("YUY2")),
        PixelFormat::Nv12 => ("video/x-raw", Some("NV12")),
        PixelFormat::I420 => ("video/x-raw", Some("I420")),
    }
}

fn format_name(format: PixelFormat) -> &'static str {
    match format {
        PixelFormat::Mjpeg => "MJPEG",
        PixelFormat::Yuyv => "YUYV",
        PixelFormat::Nv12 => "NV12",
        PixelFormat::I420 => "I420",
    }
}

/// The camera's checks: `camera.mode` and `camera.frames`.
pub fn check_camera(source: &CameraSource, spec: &VideoSpec) -> Vec<CheckResult> {
    if let CameraSource::V4l2(path) = source
        && !Path::new(path).exists()
    {
        let missing = Check::new("camera.mode", CAMERA).fail(
            bi(
                format!("未找到摄像头 {}（noDevice）", path.display()),
                format!("noDevice: no camera at {}", path.display()),
            ),
            bi(
                "检查摄像头USB线；确认配置 media.camera / devices.camera 指向正确的设备",
                "check the camera's USB cable; check that media.camera / devices.camera names the right device",
            ),
        );
        return vec![missing, not_run("camera.frames", CAMERA)];
    }
    let offered = match offered_caps(source) {
        Ok(caps) => caps,
        Err(e) => {
            return vec![
                Check::new("camera.mode", CAMERA).fail(
                    bi(format!("摄像头无法打开（hardwareError）：{e}"), format!("hardwareError: the camera does not open: {e}")),
                    bi(
                        "重新插拔摄像头；检查 video 组权限；若其他程序占用摄像头，先关闭它",
                        "replug the camera; check the video group's permissions; close any other program using it",
                    ),
                ),
                not_run("camera.frames", CAMERA),
            ];
        }
    };
    let (mode, mode_result) = choose_mode(&offered, spec);
    let Some(mode) = mode else {
        return vec![mode_result, not_run("camera.frames", CAMERA)];
    };
    let frames = match capture(source, mode) {
        Ok(c) => judge_camera(&c, mode, spec),
        Err(e) => Check::new("camera.frames", CAMERA).fail(
            bi(format!("摄像头没有输出画面：{e}"), format!("hardwareError: the camera delivers no frames: {e}")),
            bi(
                "重新插拔摄像头或重启终端；若其他程序（例如视频通话）正占用摄像头，等它结束后再检查",
                "replug the camera or restart the kiosk; if another program (e.g. a live call) holds the camera, check again when it is done",
            ),
        ),
    };
    vec![mode_result, frames]
}

pub(super) fn not_run(id: &'static str, device: Option<DeviceKind>) -> CheckResult {
    Check::new(id, device).skipped(bi(
        "上一步失败，未检查",
        "not checked: the step before failed",
    ))
}

/// The caps the source can produce.
pub(super) fn offered_caps(source: &CameraSource) -> Result<gst::Caps, String> {
    gst::init().map_err(|e| e.to_string())?;
    let src = match source {
        CameraSource::V4l2(path) => {
            let src = elements::make("v4l2src").map_err(|e| e.to_string())?;
            elements::set(&src, "device", path.to_string_lossy().as_ref())
                .map_err(|e| e.to_string())?;
            src
        }
        CameraSource::Simulated(_) => elements::make("videotestsrc").map_err(|e| e.to_string())?,
    };
    src.set_state(gst::State::Ready)
        .map_err(|e| format!("{e}"))?;
    let caps = src
        .static_pad("src")
        .map(|p| p.query_caps(None))
        .ok_or_else(|| "the source has no output".to_owned());
    let _ = src.set_state(gst::State::Null);
    caps
}

/// The profile's preferred mode the device offers, and the `camera.mode` result.
pub fn choose_mode(offered: &gst::Caps, spec: &VideoSpec) -> (Option<Mode>, CheckResult) {
    let min = Size {
        width: spec.self_test.min_resolution.width,
        height: spec.self_test.min_resolution.height,
    };
    let sizes: Vec<Size> = if spec.resolutions.is_empty() {
        vec![min]
    } else {
        spec.resolutions
            .iter()
            .map(|r| Size {
                width: r.width,
                height: r.height,
            })
            .filter(|r| r.covers(min))
            .collect()
    };
    let rates: Vec<u32> = spec
        .frame_rates
        .iter()
        .copied()
        .filter(|r| *r >= spec.self_test.min_frame_rate)
        .collect();
    for format in &spec.formats {
        for size in &sizes {
            for fps in &rates {
                let mode = Mode {
                    format: *format,
                    size: *size,
                    fps: *fps,
                };
                if offered.can_intersect(&mode.caps()) {
                    let result = Check::new("camera.mode", CAMERA)
                        .measure("width", f64::from(size.width), "px")
                        .measure("height", f64::from(size.height), "px")
                        .measure("frame_rate", f64::from(*fps), "fps")
                        .pass(bi(
                            format!(
                                "摄像头已打开，使用 {} {} @ {} 帧/秒",
                                format_name(*format),
                                size,
                                fps
                            ),
                            format!(
                                "online: the camera opens and offers {} {} at {} fps",
                                format_name(*format),
                                size,
                                fps
                            ),
                        ));
                    return (Some(mode), result);
                }
            }
        }
    }
    let wanted: Vec<&str> = spec.formats.iter().map(|f| format_name(*f)).collect();
    let result = Check::new("camera.mode", CAMERA).fail(
        bi(
            format!(
                "摄像头不支持设备配置要求的模式（{}，至少 {}、{} 帧/秒）",
                wanted.join("/"),
                min,
                spec.self_test.min_frame_rate
            ),
            format!(
                "hardwareError: the camera offers no mode the profile accepts ({}, at least {} and {} fps)",
                wanted.join("/"),
                min,
                spec.self_test.min_frame_rate
            ),
        ),
        bi(
            "确认接入的是设备配置中的摄像头型号；否则更换摄像头或为该型号添加设备配置",
            "check that the camera is the model the kiosk profile names; otherwise replace it or add a profile for its model",
        ),
    );
    (None, result)
}

/// Frames captured for judging.
pub struct Captured {
    pub frames: Vec<Luma>,
    pub timestamps_ns: Vec<u64>,
}

fn source_elements(source: &CameraSource, mode: Mode) -> Result<Vec<gst::Element>, String> {
    let e = |r: Result<gst::Element, crate::media::MediaError>| r.map_err(|e| e.to_string());
    let (w, h, fps) = (mode.size.width, mode.size.height, mode.fps);
    let mut chain = match source {
        CameraSource::V4l2(path) => {
            let src = e(elements::make("v4l2src"))?;
            elements::set(&src, "device", path.to_string_lossy().as_ref())
                .map_err(|e| e.to_string())?;
            vec![src]
        }
        // The healthy simulated camera is the live video's own source.
        CameraSource::Simulated(None) => {
            elements::video_source(&VideoSource::Test, w, h, fps).map_err(|e| e.to_string())?
        }
        CameraSource::Simulated(Some(fault)) => {
            let src = e(elements::make("videotestsrc"))?;
            elements::set(&src, "is-live", true).map_err(|e| e.to_string())?;
            match fault {
                CameraFault::Black => {
                    elements::set_nick(&src, "pattern", "black").map_err(|e| e.to_string())?
                }
                // Colour bars standing still (the plain `smpte` pattern has a patch of
                // moving snow, so a stuck camera is the 100% bars without it).
                CameraFault::Frozen => {
                    elements::set_nick(&src, "pattern", "smpte100").map_err(|e| e.to_string())?
                }
            }
            vec![src]
        }
    };
    chain.push(e(elements::capsfilter(mode.caps()))?);
    if mode.format == PixelFormat::Mjpeg {
        chain.push(e(elements::make("jpegdec"))?);
    }
    chain.push(e(elements::make("videoconvert"))?);
    Ok(chain)
}

/// Captures frames in `mode`: skips the warm-up, keeps up to [`MAX_FRAMES`] over [`JUDGED`].
pub fn capture(source: &CameraSource, mode: Mode) -> Result<Captured, String> {
    gst::init().map_err(|e| e.to_string())?;
    let pipeline = gst::Pipeline::with_name("selftest-camera");
    let mut chain = source_elements(source, mode)?;
    let gray = gst::Caps::builder("video/x-raw")
        .field("format", "GRAY8")
        .build();
    let sink = gst_app::AppSink::builder()
        .caps(&gray)
        .sync(false)
        .max_buffers(8)
        .drop(true)
        .build();
    chain.push(sink.clone().upcast());
    pipeline.add_many(chain.iter()).map_err(|e| e.to_string())?;
    gst::Element::link_many(chain.iter()).map_err(|e| format!("linking: {e}"))?;
    let running = Running(pipeline);
    running
        .0
        .set_state(gst::State::Playing)
        .map_err(|e| format!("{e}"))?;
    let bus = running.0.bus().ok_or("no bus")?;
    let started = Instant::now();
    let (mut frames, mut timestamps) = (Vec::new(), Vec::new());
    let mut first_pts: Option<u64> = None;
    while started.elapsed() < CAPTURE_LIMIT {
        if let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error])
            && let gst::MessageView::Error(err) = msg.view()
        {
            return Err(err.error().to_string());
        }
        let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_mseconds(100)) else {
            continue;
        };
        let (Some(buffer), Some(caps)) = (sample.buffer(), sample.caps()) else {
            continue;
        };
        let pts = buffer.pts().map(gst::ClockTime::nseconds).unwrap_or(0);
        let first = *first_pts.get_or_insert(pts);
        let age = Duration::from_nanos(pts.saturating_sub(first));
        if age < WARM_UP {
            continue;
        }
        let info = gst_video::VideoInfo::from_caps(caps).map_err(|e| e.to_string())?;
        let map = buffer.map_readable().map_err(|e| e.to_string())?;
        let stride = usize::try_from(info.stride()[0]).map_err(|_| "negative stride")?;
        let luma = Luma::from_strided(
            info.width() as usize,
            info.height() as usize,
            stride,
            map.as_slice(),
        )
        .ok_or("frame smaller than its caps")?;
        frames.push(luma);
        timestamps.push(pts);
        if frames.len() >= MAX_FRAMES || age >= WARM_UP + JUDGED {
            break;
        }
    }
    if frames.len() < 2 {
        return Err(format!(
            "only {} frames in {} s",
            frames.len(),
            CAPTURE_LIMIT.as_secs()
        ));
    }
    Ok(Captured {
        frames,
        timestamps_ns: timestamps,
    })
}

pub(super) struct Running(pub(super) gst::Pipeline);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.set_state(gst::State::Null);
    }
}

/// Judges captured frames against the profile: the `camera.frames` result.
pub fn judge_camera(captured: &Captured, mode: Mode, spec: &VideoSpec) -> CheckResult {
    let Some(f) = video_analysis::judge_frames(&captured.frames) else {
        return Check::new("camera.frames", CAMERA).fail(
            bi("没有可判断的画面", "no frames to judge"),
            bi(
                "重新插拔摄像头后再检查",
                "replug the camera and check again",
            ),
        );
    };
    let fps = video_analysis::frame_rate(&captured.timestamps_ns).unwrap_or(0.0);
    let check = Check::new("camera.frames", CAMERA)
        .measure("mean_luma", f.exposure.mean, "")
        .measure("luma_stddev", f.exposure.stddev, "")
        .measure("motion", f.max_motion, "")
        .measure("sharpness", f.sharpness, "")
        .measure("frame_rate", fps, "fps")
        .measure("frames", f.frames as f64, "");
    judge_findings(check, &f, fps, mode, spec)
}

fn judge_findings(
    check: Check,
    f: &FrameFindings,
    fps: f64,
    mode: Mode,
    spec: &VideoSpec,
) -> CheckResult {
    let st = &spec.self_test;
    let mean = f.exposure.mean;
    match f.picture {
        Picture::Black => {
            return check.fail(
                bi(
                    format!("画面全黑（平均亮度 {mean:.0}）"),
                    format!("hardwareError: the picture is black (mean luma {mean:.0})"),
                ),
                bi(
                    "检查镜头是否被遮挡、镜头盖是否取下、现场照明是否打开；仍全黑则更换摄像头",
                    "check that nothing covers the lens, the lens cap is off and the lights are on; if it stays black, replace the camera",
                ),
            );
        }
        Picture::Flat => {
            return check.fail(
                bi(
                    format!("画面为单一颜色，没有图像（平均亮度 {mean:.0}）"),
                    format!("hardwareError: the picture is one flat colour (mean luma {mean:.0})"),
                ),
                bi(
                    "检查镜头是否被遮挡；重新插拔摄像头；仍无图像则更换摄像头",
                    "check that nothing covers the lens; replug the camera; if there is still no picture, replace it",
                ),
            );
        }
        Picture::Frozen => {
            return check.fail(
                bi(
                    format!("画面静止不动（{} 帧完全相同）", f.frames),
                    format!("hardwareError: the picture is frozen ({} identical frames)", f.frames),
                ),
                bi(
                    "重新插拔摄像头或重启终端；换一个USB口；仍静止则更换摄像头",
                    "replug the camera or restart the kiosk; try another USB port; if it stays frozen, replace the camera",
                ),
            );
        }
        Picture::Normal => {}
    }
    let min_fps = f64::from(st.min_frame_rate);
    if fps < min_fps * 0.5 {
        return check.fail(
            bi(
                format!("帧率过低：{fps:.1} 帧/秒（要求 {min_fps:.0}）"),
                format!("hardwareError: {fps:.1} fps, the profile needs {min_fps:.0}"),
            ),
            bi(
                "把摄像头接到单独的USB口（不经集线器）；检查终端CPU占用",
                "connect the camera to its own USB port (no hub); check the kiosk's CPU load",
            ),
        );
    }
    let mut problems_zh = Vec::new();
    let mut problems_en = Vec::new();
    let mut remedies_zh = Vec::new();
    let mut remedies_en = Vec::new();
    if fps < min_fps * 0.9 {
        problems_zh.push(format!("帧率偏低 {fps:.1} 帧/秒（要求 {min_fps:.0}）"));
        problems_en.push(format!("{fps:.1} fps is below the profile's {min_fps:.0}"));
        remedies_zh.push("把摄像头接到单独的USB口");
        remedies_en.push("connect the camera to its own USB port");
    }
    let [lo, hi] = st.mean_luma;
    if mean < f64::from(lo) {
        problems_zh.push(format!("画面偏暗（平均亮度 {mean:.0}，要求至少 {lo}）"));
        problems_en.push(format!(
            "the picture is dark (mean luma {mean:.0}, at least {lo} expected)"
        ));
        remedies_zh.push("增加现场照明");
        remedies_en.push("add light at the kiosk");
    } else if mean > f64::from(hi) {
        problems_zh.push(format!("画面过亮（平均亮度 {mean:.0}，要求至多 {hi}）"));
        problems_en.push(format!(
            "the picture is too bright (mean luma {mean:.0}, at most {hi} expected)"
        ));
        remedies_zh.push("避免强光或阳光直射镜头");
        remedies_en.push("keep strong light and sunshine off the lens");
    }
    if f.sharpness < st.min_sharpness {
        problems_zh.push(format!(
            "画面模糊（清晰度 {:.2}，要求至少 {:.2}）",
            f.sharpness, st.min_sharpness
        ));
        problems_en.push(format!(
            "the picture is blurred (sharpness {:.2}, at least {:.2} expected)",
            f.sharpness, st.min_sharpness
        ));
        remedies_zh.push("擦拭镜头并调整对焦");
        remedies_en.push("clean the lens and adjust the focus");
    }
    let summary_zh = format!(
        "{} {} @ {fps:.1} 帧/秒，平均亮度 {mean:.0}，清晰度 {:.2}",
        format_name(mode.format),
        mode.size,
        f.sharpness
    );
    let summary_en = format!(
        "{} {} at {fps:.1} fps, mean luma {mean:.0}, sharpness {:.2}",
        format_name(mode.format),
        mode.size,
        f.sharpness
    );
    if problems_zh.is_empty() {
        check.pass(bi(
            format!("画面正常：{summary_zh}"),
            format!("online: frames OK, {summary_en}"),
        ))
    } else {
        check.warn(
            bi(
                format!("{}；{summary_zh}", problems_zh.join("；")),
                format!("{}; {summary_en}", problems_en.join("; ")),
            ),
            bi(remedies_zh.join("；"), remedies_en.join("; ")),
        )
    }
}

#[cfg(test)]
pub(super) mod tests {
    use protocol::inspection::CheckOutcome;

    use super::*;

    pub(in crate::selftest) fn spec(formats: Vec<PixelFormat>) -> VideoSpec {
        toml::from_str::<VideoSpec>(
            r#"formats = ["mjpeg"]
resolutions = ["1280x720", "640x480"]
frame_rates = [30, 15]
[self_test]
min_resolution = "640x480"
min_frame_rate = 15
min_sharpness = 0.05
mean_luma = [40, 220]"#,
        )
        .map(|mut s| {
            s.formats = formats;
            s
        })
        .expect("spec")
    }

    #[test]
    fn the_preferred_offered_mode_is_chosen() {
        gst::init().expect("gst");
        // A camera with MJPEG 1280x720 up to 30 fps and YUYV 640x480 at 15.
        let offered = gst::Caps::from_str(
            "image/jpeg, width=(int)1280, height=(int)720, framerate=(fraction){ 30/1, 15/1 }; \
             video/x-raw, format=(string)YUY2, width=(int)640, height=(int)480, framerate=(fraction)15/1",
        )
        .expect("caps");
        let (mode, r) = choose_mode(&offered, &spec(vec![PixelFormat::Mjpeg, PixelFormat::Yuyv]));
        assert_eq!(r.outcome, CheckOutcome::Pass);
        let mode = mode.expect("mode");
        assert_eq!(
            (mode.format, mode.size.width, mode.fps),
            (PixelFormat::Mjpeg, 1280, 30)
        );
        let (mode, _) = choose_mode(&offered, &spec(vec![PixelFormat::Yuyv]));
        assert_eq!(mode.map(|m| (m.size.width, m.fps)), Some((640, 15)));
        // Only NV12 wanted: nothing fits.
        let (mode, r) = choose_mode(&offered, &spec(vec![PixelFormat::Nv12]));
        assert!(mode.is_none());
        assert_eq!(r.outcome, CheckOutcome::Fail);
        assert!(r.remedy.is_some());
    }

    use std::str::FromStr;
}
