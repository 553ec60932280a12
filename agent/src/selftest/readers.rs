//! The ID card reader and QR scanner checks (`reference/idcard-sam-protocol.md` §1.8).
//!
//! ID card reader: SAM status (`11 FF`, 90 expected; 60 = the SAM failed its self-test) and the
//! SAM id (`12 FF`), on the reader the kiosk serves with; with a test card, a full read whose
//! text parses and whose ID number's check digit holds. Nothing read from the card is put in
//! the result: only that it read and validated, and the card type.
//!
//! QR scanner: present (its port opened and its reading thread runs); with a test code, one
//! scan. The scan's content is shown only when it equals the configured test code.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use protocol::device::{DeviceKind, IdCard};
use protocol::inspection::CheckResult;

use super::check::{Check, bi};
use crate::devices::idcard::status::Sw3;
use crate::devices::idcard::{IdCardError, IdCardReader, ReadOptions};
use crate::devices::workers::{ScannerWorker, TestScan};

const READER: Option<DeviceKind> = Some(DeviceKind::IdCardReader);
const SCANNER: Option<DeviceKind> = Some(DeviceKind::QrScanner);

pub type SharedReader = Arc<Mutex<Box<dyn IdCardReader>>>;

/// `id_card_reader.sam`. Blocks (serial I/O, bounded by the driver's reply timeout).
pub fn check_sam(reader: &SharedReader) -> CheckResult {
    let Ok(mut reader) = reader.try_lock() else {
        return busy("id_card_reader.sam", READER);
    };
    match reader.self_test() {
        Ok(info) => Check::new("id_card_reader.sam", READER).pass(bi(
            format!("安全模块（SAM）状态正常，SAM 编号 {}", info.sam_id),
            format!("online: SAM status OK, SAM id {}", info.sam_id),
        )),
        Err(e) => reader_failure("id_card_reader.sam", &e),
    }
}

/// `id_card_reader.read` with a test card placed within `wait`. Blocks.
pub fn check_card(reader: &SharedReader, wait: Duration) -> CheckResult {
    let Ok(mut reader) = reader.try_lock() else {
        return busy("id_card_reader.read", READER);
    };
    let started = Instant::now();
    match reader.read_card(&ReadOptions::wait(wait), &mut |_| {}) {
        Ok(read) => {
            let kind = match &read.card {
                IdCard::Resident(_) => ("居民身份证", "resident identity card"),
                IdCard::HkMacaoTaiwanPermit(_) => ("港澳台居民居住证", "HK/Macao/Taiwan residence permit"),
                IdCard::ForeignPermanentResident(_) => ("外国人永久居留身份证", "foreign permanent resident card"),
            };
            let took = started.elapsed().as_secs_f64();
            Check::new("id_card_reader.read", READER)
                .measure("read_time", took * 1000.0, "ms")
                .pass(bi(
                    format!("测试证件读取成功（{}），各项信息与号码校验通过，用时 {took:.1} 秒", kind.0),
                    format!("online: the test card ({}) read and validated in {took:.1} s", kind.1),
                ))
        }
        Err(IdCardError::NoCard) => Check::new("id_card_reader.read", READER).fail(
            bi(
                format!("{} 秒内未检测到测试证件", wait.as_secs()),
                format!("userError: no test card was placed within {} s", wait.as_secs()),
            ),
            bi(
                "将测试证件平放在阅读区中央后重试；放好仍读不到则清洁阅读区或更换阅读器",
                "lay the test card flat in the middle of the reading area and retry; if it still is not found, clean the reader or replace it",
            ),
        ),
        Err(e) => reader_failure("id_card_reader.read", &e),
    }
}

fn busy(id: &'static str, device: Option<DeviceKind>) -> CheckResult {
    Check::new(id, device).warn(
        bi(
            "设备正被坐席使用（deviceBusy），未检查",
            "deviceBusy: a clerk is using the device; not checked",
        ),
        bi(
            "等当前业务结束后再检查",
            "check again when the current service has ended",
        ),
    )
}

/// The reader's failures with what a technician can do about each.
fn reader_failure(id: &'static str, e: &IdCardError) -> CheckResult {
    let check = Check::new(id, READER);
    let (state, zh, en): (&str, &str, &str) = match e {
        IdCardError::Open { .. } => (
            "noDevice",
            "检查阅读器USB线与供电；确认配置 devices.id_card_port 指向阅读器的串口（建议用 /dev/serial/by-id/… 路径）",
            "check the reader's USB cable and power; check that devices.id_card_port names its serial port (prefer a /dev/serial/by-id/… path)",
        ),
        IdCardError::Io { .. } | IdCardError::Timeout { .. } => (
            "hardwareError",
            "阅读器无应答：检查串口线、波特率（设备配置为115200 8N1）与供电，断电重启阅读器",
            "the reader does not answer: check the serial cable, the baud rate (the profile says 115200 8N1) and power; power-cycle the reader",
        ),
        IdCardError::CorruptReply { .. } | IdCardError::UnexpectedReply { .. } => (
            "hardwareError",
            "阅读器应答数据异常：检查串口线是否接触不良、是否有干扰；确认阅读器使用 SAM 串口协议",
            "corrupt replies: check the serial cable for loose contacts or interference; check the reader speaks the SAM serial protocol",
        ),
        IdCardError::Sam {
            status: Sw3::SamSelfTestFailed,
            ..
        } => (
            "hardwareError",
            "安全模块（SAM）自检失败：断电重启阅读器；仍失败则联系厂商检修或更换安全模块，期间暂停读卡业务",
            "the SAM failed its self-test: power-cycle the reader; if it still fails, have the vendor repair or replace the SAM, and stop card reading until then",
        ),
        IdCardError::Sam {
            status: Sw3::SamNotAuthorised,
            ..
        } => (
            "hardwareError",
            "安全模块（SAM）未经授权：联系阅读器厂商或公安机关授权",
            "the SAM is not authorised: contact the reader's vendor for authorisation",
        ),
        IdCardError::Sam { .. } | IdCardError::CardData { .. } => (
            "userError",
            "取下证件重新放置后再试；换一张测试证件仍失败则联系厂商",
            "lift the card, place it again and retry; if another test card fails too, contact the vendor",
        ),
        IdCardError::CardNotRemoved => (
            "userError",
            "取走阅读区上的证件后重试",
            "lift the card off the reader and retry",
        ),
        IdCardError::NoCard | IdCardError::Canceled => (
            "userError",
            "将测试证件放在阅读区后重试",
            "place the test card on the reader and retry",
        ),
    };
    // The error's text is "中文 / English (details)": the English line gets the English and
    // the details (SW3, the command).
    let full = e.to_string();
    let english = full
        .strip_prefix(&format!("{} / ", e.zh()))
        .unwrap_or(&full);
    check.fail(
        bi(
            format!("{}（{state}）", e.zh()),
            format!("{state}: {english}"),
        ),
        bi(zh, en),
    )
}

/// Why a device was not opened, for the Chinese line: the usual "no devices.… configured"
/// said in Chinese, anything else (a driver's message) as it is.
pub fn reason_zh(reason: &str) -> String {
    match reason
        .strip_prefix("no ")
        .and_then(|r| r.strip_suffix(" configured"))
    {
        Some(key) if key.starts_with("devices.") => format!("配置中未设置 {key}"),
        _ => reason.to_owned(),
    }
}

/// `id_card_reader.*` when the reader could not be opened at all.
pub fn reader_missing(reason: &str) -> CheckResult {
    Check::new("id_card_reader.sam", READER).fail(
        bi(format!("未找到身份证阅读器（noDevice）：{}", reason_zh(reason)), format!("noDevice: the ID card reader is not available: {reason}")),
        bi(
            "检查阅读器USB线与供电；确认配置 devices.id_card_port 指向阅读器的串口（建议用 /dev/serial/by-id/… 路径）",
            "check the reader's USB cable and power; check that devices.id_card_port names its serial port (prefer a /dev/serial/by-id/… path)",
        ),
    )
}

/// `qr_scanner.present`.
pub fn check_scanner_present(
    scanner: Option<&ScannerWorker>,
    missing: Option<&str>,
    required: bool,
) -> CheckResult {
    let check = Check::new("qr_scanner.present", SCANNER);
    let remedy = bi(
        "检查扫码器USB线；确认配置 devices.scanner_port 指向扫码器（键盘模式为 /dev/input/by-id/…-event-kbd，串口模式为 /dev/serial/by-id/…）",
        "check the scanner's USB cable; check that devices.scanner_port names it (/dev/input/by-id/…-event-kbd in keyboard mode, /dev/serial/by-id/… in serial mode)",
    );
    match scanner {
        Some(s) if s.is_running() => {
            check.pass(bi("扫码器已连接", "online: the scanner is connected"))
        }
        Some(_) => check.fail(
            bi("扫码器已断开（noDevice）", "noDevice: the scanner has gone"),
            remedy,
        ),
        None => {
            let reason = missing.unwrap_or("not configured");
            let detail = bi(
                format!("未找到扫码器（noDevice）：{}", reason_zh(reason)),
                format!("noDevice: no scanner: {reason}"),
            );
            if required {
                check.fail(detail, remedy)
            } else {
                check.warn(detail, remedy)
            }
        }
    }
}

/// `qr_scanner.decode` with a test code scanned within `wait`.
pub async fn check_scan(
    scanner: &ScannerWorker,
    wait: Duration,
    expected: Option<&str>,
) -> CheckResult {
    let check = Check::new("qr_scanner.decode", SCANNER);
    match scanner.test_scan(wait).await {
        TestScan::Scanned(scan) => {
            let bytes = scan.bytes.expose().len();
            let check = check.measure("bytes", bytes as f64, "B");
            match expected {
                Some(code) if scan.text.expose() != code => check.warn(
                    bi(
                        format!("扫到 {bytes} 字节，但与测试码内容不一致"),
                        format!("scanned {bytes} bytes, but not the test code's content"),
                    ),
                    bi(
                        "检查扫码器的键盘布局与后缀设置（出厂设置为美式键盘、回车结尾）；中文内容需用串口模式",
                        "check the scanner's keyboard layout and suffix settings (factory: US layout, Enter); Chinese content needs serial mode",
                    ),
                ),
                Some(code) => check.pass(bi(format!("测试码识别正确：{code}"), format!("online: the test code decoded correctly: {code}"))),
                None => check.pass(bi(format!("扫码成功，{bytes} 字节"), format!("online: a code decoded, {bytes} bytes"))),
            }
        }
        TestScan::NoScan => check.fail(
            bi(
                format!("{} 秒内没有扫到测试码", wait.as_secs()),
                format!("userError: no test code was scanned within {} s", wait.as_secs()),
            ),
            bi(
                "将测试码对准扫码窗口，距离10至20厘米；仍扫不到则清洁扫码窗口或更换扫码器",
                "hold the test code 10–20 cm in front of the scan window; if it still does not scan, clean the window or replace the scanner",
            ),
        ),
        TestScan::Failed(e) => check.fail(
            bi(format!("扫码失败：{e}"), format!("hardwareError: the scan failed: {e}")),
            bi("重新插拔扫码器后再试", "replug the scanner and retry"),
        ),
        TestScan::Gone => check.fail(
            bi("扫码器已断开（noDevice）", "noDevice: the scanner has gone"),
            bi("重新插拔扫码器，检查USB线", "replug the scanner and check its USB cable"),
        ),
        TestScan::Busy => busy("qr_scanner.decode", SCANNER),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_setting_is_said_in_chinese() {
        assert_eq!(
            reason_zh("no devices.id_card_port configured"),
            "配置中未设置 devices.id_card_port"
        );
        assert_eq!(reason_zh("Permission denied"), "Permission denied");
        let r = reader_missing("no devices.id_card_port configured");
        assert!(r.detail.zh.contains("配置中未设置 devices.id_card_port"));
        assert!(r.detail.en.contains("no devices.id_card_port configured"));
    }

    #[test]
    fn reader_failures_keep_each_language_on_its_line() {
        let e = IdCardError::Sam {
            command: crate::devices::idcard::SamCommand::Status,
            status: Sw3::SamSelfTestFailed,
        };
        let r = reader_failure("id_card_reader.sam", &e);
        assert!(r.detail.zh.ends_with("（hardwareError）"), "{r:?}");
        assert!(
            r.detail
                .en
                .starts_with("hardwareError: SAM self-test failed"),
            "{r:?}"
        );
        assert!(r.detail.en.contains("0x60"), "{r:?}");
    }
}
