//! The registry (远程受理柜台维护), its exports, kiosk health, inspection records and the
//! public listing, over real HTTP and WebSockets against an in-process relay.

mod common;

use std::io::Cursor;
use std::time::Duration;

use calamine::{Data, Reader, Xlsx, open_workbook_from_rs};
use common::{KIOSK_SECRET, PASSWORD, TestRelay, WAIT};
use serde_json::{Value, json};
use signaling::auth::hash_secret;
use signaling::clock::{Clock, SystemClock};
use signaling::domain::{Clerk, Role};
use signaling::store::Store;

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

async fn get(relay: &TestRelay, token: Option<&str>, path: &str) -> (u16, Value) {
    let mut r = http().get(relay.url(path));
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let r = r.send().await.expect("request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn post(relay: &TestRelay, token: Option<&str>, path: &str, body: Value) -> (u16, Value) {
    let mut r = http().post(relay.url(path)).json(&body);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let r = r.send().await.expect("request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Adds a staff account with these roles.
async fn account(relay: &TestRelay, username: &str, centre: &str, roles: Vec<Role>) {
    relay
        .state
        .store
        .upsert_clerk(
            &Clerk {
                id: format!("id-{username}"),
                centre_id: centre.into(),
                username: username.into(),
                display_name: format!("{username} 姓名"),
                password_hash: hash_secret(PASSWORD).expect("hash"),
                roles,
                active: true,
            },
            SystemClock.now_ms(),
        )
        .await
        .expect("account");
}

fn form(device_id: &str) -> Value {
    json!({
        "district": "徐汇区",
        "street": "天平路街道",
        "institution": "天平路街道永嘉路居委会延伸服务点",
        "address": "永嘉路100号",
        "hours": {"weekly": [{"weekdays": [1,2,3,4,5,6,7], "periods": [{"open": "00:00", "close": "24:00"}]}],
                  "exceptions": [{"date": "2026-10-01", "periods": [], "note": "国庆节"}]},
        "hours_text": "",
        "phone": "021 6404 1234",
        "device_id": device_id,
        "device_url": "http://10.11.160.170",
        "remarks": "首批试点"
    })
}

fn today() -> String {
    let (d, _) = protocol::hours::shanghai(SystemClock.now_ms());
    d.to_string()
}

/// A kiosk that logs in and returns its welcome, or the error that refused it.
async fn kiosk_hello(relay: &TestRelay, device: &str, secret: &str) -> (common::Client, Value) {
    let mut k = relay.kiosk(device, secret).await;
    let first = k.next().await.expect("an answer to hello");
    (k, first)
}

async fn step(
    relay: &TestRelay,
    token: &str,
    id: &str,
    action: &str,
    reason: &str,
) -> (u16, Value) {
    let (_, detail) = get(
        relay,
        Some(token),
        &format!("/api/v1/registry/counters/{id}"),
    )
    .await;
    // An id this account cannot see has no version to give; any will do.
    let version = detail["counter"]["version"].as_i64().unwrap_or(1);
    post(
        relay,
        Some(token),
        &format!("/api/v1/registry/counters/{id}/{action}"),
        json!({"version": version, "reason": reason}),
    )
    .await
}

#[tokio::test]
async fn lifecycle_application_activation_change_replacement_closure() {
    let relay = TestRelay::start().await;
    let op = relay.login("registrar").await;

    // 接入申请: stored, but nothing the queue reads yet.
    let mut body = form("kiosk-tp-01");
    body["id"] = json!("tp-01");
    let (status, applied) = post(&relay, Some(&op), "/api/v1/registry/counters", body).await;
    assert_eq!(status, 201, "{applied}");
    let c = &applied["counter"];
    assert_eq!(c["state"], "applied");
    assert_eq!(c["state_zh"], "已申请");
    assert_eq!(
        c["fields"]["institution"],
        "天平路街道永嘉路居委会 延伸服务点"
    );
    assert_eq!(c["fields"]["phone"], "021-64041234");
    assert_eq!(c["fields"]["hours_text"], "周一至周日 0:00-24:00");
    assert!(applied.get("credential").is_none());
    assert!(
        relay
            .state
            .store
            .extension_point("tp-01")
            .await
            .expect("store")
            .is_none()
    );

    // 开通: the credential is issued once and lets the kiosk in.
    let (status, active) = step(&relay, &op, "tp-01", "activate", "市运管中心已审核").await;
    assert_eq!(status, 200, "{active}");
    assert_eq!(active["counter"]["state"], "active");
    let credential = active["credential"]
        .as_str()
        .expect("credential")
        .to_owned();
    let (device, secret) = credential.split_once(':').expect("id:secret");
    assert_eq!(device, "kiosk-tp-01");
    let (mut k, welcome) = kiosk_hello(&relay, device, secret).await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    assert_eq!(
        welcome["extension_point"]["name"],
        "天平路街道永嘉路居委会 延伸服务点"
    );
    assert_eq!(welcome["extension_point"]["phone"], "021-64041234");

    // 变更: before/after kept; the kiosk is sent away to pick up its point's new details.
    let (_, detail) = get(&relay, Some(&op), "/api/v1/registry/counters/tp-01").await;
    let mut changed = form("kiosk-tp-01");
    changed["phone"] = json!("13812345678");
    changed["version"] = detail["counter"]["version"].clone();
    let (status, body) = post(
        &relay,
        Some(&op),
        "/api/v1/registry/counters/tp-01/change",
        changed.clone(),
    )
    .await;
    assert_eq!(status, 400, "a change needs a reason: {body}");
    assert!(body["message"].as_str().expect("message").contains("原因"));
    changed["reason"] = json!("更换联系电话");
    let (status, body) = post(
        &relay,
        Some(&op),
        "/api/v1/registry/counters/tp-01/change",
        changed.clone(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.get("credential").is_none(),
        "same device, same credential"
    );
    k.expect_closed().await;
    let (_k, welcome) = kiosk_hello(&relay, device, secret).await;
    assert_eq!(welcome["extension_point"]["phone"], "13812345678");

    // A stale version is refused.
    let (status, _) = post(
        &relay,
        Some(&op),
        "/api/v1/registry/counters/tp-01/change",
        changed,
    )
    .await;
    assert_eq!(status, 409);

    // Replacing the device: the new one gets a credential, the old one no longer gets in.
    let (_, detail) = get(&relay, Some(&op), "/api/v1/registry/counters/tp-01").await;
    let mut replaced = form("kiosk-tp-02");
    replaced["phone"] = json!("13812345678");
    replaced["version"] = detail["counter"]["version"].clone();
    replaced["reason"] = json!("设备更换");
    let (status, body) = post(
        &relay,
        Some(&op),
        "/api/v1/registry/counters/tp-01/change",
        replaced,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let new_credential = body["credential"]
        .as_str()
        .expect("new credential")
        .to_owned();
    assert!(new_credential.starts_with("kiosk-tp-02:"));
    let (_, refused) = kiosk_hello(&relay, device, secret).await;
    assert_eq!(refused["code"], "unauthenticated");
    let (new_device, new_secret) = new_credential.split_once(':').expect("id:secret");
    let (_, welcome) = kiosk_hello(&relay, new_device, new_secret).await;
    assert_eq!(welcome["type"], "welcome");

    // The trail: who, when, what (before → after), why.
    let (status, history) = get(&relay, Some(&op), "/api/v1/registry/history").await;
    assert_eq!(status, 200);
    let events = history["events"].as_array().expect("events");
    let actions: Vec<&str> = events
        .iter()
        .map(|e| e["action"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        actions,
        ["change", "change", "activate", "apply"],
        "newest first"
    );
    assert_eq!(events[1]["reason"], "更换联系电话");
    assert_eq!(events[1]["actor_name"], "registrar 姓名");
    assert_eq!(
        events[1]["changes"],
        json!([{"field": "phone", "label": "摆放点位联系电话", "before": "021-64041234", "after": "13812345678"}])
    );

    // 关闭: gone from the public listing, the kiosk refused.
    let (status, body) = step(&relay, &op, "tp-01", "close", "").await;
    assert_eq!(status, 400, "closing needs a reason: {body}");
    let (status, body) = step(&relay, &op, "tp-01", "close", "居委会搬迁").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["counter"]["state"], "closed");
    let (_, refused) = kiosk_hello(&relay, new_device, new_secret).await;
    assert_eq!(refused["code"], "unauthenticated");
    let (status, body) = step(&relay, &op, "tp-01", "activate", "").await;
    assert_eq!(status, 409, "a closed counter stays closed: {body}");
    relay.stop().await;
}

#[tokio::test]
async fn a_closed_points_kiosks_are_refused_at_the_handshake() {
    let relay = TestRelay::start().await;
    let op = relay.login("registrar").await;
    // Bring the seeded point p1 (kiosks k1, k2 enrolled by the command line) into the registry.
    let mut body = form("k1");
    body["id"] = json!("p1");
    let (status, applied) = post(&relay, Some(&op), "/api/v1/registry/counters", body).await;
    assert_eq!(status, 201, "{applied}");
    let (status, _) = step(&relay, &op, "p1", "activate", "").await;
    assert_eq!(status, 200);
    let (_, welcome) = kiosk_hello(&relay, "k2", KIOSK_SECRET).await;
    assert_eq!(welcome["type"], "welcome");
    let (status, _) = step(&relay, &op, "p1", "close", "点位撤销").await;
    assert_eq!(status, 200);
    // k2 still has a valid credential, but its point is closed.
    let (mut k, refused) = kiosk_hello(&relay, "k2", KIOSK_SECRET).await;
    assert_eq!(refused["code"], "forbidden", "{refused}");
    assert!(
        refused["message"]
            .as_str()
            .expect("message")
            .contains("延伸点已关闭")
    );
    k.expect_closed().await;
    relay.stop().await;
}

#[tokio::test]
async fn every_field_problem_is_answered_beside_its_field() {
    let relay = TestRelay::start().await;
    let op = relay.login("registrar").await;
    let bad = json!({
        "district": "示范区",
        "street": "示范街道",
        "institution": "示范居委会",
        "address": "",
        "hours": {"weekly": [{"weekdays": [1], "periods": [{"open": "17:00", "close": "09:00"}]}]},
        "phone": "010-64041234",
        "device_id": "kiosk 01",
        "device_url": "ftp://10.0.0.1",
        "remarks": "a\nb"
    });
    let (status, body) = post(&relay, Some(&op), "/api/v1/registry/counters", bad).await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], "bad_message");
    assert!(
        body["message"]
            .as_str()
            .expect("message")
            .starts_with("表单有误")
    );
    let fields: Vec<&str> = body["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .map(|f| f["field"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        fields,
        [
            "district",
            "street",
            "institution",
            "address",
            "hours",
            "phone",
            "device_id",
            "device_url",
            "remarks"
        ]
    );
    for f in body["fields"].as_array().expect("fields") {
        let m = f["message"].as_str().expect("message");
        assert!(
            m.chars().next().is_some_and(|c| !c.is_ascii()),
            "Chinese first: {m}"
        );
        assert!(m.contains(" / "), "English too: {m}");
    }
    // The streets of a district whose list was not supplied cannot be guessed.
    let mut body = form("k-x");
    body["district"] = json!("长宁区");
    body["street"] = json!("华阳路街道");
    let (status, answer) = post(&relay, Some(&op), "/api/v1/registry/counters", body).await;
    assert_eq!(status, 400);
    assert!(
        answer["fields"][0]["message"]
            .as_str()
            .expect("message")
            .contains("尚未配置")
    );
    // Not JSON at all.
    let r = http()
        .post(relay.url("/api/v1/registry/counters"))
        .bearer_auth(&op)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 400);
    // A remote device id already registered elsewhere (k9 is centre c2's kiosk).
    let (status, answer) = post(&relay, Some(&op), "/api/v1/registry/counters", form("k9")).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["fields"][0]["field"], "device_id");
    // Refusals are counted.
    let metrics = relay.metrics().await;
    assert!(
        metrics.contains("relay_registry_invalid_forms_total 4"),
        "{metrics}"
    );
    relay.stop().await;
}

#[tokio::test]
async fn roles_and_centres_limit_who_sees_and_changes_what() {
    let relay = TestRelay::start().await;
    account(&relay, "tech", "c1", vec![Role::Technician]).await;
    account(&relay, "registrar2", "c2", vec![Role::RegistryOperator]).await;
    let op = relay.login("registrar").await;
    let (status, _) = post(&relay, Some(&op), "/api/v1/registry/counters", {
        let mut f = form("kiosk-tp-01");
        f["id"] = json!("tp-01");
        f
    })
    .await;
    assert_eq!(status, 201);

    // Nobody without a login.
    for path in [
        "/api/v1/registry/counters",
        "/api/v1/ops/health",
        "/api/v1/registry/history",
    ] {
        assert_eq!(get(&relay, None, path).await.0, 401, "{path}");
    }
    assert_eq!(
        post(&relay, None, "/api/v1/registry/counters", form("x"))
            .await
            .0,
        401
    );

    // A clerk has no business here.
    let clerk = relay.login("clerk-a").await;
    for path in [
        "/api/v1/registry/counters",
        "/api/v1/ops/health",
        "/api/v1/ops/inspections",
        "/api/v1/registry/history",
    ] {
        assert_eq!(get(&relay, Some(&clerk), path).await.0, 403, "{path}");
    }

    // A supervisor reads the registry, its trail and the forms, but changes nothing.
    let boss = relay.login("boss").await;
    assert_eq!(
        get(&relay, Some(&boss), "/api/v1/registry/counters")
            .await
            .0,
        200
    );
    assert_eq!(
        get(&relay, Some(&boss), "/api/v1/registry/history").await.0,
        200
    );
    let export = format!(
        "/api/v1/registry/exports/application?format=csv&district=徐汇区&from={}&to={}",
        today(),
        today()
    );
    let r = http()
        .get(relay.url(&export))
        .bearer_auth(&boss)
        .send()
        .await
        .expect("export");
    assert_eq!(r.status(), 200);
    assert_eq!(
        post(&relay, Some(&boss), "/api/v1/registry/counters", form("x"))
            .await
            .0,
        403
    );
    assert_eq!(step(&relay, &boss, "tp-01", "activate", "").await.0, 403);

    // A technician reads the registry and health, not the trail or the forms.
    let tech = relay.login("tech").await;
    assert_eq!(
        get(&relay, Some(&tech), "/api/v1/registry/counters")
            .await
            .0,
        200
    );
    assert_eq!(get(&relay, Some(&tech), "/api/v1/ops/health").await.0, 200);
    assert_eq!(
        get(&relay, Some(&tech), "/api/v1/registry/history").await.0,
        403
    );
    let r = http()
        .get(relay.url(&export))
        .bearer_auth(&tech)
        .send()
        .await
        .expect("export");
    assert_eq!(r.status(), 403);
    assert_eq!(
        step(&relay, &tech, "tp-01", "close", "试图关闭").await.0,
        403
    );

    // Another centre's registry operator does not even see the point.
    let other = relay.login("registrar2").await;
    let (_, list) = get(&relay, Some(&other), "/api/v1/registry/counters").await;
    assert_eq!(list["counters"], json!([]));
    assert_eq!(
        get(&relay, Some(&other), "/api/v1/registry/counters/tp-01")
            .await
            .0,
        404
    );
    assert_eq!(
        step(&relay, &other, "tp-01", "close", "试图关闭").await.0,
        404
    );
    let (status, _) = post(&relay, Some(&other), "/api/v1/registry/counters", {
        let mut f = form("kiosk-x");
        f["centre_id"] = json!("c1");
        f
    })
    .await;
    assert_eq!(status, 403, "applying for another centre");
    let (_, health) = get(&relay, Some(&other), "/api/v1/ops/health").await;
    let ids: Vec<&str> = health["points"]
        .as_array()
        .expect("points")
        .iter()
        .map(|p| p["id"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(ids, ["p9"], "only its own centre's points");

    // District scope is explicit: granted, it sees the district's points, and no other district.
    relay
        .state
        .registry
        .store
        .set_district_scope("id-registrar2", Some("徐汇区"), SystemClock.now_ms())
        .await
        .expect("grant");
    let (_, list) = get(&relay, Some(&other), "/api/v1/registry/counters").await;
    assert_eq!(list["counters"][0]["id"], "tp-01");
    let r = http()
        .get(relay.url(&export.replace("徐汇区", "黄浦区")))
        .bearer_auth(&other)
        .send()
        .await
        .expect("export");
    assert_eq!(r.status(), 403);

    // Denials are counted.
    let metrics = relay.metrics().await;
    assert!(metrics.contains("relay_registry_denied_total"), "{metrics}");
    relay.stop().await;
}

/// Merged ranges: (first row, first column, last row, last column).
type Merges = Vec<(u32, u32, u32, u32)>;

/// The first sheet as a grid of text, and its merged ranges.
fn cells(bytes: Vec<u8>) -> (Vec<Vec<String>>, Merges) {
    let mut wb: Xlsx<_> = open_workbook_from_rs(Cursor::new(bytes)).expect("xlsx opens");
    let name = wb.sheet_names()[0].clone();
    let range = wb.worksheet_range(&name).expect("sheet");
    let (rows, cols) = range.end().map_or((0, 0), |(r, c)| (r + 1, c + 1));
    let grid = (0..rows)
        .map(|r| {
            (0..cols)
                .map(|c| match range.get_value((r, c)) {
                    Some(Data::String(s)) => s.clone(),
                    None | Some(Data::Empty) => String::new(),
                    Some(other) => panic!("({r},{c}) is not text: {other:?}"),
                })
                .collect()
        })
        .collect();
    let merges = wb
        .merge_cells_by_sheet_name(&name)
        .expect("merges")
        .iter()
        .map(|d| (d.start.0, d.start.1, d.end.0, d.end.1))
        .collect();
    (grid, merges)
}

#[tokio::test]
async fn the_three_forms_export_cell_by_cell() {
    let relay = TestRelay::start().await;
    let op = relay.login("registrar").await;
    let mut f = form("kiosk-tp-01");
    f["id"] = json!("tp-01");
    assert_eq!(
        post(&relay, Some(&op), "/api/v1/registry/counters", f)
            .await
            .0,
        201
    );
    assert_eq!(step(&relay, &op, "tp-01", "activate", "").await.0, 200);
    let (_, detail) = get(&relay, Some(&op), "/api/v1/registry/counters/tp-01").await;
    let mut changed = form("kiosk-tp-01");
    changed["address"] = json!("永嘉路102号");
    changed["version"] = detail["counter"]["version"].clone();
    changed["reason"] = json!("门牌调整");
    assert_eq!(
        post(
            &relay,
            Some(&op),
            "/api/v1/registry/counters/tp-01/change",
            changed
        )
        .await
        .0,
        200
    );
    assert_eq!(
        step(&relay, &op, "tp-01", "close", "居委会搬迁").await.0,
        200
    );

    let day = today();
    let download = |form: &str, format: &str| {
        let url = relay.url(&format!(
            "/api/v1/registry/exports/{form}?format={format}&district=徐汇区&from={day}&to={day}&filed=2026-03-05"
        ));
        let op = op.clone();
        async move {
            let r = http()
                .get(url)
                .bearer_auth(op)
                .send()
                .await
                .expect("export");
            assert_eq!(r.status(), 200);
            let disposition = r.headers()["content-disposition"]
                .to_str()
                .expect("ascii")
                .to_owned();
            (disposition, r.bytes().await.expect("body").to_vec())
        }
    };
    let authority = "徐汇区民政局（或负责社区事务受理服务中心标准化建设部门）（盖章）";
    let (disposition, bytes) = download("application", "xlsx").await;
    assert!(
        disposition.contains("filename*=UTF-8''%E9%99%84%E4%BB%B61_"),
        "{disposition}"
    );
    let (grid, merges) = cells(bytes);
    assert_eq!(grid[0][0], "社区事务受理远程虚拟窗口接入申请表");
    assert_eq!(grid[1][0], authority);
    assert_eq!(grid[2][0], "申请日期：2026年3月5日");
    assert_eq!(
        grid[3],
        [
            "序号",
            "区",
            "街镇",
            "设备摆放机构名称",
            "设备摆放地址",
            "服务时间",
            "摆放点位联系电话",
            "远程设备 ID",
            "远程设备 URL",
            "备注"
        ]
    );
    assert_eq!(grid[4], row("首批试点", "永嘉路100号"));
    assert_eq!(grid[6][0], "填表说明：");
    assert_eq!(grid[8][0], "2.每台远程设备一行。");
    assert!(merges.contains(&(0, 0, 0, 9)) && merges.contains(&(1, 0, 1, 9)));

    let (_, bytes) = download("change", "xlsx").await;
    let (grid, merges) = cells(bytes);
    assert_eq!(grid[0][0], "社区事务受理远程虚拟窗口变更备案表");
    assert_eq!(grid[2][0], "备案日期：2026年3月5日");
    assert_eq!(
        grid[3],
        [
            "序号",
            "区",
            "街镇",
            "设备摆放机构名称",
            "",
            "设备摆放地址",
            "",
            "服务时间",
            "",
            "摆放点位联系电话",
            "",
            "远程设备 ID",
            "",
            "远程设备 URL",
            "",
            "原因"
        ]
    );
    assert_eq!(
        grid[4],
        [
            "",
            "",
            "",
            "变更前",
            "变更后",
            "变更前",
            "变更后",
            "变更前",
            "变更后",
            "变更前",
            "变更后",
            "变更前",
            "变更后",
            "变更前",
            "变更后",
            ""
        ]
    );
    assert_eq!(
        grid[5],
        [
            "1",
            "徐汇区",
            "天平路街道",
            "天平路街道永嘉路居委会 延伸服务点",
            "天平路街道永嘉路居委会 延伸服务点",
            "永嘉路100号",
            "永嘉路102号",
            "周一至周日 0:00-24:00",
            "周一至周日 0:00-24:00",
            "021-64041234",
            "021-64041234",
            "kiosk-tp-01",
            "kiosk-tp-01",
            "http://10.11.160.170",
            "http://10.11.160.170",
            "门牌调整"
        ]
    );
    assert_eq!(grid.len(), 6);
    for m in [(3, 0, 4, 0), (3, 3, 3, 4), (3, 13, 3, 14), (3, 15, 4, 15)] {
        assert!(merges.contains(&m), "{m:?} in {merges:?}");
    }

    let (_, bytes) = download("closure", "xlsx").await;
    let (grid, _) = cells(bytes);
    assert_eq!(grid[0][0], "社区事务受理远程虚拟窗口关闭备案表");
    assert_eq!(grid[3][9], "原因");
    assert_eq!(grid[4], row("居委会搬迁", "永嘉路102号"));

    let (disposition, bytes) = download("closure", "csv").await;
    assert!(disposition.contains(".csv"));
    let text = String::from_utf8(bytes).expect("utf-8");
    let lines: Vec<&str> = text.trim_start_matches('\u{feff}').split("\r\n").collect();
    assert_eq!(lines[0], "社区事务受理远程虚拟窗口关闭备案表,,,,,,,,,");
    assert_eq!(lines[1], format!("{authority},,,,,,,,,"));
    assert_eq!(lines[4], row("居委会搬迁", "永嘉路102号").join(","));

    // Bad requests get clear answers.
    for (query, status) in [
        (
            format!("application?district=示范区&from={day}&to={day}"),
            400,
        ),
        (format!("application?district=徐汇区&from={day}"), 400),
        (
            "application?district=徐汇区&from=2026-03-05&to=2026-03-01".to_owned(),
            400,
        ),
        (
            format!("application?format=pdf&district=徐汇区&from={day}&to={day}"),
            400,
        ),
        (
            format!("attachment9?district=徐汇区&from={day}&to={day}"),
            404,
        ),
    ] {
        let r = http()
            .get(relay.url(&format!("/api/v1/registry/exports/{query}")))
            .bearer_auth(&op)
            .send()
            .await
            .expect("export");
        assert_eq!(r.status().as_u16(), status, "{query}");
    }
    relay.stop().await;
}

#[tokio::test]
async fn the_public_listing_shows_open_points_without_login() {
    let relay = TestRelay::start().await;
    let op = relay.login("registrar").await;
    for (id, device, name) in [
        ("tp-01", "kiosk-tp-01", "天平路街道永嘉路居委会延伸服务点"),
        (
            "tp-02",
            "kiosk-tp-02",
            "天平路街道<b>建国西路</b>居委会延伸服务点",
        ),
        ("tp-03", "kiosk-tp-03", "天平路街道天平居委会延伸服务点"),
    ] {
        let mut f = form(device);
        f["id"] = json!(id);
        f["institution"] = json!(name);
        let (status, body) = post(&relay, Some(&op), "/api/v1/registry/counters", f).await;
        if id == "tp-02" {
            assert_eq!(status, 400, "markup is not a committee name: {body}");
            continue;
        }
        assert_eq!(status, 201);
    }
    assert_eq!(step(&relay, &op, "tp-01", "activate", "").await.0, 200);
    let (status, listing) = get(&relay, None, "/api/v1/public/extension-points").await;
    assert_eq!(status, 200);
    let points = listing["points"].as_array().expect("points");
    assert_eq!(points.len(), 1, "applied points are not public yet");
    assert_eq!(points[0]["name"], "天平路街道永嘉路居委会 延伸服务点");
    assert_eq!(points[0]["phone"], "021-64041234");
    assert_eq!(points[0]["open_now"], true);
    assert!(points[0].get("device_id").is_none() && points[0].get("device_url").is_none());
    let r = http()
        .get(relay.url("/public/extension-points"))
        .send()
        .await
        .expect("page");
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-security-policy"]
            .to_str()
            .expect("csp")
            .contains("script-src 'self'")
    );
    let page = r.text().await.expect("html");
    assert!(page.contains("天平路街道永嘉路居委会 延伸服务点"));
    assert!(page.contains("2026-10-01（国庆节）不开放"));
    assert!(!page.contains("<script"));
    assert!(
        !page.contains("天平路街道天平居委会"),
        "an application is not listed"
    );
    relay.stop().await;
}

/// One data row of attachments 1 and 3 for the test point.
fn row(last: &str, address: &str) -> Vec<String> {
    [
        "1",
        "徐汇区",
        "天平路街道",
        "天平路街道永嘉路居委会 延伸服务点",
        address,
        "周一至周日 0:00-24:00",
        "021-64041234",
        "kiosk-tp-01",
        "http://10.11.160.170",
        last,
    ]
    .map(str::to_owned)
    .to_vec()
}

async fn wait_health(relay: &TestRelay, token: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (_, v) = get(relay, Some(token), "/api/v1/ops/health").await;
        if check(&v) {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "health never matched: {v}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn kiosk_of<'a>(v: &'a Value, device: &str) -> Option<&'a Value> {
    v["points"]
        .as_array()?
        .iter()
        .flat_map(|p| p["kiosks"].as_array().into_iter().flatten())
        .find(|k| k["device_id"] == device)
}

#[tokio::test]
async fn health_shows_connection_device_status_and_inspections() {
    let relay = TestRelay::start().await;
    account(&relay, "tech", "c1", vec![Role::Technician]).await;
    let tech = relay.login("tech").await;
    let (_, v) = get(&relay, Some(&tech), "/api/v1/ops/health").await;
    assert_eq!(
        kiosk_of(&v, "k1").map(|k| k["online"].clone()),
        Some(json!(false))
    );

    let (mut k, welcome) = kiosk_hello(&relay, "k1", KIOSK_SECRET).await;
    assert_eq!(welcome["type"], "welcome");
    k.send(json!({"type": "device", "message": {"type": "unsolicited", "name": "Common.StatusChangedEvent",
        "payload": {"device": "document_camera", "status": "hardware_error"}}}))
        .await;
    let v = wait_health(&relay, &tech, |v| {
        kiosk_of(v, "k1")
            .is_some_and(|k| k["online"] == true && k["failing"] == json!(["document_camera"]))
    })
    .await;
    let p1 = v["points"]
        .as_array()
        .expect("points")
        .iter()
        .find(|p| p["id"] == "p1")
        .expect("p1");
    assert_eq!(p1["online"], true);
    assert!(v["summary"]["failing"].as_u64() >= Some(1));

    // The self-test result, filed with the kiosk's own credential.
    let report = json!({
        "technician": "赵磊", "started_ms": SystemClock.now_ms() - 60_000, "finished_ms": SystemClock.now_ms(),
        "agent_version": "0.1.0",
        "checks": [
            {"id": "camera.frames", "device": "camera", "outcome": "pass", "detail": {"zh": "画面正常", "en": "ok"}},
            {"id": "document_camera.still", "device": "document_camera", "outcome": "fail",
             "detail": {"zh": "无法拍照", "en": "no still"}, "remedy": {"zh": "检查高拍仪USB连接", "en": "check the USB cable"}}
        ]
    });
    let upload = |credential: String, body: Value| {
        let url = relay.url("/api/v1/inspections");
        async move {
            http()
                .post(url)
                .bearer_auth(credential)
                .json(&body)
                .send()
                .await
                .expect("upload")
        }
    };
    let r = upload(format!("k1:{KIOSK_SECRET}"), report.clone()).await;
    assert_eq!(r.status(), 201);
    let receipt: Value = r.json().await.expect("receipt");
    assert_eq!(receipt["overall"], "fail", "worked out by the relay");
    assert_eq!(
        upload("k1:wrong".into(), report.clone()).await.status(),
        401
    );
    assert_eq!(
        upload(format!("tm1:{KIOSK_SECRET}"), report.clone())
            .await
            .status(),
        401
    );
    let mut nameless = report.clone();
    nameless["technician"] = json!("");
    assert_eq!(
        upload(format!("k1:{KIOSK_SECRET}"), nameless)
            .await
            .status(),
        400
    );
    let (_, v) = get(&relay, Some(&tech), "/api/v1/ops/health").await;
    let p1 = v["points"]
        .as_array()
        .expect("points")
        .iter()
        .find(|p| p["id"] == "p1")
        .expect("p1");
    assert_eq!(p1["last_inspection"]["technician"], "赵磊");
    assert_eq!(
        p1["last_inspection"]["problems"],
        json!(["document_camera.still"])
    );
    let (_, list) = get(&relay, Some(&tech), "/api/v1/ops/inspections").await;
    assert_eq!(
        list["inspections"][0]["report"]["checks"][1]["remedy"]["zh"],
        "检查高拍仪USB连接"
    );
    assert_eq!(
        list["check_names"]["document_camera.still"]["zh"], "高拍仪 拍照",
        "the check named as on the kiosk"
    );
    // Another centre's staff do not see it.
    account(&relay, "tech2", "c2", vec![Role::Technician]).await;
    let tech2 = relay.login("tech2").await;
    let (_, list) = get(&relay, Some(&tech2), "/api/v1/ops/inspections").await;
    assert_eq!(list["inspections"], json!([]));

    // Offline as soon as the connection ends; its last heartbeat is kept.
    drop(k);
    let v = wait_health(&relay, &tech, |v| {
        kiosk_of(v, "k1").is_some_and(|k| k["online"] == false)
    })
    .await;
    assert!(
        kiosk_of(&v, "k1").expect("k1")["last_seen_ms"]
            .as_i64()
            .is_some()
    );
    relay.stop().await;
}

/// A centre in 徐汇区 files an application, then amends the pending point's district to
/// 黄浦区: the amendment gets the application's district check, so the point cannot slip into
/// another district's scope before activation.
#[tokio::test]
async fn amending_a_pending_application_keeps_the_centres_district() {
    let relay = TestRelay::start().await;
    relay
        .store
        .upsert_centre(
            &signaling::domain::Centre {
                id: "c-xh".into(),
                name: "徐汇区天平路街道社区事务受理服务中心".into(),
                district: "徐汇区".into(),
                street: "天平路街道".into(),
            },
            SystemClock.now_ms(),
        )
        .await
        .expect("centre");
    account(&relay, "op-xh", "c-xh", vec![Role::RegistryOperator]).await;
    let op = relay.login("op-xh").await;
    let mut body = form("kiosk-xh-01");
    body["id"] = json!("xh-01");
    let (status, applied) = post(&relay, Some(&op), "/api/v1/registry/counters", body).await;
    assert_eq!(status, 201, "{applied}");
    let mut amended = form("kiosk-xh-01");
    amended["district"] = json!("黄浦区");
    amended["street"] = json!("外滩街道");
    amended["institution"] = json!("外滩街道中山东一路居委会延伸服务点");
    amended["version"] = applied["counter"]["version"].clone();
    amended["reason"] = json!("改区");
    let (status, answer) = post(
        &relay,
        Some(&op),
        "/api/v1/registry/counters/xh-01/change",
        amended,
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    let fields: Vec<&str> = answer["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .filter_map(|f| f["field"].as_str())
        .collect();
    assert!(fields.contains(&"district"), "{answer}");
    let (_, detail) = get(&relay, Some(&op), "/api/v1/registry/counters/xh-01").await;
    assert_eq!(detail["counter"]["fields"]["district"], "徐汇区");
    relay.stop().await;
}
