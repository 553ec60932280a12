//! Element construction from plain config values. Properties are set one by one on typed
//! elements, never through a launch string, so a device path cannot inject pipeline syntax.

use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;

use super::MediaError;
use super::config::{AudioOutput, AudioSource, V4l2Format, VideoSource};

pub(crate) fn make(factory: &'static str) -> Result<gst::Element, MediaError> {
    gst::ElementFactory::make(factory)
        .build()
        .map_err(|_| MediaError::MissingElement { factory })
}

pub(crate) fn make_named(factory: &'static str, name: &str) -> Result<gst::Element, MediaError> {
    gst::ElementFactory::make(factory)
        .name(name)
        .build()
        .map_err(|_| MediaError::MissingElement { factory })
}

fn property_error(element: &gst::Element, property: &str, reason: String) -> MediaError {
    MediaError::Property {
        element: element
            .factory()
            .map(|f| f.name().to_string())
            .unwrap_or_else(|| element.name().to_string()),
        property: property.to_owned(),
        reason,
    }
}

/// Sets a property, checking its existence and type first: `set_property` itself would panic
/// on a plugin version whose property differs from what this code expects.
pub(crate) fn set<V: ToValue>(
    element: &gst::Element,
    property: &str,
    value: V,
) -> Result<(), MediaError> {
    let pspec = element
        .find_property(property)
        .ok_or_else(|| property_error(element, property, "no such property".into()))?;
    let value = value.to_value();
    if !value.type_().is_a(pspec.value_type()) {
        return Err(property_error(
            element,
            property,
            format!("expects {}, given {}", pspec.value_type(), value.type_()),
        ));
    }
    element.set_property_from_value(property, &value);
    Ok(())
}

/// Sets an enum or flags property by its nick (`"realtime"`, `"cbr"`), as `gst-launch` would.
pub(crate) fn set_nick(
    element: &gst::Element,
    property: &str,
    nick: &str,
) -> Result<(), MediaError> {
    let pspec = element
        .find_property(property)
        .ok_or_else(|| property_error(element, property, "no such property".into()))?;
    let value = glib::Value::deserialize_with_pspec(nick, &pspec)
        .map_err(|_| property_error(element, property, format!("`{nick}` is not a valid value")))?;
    element.set_property_from_value(property, &value);
    Ok(())
}

pub(crate) fn capsfilter(caps: gst::Caps) -> Result<gst::Element, MediaError> {
    let filter = make("capsfilter")?;
    set(&filter, "caps", caps)?;
    Ok(filter)
}

/// A live source's elements up to raw video: one element, or `v4l2src ! jpegdec` for MJPEG.
pub(crate) fn video_source(
    source: &VideoSource,
    width: u32,
    height: u32,
    fps: u32,
) -> Result<Vec<gst::Element>, MediaError> {
    match source {
        VideoSource::Test => {
            let src = make("videotestsrc")?;
            set(&src, "is-live", true)?;
            // A moving pattern so the encoder does real work, like a camera would.
            set_nick(&src, "pattern", "smpte")?;
            set(&src, "horizontal-speed", 4i32)?;
            Ok(vec![src])
        }
        VideoSource::V4l2 { device, format } => {
            let src = make("v4l2src")?;
            set(&src, "device", device.to_string_lossy().as_ref())?;
            match format {
                V4l2Format::Raw => Ok(vec![src]),
                V4l2Format::Mjpeg => {
                    let caps = gst::Caps::builder("image/jpeg")
                        .field("width", width as i32)
                        .field("height", height as i32)
                        .field("framerate", gst::Fraction::new(fps as i32, 1))
                        .build();
                    Ok(vec![src, capsfilter(caps)?, make("jpegdec")?])
                }
            }
        }
    }
}

pub(crate) fn audio_source(source: &AudioSource) -> Result<gst::Element, MediaError> {
    match source {
        AudioSource::Test { wave, frequency_hz } => {
            let src = make("audiotestsrc")?;
            set(&src, "is-live", true)?;
            set_nick(&src, "wave", wave.nick())?;
            set(&src, "freq", *frequency_hz)?;
            set(&src, "volume", 0.3f64)?;
            // 10 ms buffers: the echo canceller works in 10 ms blocks.
            set(&src, "samplesperbuffer", 480i32)?;
            Ok(src)
        }
        AudioSource::Alsa { device } => {
            let src = make("alsasrc")?;
            set(&src, "device", device.as_str())?;
            Ok(src)
        }
        AudioSource::Pulse { device } => {
            let src = make("pulsesrc")?;
            if let Some(device) = device {
                set(&src, "device", device.as_str())?;
            }
            Ok(src)
        }
    }
}

pub(crate) fn audio_sink(output: &AudioOutput) -> Result<gst::Element, MediaError> {
    let sink = match output {
        AudioOutput::Alsa { device } => {
            let sink = make("alsasink")?;
            set(&sink, "device", device.as_str())?;
            sink
        }
        AudioOutput::Pulse { device } => {
            let sink = make("pulsesink")?;
            if let Some(device) = device {
                set(&sink, "device", device.as_str())?;
            }
            sink
        }
        AudioOutput::Auto => make("autoaudiosink")?,
        AudioOutput::Null => {
            // Synchronised, so the probe upstream sees audio at the pace a speaker would
            // consume it.
            let sink = make("fakesink")?;
            set(&sink, "sync", true)?;
            sink
        }
    };
    Ok(sink)
}

/// A queue that holds at most `buffers` buffers and drops the oldest when full.
pub(crate) fn leaky_queue(buffers: u32) -> Result<gst::Element, MediaError> {
    let queue = make("queue")?;
    set(&queue, "max-size-buffers", buffers)?;
    set(&queue, "max-size-bytes", 0u32)?;
    set(&queue, "max-size-time", 0u64)?;
    set_nick(&queue, "leaky", "downstream")?;
    set(&queue, "silent", false)?;
    Ok(queue)
}
