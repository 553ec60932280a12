//! `agent run`: the kiosk agent's main job.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::config::{AgentConfig, Credential};
use crate::kiosk::outbox::OutboxError;
use crate::link::control;
use crate::local_api;

/// Why the agent could not start or stopped with an error; each names the step that failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Credential(String),
    #[error(transparent)]
    Tls(#[from] control::SetupError),
    #[error("setting up media: {0}")]
    Media(String),
    #[error("opening the kiosk's evaluation outbox: {0}")]
    Outbox(#[source] OutboxError),
    #[error("binding the local API on {address}: {source}")]
    Bind {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Runs the agent until SIGINT/SIGTERM. Writes the bound local address to `ready_file` once
/// listening (for scripts and tests).
pub async fn run(config: AgentConfig, ready_file: Option<PathBuf>) -> Result<(), RunError> {
    let credential =
        Credential::read(&config.relay.credential_file).map_err(RunError::Credential)?;
    let connector = control::tls_connector(&config.relay)?;
    let shutdown = CancellationToken::new();
    let (link, bridges, link_task) = control::spawn(
        config.relay.clone(),
        credential.clone(),
        connector.clone(),
        shutdown.clone(),
    );
    let (media, media_task) =
        crate::media_session::spawn(&config, link.clone(), bridges.media, shutdown.clone())
            .map_err(RunError::Media)?;
    let screen = Arc::new(crate::devices::activity::KioskScreen::new());
    let uploader = crate::devices::upload::relay_uploader(
        &config.relay,
        &credential,
        &connector,
        Duration::from_secs(config.devices.upload_timeout_secs),
    );
    let (devices_task, device_handles) = crate::devices::setup::spawn_service(
        &config.devices,
        uploader,
        bridges.devices.commands,
        Arc::new(link.clone()),
        screen.clone(),
        shutdown.clone(),
    );

    let kiosk = crate::kiosk::Kiosk::start(
        config.kiosk.clone(),
        &config.store.data_dir,
        link.clone(),
        screen.clone(),
        shutdown.clone(),
    )
    .await
    .map_err(RunError::Outbox)?;

    // The self-test reads the media session's phase ("connected", …) and failed attempts;
    // none when media is off.
    let (media_status, media_on) = (media.status.clone(), config.media.enabled);
    let media_probe: crate::selftest::MediaProbe = Arc::new(move || {
        if !media_on {
            return None;
        }
        let status = *media_status.borrow();
        let phase = serde_json::to_value(status.phase)
            .ok()?
            .as_str()?
            .to_owned();
        Some(crate::selftest::network::MediaSnapshot {
            phase,
            failures: status.counters.failures,
        })
    });
    let selftest = crate::selftest::service::SelfTestService::new(
        &config,
        &credential,
        &connector,
        link.clone(),
        device_handles.clone(),
        media_probe,
    );
    tokio::spawn(crate::selftest::daily::run(
        selftest.clone(),
        shutdown.clone(),
    ));
    let technician = crate::selftest::http::Technician::new(selftest.clone());

    let listener = tokio::net::TcpListener::bind(config.local.listen)
        .await
        .map_err(|source| RunError::Bind {
            address: config.local.listen,
            source,
        })?;
    let local = listener.local_addr()?;
    info!(address = %local, "local API listening");
    selftest.publish(local);
    if let Some(path) = ready_file {
        let ready = serde_json::json!({ "local": local.to_string(), "pid": std::process::id() });
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, ready.to_string())?;
        std::fs::rename(&tmp, &path)?;
    }
    let signal = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        info!("stopping");
        signal.cancel();
    });
    local_api::serve(
        listener,
        local_api::ApiState {
            appointments: crate::kiosk::appointments::Desk {
                link: link.clone(),
                screen: screen.clone(),
                devices: device_handles,
            },
            link,
            screen,
            kiosk,
            media,
            technician,
        },
        shutdown.clone(),
    )
    .await?;
    shutdown.cancel();
    selftest.withdraw();
    let _ = link_task.await;
    let _ = devices_task.await;
    let _ = media_task.await;
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
