//! Remote appointments (远程预约): a resident books a slot of a category at an extension point
//! — on the public booking page or at the kiosk — and checks in there at the kiosk; the
//! ticket then carries the slot, and "call next" serves it first within the slot (the queue
//! core already does that for any ticket with an `appointment`).
//!
//! # The service API ([`Appointments`], in `AppState.appointments`)
//!
//! Everything takes the time from the relay's clock; errors are [`AppointmentError`] (with a
//! Chinese message for residents, [`AppointmentError::message_zh`]) or, for check-in,
//! [`CheckInRefusal`].
//!
//! | call | what it does |
//! |---|---|
//! | [`Appointments::points`] | extension points whose centre takes appointments |
//! | [`Appointments::categories`]`(point)` | that centre's bookable categories |
//! | [`Appointments::slots`]`(point, category)` | slots from now to the end of `booking_days` (today + 6), each with capacity and places left |
//! | [`Appointments::next_opening`]`(centre, category, now)` | the next start of the remote windows' hours after `now` (Unix ms), for "no window open now" |
//! | [`Appointments::is_open`]`(centre, now)` | whether the remote windows' hours say open |
//! | [`Appointments::request_code`]`(mobile)` | sends a 6-digit verification code ([`SmsSender`]; valid 5 min, 5 tries, one send a minute, 5 an hour) |
//! | [`Appointments::book`]`(BookRequest)` | checks the code, seals name and number, books within capacity → [`BookingView`] with the booking code and QR payload `RVWB1:<code>` |
//! | [`Appointments::lookup`] / [`Appointments::cancel`] / [`Appointments::reschedule`] | by booking code + mobile number |
//! | [`Appointments::check_in`]`(point, key)` | key = QR payload or last 4 digits of the number + booking code → [`CheckIn`] with [`Arrival::OnTime`]`(slot)` (within the slot, or up to `early_check_in_minutes` before it) or [`Arrival::Late`] (after the slot, the same day: an ordinary ticket); refusals for wrong point, cancelled, already checked in, not today, too early; at most `check_in_max_failures` failed keys per point per window |
//! | [`Appointments::confirm_check_in`]`(booking, ticket, late)` | records the ticket the check-in became (once) |
//! | [`Appointments::day_list`]`(centre, date)` | the clerks' daily list, masked |
//! | [`Appointments::sweep`]`(now)` | marks no-shows and purges personal data past retention (run by the relay every `privacy.retention_sweep_secs`) |
//!
//! A kiosk check-in is two steps so the ticket is taken in between: `check_in` decides, the
//! caller takes the ticket (with `appointment: Some(slot)` when on time, `None` when late) and
//! then calls `confirm_check_in` with its id. A booking confirmed once cannot be confirmed
//! again.
//!
//! # Personal data
//!
//! Name and mobile number are sealed together per booking (AES-256-GCM under a fresh key
//! wrapped by the privacy master key, the booking id as associated data — the case-materials
//! pattern). The number is found again only through HMAC-SHA256 under a key derived from the
//! master key (`appointments-mobile`), which is also what enforces one live booking per
//! number, category and day. Screens and logs see `张*` and `138****5678` only; the sweep
//! clears all of it `retention_days` after the slot.
//!
//! What it does not do: send real SMS (only the development sender exists), or keep
//! verification codes across a restart or between relay nodes (they live in this process).

pub mod codes;
pub mod config;
pub mod qr;
pub mod schedule;
pub mod sms;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use protocol::hours::{Date, day_start, shanghai};
use protocol::queue::AppointmentSlot;
use serde::Serialize;
use tracing::{info, warn};

use crate::cases::crypto::MasterKey;
use crate::clock::Clock;
use crate::store::appointments::{
    AppointmentStore, BookOutcome, BookingRecord, BookingState, RescheduleOutcome, SealedContact,
};
use crate::store::{Store, StoreError};
use codes::{Admit, CheckInKey, CodeBook, CodeLimits, CodeRefusal, WindowCounter};
pub use config::AppointmentsSection;
use schedule::{CentreSchedule, service_day_of, upcoming_slots};
pub use sms::{DevSms, SmsSender};

/// Why a booking request, lookup or change was refused.
#[derive(Debug, thiserror::Error)]
pub enum AppointmentError {
    #[error("bad mobile number")]
    BadMobile,
    #[error("bad name")]
    BadName,
    #[error("bad booking code")]
    BadCode,
    #[error("unknown extension point")]
    UnknownPoint,
    #[error("category not bookable here")]
    NotBookable,
    #[error("no such slot")]
    NoSuchSlot,
    #[error("slot full")]
    SlotFull,
    #[error("already booked that day")]
    AlreadyBooked,
    #[error("verification code: {0:?}")]
    Verification(CodeRefusal),
    #[error("no such booking")]
    NotFound,
    #[error("booking is {0:?}")]
    NotLive(BookingState),
    #[error("the code could not be sent")]
    SendFailed,
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("sealing the contact failed")]
    Crypto,
}

impl AppointmentError {
    /// A short machine-readable code for API clients.
    pub fn code(&self) -> &'static str {
        match self {
            AppointmentError::BadMobile => "bad_mobile",
            AppointmentError::BadName => "bad_name",
            AppointmentError::BadCode => "bad_code",
            AppointmentError::UnknownPoint => "unknown_point",
            AppointmentError::NotBookable => "not_bookable",
            AppointmentError::NoSuchSlot => "no_such_slot",
            AppointmentError::SlotFull => "slot_full",
            AppointmentError::AlreadyBooked => "already_booked",
            AppointmentError::Verification(_) => "verification",
            AppointmentError::NotFound => "not_found",
            AppointmentError::NotLive(_) => "not_live",
            AppointmentError::SendFailed => "send_failed",
            AppointmentError::Store(_) | AppointmentError::Crypto => "unavailable",
        }
    }

    /// What a resident reads.
    pub fn message_zh(&self) -> String {
        match self {
            AppointmentError::BadMobile => "手机号码格式不正确，请输入11位手机号码".into(),
            AppointmentError::BadName => "请填写姓名（1至20个字）".into(),
            AppointmentError::BadCode => "预约码应为8位字母和数字".into(),
            AppointmentError::UnknownPoint => "没有找到这个服务点".into(),
            AppointmentError::NotBookable => "该事项暂不接受预约".into(),
            AppointmentError::NoSuchSlot => "该时段不可预约，请重新选择时段".into(),
            AppointmentError::SlotFull => "该时段已约满，请选择其他时段".into(),
            AppointmentError::AlreadyBooked => {
                "您当天已预约过该事项（每个手机号每天每类事项限预约一次）".into()
            }
            AppointmentError::Verification(r) => match r {
                CodeRefusal::NoCode => "请先获取验证码".into(),
                CodeRefusal::Expired => "验证码已过期，请重新获取".into(),
                CodeRefusal::Wrong { tries_left } => {
                    format!("验证码不正确，还可以再试{tries_left}次")
                }
                CodeRefusal::TooManyTries => "验证码错误次数过多，请重新获取验证码".into(),
                CodeRefusal::ResendTooSoon { wait_secs } => {
                    format!("验证码已发送，请{wait_secs}秒后再重新获取")
                }
                CodeRefusal::TooManySends { wait_secs } => format!(
                    "该号码获取验证码次数过多，请{}分钟后再试",
                    wait_secs.div_ceil(60)
                ),
                CodeRefusal::Busy => "系统繁忙，请稍后再试".into(),
            },
            AppointmentError::NotFound => "没有找到该预约，请核对预约码和手机号码".into(),
            AppointmentError::NotLive(state) => match state {
                BookingState::Cancelled => "该预约已取消".into(),
                BookingState::CheckedIn => "该预约已签到，不能再修改".into(),
                BookingState::NoShow => "该预约已过时段，不能再修改".into(),
                BookingState::Booked => "该预约当前不能修改".into(),
            },
            AppointmentError::SendFailed => "验证码发送失败，请稍后再试".into(),
            AppointmentError::Store(_) | AppointmentError::Crypto => "系统繁忙，请稍后再试".into(),
        }
    }
}

/// Why a check-in at the kiosk was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckInRefusal {
    /// Neither a QR payload nor 4 digits + a booking code.
    Unreadable,
    NotFound,
    /// Booked for another extension point (its name).
    WrongPoint {
        point_name: String,
    },
    Cancelled,
    AlreadyCheckedIn,
    /// Booked for another day (the slot).
    NotToday {
        slot: AppointmentSlot,
    },
    /// More than `early_check_in_minutes` before the slot: from when check-in opens.
    TooEarly {
        opens_ms: i64,
    },
    /// Too many failed keys at this point; wait this long.
    Locked {
        wait_secs: u64,
    },
    Unavailable,
}

impl CheckInRefusal {
    pub fn code(&self) -> &'static str {
        match self {
            CheckInRefusal::Unreadable => "unreadable",
            CheckInRefusal::NotFound => "not_found",
            CheckInRefusal::WrongPoint { .. } => "wrong_point",
            CheckInRefusal::Cancelled => "cancelled",
            CheckInRefusal::AlreadyCheckedIn => "already_checked_in",
            CheckInRefusal::NotToday { .. } => "not_today",
            CheckInRefusal::TooEarly { .. } => "too_early",
            CheckInRefusal::Locked { .. } => "locked",
            CheckInRefusal::Unavailable => "unavailable",
        }
    }

    /// What the kiosk shows.
    pub fn message_zh(&self) -> String {
        match self {
            CheckInRefusal::Unreadable => {
                "无法识别，请扫描预约二维码，或输入手机号后4位和8位预约码".into()
            }
            CheckInRefusal::NotFound => "没有找到该预约，请核对手机号后4位和预约码".into(),
            CheckInRefusal::WrongPoint { point_name } => {
                format!("该预约的签到地点是「{point_name}」，不在本服务点")
            }
            CheckInRefusal::Cancelled => "该预约已取消，请重新取号或预约".into(),
            CheckInRefusal::AlreadyCheckedIn => "该预约已签到过".into(),
            CheckInRefusal::NotToday { slot } => {
                format!("该预约是{}的，请当天再来签到", fmt_slot_zh(*slot))
            }
            CheckInRefusal::TooEarly { opens_ms } => {
                format!("还没到签到时间，请在{}以后签到", fmt_clock(*opens_ms))
            }
            CheckInRefusal::Locked { wait_secs } => format!(
                "输错次数过多，请{}分钟后再试，或请工作人员协助",
                wait_secs.div_ceil(60)
            ),
            CheckInRefusal::Unavailable => "系统繁忙，请稍后再试".into(),
        }
    }
}

/// "12月8日 09:00-09:30", Shanghai time.
pub fn fmt_slot_zh(slot: AppointmentSlot) -> String {
    let (date, _) = shanghai(slot.start_ms);
    format!(
        "{}月{}日 {}-{}",
        date.month,
        date.day,
        fmt_clock(slot.start_ms),
        fmt_clock(slot.end_ms)
    )
}

/// "09:30", Shanghai time.
pub fn fmt_clock(ms: i64) -> String {
    let (_, minute) = shanghai(ms);
    format!("{:02}:{:02}", minute / 60, minute % 60)
}

/// An extension point as the booking page lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PointView {
    pub id: String,
    pub name: String,
    pub address: String,
    pub phone: String,
    #[serde(skip)]
    pub centre_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CategoryChoice {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SlotView {
    pub start_ms: i64,
    pub end_ms: i64,
    pub capacity: u32,
    pub left: u32,
}

/// A booking as the resident sees it (masked).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BookingView {
    pub code: String,
    /// What the kiosk's scanner reads; carries no personal data.
    pub qr_payload: String,
    pub state: BookingState,
    pub point_id: String,
    pub point_name: String,
    pub category_id: String,
    pub category_name: String,
    pub slot_start_ms: i64,
    pub slot_end_ms: i64,
    /// "12月8日 09:00-09:30"
    pub slot_text: String,
    pub name_masked: String,
    pub mobile_masked: String,
}

/// A booking request (public page or kiosk).
#[derive(Debug, Clone)]
pub struct BookRequest {
    pub point_id: String,
    pub category_id: String,
    pub slot_start_ms: i64,
    pub name: String,
    pub mobile: String,
    pub verification_code: String,
}

/// What [`Appointments::request_code`] tells the resident.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CodeSent {
    pub valid_secs: u64,
    pub resend_after_secs: u64,
}

/// A check-in the kiosk may turn into a ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckIn {
    pub booking_id: String,
    pub code: String,
    pub centre_id: String,
    pub category_id: String,
    pub name_masked: String,
    pub arrival: Arrival,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// Within the slot, or early by at most the grace: take the ticket with this slot.
    OnTime(AppointmentSlot),
    /// After the slot, the same day: an ordinary ticket, served by arrival.
    Late,
}

/// One line of the clerks' daily list (masked).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DayEntry {
    pub code: String,
    pub slot_start_ms: i64,
    pub slot_end_ms: i64,
    pub category_id: String,
    pub category_name: String,
    pub point_id: String,
    pub point_name: String,
    pub name_masked: String,
    pub mobile_masked: String,
    pub state: BookingState,
    pub late: bool,
    pub ticket_id: Option<String>,
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct AppointmentCounters {
    pub booked: AtomicU64,
    pub refused: AtomicU64,
    pub cancelled: AtomicU64,
    pub rescheduled: AtomicU64,
    pub codes_sent: AtomicU64,
    pub codes_refused: AtomicU64,
    pub check_ins: AtomicU64,
    pub check_ins_refused: AtomicU64,
    pub no_shows: AtomicU64,
    pub purged: AtomicU64,
    pub rate_limited: AtomicU64,
}

impl AppointmentCounters {
    pub fn snapshot(&self) -> Vec<(&'static str, &'static str, u64)> {
        let v = |a: &AtomicU64| a.load(Ordering::Relaxed);
        vec![
            (
                "appointments_booked",
                "Appointments booked",
                v(&self.booked),
            ),
            (
                "appointments_refused",
                "Booking requests refused (full, duplicate, bad input, code)",
                v(&self.refused),
            ),
            (
                "appointments_cancelled",
                "Appointments cancelled",
                v(&self.cancelled),
            ),
            (
                "appointments_rescheduled",
                "Appointments moved to another slot",
                v(&self.rescheduled),
            ),
            (
                "appointment_codes_sent",
                "Verification codes sent",
                v(&self.codes_sent),
            ),
            (
                "appointment_codes_refused",
                "Verification code requests refused (resend limits)",
                v(&self.codes_refused),
            ),
            (
                "appointment_check_ins",
                "Appointments checked in at a kiosk",
                v(&self.check_ins),
            ),
            (
                "appointment_check_ins_refused",
                "Check-ins refused at a kiosk",
                v(&self.check_ins_refused),
            ),
            (
                "appointment_no_shows",
                "Appointments marked no-show",
                v(&self.no_shows),
            ),
            (
                "appointment_contacts_purged",
                "Bookings whose personal data the retention sweep removed",
                v(&self.purged),
            ),
            (
                "appointment_requests_rate_limited",
                "Public booking requests refused by a rate limit",
                v(&self.rate_limited),
            ),
        ]
    }
}

/// What the service is built from.
pub struct AppointmentDeps {
    pub config: AppointmentsSection,
    pub store: Arc<dyn AppointmentStore>,
    pub main: Arc<dyn Store>,
    pub key: MasterKey,
    pub sms: Arc<dyn SmsSender>,
    pub clock: Arc<dyn Clock>,
}

/// The appointment service (see the module documentation).
pub struct Appointments {
    config: AppointmentsSection,
    store: Arc<dyn AppointmentStore>,
    main: Arc<dyn Store>,
    key: MasterKey,
    mobile_key: aws_lc_rs::hmac::Key,
    sms: Arc<dyn SmsSender>,
    clock: Arc<dyn Clock>,
    codes: Mutex<CodeBook>,
    check_in_failures: Mutex<WindowCounter>,
    pub counters: AppointmentCounters,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Contact {
    name: String,
    mobile: String,
}

fn new_booking_id() -> String {
    let mut b = [0u8; 12];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut b);
    format!("ap-{}", hex::encode(b))
}

impl Appointments {
    pub fn new(deps: AppointmentDeps) -> Self {
        let c = &deps.config;
        let limits = CodeLimits {
            ttl_ms: i64::try_from(c.code_ttl_secs * 1000).unwrap_or(300_000),
            max_tries: c.code_max_tries,
            resend_ms: i64::try_from(c.code_resend_secs * 1000).unwrap_or(60_000),
            max_sends_per_hour: usize::try_from(c.code_max_sends_per_hour).unwrap_or(5),
            max_entries: 100_000,
        };
        let failures = WindowCounter::new(
            usize::try_from(c.check_in_max_failures).unwrap_or(5),
            i64::try_from(c.check_in_window_secs * 1000).unwrap_or(600_000),
            10_000,
        );
        let mobile_key = aws_lc_rs::hmac::Key::new(
            aws_lc_rs::hmac::HMAC_SHA256,
            &deps.key.derive("appointments-mobile"),
        );
        Self {
            config: deps.config,
            store: deps.store,
            main: deps.main,
            key: deps.key,
            mobile_key,
            sms: deps.sms,
            clock: deps.clock,
            codes: Mutex::new(CodeBook::new(limits)),
            check_in_failures: Mutex::new(failures),
            counters: AppointmentCounters::default(),
        }
    }

    pub fn config(&self) -> &AppointmentsSection {
        &self.config
    }

    /// The keyed hash that stands for a (normalised) mobile number.
    pub fn mobile_hash(&self, mobile: &str) -> String {
        hex::encode(aws_lc_rs::hmac::sign(&self.mobile_key, mobile.as_bytes()).as_ref())
    }

    fn schedule(&self, centre_id: &str) -> Option<&CentreSchedule> {
        self.config.centre(centre_id)
    }

    fn refused<T>(&self, e: AppointmentError) -> Result<T, AppointmentError> {
        self.counters.refused.fetch_add(1, Ordering::Relaxed);
        Err(e)
    }

    // --- what can be booked --------------------------------------------------------------------

    /// Active extension points whose centre takes appointments, by name.
    pub async fn points(&self) -> Result<Vec<PointView>, AppointmentError> {
        let mut points: Vec<PointView> = self
            .store
            .active_points()
            .await?
            .into_iter()
            .filter(|p| self.schedule(&p.centre_id).is_some())
            .map(|p| PointView {
                id: p.id,
                name: p.name,
                address: p.address,
                phone: p.phone,
                centre_id: p.centre_id,
            })
            .collect();
        points.sort_by(|a, b| (&a.name, &a.id).cmp(&(&b.name, &b.id)));
        Ok(points)
    }

    /// An active extension point whose centre takes appointments.
    pub async fn point(&self, point_id: &str) -> Result<PointView, AppointmentError> {
        match self.main.extension_point(point_id).await? {
            Some(p) if p.status == "active" && self.schedule(&p.centre_id).is_some() => {
                Ok(PointView {
                    id: p.id,
                    name: p.name,
                    address: p.address,
                    phone: p.phone,
                    centre_id: p.centre_id,
                })
            }
            _ => Err(AppointmentError::UnknownPoint),
        }
    }

    /// The bookable categories at a point.
    pub async fn categories(
        &self,
        point_id: &str,
    ) -> Result<Vec<CategoryChoice>, AppointmentError> {
        let point = self.point(point_id).await?;
        let Some(schedule) = self.schedule(&point.centre_id) else {
            return Err(AppointmentError::UnknownPoint);
        };
        Ok(self
            .main
            .categories(&point.centre_id)
            .await?
            .into_iter()
            .filter(|c| schedule.capacity_of(&c.id) > 0)
            .map(|c| CategoryChoice {
                id: c.id,
                name: c.name,
            })
            .collect())
    }

    async fn category_name(&self, centre_id: &str, category_id: &str) -> Option<String> {
        self.main
            .categories(centre_id)
            .await
            .ok()?
            .into_iter()
            .find(|c| c.id == category_id)
            .map(|c| c.name)
    }

    /// The slots of a category at a point from now to the end of the booking window.
    pub async fn slots(
        &self,
        point_id: &str,
        category_id: &str,
    ) -> Result<Vec<SlotView>, AppointmentError> {
        let point = self.point(point_id).await?;
        let schedule = self
            .schedule(&point.centre_id)
            .ok_or(AppointmentError::UnknownPoint)?;
        let capacity = schedule.capacity_of(category_id);
        if capacity == 0
            || self
                .category_name(&point.centre_id, category_id)
                .await
                .is_none()
        {
            return Err(AppointmentError::NotBookable);
        }
        let now = self.clock.now_ms();
        let slots = upcoming_slots(schedule, now, self.config.booking_days);
        let (Some(first), Some(last)) = (slots.first(), slots.last()) else {
            return Ok(Vec::new());
        };
        let counts = self
            .store
            .slot_counts(&point.centre_id, category_id, first.start_ms, last.end_ms)
            .await?;
        Ok(slots
            .into_iter()
            .map(|s| {
                let taken = counts
                    .iter()
                    .find(|(start, _)| *start == s.start_ms)
                    .map_or(0, |(_, n)| *n);
                SlotView {
                    start_ms: s.start_ms,
                    end_ms: s.end_ms,
                    capacity,
                    left: capacity.saturating_sub(taken),
                }
            })
            .collect())
    }

    /// The next start of the centre's remote-window hours after `now_ms` (see
    /// [`CentreSchedule::next_opening_after`]); `None` when the centre takes no appointments
    /// or the category is not bookable there.
    pub fn next_opening(&self, centre_id: &str, category_id: &str, now_ms: i64) -> Option<i64> {
        let s = self.schedule(centre_id)?;
        (s.capacity_of(category_id) > 0)
            .then(|| s.next_opening_after(now_ms))
            .flatten()
    }

    /// Whether the centre's remote windows work at `now_ms` by their hours.
    pub fn is_open(&self, centre_id: &str, now_ms: i64) -> bool {
        self.schedule(centre_id)
            .is_some_and(|s| s.is_open_at(now_ms))
    }

    // --- verification codes --------------------------------------------------------------------

    /// Sends a verification code to `mobile`.
    pub async fn request_code(&self, mobile: &str) -> Result<CodeSent, AppointmentError> {
        let mobile = codes::normalise_mobile(mobile).ok_or(AppointmentError::BadMobile)?;
        let code = codes::new_verification_code();
        let now = self.clock.now_ms();
        let issued = self.codes.lock().unwrap_or_else(|p| p.into_inner()).issue(
            &self.mobile_hash(&mobile),
            code.clone(),
            now,
        );
        if let Err(r) = issued {
            self.counters.codes_refused.fetch_add(1, Ordering::Relaxed);
            return Err(AppointmentError::Verification(r));
        }
        if let Err(e) = self.sms.send_code(&mobile, &code).await {
            warn!(to = %codes::mask_mobile(&mobile), error = %e, "verification code not sent");
            return Err(AppointmentError::SendFailed);
        }
        self.counters.codes_sent.fetch_add(1, Ordering::Relaxed);
        Ok(CodeSent {
            valid_secs: self.config.code_ttl_secs,
            resend_after_secs: self.config.code_resend_secs,
        })
    }

    // --- booking -------------------------------------------------------------------------------

    /// Books a slot (see the module documentation).
    pub async fn book(&self, req: BookRequest) -> Result<BookingView, AppointmentError> {
        let Some(mobile) = codes::normalise_mobile(&req.mobile) else {
            return self.refused(AppointmentError::BadMobile);
        };
        let Some(name) = codes::normalise_name(&req.name) else {
            return self.refused(AppointmentError::BadName);
        };
        let point = self.point(&req.point_id).await?;
        let schedule = self
            .schedule(&point.centre_id)
            .ok_or(AppointmentError::UnknownPoint)?;
        let capacity = schedule.capacity_of(&req.category_id);
        let Some(category_name) = self.category_name(&point.centre_id, &req.category_id).await
        else {
            return self.refused(AppointmentError::NotBookable);
        };
        if capacity == 0 {
            return self.refused(AppointmentError::NotBookable);
        }
        let now = self.clock.now_ms();
        let slot = self.bookable_slot(schedule, req.slot_start_ms, now)?;
        let hash = self.mobile_hash(&mobile);
        let checked = self.codes.lock().unwrap_or_else(|p| p.into_inner()).check(
            &hash,
            &req.verification_code,
            now,
        );
        if let Err(r) = checked {
            return self.refused(AppointmentError::Verification(r));
        }
        let plain = serde_json::to_vec(&Contact {
            name: name.clone(),
            mobile: mobile.clone(),
        })
        .map_err(|_| AppointmentError::Crypto)?;
        // A code collision (1 in 10¹² per live code) draws again; three times is plenty.
        for _ in 0..3 {
            let id = new_booking_id();
            let sealed = self
                .key
                .seal(&id, &plain)
                .map_err(|_| AppointmentError::Crypto)?;
            let record = BookingRecord {
                id,
                code: codes::new_booking_code(),
                centre_id: point.centre_id.clone(),
                extension_point_id: point.id.clone(),
                category_id: req.category_id.clone(),
                service_day: service_day_of(slot),
                slot,
                state: BookingState::Booked,
                mobile_hash: Some(hash.clone()),
                name_masked: codes::mask_name(&name),
                mobile_masked: codes::mask_mobile(&mobile),
                contact: Some(SealedContact {
                    key_id: sealed.key_id,
                    wrapped_key: sealed.wrapped_key,
                    ciphertext: sealed.ciphertext,
                }),
                ticket_id: None,
                late: false,
                created_ms: now,
                updated_ms: now,
            };
            match self.store.book(&record, capacity).await? {
                BookOutcome::Booked => {
                    self.codes
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .consume(&hash);
                    self.counters.booked.fetch_add(1, Ordering::Relaxed);
                    info!(booking = %record.id, centre = %record.centre_id, category = %record.category_id, slot = slot.start_ms, "appointment booked");
                    return Ok(self.view(&record, &point.name, &category_name));
                }
                BookOutcome::SlotFull => return self.refused(AppointmentError::SlotFull),
                BookOutcome::AlreadyBooked => {
                    return self.refused(AppointmentError::AlreadyBooked);
                }
                BookOutcome::CodeTaken => continue,
            }
        }
        Err(AppointmentError::Store(StoreError::Corrupt(
            "three booking codes in a row were taken".into(),
        )))
    }

    /// The schedule's slot starting at `start_ms`, if it is still ahead and within the window.
    fn bookable_slot(
        &self,
        schedule: &CentreSchedule,
        start_ms: i64,
        now_ms: i64,
    ) -> Result<AppointmentSlot, AppointmentError> {
        let slot = schedule
            .slot_at(start_ms)
            .filter(|s| s.start_ms > now_ms)
            .ok_or(AppointmentError::NoSuchSlot)?;
        let (today, _) = shanghai(now_ms);
        let last_day = today.days_since_epoch() + i64::from(self.config.booking_days) - 1;
        if service_day_of(slot) > last_day {
            self.counters.refused.fetch_add(1, Ordering::Relaxed);
            return Err(AppointmentError::NoSuchSlot);
        }
        Ok(slot)
    }

    fn view(&self, b: &BookingRecord, point_name: &str, category_name: &str) -> BookingView {
        BookingView {
            code: b.code.clone(),
            qr_payload: codes::qr_payload(&b.code),
            state: b.state,
            point_id: b.extension_point_id.clone(),
            point_name: point_name.to_owned(),
            category_id: b.category_id.clone(),
            category_name: category_name.to_owned(),
            slot_start_ms: b.slot.start_ms,
            slot_end_ms: b.slot.end_ms,
            slot_text: fmt_slot_zh(b.slot),
            name_masked: b.name_masked.clone(),
            mobile_masked: b.mobile_masked.clone(),
        }
    }

    async fn view_of(&self, b: &BookingRecord) -> BookingView {
        let point_name = match self.main.extension_point(&b.extension_point_id).await {
            Ok(Some(p)) => p.name,
            _ => String::new(),
        };
        let category_name = self
            .category_name(&b.centre_id, &b.category_id)
            .await
            .unwrap_or_default();
        self.view(b, &point_name, &category_name)
    }

    /// The booking with this code whose number is `mobile` (a wrong number is "not found",
    /// exactly like a wrong code).
    async fn owned(&self, code: &str, mobile: &str) -> Result<BookingRecord, AppointmentError> {
        let mobile = codes::normalise_mobile(mobile).ok_or(AppointmentError::BadMobile)?;
        let code = codes::normalise_code(code).ok_or(AppointmentError::BadCode)?;
        let hash = self.mobile_hash(&mobile);
        match self.store.booking_by_code(&code).await? {
            Some(b) if b.mobile_hash.as_deref() == Some(hash.as_str()) => Ok(b),
            _ => Err(AppointmentError::NotFound),
        }
    }

    pub async fn lookup(&self, code: &str, mobile: &str) -> Result<BookingView, AppointmentError> {
        let b = self.owned(code, mobile).await?;
        Ok(self.view_of(&b).await)
    }

    pub async fn cancel(&self, code: &str, mobile: &str) -> Result<BookingView, AppointmentError> {
        let mut b = self.owned(code, mobile).await?;
        let now = self.clock.now_ms();
        if b.state != BookingState::Booked || !self.store.cancel_booking(&b.id, now).await? {
            let state = self
                .store
                .booking(&b.id)
                .await?
                .map_or(b.state, |x| x.state);
            return Err(AppointmentError::NotLive(state));
        }
        self.counters.cancelled.fetch_add(1, Ordering::Relaxed);
        b.state = BookingState::Cancelled;
        b.updated_ms = now;
        Ok(self.view_of(&b).await)
    }

    pub async fn reschedule(
        &self,
        code: &str,
        mobile: &str,
        slot_start_ms: i64,
    ) -> Result<BookingView, AppointmentError> {
        let b = self.owned(code, mobile).await?;
        if b.state != BookingState::Booked {
            return Err(AppointmentError::NotLive(b.state));
        }
        let schedule = self
            .schedule(&b.centre_id)
            .ok_or(AppointmentError::UnknownPoint)?;
        let capacity = schedule.capacity_of(&b.category_id);
        let now = self.clock.now_ms();
        let slot = self.bookable_slot(schedule, slot_start_ms, now)?;
        match self
            .store
            .reschedule_booking(&b.id, service_day_of(slot), slot, capacity, now)
            .await?
        {
            RescheduleOutcome::Moved => {}
            RescheduleOutcome::NotLive => {
                let state = self
                    .store
                    .booking(&b.id)
                    .await?
                    .map_or(b.state, |x| x.state);
                return Err(AppointmentError::NotLive(state));
            }
            RescheduleOutcome::SlotFull => return self.refused(AppointmentError::SlotFull),
            RescheduleOutcome::AlreadyBooked => {
                return self.refused(AppointmentError::AlreadyBooked);
            }
        }
        self.counters.rescheduled.fetch_add(1, Ordering::Relaxed);
        let moved = self
            .store
            .booking(&b.id)
            .await?
            .ok_or(AppointmentError::NotFound)?;
        Ok(self.view_of(&moved).await)
    }

    // --- at the kiosk --------------------------------------------------------------------------

    /// Decides a check-in at `point_id` (see the module documentation). Unreadable keys and
    /// keys that match no booking count against the point; a successful check-in clears its
    /// count.
    pub async fn check_in(&self, point_id: &str, key: &str) -> Result<CheckIn, CheckInRefusal> {
        let now = self.clock.now_ms();
        let result = self.decide_check_in(point_id, key, now).await;
        match &result {
            Ok(_) => {
                self.counters.check_ins.fetch_add(1, Ordering::Relaxed);
            }
            Err(r) => {
                self.counters
                    .check_ins_refused
                    .fetch_add(1, Ordering::Relaxed);
                if matches!(r, CheckInRefusal::Unreadable | CheckInRefusal::NotFound) {
                    let mut failures = self
                        .check_in_failures
                        .lock()
                        .unwrap_or_else(|p| p.into_inner());
                    if failures.hit(point_id, now) != Admit::Yes {
                        // Over the limit (or the table full): the next try waits anyway.
                    }
                }
            }
        }
        result
    }

    async fn decide_check_in(
        &self,
        point_id: &str,
        key: &str,
        now: i64,
    ) -> Result<CheckIn, CheckInRefusal> {
        if let Some(wait_secs) = self
            .check_in_failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .blocked(point_id, now)
        {
            return Err(CheckInRefusal::Locked { wait_secs });
        }
        let key = codes::parse_check_in_key(key).ok_or(CheckInRefusal::Unreadable)?;
        let code = match &key {
            CheckInKey::Qr { code } | CheckInKey::Typed { code, .. } => code.clone(),
        };
        let b = self
            .store
            .booking_by_code(&code)
            .await
            .map_err(|_| CheckInRefusal::Unavailable)?
            .ok_or(CheckInRefusal::NotFound)?;
        if let CheckInKey::Typed { last4, .. } = &key {
            // The masked number keeps the last four digits (138****5678).
            if !b.mobile_masked.ends_with(last4.as_str()) || b.mobile_masked.len() < 4 {
                return Err(CheckInRefusal::NotFound);
            }
        }
        if b.extension_point_id != point_id {
            let point_name = match self.main.extension_point(&b.extension_point_id).await {
                Ok(Some(p)) => p.name,
                _ => String::new(),
            };
            return Err(CheckInRefusal::WrongPoint { point_name });
        }
        match b.state {
            BookingState::Cancelled => return Err(CheckInRefusal::Cancelled),
            BookingState::CheckedIn => return Err(CheckInRefusal::AlreadyCheckedIn),
            BookingState::Booked | BookingState::NoShow => {}
        }
        let today = shanghai(now).0.days_since_epoch();
        if b.service_day != today {
            return Err(CheckInRefusal::NotToday { slot: b.slot });
        }
        let early_ms = i64::from(self.config.early_check_in_minutes) * 60_000;
        let arrival = if now < b.slot.start_ms - early_ms {
            return Err(CheckInRefusal::TooEarly {
                opens_ms: b.slot.start_ms - early_ms,
            });
        } else if now < b.slot.end_ms {
            Arrival::OnTime(b.slot)
        } else {
            Arrival::Late
        };
        self.check_in_failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear(point_id);
        Ok(CheckIn {
            booking_id: b.id,
            code: b.code,
            centre_id: b.centre_id,
            category_id: b.category_id,
            name_masked: b.name_masked,
            arrival,
        })
    }

    /// Records the ticket a check-in became. Refused when the booking was already used.
    pub async fn confirm_check_in(
        &self,
        booking_id: &str,
        ticket_id: &str,
        late: bool,
    ) -> Result<(), AppointmentError> {
        let now = self.clock.now_ms();
        if self
            .store
            .mark_checked_in(booking_id, ticket_id, late, now)
            .await?
        {
            Ok(())
        } else {
            let state = self
                .store
                .booking(booking_id)
                .await?
                .ok_or(AppointmentError::NotFound)?
                .state;
            Err(AppointmentError::NotLive(state))
        }
    }

    // --- for the clerks --------------------------------------------------------------------------

    /// A centre's bookings of one Shanghai date, masked, by slot.
    pub async fn day_list(
        &self,
        centre_id: &str,
        date: Date,
    ) -> Result<Vec<DayEntry>, AppointmentError> {
        let bookings = self
            .store
            .day_bookings(centre_id, date.days_since_epoch())
            .await?;
        let categories = self.main.categories(centre_id).await?;
        let mut point_names: Vec<(String, String)> = Vec::new();
        let mut out = Vec::with_capacity(bookings.len());
        for b in bookings {
            let point_name = match point_names
                .iter()
                .find(|(id, _)| *id == b.extension_point_id)
            {
                Some((_, n)) => n.clone(),
                None => {
                    let n = self
                        .main
                        .extension_point(&b.extension_point_id)
                        .await?
                        .map(|p| p.name)
                        .unwrap_or_default();
                    point_names.push((b.extension_point_id.clone(), n.clone()));
                    n
                }
            };
            out.push(DayEntry {
                category_name: categories
                    .iter()
                    .find(|c| c.id == b.category_id)
                    .map(|c| c.name.clone())
                    .unwrap_or_default(),
                code: b.code,
                slot_start_ms: b.slot.start_ms,
                slot_end_ms: b.slot.end_ms,
                category_id: b.category_id,
                point_id: b.extension_point_id,
                point_name,
                name_masked: b.name_masked,
                mobile_masked: b.mobile_masked,
                state: b.state,
                late: b.late,
                ticket_id: b.ticket_id,
            });
        }
        Ok(out)
    }

    /// The full name and number of a booking (decrypted); for a future audited reveal, and
    /// for tests that check the sealing. Not exposed over HTTP.
    pub async fn contact(&self, booking_id: &str) -> Result<(String, String), AppointmentError> {
        let b = self
            .store
            .booking(booking_id)
            .await?
            .ok_or(AppointmentError::NotFound)?;
        let sealed = b.contact.ok_or(AppointmentError::NotFound)?;
        let plain = self
            .key
            .open(
                &b.id,
                &crate::cases::crypto::Sealed {
                    key_id: sealed.key_id,
                    wrapped_key: sealed.wrapped_key,
                    ciphertext: sealed.ciphertext,
                },
            )
            .map_err(|_| AppointmentError::Crypto)?;
        let c: Contact = serde_json::from_slice(&plain).map_err(|_| AppointmentError::Crypto)?;
        Ok((c.name, c.mobile))
    }

    /// Marks no-shows (slots ended more than `no_show_after_minutes` ago) and removes the
    /// personal data of bookings whose slot ended more than `retention_days` ago.
    pub async fn sweep(&self, now_ms: i64) -> Result<(u64, u64), AppointmentError> {
        let no_show_cut = now_ms - i64::from(self.config.no_show_after_minutes) * 60_000;
        let no_shows = self.store.mark_no_shows(no_show_cut, now_ms).await?;
        let purge_cut = now_ms - i64::from(self.config.retention_days) * 86_400_000;
        let purged = self.store.purge_booking_contacts(purge_cut, now_ms).await?;
        self.counters
            .no_shows
            .fetch_add(no_shows, Ordering::Relaxed);
        self.counters.purged.fetch_add(purged, Ordering::Relaxed);
        if no_shows + purged > 0 {
            info!(no_shows, purged, "appointment sweep");
        }
        Ok((no_shows, purged))
    }
}

/// The start of a Shanghai date as Unix ms (for callers that list a day).
pub fn date_start_ms(date: Date) -> i64 {
    day_start(date)
}
