//! Failed admin tokens, counted per source address: after
//! [`MAX_FAILURES`] failures within [`WINDOW_MS`], that address is refused
//! (HTTP 429, code 42900, `Retry-After`) for [`BLOCK_MS`], whatever token it sends.

use std::collections::HashMap;
use std::net::IpAddr;

use parking_lot::Mutex;

use crate::domain::time::Millis;

pub const MAX_FAILURES: u32 = 10;
pub const WINDOW_MS: Millis = 60_000;
pub const BLOCK_MS: Millis = 60_000;
/// Addresses remembered at most; past this, the oldest entries are forgotten.
const MAX_TRACKED: usize = 10_000;

#[derive(Clone, Copy)]
struct Entry {
    first_ms: Millis,
    failures: u32,
    blocked_until_ms: Millis,
}

/// Failed-login bookkeeping of the admin API.
#[derive(Default)]
pub struct AdminThrottle {
    by_ip: Mutex<HashMap<IpAddr, Entry>>,
}

impl AdminThrottle {
    /// Seconds `ip` must still wait, if it is refused for now.
    pub fn blocked(&self, ip: IpAddr, now: Millis) -> Option<u64> {
        let map = self.by_ip.lock();
        let e = map.get(&ip)?;
        (e.blocked_until_ms > now).then(|| ((e.blocked_until_ms - now + 999) / 1000) as u64)
    }

    /// Counts a failure; true when it made `ip` blocked.
    pub fn failed(&self, ip: IpAddr, now: Millis) -> bool {
        let mut map = self.by_ip.lock();
        if map.len() >= MAX_TRACKED && !map.contains_key(&ip) {
            map.retain(|_, e| e.blocked_until_ms > now || now - e.first_ms < WINDOW_MS);
            if map.len() >= MAX_TRACKED {
                map.clear();
            }
        }
        let e = map.entry(ip).or_insert(Entry {
            first_ms: now,
            failures: 0,
            blocked_until_ms: 0,
        });
        if now - e.first_ms >= WINDOW_MS {
            *e = Entry {
                first_ms: now,
                failures: 0,
                blocked_until_ms: e.blocked_until_ms,
            };
        }
        e.failures += 1;
        if e.failures >= MAX_FAILURES && e.blocked_until_ms <= now {
            e.blocked_until_ms = now + BLOCK_MS;
            e.failures = 0;
            e.first_ms = now;
            return true;
        }
        false
    }

    /// A good token clears the address's failures.
    pub fn succeeded(&self, ip: IpAddr) {
        let mut map = self.by_ip.lock();
        if map.get(&ip).is_some_and(|e| e.blocked_until_ms == 0) {
            map.remove(&ip);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_blocked_after_the_limit_and_freed_after_the_block() {
        let t = AdminThrottle::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        for i in 1..MAX_FAILURES {
            assert!(!t.failed(ip, 1000 + i as i64));
            assert_eq!(t.blocked(ip, 1000 + i as i64), None);
        }
        assert!(t.failed(ip, 2000));
        assert_eq!(t.blocked(ip, 2000), Some(60));
        assert_eq!(t.blocked(other, 2000), None);
        assert_eq!(t.blocked(ip, 2000 + BLOCK_MS), None);
    }

    #[test]
    fn failures_spread_beyond_the_window_do_not_block() {
        let t = AdminThrottle::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for i in 0..(3 * MAX_FAILURES) {
            assert!(!t.failed(ip, i as i64 * (WINDOW_MS / 5)));
        }
    }
}
