//! The relay's side of a kiosk's self-test (`protocol::selftest`), in-process over real HTTP:
//! the clock probe without a credential, the ICE-server probe and the upload sink with the
//! kiosk's credential only, the upload sink's size limit.

mod common;

use common::{KIOSK_SECRET, TestRelay};
use protocol::selftest::{
    ICE_SERVERS_PATH, IceServersProbe, MAX_UPLOAD_PROBE_BYTES, TIME_PATH, TimeProbe, UPLOAD_PATH,
    UploadProbe,
};
use signaling::clock::{Clock, SystemClock};

fn kiosk(device: &str) -> String {
    format!("{device}:{KIOSK_SECRET}")
}

#[tokio::test]
async fn selftest_time_probe_answers_without_a_credential() {
    let relay = TestRelay::start().await;
    let before = SystemClock.now_ms();
    let r = reqwest::get(relay.url(TIME_PATH)).await.expect("request");
    assert_eq!(r.status(), 200);
    let probe: TimeProbe = r.json().await.expect("json");
    let after = SystemClock.now_ms();
    // The relay's clock is this process's clock here.
    assert!(
        (before..=after).contains(&probe.server_time_ms),
        "{before} ≤ {} ≤ {after}",
        probe.server_time_ms
    );
    relay.stop().await;
}

#[tokio::test]
async fn selftest_ice_servers_take_an_active_kiosk_and_say_whether_media_is_on() {
    let relay = TestRelay::start().await;
    let client = reqwest::Client::new();
    let get = |bearer: Option<String>| {
        let mut r = client.get(relay.url(ICE_SERVERS_PATH));
        if let Some(b) = bearer {
            r = r.bearer_auth(b);
        }
        r.send()
    };
    assert_eq!(get(None).await.expect("request").status(), 401);
    assert_eq!(
        get(Some("k1:wrong-secret".into()))
            .await
            .expect("request")
            .status(),
        401
    );
    assert_eq!(
        get(Some(kiosk("k-off"))).await.expect("request").status(),
        401,
        "a disabled kiosk"
    );
    let r = get(Some(kiosk("k1"))).await.expect("request");
    assert_eq!(r.status(), 200);
    let probe: IceServersProbe = r.json().await.expect("json");
    // This relay runs without media (and so without TURN), and says so.
    assert_eq!(probe.media_enabled, Some(false));
    assert!(probe.ice_servers.is_empty());
    relay.stop().await;
}

#[tokio::test]
async fn selftest_upload_counts_the_bytes_and_refuses_more_than_its_limit() {
    let relay = TestRelay::start().await;
    let client = reqwest::Client::new();
    let post = |bearer: Option<String>, len: usize| {
        let mut r = client
            .post(relay.url(UPLOAD_PATH))
            .header("content-type", "application/octet-stream")
            .body(vec![0x5Au8; len]);
        if let Some(b) = bearer {
            r = r.bearer_auth(b);
        }
        r.send()
    };
    assert_eq!(post(None, 1024).await.expect("request").status(), 401);
    let r = post(Some(kiosk("k1")), 1024 * 1024).await.expect("request");
    assert_eq!(r.status(), 200);
    let probe: UploadProbe = r.json().await.expect("json");
    assert_eq!(probe.bytes, 1024 * 1024);
    let too_big = usize::try_from(MAX_UPLOAD_PROBE_BYTES).expect("fits") + 1;
    // One byte over: the whole body is sent by the time the relay counts past its limit.
    let r = post(Some(kiosk("k1")), too_big).await.expect("request");
    assert_eq!(r.status(), 413);
    relay.stop().await;
}
