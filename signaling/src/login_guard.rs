//! Who may try a staff password now, and how much password hashing may run at once.
//!
//! [`LoginThrottle`] is a sans-IO state machine fed with a monotonic `now`. An attempt is
//! *reserved* before the slow password check starts: a username or a source address with
//! `limit` failures, or with so many attempts in flight that their failures would reach the
//! limit, is refused at once. Concurrent guesses therefore cannot slip past while earlier ones
//! are still hashing. Reaching the limit locks the username (or address) out for a fixed time;
//! the lockout expires by itself and the staff member is told how long to wait.
//!
//! Counters are never wiped to make room: when the table is full, entries that have expired
//! are pruned, and if none has, new keys are refused ("busy") until some expire. One source
//! address (an IPv6 /64 counts as one) is held to its own limit, so it cannot fill the table.
//!
//! [`PasswordChecks`] bounds argon2 work: a few permits of its own (each check costs about
//! 19 MiB and tens of milliseconds of a core), a bounded number of callers waiting for one,
//! and a deadline on that wait. A permit is held by the hashing task itself, so a caller
//! that hangs up does not free a permit while its hash still runs.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

/// Limits of the login throttle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleLimits {
    /// Failures of one username within `window` before it is locked out.
    pub per_username: u32,
    /// Failures from one source address within `window` before it is locked out.
    pub per_address: u32,
    pub window: Duration,
    pub lockout: Duration,
    /// Most usernames (and, separately, addresses) tracked at once.
    pub max_entries: usize,
}

/// Why an attempt was not let through to the password check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Too many failures: try again after this long.
    Locked(Duration),
    /// As many attempts as the limit allows are being checked right now.
    InFlight,
    /// The throttle's table is full of live entries.
    Busy,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    in_flight: u32,
    window_start: Instant,
    locked_until: Option<Instant>,
}

impl Entry {
    fn new(now: Instant) -> Self {
        Self {
            failures: 0,
            in_flight: 0,
            window_start: now,
            locked_until: None,
        }
    }

    /// Forgets an expired lockout or failure window.
    fn refresh(&mut self, now: Instant, limits: &ThrottleLimits) {
        match self.locked_until {
            Some(until) if now >= until => {
                self.locked_until = None;
                self.failures = 0;
                self.window_start = now;
            }
            Some(_) => {}
            None => {
                if now.saturating_duration_since(self.window_start) >= limits.window {
                    self.failures = 0;
                    self.window_start = now;
                }
            }
        }
    }

    fn idle(&self) -> bool {
        self.failures == 0 && self.in_flight == 0 && self.locked_until.is_none()
    }

    fn refusal(&self, now: Instant, limit: u32) -> Option<Refusal> {
        if let Some(until) = self.locked_until {
            return Some(Refusal::Locked(until.saturating_duration_since(now)));
        }
        if self.failures.saturating_add(self.in_flight) >= limit {
            // Everything still in flight may fail and reach the limit.
            return Some(Refusal::InFlight);
        }
        None
    }

    fn fail(&mut self, now: Instant, limit: u32, limits: &ThrottleLimits) -> bool {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.refresh(now, limits);
        if self.locked_until.is_some() {
            return false;
        }
        self.failures = self.failures.saturating_add(1);
        if self.failures >= limit {
            self.locked_until = Some(now + limits.lockout);
            return true;
        }
        false
    }
}

/// The key a source address is counted under: the address itself, or its /64 for IPv6 (one
/// host usually holds a whole /64).
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// Failed-login counters per username and per source address.
#[derive(Debug)]
pub struct LoginThrottle {
    limits: ThrottleLimits,
    users: HashMap<String, Entry>,
    addresses: HashMap<IpAddr, Entry>,
}

/// What a finished attempt changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FailureOutcome {
    pub username_locked: bool,
    pub address_locked: bool,
}

impl LoginThrottle {
    pub fn new(limits: ThrottleLimits) -> Self {
        Self {
            limits,
            users: HashMap::new(),
            addresses: HashMap::new(),
        }
    }

    /// Reserves one attempt for `username` from `address`, or says why not.
    pub fn reserve(
        &mut self,
        username: &str,
        address: IpAddr,
        now: Instant,
    ) -> Result<(), Refusal> {
        let limits = self.limits;
        let address = address_key(address);
        if !self.users.contains_key(username) && self.users.len() >= limits.max_entries {
            prune(&mut self.users, now, &limits);
        }
        if !self.addresses.contains_key(&address) && self.addresses.len() >= limits.max_entries {
            prune(&mut self.addresses, now, &limits);
        }
        let user_room = self.users.contains_key(username) || self.users.len() < limits.max_entries;
        let address_room =
            self.addresses.contains_key(&address) || self.addresses.len() < limits.max_entries;
        if !user_room || !address_room {
            return Err(Refusal::Busy);
        }
        let mut user = self.users.get(username).copied().unwrap_or(Entry::new(now));
        let mut addr = self
            .addresses
            .get(&address)
            .copied()
            .unwrap_or(Entry::new(now));
        user.refresh(now, &limits);
        addr.refresh(now, &limits);
        let refusal = addr
            .refusal(now, limits.per_address)
            .or_else(|| user.refusal(now, limits.per_username));
        if let Some(refusal) = refusal {
            // Keep what was refreshed, but only for keys already known.
            if let Some(e) = self.users.get_mut(username) {
                *e = user;
            }
            if let Some(e) = self.addresses.get_mut(&address) {
                *e = addr;
            }
            return Err(refusal);
        }
        user.in_flight += 1;
        addr.in_flight += 1;
        self.users.insert(username.to_owned(), user);
        self.addresses.insert(address, addr);
        Ok(())
    }

    /// A reserved attempt failed (wrong password, unknown user, or abandoned).
    pub fn failed(&mut self, username: &str, address: IpAddr, now: Instant) -> FailureOutcome {
        let limits = self.limits;
        let mut outcome = FailureOutcome::default();
        if let Some(e) = self.users.get_mut(username) {
            outcome.username_locked = e.fail(now, limits.per_username, &limits);
        }
        if let Some(e) = self.addresses.get_mut(&address_key(address)) {
            outcome.address_locked = e.fail(now, limits.per_address, &limits);
        }
        outcome
    }

    /// A reserved attempt succeeded: the username's failures are forgotten; the address's
    /// are kept (a valid account must not launder an address's guesses at others).
    pub fn succeeded(&mut self, username: &str, address: IpAddr) {
        if let Some(e) = self.users.get_mut(username) {
            e.in_flight = e.in_flight.saturating_sub(1);
            if e.locked_until.is_none() {
                e.failures = 0;
            }
        }
        if let Some(e) = self.addresses.get_mut(&address_key(address)) {
            e.in_flight = e.in_flight.saturating_sub(1);
        }
    }

    /// A reserved attempt never reached the password check (the checks were busy).
    pub fn released(&mut self, username: &str, address: IpAddr) {
        if let Some(e) = self.users.get_mut(username) {
            e.in_flight = e.in_flight.saturating_sub(1);
        }
        if let Some(e) = self.addresses.get_mut(&address_key(address)) {
            e.in_flight = e.in_flight.saturating_sub(1);
        }
    }

    /// Ends a username's lockout (an administrator unlocking an account).
    pub fn clear_username(&mut self, username: &str) {
        if let Some(e) = self.users.get_mut(username) {
            e.failures = 0;
            e.locked_until = None;
        }
    }

    /// How many usernames and addresses are tracked.
    pub fn len(&self) -> (usize, usize) {
        (self.users.len(), self.addresses.len())
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty() && self.addresses.is_empty()
    }
}

fn prune<K>(map: &mut HashMap<K, Entry>, now: Instant, limits: &ThrottleLimits) {
    map.retain(|_, e| {
        e.refresh(now, limits);
        !e.idle()
    });
}

/// One reserved attempt. Dropping it without an outcome (the caller hung up mid-check)
/// counts as a failure, so abandoning requests is no way around the limit.
pub struct LoginAttempt {
    throttle: Arc<Mutex<LoginThrottle>>,
    username: String,
    address: IpAddr,
    done: bool,
}

impl LoginAttempt {
    pub fn reserve(
        throttle: &Arc<Mutex<LoginThrottle>>,
        username: &str,
        address: IpAddr,
    ) -> Result<Self, Refusal> {
        let mut t = throttle.lock().map_err(|_| Refusal::Busy)?;
        t.reserve(username, address, Instant::now())?;
        Ok(Self {
            throttle: throttle.clone(),
            username: username.to_owned(),
            address,
            done: false,
        })
    }

    pub fn failed(mut self) -> FailureOutcome {
        self.done = true;
        self.throttle
            .lock()
            .map(|mut t| t.failed(&self.username, self.address, Instant::now()))
            .unwrap_or_default()
    }

    /// The password was never checked: nothing to count.
    pub fn released(mut self) {
        self.done = true;
        if let Ok(mut t) = self.throttle.lock() {
            t.released(&self.username, self.address);
        }
    }

    pub fn succeeded(mut self) {
        self.done = true;
        if let Ok(mut t) = self.throttle.lock() {
            t.succeeded(&self.username, self.address);
        }
    }
}

impl Drop for LoginAttempt {
    fn drop(&mut self) {
        if !self.done
            && let Ok(mut t) = self.throttle.lock()
        {
            t.failed(&self.username, self.address, Instant::now());
        }
    }
}

/// The password check could not start in time: too many are running or waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many password checks at once")]
pub struct ChecksBusy;

/// A bounded pool for argon2 password checks, apart from tokio's blocking pool limit.
pub struct PasswordChecks {
    permits: Arc<Semaphore>,
    max_waiting: usize,
    wait: Duration,
    waiting: AtomicUsize,
    running: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
    refused: AtomicU64,
}

impl PasswordChecks {
    pub fn new(max_running: usize, max_waiting: usize, wait: Duration) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max_running.max(1))),
            max_waiting,
            wait,
            waiting: AtomicUsize::new(0),
            running: Arc::new(AtomicUsize::new(0)),
            peak: Arc::new(AtomicUsize::new(0)),
            refused: AtomicU64::new(0),
        }
    }

    /// Runs `check` (argon2) on a blocking thread once a permit is free.
    pub async fn run<F>(&self, check: F) -> Result<bool, ChecksBusy>
    where
        F: FnOnce() -> bool + Send + 'static,
    {
        Ok(self.run_value(check).await?.unwrap_or(false))
    }

    /// Runs `work` (argon2 hashing or checking) on a blocking thread once a permit is free;
    /// `None` if the work panicked.
    pub async fn run_value<F, T>(&self, work: F) -> Result<Option<T>, ChecksBusy>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.max_waiting {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            self.refused.fetch_add(1, Ordering::Relaxed);
            return Err(ChecksBusy);
        }
        let permit = tokio::time::timeout(self.wait, self.permits.clone().acquire_owned()).await;
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        let Ok(Ok(permit)) = permit else {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return Err(ChecksBusy);
        };
        let running = self.running.clone();
        let peak = self.peak.clone();
        let task = tokio::task::spawn_blocking(move || {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            let value = work();
            running.fetch_sub(1, Ordering::SeqCst);
            drop(permit);
            value
        });
        Ok(task.await.ok())
    }

    /// Checks running now.
    pub fn running(&self) -> usize {
        self.running.load(Ordering::SeqCst)
    }

    /// Most checks that ever ran at once.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }

    /// Checks refused because too many were waiting or the wait ran out.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    fn limits() -> ThrottleLimits {
        ThrottleLimits {
            per_username: 5,
            per_address: 20,
            window: Duration::from_secs(900),
            lockout: Duration::from_secs(900),
            max_entries: 100,
        }
    }

    #[test]
    fn attempts_in_flight_count_before_they_fail() {
        let mut t = LoginThrottle::new(limits());
        let now = Instant::now();
        for _ in 0..5 {
            t.reserve("clerk1", A, now).expect("within the limit");
        }
        // Nothing has failed yet, but five checks are running: the sixth must wait.
        assert_eq!(t.reserve("clerk1", B, now), Err(Refusal::InFlight));
        for _ in 0..5 {
            t.failed("clerk1", A, now);
        }
        let Err(Refusal::Locked(wait)) = t.reserve("clerk1", B, now) else {
            panic!("locked out after five failures");
        };
        assert_eq!(wait, Duration::from_secs(900));
    }

    #[test]
    fn lockout_expires_and_failures_start_again() {
        let mut t = LoginThrottle::new(limits());
        let now = Instant::now();
        for _ in 0..5 {
            t.reserve("clerk1", A, now).expect("reserve");
            t.failed("clerk1", A, now);
        }
        let later = now + Duration::from_secs(600);
        assert_eq!(
            t.reserve("clerk1", A, later),
            Err(Refusal::Locked(Duration::from_secs(300)))
        );
        let after = now + Duration::from_secs(900);
        t.reserve("clerk1", A, after).expect("the lockout expired");
    }

    #[test]
    fn a_success_clears_the_username_but_not_the_address() {
        let mut t = LoginThrottle::new(limits());
        let now = Instant::now();
        for i in 0..4 {
            t.reserve("clerk1", A, now).expect("reserve");
            t.failed("clerk1", A, now);
            t.reserve(&format!("other{i}"), A, now).expect("reserve");
            t.failed(&format!("other{i}"), A, now);
        }
        t.reserve("clerk1", A, now).expect("reserve");
        t.succeeded("clerk1", A);
        for _ in 0..4 {
            t.reserve("clerk1", A, now)
                .expect("the username starts again");
            t.failed("clerk1", A, now);
        }
        // Twelve failures from A so far; eight more reach its limit of twenty.
        for i in 0..8 {
            t.reserve(&format!("x{i}"), A, now).expect("reserve");
            t.failed(&format!("x{i}"), A, now);
        }
        assert!(matches!(
            t.reserve("fresh", A, now),
            Err(Refusal::Locked(_))
        ));
        assert_eq!(t.len(), (13, 1));
        t.reserve("fresh", B, now)
            .expect("another address is not affected");
    }

    #[test]
    fn a_full_table_refuses_new_names_instead_of_forgetting_old_ones() {
        let mut t = LoginThrottle::new(ThrottleLimits {
            max_entries: 3,
            per_address: 1000,
            ..limits()
        });
        let now = Instant::now();
        for _ in 0..4 {
            t.reserve("victim", A, now).expect("reserve");
            t.failed("victim", A, now);
        }
        for name in ["a", "b"] {
            t.reserve(name, A, now).expect("reserve");
            t.failed(name, A, now);
        }
        assert_eq!(t.reserve("c", A, now), Err(Refusal::Busy));
        // The victim's four failures are still counted: one more locks it.
        t.reserve("victim", A, now).expect("reserve");
        assert!(t.failed("victim", A, now).username_locked);
        // Once the window has passed, idle entries make room again.
        let later = now + Duration::from_secs(901);
        t.reserve("c", A, later)
            .expect("expired entries were pruned");
    }

    #[test]
    fn ipv6_hosts_count_per_64() {
        let a: IpAddr = "2001:db8:1:2::1".parse().expect("address");
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("address");
        assert_eq!(address_key(a), address_key(b));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().expect("address");
        assert_eq!(address_key(mapped), A);
    }

    #[test]
    fn an_abandoned_attempt_counts_as_a_failure() {
        let throttle = Arc::new(Mutex::new(LoginThrottle::new(ThrottleLimits {
            per_username: 1,
            ..limits()
        })));
        let attempt = LoginAttempt::reserve(&throttle, "clerk1", A).expect("reserve");
        drop(attempt);
        assert!(matches!(
            LoginAttempt::reserve(&throttle, "clerk1", A),
            Err(Refusal::Locked(_))
        ));
    }

    #[tokio::test]
    async fn password_checks_never_exceed_their_permits() {
        let checks = Arc::new(PasswordChecks::new(2, 100, Duration::from_secs(30)));
        let (release, gate) = tokio::sync::watch::channel(false);
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..10 {
            let checks = checks.clone();
            let mut gate = gate.clone();
            tasks.spawn(async move {
                checks
                    .run(move || {
                        // Blocks this (blocking-pool) thread until the test opens the gate.
                        let handle = tokio::runtime::Handle::current();
                        handle.block_on(async { gate.wait_for(|open| *open).await.is_ok() })
                    })
                    .await
            });
        }
        tokio::time::timeout(Duration::from_secs(30), async {
            while checks.running() < 2 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("two checks start");
        assert_eq!(checks.running(), 2);
        release.send(true).expect("gate");
        while let Some(done) = tasks.join_next().await {
            assert_eq!(done.expect("task"), Ok(true));
        }
        assert_eq!(checks.peak(), 2);
    }

    #[tokio::test]
    async fn too_many_waiting_checks_are_refused() {
        let checks = PasswordChecks::new(1, 0, Duration::from_secs(1));
        assert_eq!(checks.run(|| true).await, Err(ChecksBusy));
        assert_eq!(checks.refused(), 1);
    }
}
