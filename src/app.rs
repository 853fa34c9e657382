//! Starting and stopping the whole server: store, demo data, HTTP.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::api::{self, App};
use crate::config::Config;
use crate::demo;
use crate::http::{Limits, Server, ShutdownHandle};
use crate::store::{Store, StoreOptions};

/// A running ledger server.
pub struct Running {
    server: Server,
    app: Arc<App>,
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

    /// A handle that stops the server from another thread.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.server.shutdown_handle()
    }

    /// Stops accepting, finishes in-flight requests, returns.
    pub fn shutdown(self) {
        self.server.shutdown();
    }

    /// Blocks until the server stops.
    pub fn join(self) {
        self.server.join();
    }
}

/// Opens the ledger and starts serving on `config.listen`.
pub fn start(mut config: Config) -> Result<Running, String> {
    let store = Store::open(
        &config.db,
        StoreOptions {
            sync: config.sync,
            timestamp_window_s: config.timestamp_window_s,
        },
    )?;
    let demo = if config.demo {
        let d = demo::ensure(&store).map_err(|e| format!("cannot prepare the demo data: {e}"))?;
        if let Some(d) = &d {
            config.partners = vec![d.partner()];
            config.admin_token = d.admin_token.clone();
        }
        d
    } else {
        None
    };
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
    Ok(Running { server, app, demo })
}
