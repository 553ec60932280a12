//! `relay serve` as a child process on loopback ports the OS picks.

use std::ffi::OsString;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;

const POLL: Duration = Duration::from_millis(20);

/// How to start a relay: its binary, data directory, settings and where its log goes.
///
/// Always with a self-signed certificate (`server.tls.self_signed=true`), an HTTPS listener and
/// the INSECURE plain-HTTP development listener, both on `127.0.0.1:0` unless set otherwise.
#[derive(Debug, Clone)]
pub struct RelayCommand {
    bin: PathBuf,
    data_dir: PathBuf,
    keys_dir: PathBuf,
    args: Vec<OsString>,
    https: String,
    http: String,
    ready_file: PathBuf,
    log: Option<PathBuf>,
    start_limit: Duration,
}

impl RelayCommand {
    /// The ready file defaults to `ready.json` in the data directory, the log to this
    /// process's stderr and the start limit to 30 s. The master keys go where production keeps
    /// them, outside the data directory: `<data_dir>.keys` beside it, created on the first
    /// start (`relay init-keys`) and reused by later starts on the same data.
    pub fn new(bin: impl Into<PathBuf>, data_dir: impl Into<PathBuf>) -> Self {
        let data_dir = data_dir.into();
        let mut keys = data_dir.as_os_str().to_owned();
        keys.push(".keys");
        Self {
            bin: bin.into(),
            ready_file: data_dir.join("ready.json"),
            keys_dir: PathBuf::from(keys),
            data_dir,
            args: vec!["--set".into(), "server.tls.self_signed=true".into()],
            https: "127.0.0.1:0".into(),
            http: "127.0.0.1:0".into(),
            log: None,
            start_limit: Duration::from_secs(30),
        }
    }

    /// One configuration override, `key=value` as `relay --set` takes it.
    pub fn set(mut self, key_value: impl Into<String>) -> Self {
        self.args.push("--set".into());
        self.args.push(key_value.into().into());
        self
    }

    /// Global arguments given before `serve`, as they are (e.g. `["--set", "media.enabled=true"]`).
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// The HTTPS and development HTTP listen addresses (a restart binds the ones it had).
    pub fn listen(mut self, https: &str, http: &str) -> Self {
        self.https = https.to_owned();
        self.http = http.to_owned();
        self
    }

    /// Where the master keys are (made there when missing).
    pub fn keys_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.keys_dir = dir.into();
        self
    }

    pub fn ready_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ready_file = path.into();
        self
    }

    /// Appends the relay's stderr to `path` instead of inheriting this process's.
    pub fn log_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.log = Some(path.into());
        self
    }

    /// How long the relay may take to write its ready file.
    pub fn start_limit(mut self, limit: Duration) -> Self {
        self.start_limit = limit;
        self
    }

    /// Spawns the relay and waits for its ready file. A relay that exits or misses the start
    /// limit is killed and reported with the end of its log.
    pub async fn start(&self) -> Result<RelayProcess> {
        // A restart on the same data: the previous run's file must not pass for this one's.
        let _ = std::fs::remove_file(&self.ready_file);
        let stderr = match &self.log {
            Some(path) => Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .with_context(|| format!("opening {}", path.display()))?,
            ),
            None => Stdio::inherit(),
        };
        let mut config = signaling::config::Config::default();
        config.store.data_dir = self.data_dir.clone();
        let keys = signaling::keys::init_keys(&config, &self.keys_dir)
            .with_context(|| format!("making the master keys in {}", self.keys_dir.display()))?;
        let quote = |p: &Path| format!("{:?}", p.display().to_string());
        let child = Command::new(&self.bin)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--set")
            .arg(format!("privacy.master_key_file={}", quote(&keys.cases)))
            .arg("--set")
            .arg(format!("recording.key_file={}", quote(&keys.recordings)))
            .args(&self.args)
            .args(["serve", "--listen", &self.https, "--dev-http", &self.http])
            .arg("--ready-file")
            .arg(&self.ready_file)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("starting {}", self.bin.display()))?;
        let mut process = RelayProcess {
            child,
            log: self.log.clone(),
            ready: Ready::default(),
        };
        let info = wait_ready(&self.ready_file, "relay", self.start_limit, || {
            process.child.try_wait()
        })
        .await
        .map_err(|e| match process.log_tail() {
            Some(tail) => e.context(tail),
            None => e,
        })?;
        process.ready = Ready {
            https: info["https"]
                .as_str()
                .context("ready file without https")?
                .to_owned(),
            http: info["http"]
                .as_str()
                .context("ready file without http")?
                .to_owned(),
            media_udp: info["media_udp"].as_str().and_then(|a| a.parse().ok()),
        };
        Ok(process)
    }
}

/// The addresses a relay reported in its ready file.
#[derive(Debug, Clone, Default)]
pub struct Ready {
    pub https: String,
    pub http: String,
    /// The SFU's UDP socket, when media is on.
    pub media_udp: Option<SocketAddr>,
}

/// A started relay; killed (SIGKILL) and reaped when dropped.
#[derive(Debug)]
pub struct RelayProcess {
    child: Child,
    log: Option<PathBuf>,
    pub ready: Ready,
}

impl RelayProcess {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The development listener's address (`host:port`).
    pub fn http(&self) -> &str {
        &self.ready.http
    }

    /// Whether the relay has exited (and been reaped).
    pub fn exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILL, as a crash looks: no shutdown code runs. Waits until the process is gone.
    pub fn kill(&mut self) -> io::Result<()> {
        if self.child.try_wait()?.is_none() {
            self.child.kill()?;
        }
        self.child.wait().map(drop)
    }

    /// The last lines of the log file, for an error message.
    pub fn log_tail(&self) -> Option<String> {
        let path = self.log.as_ref()?;
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let mut tail: Vec<&str> = text.lines().rev().take(8).collect();
        tail.reverse();
        Some(format!("{}: …{}", path.display(), tail.join(" | ")))
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

/// Waits, bounded, for a process's ready file: JSON the process writes atomically once it
/// listens. Fails as soon as the process exits (`exited` is its `try_wait`).
pub async fn wait_ready(
    file: &Path,
    what: &str,
    limit: Duration,
    mut exited: impl FnMut() -> io::Result<Option<ExitStatus>>,
) -> Result<Value> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Ok(text) = std::fs::read_to_string(file)
            && let Ok(v) = serde_json::from_str::<Value>(&text)
        {
            return Ok(v);
        }
        if let Some(status) = exited()? {
            bail!("{what} exited during start-up: {status}");
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("{what} did not become ready within {limit:?}");
        }
        tokio::time::sleep(POLL).await;
    }
}
