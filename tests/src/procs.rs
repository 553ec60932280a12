//! The real `relay` and `agent` processes, on loopback ports the OS picks.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use relay_kit::{Ready, RelayCommand, RelayProcess, wait_ready};
use serde_json::Value;
use tokio::process::{Child, Command};

const START_LIMIT: Duration = Duration::from_secs(30);

/// Where the workspace's binaries are: beside the test executable, or `RVW_BIN_DIR`.
pub fn bin(name: &str) -> Result<PathBuf> {
    let dir = match std::env::var_os("RVW_BIN_DIR") {
        Some(d) => PathBuf::from(d),
        None => std::env::current_exe()?
            .parent()
            .and_then(Path::parent)
            .context("test executable location")?
            .to_path_buf(),
    };
    let path = dir.join(name);
    if !path.exists() {
        bail!(
            "{} not found: build the binaries first with `cargo build --workspace --bins`",
            path.display()
        );
    }
    Ok(path)
}

/// A data directory with the demonstration centre loaded by `relay seed-demo`.
pub struct DemoData {
    pub dir: tempfile::TempDir,
}

impl DemoData {
    pub async fn create() -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let out = Command::new(bin("relay")?)
            .arg("--data-dir")
            .arg(dir.path().join("relay"))
            .args(["--set", "server.tls.self_signed=true", "seed-demo"])
            .output()
            .await?;
        if !out.status.success() {
            bail!("seed-demo failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(Self { dir })
    }

    pub fn relay_dir(&self) -> PathBuf {
        self.dir.path().join("relay")
    }

    fn demo_file(&self, name: &str) -> Result<String> {
        let path = self.relay_dir().join("demo").join(name);
        Ok(std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?
            .trim()
            .to_owned())
    }

    pub fn staff_password(&self) -> Result<String> {
        self.demo_file("staff-password.txt")
    }

    pub fn ticket_machine_credential(&self) -> Result<String> {
        self.demo_file("ticket-machine.credential")
    }

    pub fn kiosk_credential_file(&self) -> PathBuf {
        self.relay_dir().join("demo").join("kiosk.credential")
    }

    /// Enrolls another kiosk at the demonstration extension point (`relay enroll-device`, run
    /// while no relay is using the data directory); returns its credential file.
    pub async fn enroll_kiosk(&self, id: &str) -> Result<PathBuf> {
        let file = self.dir.path().join(format!("{id}.credential"));
        let out = Command::new(bin("relay")?)
            .arg("--data-dir")
            .arg(self.relay_dir())
            .args(["--set", "server.tls.self_signed=true", "enroll-device"])
            .args(["--centre", "demo-centre", "--id", id, "--kind", "kiosk"])
            .args(["--extension-point", "demo-point-01", "--credential-file"])
            .arg(&file)
            .output()
            .await?;
        if !out.status.success() {
            bail!(
                "enroll-device failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(file)
    }

    pub fn relay_certificate(&self) -> PathBuf {
        self.relay_dir().join("tls").join("relay-self-signed.crt")
    }
}

/// A running relay with an HTTPS listener and an INSECURE loopback HTTP listener.
pub struct Relay {
    process: RelayProcess,
    pub https: String,
    pub http: String,
    /// The SFU's UDP socket, when media is on.
    pub media_udp: Option<std::net::SocketAddr>,
    pub log: PathBuf,
}

impl Relay {
    pub async fn start(data: &DemoData, extra: &[&str]) -> Result<Self> {
        Self::start_on(data, extra, "127.0.0.1:0", "127.0.0.1:0").await
    }

    /// Kills the relay (SIGKILL) and starts it again with the same data and on the same
    /// addresses, as a crash followed by a restart looks to kiosks and consoles.
    pub async fn restart(mut self, data: &DemoData, extra: &[&str]) -> Result<Self> {
        self.process.kill()?;
        let (https, http) = (self.https.clone(), self.http.clone());
        Self::start_on(data, extra, &https, &http).await
    }

    async fn start_on(data: &DemoData, extra: &[&str], https: &str, http: &str) -> Result<Self> {
        let log = data.dir.path().join("relay.log");
        // As the demo runs it (deploy/demo.sh): clerks may log in with a password alone;
        // supervisors, registry operators and technicians still need their second factor.
        let process = RelayCommand::new(bin("relay")?, data.relay_dir())
            .args(["--set", "auth.clerk_two_factor=optional"])
            .args(extra.iter().copied())
            .listen(https, http)
            .ready_file(data.dir.path().join("relay-ready.json"))
            .log_file(&log)
            .start_limit(START_LIMIT)
            .start()
            .await?;
        let Ready {
            https,
            http,
            media_udp,
        } = process.ready.clone();
        Ok(Self {
            process,
            https,
            http,
            media_udp,
            log,
        })
    }

    pub fn https_url(&self, path: &str) -> String {
        format!("https://{}{path}", self.https)
    }

    /// Freezes the relay (SIGSTOP): connections stay open but nothing is answered.
    pub fn pause(&self) -> Result<()> {
        self.signal("STOP")
    }

    /// Lets a paused relay go on (SIGCONT).
    pub fn resume(&self) -> Result<()> {
        self.signal("CONT")
    }

    /// Sends a signal with kill(1): the workspace has no unsafe code for `libc::kill`.
    fn signal(&self, name: &str) -> Result<()> {
        let pid = self.process.pid();
        let status = std::process::Command::new("kill")
            .arg(format!("-{name}"))
            .arg(pid.to_string())
            .status()?;
        if !status.success() {
            bail!("kill -{name} {pid} failed");
        }
        Ok(())
    }

    /// Stops the relay with SIGKILL.
    pub async fn kill(mut self) -> Result<()> {
        self.process.kill()?;
        Ok(())
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// A running kiosk agent connected to a relay.
pub struct Agent {
    child: Child,
    pub local: String,
    pub config: PathBuf,
    pub log: PathBuf,
}

impl Agent {
    pub async fn start(data: &DemoData, relay: &Relay) -> Result<Self> {
        Self::start_with(data, relay, "").await
    }

    /// Starts an agent whose configuration file ends with `extra` (TOML sections, e.g.
    /// `[devices]\nsimulated = true`).
    pub async fn start_with(data: &DemoData, relay: &Relay, extra: &str) -> Result<Self> {
        Self::start_as(data, relay, "agent", &data.kiosk_credential_file(), extra).await
    }

    /// Starts another kiosk's agent: its files under `<data>/<name>`, the credential from
    /// `credential_file` (see [`DemoData::enroll_kiosk`]).
    pub async fn start_as(
        data: &DemoData,
        relay: &Relay,
        name: &str,
        credential_file: &Path,
        extra: &str,
    ) -> Result<Self> {
        let dir = data.dir.path().join(name);
        std::fs::create_dir_all(&dir)?;
        let config = dir.join("agent.toml");
        let toml = format!(
            "[relay]\nurl = \"wss://{}/ws/kiosk\"\ncredential_file = {:?}\nca_file = {:?}\n\
             [local]\nlisten = \"127.0.0.1:0\"\n[store]\ndata_dir = {:?}\n",
            relay.https,
            credential_file,
            data.relay_certificate(),
            dir.join("data"),
        );
        std::fs::write(&config, format!("{toml}{extra}"))?;
        let ready = dir.join("ready.json");
        let _ = std::fs::remove_file(&ready);
        let log = dir.join("agent.log");
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)?;
        let mut child = Command::new(bin("agent")?)
            .args(["run", "--config"])
            .arg(&config)
            .arg("--ready-file")
            .arg(&ready)
            .stdout(Stdio::null())
            .stderr(log_file)
            .kill_on_drop(true)
            .spawn()?;
        let info = wait_ready(&ready, "agent", START_LIMIT, || child.try_wait()).await?;
        Ok(Self {
            child,
            local: info["local"].as_str().context("local address")?.to_owned(),
            config,
            log,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.local)
    }

    pub async fn status(&self) -> Result<Value> {
        Ok(reqwest::get(self.url("/api/status")).await?.json().await?)
    }

    /// Polls the agent's status until `check` accepts it.
    pub async fn wait_status(
        &self,
        limit: Duration,
        check: impl Fn(&Value) -> bool,
    ) -> Result<Value> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let s = self.status().await?;
            if check(&s) {
                return Ok(s);
            }
            if tokio::time::Instant::now() >= deadline {
                bail!("agent status did not reach the expected state within {limit:?}: {s}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn kill(mut self) -> Result<()> {
        self.child.kill().await?;
        Ok(())
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}
