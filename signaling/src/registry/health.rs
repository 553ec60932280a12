//! Kiosk health: the device statuses kiosks push (`Common.StatusChangedEvent`), connection
//! state and last heartbeat, put together for the operations console and the alert engine.
//!
//! Sources:
//! - connected or not: the relay's live kiosk connections (passed in as a set of device ids);
//! - last heartbeat: `devices.last_seen_ms`, which the kiosk connection touches at login, about
//!   once a minute on heartbeats, and at disconnection;
//! - device statuses: [`observe`], called by the kiosk connection for every device message.

use std::collections::{BTreeMap, HashSet};

use protocol::device::{DeviceKind, DeviceStatus, FromDevice, Unsolicited};
use protocol::inspection::CheckOutcome;
use serde::Serialize;
use tracing::warn;

use super::alerts::{Alert, DeviceHealth, KioskHealth, device_kind_zh, is_failing};
use super::lifecycle::CounterState;
use super::{Registry, Stats};
use crate::store::registry::{HealthData, InspectionRecord};

/// Records a status change a kiosk reported. Other device messages are ignored here (they go
/// on to the serving clerk as before).
pub async fn observe(registry: &Registry, device_id: &str, message: &FromDevice, now_ms: i64) {
    let FromDevice::Unsolicited(Unsolicited::StatusChanged(change)) = message else {
        return;
    };
    match registry
        .store
        .record_device_status(device_id, change.device, change.status, now_ms)
        .await
    {
        Ok(()) => Stats::inc(&registry.stats.status_changes),
        Err(e) => {
            Stats::inc(&registry.stats.status_errors);
            warn!(device = device_id, error = %e, "could not store a device status");
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct DeviceView {
    pub kind: DeviceKind,
    pub kind_zh: &'static str,
    pub status: DeviceStatus,
    pub since_ms: i64,
    pub failing: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct KioskView {
    pub device_id: String,
    pub online: bool,
    pub last_seen_ms: Option<i64>,
    pub devices: Vec<DeviceView>,
    /// The kinds of its devices that are failing.
    pub failing: Vec<DeviceKind>,
}

#[derive(Debug, Clone, Serialize)]
pub struct InspectionSummary {
    pub id: i64,
    pub received_ms: i64,
    pub technician: String,
    pub automatic: bool,
    pub overall: CheckOutcome,
    /// Ids of the checks that failed or warned.
    pub problems: Vec<String>,
}

impl From<&InspectionRecord> for InspectionSummary {
    fn from(r: &InspectionRecord) -> Self {
        Self {
            id: r.id,
            received_ms: r.received_ms,
            technician: r.technician.clone(),
            automatic: r.automatic,
            overall: r.overall,
            problems: r
                .report
                .checks
                .iter()
                .filter(|c| c.outcome >= CheckOutcome::Warn)
                .map(|c| c.id.clone())
                .collect(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct PointView {
    pub id: String,
    pub name: String,
    pub centre_id: String,
    pub centre_name: String,
    pub district: String,
    /// `active` or `closed` (as the queue sees it).
    pub status: String,
    pub registry_state: Option<CounterState>,
    pub service_hours: String,
    /// Within its structured hours now; `None` without structured hours.
    pub open_now: Option<bool>,
    /// At least one of its kiosks is connected.
    pub online: bool,
    pub kiosks: Vec<KioskView>,
    pub last_inspection: Option<InspectionSummary>,
    pub alerts: Vec<Alert>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HealthSummary {
    pub points: usize,
    pub online: usize,
    pub offline: usize,
    /// Points with a failing device.
    pub failing: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct HealthView {
    pub now_ms: i64,
    pub summary: HealthSummary,
    pub points: Vec<PointView>,
}

fn devices_of<'a>(
    data: &'a HealthData,
    device_id: &'a str,
) -> impl Iterator<Item = DeviceHealth> + 'a {
    data.statuses
        .iter()
        .filter(move |s| s.device_id == device_id)
        .map(|s| DeviceHealth {
            kind: s.kind,
            status: s.status,
            since_ms: s.since_ms,
        })
}

/// The health of every active point in `data`, worst first (offline, then failing).
pub fn view(
    data: &HealthData,
    online: &HashSet<String>,
    open_alerts: &[Alert],
    now_ms: i64,
) -> HealthView {
    let mut points: Vec<PointView> = data
        .points
        .iter()
        .filter(|p| p.status == "active")
        .map(|p| {
            let kiosks: Vec<KioskView> = data
                .kiosks
                .iter()
                .filter(|k| k.extension_point_id == p.id)
                .map(|k| {
                    let devices: Vec<DeviceView> = devices_of(data, &k.device_id)
                        .map(|d| DeviceView {
                            kind: d.kind,
                            kind_zh: device_kind_zh(d.kind),
                            status: d.status,
                            since_ms: d.since_ms,
                            failing: is_failing(d.status),
                        })
                        .collect();
                    KioskView {
                        device_id: k.device_id.clone(),
                        online: online.contains(&k.device_id),
                        last_seen_ms: k.last_seen_ms,
                        failing: devices
                            .iter()
                            .filter(|d| d.failing)
                            .map(|d| d.kind)
                            .collect(),
                        devices,
                    }
                })
                .collect();
            PointView {
                id: p.id.clone(),
                name: p.name.clone(),
                centre_id: p.centre_id.clone(),
                centre_name: p.centre_name.clone(),
                district: p.district.clone(),
                status: p.status.clone(),
                registry_state: p.registry_state,
                service_hours: p.service_hours.clone(),
                open_now: p.hours.as_ref().map(|h| h.is_open_at(now_ms)),
                online: kiosks.iter().any(|k| k.online),
                last_inspection: data
                    .last_inspections
                    .iter()
                    .find(|i| i.extension_point_id == p.id)
                    .map(InspectionSummary::from),
                alerts: open_alerts
                    .iter()
                    .filter(|a| a.extension_point_id == p.id)
                    .cloned()
                    .collect(),
                kiosks,
            }
        })
        .collect();
    let rank = |p: &PointView| {
        (
            !p.kiosks.is_empty() && p.online,
            p.kiosks.iter().all(|k| k.failing.is_empty()),
        )
    };
    points.sort_by(|a, b| rank(a).cmp(&rank(b)).then_with(|| a.name.cmp(&b.name)));
    let summary = HealthSummary {
        points: points.len(),
        online: points.iter().filter(|p| p.online).count(),
        offline: points.iter().filter(|p| !p.online).count(),
        failing: points
            .iter()
            .filter(|p| p.kiosks.iter().any(|k| !k.failing.is_empty()))
            .count(),
    };
    HealthView {
        now_ms,
        summary,
        points,
    }
}

/// The alert engine's input: every enabled kiosk of an active point.
pub fn kiosk_health(data: &HealthData, online: &HashSet<String>) -> Vec<KioskHealth> {
    let points: BTreeMap<&str, _> = data
        .points
        .iter()
        .filter(|p| p.status == "active")
        .map(|p| (p.id.as_str(), p))
        .collect();
    data.kiosks
        .iter()
        .filter_map(|k| {
            let p = points.get(k.extension_point_id.as_str())?;
            Some(KioskHealth {
                device_id: k.device_id.clone(),
                centre_id: k.centre_id.clone(),
                point_id: p.id.clone(),
                point_name: p.name.clone(),
                hours: p.hours.clone(),
                online: online.contains(&k.device_id),
                last_seen_ms: k.last_seen_ms,
                enrolled_ms: k.created_ms,
                devices: devices_of(data, &k.device_id).collect(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::registry::{KioskRow, PointRow, StatusRow};

    fn data() -> HealthData {
        let point = |id: &str, name: &str, status: &str| PointRow {
            id: id.into(),
            centre_id: "c1".into(),
            centre_name: "中心".into(),
            district: "徐汇区".into(),
            name: name.into(),
            status: status.into(),
            service_hours: "每天".into(),
            hours: Some(protocol::hours::ServiceHours::always()),
            registry_state: None,
        };
        let kiosk = |id: &str, point: &str| KioskRow {
            device_id: id.into(),
            extension_point_id: point.into(),
            centre_id: "c1".into(),
            last_seen_ms: Some(5),
            created_ms: 1,
        };
        HealthData {
            points: vec![
                point("p1", "甲", "active"),
                point("p2", "乙", "active"),
                point("p3", "丙", "closed"),
            ],
            kiosks: vec![kiosk("k1", "p1"), kiosk("k2", "p2"), kiosk("k3", "p3")],
            statuses: vec![StatusRow {
                device_id: "k1".into(),
                kind: DeviceKind::DocumentCamera,
                status: DeviceStatus::HardwareError,
                since_ms: 3,
                updated_ms: 4,
            }],
            last_inspections: vec![],
        }
    }

    #[test]
    fn the_view_puts_offline_and_failing_points_first() {
        let online: HashSet<String> = ["k1".to_owned()].into();
        let v = view(&data(), &online, &[], 10);
        let names: Vec<&str> = v.points.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            ["乙", "甲"],
            "closed points are not shown; offline first"
        );
        assert!(!v.points[0].online);
        let p1 = &v.points[1];
        assert!(p1.online);
        assert_eq!(p1.kiosks[0].failing, vec![DeviceKind::DocumentCamera]);
        assert_eq!(p1.kiosks[0].devices[0].kind_zh, "高拍仪");
        assert_eq!(p1.open_now, Some(true));
        assert_eq!(v.summary.points, 2);
        assert_eq!(v.summary.online, 1);
        assert_eq!(v.summary.failing, 1);
    }

    #[test]
    fn the_alert_engine_sees_only_kiosks_of_active_points() {
        let online: HashSet<String> = ["k2".to_owned()].into();
        let k = kiosk_health(&data(), &online);
        let ids: Vec<&str> = k.iter().map(|k| k.device_id.as_str()).collect();
        assert_eq!(ids, ["k1", "k2"]);
        assert!(!k[0].online && k[1].online);
        assert_eq!(k[0].devices.len(), 1);
    }
}
