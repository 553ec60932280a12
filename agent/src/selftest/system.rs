//! The kiosk's own checks: free disk under the data directory, the GStreamer elements the
//! media needs, and the versions of the agent and the device profile.

use std::path::Path;

use protocol::inspection::CheckResult;

use super::check::{Check, bi};

/// Below this the outbox and logs are at risk (fail); below the other, soon (warn).
pub const DISK_FAIL_BYTES: u64 = 500 * 1024 * 1024;
pub const DISK_WARN_BYTES: u64 = 2 * 1024 * 1024 * 1024;

/// Free bytes on the file system holding `dir` (its nearest existing ancestor), from `df`:
/// the workspace forbids unsafe code, and `df` is on every Debian system.
pub fn free_bytes(dir: &Path) -> Result<u64, String> {
    let mut existing = dir;
    while !existing.exists() {
        existing = existing.parent().ok_or("no existing directory")?;
    }
    let out = std::process::Command::new("df")
        .arg("-Pk")
        .arg(existing)
        .output()
        .map_err(|e| format!("df: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "df: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    parse_df(&String::from_utf8_lossy(&out.stdout)).ok_or_else(|| "df: unexpected output".into())
}

/// The "Available" column (1 KiB blocks) of `df -Pk`'s second line, in bytes.
pub fn parse_df(text: &str) -> Option<u64> {
    let line = text.lines().nth(1)?;
    let available: u64 = line.split_whitespace().nth(3)?.parse().ok()?;
    available.checked_mul(1024)
}

/// `system.disk`.
pub fn check_disk(dir: &Path) -> CheckResult {
    let check = Check::new("system.disk", None);
    match free_bytes(dir) {
        Err(e) => check.warn(
            bi(
                format!("无法读取磁盘空间：{e}"),
                format!("free space unknown: {e}"),
            ),
            bi(
                "检查数据目录 store.data_dir 是否存在",
                "check that store.data_dir exists",
            ),
        ),
        Ok(free) => {
            let gb = free as f64 / (1024.0 * 1024.0 * 1024.0);
            let check = check.measure("free", gb, "GiB");
            let remedy = bi(
                "清理数据目录与系统日志（journalctl --vacuum-size=200M），或更换更大的存储",
                "clean the data directory and the system journal (journalctl --vacuum-size=200M), or fit larger storage",
            );
            if free < DISK_FAIL_BYTES {
                check.fail(
                    bi(
                        format!("磁盘剩余空间仅 {gb:.2} GiB"),
                        format!("only {gb:.2} GiB free"),
                    ),
                    remedy,
                )
            } else if free < DISK_WARN_BYTES {
                check.warn(
                    bi(
                        format!("磁盘剩余空间偏少：{gb:.1} GiB"),
                        format!("low free space: {gb:.1} GiB"),
                    ),
                    remedy,
                )
            } else {
                check.pass(bi(
                    format!("磁盘剩余空间 {gb:.1} GiB"),
                    format!("{gb:.1} GiB free"),
                ))
            }
        }
    }
}

/// `system.media`: the GStreamer elements the live video and the self-test need.
pub fn check_media_elements() -> CheckResult {
    let check = Check::new("system.media", None);
    let remedy = bi(
        "安装 deploy/packages-run.txt 中的软件包（GStreamer 插件）后重启终端程序",
        "install the packages in deploy/packages-run.txt (GStreamer plugins) and restart the agent",
    );
    match crate::media::missing_elements() {
        Err(e) => check.fail(
            bi(
                format!("GStreamer 无法初始化：{e}"),
                format!("GStreamer does not start: {e}"),
            ),
            remedy,
        ),
        Ok(missing) if missing.is_empty() => check.pass(bi(
            format!("音视频组件齐全（{}）", gstreamer::version_string()),
            format!(
                "all media elements present ({})",
                gstreamer::version_string()
            ),
        )),
        Ok(missing) => check.fail(
            bi(
                format!("缺少音视频组件：{}", missing.join(", ")),
                format!("missing GStreamer elements: {}", missing.join(", ")),
            ),
            remedy,
        ),
    }
}

/// `system.versions`.
pub fn check_versions(profile: &str, fingerprint: &str) -> CheckResult {
    Check::new("system.versions", None).pass(bi(
        format!(
            "终端程序 {}，设备配置 {profile}（{fingerprint}）",
            env!("CARGO_PKG_VERSION")
        ),
        format!(
            "agent {}, kiosk profile {profile} ({fingerprint})",
            env!("CARGO_PKG_VERSION")
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn df_output() {
        let text = "Filesystem     1024-blocks      Used Available Capacity Mounted on\n/dev/sda1        98000000  50000000  43000000      54% /\n";
        assert_eq!(parse_df(text), Some(43_000_000 * 1024));
        assert_eq!(parse_df("garbage"), None);
    }

    #[test]
    fn the_disk_of_a_temporary_directory_is_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let r = check_disk(&dir.path().join("not-yet/created"));
        assert!(r.measurements.iter().any(|m| m.name == "free"), "{r:?}");
    }
}
