//! Shared state of the HTTP layer.

use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::config::Config;
use crate::media::MediaService;
use crate::metrics::Metrics;
use crate::queue::QueueHub;
use crate::session::Switchboard;
use crate::store::Store;
use crate::store::recordings::RecordingStore;

/// Handles to the relay's services, shared by every request handler. Built only by
/// [`crate::relay::Relay::start`].
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub hub: Arc<QueueHub>,
    /// Live connections, served sessions, device-command and media routing.
    pub switchboard: Arc<Switchboard>,
    /// SFU peers, session media and recordings.
    pub media: Arc<MediaService>,
    /// Recordings' metadata and access audit.
    pub recordings: Arc<dyn RecordingStore>,
    /// Case materials (ID card reads, document pages, snapshots), encrypted at rest.
    pub cases: crate::cases::Cases,
    /// 好差评: evaluations, their forwarding and follow-ups.
    pub evaluations: Arc<crate::evaluation::Evaluations>,
    /// 远程受理柜台维护, kiosk health and inspection records.
    pub registry: Arc<crate::registry::Registry>,
    /// Staff profiles (岗位、工号、照片) shown to residents.
    pub staff: Arc<dyn crate::store::staff_profile::StaffProfileStore>,
    /// Remote appointments: booking, check-in, the clerks' daily list.
    pub appointments: Arc<crate::appointments::Appointments>,
    /// Rate limits of the public booking API, per address and per mobile number.
    pub public_limits: Arc<super::appointments::PublicLimits>,
    pub metrics: Arc<Metrics>,
    /// The hash-chained audit trail: record logins, administrative actions and reveals here.
    pub audit: crate::audit::Trail,
    pub clock: Arc<dyn Clock>,
    /// One permit per open WebSocket connection.
    pub connections: Arc<Semaphore>,
    /// Connections that have not authenticated yet, per source address.
    pub pending: Arc<super::pending::PendingSlots>,
    /// Cancelled when the relay shuts down: long-lived connections close politely.
    pub shutdown: CancellationToken,
    /// Failed staff logins per username and source address.
    pub login_throttle: Arc<Mutex<crate::login_guard::LoginThrottle>>,
    /// Bounds the argon2 work of password checks.
    pub password_checks: Arc<crate::login_guard::PasswordChecks>,
    /// 预约 at the kiosk: the appointment service as kiosk connections use it (`None`: this
    /// relay offers no appointments; check-in and booking are refused with a plain answer).
    pub kiosk_desk: super::kiosk_appointments::SharedDesk,
}
