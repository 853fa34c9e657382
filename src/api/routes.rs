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

/// No endpoint: the path is unknown, or the method is wrong (with the allowed ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Miss {
    NotFound,
    WrongMethod(&'static str),
}

impl Route {
    /// Matches a method and the path's percent-decoded segments.
    pub fn of(method: &str, path: &str, segments: &[String]) -> Route {
        use PlatformCall::*;
        let post = |r: Route| {
            if method == "POST" {
                r
            } else {
                Route::Miss(Miss::WrongMethod("POST"))
            }
        };
        let get = |r: Route| match method {
            "GET" | "HEAD" => r,
            _ => Route::Miss(Miss::WrongMethod("GET")),
        };
        match path {
            "/sp/stock/query" => post(Route::Platform(StockQuery)),
            "/sp/coupon/receive" => post(Route::Platform(Claim)),
            "/sp/coupon/deactivate" => post(Route::Platform(Deactivate)),
            "/sp/coupon/batch-deactivate" => post(Route::Platform(BatchDeactivate)),
            "/wx/coupon/query" => post(Route::CouponQuery),
            "/gateway" => post(Route::Gateway),
            "/livez" => get(Route::Livez),
            "/readyz" => get(Route::Readyz),
            "/healthz" => get(Route::Healthz),
            "/metrics" => get(Route::Metrics),
            "/openapi.json" => get(Route::OpenApi),
            "/admin" | "/admin/" => get(Route::AdminPage(PageAsset::Index)),
            "/admin/assets/admin.js" => get(Route::AdminPage(PageAsset::Script)),
            "/admin/assets/admin.css" => get(Route::AdminPage(PageAsset::Style)),
            p if p == "/admin" || p.starts_with("/admin/") => {
                let parts: Vec<&str> = segments.iter().skip(1).map(String::as_str).collect();
                Route::Admin(admin(method, &parts))
            }
            _ => Route::Miss(Miss::NotFound),
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
    /// `HEAD`), as listed in [`TEMPLATES`]; `None` for misses. Metrics label
    /// requests with it, and the OpenAPI document must list every one.
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

/// Every method and path template the server serves: what
/// [`Route::template`] answers for each route that is not a miss. A route
/// added to the table above gets its line here (the unit test below routes
/// each line back), and its operation in `src/api/openapi.json` (the
/// integration tests compare the two).
pub const TEMPLATES: &[(&str, &str)] = &[
    ("POST", "/sp/stock/query"),
    ("POST", "/sp/coupon/receive"),
    ("POST", "/sp/coupon/deactivate"),
    ("POST", "/sp/coupon/batch-deactivate"),
    ("POST", "/wx/coupon/query"),
    ("POST", "/gateway"),
    ("GET", "/livez"),
    ("GET", "/readyz"),
    ("GET", "/healthz"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("POST", "/admin/stocks"),
    ("GET", "/admin/stocks"),
    ("GET", "/admin/stocks/{id}"),
    ("PATCH", "/admin/stocks/{id}"),
    ("POST", "/admin/stocks/{id}/status"),
    ("POST", "/admin/stocks/{id}/resync"),
    ("POST", "/admin/coupons"),
    ("GET", "/admin/coupons"),
    ("GET", "/admin/coupons/{id}"),
    ("POST", "/admin/coupons/{id}/redeem"),
    ("POST", "/admin/coupons/{id}/unredeem"),
    ("POST", "/admin/coupons/{id}/resync"),
    ("POST", "/admin/vouchers"),
    ("GET", "/admin/vouchers/{type}/{couponNo}"),
    ("GET", "/admin/outbox"),
    ("POST", "/admin/outbox/{id}/retry"),
    ("POST", "/admin/outbox/{id}/abandon"),
    ("POST", "/admin/tls/reload"),
    ("GET", "/admin/"),
    ("GET", "/admin/assets/admin.js"),
    ("GET", "/admin/assets/admin.css"),
    ("GET", "/admin/activity"),
    ("GET", "/admin/stocks/{id}/journal"),
    ("GET", "/admin/vouchers"),
    ("GET", "/admin/report"),
];

fn admin(method: &str, parts: &[&str]) -> Result<AdminCall, Miss> {
    use AdminCall::*;
    let s = |x: &str| x.to_string();
    let call = match (parts, method) {
        (["stocks"], "POST") => CreateStock,
        (["stocks"], "GET") => ListStocks,
        (["stocks"], _) => return Err(Miss::WrongMethod("GET, POST")),
        (["stocks", id], "GET") => GetStock(s(id)),
        (["stocks", id], "PATCH") => PatchStock(s(id)),
        (["stocks", _], _) => return Err(Miss::WrongMethod("GET, PATCH")),
        (["stocks", id, "status"], "POST") => SetStockStatus(s(id)),
        (["stocks", id, "resync"], "POST") => ResyncStock(s(id)),
        (["stocks", _, "status" | "resync"], _) => return Err(Miss::WrongMethod("POST")),
        (["stocks", id, "journal"], "GET") => StockJournal(s(id)),
        (["stocks", _, "journal"], _) => return Err(Miss::WrongMethod("GET")),
        (["coupons"], "POST") => IssueCoupon,
        (["coupons"], "GET") => ListCoupons,
        (["coupons"], _) => return Err(Miss::WrongMethod("GET, POST")),
        (["coupons", id], "GET") => GetCoupon(s(id)),
        (["coupons", _], _) => return Err(Miss::WrongMethod("GET")),
        (["coupons", id, "redeem"], "POST") => Redeem(s(id)),
        (["coupons", id, "unredeem"], "POST") => Unredeem(s(id)),
        (["coupons", id, "resync"], "POST") => ResyncCoupon(s(id)),
        (["coupons", _, "redeem" | "unredeem" | "resync"], _) => {
            return Err(Miss::WrongMethod("POST"))
        }
        (["vouchers"], "POST") => ImportVouchers,
        (["vouchers"], "GET") => ListVouchers,
        (["vouchers"], _) => return Err(Miss::WrongMethod("GET, POST")),
        (["vouchers", kind, no], "GET") => GetVoucher {
            kind: s(kind),
            coupon_no: s(no),
        },
        (["vouchers", _, _], _) => return Err(Miss::WrongMethod("GET")),
        (["outbox"], "GET") => ListOutbox,
        (["outbox"], _) => return Err(Miss::WrongMethod("GET")),
        (["outbox", id, "retry"], "POST") => RetryOutbox(s(id)),
        (["outbox", id, "abandon"], "POST") => AbandonOutbox(s(id)),
        (["outbox", _, "retry" | "abandon"], _) => return Err(Miss::WrongMethod("POST")),
        (["tls", "reload"], "POST") => ReloadTls,
        (["tls", "reload"], _) => return Err(Miss::WrongMethod("POST")),
        (["activity"], "GET") => Activity,
        (["activity"], _) => return Err(Miss::WrongMethod("GET")),
        (["report"], "GET") => Report,
        (["report"], _) => return Err(Miss::WrongMethod("GET")),
        _ => return Err(Miss::NotFound),
    };
    Ok(call)
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
            Route::Miss(Miss::WrongMethod("POST"))
        );
        assert_eq!(route("HEAD", "/healthz"), Route::Healthz);
        assert_eq!(
            route("POST", "/admin/stocks/s1/resync"),
            Route::Admin(Ok(AdminCall::ResyncStock("s1".into())))
        );
        assert_eq!(
            route("GET", "/admin/outbox/3/abandon"),
            Route::Admin(Err(Miss::WrongMethod("POST")))
        );
        assert_eq!(
            route("GET", "/admin/nope"),
            Route::Admin(Err(Miss::NotFound))
        );
        assert_eq!(route("GET", "/nope"), Route::Miss(Miss::NotFound));
        assert_eq!(route("HEAD", "/metrics"), Route::Metrics);
        assert_eq!(
            route("POST", "/openapi.json"),
            Route::Miss(Miss::WrongMethod("GET"))
        );
    }

    #[test]
    fn every_template_routes_to_a_route_with_that_template() {
        for &(method, template) in TEMPLATES {
            // Each `{param}` becomes a sample segment.
            let path: String = template
                .split('/')
                .map(|seg| if seg.starts_with('{') { "p1" } else { seg })
                .collect::<Vec<_>>()
                .join("/");
            let r = route(method, &path);
            assert!(
                !matches!(r, Route::Miss(_) | Route::Admin(Err(_))),
                "{method} {template} is not served: {r:?}"
            );
            assert_eq!(r.template(), Some((method, template)), "{method} {path}");
        }
        let mut seen = std::collections::HashSet::new();
        for t in TEMPLATES {
            assert!(seen.insert(t), "{t:?} is listed twice");
        }
        assert_eq!(route("GET", "/admin"), Route::AdminPage(PageAsset::Index));
        assert_eq!(route("HEAD", "/admin/"), Route::AdminPage(PageAsset::Index));
        assert_eq!(
            route("GET", "/admin/assets/admin.js"),
            Route::AdminPage(PageAsset::Script)
        );
        assert_eq!(
            route("POST", "/admin/"),
            Route::Miss(Miss::WrongMethod("GET"))
        );
        assert_eq!(
            route("GET", "/admin/activity"),
            Route::Admin(Ok(AdminCall::Activity))
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
            Route::Admin(Err(Miss::WrongMethod("GET")))
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
            Route::Admin(Err(Miss::WrongMethod("GET")))
        );
    }
}
