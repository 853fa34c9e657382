//! What a long command is doing, on stderr, only when stderr is a terminal:
//! one line rewritten in place (`\r`, clear to end of line) with the step and
//! the time it has taken, refreshed four times a second while the step runs.
//! Piped or redirected, nothing is written, so scripts and logs see only the
//! command's result.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// How often the line is refreshed while a step runs.
const TICK: Duration = Duration::from_millis(250);

/// A progress line for one command; [`Progress::done`] (or dropping it) clears it.
pub struct Progress {
    shared: Option<Arc<Shared>>,
    ticker: Option<JoinHandle<()>>,
}

struct Shared {
    what: String,
    step: Mutex<(String, Instant)>,
    started: Instant,
    stop: AtomicBool,
}

impl Shared {
    fn draw(&self) {
        let (step, since) = &*self.step.lock();
        let _ = write!(
            std::io::stderr().lock(),
            "\r\x1b[K{}: {step} ({:.1} s, {:.1} s in all)",
            self.what,
            since.elapsed().as_secs_f64(),
            self.started.elapsed().as_secs_f64()
        );
    }
}

impl Progress {
    /// Progress of `what` (e.g. `backup ledger.db`) when stderr is a terminal.
    pub fn new(what: &str) -> Progress {
        Self::when(std::io::stderr().is_terminal(), what)
    }

    /// Progress that shows only when `on`.
    pub fn when(on: bool, what: &str) -> Progress {
        if !on {
            return Progress {
                shared: None,
                ticker: None,
            };
        }
        let shared = Arc::new(Shared {
            what: what.to_string(),
            step: Mutex::new(("starting".into(), Instant::now())),
            started: Instant::now(),
            stop: AtomicBool::new(false),
        });
        let s = shared.clone();
        // Without the thread the line is still drawn at each step.
        let ticker = thread::Builder::new()
            .name("progress".into())
            .spawn(move || {
                while !s.stop.load(Ordering::Relaxed) {
                    s.draw();
                    thread::sleep(TICK);
                }
            })
            .ok();
        Progress {
            shared: Some(shared),
            ticker,
        }
    }

    /// Whether anything is shown.
    pub fn is_on(&self) -> bool {
        self.shared.is_some()
    }

    /// Starts the next step.
    pub fn step(&self, step: impl Into<String>) {
        if let Some(s) = &self.shared {
            *s.step.lock() = (step.into(), Instant::now());
            s.draw();
        }
    }

    /// Stops and clears the line, so the command's own output follows cleanly.
    pub fn done(mut self) {
        self.finish();
    }

    fn finish(&mut self) {
        if let Some(s) = self.shared.take() {
            s.stop.store(true, Ordering::Relaxed);
            if let Some(t) = self.ticker.take() {
                let _ = t.join();
            }
            let _ = write!(std::io::stderr().lock(), "\r\x1b[K");
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
