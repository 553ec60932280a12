//! Where the real `relay` binary takes its master keys from, what it refuses at start, and a
//! key rotation from the command line (stopped by `--limit`, then finished) followed by a
//! restart that still plays a recording sealed before it and one of the first sealed format,
//! with case items and recordings opening under the new keys only.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use signaling::cases::crypto::{MasterKey as CaseKey, Sealed};
use signaling::cases::{CaseOrigin, CaseService};
use signaling::keys::{KeyBytes, read_key_file, write_key_file};
use signaling::recorder::sealed::{self, MasterKey};
use signaling::store::cases::CaseStore;
use signaling::store::recordings::{RecordingRow, RecordingState, RecordingStore};
use signaling::store::sqlite::SqliteStore;

fn relay_bin() -> &'static str {
    env!("CARGO_BIN_EXE_relay")
}

/// `relay --data-dir DATA ARGS…` run to completion: (success, stdout, stderr).
fn run(data: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(relay_bin())
        .arg("--data-dir")
        .arg(data)
        .args(["--set", "server.tls.self_signed=true"])
        .args(args)
        .env_remove("CREDENTIALS_DIRECTORY")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// How a `relay serve` went.
enum Start {
    /// Listening; the process is killed when this is dropped.
    Ready(Served),
    /// It exited during start-up, with this on stderr.
    Refused(String),
}

struct Served {
    child: Child,
    http: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn serve(data: &Path, credentials: Option<&Path>, settings: &[&str]) -> Start {
    let ready = data.with_extension("ready.json");
    let log = data.with_extension("log");
    let _ = std::fs::remove_file(&ready);
    let mut cmd = Command::new(relay_bin());
    cmd.arg("--data-dir").arg(data).args([
        "--set",
        "server.tls.self_signed=true",
        "--set",
        "log.filter=\"warn\"",
    ]);
    for s in settings {
        cmd.args(["--set", s]);
    }
    cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--dev-http",
        "127.0.0.1:0",
    ])
    .arg("--ready-file")
    .arg(&ready)
    .env_remove("CREDENTIALS_DIRECTORY")
    .stdout(Stdio::null())
    .stderr(Stdio::from(std::fs::File::create(&log).unwrap()));
    if let Some(dir) = credentials {
        cmd.env("CREDENTIALS_DIRECTORY", dir);
    }
    let mut child = cmd.spawn().unwrap();
    let ready_json = relay_kit::wait_ready(&ready, "relay", Duration::from_secs(30), || {
        child.try_wait()
    })
    .await;
    match ready_json {
        Ok(v) => Start::Ready(Served {
            child,
            http: v["http"].as_str().unwrap().to_owned(),
        }),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            Start::Refused(std::fs::read_to_string(&log).unwrap_or_default())
        }
    }
}

fn refused(start: Start) -> String {
    match start {
        Start::Refused(log) => log,
        Start::Ready(_) => panic!("the relay started"),
    }
}

/// Keys made by `relay init-keys` in `root/keys`, outside `data`.
fn init_keys(root: &Path, data: &Path) -> PathBuf {
    let dir = root.join("keys");
    let (ok, out, err) = run(data, &["init-keys", "--dir", dir.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("master_key_file"), "{out}");
    assert_eq!(
        std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    for f in ["cases.key", "recordings.key"] {
        assert_eq!(
            std::fs::metadata(dir.join(f)).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    dir
}

fn key_settings(keys: &Path) -> Vec<String> {
    vec![
        format!(
            "privacy.master_key_file={:?}",
            keys.join("cases.key").to_str().unwrap()
        ),
        format!(
            "recording.key_file={:?}",
            keys.join("recordings.key").to_str().unwrap()
        ),
    ]
}

fn as_strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn no_keys_in(data: &Path) {
    assert!(!data.join("privacy/master.key").exists());
    assert!(!data.join("recording.key").exists());
}

#[tokio::test]
async fn a_key_inside_the_data_directory_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    std::fs::create_dir_all(data.join("privacy")).unwrap();
    // init-keys will not put them there either.
    let (ok, _, err) = run(
        &data,
        &["init-keys", "--dir", data.join("keys").to_str().unwrap()],
    );
    assert!(!ok);
    assert!(err.contains("inside the data directory"), "{err}");
    let inside = data.join("privacy/master.key");
    write_key_file(&inside, &KeyBytes::random()).unwrap();
    let setting = format!("privacy.master_key_file={:?}", inside.to_str().unwrap());
    let log = refused(serve(&data, None, &[&setting]).await);
    assert!(log.contains("inside the data directory"), "{log}");
    assert!(log.contains(inside.to_str().unwrap()), "{log}");
    assert!(log.contains("privacy.master_key_file"), "{log}");
    // The same through a path that only leads back into it.
    let sneaky = root.path().join("data/privacy/../privacy/master.key");
    let setting = format!("privacy.master_key_file={:?}", sneaky.to_str().unwrap());
    let log = refused(serve(&data, None, &[&setting]).await);
    assert!(log.contains("inside the data directory"), "{log}");
}

#[tokio::test]
async fn a_key_file_others_may_read_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let keys = init_keys(root.path(), &data);
    std::fs::set_permissions(
        keys.join("cases.key"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let log = refused(serve(&data, None, &as_strs(&key_settings(&keys))).await);
    assert!(log.contains("chmod 600"), "{log}");
    assert!(
        log.contains(keys.join("cases.key").to_str().unwrap()),
        "{log}"
    );
}

#[tokio::test]
async fn a_missing_key_is_an_error_that_names_the_command_and_nothing_is_created() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let log = refused(serve(&data, None, &[]).await);
    assert!(log.contains("relay init-keys"), "{log}");
    assert!(log.contains("privacy.master_key_file"), "{log}");
    no_keys_in(&data);
    // Configured but absent: the command to make it there.
    let absent = root.path().join("elsewhere/cases.key");
    let setting = format!("privacy.master_key_file={:?}", absent.to_str().unwrap());
    let log = refused(serve(&data, None, &[&setting]).await);
    assert!(log.contains("does not exist"), "{log}");
    assert!(log.contains("relay init-keys --dir"), "{log}");
    assert!(!absent.exists());
    // Recording encrypted needs the recordings key as well.
    let keys = init_keys(root.path(), &data);
    let cases_only = key_settings(&keys)[0].clone();
    let log = refused(
        serve(
            &data,
            None,
            &[
                &cases_only,
                "media.enabled=true",
                "media.udp_listen=\"127.0.0.1:0\"",
            ],
        )
        .await,
    );
    assert!(log.contains("recording.key_file"), "{log}");
    no_keys_in(&data);
}

#[tokio::test]
async fn systemd_credentials_are_used_when_the_configuration_names_no_file() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let keys = init_keys(root.path(), &data);
    let media = ["media.enabled=true", "media.udp_listen=\"127.0.0.1:0\""];
    match serve(&data, Some(&keys), &media).await {
        Start::Ready(_relay) => {}
        Start::Refused(log) => panic!("{log}"),
    }
    no_keys_in(&data);
    // It really reads the credential: a credential others may read stops it.
    std::fs::set_permissions(
        keys.join("recordings.key"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    let log = refused(serve(&data, Some(&keys), &media).await);
    assert!(
        log.contains(keys.join("recordings.key").to_str().unwrap()),
        "{log}"
    );
}

#[tokio::test]
async fn the_demonstration_keeps_its_keys_in_its_data_directory() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("demo");
    match serve(
        &data,
        None,
        &[
            "demo=true",
            "media.enabled=true",
            "media.udp_listen=\"127.0.0.1:0\"",
        ],
    )
    .await
    {
        Start::Ready(_relay) => {}
        Start::Refused(log) => panic!("{log}"),
    }
    for key in ["privacy/master.key", "recording.key"] {
        let mode = std::fs::metadata(data.join(key))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{key}");
    }
    // And starts again on them.
    match serve(&data, None, &["demo=true"]).await {
        Start::Ready(_relay) => {}
        Start::Refused(log) => panic!("{log}"),
    }
}

/// A file of the first sealed format, written here from its documented layout (independently
/// of the relay's writer): header `"RVWSEAL1" | u32 chunk | u64 len | nonce | wrapped key`
/// authenticated by every chunk.
fn seal_first_format(master: &[u8; 32], data: &[u8], out: &Path) {
    use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
    let chunk: u32 = 64 * 1024;
    let file_key = [0x42u8; 32];
    let key_nonce = [7u8; 12];
    let master = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, master).unwrap());
    let mut wrapped = file_key.to_vec();
    master
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(key_nonce),
            Aad::from(b"RVWSEAL1 file key"),
            &mut wrapped,
        )
        .unwrap();
    let mut header = b"RVWSEAL1".to_vec();
    header.extend_from_slice(&chunk.to_be_bytes());
    header.extend_from_slice(&(data.len() as u64).to_be_bytes());
    header.extend_from_slice(&key_nonce);
    header.extend_from_slice(&wrapped);
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &file_key).unwrap());
    let mut bytes = header.clone();
    for (i, piece) in data.chunks(chunk as usize).enumerate() {
        let mut nonce = [0u8; 12];
        nonce[4..].copy_from_slice(&(i as u64).to_be_bytes());
        let mut aad = header.clone();
        aad.extend_from_slice(&(i as u64).to_be_bytes());
        let mut buf = piece.to_vec();
        let tag = key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut buf,
            )
            .unwrap();
        bytes.extend_from_slice(&buf);
        bytes.extend_from_slice(tag.as_ref());
    }
    std::fs::write(out, bytes).unwrap();
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn row(id: &str, file: &str, data: &[u8]) -> RecordingRow {
    use sha2::Digest;
    RecordingRow {
        id: id.into(),
        ticket_id: format!("ticket-{id}"),
        ticket_number: "YA001".into(),
        centre_id: "demo-centre".into(),
        window_id: "window-08".into(),
        clerk_id: "clerk1".into(),
        device_id: "kiosk-demo-01".into(),
        extension_point_id: None,
        state: RecordingState::Complete,
        // Recent: the retention job runs at start and would purge an old one.
        started_ms: now_ms(),
        ended_ms: Some(now_ms()),
        duration_ms: Some(60_000),
        size_bytes: Some(data.len() as i64),
        sha256: Some(hex::encode(sha2::Sha256::digest(data))),
        file: Some(file.into()),
        container: Some("webm".into()),
        tracks: Vec::new(),
        encrypted: true,
        torn_tail: false,
        error: None,
        purged_ms: None,
    }
}

async fn play(http: &str, token: &str, id: &str) -> Vec<u8> {
    let r = reqwest::Client::new()
        .get(format!("http://{http}/api/v1/recordings/{id}/media"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{id}");
    r.bytes().await.unwrap().to_vec()
}

/// A supervisor's login with a TOTP code computed from the secret enrolled earlier (a step
/// after the last one used).
async fn supervisor_code_login(
    http: &str,
    data: &Path,
    factor: &relay_kit::staff::Known,
) -> String {
    use signaling::totp;
    let password = std::fs::read_to_string(data.join("demo/staff-password.txt")).unwrap();
    let client = reqwest::Client::new();
    let first: serde_json::Value = client
        .post(format!("http://{http}/api/v1/login"))
        .json(&serde_json::json!({"username": "supervisor1", "password": password.trim()}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(first["second_factor_required"], true, "{first}");
    let now = totp::step_at(now_ms());
    let step = now.max(factor.last_step + 1);
    assert!(step <= now + totp::WINDOW, "a fresh step");
    let r = client
        .post(format!("http://{http}/api/v1/login/code"))
        .json(&serde_json::json!({
            "pending_token": first["pending_token"],
            "code": totp::code_for_step(&factor.secret, step),
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the login code is accepted");
    let body: serde_json::Value = r.json().await.unwrap();
    body["token"].as_str().unwrap().to_owned()
}

/// A supervisor's full login over HTTP, with every step the relay asks for (the first login
/// enrolls a second factor, sealed under the case materials key).
async fn supervisor_token(http: &str, data: &Path) -> String {
    let password = std::fs::read_to_string(data.join("demo/staff-password.txt")).unwrap();
    relay_kit::staff::login(
        &reqwest::Client::new(),
        &format!("http://{http}"),
        "supervisor1",
        password.trim(),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn rotate_key_from_the_command_line_then_items_and_recordings_open_with_the_new_key_only() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let (ok, _, err) = run(&data, &["seed-demo"]);
    assert!(ok, "{err}");
    let keys = init_keys(root.path(), &data);
    let old = read_key_file(&keys.join("recordings.key")).unwrap();
    let recordings = data.join("recordings");
    std::fs::create_dir_all(&recordings).unwrap();
    let current: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let first_format: Vec<u8> = (0..90_000u32).map(|i| (i * 13 % 253) as u8).collect();
    let plain = recordings.join("rec-now.webm");
    std::fs::write(&plain, &current).unwrap();
    sealed::seal_file(
        &MasterKey::from_key(&old).unwrap(),
        &plain,
        &sealed::sealed_path(&plain),
    )
    .unwrap();
    std::fs::remove_file(&plain).unwrap();
    seal_first_format(
        old.bytes(),
        &first_format,
        &recordings.join("rec-v1.webm.sealed"),
    );
    let store = SqliteStore::open(&data).await.unwrap();
    store
        .save_recording(&row("rec-now", "rec-now.webm.sealed", &current))
        .await
        .unwrap();
    store
        .save_recording(&row("rec-v1", "rec-v1.webm.sealed", &first_format))
        .await
        .unwrap();
    // Case items sealed under the case-materials key, through the case service.
    let cases_old = read_key_file(&keys.join("cases.key")).unwrap();
    let case_store: std::sync::Arc<dyn CaseStore> = std::sync::Arc::new(store.clone());
    let service = CaseService::with_store(
        case_store.clone(),
        CaseKey::from_key(&cases_old),
        std::sync::Arc::new(signaling::clock::SystemClock),
        180,
    );
    let origin = CaseOrigin {
        ticket_id: "t-keys".into(),
        centre_id: "demo-centre".into(),
        device_id: "kiosk-demo-01".into(),
        clerk_id: "clerk1".into(),
        ticket_number: "YA001".into(),
    };
    let mut items = Vec::new();
    for i in 0..3u8 {
        let bytes = vec![i; 1000];
        let id = service
            .store_bytes(
                &origin,
                "scan",
                "text/plain",
                bytes.clone(),
                None,
                ("clerk", "clerk1"),
            )
            .await
            .unwrap();
        items.push((id, bytes));
    }
    let settings = key_settings(&keys);

    // Before: both play.
    let factor = {
        let Start::Ready(relay) = serve(&data, None, &as_strs(&settings)).await else {
            panic!("start")
        };
        let token = supervisor_token(&relay.http, &data).await;
        assert_eq!(play(&relay.http, &token, "rec-now").await, current);
        assert_eq!(play(&relay.http, &token, "rec-v1").await, first_format);
        relay_kit::staff::known_factor(&format!("http://{}", relay.http), "supervisor1")
            .expect("enrolled at the first login")
    };

    // Stopped after one object, then finished by running the command again.
    let mut args = vec!["--set", &settings[0], "--set", &settings[1]];
    args.extend(["rotate-key", "--which", "recordings", "--limit", "1"]);
    let (ok, out, err) = run(&data, &args);
    assert!(ok, "{out}{err}");
    assert!(out.contains("run the command again"), "{out}");
    let mut args = vec!["--set", &settings[0], "--set", &settings[1]];
    args.extend(["rotate-key", "--which", "recordings"]);
    let (ok, out, err) = run(&data, &args);
    assert!(ok, "{out}{err}");
    assert!(out.contains("complete"), "{out}");

    // The case key, with a limit first: the supervisor's second factor (enrolled at the first
    // login, sealed under the case key) is re-wrapped with the case items.
    let mut args = vec!["--set", &settings[0], "--set", &settings[1]];
    args.extend(["rotate-key", "--which", "cases", "--limit", "2"]);
    let (ok, out, err) = run(&data, &args);
    assert!(ok, "{out}{err}");
    assert!(out.contains("run the command again"), "{out}");
    let mut args = vec!["--set", &settings[0], "--set", &settings[1]];
    args.extend(["rotate-key", "--which", "cases"]);
    let (ok, out, err) = run(&data, &args);
    assert!(ok, "{out}{err}");
    assert!(out.contains("complete"), "{out}");
    assert!(!keys.join("cases.key.previous").exists());
    let new = read_key_file(&keys.join("recordings.key")).unwrap();
    assert_ne!(new.id(), old.id());
    assert!(!keys.join("recordings.key.previous").exists());

    // After: the relay on the new keys accepts the supervisor's login code (the secret opens
    // under the new key) and plays both; the old key alone opens neither file.
    {
        let Start::Ready(relay) = serve(&data, None, &as_strs(&settings)).await else {
            panic!("start")
        };
        let token = supervisor_code_login(&relay.http, &data, &factor).await;
        assert_eq!(play(&relay.http, &token, "rec-now").await, current);
        assert_eq!(play(&relay.http, &token, "rec-v1").await, first_format);
    }
    let old_key = [MasterKey::from_key(&old).unwrap()];
    for f in ["rec-now.webm.sealed", "rec-v1.webm.sealed"] {
        assert!(
            sealed::SealedReader::open(&old_key, &recordings.join(f)).is_err(),
            "{f}"
        );
    }
    // Every case item opens with the new case key, not with the old one; contents untouched.
    let cases_new = CaseKey::load(&keys.join("cases.key")).unwrap();
    assert_ne!(cases_new.id(), CaseKey::from_key(&cases_old).id());
    for (id, bytes) in &items {
        let item = case_store.item("t-keys", id).await.unwrap().unwrap();
        let sealed = Sealed {
            key_id: item.key_id,
            wrapped_key: item.wrapped_key,
            ciphertext: item.sealed,
        };
        assert_eq!(&cases_new.open(id, &sealed).unwrap(), bytes);
        assert!(CaseKey::from_key(&cases_old).open(id, &sealed).is_err());
    }
    // The trail has every run with its counts.
    let (ok, out, _) = run(&data, &["audit", "show", "--last", "20"]);
    assert!(ok);
    assert_eq!(out.matches("keys.rotate.start").count(), 4, "{out}");
    assert!(out.contains("complete=true"), "{out}");
    assert!(
        out.contains("rewrapped=2 second_factors=0")
            && out.contains("rewrapped=2 second_factors=1"),
        "two case items, then the third and the supervisor's second factor: {out}"
    );
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// How long `relay rotate-key` takes over many case items (SQLite) and sealed recordings.
#[tokio::test]
#[ignore = "benchmark: cargo test --workspace --test master_keys -- --ignored --nocapture"]
async fn rotation_rate() {
    let items = env_usize("BENCH_ITEMS", 2000);
    let recordings = env_usize("BENCH_RECORDINGS", 200);
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let keys = init_keys(root.path(), &data);
    let store = SqliteStore::open(&data).await.unwrap();
    let case_store: std::sync::Arc<dyn CaseStore> = std::sync::Arc::new(store.clone());
    let service = CaseService::with_store(
        case_store,
        CaseKey::load(&keys.join("cases.key")).unwrap(),
        std::sync::Arc::new(signaling::clock::SystemClock),
        180,
    );
    for i in 0..items {
        let origin = CaseOrigin {
            ticket_id: format!("t-{}", i / 10),
            centre_id: "c1".into(),
            device_id: "k1".into(),
            clerk_id: "clerk1".into(),
            ticket_number: "YA001".into(),
        };
        service
            .store_bytes(
                &origin,
                "scan",
                "text/plain",
                vec![7; 4096],
                None,
                ("clerk", "clerk1"),
            )
            .await
            .unwrap();
    }
    let dir = data.join("recordings");
    std::fs::create_dir_all(&dir).unwrap();
    let key = MasterKey::load(&keys.join("recordings.key")).unwrap();
    for i in 0..recordings {
        let plain = dir.join(format!("rec-{i}.webm"));
        std::fs::write(&plain, vec![9u8; 256 * 1024]).unwrap();
        sealed::seal_file(&key, &plain, &sealed::sealed_path(&plain)).unwrap();
        std::fs::remove_file(&plain).unwrap();
    }
    let settings = key_settings(&keys);
    let started = std::time::Instant::now();
    let (ok, out, err) = run(
        &data,
        &["--set", &settings[0], "--set", &settings[1], "rotate-key"],
    );
    let took = started.elapsed();
    assert!(ok, "{out}{err}");
    println!(
        "rotate-key: {items} case items and {recordings} recordings (256 KiB) in {:.2} s\n{out}",
        took.as_secs_f64()
    );
}
