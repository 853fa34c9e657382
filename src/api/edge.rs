//! The network edge, before any database work: per-partner source
//! allowlists and rate limits (a token bucket in memory), and the admin
//! allowlist. What was refused is counted for `/healthz` (and, by partner
//! name, in `/metrics` through `api::auth`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use parking_lot::Mutex;
use serde_json::{json, Value};

use super::access;
use crate::config::{Config, Partner};
use crate::domain::net::allowed;
use crate::domain::LedgerError;

#[derive(Default)]
struct PartnerEdge {
    /// The token bucket's theoretical arrival time, in ns since `Edge::started`.
    tat_ns: Mutex<u64>,
    rate_limited: AtomicU64,
    not_allowed: AtomicU64,
}

/// The edge's state: one bucket and two counters per partner.
pub struct Edge {
    started: Instant,
    partners: HashMap<String, PartnerEdge>,
    admin_not_allowed: AtomicU64,
}

impl Edge {
    pub fn new(config: &Config) -> Edge {
        Edge {
            started: Instant::now(),
            partners: config
                .partners
                .iter()
                .map(|p| (p.api_key.clone(), PartnerEdge::default()))
                .collect(),
            admin_not_allowed: AtomicU64::new(0),
        }
    }

    /// Refuses a call of `partner` from a source outside its `allow_ips`
    /// (40301). Runs right after the api key is read: an address that may
    /// not call costs nothing more.
    pub fn allow(&self, partner: &Partner, client: IpAddr) -> Result<(), LedgerError> {
        if partner.allow_ips.is_empty() || allowed(&partner.allow_ips, client) {
            return Ok(());
        }
        if let Some(state) = self.partners.get(&partner.api_key) {
            state.not_allowed.fetch_add(1, Ordering::Relaxed);
        }
        access::refused("source address not allowed", &partner.api_key);
        Err(LedgerError::SourceNotAllowed)
    }

    /// Spends one call of `partner`'s token bucket, or refuses it (42900).
    /// Callers charge only a call whose signature and timestamp passed: the
    /// bucket is the partner's, and someone who knows only its api key must
    /// not be able to empty it.
    pub fn charge(&self, partner: &Partner) -> Result<(), LedgerError> {
        let (Some(rate), Some(state)) = (partner.rate, self.partners.get(&partner.api_key)) else {
            return Ok(());
        };
        let now = self.started.elapsed().as_nanos() as u64;
        let Err(wait_ns) = rate.admit(&mut state.tat_ns.lock(), now) else {
            return Ok(());
        };
        state.rate_limited.fetch_add(1, Ordering::Relaxed);
        access::refused("rate limited", &partner.api_key);
        Err(LedgerError::RateLimited {
            retry_after_s: wait_ns.div_ceil(1_000_000_000).max(1),
        })
    }

    /// Admits an admin request from `client` (40301 when `admin_allow_ips` excludes it).
    pub fn admit_admin(&self, config: &Config, client: IpAddr) -> Result<(), LedgerError> {
        if !config.admin_allow_ips.is_empty() && !allowed(&config.admin_allow_ips, client) {
            self.admin_not_allowed.fetch_add(1, Ordering::Relaxed);
            access::refused("admin source address not allowed", "admin");
            return Err(LedgerError::SourceNotAllowed);
        }
        Ok(())
    }

    /// Each partner's limits and what was refused, for `/healthz`.
    pub fn health(&self, config: &Config) -> Value {
        let partners: Vec<Value> = config
            .partners
            .iter()
            .map(|p| {
                let state = self.partners.get(&p.api_key);
                let count = |f: fn(&PartnerEdge) -> &AtomicU64| {
                    state.map_or(0, |s| f(s).load(Ordering::Relaxed))
                };
                json!({
                    "name": p.name,
                    "allow_ips": p.allow_ips.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
                    "rate_limit_per_s": p.rate.map(|r| r.per_s),
                    "burst": p.rate.map(|r| r.burst),
                    "rate_limited": count(|s| &s.rate_limited),
                    "not_allowed": count(|s| &s.not_allowed),
                })
            })
            .collect();
        json!({
            "partners": partners,
            "admin_not_allowed": self.admin_not_allowed.load(Ordering::Relaxed),
        })
    }
}
