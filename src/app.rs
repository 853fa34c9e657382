//! Starting and stopping the whole server: listeners, the database lock, the
//! store, demo data, outbox dispatcher, sweeper, HTTP.
//!
//! Start order: the config is already valid; then the listen addresses are
//! bound, then the database lock is taken, then the database is opened and a
//! write is proven possible. A failing step leaves nothing new on disk from
//! the steps after it.
//!
//! Stop order (SIGTERM, SIGINT, or [`Running::shutdown`]): stop accepting,
//! answer every request already read and close idle connections, let the
//! writer commit and answer what it holds, stop the dispatcher and the
//! sweeper; all within `shutdown_grace_s`.

use std::net::{SocketAddr, TcpListener};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::api::{self, App, Surface};
use crate::config::Config;
use crate::demo;
use crate::http::self_signed::{self, Written};
use crate::http::{Limits, Server, ShutdownHandle, TlsSource};
use crate::lock::DbLock;
use crate::outbox::dispatcher::Dispatcher;
use crate::outbox::mock::MockPlatform;
use crate::outbox::{self};
use crate::store::{Store, StoreOptions};
use crate::sweeper::Sweeper;

/// A running ledger server.
pub struct Running {
    server: Server,
    admin_server: Option<Server>,
    http_server: Option<Server>,
    app: Arc<App>,
    dispatcher: Option<Dispatcher>,
    sweeper: Option<Sweeper>,
    mock: Option<MockPlatform>,
    _lock: DbLock,
    /// What the embedded default created or found, to print at start.
    pub demo: Option<demo::Demo>,
    /// The throwaway certificate of `--tls-self-signed`, to print at start.
    pub self_signed: Option<Written>,
}

impl Running {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// The address of the plain-HTTP listener beside HTTPS, when
    /// `http_listen` is set.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_server.as_ref().map(Server::local_addr)
    }

    /// The address of the admin listener, when `admin_listen` is set.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_server.as_ref().map(Server::local_addr)
    }

    /// The ledger behind the server.
    pub fn store(&self) -> &Store {
        &self.app.store
    }

    /// The configuration in force (for the embedded default, with the demo partner filled in).
    pub fn config(&self) -> &Config {
        &self.app.config
    }

    /// A handle that stops the HTTP server from another thread.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.server.shutdown_handle()
    }

    /// Stops the background outbox dispatcher; calls stay queued. For callers
    /// that deliver them one step at a time with
    /// [`deliver_due`](crate::outbox::dispatcher::deliver_due) instead.
    pub fn stop_dispatcher(&mut self) {
        if let Some(d) = self.dispatcher.take() {
            d.stop();
        }
    }

    /// Stops accepting, finishes in-flight requests and deliveries, returns;
    /// waits at most `shutdown_grace_s` in all.
    pub fn shutdown(self) {
        let grace = Duration::from_secs(self.app.config.shutdown_grace_s);
        let deadline = Instant::now() + grace;
        for extra in [&self.admin_server, &self.http_server]
            .into_iter()
            .flatten()
        {
            extra.shutdown_handle().shutdown();
        }
        self.server.shutdown_within(grace);
        for extra in [self.admin_server, self.http_server].into_iter().flatten() {
            extra.shutdown_within(remaining(deadline));
        }
        stop_background(self.dispatcher, self.sweeper, self.mock, deadline);
        // Every request was answered after its commit; dropping the last
        // handle lets the writer finish whatever is still queued, then close
        // the database.
        let closing = self.app.store.closing();
        drop(self.app);
        if !closing.wait(remaining(deadline)) {
            log::warn!("the writer did not close the database within shutdown_grace_s");
        }
        log::info!("stopped");
    }

    /// Serves until SIGTERM or SIGINT, then shuts down gracefully. A second
    /// signal ends the process at once. SIGHUP reloads the HTTPS certificate
    /// and key (only logged without HTTPS) and never stops the server.
    /// `signals` come from [`catch_signals`], called before [`start`] so that
    /// a signal during start-up is not fatal.
    pub fn run_until_signal(self, mut signals: Signals) -> Result<(), String> {
        use signal_hook::consts::SIGHUP;
        let handle = signals.handle();
        let (tx, rx) = mpsc::channel::<i32>();
        // Only the certificate source: a handle on the whole app here would
        // keep the store open after the shutdown let go of it.
        let tls = self.app.tls.clone();
        let watcher = thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                let mut asked = false;
                for sig in signals.forever() {
                    match sig {
                        SIGHUP => reload_tls(tls.as_deref()),
                        _ if asked => {
                            log::warn!("second signal ({sig}): exiting now");
                            std::process::exit(1);
                        }
                        _ => {
                            asked = true;
                            let _ = tx.send(sig);
                        }
                    }
                }
            })
            .map_err(|e| format!("cannot start the signal thread: {e}"))?;
        if let Ok(sig) = rx.recv() {
            log::info!(
                "signal {sig}: shutting down within {} s",
                self.app.config.shutdown_grace_s
            );
        }
        self.shutdown();
        handle.close();
        let _ = watcher.join();
        Ok(())
    }
}

/// The signals a server handles, caught from now on.
pub type Signals = signal_hook::iterator::Signals;

/// Starts catching SIGTERM, SIGINT and SIGHUP (delivered later to
/// [`Running::run_until_signal`]).
pub fn catch_signals() -> Result<Signals, String> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    Signals::new([SIGTERM, SIGINT, SIGHUP])
        .map_err(|e| format!("cannot install signal handlers: {e}"))
}

/// SIGHUP: reads the certificate and key again; a bad pair keeps the old one.
fn reload_tls(tls: Option<&TlsSource>) {
    match tls {
        None => log::info!("SIGHUP: no certificate to reload; still serving"),
        Some(t) => match t.reload() {
            Ok(()) => log::info!("SIGHUP: certificate reloaded; new connections use it"),
            Err(e) => log::error!("SIGHUP: certificate not reloaded, the old one stays: {e}"),
        },
    }
}

fn remaining(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

/// Stops the background workers, each within what is left of the grace time.
/// A worker still busy then (an outbound call under way) is left behind: its
/// call stays pending in the outbox and is sent again after a restart.
fn stop_background(
    d: Option<Dispatcher>,
    s: Option<Sweeper>,
    m: Option<MockPlatform>,
    deadline: Instant,
) {
    if let Some(d) = d {
        bounded("outbox dispatcher", deadline, move || d.stop());
    }
    if let Some(s) = s {
        bounded("expiry sweeper", deadline, move || s.stop());
    }
    if let Some(m) = m {
        bounded("mock platform", deadline, move || m.shutdown());
    }
}

fn bounded(what: &str, deadline: Instant, stop: impl FnOnce() + Send + 'static) {
    let (tx, rx) = mpsc::channel::<()>();
    let spawned = thread::Builder::new()
        .name(format!("stop {what}"))
        .spawn(move || {
            stop();
            let _ = tx.send(());
        });
    if spawned.is_err() || rx.recv_timeout(remaining(deadline)).is_err() {
        log::warn!("{what} did not stop within the grace time; its work stays queued");
    }
}

fn bind(addr: &str, what: &str) -> Result<TcpListener, String> {
    TcpListener::bind(addr).map_err(|e| format!("cannot listen on {addr} ({what}): {e}"))
}

/// Binds, locks, opens the ledger and starts serving on `config.listen` (and
/// `admin_listen`), with the outbox dispatcher when `[platform]` is
/// configured, and the expiry sweeper.
pub fn start(mut config: Config) -> Result<Running, String> {
    config.check_tls_choice()?;
    let mut tls = match &config.tls {
        Some((cert, key)) => Some(Arc::new(TlsSource::load(cert, key)?)),
        None => None,
    };
    let listener = bind(&config.listen, "listen")?;
    let admin_listener = match &config.admin_listen {
        Some(a) => Some(bind(a, "admin_listen")?),
        None => None,
    };
    let http_listener = match &config.http_listen {
        Some(a) => Some(bind(a, "http_listen")?),
        None => None,
    };
    if let Some(dir) = config.db.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.is_dir() {
            return Err(format!(
                "database {}: directory {} does not exist",
                config.db.display(),
                dir.display()
            ));
        }
    }
    let lock = DbLock::acquire(&config.db)?;
    // The embedded default syncs to an in-process mock platform, so the demo
    // shows the outbox end to end.
    let syncs = config.platform.is_some() || config.demo;
    let store = Store::open(
        &config.db,
        StoreOptions {
            durability: config.durability,
            timestamp_window_s: config.timestamp_window_s,
            sync_calls: syncs.then(|| outbox::sync_calls(config.utc_offset)),
            max_batch: config.write_batch_max,
        },
    )?;
    // A database that cannot be written is refused now, not at the first claim.
    store
        .probe()
        .map_err(|e| format!("database {} cannot be written: {e}", config.db.display()))?;
    // After the lock: a second server on the same database never overwrites
    // the pair the first one serves.
    let self_signed = if config.tls_self_signed {
        let written = self_signed::write_beside(&config.db)?;
        tls = Some(Arc::new(TlsSource::load(&written.cert, &written.key)?));
        config.tls = Some((written.cert.clone(), written.key.clone()));
        Some(written)
    } else {
        None
    };
    let mut mock = None;
    let demo = if config.demo {
        let d = demo::ensure(&store).map_err(|e| format!("cannot prepare the demo data: {e}"))?;
        if let Some(d) = &d {
            config.partners = vec![d.partner()];
            config.admin_token = d.admin_token.clone();
            let m = MockPlatform::start("127.0.0.1:0", &d.platform_secret, 0.0)
                .map_err(|e| format!("cannot start the demo mock platform: {e}"))?;
            config.platform = Some(demo::platform(d, m.local_addr()));
            mock = Some(m);
            // `demo-curl` signs for the port this server really listens on
            // (`--listen 127.0.0.1:0` included).
            let addr = listener
                .local_addr()
                .map_err(|e| format!("cannot read the listen address: {e}"))?;
            store
                .set_meta(vec![
                    (demo::DEMO_LISTEN_KEY.into(), addr.to_string()),
                    (demo::DEMO_TLS_CA_KEY.into(), demo_ca(self_signed.as_ref())),
                ])
                .map_err(|e| format!("cannot record the demo's listen address: {e}"))?;
        }
        d
    } else {
        None
    };
    let dispatcher = match &config.platform {
        Some(p) => Some(Dispatcher::start(store.clone(), p.clone())?),
        None => None,
    };
    let sweeper = Some(Sweeper::start_with_retention(
        store.clone(),
        Duration::from_secs(config.sweep_interval_s),
        config.sweep_batch,
        Some(config.outbox_retention_days),
    )?);
    let edge = crate::api::edge::Edge::new(&config);
    let metrics = crate::metrics::Metrics::new(store.clone(), sweeper.as_ref().map(Sweeper::stats));
    let app = Arc::new(App {
        edge,
        tls: tls.clone(),
        metrics,
        config,
        store,
        started: Instant::now(),
        admin_throttle: Default::default(),
    });
    let limits = Limits {
        max_connections: app.config.max_connections,
        max_connections_per_ip: app.config.max_connections_per_ip,
        ..Limits::default()
    };
    let public_surface = if admin_listener.is_some() {
        Surface::Public
    } else {
        Surface::All
    };
    let server = Server::serve_tls(
        listener,
        limits.clone(),
        api::handler(app.clone(), public_surface),
        tls,
    )
    .map_err(|e| format!("cannot serve on {}: {e}", app.config.listen))?;
    let http_server = match http_listener {
        Some(l) => Some(
            Server::serve(l, limits.clone(), api::handler(app.clone(), public_surface))
                .map_err(|e| format!("cannot serve http_listen: {e}"))?,
        ),
        None => None,
    };
    let admin_server = match admin_listener {
        Some(l) => Some(
            Server::serve(l, limits, api::handler(app.clone(), Surface::Admin))
                .map_err(|e| format!("cannot serve the admin listener: {e}"))?,
        ),
        None => None,
    };
    app.metrics
        .watch_listener("public", server.connection_gauge());
    if let Some(a) = &admin_server {
        app.metrics.watch_listener("admin", a.connection_gauge());
    }
    Ok(Running {
        server,
        admin_server,
        http_server,
        app,
        dispatcher,
        sweeper,
        mock,
        _lock: lock,
        demo,
        self_signed,
    })
}

/// What `demo-curl` passes to `curl --cacert`: the self-signed certificate's
/// full path, or empty for plain HTTP.
fn demo_ca(written: Option<&Written>) -> String {
    written
        .map(|w| std::fs::canonicalize(&w.cert).unwrap_or_else(|_| w.cert.clone()))
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}
