//! The small pure pieces of appointments: booking codes and the QR payload, checking and
//! masking names and mobile numbers, reading a check-in key, and the bounded tables that
//! count verification codes, check-in failures and request rates. None reads a clock: the
//! time comes in as `now_ms`.

use std::collections::{HashMap, VecDeque};

use rand::Rng;

/// The characters of a booking code: digits and capitals without 0/O and 1/I, which people
/// mistake for each other when reading or typing.
pub const CODE_ALPHABET: &[u8] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";
/// Characters in a booking code (32⁸ ≈ 10¹² codes).
pub const CODE_LEN: usize = 8;
/// What the kiosk's scanner reads: this prefix and the booking code, nothing personal.
pub const QR_PREFIX: &str = "RVWB1:";

/// A fresh random booking code.
pub fn new_booking_code() -> String {
    let mut rng = rand::rng();
    (0..CODE_LEN)
        .map(|_| char::from(CODE_ALPHABET[rng.random_range(0..CODE_ALPHABET.len())]))
        .collect()
}

/// The QR payload of a booking code.
pub fn qr_payload(code: &str) -> String {
    format!("{QR_PREFIX}{code}")
}

/// A booking code as typed: upper case, spaces and hyphens dropped; `None` unless it has the
/// code's length and alphabet.
pub fn normalise_code(s: &str) -> Option<String> {
    let code: String = s
        .chars()
        .filter(|c| !matches!(c, ' ' | '-'))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (code.len() == CODE_LEN && code.bytes().all(|b| CODE_ALPHABET.contains(&b))).then_some(code)
}

/// A six-digit verification code.
pub fn new_verification_code() -> String {
    format!("{:06}", rand::rng().random_range(0..1_000_000u32))
}

/// A mainland mobile number (11 digits, 1[3-9]…), spaces and hyphens dropped, or `None`.
pub fn normalise_mobile(s: &str) -> Option<String> {
    let digits: String = s.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    let b = digits.as_bytes();
    (b.len() == 11
        && b.iter().all(u8::is_ascii_digit)
        && b[0] == b'1'
        && (b'3'..=b'9').contains(&b[1]))
    .then_some(digits)
}

/// A resident's name as entered: trimmed, 1–20 characters, no control characters or markup.
pub fn normalise_name(s: &str) -> Option<String> {
    let name = s.trim();
    let n = name.chars().count();
    ((1..=20).contains(&n)
        && !name
            .chars()
            .any(|c| c.is_control() || matches!(c, '<' | '>' | '&' | '"' | '\\')))
    .then(|| name.to_owned())
}

/// 138****1234
pub fn mask_mobile(mobile: &str) -> String {
    if mobile.len() == 11 && mobile.is_ascii() {
        format!("{}****{}", &mobile[..3], &mobile[7..])
    } else {
        "***".into()
    }
}

/// 张* / 欧阳** : the first character, the rest starred.
pub fn mask_name(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => {
            let rest = chars.count().max(1);
            format!("{first}{}", "*".repeat(rest))
        }
        None => String::new(),
    }
}

/// What a resident presents at the kiosk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckInKey {
    /// The QR payload: holding it is the proof.
    Qr { code: String },
    /// Typed: the last four digits of the mobile number and the booking code.
    Typed { last4: String, code: String },
}

/// Reads a check-in key: `RVWB1:<code>` as scanned, or four digits followed by the code
/// (spaces and hyphens allowed) as typed.
pub fn parse_check_in_key(s: &str) -> Option<CheckInKey> {
    let s = s.trim();
    if let Some(rest) = s
        .get(..QR_PREFIX.len())
        .filter(|p| p.eq_ignore_ascii_case(QR_PREFIX))
        .and_then(|_| s.get(QR_PREFIX.len()..))
    {
        return normalise_code(rest).map(|code| CheckInKey::Qr { code });
    }
    let compact: String = s.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    if compact.len() != 4 + CODE_LEN || !compact.is_ascii() {
        return None;
    }
    let (last4, code) = compact.split_at(4);
    if !last4.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(CheckInKey::Typed {
        last4: last4.to_owned(),
        code: normalise_code(code)?,
    })
}

/// Why a verification code was not sent or not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeRefusal {
    /// A code was sent less than the resend interval ago.
    ResendTooSoon {
        wait_secs: u64,
    },
    /// Too many codes to this number within an hour.
    TooManySends {
        wait_secs: u64,
    },
    /// No code was requested for this number, or it was used.
    NoCode,
    Expired,
    Wrong {
        tries_left: u32,
    },
    /// Too many wrong tries: request a new code.
    TooManyTries,
    /// The table is full of live codes: try again shortly.
    Busy,
}

#[derive(Debug, Clone, Copy)]
pub struct CodeLimits {
    pub ttl_ms: i64,
    pub max_tries: u32,
    pub resend_ms: i64,
    pub max_sends_per_hour: usize,
    pub max_entries: usize,
}

impl Default for CodeLimits {
    fn default() -> Self {
        Self {
            ttl_ms: 5 * 60_000,
            max_tries: 5,
            resend_ms: 60_000,
            max_sends_per_hour: 5,
            max_entries: 100_000,
        }
    }
}

#[derive(Debug)]
struct CodeEntry {
    code: Option<String>,
    expires_ms: i64,
    tries_left: u32,
    sends: VecDeque<i64>,
}

/// Live verification codes by the keyed hash of the number. Bounded: when full, entries with
/// nothing live (no code, no send in the last hour) are dropped; otherwise new numbers are
/// answered [`CodeRefusal::Busy`] — never does a new number push out another's limits.
#[derive(Debug)]
pub struct CodeBook {
    limits: CodeLimits,
    entries: HashMap<String, CodeEntry>,
}

const HOUR_MS: i64 = 3_600_000;

impl CodeBook {
    pub fn new(limits: CodeLimits) -> Self {
        Self {
            limits,
            entries: HashMap::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn prune(&mut self, now_ms: i64) {
        self.entries.retain(|_, e| {
            e.sends.back().is_some_and(|t| now_ms - t < HOUR_MS)
                || (e.code.is_some() && e.expires_ms > now_ms)
        });
    }

    /// Records that `code` is being sent to the number `key`, or says why not.
    pub fn issue(&mut self, key: &str, code: String, now_ms: i64) -> Result<(), CodeRefusal> {
        if !self.entries.contains_key(key) && self.entries.len() >= self.limits.max_entries {
            self.prune(now_ms);
            if self.entries.len() >= self.limits.max_entries {
                return Err(CodeRefusal::Busy);
            }
        }
        let limits = self.limits;
        let entry = self.entries.entry(key.to_owned()).or_insert(CodeEntry {
            code: None,
            expires_ms: 0,
            tries_left: 0,
            sends: VecDeque::new(),
        });
        while entry.sends.front().is_some_and(|t| now_ms - t >= HOUR_MS) {
            entry.sends.pop_front();
        }
        if let Some(last) = entry.sends.back()
            && now_ms - last < limits.resend_ms
        {
            return Err(CodeRefusal::ResendTooSoon {
                wait_secs: secs_until(last + limits.resend_ms, now_ms),
            });
        }
        if entry.sends.len() >= limits.max_sends_per_hour {
            let first = entry.sends.front().copied().unwrap_or(now_ms);
            return Err(CodeRefusal::TooManySends {
                wait_secs: secs_until(first + HOUR_MS, now_ms),
            });
        }
        entry.sends.push_back(now_ms);
        entry.code = Some(code);
        entry.expires_ms = now_ms + limits.ttl_ms;
        entry.tries_left = limits.max_tries;
        Ok(())
    }

    /// Checks a code without using it up (a wrong one costs a try).
    pub fn check(&mut self, key: &str, code: &str, now_ms: i64) -> Result<(), CodeRefusal> {
        let entry = self.entries.get_mut(key).ok_or(CodeRefusal::NoCode)?;
        let Some(expected) = entry.code.as_deref() else {
            return Err(CodeRefusal::NoCode);
        };
        if entry.expires_ms <= now_ms {
            entry.code = None;
            return Err(CodeRefusal::Expired);
        }
        if entry.tries_left == 0 {
            return Err(CodeRefusal::TooManyTries);
        }
        if constant_time_eq(expected.as_bytes(), code.trim().as_bytes()) {
            return Ok(());
        }
        entry.tries_left -= 1;
        if entry.tries_left == 0 {
            entry.code = None;
            return Err(CodeRefusal::TooManyTries);
        }
        Err(CodeRefusal::Wrong {
            tries_left: entry.tries_left,
        })
    }

    /// Uses the code up (after the booking it allowed was saved).
    pub fn consume(&mut self, key: &str) {
        if let Some(e) = self.entries.get_mut(key) {
            e.code = None;
        }
    }
}

fn secs_until(at_ms: i64, now_ms: i64) -> u64 {
    u64::try_from((at_ms - now_ms + 999) / 1000)
        .unwrap_or(0)
        .max(1)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Counts events per key within a sliding window, bounded in keys. Used for failed check-ins
/// per kiosk and requests per address or number: `hit` says whether the key is still within
/// its limit. When the table is full and nothing has expired, unknown keys are refused (the
/// caller answers "busy"), so a flood of new keys cannot wipe the counts of known ones.
#[derive(Debug)]
pub struct WindowCounter {
    limit: usize,
    window_ms: i64,
    max_keys: usize,
    hits: HashMap<String, VecDeque<i64>>,
}

/// What [`WindowCounter::hit`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    Yes,
    /// Over the limit; the oldest counted event leaves the window in this many seconds.
    No {
        wait_secs: u64,
    },
    /// The table is full.
    Busy,
}

impl WindowCounter {
    pub fn new(limit: usize, window_ms: i64, max_keys: usize) -> Self {
        Self {
            limit,
            window_ms,
            max_keys,
            hits: HashMap::new(),
        }
    }

    fn trim(&mut self, key: &str, now_ms: i64) -> usize {
        let window = self.window_ms;
        match self.hits.get_mut(key) {
            Some(q) => {
                while q.front().is_some_and(|t| now_ms - t >= window) {
                    q.pop_front();
                }
                q.len()
            }
            None => 0,
        }
    }

    /// Whether `key` is over its limit now, without counting anything.
    pub fn blocked(&mut self, key: &str, now_ms: i64) -> Option<u64> {
        if self.trim(key, now_ms) >= self.limit {
            let first = self.hits.get(key).and_then(|q| q.front().copied());
            return Some(secs_until(first.unwrap_or(now_ms) + self.window_ms, now_ms));
        }
        None
    }

    /// Counts one event for `key` if it is within its limit.
    pub fn hit(&mut self, key: &str, now_ms: i64) -> Admit {
        if let Some(wait_secs) = self.blocked(key, now_ms) {
            return Admit::No { wait_secs };
        }
        if !self.hits.contains_key(key) && self.hits.len() >= self.max_keys {
            let window = self.window_ms;
            self.hits
                .retain(|_, q| q.back().is_some_and(|t| now_ms - t < window));
            if self.hits.len() >= self.max_keys {
                return Admit::Busy;
            }
        }
        self.hits
            .entry(key.to_owned())
            .or_default()
            .push_back(now_ms);
        Admit::Yes
    }

    /// Forgets a key's events (a successful check-in clears the kiosk's failures).
    pub fn clear(&mut self, key: &str) {
        self.hits.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booking_codes_avoid_look_alike_characters() {
        for _ in 0..200 {
            let code = new_booking_code();
            assert_eq!(code.len(), CODE_LEN);
            assert!(!code.contains(['0', 'O', '1', 'I']), "{code}");
            assert_eq!(normalise_code(&code.to_lowercase()), Some(code.clone()));
        }
        assert_eq!(normalise_code("ABCD-EFGH"), Some("ABCDEFGH".into()));
        assert_eq!(normalise_code("ABCDEFG0"), None);
        assert_eq!(normalise_code("ABCDEFG"), None);
        assert_eq!(qr_payload("ABCDEFGH"), "RVWB1:ABCDEFGH");
    }

    #[test]
    fn mobile_numbers_and_names_are_checked_and_masked() {
        assert_eq!(
            normalise_mobile("138 1234-5678"),
            Some("13812345678".into())
        );
        assert_eq!(normalise_mobile("12812345678"), None);
        assert_eq!(normalise_mobile("1381234567"), None);
        assert_eq!(normalise_mobile("1381234567x"), None);
        assert_eq!(mask_mobile("13812345678"), "138****5678");
        assert_eq!(mask_name("张三"), "张*");
        assert_eq!(mask_name("欧阳娜娜"), "欧***");
        assert_eq!(mask_name("李"), "李*");
        assert_eq!(normalise_name("  王小明 "), Some("王小明".into()));
        assert_eq!(normalise_name(""), None);
        assert_eq!(normalise_name("<script>"), None);
        assert_eq!(normalise_name(&"长".repeat(21)), None);
    }

    #[test]
    fn check_in_keys_are_read_from_a_scan_or_typing() {
        assert_eq!(
            parse_check_in_key("RVWB1:ABCDEFGH"),
            Some(CheckInKey::Qr {
                code: "ABCDEFGH".into()
            })
        );
        assert_eq!(
            parse_check_in_key("rvwb1:abcdefgh"),
            Some(CheckInKey::Qr {
                code: "ABCDEFGH".into()
            })
        );
        assert_eq!(
            parse_check_in_key("5678 abcd-efgh"),
            Some(CheckInKey::Typed {
                last4: "5678".into(),
                code: "ABCDEFGH".into()
            })
        );
        assert_eq!(parse_check_in_key("567X ABCDEFGH"), None);
        assert_eq!(parse_check_in_key("ABCDEFGH"), None);
        assert_eq!(parse_check_in_key("RVWB1:"), None);
        assert_eq!(parse_check_in_key("张三四五ABCDEFGH"), None);
    }

    #[test]
    fn verification_codes_expire_allow_five_tries_and_limit_resends() {
        let mut book = CodeBook::new(CodeLimits::default());
        assert_eq!(book.check("n", "123456", 0), Err(CodeRefusal::NoCode));
        book.issue("n", "123456".into(), 0).expect("first send");
        assert_eq!(
            book.issue("n", "654321".into(), 30_000),
            Err(CodeRefusal::ResendTooSoon { wait_secs: 30 })
        );
        assert_eq!(book.check("n", "123456", 1000), Ok(()));
        // Four wrong tries are told how many are left; the fifth ends the code.
        for left in (1..=4).rev() {
            assert_eq!(
                book.check("n", "000000", 2000),
                Err(CodeRefusal::Wrong { tries_left: left })
            );
        }
        assert_eq!(
            book.check("n", "000000", 2000),
            Err(CodeRefusal::TooManyTries)
        );
        assert_eq!(book.check("n", "123456", 2000), Err(CodeRefusal::NoCode));
        // A new code after the interval; it lapses after five minutes.
        book.issue("n", "222222".into(), 60_000).expect("resend");
        assert_eq!(
            book.check("n", "222222", 60_000 + 300_000),
            Err(CodeRefusal::Expired)
        );
        // Five sends an hour.
        for i in 2..5 {
            book.issue("n", "333333".into(), i * 60_000).expect("send");
        }
        assert!(matches!(
            book.issue("n", "444444".into(), 5 * 60_000),
            Err(CodeRefusal::TooManySends { .. })
        ));
        book.issue("n", "555555".into(), HOUR_MS)
            .expect("an hour later");
        assert_eq!(book.check("n", "555555", HOUR_MS), Ok(()));
        book.consume("n");
        assert_eq!(book.check("n", "555555", HOUR_MS), Err(CodeRefusal::NoCode));
    }

    #[test]
    fn a_full_code_book_refuses_new_numbers_instead_of_forgetting_limits() {
        let mut book = CodeBook::new(CodeLimits {
            max_entries: 2,
            ..CodeLimits::default()
        });
        book.issue("a", "1".into(), 0).expect("a");
        book.issue("b", "2".into(), 0).expect("b");
        assert_eq!(book.issue("c", "3".into(), 1000), Err(CodeRefusal::Busy));
        // "a" keeps its resend limit.
        assert!(matches!(
            book.issue("a", "4".into(), 1000),
            Err(CodeRefusal::ResendTooSoon { .. })
        ));
        // An hour later both are stale and make room.
        book.issue("c", "3".into(), HOUR_MS + 1)
            .expect("room again");
        assert_eq!(book.len(), 1);
    }

    #[test]
    fn window_counter_limits_per_key_and_stays_bounded() {
        let mut c = WindowCounter::new(3, 10_000, 2);
        for _ in 0..3 {
            assert_eq!(c.hit("k", 0), Admit::Yes);
        }
        assert_eq!(c.hit("k", 5000), Admit::No { wait_secs: 5 });
        assert_eq!(c.hit("k", 10_000), Admit::Yes);
        assert_eq!(c.hit("other", 10_000), Admit::Yes);
        assert_eq!(c.hit("third", 10_000), Admit::Busy);
        c.clear("other");
        assert_eq!(c.hit("third", 10_000), Admit::Yes);
    }
}
