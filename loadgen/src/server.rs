//! A server under test (the relay or Janus) as one step holds it: its process, its temporary
//! directory and log, the peers and drains it started, and the media clips they send. Shared by
//! the two targets (`relay`, `janus`) and the step that runs them (`run`).

use std::process::Child;
use std::sync::Arc;

use relay_kit::RelayProcess;
use tempfile::TempDir;
use tokio::task::JoinHandle;

use crate::media::Clip;
use crate::peer::PeerReport;

pub struct Clips {
    pub kiosk_video: Arc<Clip>,
    pub clerk_video: Arc<Clip>,
    pub audio: Arc<Clip>,
}

/// A server process we started; killed when dropped, its temporary directory removed.
pub struct Server {
    process: Process,
    dir: Option<TempDir>,
    log_name: &'static str,
    pub metrics_url: Option<String>,
}

/// Janus is spawned here; the relay through the relay kit, which kills it on drop.
enum Process {
    Child(Child),
    Relay(RelayProcess),
}

impl Server {
    pub fn new(child: Child, dir: TempDir, name: &'static str) -> Self {
        Self::with(Process::Child(child), dir, name)
    }

    pub fn relay(relay: RelayProcess, dir: TempDir) -> Self {
        Self::with(Process::Relay(relay), dir, "relay")
    }

    fn with(process: Process, dir: TempDir, name: &'static str) -> Self {
        Self {
            process,
            dir: Some(dir),
            log_name: name,
            metrics_url: None,
        }
    }

    pub fn pid(&self) -> u32 {
        match &self.process {
            Process::Child(child) => child.id(),
            Process::Relay(relay) => relay.pid(),
        }
    }

    pub fn exited(&mut self) -> bool {
        match &mut self.process {
            Process::Child(child) => !matches!(child.try_wait(), Ok(None)),
            Process::Relay(relay) => relay.exited(),
        }
    }

    /// The last lines of the server's log, for an error message.
    pub fn log_hint(&self) -> String {
        let Some(dir) = &self.dir else {
            return String::new();
        };
        let path = dir.path().join(format!("{}.log", self.log_name));
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(8).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!("{}: …{}", path.display(), tail.join(" | "))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        match &mut self.process {
            Process::Child(child) => {
                let _ = child.kill();
                let _ = child.wait();
            }
            Process::Relay(relay) => {
                let _ = relay.kill();
            }
        }
        if let Some(dir) = self.dir.take() {
            keep_if_asked(dir);
        }
    }
}

/// For a post-mortem of a failed step: keeps a server's directory (logs, config) when
/// `LOADGEN_KEEP_DIRS` is set; otherwise it is removed.
pub fn keep_if_asked(dir: TempDir) {
    if std::env::var_os("LOADGEN_KEEP_DIRS").is_some() {
        eprintln!("  kept {}", dir.keep().display());
    }
}

pub struct Started {
    pub server: Server,
    pub peers: Vec<JoinHandle<PeerReport>>,
    pub drains: Vec<JoinHandle<()>>,
}
