//! Configuration: TOML file + `COUPON_LEDGER_*` environment + flags → one validated [`Config`] (docs/operations.md, configuration).

use std::path::{Path, PathBuf};

use serde::Deserialize;
use time::UtcOffset;

use crate::domain::net::{Cidr, Rate};
use crate::domain::time::parse_offset;
use crate::sign::{SignFields, SignRule};

/// How durable a commit is: SQLite's `synchronous` setting (the config key
/// `durability`; its old name `sync` is still read, with a warning).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// fsync on every commit: an acknowledged write survives power loss.
    Full,
    /// fsync at checkpoints only: survives a process crash, not power loss.
    Normal,
}

/// One caller of the partner APIs: platform API, coupon query, voucher gateway.
#[derive(Debug, Clone)]
pub struct Partner {
    pub api_key: String,
    pub secret: String,
    pub name: String,
    pub sign: SignRule,
    /// Signed calls are taken only from these sources; empty: from anywhere.
    pub allow_ips: Vec<Cidr>,
    /// The partner's rate limit, when set.
    pub rate: Option<Rate>,
}

/// What a named operator may do through the admin API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `GET` (and `HEAD`) only.
    Read,
    /// Every admin call.
    Write,
}

impl Role {
    /// The config's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Write => "write",
        }
    }
}

/// One named operator of the admin API (`[[admins]]`).
#[derive(Debug, Clone)]
pub struct Admin {
    /// Written to the journal with every change the operator makes.
    pub name: String,
    /// The bearer token.
    pub token: String,
    pub role: Role,
}

/// The operator name `admin_token` stands for.
pub const ADMIN_TOKEN_OPERATOR: &str = "admin";
/// The longest operator name, in characters.
pub const MAX_OPERATOR_NAME: usize = 64;

/// Where the sync calls to the platform go.
#[derive(Debug, Clone)]
pub struct Platform {
    pub base_url: String,
    pub api_key: String,
    pub secret: String,
    pub sign: SignRule,
    pub max_attempts: u32,
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
}

/// The whole validated configuration of a running ledger.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: String,
    pub db: PathBuf,
    pub utc_offset: UtcOffset,
    /// The single operator token: operator `admin`, role write. Empty: none
    /// (only `[[admins]]`).
    pub admin_token: String,
    /// Named operators (`[[admins]]`).
    pub admins: Vec<Admin>,
    pub merchant_id: String,
    /// SQLite's `synchronous` setting (config key `durability`).
    pub durability: Durability,
    pub timestamp_window_s: i64,
    pub sweep_interval_s: u64,
    /// Coupons expired per sweeper transaction.
    pub sweep_batch: i64,
    pub cancel_window_s: i64,
    /// Delivered and abandoned sync calls are deleted this many days after they
    /// became final (the journal is kept).
    pub outbox_retention_days: i64,
    pub partners: Vec<Partner>,
    pub platform: Option<Platform>,
    /// True for the embedded default: the demo partner and admin token live in the database.
    pub demo: bool,
    /// When set, `/admin/*` is served only on this address (and answers 404 on `listen`).
    pub admin_listen: Option<String>,
    /// HTTPS on `listen` with this certificate and key (PEM files).
    pub tls: Option<(PathBuf, PathBuf)>,
    /// HTTPS on `listen` with a throwaway certificate made at start and
    /// written beside the database (`serve --tls-self-signed`); never with `tls`.
    pub tls_self_signed: bool,
    /// Plain HTTP beside HTTPS (for a local proxy or health checks).
    pub http_listen: Option<String>,
    /// `/admin/*` only from these sources; empty: from anywhere.
    pub admin_allow_ips: Vec<Cidr>,
    /// Peers whose `X-Forwarded-For` is believed; empty: nobody's.
    pub trusted_proxies: Vec<Cidr>,
    /// SIGTERM/SIGINT: how long in-flight work may take before the process exits.
    pub shutdown_grace_s: u64,
    /// `/healthz` reports `degraded` when the oldest pending sync call is older than this.
    pub health_max_pending_age_s: u64,
    /// Most write jobs the writer folds into one transaction (group commit);
    /// an advanced setting for benchmarks: 1 turns group commit off.
    pub write_batch_max: usize,
    /// Most live connections on each listener; one more is answered 503.
    pub max_connections: usize,
    /// Most live connections from one client address on each listener.
    pub max_connections_per_ip: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<String>,
    db: Option<String>,
    utc_offset: Option<String>,
    admin_token: Option<String>,
    merchant_id: Option<String>,
    durability: Option<String>,
    /// The old name of `durability`, read with a warning: "sync" elsewhere
    /// means sending changes to the platform.
    sync: Option<String>,
    timestamp_window_s: Option<i64>,
    sweep_interval_s: Option<u64>,
    sweep_batch: Option<i64>,
    cancel_window_s: Option<i64>,
    admin_listen: Option<String>,
    admin_allow_ips: Option<Vec<String>>,
    trusted_proxies: Option<Vec<String>>,
    tls_cert: Option<String>,
    tls_key: Option<String>,
    http_listen: Option<String>,
    shutdown_grace_s: Option<u64>,
    health_max_pending_age_s: Option<u64>,
    outbox_retention_days: Option<i64>,
    write_batch_max: Option<usize>,
    max_connections: Option<usize>,
    max_connections_per_ip: Option<usize>,
    #[serde(default)]
    partners: Vec<RawPartner>,
    platform: Option<RawPlatform>,
    #[serde(default)]
    admins: Vec<RawAdmin>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    name: String,
    token: Option<String>,
    role: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPartner {
    api_key: String,
    secret: Option<String>,
    name: Option<String>,
    sign_fields: Option<String>,
    sign_key_name: Option<String>,
    allow_ips: Option<Vec<String>>,
    rate_limit_per_s: Option<u32>,
    burst: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlatform {
    base_url: String,
    api_key: String,
    secret: Option<String>,
    sign_fields: Option<String>,
    sign_key_name: Option<String>,
    max_attempts: Option<u32>,
    retry_base_ms: Option<u64>,
    retry_max_ms: Option<u64>,
}

/// The most `max_connections` may be: each connection is a thread.
pub const MAX_CONNECTIONS: usize = 16_384;

const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
const DEFAULT_DB: &str = "ledger.db";

impl Config {
    /// The embedded default of `coupon-ledger serve` with no config file.
    pub fn embedded_default() -> Config {
        Config {
            listen: DEFAULT_LISTEN.into(),
            db: PathBuf::from(DEFAULT_DB),
            utc_offset: UtcOffset::from_hms(8, 0, 0).unwrap_or(UtcOffset::UTC),
            admin_token: String::new(),
            admins: Vec::new(),
            merchant_id: "88888888".into(),
            durability: Durability::Full,
            timestamp_window_s: 300,
            sweep_interval_s: 60,
            sweep_batch: 100,
            cancel_window_s: 3600,
            outbox_retention_days: 30,
            partners: Vec::new(),
            platform: None,
            demo: true,
            admin_listen: None,
            tls: None,
            tls_self_signed: false,
            http_listen: None,
            admin_allow_ips: Vec::new(),
            trusted_proxies: Vec::new(),
            shutdown_grace_s: 10,
            health_max_pending_age_s: 600,
            write_batch_max: crate::store::DEFAULT_MAX_BATCH,
            max_connections: crate::http::Limits::default().max_connections,
            max_connections_per_ip: crate::http::Limits::default().max_connections_per_ip,
        }
    }

    /// Reads and validates a config file, taking secrets missing from it from the environment.
    pub fn from_file(path: &Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
        let config = Config::from_toml(&text, &|name| std::env::var(name).ok())
            .map_err(|e| format!("config file {}: {e}", path.display()))?;
        warn_if_readable_by_others(path);
        Ok(config)
    }

    /// Parses TOML text; `env` looks up `COUPON_LEDGER_*` variables.
    pub fn from_toml(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, String> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| one_line(&e.to_string()))?;
        let base = Config::embedded_default();
        let utc_offset = match raw.utc_offset {
            Some(s) => parse_offset(&s)?,
            None => base.utc_offset,
        };
        let admin_token = raw
            .admin_token
            .or_else(|| env("COUPON_LEDGER_ADMIN_TOKEN"))
            .filter(|t| !t.is_empty());
        let admins = admins(raw.admins, admin_token.as_deref(), env)?;
        let admin_token = match admin_token {
            Some(t) => t,
            None if !admins.is_empty() => String::new(),
            None => {
                return Err(
                    "admin_token is missing (set it in the file or COUPON_LEDGER_ADMIN_TOKEN)"
                        .into(),
                )
            }
        };
        let durability = durability(raw.durability, raw.sync)?;
        let timestamp_window_s = raw.timestamp_window_s.unwrap_or(base.timestamp_window_s);
        if timestamp_window_s < 1 {
            return Err("timestamp_window_s: must be at least 1".into());
        }
        let sweep_interval_s = raw.sweep_interval_s.unwrap_or(base.sweep_interval_s);
        if sweep_interval_s < 1 {
            return Err("sweep_interval_s: must be at least 1".into());
        }
        let sweep_batch = raw.sweep_batch.unwrap_or(base.sweep_batch);
        if !(1..=100_000).contains(&sweep_batch) {
            return Err("sweep_batch: must be between 1 and 100000".into());
        }
        let cancel_window_s = raw.cancel_window_s.unwrap_or(base.cancel_window_s);
        if cancel_window_s < 0 {
            return Err("cancel_window_s: must not be negative".into());
        }
        let shutdown_grace_s = raw.shutdown_grace_s.unwrap_or(base.shutdown_grace_s);
        if !(1..=3600).contains(&shutdown_grace_s) {
            return Err("shutdown_grace_s: must be between 1 and 3600".into());
        }
        let health_max_pending_age_s = raw
            .health_max_pending_age_s
            .unwrap_or(base.health_max_pending_age_s);
        if health_max_pending_age_s < 1 {
            return Err("health_max_pending_age_s: must be at least 1".into());
        }
        let write_batch_max = raw.write_batch_max.unwrap_or(base.write_batch_max);
        if !(1..=4096).contains(&write_batch_max) {
            return Err("write_batch_max: must be between 1 and 4096".into());
        }
        let max_connections = raw.max_connections.unwrap_or(base.max_connections);
        if !(1..=MAX_CONNECTIONS).contains(&max_connections) {
            return Err(format!(
                "max_connections: must be between 1 and {MAX_CONNECTIONS}"
            ));
        }
        let max_connections_per_ip = raw
            .max_connections_per_ip
            .unwrap_or(base.max_connections_per_ip.min(max_connections));
        if !(1..=max_connections).contains(&max_connections_per_ip) {
            return Err(format!(
                "max_connections_per_ip: must be between 1 and max_connections ({max_connections})"
            ));
        }
        if let Some(a) = &raw.admin_listen {
            if a.is_empty() {
                return Err(
                    "admin_listen: must not be empty (leave it out to serve /admin/* on listen)"
                        .into(),
                );
            }
        }
        let outbox_retention_days = raw
            .outbox_retention_days
            .unwrap_or(base.outbox_retention_days);
        if !(1..=36_500).contains(&outbox_retention_days) {
            return Err("outbox_retention_days: must be between 1 and 36500".into());
        }
        let mut partners: Vec<Partner> = Vec::new();
        for (i, p) in raw.partners.into_iter().enumerate() {
            if p.api_key.is_empty() {
                return Err(format!("partners[{i}].api_key: must not be empty"));
            }
            if partners.iter().any(|q| q.api_key == p.api_key) {
                return Err(format!(
                    "partners[{i}].api_key: {:?} appears twice",
                    p.api_key
                ));
            }
            let var = format!("COUPON_LEDGER_PARTNER_SECRET_{}", env_suffix(&p.api_key));
            let secret = p
                .secret
                .or_else(|| env(&var))
                .filter(|s| !s.is_empty())
                .ok_or_else(|| {
                    format!("partners[{i}].secret is missing (set it in the file or {var})")
                })?;
            let sign = sign_rule(p.sign_fields, p.sign_key_name, &format!("partners[{i}]"))?;
            let allow_ips = cidrs(p.allow_ips, &format!("partners[{i}].allow_ips"))?;
            let rate = match (p.rate_limit_per_s, p.burst) {
                (None, None) => None,
                (None, Some(_)) => {
                    return Err(format!(
                        "partners[{i}].burst: needs rate_limit_per_s as well"
                    ))
                }
                (Some(per_s), burst) => {
                    if !(1..=1_000_000).contains(&per_s) {
                        return Err(format!(
                            "partners[{i}].rate_limit_per_s: must be between 1 and 1000000"
                        ));
                    }
                    let burst = burst.unwrap_or(per_s);
                    if !(1..=10_000_000).contains(&burst) {
                        return Err(format!(
                            "partners[{i}].burst: must be between 1 and 10000000"
                        ));
                    }
                    Some(Rate { per_s, burst })
                }
            };
            partners.push(Partner {
                name: p.name.unwrap_or_else(|| p.api_key.clone()),
                api_key: p.api_key,
                secret,
                sign,
                allow_ips,
                rate,
            });
        }
        let platform = match raw.platform {
            None => None,
            Some(p) => {
                if !(p.base_url.starts_with("http://") || p.base_url.starts_with("https://")) {
                    return Err("platform.base_url: must start with http:// or https://".into());
                }
                let secret = p
                    .secret
                    .or_else(|| env("COUPON_LEDGER_PLATFORM_SECRET"))
                    .filter(|s| !s.is_empty())
                    .ok_or("platform.secret is missing (set it in the file or COUPON_LEDGER_PLATFORM_SECRET)")?;
                let retry_base_ms = p.retry_base_ms.unwrap_or(1000).max(1);
                let retry_max_ms = p.retry_max_ms.unwrap_or(600_000);
                const WEEK_MS: u64 = 7 * 86_400_000;
                if retry_max_ms > WEEK_MS {
                    return Err("platform.retry_max_ms: must be at most a week (604800000)".into());
                }
                if retry_max_ms < retry_base_ms {
                    return Err("platform.retry_max_ms: must not be below retry_base_ms".into());
                }
                Some(Platform {
                    base_url: p.base_url.trim_end_matches('/').to_string(),
                    api_key: p.api_key,
                    secret,
                    sign: sign_rule(p.sign_fields, p.sign_key_name, "platform")?,
                    max_attempts: p.max_attempts.unwrap_or(20).max(1),
                    retry_base_ms,
                    retry_max_ms,
                })
            }
        };
        Ok(Config {
            listen: raw.listen.unwrap_or(base.listen),
            db: raw.db.map(PathBuf::from).unwrap_or(base.db),
            utc_offset,
            admin_token,
            admins,
            merchant_id: raw.merchant_id.unwrap_or(base.merchant_id),
            durability,
            timestamp_window_s,
            sweep_interval_s,
            sweep_batch,
            cancel_window_s,
            outbox_retention_days,
            partners,
            platform,
            demo: false,
            admin_listen: raw.admin_listen,
            tls: match (raw.tls_cert.clone(), raw.tls_key.clone()) {
                (None, None) => None,
                (Some(c), Some(k)) if !c.is_empty() && !k.is_empty() => {
                    Some((PathBuf::from(c), PathBuf::from(k)))
                }
                _ => return Err("tls_cert and tls_key: give both, or neither".into()),
            },
            tls_self_signed: false,
            // Checked against the certificate at start (`check_tls_choice`),
            // since `serve --tls-self-signed` may be what provides it.
            http_listen: raw.http_listen,
            admin_allow_ips: cidrs(raw.admin_allow_ips, "admin_allow_ips")?,
            trusted_proxies: cidrs(raw.trusted_proxies, "trusted_proxies")?,
            shutdown_grace_s,
            health_max_pending_age_s,
            write_batch_max,
            max_connections,
            max_connections_per_ip,
        })
    }

    /// Serves HTTPS with a throwaway certificate (`--tls-self-signed`). A
    /// config that names its own certificate is refused: which one would be
    /// served should never be a guess.
    pub fn use_self_signed(&mut self) -> Result<(), String> {
        self.tls_self_signed = true;
        self.check_tls_choice()
    }

    /// At most one certificate: `tls_cert`/`tls_key`, or the self-signed one;
    /// and `http_listen` only beside HTTPS on `listen`, from either.
    pub fn check_tls_choice(&self) -> Result<(), String> {
        if self.tls_self_signed && self.tls.is_some() {
            return Err(
                "--tls-self-signed: the config sets tls_cert and tls_key already; use one or the other"
                    .into(),
            );
        }
        if self.http_listen.is_some() && self.tls.is_none() && !self.tls_self_signed {
            return Err(
                "http_listen: only with HTTPS on listen (tls_cert and tls_key, or serve --tls-self-signed); listen is plain HTTP already"
                    .into(),
            );
        }
        Ok(())
    }

    /// The partner with this api_key.
    pub fn partner(&self, api_key: &str) -> Option<&Partner> {
        self.partners.iter().find(|p| p.api_key == api_key)
    }

    /// Every operator of the admin API: the `[[admins]]`, then `admin_token`
    /// as operator `admin` with role write (when set).
    pub fn operators(&self) -> Vec<Admin> {
        let mut all = self.admins.clone();
        if !self.admin_token.is_empty() {
            all.push(Admin {
                name: ADMIN_TOKEN_OPERATOR.into(),
                token: self.admin_token.clone(),
                role: Role::Write,
            });
        }
        all
    }

    /// The operator whose token is `given`. Every token is compared in
    /// constant time, and all of them are compared whichever matches, so the
    /// time taken does not tell which token (or how much of one) was right.
    pub fn operator(&self, given: &str) -> Option<Admin> {
        let mut found = None;
        for op in self.operators() {
            let same = crate::sign::constant_time_eq(given.as_bytes(), op.token.as_bytes());
            if same && found.is_none() {
                found = Some(op);
            }
        }
        found
    }
}

/// `durability` ("full" or "normal", default full), or its deprecated old
/// name `sync` (warned about at start); both at once is refused.
fn durability(new: Option<String>, old: Option<String>) -> Result<Durability, String> {
    let (key, value) = match (new, old) {
        (Some(_), Some(_)) => {
            return Err(
                "durability and sync: give only durability (sync is its deprecated old name)"
                    .into(),
            )
        }
        (Some(v), None) => ("durability", Some(v)),
        (None, Some(v)) => {
            log::warn!("config key sync is deprecated: rename it to durability (same values)");
            ("sync", Some(v))
        }
        (None, None) => ("durability", None),
    };
    match value.as_deref() {
        None | Some("full") => Ok(Durability::Full),
        Some("normal") => Ok(Durability::Normal),
        Some(other) => Err(format!("{key}: {other:?} is not \"full\" or \"normal\"")),
    }
}

/// Validates `[[admins]]`: names and tokens present, unique (also against
/// `admin_token`, which is operator `admin`), roles `read` or `write`. A
/// token missing from the file comes from `COUPON_LEDGER_ADMIN_TOKEN_<NAME>`
/// (`<NAME>` by [`env_suffix`]).
fn admins(
    raw: Vec<RawAdmin>,
    admin_token: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<Admin>, String> {
    let mut admins: Vec<Admin> = Vec::new();
    for (i, a) in raw.into_iter().enumerate() {
        let at = format!("admins[{i}]");
        if a.name.trim().is_empty() {
            return Err(format!("{at}.name: must not be empty"));
        }
        if a.name.chars().count() > MAX_OPERATOR_NAME {
            return Err(format!(
                "{at}.name: longer than {MAX_OPERATOR_NAME} characters"
            ));
        }
        if a.name.chars().any(char::is_control) {
            return Err(format!("{at}.name: must not hold control characters"));
        }
        if admins.iter().any(|b| b.name == a.name) {
            return Err(format!("{at}.name: {:?} appears twice", a.name));
        }
        if admin_token.is_some() && a.name == ADMIN_TOKEN_OPERATOR {
            return Err(format!(
                "{at}.name: {ADMIN_TOKEN_OPERATOR:?} is the operator of admin_token; choose another name"
            ));
        }
        let var = format!("COUPON_LEDGER_ADMIN_TOKEN_{}", env_suffix(&a.name));
        let token = a
            .token
            .or_else(|| env(&var))
            .ok_or_else(|| format!("{at}.token is missing (set it in the file or {var})"))?;
        if token.is_empty() {
            return Err(format!("{at}.token: must not be empty"));
        }
        if token.trim() != token {
            return Err(format!("{at}.token: must not begin or end with whitespace"));
        }
        if admins.iter().any(|b| b.token == token) || admin_token == Some(token.as_str()) {
            return Err(format!(
                "{at}.token: the same token as another operator's; every operator needs its own"
            ));
        }
        let role = match a.role.as_str() {
            "read" => Role::Read,
            "write" => Role::Write,
            other => return Err(format!("{at}.role: {other:?} is not \"read\" or \"write\"")),
        };
        admins.push(Admin {
            name: a.name,
            token,
            role,
        });
    }
    Ok(admins)
}

fn sign_rule(
    fields: Option<String>,
    key_name: Option<String>,
    at: &str,
) -> Result<SignRule, String> {
    let fields = match fields.as_deref() {
        None | Some("all") => SignFields::All,
        Some("common") => SignFields::Common,
        Some(other) => {
            return Err(format!(
                "{at}.sign_fields: {other:?} is not \"all\" or \"common\""
            ))
        }
    };
    let key_name = key_name.unwrap_or_else(|| "key".into());
    if key_name.is_empty() {
        return Err(format!("{at}.sign_key_name: must not be empty"));
    }
    Ok(SignRule { fields, key_name })
}

/// The config holds secrets: say so when users outside its owner and group
/// can read or write it. The group is allowed on purpose: the service unit's
/// install makes it `0640 root:coupon-ledger`, so the service reads it and
/// nobody else does.
#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode();
        if mode & 0o007 != 0 {
            log::warn!(
                "config file {} is readable by other users (mode {:o}) and holds secrets; run: chmod o-rwx {}",
                path.display(),
                mode & 0o777,
                path.display()
            );
        }
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_: &Path) {}

/// Parses a list of address blocks, naming the key and the bad entry.
fn cidrs(list: Option<Vec<String>>, key: &str) -> Result<Vec<Cidr>, String> {
    list.unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, text)| Cidr::parse(text).map_err(|e| format!("{key}[{i}]: {e}")))
        .collect()
}

/// A partner's api_key or an operator's name as the end of an environment
/// variable's name: upper-cased, every character that is not an ASCII letter
/// or digit replaced by `_`.
fn env_suffix(api_key: &str) -> String {
    api_key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    const GOOD: &str = r#"
listen = "127.0.0.1:9000"
admin_token = "t0ken"
utc_offset = "+08:00"
[[partners]]
api_key = "K"
secret = "S"
sign_fields = "common"
sign_key_name = "secretKey"
"#;

    #[test]
    fn a_full_file_parses() {
        let c = Config::from_toml(GOOD, &no_env).unwrap();
        assert_eq!(c.listen, "127.0.0.1:9000");
        assert_eq!(c.partners[0].sign.fields, SignFields::Common);
        assert_eq!(c.partners[0].sign.key_name, "secretKey");
        assert!(!c.demo);
        assert!(c.platform.is_none());
    }

    #[test]
    fn unknown_keys_are_refused_on_one_line() {
        let e = Config::from_toml(&format!("colour = 1\n{GOOD}"), &no_env).unwrap_err();
        assert!(e.contains("colour"), "{e}");
        assert!(!e.contains('\n'));
    }

    #[test]
    fn outbox_retention_days_defaults_to_30_and_is_at_least_1() {
        assert_eq!(
            Config::from_toml(GOOD, &no_env)
                .unwrap()
                .outbox_retention_days,
            30
        );
        let seven = Config::from_toml(&format!("outbox_retention_days = 7\n{GOOD}"), &no_env);
        assert_eq!(seven.unwrap().outbox_retention_days, 7);
        for bad in ["0", "-1", "36501"] {
            let e = Config::from_toml(&format!("outbox_retention_days = {bad}\n{GOOD}"), &no_env)
                .unwrap_err();
            assert!(e.starts_with("outbox_retention_days:"), "{e}");
        }
        let e = Config::from_toml(&format!("outbox_retention_days = \"30\"\n{GOOD}"), &no_env)
            .unwrap_err();
        assert!(
            e.contains("outbox_retention_days") || e.contains("integer"),
            "{e}"
        );
    }

    #[test]
    fn a_missing_secret_is_refused_unless_the_environment_has_it() {
        let text = "admin_token = \"t\"\n[[partners]]\napi_key = \"k-1\"\n";
        let e = Config::from_toml(text, &no_env).unwrap_err();
        assert!(e.contains("COUPON_LEDGER_PARTNER_SECRET_K_1"), "{e}");
        let env = |n: &str| (n == "COUPON_LEDGER_PARTNER_SECRET_K_1").then(|| "s".to_string());
        assert_eq!(
            Config::from_toml(text, &env).unwrap().partners[0].secret,
            "s"
        );
    }

    #[test]
    fn write_batch_max_defaults_to_group_commit_and_is_bounded() {
        let c = Config::from_toml(GOOD, &no_env).unwrap();
        assert_eq!(c.write_batch_max, crate::store::DEFAULT_MAX_BATCH);
        let one = Config::from_toml(&format!("write_batch_max = 1\n{GOOD}"), &no_env).unwrap();
        assert_eq!(one.write_batch_max, 1);
        for bad in ["0", "4097"] {
            let e = Config::from_toml(&format!("write_batch_max = {bad}\n{GOOD}"), &no_env)
                .unwrap_err();
            assert!(e.contains("write_batch_max"), "{e}");
        }
    }

    #[test]
    fn connection_caps_default_to_the_servers_and_are_bounded() {
        let c = Config::from_toml(GOOD, &no_env).unwrap();
        assert_eq!((c.max_connections, c.max_connections_per_ip), (1024, 256));
        let small = Config::from_toml(&format!("max_connections = 100\n{GOOD}"), &no_env).unwrap();
        assert_eq!(
            (small.max_connections, small.max_connections_per_ip),
            (100, 100)
        );
        let both = "max_connections = 4000\nmax_connections_per_ip = 1200\n";
        let c = Config::from_toml(&format!("{both}{GOOD}"), &no_env).unwrap();
        assert_eq!((c.max_connections, c.max_connections_per_ip), (4000, 1200));
    }

    #[test]
    fn durability_is_full_or_normal_and_sync_is_its_old_name() {
        let with = |line: &str| Config::from_toml(&format!("{line}\n{GOOD}"), &no_env);
        assert_eq!(with("").unwrap().durability, Durability::Full);
        let cases = [
            ("durability = \"full\"", Durability::Full),
            ("durability = \"normal\"", Durability::Normal),
            ("sync = \"normal\"", Durability::Normal),
            ("sync = \"full\"", Durability::Full),
        ];
        for (line, want) in cases {
            assert_eq!(with(line).unwrap().durability, want, "{line}");
        }
        let e = with("durability = \"fast\"").unwrap_err();
        assert_eq!(e, "durability: \"fast\" is not \"full\" or \"normal\"");
        let e = with("sync = \"fast\"").unwrap_err();
        assert_eq!(e, "sync: \"fast\" is not \"full\" or \"normal\"");
        let e = with("durability = \"full\"\nsync = \"full\"").unwrap_err();
        assert!(
            e.starts_with("durability and sync: give only durability"),
            "{e}"
        );
        assert!(!e.contains('\n'));
    }

    #[test]
    fn admin_token_is_required() {
        assert!(Config::from_toml("", &no_env)
            .unwrap_err()
            .contains("admin_token"));
    }

    const ADMINS: &str = r#"
[[admins]]
name = "alice"
token = "alice-token"
role = "write"

[[admins]]
name = "bob"
token = "bob-token"
role = "read"
"#;

    #[test]
    fn named_operators_parse_and_admin_token_is_operator_admin() {
        let c = Config::from_toml(&format!("{GOOD}{ADMINS}"), &no_env).unwrap();
        let names: Vec<(String, Role)> = c
            .operators()
            .into_iter()
            .map(|a| (a.name, a.role))
            .collect();
        assert_eq!(
            names,
            [
                ("alice".to_string(), Role::Write),
                ("bob".to_string(), Role::Read),
                ("admin".to_string(), Role::Write)
            ]
        );
        assert_eq!(c.operator("bob-token").map(|a| a.name), Some("bob".into()));
        assert_eq!(c.operator("t0ken").map(|a| a.name), Some("admin".into()));
        assert!(c.operator("bob-toke").is_none());
        assert!(c.operator("").is_none());
    }

    #[test]
    fn an_operator_token_missing_from_the_file_comes_from_the_environment() {
        let table = "[[admins]]\nname = \"night-shift\"\nrole = \"read\"\n";
        let e = Config::from_toml(&format!("{GOOD}{table}"), &no_env).unwrap_err();
        assert_eq!(
            e,
            "admins[0].token is missing (set it in the file or COUPON_LEDGER_ADMIN_TOKEN_NIGHT_SHIFT)"
        );
        let env =
            |n: &str| (n == "COUPON_LEDGER_ADMIN_TOKEN_NIGHT_SHIFT").then(|| "n-token".to_string());
        let c = Config::from_toml(&format!("{GOOD}{table}"), &env).unwrap();
        assert_eq!(
            c.operator("n-token").map(|a| (a.name, a.role)),
            Some(("night-shift".to_string(), Role::Read))
        );
        // The file wins over the environment, as for every other secret.
        let in_file = "[[admins]]\nname = \"night-shift\"\ntoken = \"f-token\"\nrole = \"read\"\n";
        let c = Config::from_toml(&format!("{GOOD}{in_file}"), &env).unwrap();
        assert!(c.operator("n-token").is_none());
        assert!(c.operator("f-token").is_some());
        // A token from the environment passes the same rules as one in the file.
        let same =
            |n: &str| (n == "COUPON_LEDGER_ADMIN_TOKEN_NIGHT_SHIFT").then(|| "t0ken".to_string());
        let e = Config::from_toml(&format!("{GOOD}{table}"), &same).unwrap_err();
        assert!(e.contains("admins[0].token: the same token"), "{e}");
    }

    #[test]
    fn admins_alone_need_no_admin_token_but_nothing_at_all_is_refused() {
        let without = GOOD.replace("admin_token = \"t0ken\"\n", "");
        let c = Config::from_toml(&format!("{without}{ADMINS}"), &no_env).unwrap();
        assert!(c.admin_token.is_empty());
        assert_eq!(c.operators().len(), 2);
        let e = Config::from_toml(&without, &no_env).unwrap_err();
        assert_eq!(
            e,
            "admin_token is missing (set it in the file or COUPON_LEDGER_ADMIN_TOKEN)"
        );
    }

    #[test]
    fn bad_admins_are_refused_naming_the_entry() {
        let one = |name: &str, token: &str, role: &str| {
            format!("[[admins]]\nname = {name:?}\ntoken = {token:?}\nrole = {role:?}\n")
        };
        let cases = [
            (one("a", "x", "root"), "admins[0].role: \"root\" is not"),
            (one("", "x", "read"), "admins[0].name: must not be empty"),
            (one("a", "", "read"), "admins[0].token: must not be empty"),
            (
                one("a", " x", "read"),
                "admins[0].token: must not begin or end",
            ),
            (
                one("a\nb", "x", "read"),
                "admins[0].name: must not hold control",
            ),
            (
                one(&"n".repeat(65), "x", "read"),
                "admins[0].name: longer than 64",
            ),
            (
                one("admin", "x", "read"),
                "admins[0].name: \"admin\" is the operator of admin_token",
            ),
            (one("a", "t0ken", "read"), "admins[0].token: the same token"),
            (
                format!("{}{}", one("a", "x", "read"), one("a", "y", "read")),
                "admins[1].name: \"a\" appears twice",
            ),
            (
                format!("{}{}", one("a", "x", "read"), one("b", "x", "write")),
                "admins[1].token: the same token",
            ),
            (
                "[[admins]]\nname = \"a\"\ntoken = \"x\"\n".to_string(),
                "missing field `role`",
            ),
            (
                "[[admins]]\nname = \"a\"\ntoken = \"x\"\nrole = \"read\"\nextra = 1\n".to_string(),
                "unknown field `extra`",
            ),
        ];
        for (table, want) in cases {
            let e = Config::from_toml(&format!("{GOOD}{table}"), &no_env).unwrap_err();
            assert!(e.contains(want), "{table}: {e}");
        }
    }
}
