//! Network address rules: CIDR blocks for source allowlists and trusted
//! proxies, and a token bucket for per-partner rate limits. Pure: the clock
//! is passed in.

use std::fmt;
use std::net::IpAddr;

/// An address block such as `203.0.113.0/24` or `2001:db8::/32` (a bare
/// address is a block of one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `addr[/prefix]`; the error says what is wrong.
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let net: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("{text:?} is not an IP address or CIDR block"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{text:?}: the prefix must be 0 to {max}"))?,
        };
        Ok(Cidr { net, prefix })
    }

    /// Whether `ip` lies in the block (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

/// Whether `ip` is in any of `blocks`.
pub fn allowed(blocks: &[Cidr], ip: IpAddr) -> bool {
    blocks.iter().any(|b| b.contains(ip))
}

/// The client's address: the peer, unless the peer is a trusted proxy; then
/// the right-most `X-Forwarded-For` address that is not a trusted proxy (the
/// ones to its left could be forged by the client). With no trusted proxies,
/// `X-Forwarded-For` is never believed.
pub fn client_ip(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[Cidr]) -> IpAddr {
    if !allowed(trusted, peer) {
        return peer;
    }
    let Some(chain) = forwarded_for else {
        return peer;
    };
    let mut client = peer;
    for hop in chain.rsplit(',') {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) => {
                client = ip;
                if !allowed(trusted, ip) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    client
}

/// A token bucket as a generic cell rate: `per_s` requests a second on
/// average, `burst` at once. Integer nanoseconds; no float.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub per_s: u32,
    pub burst: u32,
}

impl Rate {
    fn interval_ns(&self) -> u64 {
        1_000_000_000 / u64::from(self.per_s.max(1))
    }

    /// Admits one request at `now_ns` given the bucket's state `tat_ns` (the
    /// theoretical arrival time, updated in place); `Err` carries the
    /// nanoseconds to wait.
    pub fn admit(&self, tat_ns: &mut u64, now_ns: u64) -> Result<(), u64> {
        let interval = self.interval_ns();
        let tolerance = interval.saturating_mul(u64::from(self.burst.max(1)) - 1);
        let tat = (*tat_ns).max(now_ns);
        if tat - now_ns > tolerance {
            return Err(tat - now_ns - tolerance);
        }
        *tat_ns = tat + interval;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn blocks_contain_their_addresses() {
        let b = Cidr::parse("203.0.113.0/24").unwrap();
        assert!(b.contains(ip("203.0.113.9")));
        assert!(!b.contains(ip("203.0.114.9")));
        assert!(b.contains(ip("::ffff:203.0.113.9")));
        let v6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(v6.contains(ip("2001:db8:1::1")));
        assert!(!v6.contains(ip("2001:db9::1")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(Cidr::parse("127.0.0.1").unwrap().contains(ip("127.0.0.1")));
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("nope").is_err());
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted = [Cidr::parse("10.0.0.0/8").unwrap()];
        let xff = Some("198.51.100.7, 10.0.0.2");
        assert_eq!(client_ip(ip("10.0.0.1"), xff, &trusted), ip("198.51.100.7"));
        assert_eq!(client_ip(ip("192.0.2.1"), xff, &trusted), ip("192.0.2.1"));
        assert_eq!(client_ip(ip("10.0.0.1"), xff, &[]), ip("10.0.0.1"));
        // A forged left-most entry is not taken.
        let forged = Some("1.2.3.4, 198.51.100.7");
        assert_eq!(
            client_ip(ip("10.0.0.1"), forged, &trusted),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn the_bucket_allows_a_burst_then_the_rate() {
        let r = Rate {
            per_s: 10,
            burst: 3,
        };
        let mut tat = 0;
        let t0 = 1_000_000_000;
        for _ in 0..3 {
            assert!(r.admit(&mut tat, t0).is_ok());
        }
        let wait = r.admit(&mut tat, t0).unwrap_err();
        assert!(wait > 0 && wait <= 100_000_000, "{wait}");
        assert!(r.admit(&mut tat, t0 + 100_000_000).is_ok());
        assert!(r.admit(&mut tat, t0 + 100_000_000).is_err());
    }
}
