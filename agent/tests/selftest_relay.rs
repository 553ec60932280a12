//! `agent selftest` end to end: the real binary (simulated devices) against a relay running in
//! this test process over HTTPS (its self-signed certificate given to the agent), with the SFU
//! on 127.0.0.1:0 and, where a test needs one, a local coturn. The inspection record must
//! arrive at the relay; a TURN server with the wrong secret, an unreachable relay and an
//! untrusted certificate must each give the right failed check and remedy.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use signaling::clock::{Clock, SystemClock};
use signaling::config::Config;
use signaling::domain::{Centre, Device, DeviceKind, ExtensionPoint};
use signaling::http::Listeners;
use signaling::relay::{Relay, Stores};
use signaling::store::Store;
use signaling::store::registry::{RegistryStore, Scope};
use signaling::store::sqlite::SqliteStore;

const KIOSK: &str = "kiosk-st-01";
const SECRET: &str = "kiosk-selftest-secret";
/// Bound on one `agent selftest` run (a healthy one takes a few seconds).
const RUN_LIMIT: Duration = Duration::from_secs(120);

/// A relay in this process: HTTPS with a self-signed certificate, SFU on loopback, one
/// centre with one extension point and one kiosk.
struct TlsRelay {
    https: SocketAddr,
    store: SqliteStore,
    dir: tempfile::TempDir,
    _keys: tempfile::TempDir,
    relay: Relay,
}

impl TlsRelay {
    async fn start(turn: Option<(&Coturn, &str)>) -> TlsRelay {
        signaling::install_crypto_provider();
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config::default();
        // Validated with port 0; the test binds the listener itself.
        config.server.listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        config.server.dev_http_listen = None;
        config.server.tls.self_signed = true;
        config.store.data_dir = dir.path().to_path_buf();
        let keys = tempfile::tempdir().expect("tempdir");
        let made =
            signaling::keys::init_keys(&config, &keys.path().join("keys")).expect("master keys");
        config.privacy.master_key_file = Some(made.cases);
        config.recording.key_file = Some(made.recordings);
        config.media.enabled = true;
        config.media.udp_listen = SocketAddr::from(([127, 0, 0, 1], 0));
        if let Some((coturn, secret)) = turn {
            let secret_file = dir.path().join("turn.secret");
            std::fs::write(&secret_file, secret).expect("secret");
            config.turn.urls = vec![format!("turn:127.0.0.1:{}?transport=udp", coturn.port)];
            config.turn.secret_file = Some(secret_file);
        }
        config.validate().expect("valid test configuration");
        let sqlite = SqliteStore::open(dir.path()).await.expect("store");
        seed(&sqlite).await;
        let tls = signaling::tls::rustls_config(&config.server.tls, dir.path())
            .await
            .expect("self-signed certificate");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let https = listener.local_addr().expect("addr");
        let relay = Relay::start(
            config,
            Stores::sqlite(&sqlite),
            Arc::new(SystemClock),
            Listeners {
                tls: Some((listener, tls)),
                dev_http: None,
            },
        )
        .await
        .expect("the relay starts");
        TlsRelay {
            https,
            store: sqlite,
            dir,
            _keys: keys,
            relay,
        }
    }

    fn certificate(&self) -> PathBuf {
        signaling::tls::self_signed_paths(self.dir.path()).0
    }

    async fn inspections(&self) -> Vec<signaling::store::registry::InspectionRecord> {
        self.store
            .inspections(&Scope::All, None, 50)
            .await
            .expect("inspections")
    }

    async fn stop(self) {
        let _ = tokio::time::timeout(Duration::from_secs(10), self.relay.stop()).await;
    }
}

async fn seed(store: &SqliteStore) {
    let now = SystemClock.now_ms();
    store
        .upsert_centre(
            &Centre {
                id: "c-st".into(),
                name: "自检测试受理中心".into(),
                district: "徐汇区".into(),
                street: "天平路街道".into(),
            },
            now,
        )
        .await
        .expect("centre");
    store
        .upsert_extension_point(
            &ExtensionPoint {
                id: "p-st".into(),
                centre_id: "c-st".into(),
                name: "自检测试延伸服务点".into(),
                address: "示范路1号".into(),
                phone: "021-12345678".into(),
                service_hours: "周一至周五 9:00-17:00".into(),
                hours: None,
                status: "active".into(),
            },
            now,
        )
        .await
        .expect("point");
    store
        .upsert_device(
            &Device {
                id: KIOSK.into(),
                centre_id: "c-st".into(),
                extension_point_id: Some("p-st".into()),
                kind: DeviceKind::Kiosk,
                name: KIOSK.into(),
                secret_hash: signaling::auth::hash_device_secret(SECRET),
                active: true,
            },
            now,
        )
        .await
        .expect("device");
}

/// A coturn `turnserver` on 127.0.0.1 with TURN REST credentials (`use-auth-secret`), killed
/// on drop.
struct Coturn {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Coturn {
    async fn start(secret: &str) -> Coturn {
        let dir = tempfile::tempdir().expect("tempdir");
        // An ephemeral port the kernel just handed out, released for coturn to take.
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .expect("free port")
            .port();
        let relay_min = 20_000 + (rand::random::<u16>() % 50) * 200;
        let child = std::process::Command::new("turnserver")
            .args(["-n", "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1"])
            .arg(format!("--listening-port={port}"))
            .arg(format!("--min-port={relay_min}"))
            .arg(format!("--max-port={}", relay_min + 199))
            .args(["--use-auth-secret", "--realm=selftest.test"])
            .arg(format!("--static-auth-secret={secret}"))
            .args([
                "--no-tls",
                "--no-dtls",
                "--no-cli",
                "--simple-log",
                "--log-file=stdout",
            ])
            .arg(format!("--pidfile={}", dir.path().join("pid").display()))
            .arg(format!("--db={}", dir.path().join("turndb").display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("turnserver runs (Debian package coturn, deploy/packages-test.txt)");
        let coturn = Coturn {
            child,
            port,
            _dir: dir,
        };
        coturn.wait_ready().await;
        coturn
    }

    /// Ready once it answers a STUN binding request.
    async fn wait_ready(&self) {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("socket");
        let mut request = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
        request.extend((0..12).map(|_| rand::random::<u8>()));
        let ready = tokio::time::timeout(Duration::from_secs(15), async {
            let mut reply = [0u8; 512];
            loop {
                socket
                    .send_to(&request, ("127.0.0.1", self.port))
                    .await
                    .expect("probe");
                if let Ok(Ok((n, _))) =
                    tokio::time::timeout(Duration::from_millis(200), socket.recv_from(&mut reply))
                        .await
                    && n >= 20
                    && reply[8..20] == request[8..20]
                {
                    return;
                }
            }
        })
        .await;
        assert!(
            ready.is_ok(),
            "turnserver did not answer STUN on port {}",
            self.port
        );
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes an agent configuration for `url` with simulated devices; returns its path.
fn agent_config(dir: &Path, url: &str, ca: Option<&Path>, extra: &str) -> PathBuf {
    let credential = dir.join("kiosk.credential");
    std::fs::write(&credential, format!("{KIOSK}:{SECRET}\n")).expect("credential");
    let ca = ca.map_or(String::new(), |p| {
        format!("ca_file = {:?}\n", p.display().to_string())
    });
    let config = format!(
        "[relay]\nurl = {url:?}\ncredential_file = {cred:?}\n{ca}connect_timeout_secs = 5\n\
         [local]\nlisten = \"127.0.0.1:0\"\n[store]\ndata_dir = {data:?}\n\
         [devices]\nsimulated = true\n\
         [media]\nudp_bind = \"127.0.0.1:0\"\nloopback_candidates = true\n{extra}",
        cred = credential.display().to_string(),
        data = dir.join("data").display().to_string(),
    );
    let path = dir.join("agent.toml");
    std::fs::write(&path, config).expect("config");
    path
}

/// Runs `agent selftest --json …`; returns the exit code and the printed JSON.
async fn selftest(config: &Path, args: &[&str]) -> (i32, Value) {
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_agent"))
        .args(["selftest", "--json", "--config"])
        .arg(config)
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(RUN_LIMIT, run)
        .await
        .expect("agent selftest finishes in time")
        .expect("agent selftest runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "selftest printed no JSON ({e}); stdout: {stdout}; stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), json)
}

fn check<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["report"]["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no check {id} in {report}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_kiosk_passes_and_its_record_arrives_at_the_relay() {
    let secret = "turn-shared-secret";
    let coturn = Coturn::start(secret).await;
    let relay = TlsRelay::start(Some((&coturn, secret))).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("wss://127.0.0.1:{}/ws/kiosk", relay.https.port());
    let config = agent_config(dir.path(), &url, Some(&relay.certificate()), "");

    let (code, out) = selftest(
        &config,
        &["--technician", "测试技师", "--with-card", "--with-code"],
    )
    .await;

    let checks = out["report"]["checks"].as_array().expect("checks");
    for c in checks {
        assert_eq!(c["outcome"], "pass", "{c}");
    }
    let ids: Vec<&str> = checks.iter().filter_map(|c| c["id"].as_str()).collect();
    for id in agent::selftest::ORDER {
        assert!(ids.contains(&id), "missing check {id}");
    }
    assert_eq!(code, 0, "{out}");
    assert_eq!(out["overall"], "pass");
    assert_eq!(out["upload"]["state"], "filed", "{out}");
    assert!(
        check(&out, "network.turn")["detail"]["en"]
            .as_str()
            .unwrap()
            .contains("relayed address")
    );

    let records = relay.inspections().await;
    assert_eq!(records.len(), 1, "one inspection record");
    let record = &records[0];
    assert_eq!(record.device_id, KIOSK);
    assert_eq!(record.extension_point_id, "p-st");
    assert_eq!(record.technician, "测试技师");
    assert!(!record.automatic);
    assert_eq!(
        record.id,
        out["upload"]["receipt"]["id"].as_i64().expect("receipt id")
    );
    assert_eq!(record.report.checks.len(), checks.len());
    assert_eq!(record.report.profile.as_deref(), Some("kiosk-simulated"));
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_turn_server_with_another_secret_refuses_the_allocation() {
    let coturn = Coturn::start("coturn-has-this-secret").await;
    let relay = TlsRelay::start(Some((&coturn, "relay-has-another-secret"))).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("wss://127.0.0.1:{}/ws/kiosk", relay.https.port());
    let config = agent_config(dir.path(), &url, Some(&relay.certificate()), "");

    let (code, out) = selftest(&config, &["--technician", "测试技师"]).await;

    let turn = check(&out, "network.turn");
    assert_eq!(turn["outcome"], "fail", "{turn}");
    assert!(
        turn["detail"]["en"]
            .as_str()
            .unwrap()
            .contains("refused the relay-issued credentials"),
        "{turn}"
    );
    assert!(
        turn["remedy"]["zh"]
            .as_str()
            .unwrap()
            .contains("static-auth-secret"),
        "{turn}"
    );
    // Everything else still works, and the failing record is filed.
    assert_eq!(check(&out, "network.login")["outcome"], "pass");
    assert_eq!(check(&out, "network.media_udp")["outcome"], "pass");
    assert_eq!(code, 1);
    assert_eq!(out["overall"], "fail");
    assert_eq!(out["upload"]["state"], "filed", "{out}");
    let records = relay.inspections().await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].overall, protocol::inspection::CheckOutcome::Fail);
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_relay_and_an_untrusted_certificate_fail_with_their_remedies() {
    // Nothing listens on a port the kernel just handed out and took back.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = agent_config(
        dir.path(),
        &format!("wss://127.0.0.1:{closed}/ws/kiosk"),
        None,
        "",
    );
    let (code, out) = selftest(&config, &["--technician", "测试技师"]).await;
    let https = check(&out, "network.https");
    assert_eq!(https["outcome"], "fail", "{https}");
    assert!(
        https["detail"]["en"]
            .as_str()
            .unwrap()
            .contains("refused the connection"),
        "{https}"
    );
    assert!(
        https["remedy"]["zh"]
            .as_str()
            .unwrap()
            .contains("relay.url"),
        "{https}"
    );
    assert_eq!(check(&out, "network.login")["outcome"], "fail");
    for id in [
        "network.turn",
        "network.rtt",
        "network.uplink",
        "network.clock",
    ] {
        assert_eq!(check(&out, id)["outcome"], "skipped", "{id}");
    }
    // The devices are still checked.
    assert_eq!(check(&out, "camera.frames")["outcome"], "pass");
    assert_eq!(code, 1);
    assert_eq!(out["upload"]["state"], "failed");

    // A relay whose certificate the kiosk was not given.
    let relay = TlsRelay::start(None).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("wss://127.0.0.1:{}/ws/kiosk", relay.https.port());
    let config = agent_config(dir.path(), &url, None, "");
    let (code, out) = selftest(&config, &["--no-upload"]).await;
    let https = check(&out, "network.https");
    assert_eq!(https["outcome"], "fail", "{https}");
    assert!(
        https["detail"]["en"]
            .as_str()
            .unwrap()
            .contains("certificate"),
        "{https}"
    );
    assert!(
        https["remedy"]["en"]
            .as_str()
            .unwrap()
            .contains("relay.ca_file"),
        "{https}"
    );
    assert_eq!(code, 1);
    assert_eq!(out["upload"]["state"], "not_requested");
    assert!(relay.inspections().await.is_empty());
    relay.stop().await;
}

/// `agent run` as a child process; killed on drop.
struct RunningAgent {
    _child: tokio::process::Child,
    local: String,
}

impl RunningAgent {
    async fn start(config: &Path, dir: &Path) -> RunningAgent {
        let ready = dir.join("ready.json");
        let log = std::fs::File::create(dir.join("agent.log")).expect("log");
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_agent"))
            .args(["run", "--config"])
            .arg(config)
            .arg("--ready-file")
            .arg(&ready)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("agent run");
        let local = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                if let Ok(text) = std::fs::read_to_string(&ready)
                    && let Ok(v) = serde_json::from_str::<Value>(&text)
                {
                    return v["local"].as_str().expect("local").to_owned();
                }
                assert!(
                    child.try_wait().expect("wait").is_none(),
                    "agent run exited"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
        .expect("agent run becomes ready");
        RunningAgent {
            _child: child,
            local,
        }
    }

    async fn get(&self, path: &str) -> Value {
        reqwest::get(format!("http://{}{path}", self.local))
            .await
            .expect("local API")
            .json()
            .await
            .expect("json")
    }

    /// Waits (bounded) until `check` accepts the answer of `path`.
    async fn wait(&self, path: &str, check: impl Fn(&Value) -> bool) -> Value {
        tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                let v = self.get(path).await;
                if check(&v) {
                    return v;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{path} did not reach the expected state"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_agent_running_the_command_runs_the_self_test_inside_it() {
    let secret = "turn-shared-secret";
    let coturn = Coturn::start(secret).await;
    let relay = TlsRelay::start(Some((&coturn, secret))).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("wss://127.0.0.1:{}/ws/kiosk", relay.https.port());
    let config = agent_config(dir.path(), &url, Some(&relay.certificate()), "");
    let agent = RunningAgent::start(&config, dir.path()).await;
    agent.wait("/api/status", |s| s["link"] == "online").await;
    agent
        .wait("/api/media", |m| m["session"]["phase"] == "connected")
        .await;

    let (code, out) = selftest(&config, &["--technician", "值班技师"]).await;

    for c in out["report"]["checks"].as_array().expect("checks") {
        assert_eq!(c["outcome"], "pass", "{c}");
    }
    // The login and media checks read the running agent's own connection.
    assert!(
        check(&out, "network.login")["detail"]["en"]
            .as_str()
            .unwrap()
            .contains("is logged in")
    );
    assert!(
        check(&out, "network.media_udp")["detail"]["en"]
            .as_str()
            .unwrap()
            .contains("media connection")
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(out["upload"]["state"], "filed");
    let records = relay.inspections().await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].technician, "值班技师");
    // The agent kept its connection to the relay throughout.
    assert_eq!(agent.get("/api/status").await["link"], "online");
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_replaced_by_the_running_agent_is_not_blamed_on_the_firewall() {
    use agent::selftest::network;
    agent::install_crypto_provider();
    let relay = TlsRelay::start(None).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("wss://127.0.0.1:{}/ws/kiosk", relay.https.port());
    let path = agent_config(dir.path(), &url, Some(&relay.certificate()), "");
    let config = agent::config::AgentConfig::load(&agent::config::Sources {
        file: Some(&path),
        ..agent::config::Sources::default()
    })
    .expect("configuration");
    let credential = agent::config::Credential::read(&config.relay.credential_file).unwrap();
    let connector = agent::link::control::tls_connector(&config.relay).unwrap();
    let kit = agent::selftest::service::network_kit(&config, &credential, &connector);

    // The self-test logs in; then the same device logs in again (the agent service
    // reconnecting), and the relay closes the self-test's connection for it.
    let (first, session) = network::login(&kit.relay, &kit.credential, &kit.connector).await;
    assert_eq!(first.outcome, protocol::inspection::CheckOutcome::Pass);
    let session = session.expect("a login");
    let (second, _newer) = network::login(&kit.relay, &kit.credential, &kit.connector).await;
    assert_eq!(second.outcome, protocol::inspection::CheckOutcome::Pass);

    let media = session.check_media_udp(kit.peer.clone()).await;
    assert_eq!(
        media.outcome,
        protocol::inspection::CheckOutcome::Warn,
        "{media:?}"
    );
    assert!(
        media.detail.en.contains("same device logged in"),
        "{media:?}"
    );
    assert!(
        media
            .remedy
            .as_ref()
            .is_some_and(|r| r.zh.contains("systemctl stop rvw-agent")),
        "{media:?}"
    );
    relay.stop().await;
}
