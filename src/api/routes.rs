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
    GetVoucher { kind: String, coupon_no: String },
    ListOutbox,
    RetryOutbox(String),
    AbandonOutbox(String),
    StockJournal(String),
    ListVouchers,
    Report,
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
        Some(match self {
            Route::Platform(PlatformCall::StockQuery) => "/sp/stock/query",
            Route::Platform(PlatformCall::Claim) => "/sp/coupon/receive",
            Route::Platform(PlatformCall::Deactivate) => "/sp/coupon/deactivate",
            Route::Platform(PlatformCall::BatchDeactivate) => "/sp/coupon/batch-deactivate",
            Route::CouponQuery => "/wx/coupon/query",
            Route::Gateway => "/gateway",
            Route::Livez => "/livez",
            Route::Readyz => "/readyz",
            Route::Healthz => "/healthz",
            Route::Admin(_) | Route::Miss(_) => return None,
        })
    }
}

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
