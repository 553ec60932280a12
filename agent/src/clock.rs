//! The agent's time, in one place: wall-clock Unix milliseconds for what goes on the wire or
//! to disk ([`now_ms`]), and the [`Clock`] seam for blocking code that waits (card polling), so
//! its tests run in virtual time.
//!
//! State machines do not read the clock: they take `now` as an argument (the control link's
//! core, the self-test schedule, the kiosk's flow), and only their thin drivers call in here.

use std::time::{Duration, Instant, SystemTime};

/// A time source for blocking code, so its waits can run in virtual time in tests.
pub trait Clock: Send + Sync {
    fn now(&self) -> Instant;
    fn sleep(&self, duration: Duration);
}

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
    fn sleep(&self, duration: Duration) {
        std::thread::sleep(duration);
    }
}

/// Time since the Unix epoch; zero for a clock set before 1970.
fn since_epoch() -> Duration {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
}

/// Local wall-clock time, Unix milliseconds.
pub fn now_ms() -> i64 {
    i64::try_from(since_epoch().as_millis()).unwrap_or(i64::MAX)
}

/// Local wall-clock time, Unix milliseconds with a fraction (for round-trip measurements).
pub fn now_ms_f64() -> f64 {
    since_epoch().as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_readings_agree() {
        let whole = now_ms();
        let fine = now_ms_f64();
        assert!(whole > 1_600_000_000_000, "after 2020: {whole}");
        assert!(fine >= whole as f64, "{fine} vs {whole}");
    }
}
