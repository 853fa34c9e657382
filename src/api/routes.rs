//! The routing table: every method and path the server answers, matched once.
//! Handlers receive the matched [`Route`], never the raw path again.

/// One of the platform API's calls (the travel platform calls the SP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlatformCall {
    StockQuery,
    Claim,
    Deactivate,
    BatchDeactivate,
}

/// One admin endpoint, with its path parameters (percent-decoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminCall {
    CreateStock,
    ListStocks,
    GetStock(String),
    PatchStock(String),
    SetStockStatus(String),
    ResyncStock(String),
    IssueCoupon,
    ListCoupons,
    GetCoupon(String),
    Redeem(String),
    Unredeem(String),
    ResyncCoupon(String),
    ImportVouchers,
    GetVoucher {
        kind: String,
        coupon_no: String,
    },
    ListOutbox,
    RetryOutbox(String),
    AbandonOutbox(String),
    StockJournal(String),
    ListVouchers,
    Report,
    ReloadTls,
    /// Coupon journal events per hour and day (`?days=N`), for the admin page.
    Activity,
}

/// A file of the admin web page, served without a token (it holds no data;
/// every call it makes carries the token).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageAsset {
    Index,
    Script,
    Style,
}

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Platform(PlatformCall),
    CouponQuery,
    Gateway,
    Livez,
    Readyz,
    Healthz,
    /// `GET /metrics`: Prometheus text format.
    Metrics,
    /// `GET /openapi.json`: the OpenAPI document of every endpoint.
    OpenApi,
    /// The admin web page and its assets.
    AdminPage(PageAsset),
    /// Under `/admin`: the call, or why there is none (the admin token is
    /// checked before a path's existence is revealed).
    Admin(Result<AdminCall, Miss>),
    Miss(Miss),
}

/// No endpoint: the path is unknown, or the method is wrong (with the
/// allowed ones, as the `Allow` header lists them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Miss {
    NotFound,
    WrongMethod(String),
}

impl Route {
    /// Matches a method and a path against [`ROUTES`]: the first endpoint
    /// whose template fits the path and whose method is the request's (`GET`
    /// also answers `HEAD`). A path that fits only with other methods is a
    /// wrong method, with those methods; a path that fits nothing is not
    /// found. `segments` are the path's percent-decoded segments, where the
    /// template's `{parameters}` are read; its fixed words must be written
    /// as they are.
    pub fn of(method: &str, path: &str, segments: &[String]) -> Route {
        let raw = raw_segments(path);
        let mut allowed: Vec<&'static str> = Vec::new();
        let mut guarded = in_admin_area(path);
        for endpoint in ROUTES.iter().filter(|e| e.fits(&raw)) {
            if endpoint.answers(method) {
                return endpoint.route(&Params {
                    template: endpoint.template,
                    segments,
                });
            }
            allowed.push(endpoint.method);
            guarded = matches!(endpoint.make, Make::Admin(_));
        }
        let miss = if allowed.is_empty() {
            Miss::NotFound
        } else {
            Miss::WrongMethod(allowed.join(", "))
        };
        // Under /admin the token is checked before a path's existence is
        // revealed; the page's own files are open.
        if guarded {
            Route::Admin(Err(miss))
        } else {
            Route::Miss(miss)
        }
    }

    /// The route's name in the access log; `None` for admin calls and misses,
    /// which are logged with their path.
    pub fn name(&self) -> Option<&'static str> {
        match self {
            Route::Admin(_) | Route::Miss(_) => None,
            served => served.template().map(|(_, path)| path),
        }
    }

    /// The method and path template this route serves (`GET` also answers
    /// `HEAD`): its line of [`ROUTES`]; `None` for misses. Metrics label
    /// requests with it. The match names every variant, so a new route does
    /// not compile without its template, and the tests check that each line
    /// of the table routes back to a route with the line's template.
    pub fn template(&self) -> Option<(&'static str, &'static str)> {
        use AdminCall::*;
        Some(match self {
            Route::Platform(PlatformCall::StockQuery) => ("POST", "/sp/stock/query"),
            Route::Platform(PlatformCall::Claim) => ("POST", "/sp/coupon/receive"),
            Route::Platform(PlatformCall::Deactivate) => ("POST", "/sp/coupon/deactivate"),
            Route::Platform(PlatformCall::BatchDeactivate) => {
                ("POST", "/sp/coupon/batch-deactivate")
            }
            Route::CouponQuery => ("POST", "/wx/coupon/query"),
            Route::Gateway => ("POST", "/gateway"),
            Route::Livez => ("GET", "/livez"),
            Route::Readyz => ("GET", "/readyz"),
            Route::Healthz => ("GET", "/healthz"),
            Route::Metrics => ("GET", "/metrics"),
            Route::OpenApi => ("GET", "/openapi.json"),
            Route::AdminPage(PageAsset::Index) => ("GET", "/admin/"),
            Route::AdminPage(PageAsset::Script) => ("GET", "/admin/assets/admin.js"),
            Route::AdminPage(PageAsset::Style) => ("GET", "/admin/assets/admin.css"),
            Route::Admin(Ok(call)) => match call {
                CreateStock => ("POST", "/admin/stocks"),
                ListStocks => ("GET", "/admin/stocks"),
                GetStock(_) => ("GET", "/admin/stocks/{id}"),
                PatchStock(_) => ("PATCH", "/admin/stocks/{id}"),
                SetStockStatus(_) => ("POST", "/admin/stocks/{id}/status"),
                ResyncStock(_) => ("POST", "/admin/stocks/{id}/resync"),
                StockJournal(_) => ("GET", "/admin/stocks/{id}/journal"),
                IssueCoupon => ("POST", "/admin/coupons"),
                ListCoupons => ("GET", "/admin/coupons"),
                GetCoupon(_) => ("GET", "/admin/coupons/{id}"),
                Redeem(_) => ("POST", "/admin/coupons/{id}/redeem"),
                Unredeem(_) => ("POST", "/admin/coupons/{id}/unredeem"),
                ResyncCoupon(_) => ("POST", "/admin/coupons/{id}/resync"),
                ImportVouchers => ("POST", "/admin/vouchers"),
                ListVouchers => ("GET", "/admin/vouchers"),
                GetVoucher { .. } => ("GET", "/admin/vouchers/{type}/{couponNo}"),
                ListOutbox => ("GET", "/admin/outbox"),
                RetryOutbox(_) => ("POST", "/admin/outbox/{id}/retry"),
                AbandonOutbox(_) => ("POST", "/admin/outbox/{id}/abandon"),
                ReloadTls => ("POST", "/admin/tls/reload"),
                Activity => ("GET", "/admin/activity"),
                Report => ("GET", "/admin/report"),
            },
            Route::Admin(Err(_)) | Route::Miss(_) => return None,
        })
    }
}

/// How an endpoint makes its route from the path's parameters. Admin calls
/// are apart so that a wrong method on an admin path is still answered
/// only after the token is checked.
#[derive(Clone, Copy)]
enum Make {
    Open(fn(&Params) -> Route),
    Admin(fn(&Params) -> AdminCall),
}

/// One line of the routing table.
#[derive(Clone, Copy)]
pub struct Endpoint {
    pub method: &'static str,
    /// The path, with `{name}` for each parameter segment.
    pub template: &'static str,
    make: Make,
}

const fn open(
    method: &'static str,
    template: &'static str,
    make: fn(&Params) -> Route,
) -> Endpoint {
    Endpoint {
        method,
        template,
        make: Make::Open(make),
    }
}

const fn admin(
    method: &'static str,
    template: &'static str,
    make: fn(&Params) -> AdminCall,
) -> Endpoint {
    Endpoint {
        method,
        template,
        make: Make::Admin(make),
    }
}

/// **The routing table**: every method and path the server serves, once.
/// [`Route::of`] matches requests against it and nothing else, so a route
/// cannot be served without its line here, and the tests require every
/// line to be documented in `src/api/openapi.json`. Where one path takes
/// several methods, their order is the order of the `Allow` header.
pub const ROUTES: &[Endpoint] = &[
    open("POST", "/sp/stock/query", |_| {
        Route::Platform(PlatformCall::StockQuery)
    }),
    open("POST", "/sp/coupon/receive", |_| {
        Route::Platform(PlatformCall::Claim)
    }),
    open("POST", "/sp/coupon/deactivate", |_| {
        Route::Platform(PlatformCall::Deactivate)
    }),
    open("POST", "/sp/coupon/batch-deactivate", |_| {
        Route::Platform(PlatformCall::BatchDeactivate)
    }),
    open("POST", "/wx/coupon/query", |_| Route::CouponQuery),
    open("POST", "/gateway", |_| Route::Gateway),
    open("GET", "/livez", |_| Route::Livez),
    open("GET", "/readyz", |_| Route::Readyz),
    open("GET", "/healthz", |_| Route::Healthz),
    open("GET", "/metrics", |_| Route::Metrics),
    open("GET", "/openapi.json", |_| Route::OpenApi),
    open("GET", "/admin/", |_| Route::AdminPage(PageAsset::Index)),
    open("GET", "/admin/assets/admin.js", |_| {
        Route::AdminPage(PageAsset::Script)
    }),
    open("GET", "/admin/assets/admin.css", |_| {
        Route::AdminPage(PageAsset::Style)
    }),
    admin("GET", "/admin/stocks", |_| AdminCall::ListStocks),
    admin("POST", "/admin/stocks", |_| AdminCall::CreateStock),
    admin("GET", "/admin/stocks/{id}", |p| {
        AdminCall::GetStock(p.get(0))
    }),
    admin("PATCH", "/admin/stocks/{id}", |p| {
        AdminCall::PatchStock(p.get(0))
    }),
    admin("POST", "/admin/stocks/{id}/status", |p| {
        AdminCall::SetStockStatus(p.get(0))
    }),
    admin("POST", "/admin/stocks/{id}/resync", |p| {
        AdminCall::ResyncStock(p.get(0))
    }),
    admin("GET", "/admin/stocks/{id}/journal", |p| {
        AdminCall::StockJournal(p.get(0))
    }),
    admin("GET", "/admin/coupons", |_| AdminCall::ListCoupons),
    admin("POST", "/admin/coupons", |_| AdminCall::IssueCoupon),
    admin("GET", "/admin/coupons/{id}", |p| {
        AdminCall::GetCoupon(p.get(0))
    }),
    admin("POST", "/admin/coupons/{id}/redeem", |p| {
        AdminCall::Redeem(p.get(0))
    }),
    admin("POST", "/admin/coupons/{id}/unredeem", |p| {
        AdminCall::Unredeem(p.get(0))
    }),
    admin("POST", "/admin/coupons/{id}/resync", |p| {
        AdminCall::ResyncCoupon(p.get(0))
    }),
    admin("GET", "/admin/vouchers", |_| AdminCall::ListVouchers),
    admin("POST", "/admin/vouchers", |_| AdminCall::ImportVouchers),
    admin("GET", "/admin/vouchers/{type}/{couponNo}", |p| {
        AdminCall::GetVoucher {
            kind: p.get(0),
            coupon_no: p.get(1),
        }
    }),
    admin("GET", "/admin/outbox", |_| AdminCall::ListOutbox),
    admin("POST", "/admin/outbox/{id}/retry", |p| {
        AdminCall::RetryOutbox(p.get(0))
    }),
    admin("POST", "/admin/outbox/{id}/abandon", |p| {
        AdminCall::AbandonOutbox(p.get(0))
    }),
    admin("POST", "/admin/tls/reload", |_| AdminCall::ReloadTls),
    admin("GET", "/admin/activity", |_| AdminCall::Activity),
    admin("GET", "/admin/report", |_| AdminCall::Report),
];

/// The `{parameters}` of a matched path, percent-decoded.
struct Params<'a> {
    template: &'static str,
    segments: &'a [String],
}

impl Params<'_> {
    /// The `n`th parameter of the template (0-based), from the segment in
    /// its place.
    fn get(&self, n: usize) -> String {
        template_segments(self.template)
            .enumerate()
            .filter(|(_, w)| is_param(w))
            .nth(n)
            .and_then(|(i, _)| self.segments.get(i))
            .cloned()
            .unwrap_or_default()
    }
}

fn is_param(word: &str) -> bool {
    word.starts_with('{') && word.ends_with('}')
}

fn template_segments(template: &'static str) -> impl Iterator<Item = &'static str> {
    template.split('/').filter(|w| !w.is_empty())
}

/// The path's segments as written (not decoded), without the leading `/`
/// and one trailing `/`. An empty segment inside (`//`) fits no template,
/// so `//admin/stocks` is not an admin path for the server either.
fn raw_segments(path: &str) -> Vec<&str> {
    let Some(rest) = path.strip_prefix('/') else {
        return vec![""];
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() {
        return Vec::new();
    }
    rest.split('/').collect()
}

/// Paths under `/admin`, whose misses are answered only after the token.
fn in_admin_area(path: &str) -> bool {
    path == "/admin" || path.starts_with("/admin/")
}

impl Endpoint {
    /// Whether the path's raw segments have this template's shape: the same
    /// count, every fixed word equal, every parameter non-empty.
    fn fits(&self, raw: &[&str]) -> bool {
        let mut words = template_segments(self.template);
        raw.iter().all(|seg| match words.next() {
            Some(w) if is_param(w) => !seg.is_empty(),
            Some(w) => w == *seg,
            None => false,
        }) && words.next().is_none()
    }

    fn answers(&self, method: &str) -> bool {
        self.method == method || (self.method == "GET" && method == "HEAD")
    }

    fn route(&self, params: &Params) -> Route {
        match self.make {
            Make::Open(f) => f(params),
            Make::Admin(f) => Route::Admin(Ok(f(params))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(method: &str, path: &str) -> Route {
        let segments: Vec<String> = path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        Route::of(method, path, &segments)
    }

    #[test]
    fn every_path_is_matched_once_with_its_method() {
        assert_eq!(
            route("POST", "/sp/coupon/receive"),
            Route::Platform(PlatformCall::Claim)
        );
        assert_eq!(
            route("GET", "/sp/coupon/receive"),
            Route::Miss(Miss::WrongMethod("POST".into()))
        );
        assert_eq!(route("HEAD", "/healthz"), Route::Healthz);
        assert_eq!(
            route("POST", "/admin/stocks/s1/resync"),
            Route::Admin(Ok(AdminCall::ResyncStock("s1".into())))
        );
        assert_eq!(
            route("GET", "/admin/outbox/3/abandon"),
            Route::Admin(Err(Miss::WrongMethod("POST".into())))
        );
        assert_eq!(
            route("GET", "/admin/nope"),
            Route::Admin(Err(Miss::NotFound))
        );
        assert_eq!(route("GET", "/nope"), Route::Miss(Miss::NotFound));
        assert_eq!(route("HEAD", "/metrics"), Route::Metrics);
        assert_eq!(
            route("POST", "/openapi.json"),
            Route::Miss(Miss::WrongMethod("GET".into()))
        );
    }

    /// A path of `template` with `p1`, `p2`, ... in its parameters.
    fn sample(template: &str) -> String {
        let mut n = 0;
        template
            .split('/')
            .map(|seg| {
                if is_param(seg) {
                    n += 1;
                    format!("p{n}")
                } else {
                    seg.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("/")
    }

    #[test]
    fn every_line_of_the_table_routes_to_a_route_with_its_template() {
        let mut seen = std::collections::HashSet::new();
        for e in ROUTES {
            assert!(
                seen.insert((e.method, e.template)),
                "{} {} is listed twice",
                e.method,
                e.template
            );
            let r = route(e.method, &sample(e.template));
            assert!(
                !matches!(r, Route::Miss(_) | Route::Admin(Err(_))),
                "{} {} is not served: {r:?}",
                e.method,
                e.template
            );
            // Not an earlier line's route: each line is reachable.
            assert_eq!(r.template(), Some((e.method, e.template)), "{:?}", r);
            assert!(matches!(e.make, Make::Admin(_)) == matches!(r, Route::Admin(_)));
        }
        assert_eq!(route("GET", "/admin"), Route::AdminPage(PageAsset::Index));
        assert_eq!(route("HEAD", "/admin/"), Route::AdminPage(PageAsset::Index));
        assert_eq!(
            route("GET", "/admin/assets/admin.js"),
            Route::AdminPage(PageAsset::Script)
        );
        assert_eq!(
            route("POST", "/admin/"),
            Route::Miss(Miss::WrongMethod("GET".into()))
        );
        assert_eq!(
            route("GET", "/admin/activity"),
            Route::Admin(Ok(AdminCall::Activity))
        );
    }

    #[test]
    fn parameters_are_read_decoded_and_fixed_words_as_written() {
        // The server passes the percent-decoded segments beside the path.
        let decoded = |method: &str, path: &str, segments: &[&str]| {
            let segments: Vec<String> = segments.iter().map(|s| s.to_string()).collect();
            Route::of(method, path, &segments)
        };
        assert_eq!(
            decoded(
                "GET",
                "/admin/vouchers/meituan/V%201",
                &["admin", "vouchers", "meituan", "V 1"]
            ),
            Route::Admin(Ok(AdminCall::GetVoucher {
                kind: "meituan".into(),
                coupon_no: "V 1".into()
            }))
        );
        assert_eq!(
            decoded(
                "GET",
                "/admin/stocks/%E4%BB%A3%E9%A9%BE/",
                &["admin", "stocks", "代驾"]
            ),
            Route::Admin(Ok(AdminCall::GetStock("代驾".into())))
        );
        assert_eq!(
            route("GET", "/admin/%73tocks"),
            Route::Admin(Err(Miss::NotFound))
        );
        assert_eq!(route("GET", "//admin/stocks"), Route::Miss(Miss::NotFound));
        assert_eq!(
            route("GET", "/admin//stocks"),
            Route::Admin(Err(Miss::NotFound))
        );
        assert_eq!(route("GET", "/"), Route::Miss(Miss::NotFound));
        assert_eq!(
            route("DELETE", "/admin/stocks"),
            Route::Admin(Err(Miss::WrongMethod("GET, POST".into())))
        );
        assert_eq!(
            route("POST", "/admin/stocks/s1"),
            Route::Admin(Err(Miss::WrongMethod("GET, PATCH".into())))
        );
    }

    /// Every line of the table is an operation of the OpenAPI document the
    /// server serves: a route cannot be served without its line, so none is
    /// served undocumented.
    #[test]
    fn every_line_of_the_table_is_in_the_openapi_document() {
        let doc: serde_json::Value =
            serde_json::from_str(include_str!("openapi.json")).expect("openapi.json is JSON");
        let missing: Vec<String> = ROUTES
            .iter()
            .filter(|e| doc["paths"][e.template][e.method.to_lowercase()].is_null())
            .map(|e| format!("{} {}", e.method, e.template))
            .collect();
        assert!(
            missing.is_empty(),
            "served but not in src/api/openapi.json: {missing:?}"
        );
    }

    #[test]
    fn the_operator_reads_have_their_routes() {
        assert_eq!(
            route("GET", "/admin/stocks/s1/journal"),
            Route::Admin(Ok(AdminCall::StockJournal("s1".into())))
        );
        assert_eq!(
            route("POST", "/admin/stocks/s1/journal"),
            Route::Admin(Err(Miss::WrongMethod("GET".into())))
        );
        assert_eq!(
            route("GET", "/admin/vouchers"),
            Route::Admin(Ok(AdminCall::ListVouchers))
        );
        assert_eq!(
            route("GET", "/admin/report"),
            Route::Admin(Ok(AdminCall::Report))
        );
        assert_eq!(
            route("POST", "/admin/report"),
            Route::Admin(Err(Miss::WrongMethod("GET".into())))
        );
    }
}
