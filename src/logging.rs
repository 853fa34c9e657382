//! A minimal stderr logger; the level comes from `COUPON_LEDGER_LOG` (error, warn, info, debug).

use std::io::Write;

use log::{LevelFilter, Log, Metadata, Record};

struct Stderr;

impl Log for Stderr {
    fn enabled(&self, _: &Metadata) -> bool {
        true
    }
    fn log(&self, record: &Record) {
        // A closed stderr must never take a thread down: write errors are ignored.
        let _ = writeln!(
            std::io::stderr().lock(),
            "{} {}: {}",
            record.level(),
            record.target(),
            record.args()
        );
    }
    fn flush(&self) {}
}

static LOGGER: Stderr = Stderr;

/// Installs the logger once; later calls do nothing.
pub fn init() {
    let level = match std::env::var("COUPON_LEDGER_LOG").as_deref() {
        Ok("error") => LevelFilter::Error,
        Ok("info") => LevelFilter::Info,
        Ok("debug") => LevelFilter::Debug,
        Ok("off") => LevelFilter::Off,
        _ => LevelFilter::Warn,
    };
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(level);
    }
}
