//! Starting and stopping the whole server: store, demo data, outbox dispatcher,
//! sweeper, HTTP.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::api::{self, App};
use crate::config::Config;
use crate::demo;
use crate::http::{Limits, Server, ShutdownHandle};
use crate::outbox::dispatcher::Dispatcher;
use crate::outbox::mock::MockPlatform;
use crate::outbox::{self};
use crate::store::{Store, StoreOptions};
use crate::sweeper::Sweeper;

/// A running ledger server.
pub struct Running {
    server: Server,
    app: Arc<App>,
    dispatcher: Option<Dispatcher>,
    sweeper: Option<Sweeper>,
    mock: Option<MockPlatform>,
    /// What the embedded default created or found, to print at start.
    pub demo: Option<demo::Demo>,
}

impl Running {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
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

    /// Stops accepting, finishes in-flight requests and deliveries, returns.
    pub fn shutdown(self) {
        self.server.shutdown();
        Self::stop_background(self.dispatcher, self.sweeper, self.mock);
    }

    /// Blocks until the HTTP server stops.
    pub fn join(self) {
        self.server.join();
        Self::stop_background(self.dispatcher, self.sweeper, self.mock);
    }

    fn stop_background(d: Option<Dispatcher>, s: Option<Sweeper>, m: Option<MockPlatform>) {
        if let Some(d) = d {
            d.stop();
        }
        if let Some(s) = s {
            s.stop();
        }
        if let Some(m) = m {
            m.shutdown();
        }
    }
}

/// Opens the ledger and starts serving on `config.listen`, with the outbox
/// dispatcher when `[platform]` is configured, and the expiry sweeper.
pub fn start(mut config: Config) -> Result<Running, String> {
    // The embedded default syncs to an in-process mock platform, so the demo
    // shows the outbox end to end.
    let syncs = config.platform.is_some() || config.demo;
    let store = Store::open(
        &config.db,
        StoreOptions {
            sync: config.sync,
            timestamp_window_s: config.timestamp_window_s,
            sync_renderer: syncs.then(|| outbox::renderer(config.utc_offset)),
        },
    )?;
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
    let app = Arc::new(App {
        config,
        store,
        started: Instant::now(),
    });
    let server = Server::start(
        &app.config.listen,
        Limits::default(),
        api::handler(app.clone()),
    )
    .map_err(|e| format!("cannot listen on {}: {e}", app.config.listen))?;
    Ok(Running {
        server,
        app,
        dispatcher,
        sweeper,
        mock,
        demo,
    })
}
