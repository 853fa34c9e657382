//! Logging to stderr through `env_logger`: RFC 3339 UTC timestamps, and the
//! filter from `COUPON_LEDGER_LOG` (else `RUST_LOG`, else `info`), in the usual
//! syntax: `warn`, `INFO`, `info,coupon_ledger::http=debug`, ...
//!
//! Access lines are logged at info under the target `access`; refused
//! authentication at warn under `auth`, at most [`AUTH_LINES_PER_WINDOW`] lines
//! per [`AUTH_WINDOW`], so a flood of bad requests cannot fill the disk.

use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// The level when neither variable is set.
pub const DEFAULT_FILTER: &str = "info";
/// At most this many auth-failure lines per window; the rest are counted.
pub const AUTH_LINES_PER_WINDOW: u32 = 20;
pub const AUTH_WINDOW: Duration = Duration::from_secs(10);

/// Installs the logger once; later calls do nothing.
pub fn init() {
    let filter = std::env::var("COUPON_LEDGER_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| DEFAULT_FILTER.to_string());
    let _ = env_logger::Builder::new()
        .parse_filters(&filter)
        .format_timestamp_millis()
        .format_target(true)
        .target(env_logger::Target::Stderr)
        .try_init();
}

struct Budget {
    window_start: Option<Instant>,
    logged: u32,
    suppressed: u64,
}

static AUTH_BUDGET: Mutex<Budget> = Mutex::new(Budget {
    window_start: None,
    logged: 0,
    suppressed: 0,
});

/// Logs a refused authentication at warn, within the line budget.
pub fn auth_failure(line: std::fmt::Arguments) {
    if !log::log_enabled!(target: "auth", log::Level::Warn) {
        return;
    }
    let mut b = AUTH_BUDGET.lock();
    let now = Instant::now();
    if b.window_start
        .is_none_or(|t| now.duration_since(t) >= AUTH_WINDOW)
    {
        if b.suppressed > 0 {
            log::warn!(target: "auth", "{} more refused authentications were not logged", b.suppressed);
        }
        *b = Budget {
            window_start: Some(now),
            logged: 0,
            suppressed: 0,
        };
    }
    if b.logged < AUTH_LINES_PER_WINDOW {
        b.logged += 1;
        drop(b);
        log::warn!(target: "auth", "{line}");
    } else {
        b.suppressed += 1;
    }
}
