//! Wire protocols: each module parses its wire format into domain values, calls
//! the store, and renders the answer in its own vocabulary. No SQL here.

pub mod access;
pub mod activity;
pub mod admin;
pub mod auth;
pub mod edge;
pub mod envelope;
pub mod gateway;
pub mod ops;
pub mod page;
pub mod platform;
pub mod routes;
pub mod throttle;
pub mod wx;

use std::sync::Arc;
use std::time::Instant;

use crate::config::Config;
use crate::http::{Request, Response};
use crate::store::Store;
use routes::{Miss, Route};

/// What every handler needs: the validated config and the ledger.
pub struct App {
    pub config: Config,
    pub store: Store,
    pub started: Instant,
    /// Failed admin tokens per source address.
    pub admin_throttle: throttle::AdminThrottle,
    /// Source allowlists and rate limits.
    pub edge: edge::Edge,
    /// The HTTPS certificate, when `listen` speaks HTTPS.
    pub tls: Option<Arc<crate::http::TlsSource>>,
    /// What `GET /metrics` shows.
    pub metrics: crate::metrics::Metrics,
}

/// Which paths a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// Everything: partner, admin and ops paths (no `admin_listen`).
    All,
    /// Partner and ops paths; `/admin/*` answers 404 (it lives on `admin_listen`).
    Public,
    /// `admin_listen`: `/admin/*` and the ops paths only.
    Admin,
}

pub use envelope::{answer, failure, method_not_allowed, server_fault, success};

/// Answers one request on a listener serving `surface`: the route, then its handler.
pub fn route(app: &App, req: &Request, surface: Surface) -> (Option<&'static str>, Response) {
    let route = Route::of(&req.method, &req.path, &req.path_segments());
    access::client(crate::domain::net::client_ip(
        req.peer.ip(),
        req.header("x-forwarded-for"),
        &app.config.trusted_proxies,
    ));
    let served = !matches!(
        (&route, surface),
        (Route::Admin(_) | Route::AdminPage(_), Surface::Public)
            | (
                Route::Platform(_) | Route::CouponQuery | Route::Gateway,
                Surface::Admin
            )
    );
    if !served {
        return (None, envelope::not_found(&req.path));
    }
    access::template(route.template());
    let name = route.name();
    let response = match route {
        Route::Platform(call) => platform::handle(app, call, &req.body),
        Route::CouponQuery => wx::handle(app, &req.body),
        Route::Gateway => gateway::handle(app, &req.body),
        Route::Livez => ops::livez(),
        Route::Readyz => ops::readyz(app),
        Route::Healthz => ops::healthz(app),
        Route::Metrics => ops::metrics(app),
        Route::OpenApi => ops::openapi(),
        Route::AdminPage(asset) => page::serve(asset),
        Route::Admin(call) => admin::handle(app, req, call),
        Route::Miss(Miss::NotFound) => envelope::not_found(&req.path),
        Route::Miss(Miss::WrongMethod(allowed)) => method_not_allowed(&allowed),
    };
    (name, response)
}

/// The application as an HTTP handler for a listener serving `surface`.
pub fn handler(app: Arc<App>, surface: Surface) -> crate::http::Handler {
    Arc::new(move |req: &Request| access::logged(req, &app.metrics, || route(&app, req, surface)))
}
