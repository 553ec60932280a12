//! A private PostgreSQL server for tests and benchmarks: `initdb` into a temporary directory,
//! `postgres` on a free loopback port, a fresh database per caller.
//!
//! The server runs as an unprivileged user: when the process is root (CI containers), `initdb`
//! and `postgres` are started through `setpriv` as `nobody`/`nogroup` (PostgreSQL refuses to run
//! as root). It is started with `--pdeathsig`, from a thread that lives as long as the process,
//! so it shuts down when the test binary exits, however it exits; directories left by earlier
//! runs whose process is gone are removed on the next start. The binaries are looked up in
//! `$RVW_PG_BIN`, then Debian's `/usr/lib/postgresql/<newest>/bin`, then `PATH`.
//!
//! Nothing here touches a system PostgreSQL service.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sqlx::Connection;

/// The user the server runs as when the process is root.
const UNPRIVILEGED_UID: u32 = 65534;
const UNPRIVILEGED_GID: u32 = 65534;
/// How long the server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running private server.
#[derive(Debug)]
pub struct PrivatePostgres {
    port: u16,
    dir: PathBuf,
    bin: PathBuf,
    root: bool,
    next_db: AtomicU32,
}

/// How to run the private server.
#[derive(Debug, Clone, Copy)]
pub struct ServerOptions {
    /// `fsync = on` (benchmarks that measure commits); tests run without it, for speed.
    pub fsync: bool,
}

static SHARED: OnceLock<Result<PrivatePostgres, String>> = OnceLock::new();

impl PrivatePostgres {
    /// The process's shared server (started on first use, without fsync), or why it could not
    /// start.
    pub fn shared() -> Result<&'static PrivatePostgres, String> {
        SHARED
            .get_or_init(|| Self::start(ServerOptions { fsync: false }))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// A fresh, empty database on the shared server; its URL.
    pub async fn fresh_database() -> Result<String, String> {
        let server = Self::shared()?;
        server.create_database().await
    }

    /// Starts a server of its own (blocking: `initdb` takes a second or two).
    pub fn start(options: ServerOptions) -> Result<PrivatePostgres, String> {
        let bin = find_bin_dir()?;
        let base = std::env::temp_dir().join("rvw-private-postgres");
        std::fs::create_dir_all(&base).map_err(|e| format!("creating {}: {e}", base.display()))?;
        let _ = std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o755));
        remove_stale(&base);
        let dir = base.join(format!("{}-{}", std::process::id(), rand::random::<u32>()));
        std::fs::create_dir(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("chmod {}: {e}", dir.display()))?;
        let root = is_root();
        if root {
            std::os::unix::fs::chown(&dir, Some(UNPRIVILEGED_UID), Some(UNPRIVILEGED_GID))
                .map_err(|e| format!("chown {}: {e}", dir.display()))?;
        }
        let data = dir.join("data");
        let out = as_server_user(&bin.join("initdb"), root)
            .args(["-D"])
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("running initdb: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "initdb failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = free_port()?;
            match spawn_server(&bin, &dir, &data, port, options, root) {
                Ok(()) => {
                    return Ok(PrivatePostgres {
                        port,
                        dir,
                        bin,
                        root,
                        next_db: AtomicU32::new(0),
                    });
                }
                Err(e) => last_error = e,
            }
        }
        Err(last_error)
    }

    /// The URL of database `name` on this server.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's directory (data directory and socket).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Creates an empty database; returns its URL.
    pub async fn create_database(&self) -> Result<String, String> {
        let n = self.next_db.fetch_add(1, Ordering::Relaxed);
        let name = format!("t{}_{n}", std::process::id());
        let mut admin = sqlx::PgConnection::connect(&self.url("postgres"))
            .await
            .map_err(|e| format!("connecting to the private server: {e}"))?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .map_err(|e| format!("creating database {name}: {e}"))?;
        let _ = admin.close().await;
        Ok(self.url(&name))
    }
}

/// A server started with [`PrivatePostgres::start`] stops (fast shutdown) and its directory
/// goes when it is dropped; the shared one lives as long as the process.
impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = as_server_user(&self.bin.join("pg_ctl"), self.root)
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "fast", "-w", "-t", "30", "stop"])
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether the effective user is root (`Uid:` in `/proc/self/status`: real, effective, …).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// `program` run as the server's user, dying with the thread that started it.
fn as_server_user(program: &Path, root: bool) -> Command {
    let mut c = Command::new("setpriv");
    if root {
        c.arg(format!("--reuid={UNPRIVILEGED_UID}"))
            .arg(format!("--regid={UNPRIVILEGED_GID}"))
            .arg("--clear-groups");
    }
    // SIGINT is PostgreSQL's fast shutdown.
    c.args(["--pdeathsig", "INT"]).arg(program);
    c
}

fn find_bin_dir() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("RVW_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    std::env::var_os("PATH")
        .and_then(|p| {
            std::env::split_paths(&p)
                .find(|d| d.join("initdb").exists() && d.join("postgres").exists())
        })
        .ok_or_else(|| {
            "PostgreSQL is not installed (no initdb under /usr/lib/postgresql/*/bin or on PATH; \
             `bash deploy/setup.sh test` installs the Debian package postgresql)"
                .to_owned()
        })
}

fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("finding a free port: {e}"))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("finding a free port: {e}"))
}

/// Starts `postgres` from a thread that never ends (the parent-death signal fires when the
/// starting thread ends) and waits until it accepts connections.
fn spawn_server(
    bin: &Path,
    dir: &Path,
    data: &Path,
    port: u16,
    options: ServerOptions,
    root: bool,
) -> Result<(), String> {
    let mut cmd = as_server_user(&bin.join("postgres"), root);
    cmd.arg("-D")
        .arg(data)
        .arg("-p")
        .arg(port.to_string())
        .arg("-k")
        .arg(dir)
        .args(["-c", "listen_addresses=127.0.0.1"])
        .args(["-c", "max_connections=300"])
        .args(["-c", "shared_buffers=64MB"])
        .args([
            "-c",
            &format!("fsync={}", if options.fsync { "on" } else { "off" }),
        ])
        .args(["-c", "full_page_writes=off"])
        .args(["-c", "log_min_messages=warning"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let (started_tx, started_rx) = mpsc::channel::<Result<(), String>>();
    let (exited_tx, exited_rx) = mpsc::channel::<String>();
    std::thread::Builder::new()
        .name(format!("private-postgres-{port}"))
        .spawn(move || match cmd.spawn() {
            Ok(child) => {
                let _ = started_tx.send(Ok(()));
                let out = child.wait_with_output();
                let why = match out {
                    Ok(o) => format!(
                        "postgres exited ({}): {}",
                        o.status,
                        String::from_utf8_lossy(&o.stderr).trim()
                    ),
                    Err(e) => format!("postgres: {e}"),
                };
                let _ = exited_tx.send(why);
                // Keep the thread (and so the parent-death link of any later server) alive.
                loop {
                    std::thread::park();
                }
            }
            Err(e) => {
                let _ = started_tx.send(Err(format!("starting postgres: {e}")));
            }
        })
        .map_err(|e| format!("starting the server thread: {e}"))?;
    started_rx
        .recv_timeout(START_TIMEOUT)
        .map_err(|_| "postgres did not start".to_owned())??;
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(why) = exited_rx.try_recv() {
            return Err(why);
        }
        if std::net::TcpStream::connect_timeout(
            &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            Duration::from_millis(200),
        )
        .is_ok()
            && dir.join("data").join("postmaster.pid").exists()
            && ready(port)
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "postgres did not accept connections on port {port} within {START_TIMEOUT:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether the server answers a query (it accepts TCP before it finished starting up).
fn ready(port: u16) -> bool {
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    let probe = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        rt.block_on(async {
            let connect = sqlx::PgConnection::connect(&url);
            let mut c = tokio::time::timeout(Duration::from_secs(2), connect)
                .await
                .ok()?
                .ok()?;
            let ok = sqlx::query("SELECT 1").execute(&mut c).await.is_ok();
            let _ = c.close().await;
            Some(ok)
        })
    });
    probe.join().ok().flatten().unwrap_or(false)
}

/// Removes directories of earlier runs whose process is gone.
fn remove_stale(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let server_alive = std::fs::read_to_string(e.path().join("data/postmaster.pid"))
            .ok()
            .and_then(|s| s.lines().next().and_then(|l| l.trim().parse::<u32>().ok()))
            .is_some_and(|p| Path::new(&format!("/proc/{p}")).exists());
        if !Path::new(&format!("/proc/{pid}")).exists() && !server_alive {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}
