//! Slots for connections that have not authenticated yet (a kiosk's WebSocket before its
//! `hello` is checked), counted per source address and in total.
//!
//! Without them anyone could open thousands of sockets, send nothing, and hold the relay's
//! connection permits for the hello deadline each, shutting every kiosk and console out. With
//! them an address holds at most `limits.max_pending_per_source` such sockets and all addresses
//! together `limits.max_pending_connections`, far below `limits.max_connections`; the rest of
//! the permits stay for connections that proved who they are.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

#[derive(Debug)]
pub struct PendingSlots {
    per_source_limit: u32,
    total_limit: usize,
    inner: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    by_source: HashMap<IpAddr, u32>,
}

/// Why no slot was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// This address already holds its share.
    Source,
    /// All pending slots are taken.
    Total,
}

/// A taken slot; given back when dropped.
#[derive(Debug)]
pub struct PendingSlot {
    slots: Arc<PendingSlots>,
    source: IpAddr,
}

/// IPv6 clients are counted by their /64: one subscriber usually holds a whole /64.
fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let mut s = v6.segments();
            s[4..].fill(0);
            IpAddr::V6(s.into())
        }
    }
}

impl PendingSlots {
    pub fn new(per_source_limit: u32, total_limit: usize) -> Arc<Self> {
        Arc::new(Self {
            per_source_limit,
            total_limit,
            inner: Mutex::new(Counts::default()),
        })
    }

    pub fn try_take(self: &Arc<Self>, source: IpAddr) -> Result<PendingSlot, Refused> {
        let source = source_key(source);
        let mut c = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if c.total >= self.total_limit {
            return Err(Refused::Total);
        }
        let n = c.by_source.entry(source).or_insert(0);
        if *n >= self.per_source_limit {
            return Err(Refused::Source);
        }
        *n += 1;
        c.total += 1;
        Ok(PendingSlot {
            slots: self.clone(),
            source,
        })
    }

    /// Slots taken now (for tests and metrics).
    pub fn taken(&self) -> usize {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).total
    }
}

impl Drop for PendingSlot {
    fn drop(&mut self) {
        let mut c = self.slots.inner.lock().unwrap_or_else(|p| p.into_inner());
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.by_source.get_mut(&self.source) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                c.by_source.remove(&self.source);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_limited_per_source_and_in_total_and_given_back() {
        let slots = PendingSlots::new(2, 3);
        let a: IpAddr = "203.0.113.1".parse().expect("ip");
        let b: IpAddr = "203.0.113.2".parse().expect("ip");
        let a1 = slots.try_take(a).expect("a1");
        let _a2 = slots.try_take(a).expect("a2");
        assert_eq!(slots.try_take(a).err(), Some(Refused::Source));
        let _b1 = slots.try_take(b).expect("b1");
        assert_eq!(slots.try_take(b).err(), Some(Refused::Total));
        drop(a1);
        let _a3 = slots.try_take(a).expect("a slot given back is free again");
        assert_eq!(slots.taken(), 3);
    }

    #[test]
    fn an_ipv6_client_is_counted_by_its_64() {
        let slots = PendingSlots::new(1, 10);
        let _x = slots
            .try_take("2001:db8::1".parse().expect("ip"))
            .expect("x");
        assert_eq!(
            slots.try_take("2001:db8::ffff".parse().expect("ip")).err(),
            Some(Refused::Source)
        );
        assert!(
            slots
                .try_take("2001:db8:0:1::1".parse().expect("ip"))
                .is_ok()
        );
    }
}
