//! Stills from the document camera (高拍仪) and the kiosk camera: the [`StillCamera`] trait, a
//! V4L2 implementation through GStreamer ([`gst::V4l2StillCamera`]: MJPEG passed through
//! without re-encoding when colour is asked), and a simulated one ([`SimulatedStillCamera`])
//! that draws a recognisable full-resolution test page (or a stand-in resident for the kiosk
//! camera) with a timestamp and encodes it with GStreamer's `jpegenc`.
//!
//! How it is driven: the device service calls [`StillCamera::capture`] on a blocking thread;
//! every GStreamer wait is bounded and checks the cancel flag.
//!
//! Not done: auto-crop and deskew. Doing them properly needs page-edge detection and a
//! perspective warp on the decoded image (OpenCV-class work); a half-done crop that cuts off
//! part of a document is worse than none, so the still is delivered as the camera took it.

pub mod gst;
pub mod page;

use std::sync::atomic::AtomicBool;

use protocol::device::{ColourMode, ImageSize};

pub use page::{SimulatedStillCamera, Subject};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StillRequest {
    pub colour: ColourMode,
    pub size: ImageSize,
}

/// A raw picture (drawn by [`page`], encoded by [`gst`]): the luma plane and, for colour, quarter-size chroma planes (I420).
#[derive(Clone)]
pub struct Planes {
    pub size: ImageSize,
    pub y: Vec<u8>,
    /// U and V, or `None` for greyscale.
    pub uv: Option<(Vec<u8>, Vec<u8>)>,
}

/// A JPEG still.
#[derive(Clone, PartialEq, Eq)]
pub struct Still {
    pub jpeg: Vec<u8>,
    pub size: ImageSize,
}

impl std::fmt::Debug for Still {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Still")
            .field("bytes", &self.jpeg.len())
            .field("size", &self.size)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("不支持该分辨率 / unsupported resolution {0}x{1}")]
    Resolution(u32, u32),
    #[error("相机无法出图 / the camera delivered no image: {0}")]
    Pipeline(String),
    #[error("拍照已取消 / capture canceled")]
    Canceled,
    #[error("相机未在时限内出图 / no image in time")]
    Timeout,
}

/// A camera that takes stills.
pub trait StillCamera: Send + Sync {
    /// Resolutions offered, largest first.
    fn resolutions(&self) -> Vec<ImageSize>;
    /// A short model description for `Common.Status`.
    fn model(&self) -> String;
    /// Takes one still. Blocks; bounded by the implementation's own timeout and `cancel`.
    fn capture(&self, request: &StillRequest, cancel: &AtomicBool) -> Result<Still, CaptureError>;
    /// The device node it captures from, if it is a real device (the self-test checks that
    /// the node exists and asks it for its modes).
    fn device_path(&self) -> Option<&str> {
        None
    }
}

/// Width and height from a JPEG's frame header (read by [`protocol::jpeg`], which the relay
/// uses too); `None` if the bytes are not a JPEG with a frame header.
pub fn jpeg_size(bytes: &[u8]) -> Option<ImageSize> {
    protocol::jpeg::frame_header(bytes).map(|h| ImageSize {
        width: h.width,
        height: h.height,
    })
}

/// Resolutions from a profile's video spec, largest first.
pub fn profile_resolutions(profile: Option<&device_profiles::DeviceProfile>) -> Vec<ImageSize> {
    let mut sizes: Vec<ImageSize> = profile
        .and_then(|p| p.video.as_ref())
        .map(|v| {
            v.resolutions
                .iter()
                .map(|r| ImageSize {
                    width: r.width,
                    height: r.height,
                })
                .collect()
        })
        .unwrap_or_default();
    sizes.sort_by_key(|s| std::cmp::Reverse(u64::from(s.width) * u64::from(s.height)));
    sizes
}
