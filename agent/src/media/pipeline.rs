//! A GStreamer pipeline with its bus watched from GStreamer's own threads (no GLib main loop),
//! so errors become a [`PipelineHealth`] value the async side can read or wait on.

use gstreamer as gst;
use gstreamer::prelude::*;
use tokio::sync::watch;

use super::MediaError;

/// The state of a pipeline as its bus reported it.
#[derive(Debug, Clone)]
pub enum PipelineHealth {
    Running,
    /// End of stream: a source ran out (only test sources with a buffer limit do).
    Ended,
    Failed(MediaError),
}

pub(crate) struct Pipeline {
    name: &'static str,
    pipeline: gst::Pipeline,
    health: watch::Receiver<PipelineHealth>,
}

impl Pipeline {
    pub(crate) fn new(name: &'static str) -> Result<Pipeline, MediaError> {
        super::init()?;
        let pipeline = gst::Pipeline::with_name(name);
        let bus = pipeline.bus().ok_or_else(|| MediaError::Build {
            pipeline: name,
            reason: "pipeline has no bus".into(),
        })?;
        let (tx, rx) = watch::channel(PipelineHealth::Running);
        bus.set_sync_handler(move |_bus, message| {
            match message.view() {
                gst::MessageView::Error(err) => {
                    let element = err
                        .src()
                        .map(|s| s.path_string().to_string())
                        .unwrap_or_default();
                    tracing::warn!(pipeline = name, %element, error = %err.error(), "media pipeline error");
                    // The first error is the cause; later ones are usually its consequences.
                    tx.send_if_modified(|health| {
                        if matches!(health, PipelineHealth::Failed(_)) {
                            return false;
                        }
                        *health = PipelineHealth::Failed(MediaError::Runtime {
                            pipeline: name,
                            element: element.clone(),
                            message: err.error().to_string(),
                        });
                        true
                    });
                }
                gst::MessageView::Warning(w) => {
                    tracing::debug!(pipeline = name, warning = %w.error(), "media pipeline warning");
                }
                gst::MessageView::Eos(_) => {
                    tx.send_if_modified(|health| {
                        if matches!(health, PipelineHealth::Running) {
                            *health = PipelineHealth::Ended;
                            true
                        } else {
                            false
                        }
                    });
                }
                _ => {}
            }
            gst::BusSyncReply::Drop
        });
        Ok(Pipeline {
            name,
            pipeline,
            health: rx,
        })
    }

    pub(crate) fn name(&self) -> &'static str {
        self.name
    }

    pub(crate) fn add_chain(&self, elements: &[&gst::Element]) -> Result<(), MediaError> {
        self.pipeline
            .add_many(elements.iter().copied())
            .map_err(|e| self.build_error(format!("adding elements: {e}")))?;
        gst::Element::link_many(elements.iter().copied())
            .map_err(|e| self.build_error(format!("linking elements: {e}")))
    }

    pub(crate) fn build_error(&self, reason: String) -> MediaError {
        MediaError::Build {
            pipeline: self.name,
            reason,
        }
    }

    pub(crate) fn set_state(&self, state: gst::State) -> Result<(), MediaError> {
        if let PipelineHealth::Failed(err) = &*self.health.borrow() {
            return Err(err.clone());
        }
        self.pipeline
            .set_state(state)
            .map(|_| ())
            .map_err(|e| MediaError::State {
                pipeline: self.name,
                reason: format!("to {state:?}: {e}"),
            })
    }

    pub(crate) fn health(&self) -> watch::Receiver<PipelineHealth> {
        self.health.clone()
    }

    pub(crate) fn check(&self) -> Result<(), MediaError> {
        match &*self.health.borrow() {
            PipelineHealth::Failed(err) => Err(err.clone()),
            _ => Ok(()),
        }
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        // Going to NULL joins the streaming threads; a failure here leaves nothing to clean up
        // that the process could act on, so it is logged only.
        if let Err(err) = self.pipeline.set_state(gst::State::Null) {
            tracing::debug!(pipeline = self.name, %err, "pipeline did not reach NULL on drop");
        }
        if let Some(bus) = self.pipeline.bus() {
            bus.unset_sync_handler();
        }
    }
}
