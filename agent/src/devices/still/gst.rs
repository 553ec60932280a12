//! GStreamer parts of the stills: JPEG encoding of drawn planes (`appsrc ! jpegenc ! appsink`)
//! and V4L2 still capture (`v4l2src ! image/jpeg ! appsink`, the camera's MJPEG frame passed
//! through as it is; greyscale decodes and re-encodes).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use protocol::device::{ColourMode, ImageSize};

use super::{CaptureError, Planes, Still, StillCamera, StillRequest, jpeg_size};

/// The longest a capture or an encode may take.
const LIMIT: Duration = Duration::from_secs(15);
const POLL: gst::ClockTime = gst::ClockTime::from_mseconds(100);

fn pipeline_error(e: impl std::fmt::Display) -> CaptureError {
    CaptureError::Pipeline(e.to_string())
}

fn init() -> Result<(), CaptureError> {
    gst::init().map_err(pipeline_error)
}

struct Running(gst::Pipeline);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.set_state(gst::State::Null);
    }
}

fn launch(description: &str) -> Result<(Running, gst_app::AppSink), CaptureError> {
    let pipeline = gst::parse::launch(description)
        .map_err(pipeline_error)?
        .downcast::<gst::Pipeline>()
        .map_err(|_| CaptureError::Pipeline("not a pipeline".into()))?;
    let sink = pipeline
        .by_name("sink")
        .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
        .ok_or_else(|| CaptureError::Pipeline("no appsink".into()))?;
    Ok((Running(pipeline), sink))
}

/// Pulls samples until end of stream and returns the last buffer's bytes.
fn last_buffer(
    running: &Running,
    sink: &gst_app::AppSink,
    cancel: &AtomicBool,
) -> Result<Vec<u8>, CaptureError> {
    let deadline = Instant::now() + LIMIT;
    let bus = running
        .0
        .bus()
        .ok_or_else(|| CaptureError::Pipeline("no bus".into()))?;
    let mut last = None;
    loop {
        if cancel.load(Ordering::Relaxed) {
            return Err(CaptureError::Canceled);
        }
        if Instant::now() >= deadline {
            return Err(CaptureError::Timeout);
        }
        if let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error])
            && let gst::MessageView::Error(e) = msg.view()
        {
            return Err(CaptureError::Pipeline(e.error().to_string()));
        }
        match sink.try_pull_sample(POLL) {
            Some(sample) => {
                let buffer = sample
                    .buffer()
                    .ok_or_else(|| CaptureError::Pipeline("empty sample".into()))?;
                let map = buffer.map_readable().map_err(pipeline_error)?;
                last = Some(map.as_slice().to_vec());
            }
            None if sink.is_eos() => {
                return last.ok_or_else(|| CaptureError::Pipeline("no frame".into()));
            }
            None => {}
        }
    }
}

/// Encodes drawn planes (I420 with chroma, else GRAY8) as a JPEG.
pub fn encode_jpeg(p: &Planes, quality: u32, cancel: &AtomicBool) -> Result<Vec<u8>, CaptureError> {
    init()?;
    let (w, h) = (p.size.width, p.size.height);
    let format = if p.uv.is_some() {
        gst_video::VideoFormat::I420
    } else {
        gst_video::VideoFormat::Gray8
    };
    let info = gst_video::VideoInfo::builder(format, w, h)
        .fps(gst::Fraction::new(0, 1))
        .build()
        .map_err(pipeline_error)?;
    let mut data = vec![0u8; info.size()];
    let copy_plane = |data: &mut [u8], plane: usize, src: &[u8], pw: usize, ph: usize| {
        let (stride, offset) = (info.stride()[plane] as usize, info.offset()[plane]);
        for row in 0..ph {
            let dst = offset + row * stride;
            data[dst..dst + pw].copy_from_slice(&src[row * pw..row * pw + pw]);
        }
    };
    copy_plane(&mut data, 0, &p.y, w as usize, h as usize);
    if let Some((u, v)) = &p.uv {
        let (cw, ch) = (w.div_ceil(2) as usize, h.div_ceil(2) as usize);
        copy_plane(&mut data, 1, u, cw, ch);
        copy_plane(&mut data, 2, v, cw, ch);
    }
    let caps = info.to_caps().map_err(pipeline_error)?;
    let (running, sink) = launch(&format!(
        "appsrc name=src format=time ! jpegenc quality={quality} ! appsink name=sink sync=false"
    ))?;
    let src = running
        .0
        .by_name("src")
        .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
        .ok_or_else(|| CaptureError::Pipeline("no appsrc".into()))?;
    src.set_caps(Some(&caps));
    running
        .0
        .set_state(gst::State::Playing)
        .map_err(pipeline_error)?;
    let mut buffer = gst::Buffer::from_mut_slice(data);
    if let Some(b) = buffer.get_mut() {
        b.set_pts(gst::ClockTime::ZERO);
    }
    src.push_buffer(buffer).map_err(pipeline_error)?;
    src.end_of_stream().map_err(pipeline_error)?;
    last_buffer(&running, &sink, cancel)
}

/// A UVC camera (document camera or kiosk camera) on V4L2.
pub struct V4l2StillCamera {
    device: String,
    resolutions: Vec<ImageSize>,
    model: String,
    /// Frames to let pass before the still, so exposure and focus settle.
    warmup_frames: u32,
}

impl V4l2StillCamera {
    pub fn new(device: &str, resolutions: Vec<ImageSize>, model: &str) -> Self {
        V4l2StillCamera {
            device: device.to_owned(),
            resolutions,
            model: model.to_owned(),
            warmup_frames: 5,
        }
    }
}

impl StillCamera for V4l2StillCamera {
    fn resolutions(&self) -> Vec<ImageSize> {
        self.resolutions.clone()
    }

    fn device_path(&self) -> Option<&str> {
        Some(&self.device)
    }

    fn model(&self) -> String {
        self.model.clone()
    }

    fn capture(&self, request: &StillRequest, cancel: &AtomicBool) -> Result<Still, CaptureError> {
        init()?;
        let ImageSize { width, height } = request.size;
        if !self.resolutions.is_empty() && !self.resolutions.contains(&request.size) {
            return Err(CaptureError::Resolution(width, height));
        }
        let device = self.device.replace('"', "");
        let frames = self.warmup_frames + 1;
        let convert = match request.colour {
            // MJPEG straight from the camera: no re-encoding.
            ColourMode::Colour => String::new(),
            ColourMode::Grey => {
                "! jpegdec ! videoconvert ! video/x-raw,format=GRAY8 ! jpegenc quality=90 ".into()
            }
        };
        let (running, sink) = launch(&format!(
            "v4l2src device=\"{device}\" num-buffers={frames} ! image/jpeg,width={width},height={height} {convert}! appsink name=sink sync=false"
        ))?;
        running
            .0
            .set_state(gst::State::Playing)
            .map_err(pipeline_error)?;
        let jpeg = last_buffer(&running, &sink, cancel)?;
        let size = jpeg_size(&jpeg).unwrap_or(request.size);
        Ok(Still { jpeg, size })
    }
}
