//! The kiosk's live media session: one [`MediaLink`] to the relay, driven by the control
//! link's media signals, and the clerk's video forwarded to the kiosk screen.
//!
//! What it does:
//! - [`core`]: the decisions, sans IO — start on the first `online`, offer, apply only the
//!   answer to the offer in flight, send only while the relay says a clerk is serving, and
//!   recover (a new connection after the relay returns, after ICE fails or stays
//!   disconnected, after an answer or a connection that does not come in time).
//! - [`driver`]: runs those decisions against the media link, every operation bounded.
//! - [`screen`]: a loopback WebRTC connection to the kiosk page that forwards the clerk's
//!   video RTP and the camera's encoded frames without transcoding; the page decodes.
//! - [`http`]: `GET /api/media` (state and counters) and `POST /api/media/screen` (the page's
//!   offer) on the agent's loopback API. The page's side is `agent/web/kiosk/video.js`.
//! - [`config`]: `[media]` in the agent configuration.
//!
//! What it deliberately does not do: signalling transport (the control link carries offers
//! and answers), media processing (see [`crate::media`] and [`crate::link::rtc`]), or the
//! page's layout (the kiosk screen's module places the two pictures).
//!
//! How it is driven: [`spawn`] from `agent run`, with the control link's media bridge.

pub mod config;
pub mod core;
pub mod driver;
pub mod http;
pub mod screen;

use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use self::config::MediaConfig;
use self::core::SessionCore;
use self::driver::{LinkFactory, SessionStatus};
use self::screen::ScreenVideo;
use crate::config::AgentConfig;
use crate::link::control::{Link, MediaBridge};
use crate::link::rtc::{MediaLink, MediaLinkConfig, TurnServer};

/// The media link once started (shared by the session's factory and the local API).
pub type StartedLink = Arc<std::sync::Mutex<Option<Arc<MediaLink>>>>;

/// Handles of the running session, for the local API.
#[derive(Clone)]
pub struct MediaSession {
    pub status: watch::Receiver<SessionStatus>,
    pub screen: ScreenVideo,
    pub link: StartedLink,
}

impl MediaSession {
    /// The media link, once the session has started it.
    pub fn link(&self) -> Option<Arc<MediaLink>> {
        self.link
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// Starts the media session (or, with `[media] enabled = false`, only drains the signals).
pub fn spawn(
    config: &AgentConfig,
    link: Link,
    bridge: MediaBridge,
    shutdown: CancellationToken,
) -> Result<(MediaSession, JoinHandle<()>), String> {
    let (status_tx, status) = watch::channel(SessionStatus::default());
    let media = &config.media;
    if !media.enabled {
        let mut signals = bridge.signals;
        let task = tokio::spawn(async move { while signals.recv().await.is_some() {} });
        return Ok((
            MediaSession {
                status,
                screen: ScreenVideo::new(false),
                link: StartedLink::default(),
            },
            task,
        ));
    }
    let link_config = media.link(&config.devices)?;
    let screen = ScreenVideo::new(media.screen_video);
    let factory = MediaLinkFactory::new(link_config, screen.clone());
    let started = factory.started();
    let core = SessionCore::new(media.core());
    let screen_for_close = screen.clone();
    let task = tokio::spawn(async move {
        driver::run(
            core,
            factory,
            Arc::new(link),
            bridge.signals,
            status_tx,
            shutdown,
        )
        .await;
        screen_for_close.close().await;
    });
    Ok((
        MediaSession {
            status,
            screen,
            link: started,
        },
        task,
    ))
}

/// Starts the real media link and hands its clerk video and camera frames to the screen.
pub struct MediaLinkFactory {
    config: MediaLinkConfig,
    screen: ScreenVideo,
    started: StartedLink,
}

impl MediaLinkFactory {
    pub fn new(config: MediaLinkConfig, screen: ScreenVideo) -> MediaLinkFactory {
        MediaLinkFactory {
            config,
            screen,
            started: StartedLink::default(),
        }
    }

    /// Where the started link appears.
    pub fn started(&self) -> StartedLink {
        Arc::clone(&self.started)
    }
}

#[async_trait::async_trait]
impl LinkFactory for MediaLinkFactory {
    type Link = MediaLink;

    async fn start(&self, turn: Option<TurnServer>) -> Result<Arc<MediaLink>, String> {
        let mut config = self.config.clone();
        config.peer.turn = turn;
        if config.peer.relay_only && config.peer.turn.is_none() {
            tracing::warn!(
                "media.relay_only is set but the relay offers no TURN server; connecting directly"
            );
            config.peer.relay_only = false;
        }
        let (link, clerk) = MediaLink::start(config).await.map_err(|e| e.to_string())?;
        let link = Arc::new(link);
        self.screen.attach(Arc::clone(&link), clerk);
        *self
            .started
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Arc::clone(&link));
        Ok(link)
    }
}
