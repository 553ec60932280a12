//! Health alerts, sans-IO: when to raise and clear them ([`AlertEngine`]) and how to deliver
//! them to the webhook with bounded retries ([`Outbox`]). Time is always passed in.
//!
//! Two conditions raise an alert:
//! - **kiosk offline** (`kiosk_offline`): a kiosk is not connected, its point is within its
//!   structured service hours (`ServiceHours::is_open_at`), and it has been offline for at
//!   least `offline_after_ms` *of those hours*: the clock starts at the later of its last
//!   heartbeat and the start of the current opening period, so a kiosk switched off overnight
//!   alerts `offline_after_ms` after opening, not at opening. An opening period that runs on
//!   from the day before (24:00 → 0:00) counts as one. A kiosk that never connected counts from
//!   its enrolment, and nothing counts from before the relay started watching
//!   (`watch_since_ms`): while the relay was down it could not see kiosks either. Points without
//!   structured hours never raise it (nobody knows when they should be up). It clears when the
//!   kiosk reconnects, not when the point closes for the day.
//! - **device failed** (`device_failed`): a connected kiosk reports a device as `offline`,
//!   `power_off`, `no_device` or `hardware_error` (XFS4IoT `common.device`). It clears when the
//!   device reports any other status.
//!
//! Deduplication: an alert is raised once per episode (keyed by kiosk, condition and device)
//! and cleared once; the engine starts from the alerts still open in the store, so a restart
//! does not raise them again. An alert whose kiosk left the registry (point closed) clears.

use std::collections::{BTreeMap, VecDeque};

use protocol::device::{DeviceKind, DeviceStatus};
use protocol::hours::{ClockTime, Date, ServiceHours, day_start, shanghai};
use serde::{Deserialize, Serialize};

/// Device statuses that count as a failure.
pub const FAILING: [DeviceStatus; 4] = [
    DeviceStatus::Offline,
    DeviceStatus::PowerOff,
    DeviceStatus::NoDevice,
    DeviceStatus::HardwareError,
];

pub fn is_failing(status: DeviceStatus) -> bool {
    FAILING.contains(&status)
}

/// The last status one device of a kiosk reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceHealth {
    pub kind: DeviceKind,
    pub status: DeviceStatus,
    /// When it entered this status.
    pub since_ms: i64,
}

/// What the engine knows about one registered kiosk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KioskHealth {
    pub device_id: String,
    pub centre_id: String,
    pub point_id: String,
    pub point_name: String,
    pub hours: Option<ServiceHours>,
    pub online: bool,
    /// The last heartbeat or disconnection; `None` if it never connected.
    pub last_seen_ms: Option<i64>,
    /// When its credential was issued (its row created).
    pub enrolled_ms: i64,
    pub devices: Vec<DeviceHealth>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    KioskOffline,
    DeviceFailed,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::KioskOffline => "kiosk_offline",
            AlertKind::DeviceFailed => "device_failed",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    Firing,
    Resolved,
}

/// An alert as stored, shown in the console and posted to the webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// `kiosk_offline:<device>` or `device_failed:<device>:<kind>`.
    pub key: String,
    pub kind: AlertKind,
    pub state: AlertState,
    pub centre_id: String,
    pub extension_point_id: String,
    pub extension_point_name: String,
    pub device_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<DeviceStatus>,
    /// When the condition began (last heartbeat, or the failing status' start).
    pub since_ms: i64,
    /// When it was raised or cleared.
    pub at_ms: i64,
    pub message_zh: String,
    pub message_en: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertPolicy {
    pub offline_after_ms: i64,
    /// When the relay started watching (its start-up).
    pub watch_since_ms: i64,
}

/// Raises and clears alerts (see the module note).
#[derive(Debug)]
pub struct AlertEngine {
    policy: AlertPolicy,
    open: BTreeMap<String, Alert>,
}

fn device_status_zh(s: DeviceStatus) -> &'static str {
    match s {
        DeviceStatus::Online => "正常",
        DeviceStatus::Offline => "离线",
        DeviceStatus::PowerOff => "断电",
        DeviceStatus::NoDevice => "未连接",
        DeviceStatus::HardwareError => "硬件故障",
        DeviceStatus::UserError => "操作错误",
        DeviceStatus::DeviceBusy => "忙",
        DeviceStatus::Starting => "启动中",
    }
}

pub fn device_kind_zh(k: DeviceKind) -> &'static str {
    match k {
        DeviceKind::Camera => "摄像头",
        DeviceKind::DocumentCamera => "高拍仪",
        DeviceKind::Microphone => "麦克风",
        DeviceKind::Speaker => "扬声器",
        DeviceKind::IdCardReader => "身份证阅读器",
        DeviceKind::QrScanner => "扫码器",
        DeviceKind::Screen => "屏幕",
    }
}

/// A device status by its wire name (`hardware_error`).
pub fn status_wire(s: DeviceStatus) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The start of the opening stretch `now_ms` falls in, if the point is open then. A period
/// opening at 0:00 continues one that closed at 24:00 the day before (up to a week back).
pub fn period_start(hours: &ServiceHours, now_ms: i64) -> Option<i64> {
    let (date, minute) = shanghai(now_ms);
    let period = hours
        .periods_on(date)
        .into_iter()
        .find(|p| p.open.minutes() <= minute && minute < p.close.minutes())?;
    let mut open = period.open;
    let mut day = date.days_since_epoch();
    for _ in 0..7 {
        if open != ClockTime::MIDNIGHT {
            break;
        }
        let Some(before) = hours
            .periods_on(Date::from_days_since_epoch(day - 1))
            .into_iter()
            .find(|p| p.close == ClockTime::END_OF_DAY)
        else {
            break;
        };
        open = before.open;
        day -= 1;
    }
    Some(day_start(Date::from_days_since_epoch(day)) + i64::from(open.minutes()) * 60_000)
}

impl AlertEngine {
    /// An engine that knows the alerts still open in the store.
    pub fn new(policy: AlertPolicy, open: Vec<Alert>) -> Self {
        Self {
            policy,
            open: open.into_iter().map(|a| (a.key.clone(), a)).collect(),
        }
    }

    pub fn open_alerts(&self) -> impl Iterator<Item = &Alert> {
        self.open.values()
    }

    /// Raises and clears alerts for the kiosks' state at `now_ms`. Returns what changed:
    /// newly firing and newly resolved alerts, in key order.
    pub fn evaluate(&mut self, now_ms: i64, kiosks: &[KioskHealth]) -> Vec<Alert> {
        let mut holding: BTreeMap<String, Alert> = BTreeMap::new();
        for k in kiosks {
            let base = |key: String, kind, since_ms, zh: String, en: String| Alert {
                key,
                kind,
                state: AlertState::Firing,
                centre_id: k.centre_id.clone(),
                extension_point_id: k.point_id.clone(),
                extension_point_name: k.point_name.clone(),
                device_id: k.device_id.clone(),
                device: None,
                status: None,
                since_ms,
                at_ms: now_ms,
                message_zh: zh,
                message_en: en,
            };
            let key = format!("kiosk_offline:{}", k.device_id);
            if !k.online {
                let already = self.open.contains_key(&key);
                let since = k.last_seen_ms.unwrap_or(k.enrolled_ms);
                let counted_from = since.max(self.policy.watch_since_ms);
                let due = k
                    .hours
                    .as_ref()
                    .and_then(|h| period_start(h, now_ms))
                    .is_some_and(|start| {
                        now_ms - counted_from.max(start) >= self.policy.offline_after_ms
                    });
                if already || due {
                    let minutes = (now_ms - since) / 60_000;
                    holding.insert(
                        key.clone(),
                        base(
                            key,
                            AlertKind::KioskOffline,
                            since,
                            format!(
                                "{}的自助终端（{}）在服务时间内离线{}",
                                k.point_name,
                                k.device_id,
                                if k.last_seen_ms.is_some() {
                                    format!("已{minutes}分钟")
                                } else {
                                    "，从未连接".to_owned()
                                }
                            ),
                            format!(
                                "kiosk {} at {} is offline during service hours",
                                k.device_id, k.point_id
                            ),
                        ),
                    );
                }
            }
            for d in &k.devices {
                let key = format!("device_failed:{}:{}", k.device_id, d.kind.as_str());
                let already = self.open.contains_key(&key);
                if is_failing(d.status) && (k.online || already) {
                    let mut alert = base(
                        key.clone(),
                        AlertKind::DeviceFailed,
                        d.since_ms,
                        format!(
                            "{}的{}{}（{}）",
                            k.point_name,
                            device_kind_zh(d.kind),
                            device_status_zh(d.status),
                            status_wire(d.status)
                        ),
                        format!(
                            "{} of kiosk {} at {}: {}",
                            d.kind.as_str(),
                            k.device_id,
                            k.point_id,
                            status_wire(d.status)
                        ),
                    );
                    alert.device = Some(d.kind);
                    alert.status = Some(d.status);
                    holding.insert(key, alert);
                }
            }
        }
        let mut changed = Vec::new();
        let cleared: Vec<String> = self
            .open
            .keys()
            .filter(|k| !holding.contains_key(*k))
            .cloned()
            .collect();
        for key in cleared {
            if let Some(mut a) = self.open.remove(&key) {
                a.state = AlertState::Resolved;
                a.at_ms = now_ms;
                a.message_zh = format!("已恢复：{}", a.message_zh);
                a.message_en = format!("resolved: {}", a.message_en);
                changed.push(a);
            }
        }
        for (key, alert) in holding {
            if let std::collections::btree_map::Entry::Vacant(slot) = self.open.entry(key) {
                changed.push(alert.clone());
                slot.insert(alert);
            }
        }
        changed.sort_by(|a, b| a.key.cmp(&b.key));
        changed
    }
}

/// Delivery settings of the webhook outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryPolicy {
    /// Most alerts waiting; when full the oldest is dropped (and counted).
    pub capacity: usize,
    /// Attempts per alert before it is given up (and counted).
    pub max_attempts: u32,
    pub retry_initial_ms: i64,
    pub retry_max_ms: i64,
}

#[derive(Debug)]
struct Pending {
    id: u64,
    alert: Alert,
    attempts: u32,
    due_ms: i64,
}

/// Counts of what happened to alerts in the outbox.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryCounts {
    pub delivered: u64,
    pub retried: u64,
    pub gave_up: u64,
    pub dropped: u64,
}

/// Alerts waiting for the webhook, in order, each retried with exponential backoff up to
/// `max_attempts` times. Bounded.
#[derive(Debug)]
pub struct Outbox {
    policy: DeliveryPolicy,
    queue: VecDeque<Pending>,
    next_id: u64,
    pub counts: DeliveryCounts,
}

impl Outbox {
    pub fn new(policy: DeliveryPolicy) -> Self {
        Self {
            policy,
            queue: VecDeque::new(),
            next_id: 1,
            counts: DeliveryCounts::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub fn push(&mut self, alert: Alert, now_ms: i64) {
        if self.queue.len() >= self.policy.capacity.max(1) {
            self.queue.pop_front();
            self.counts.dropped += 1;
        }
        self.queue.push_back(Pending {
            id: self.next_id,
            alert,
            attempts: 0,
            due_ms: now_ms,
        });
        self.next_id += 1;
    }

    /// The next alert to send at `now_ms`: the oldest one, if its retry time has come. Alerts
    /// go out in order, so a cleared alert never overtakes its raising.
    pub fn due(&self, now_ms: i64) -> Option<(u64, &Alert)> {
        self.queue
            .front()
            .filter(|p| p.due_ms <= now_ms)
            .map(|p| (p.id, &p.alert))
    }

    /// When the next attempt is due.
    pub fn next_due_ms(&self) -> Option<i64> {
        self.queue.front().map(|p| p.due_ms)
    }

    pub fn delivered(&mut self, id: u64) {
        if self.queue.front().is_some_and(|p| p.id == id) {
            self.queue.pop_front();
            self.counts.delivered += 1;
        }
    }

    /// Records a failed attempt; returns whether it will be retried.
    pub fn failed(&mut self, id: u64, now_ms: i64) -> bool {
        let policy = self.policy;
        let Some(p) = self.queue.front_mut().filter(|p| p.id == id) else {
            return false;
        };
        p.attempts += 1;
        if p.attempts >= policy.max_attempts {
            self.queue.pop_front();
            self.counts.gave_up += 1;
            return false;
        }
        let shift = (p.attempts - 1).min(30);
        let wait = policy
            .retry_initial_ms
            .saturating_mul(1_i64 << shift)
            .min(policy.retry_max_ms);
        p.due_ms = now_ms + wait;
        self.counts.retried += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use protocol::hours::{ClockTime, Date};

    use super::*;

    const MIN: i64 = 60_000;

    /// Unix ms of a Shanghai local time on 2026-03-02 (a Monday).
    fn at(h: u8, m: u8) -> i64 {
        let day = Date::new(2026, 3, 2).expect("date").days_since_epoch();
        day * 86_400_000 + (i64::from(h) * 60 + i64::from(m)) * MIN - 8 * 3_600_000
    }

    fn kiosk(online: bool, last_seen_ms: Option<i64>) -> KioskHealth {
        KioskHealth {
            device_id: "k1".into(),
            centre_id: "c1".into(),
            point_id: "p1".into(),
            point_name: "天平路街道永嘉路居委会 延伸服务点".into(),
            hours: Some(ServiceHours::weekdays(
                ClockTime::new(9, 0).expect("t"),
                ClockTime::new(17, 0).expect("t"),
            )),
            online,
            last_seen_ms,
            enrolled_ms: at(0, 0) - 30 * 86_400_000,
            devices: vec![],
        }
    }

    fn policy() -> AlertPolicy {
        AlertPolicy {
            offline_after_ms: 10 * MIN,
            watch_since_ms: at(0, 0) - 86_400_000,
        }
    }

    fn engine() -> AlertEngine {
        AlertEngine::new(policy(), vec![])
    }

    #[test]
    fn offline_alerts_count_only_service_hours_and_fire_once() {
        let mut e = engine();
        // Switched off at 18:00 the evening before; nothing overnight or before opening.
        let k = kiosk(false, Some(at(8, 0) - 14 * 60 * MIN));
        assert!(e.evaluate(at(3, 0), std::slice::from_ref(&k)).is_empty());
        assert!(
            e.evaluate(at(9, 0), std::slice::from_ref(&k)).is_empty(),
            "just opened"
        );
        assert!(e.evaluate(at(9, 9), std::slice::from_ref(&k)).is_empty());
        let fired = e.evaluate(at(9, 10), std::slice::from_ref(&k));
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].kind, AlertKind::KioskOffline);
        assert_eq!(fired[0].state, AlertState::Firing);
        assert_eq!(fired[0].key, "kiosk_offline:k1");
        assert!(
            fired[0].message_zh.contains("离线"),
            "{}",
            fired[0].message_zh
        );
        assert!(
            e.evaluate(at(9, 30), std::slice::from_ref(&k)).is_empty(),
            "deduplicated"
        );
        assert!(
            e.evaluate(at(18, 0), std::slice::from_ref(&k)).is_empty(),
            "closing time does not clear it"
        );
        let back = kiosk(true, Some(at(18, 5)));
        let resolved = e.evaluate(at(18, 5), &[back]);
        assert_eq!(resolved.len(), 1);
        assert_eq!(resolved[0].state, AlertState::Resolved);
        assert_eq!(e.open_alerts().count(), 0);
    }

    #[test]
    fn a_kiosk_dropping_off_mid_morning_alerts_after_the_threshold() {
        let mut e = engine();
        let k = kiosk(false, Some(at(10, 0)));
        assert!(e.evaluate(at(10, 9), std::slice::from_ref(&k)).is_empty());
        assert_eq!(e.evaluate(at(10, 10), std::slice::from_ref(&k)).len(), 1);
    }

    #[test]
    fn no_offline_alert_outside_hours_or_without_structured_hours() {
        let mut e = engine();
        let saturday = at(10, 0) + 5 * 86_400_000;
        assert!(
            e.evaluate(saturday, &[kiosk(false, Some(at(10, 0)))])
                .is_empty()
        );
        let mut k = kiosk(false, Some(at(8, 0)));
        k.hours = None;
        assert!(e.evaluate(at(12, 0), &[k]).is_empty());
    }

    #[test]
    fn a_kiosk_that_never_connected_alerts_after_opening_plus_the_threshold() {
        let mut e = engine();
        let k = kiosk(false, None);
        assert!(e.evaluate(at(9, 5), std::slice::from_ref(&k)).is_empty());
        let fired = e.evaluate(at(9, 10), std::slice::from_ref(&k));
        assert!(fired[0].message_zh.contains("从未连接"));
    }

    #[test]
    fn a_kiosk_enrolled_or_a_relay_started_a_moment_ago_gets_time_to_connect() {
        let mut e = engine();
        let mut k = kiosk(false, None);
        k.enrolled_ms = at(11, 0);
        assert!(e.evaluate(at(11, 9), std::slice::from_ref(&k)).is_empty());
        assert_eq!(e.evaluate(at(11, 10), std::slice::from_ref(&k)).len(), 1);

        // Seen last at 10:00, but this relay only started at 11:00.
        let mut e = AlertEngine::new(
            AlertPolicy {
                watch_since_ms: at(11, 0),
                ..policy()
            },
            vec![],
        );
        let k = kiosk(false, Some(at(10, 0)));
        assert!(e.evaluate(at(11, 9), std::slice::from_ref(&k)).is_empty());
        assert_eq!(e.evaluate(at(11, 10), std::slice::from_ref(&k)).len(), 1);
    }

    #[test]
    fn opening_hours_that_run_through_midnight_count_as_one_stretch() {
        let mut e = engine();
        let mut k = kiosk(false, Some(at(0, 0) - 5 * MIN));
        k.hours = Some(ServiceHours::always());
        assert!(e.evaluate(at(0, 4), std::slice::from_ref(&k)).is_empty());
        assert_eq!(
            e.evaluate(at(0, 5), std::slice::from_ref(&k)).len(),
            1,
            "ten minutes offline across midnight"
        );
        assert_eq!(
            period_start(&ServiceHours::always(), at(13, 0)),
            Some(at(0, 0) - 7 * 86_400_000)
        );
    }

    #[test]
    fn device_failures_fire_while_connected_and_clear_when_fixed() {
        let mut e = engine();
        let mut k = kiosk(true, Some(at(10, 0)));
        k.devices = vec![
            DeviceHealth {
                kind: DeviceKind::Camera,
                status: DeviceStatus::Online,
                since_ms: at(9, 0),
            },
            DeviceHealth {
                kind: DeviceKind::IdCardReader,
                status: DeviceStatus::DeviceBusy,
                since_ms: at(9, 0),
            },
        ];
        assert!(
            e.evaluate(at(10, 0), std::slice::from_ref(&k)).is_empty(),
            "busy is not failing"
        );
        k.devices[0].status = DeviceStatus::HardwareError;
        k.devices[0].since_ms = at(10, 1);
        let fired = e.evaluate(at(10, 1), std::slice::from_ref(&k));
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].key, "device_failed:k1:camera");
        assert_eq!(fired[0].device, Some(DeviceKind::Camera));
        assert_eq!(fired[0].status, Some(DeviceStatus::HardwareError));
        assert!(
            fired[0].message_zh.contains("摄像头硬件故障"),
            "{}",
            fired[0].message_zh
        );
        assert!(e.evaluate(at(10, 2), std::slice::from_ref(&k)).is_empty());
        // A different failure of the same device is the same episode.
        k.devices[0].status = DeviceStatus::NoDevice;
        assert!(e.evaluate(at(10, 3), std::slice::from_ref(&k)).is_empty());
        k.devices[0].status = DeviceStatus::Online;
        let resolved = e.evaluate(at(10, 4), std::slice::from_ref(&k));
        assert_eq!(resolved[0].state, AlertState::Resolved);
    }

    #[test]
    fn stale_statuses_of_an_offline_kiosk_raise_nothing_new() {
        let mut e = engine();
        let mut k = kiosk(false, Some(at(10, 0)));
        k.hours = None;
        k.devices = vec![DeviceHealth {
            kind: DeviceKind::QrScanner,
            status: DeviceStatus::NoDevice,
            since_ms: at(9, 0),
        }];
        assert!(e.evaluate(at(10, 30), &[k]).is_empty());
    }

    #[test]
    fn alerts_open_before_a_restart_are_not_raised_again_and_clear_when_the_point_goes() {
        let mut first = engine();
        let k = kiosk(false, Some(at(10, 0)));
        let fired = first.evaluate(at(10, 20), std::slice::from_ref(&k));
        let mut e = AlertEngine::new(policy(), fired);
        assert!(e.evaluate(at(10, 30), std::slice::from_ref(&k)).is_empty());
        let gone = e.evaluate(at(10, 40), &[]);
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].state, AlertState::Resolved);
    }

    #[test]
    fn the_current_period_start_is_found_in_shanghai_time() {
        let h = ServiceHours::weekdays(
            ClockTime::new(9, 0).expect("t"),
            ClockTime::new(17, 0).expect("t"),
        );
        assert_eq!(period_start(&h, at(13, 27)), Some(at(9, 0)));
        assert_eq!(period_start(&h, at(8, 59)), None);
        assert_eq!(period_start(&h, at(17, 0)), None);
    }

    fn alert(n: u32) -> Alert {
        let mut e = engine();
        let mut k = kiosk(false, Some(at(10, 0)));
        k.device_id = format!("k{n}");
        e.evaluate(at(11, 0), &[k]).remove(0)
    }

    fn outbox(capacity: usize) -> Outbox {
        Outbox::new(DeliveryPolicy {
            capacity,
            max_attempts: 3,
            retry_initial_ms: 1_000,
            retry_max_ms: 1_500,
        })
    }

    #[test]
    fn delivery_retries_with_backoff_then_gives_up() {
        let mut o = outbox(8);
        o.push(alert(1), 0);
        o.push(alert(2), 0);
        let (id, a) = o.due(0).expect("due at once");
        assert_eq!(a.device_id, "k1");
        assert!(o.failed(id, 0));
        assert!(o.due(999).is_none(), "first retry after 1 s");
        assert_eq!(o.next_due_ms(), Some(1_000));
        let (id2, _) = o.due(1_000).expect("retry");
        assert_eq!(id2, id);
        assert!(o.failed(id, 1_000));
        assert_eq!(o.next_due_ms(), Some(2_500), "backoff capped at 1.5 s");
        assert!(!o.failed(id, 2_500), "third failure gives up");
        assert_eq!(o.counts.gave_up, 1);
        let (id3, a) = o.due(2_500).expect("next alert");
        assert_eq!(a.device_id, "k2");
        o.delivered(id3);
        assert!(o.is_empty());
        assert_eq!(
            o.counts,
            DeliveryCounts {
                delivered: 1,
                retried: 2,
                gave_up: 1,
                dropped: 0
            }
        );
    }

    #[test]
    fn a_full_outbox_drops_the_oldest() {
        let mut o = outbox(2);
        for n in 1..=3 {
            o.push(alert(n), 0);
        }
        assert_eq!(o.len(), 2);
        assert_eq!(o.counts.dropped, 1);
        assert_eq!(
            o.due(0).map(|(_, a)| a.device_id.clone()),
            Some("k2".into())
        );
        // Answers about an alert that is not at the front change nothing.
        o.delivered(999);
        assert!(!o.failed(999, 0));
        assert_eq!(o.len(), 2);
    }
}
