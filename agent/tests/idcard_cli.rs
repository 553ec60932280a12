//! The real `agent` binary against the simulated reader: `agent card-reader read` prints a
//! masked card, and fails with a Chinese and English message; `agent card-reader simulate`
//! prints a pty path a technician can read from.

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use agent::devices::idcard::simulator::{Fault, SamSimulator, Scenario};

const AGENT: &str = env!("CARGO_BIN_EXE_agent");

fn read_cli(port: &str, extra: &[&str]) -> Output {
    Command::new(AGENT)
        .args(["card-reader", "read", "--port", port, "--wait-secs", "3"])
        .args(extra)
        .output()
        .expect("agent runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn read_prints_a_masked_card() {
    let sim = SamSimulator::start(Scenario::default()).expect("simulator");
    let out = read_cli(sim.path(), &[]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("公民身份号码 / ID number: 310***********1230"),
        "{stdout}"
    );
    assert!(stdout.contains("姓名 / name: 王**"), "{stdout}");
    assert!(
        stdout.contains("SAM id: 05.01-20100623-000012345-123456789"),
        "{stdout}"
    );
    for secret in ["310101199003071230", "王小明", "示例路"] {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "{secret} leaked"
        );
    }
}

#[test]
fn read_json_masked_and_unmasked() {
    let sim = SamSimulator::start(Scenario::default()).expect("simulator");
    let out = read_cli(sim.path(), &["--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(value["card"]["masked"], true);
    assert_eq!(value["card"]["id_number"], "310***********1230");
    assert_eq!(value["photo_wlt_bytes"], 1024);

    // The simulator presents its next card, the one valid 长期.
    let out = read_cli(sim.path(), &["--json", "--show-personal"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(value["card"]["card_type"], "resident");
    assert_eq!(value["card"]["id_number"], "310115195011200020");
    assert_eq!(value["card"]["valid_until"], "long_term");
}

#[test]
fn every_failure_exits_non_zero_with_both_languages() {
    let cases: &[(Option<Fault>, &str, &str)] = &[
        (
            Some(Fault::SamSelfTestFailure),
            "SAM自检失败",
            "SAM self-test failed",
        ),
        (Some(Fault::NoCard), "未检测到证件", "no card was placed"),
        (
            Some(Fault::ReadFailure),
            "读证/卡操作失败",
            "reading the card failed",
        ),
    ];
    for (fault, zh, en) in cases {
        let sim = SamSimulator::start(Scenario {
            faults: fault.iter().copied().collect(),
            ..Scenario::default()
        })
        .expect("simulator");
        let out = read_cli(sim.path(), &[]);
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{fault:?}");
        assert!(
            stderr.contains(zh) && stderr.contains(en),
            "{fault:?}: {stderr}"
        );
        assert!(out.stdout.is_empty(), "{fault:?}");
    }
    let out = read_cli("/dev/nonexistent-reader", &[]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("无法打开阅读器串口 / cannot open the reader's serial port"),
        "{stderr}"
    );
}

#[test]
fn simulate_subcommand_serves_a_pty_for_read() {
    let mut child = Command::new(AGENT)
        .args([
            "card-reader",
            "simulate",
            "--card",
            "permit",
            "--fault",
            "line-noise",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("simulator runs");
    let mut path = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut path)
        .expect("path line");
    let path = path.trim().to_string();
    assert!(path.starts_with("/dev/"), "{path:?}");

    let out = read_cli(&path, &[]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("港澳台居民居住证"), "{stdout}");
    assert!(stdout.contains("810***********0039"), "{stdout}");

    // Closing standard input stops it; bounded wait, then kill as a last resort.
    drop(child.stdin.take());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        status.is_some_and(|s| s.success()),
        "simulator did not stop on EOF"
    );
}
