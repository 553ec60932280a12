//! A relay running in the test process on 127.0.0.1:0, with two seeded centres, and small
//! WebSocket and HTTP clients that speak the real protocol.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use protocol::queue::WindowMode;
use serde_json::{Value, json};
use signaling::auth::{hash_device_secret, hash_secret};
use signaling::clock::{Clock, SystemClock};
use signaling::config::Config;
use signaling::domain::{
    CategoryRecord, Centre, Clerk, Device, DeviceKind, ExtensionPoint, Role, WindowRecord,
};
use signaling::http::{AppState, Listeners};
use signaling::relay::{Relay, Stores};
use signaling::store::Store;
use signaling::store::postgres::PgStore;
use signaling::store::private_postgres::PrivatePostgres;
use signaling::store::sqlite::SqliteStore;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const PASSWORD: &str = "correct-horse-1";
pub const KIOSK_SECRET: &str = "kiosk-secret-a";
pub const WAIT: Duration = Duration::from_secs(10);
/// The scraper's bearer token for `/metrics` on the main listener.
pub const METRICS_TOKEN: &str = "test-metrics-scraper-token";

/// The production relay ([`Relay::start`]) on a seeded store: SQLite in a temporary directory
/// (the default), or a fresh PostgreSQL database ([`TestRelay::start_on_postgres`]).
pub struct TestRelay<S = SqliteStore> {
    pub addr: SocketAddr,
    pub state: AppState,
    pub store: S,
    pub dir: tempfile::TempDir,
    /// The master keys, outside the data directory as in production.
    pub keys: tempfile::TempDir,
    relay: Relay,
}

impl TestRelay<PgStore> {
    /// The relay on a fresh database of the test binary's private PostgreSQL server, every
    /// store on it (`store.url` set, as in production).
    pub async fn start_on_postgres() -> Self {
        let url = PrivatePostgres::fresh_database()
            .await
            .expect("a private PostgreSQL server (Debian package postgresql)");
        Self::start_on_database(&url).await
    }

    /// The relay on the PostgreSQL database at `url` (seeded again: seeding is idempotent).
    pub async fn start_on_database(url: &str) -> Self {
        let keys = tempfile::tempdir().expect("tempdir");
        signaling::keys::init_keys(&Config::default(), &keys.path().join("keys"))
            .expect("master keys");
        Self::start_on_database_with_keys(url, keys).await
    }

    /// The relay on the PostgreSQL database at `url` with the master keys in `keys` (made by
    /// `init_keys` in its `keys` directory): relays sharing a database share their keys.
    pub async fn start_on_database_with_keys(url: &str, keys: tempfile::TempDir) -> Self {
        signaling::install_crypto_provider();
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config::default();
        config.server.listen = None;
        config.server.dev_http_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        config.store.data_dir = dir.path().to_path_buf();
        config.store.url = Some(url.to_owned());
        // `init_keys` keeps keys that exist, so this finds the ones already in `keys`.
        let made =
            signaling::keys::init_keys(&config, &keys.path().join("keys")).expect("master keys");
        config.privacy.master_key_file = Some(made.cases);
        config.recording.key_file = Some(made.recordings);
        config.server.metrics_token = Some(METRICS_TOKEN.to_string());
        config.validate().expect("valid test configuration");
        let store = PgStore::connect(url, config.store.durability)
            .await
            .expect("postgres store");
        seed(&store).await;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let relay = Relay::start(
            config,
            Stores::postgres(&store),
            Arc::new(SystemClock),
            Listeners {
                tls: None,
                dev_http: Some(listener),
            },
        )
        .await
        .expect("the relay starts");
        Self {
            addr,
            state: relay.state.clone(),
            store,
            dir,
            keys,
            relay,
        }
    }
}

impl TestRelay {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts a relay whose configuration `configure` may adjust (limits, queue settings).
    pub async fn start_with(configure: impl FnOnce(&mut Config)) -> Self {
        signaling::install_crypto_provider();
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config::default();
        config.server.listen = None;
        config.server.dev_http_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        config.store.data_dir = dir.path().to_path_buf();
        let keys = tempfile::tempdir().expect("tempdir");
        let made =
            signaling::keys::init_keys(&config, &keys.path().join("keys")).expect("master keys");
        config.privacy.master_key_file = Some(made.cases);
        config.recording.key_file = Some(made.recordings);
        config.server.metrics_token = Some(METRICS_TOKEN.to_string());
        configure(&mut config);
        config.validate().expect("valid test configuration");
        let store = SqliteStore::open(dir.path()).await.expect("store");
        seed(&store).await;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let relay = Relay::start(
            config,
            Stores::sqlite(&store),
            Arc::new(SystemClock),
            Listeners {
                tls: None,
                dev_http: Some(listener),
            },
        )
        .await
        .expect("the relay starts");
        Self {
            addr,
            state: relay.state.clone(),
            store,
            dir,
            keys,
            relay,
        }
    }
}

impl<S> TestRelay<S> {
    /// Where the separate `/metrics` listener is, when configured.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.relay.addresses.metrics
    }

    /// `/metrics`, read with the scraper's bearer token.
    pub async fn metrics(&self) -> String {
        reqwest::Client::new()
            .get(self.url("/metrics"))
            .bearer_auth(METRICS_TOKEN)
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text")
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn stop(self) {
        let _ = tokio::time::timeout(WAIT, self.relay.stop()).await;
    }

    /// Logs a staff member in with every step the relay asks for (enrolling a second factor
    /// the first time, then answering codes): see `relay_kit::staff`.
    pub async fn login(&self, username: &str) -> String {
        relay_kit::staff::login(&reqwest::Client::new(), &self.url(""), username, PASSWORD)
            .await
            .unwrap_or_else(|e| panic!("login of {username} failed: {e:#}"))
    }

    pub async fn clerk(&self, username: &str) -> Client {
        let token = self.login(username).await;
        let mut c = Client::connect(&self.ws_url("/ws/clerk"), Some(&token)).await;
        c.send(json!({"type": "hello", "protocol_versions": [1]}))
            .await;
        let welcome = c.recv_type("welcome").await;
        assert_eq!(welcome["protocol_version"], 1);
        c.recv_type("snapshot").await;
        c
    }

    /// A clerk signed in to `window` with their console connected: kiosks may take walk-in
    /// tickets for the window's categories only while such a window is open.
    pub async fn staffed(&self, username: &str, window: &str) -> Client {
        let mut c = self.clerk(username).await;
        let opened = c
            .request(json!({"type": "open_window", "window_id": window}))
            .await;
        assert_eq!(opened["type"], "window_opened", "{opened}");
        c
    }

    pub async fn kiosk(&self, device: &str, secret: &str) -> Client {
        let mut k = Client::connect(&self.ws_url("/ws/kiosk"), None).await;
        k.send(json!({
            "type": "hello", "protocol_versions": [1], "device_id": device,
            "secret": secret, "agent_version": "test"
        }))
        .await;
        k
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }
}

/// Two centres. Centre "c1": categories civil (A) and social (B); windows w-site (on-site),
/// w-remote (remote), w-both (combined); staff clerk-a, clerk-b (clerks), boss (clerk,
/// supervisor), registrar (registry operator); extension point p1 with kiosks k1, k2 and a
/// disabled kiosk k-off; a ticket machine tm1. Centre "c2": category civil2, window w2, clerk
/// other, kiosk k9 at point p9.
pub async fn seed(store: &dyn Store) {
    let now = SystemClock.now_ms();
    for (id, name) in [("c1", "第一受理中心"), ("c2", "第二受理中心")] {
        store
            .upsert_centre(
                &Centre {
                    id: id.into(),
                    name: name.into(),
                    district: "示范区".into(),
                    street: "示范街道".into(),
                },
                now,
            )
            .await
            .expect("centre");
    }
    for (id, centre, prefix, name) in [
        ("civil", "c1", "A", "民政"),
        ("social", "c1", "B", "社保"),
        ("civil2", "c2", "A", "民政"),
    ] {
        store
            .upsert_category(&CategoryRecord {
                id: id.into(),
                centre_id: centre.into(),
                prefix: prefix.into(),
                name: name.into(),
                sort_order: 0,
            })
            .await
            .expect("category");
    }
    for (id, centre, name, mode, cats) in [
        (
            "w-site",
            "c1",
            "1号窗口",
            WindowMode::OnSite,
            vec!["civil", "social"],
        ),
        (
            "w-remote",
            "c1",
            "8号远程虚拟窗口",
            WindowMode::Remote,
            vec!["civil", "social"],
        ),
        (
            "w-both",
            "c1",
            "2号综合窗口",
            WindowMode::Combined,
            vec!["civil"],
        ),
        (
            "w2",
            "c2",
            "二中心1号窗口",
            WindowMode::Combined,
            vec!["civil2"],
        ),
    ] {
        store
            .upsert_window(&WindowRecord {
                id: id.into(),
                centre_id: centre.into(),
                name: name.into(),
                mode,
                category_ids: cats.into_iter().map(str::to_owned).collect(),
                clerk_id: None,
                clerk_name: None,
            })
            .await
            .expect("window");
    }
    let hash = hash_secret(PASSWORD).expect("hash");
    for (username, centre, roles) in [
        ("clerk-a", "c1", vec![Role::Clerk]),
        ("clerk-b", "c1", vec![Role::Clerk]),
        ("boss", "c1", vec![Role::Clerk, Role::Supervisor]),
        ("registrar", "c1", vec![Role::RegistryOperator]),
        ("other", "c2", vec![Role::Clerk]),
    ] {
        store
            .upsert_clerk(
                &Clerk {
                    id: format!("id-{username}"),
                    centre_id: centre.into(),
                    username: username.into(),
                    display_name: format!("{username} 姓名"),
                    password_hash: hash.clone(),
                    roles,
                    active: true,
                },
                now,
            )
            .await
            .expect("clerk");
    }
    for (id, centre) in [("p1", "c1"), ("p9", "c2")] {
        store
            .upsert_extension_point(
                &ExtensionPoint {
                    id: id.into(),
                    centre_id: centre.into(),
                    name: format!("{id} 延伸服务点"),
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
    }
    let secret_hash = hash_device_secret(KIOSK_SECRET);
    for (id, centre, point, kind, active) in [
        ("k1", "c1", Some("p1"), DeviceKind::Kiosk, true),
        ("k2", "c1", Some("p1"), DeviceKind::Kiosk, true),
        ("k-off", "c1", Some("p1"), DeviceKind::Kiosk, false),
        ("tm1", "c1", None, DeviceKind::TicketMachine, true),
        ("k9", "c2", Some("p9"), DeviceKind::Kiosk, true),
    ] {
        store
            .upsert_device(
                &Device {
                    id: id.into(),
                    centre_id: centre.into(),
                    extension_point_id: point.map(str::to_owned),
                    kind,
                    name: id.into(),
                    secret_hash: secret_hash.clone(),
                    active,
                },
                now,
            )
            .await
            .expect("device");
    }
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A JSON-over-WebSocket client.
pub struct Client {
    pub ws: Ws,
    next_id: u64,
}

impl Client {
    pub async fn connect(url: &str, bearer: Option<&str>) -> Self {
        Self::try_connect(url, bearer, None)
            .await
            .expect("websocket connect")
    }

    pub async fn try_connect(
        url: &str,
        bearer: Option<&str>,
        origin: Option<&str>,
    ) -> Result<Self, tokio_tungstenite::tungstenite::Error> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = url.into_client_request()?;
        if let Some(token) = bearer {
            request.headers_mut().insert(
                "authorization",
                format!("Bearer {token}").parse().expect("header"),
            );
        }
        if let Some(o) = origin {
            request
                .headers_mut()
                .insert("origin", o.parse().expect("header"));
        }
        let (ws, _) = tokio_tungstenite::connect_async(request).await?;
        Ok(Self { ws, next_id: 1 })
    }

    pub async fn send(&mut self, v: Value) {
        self.ws
            .send(Message::text(v.to_string()))
            .await
            .expect("send");
    }

    pub async fn send_raw(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.expect("send");
    }

    /// The next text message, or `None` once the relay closed the connection.
    pub async fn next(&mut self) -> Option<Value> {
        loop {
            let m = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a message within the timeout");
            match m {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return None,
                Some(Ok(Message::Text(t))) => return Some(serde_json::from_str(&t).expect("json")),
                Some(Ok(_)) => {}
            }
        }
    }

    /// Skips messages until one of the given type arrives.
    pub async fn recv_type(&mut self, ty: &str) -> Value {
        loop {
            let m = self
                .next()
                .await
                .unwrap_or_else(|| panic!("connection closed while waiting for {ty}"));
            if m["type"] == ty {
                return m;
            }
        }
    }

    /// Sends a request with a fresh request id and returns the answer with that id.
    pub async fn request(&mut self, mut v: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        v["request_id"] = json!(id);
        self.send(v).await;
        loop {
            let m = self
                .next()
                .await
                .expect("connection closed while waiting for an answer");
            if m["request_id"] == json!(id) {
                return m;
            }
        }
    }

    pub async fn op(&mut self, op: Value) -> Value {
        self.request(json!({"type": "queue", "op": op})).await
    }

    /// Waits until the relay closes the connection; panics if it stays open.
    pub async fn expect_closed(&mut self) {
        while self.next().await.is_some() {}
    }
}
