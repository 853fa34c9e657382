//! The ledger's operations: each write is one function run inside the writer's
//! transaction, checking SPEC §5 in code (for precise codes) before the schema's
//! constraints check it again.

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::json;

use super::outbox::{enqueue, SyncRenderer};
use super::rows::{
    self, load_coupon, load_stock, stock_counts, COUPON_COLUMNS, REDEMPTION_COLUMNS,
};
use super::{NonceUse, Store};
use crate::domain::coupon::new_coupon_id;
use crate::domain::ledger::{
    BatchOutcome, ClaimRequest, Coupon, CouponQuery, DeactivateRequest, HeldCoupon, Illegal,
    JournalEntry, Origin, Redemption, Settled, Stock, StockCounts, StockPatch, SyncEvent,
};
use crate::domain::money::{discount, DiscountRefusal, Fen};
use crate::domain::stock::{CouponKind, CouponStatus, StockSpec, StockStatus};
use crate::domain::LedgerError;

/// Turns a constraint raised by the schema into the ledger outcome it stands for.
/// The code checks every rule first, so reaching this means a race the code missed.
fn from_constraint(e: rusqlite::Error) -> LedgerError {
    let text = e.to_string();
    if text.contains("user limit") {
        LedgerError::UserLimit
    } else if text.contains("stock not running") {
        LedgerError::StockNotRunning
    } else if text.contains("issued") {
        LedgerError::SoldOut
    } else if text.contains("illegal") || text.contains("frozen") {
        LedgerError::StateConflict(text)
    } else {
        LedgerError::Internal(format!("sqlite: {text}"))
    }
}

/// Appends one journal row (SPEC §5: in the same transaction as the change).
#[allow(clippy::too_many_arguments)]
pub(super) fn journal(
    conn: &Connection,
    entity: &str,
    entity_id: &str,
    event: &str,
    from: Option<i64>,
    to: Option<i64>,
    origin: &Origin,
    detail: Option<String>,
) -> Result<(), LedgerError> {
    conn.prepare_cached(
        "INSERT INTO journal (entity, entity_id, event, from_status, to_status, source, seq_id, at_ms, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        entity,
        entity_id,
        event,
        from,
        to,
        origin.source.as_str(),
        origin.seq_id,
        origin.now,
        detail
    ])?;
    Ok(())
}

/// The stored columns of a kind: type, coupon_amount, minimum, percent, max.
pub(super) fn kind_columns(kind: &CouponKind) -> (i64, Option<Fen>, Fen, Option<i64>, Option<Fen>) {
    match *kind {
        CouponKind::FixedOff { amount, minimum } => (1, Some(amount), minimum, None, None),
        CouponKind::CutTo { price, minimum } => (2, Some(price), minimum, None, None),
        CouponKind::Percent {
            percent,
            max,
            minimum,
        } => (3, None, minimum, Some(percent), Some(max)),
    }
}

/// Inserts a stock, or overwrites the editable fields of an existing one; the
/// schema's triggers refuse what is frozen. Status changes go through their own path.
fn write_stock(conn: &Connection, spec: &StockSpec, create_ms: i64) -> Result<(), LedgerError> {
    let (t, amount, minimum, percent, max) = kind_columns(&spec.kind);
    conn.prepare_cached(
        "INSERT INTO stocks (stock_id, stock_name, app_channel_id, app_id, instructions, coupon_name,
            coupon_desc, coupon_type, coupon_amount, transaction_minimum, discount_percent,
            discount_amount_max, max_coupons, max_coupons_per_user, available_begin_ms,
            available_end_ms, create_ms, stock_status)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)
         ON CONFLICT (stock_id) DO UPDATE SET
            stock_name = excluded.stock_name, app_channel_id = excluded.app_channel_id,
            app_id = excluded.app_id, instructions = excluded.instructions,
            coupon_name = excluded.coupon_name, coupon_desc = excluded.coupon_desc,
            coupon_type = excluded.coupon_type, coupon_amount = excluded.coupon_amount,
            transaction_minimum = excluded.transaction_minimum,
            discount_percent = excluded.discount_percent,
            discount_amount_max = excluded.discount_amount_max, max_coupons = excluded.max_coupons,
            max_coupons_per_user = excluded.max_coupons_per_user,
            available_begin_ms = excluded.available_begin_ms,
            available_end_ms = excluded.available_end_ms",
    )?
    .execute(params![
        spec.stock_id,
        spec.stock_name,
        spec.app_channel_id,
        spec.app_id,
        spec.instructions,
        spec.coupon_name,
        spec.coupon_desc,
        t,
        amount,
        minimum,
        percent,
        max,
        spec.max_coupons,
        spec.max_coupons_per_user,
        spec.available_begin,
        spec.available_end,
        create_ms,
        spec.status.code()
    ])
    .map_err(from_constraint)?;
    Ok(())
}

fn create_stock_tx(
    conn: &Connection,
    spec: StockSpec,
    origin: &Origin,
    sync: Option<&SyncRenderer>,
) -> Result<Stock, LedgerError> {
    if let Some(existing) = load_stock(conn, &spec.stock_id)? {
        if existing.spec == spec {
            return Ok(existing);
        }
        return Err(LedgerError::IdempotencyConflict(format!(
            "stock_id: {} already exists with different fields",
            spec.stock_id
        )));
    }
    write_stock(conn, &spec, origin.now)?;
    journal(
        conn,
        "stock",
        &spec.stock_id,
        "create",
        None,
        Some(spec.status.code()),
        origin,
        None,
    )?;
    let stock = Stock {
        spec,
        create_ms: origin.now,
        issued: 0,
    };
    enqueue(conn, sync, &SyncEvent::StockUpserted(stock.clone()), origin)?;
    Ok(stock)
}

fn patch_stock_tx(
    conn: &Connection,
    stock_id: &str,
    patch: StockPatch,
    origin: &Origin,
    sync: Option<&SyncRenderer>,
) -> Result<Stock, LedgerError> {
    let stock = load_stock(conn, stock_id)?.ok_or(LedgerError::StockNotFound)?;
    let old = &stock.spec;
    if old.status == StockStatus::Stopped {
        return Err(LedgerError::StateConflict(
            "stock is stopped (4) and can no longer be edited".into(),
        ));
    }
    let mut spec = old.clone();
    macro_rules! take {
        ($($f:ident => $g:ident),*) => { $( if let Some(v) = patch.$f { spec.$g = v; } )* };
    }
    if let Some(k) = &patch.kind {
        spec.kind = k.apply(&old.kind)?;
    }
    take!(stock_name => stock_name, app_channel_id => app_channel_id, app_id => app_id,
          instructions => instructions, coupon_name => coupon_name, coupon_desc => coupon_desc,
          max_coupons => max_coupons, max_coupons_per_user => max_coupons_per_user,
          available_begin => available_begin, available_end => available_end);
    if stock.issued > 0 {
        let frozen = if spec.kind != old.kind {
            Some("coupon_type and amounts")
        } else if spec.app_channel_id != old.app_channel_id {
            Some("app_channel_id")
        } else if spec.app_id != old.app_id {
            Some("app_id")
        } else if spec.available_begin != old.available_begin {
            Some("available_begin_time")
        } else if spec.max_coupons_per_user < old.max_coupons_per_user {
            Some("max_coupons_per_user (it may only rise)")
        } else {
            None
        };
        if let Some(what) = frozen {
            return Err(LedgerError::StateConflict(format!(
                "{what}: frozen after the first coupon is issued"
            )));
        }
    }
    if spec.max_coupons < stock.issued {
        return Err(LedgerError::invalid(
            "max_coupons",
            format!("below the {} coupons already issued", stock.issued),
        ));
    }
    let spec = spec.validate()?;
    write_stock(conn, &spec, stock.create_ms)?;
    let status = Some(spec.status.code());
    journal(
        conn, "stock", stock_id, "edit", status, status, origin, None,
    )?;
    let stock = Stock {
        spec,
        create_ms: stock.create_ms,
        issued: stock.issued,
    };
    enqueue(conn, sync, &SyncEvent::StockUpserted(stock.clone()), origin)?;
    Ok(stock)
}

fn set_stock_status_tx(
    conn: &Connection,
    stock_id: &str,
    to: StockStatus,
    origin: &Origin,
    sync: Option<&SyncRenderer>,
) -> Result<Stock, LedgerError> {
    let mut stock = load_stock(conn, stock_id)?.ok_or(LedgerError::StockNotFound)?;
    let from = stock.spec.status;
    if !from.can_become(to) {
        return Err(LedgerError::StateConflict(format!(
            "stock_status: {} cannot become {}",
            from.code(),
            to.code()
        )));
    }
    conn.prepare_cached("UPDATE stocks SET stock_status = ?2 WHERE stock_id = ?1")?
        .execute(params![stock_id, to.code()])
        .map_err(from_constraint)?;
    journal(
        conn,
        "stock",
        stock_id,
        "status",
        Some(from.code()),
        Some(to.code()),
        origin,
        None,
    )?;
    let event = SyncEvent::StockStatus {
        stock_id: stock_id.to_string(),
        status: to.code(),
    };
    enqueue(conn, sync, &event, origin)?;
    stock.spec.status = to;
    Ok(stock)
}

fn claim_tx(
    conn: &Connection,
    req: &ClaimRequest,
    origin: &Origin,
    sync: Option<&SyncRenderer>,
) -> Result<Coupon, LedgerError> {
    // SPEC §5 idempotency: the same key answers the same coupon, whatever happened since.
    let earlier = conn
        .prepare_cached(&format!(
            "SELECT {COUPON_COLUMNS} FROM coupons WHERE issuer = ?1 AND request_id = ?2"
        ))?
        .query_row(params![req.issuer, req.request_id], rows::coupon)
        .optional()?;
    if let Some(c) = earlier {
        if c.stock_id == req.stock_id
            && c.user_code == req.user_code
            && c.app_channel_id == req.app_channel_id
            && c.mobile_masked == req.mobile_masked
        {
            return Ok(c);
        }
        return Err(LedgerError::IdempotencyConflict(
            "request_id: already used with different parameters".into(),
        ));
    }
    let stock = load_stock(conn, &req.stock_id)?.ok_or(LedgerError::StockNotFound)?;
    let spec = &stock.spec;
    if spec.app_channel_id != req.app_channel_id {
        return Err(LedgerError::invalid(
            "app_channel_id",
            "differs from the stock's app_channel_id",
        ));
    }
    if spec.status != StockStatus::Running {
        return Err(LedgerError::StockNotRunning);
    }
    if origin.now >= spec.available_end {
        return Err(LedgerError::StockOutsideWindow);
    }
    if stock.issued >= spec.max_coupons {
        return Err(LedgerError::SoldOut);
    }
    let held: i64 = conn
        .prepare_cached(
            "SELECT count(*) FROM coupons WHERE stock_id = ?1 AND app_channel_id = ?2 AND user_code = ?3",
        )?
        .query_row(params![req.stock_id, req.app_channel_id, req.user_code], |r| r.get(0))?;
    if held >= spec.max_coupons_per_user {
        return Err(LedgerError::UserLimit);
    }
    let (t, amount, minimum, percent, max) = kind_columns(&spec.kind);
    let mut attempts = 0;
    let coupon_id = loop {
        let id = new_coupon_id().map_err(LedgerError::Internal)?;
        let inserted = conn
            .prepare_cached(
                "INSERT INTO coupons (coupon_id, stock_id, app_channel_id, user_code, mobile_masked,
                    issuer, request_id, app_id, coupon_type, coupon_amount, transaction_minimum,
                    discount_percent, discount_amount_max, available_begin_ms, available_end_ms,
                    receive_ms, status, status_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, 1, ?16)
                 ON CONFLICT (coupon_id) DO NOTHING",
            )?
            .execute(params![
                id,
                req.stock_id,
                req.app_channel_id,
                req.user_code,
                req.mobile_masked,
                req.issuer,
                req.request_id,
                spec.app_id,
                t,
                amount,
                minimum,
                percent,
                max,
                spec.available_begin,
                spec.available_end,
                origin.now
            ])
            .map_err(from_constraint)?;
        if inserted == 1 {
            break id;
        }
        attempts += 1;
        if attempts > 8 {
            return Err(LedgerError::Internal(
                "could not draw an unused coupon id".into(),
            ));
        }
    };
    let detail = json!({"stock_id": req.stock_id, "request_id": req.request_id}).to_string();
    journal(
        conn,
        "coupon",
        &coupon_id,
        "issue",
        None,
        Some(1),
        origin,
        Some(detail),
    )?;
    let coupon = Coupon {
        coupon_id,
        stock_id: req.stock_id.clone(),
        app_channel_id: req.app_channel_id,
        user_code: req.user_code.clone(),
        mobile_masked: req.mobile_masked.clone(),
        app_id: spec.app_id.clone(),
        kind: spec.kind,
        available_begin: spec.available_begin,
        available_end: spec.available_end,
        receive_ms: origin.now,
        status: CouponStatus::Available,
        status_ms: origin.now,
        usage_ms: None,
        request_id: req.request_id.clone(),
    };
    enqueue(conn, sync, &SyncEvent::CouponIssued(coupon.clone()), origin)?;
    Ok(coupon)
}

/// SPEC §5 batch rule, also used for a single coupon: either every listed coupon
/// ends expired or deactivated, or nothing changes and the blockers are listed.
fn settle_tx(
    conn: &Connection,
    req: &DeactivateRequest,
    origin: &Origin,
    sync: Option<&SyncRenderer>,
) -> Result<BatchOutcome, LedgerError> {
    let mut wanted: Vec<&HeldCoupon> = Vec::new();
    for c in &req.coupons {
        if !wanted
            .iter()
            .any(|w| w.coupon_id == c.coupon_id && w.stock_id == c.stock_id)
        {
            wanted.push(c);
        }
    }
    let mut illegal = Vec::new();
    let mut plan: Vec<(HeldCoupon, Coupon)> = Vec::new();
    for held in wanted {
        let found = load_coupon(conn, &held.coupon_id)?.filter(|c| {
            c.stock_id == held.stock_id
                && c.user_code == req.user_code
                && c.app_channel_id == req.app_channel_id
        });
        match found {
            None => illegal.push(Illegal {
                coupon: held.clone(),
                status: 0,
            }),
            Some(c) if c.status == CouponStatus::Used => illegal.push(Illegal {
                coupon: held.clone(),
                status: c.status.code(),
            }),
            Some(c) => plan.push((held.clone(), c)),
        }
    }
    if !illegal.is_empty() {
        return Ok(BatchOutcome::Refused(illegal));
    }
    let detail = req
        .reason
        .as_ref()
        .map(|r| json!({ "reason": r }).to_string());
    let mut settled = Vec::with_capacity(plan.len());
    for (held, c) in plan {
        if c.status.is_final() {
            settled.push(Settled {
                coupon: held,
                status: c.status,
                at: c.status_ms,
            });
            continue;
        }
        conn.prepare_cached(
            "UPDATE coupons SET status = ?2, status_ms = ?3 WHERE coupon_id = ?1 AND status = 1",
        )?
        .execute(params![c.coupon_id, req.to.code(), origin.now])
        .map_err(from_constraint)?;
        let event = if req.to == CouponStatus::Expired {
            "expire"
        } else {
            "deactivate"
        };
        coupon_moved(conn, sync, &c, req.to, None, event, origin, detail.clone())?;
        settled.push(Settled {
            coupon: held,
            status: req.to,
            at: origin.now,
        });
    }
    Ok(BatchOutcome::Done(settled))
}

/// Journals a coupon's status change and queues its status call for the platform.
#[allow(clippy::too_many_arguments)]
fn coupon_moved(
    conn: &Connection,
    sync: Option<&SyncRenderer>,
    coupon: &Coupon,
    to: CouponStatus,
    usage_ms: Option<i64>,
    event: &str,
    origin: &Origin,
    detail: Option<String>,
) -> Result<(), LedgerError> {
    let (from, id) = (coupon.status.code(), &coupon.coupon_id);
    journal(
        conn,
        "coupon",
        id,
        event,
        Some(from),
        Some(to.code()),
        origin,
        detail,
    )?;
    let moved = Coupon {
        status: to,
        status_ms: origin.now,
        usage_ms,
        ..coupon.clone()
    };
    let event = SyncEvent::CouponStatus {
        coupon: moved,
        event_ms: origin.now,
    };
    enqueue(conn, sync, &event, origin)
}

fn load_redemption(conn: &Connection, order_id: &str) -> Result<Option<Redemption>, LedgerError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {REDEMPTION_COLUMNS} FROM redemptions WHERE order_id = ?1"
        ))?
        .query_row([order_id], rows::redemption)
        .optional()?)
}

fn redeem_tx(
    conn: &Connection,
    coupon_id: &str,
    order_id: &str,
    order_amount: Fen,
    origin: &Origin,
    sync: Option<&SyncRenderer>,
) -> Result<Redemption, LedgerError> {
    if let Some(r) = load_redemption(conn, order_id)? {
        if r.coupon_id == coupon_id && r.order_amount == order_amount && r.undone_ms.is_none() {
            return Ok(r);
        }
        let why = if r.undone_ms.is_some() {
            "order_id: its redemption was undone; use a new order_id"
        } else {
            "order_id: already used with different parameters"
        };
        return Err(LedgerError::IdempotencyConflict(why.into()));
    }
    let coupon = load_coupon(conn, coupon_id)?.ok_or(LedgerError::CouponNotFound)?;
    if coupon.status != CouponStatus::Available {
        return Err(LedgerError::StateConflict(format!(
            "coupon_status: {} does not allow a redemption",
            coupon.status.code()
        )));
    }
    if origin.now < coupon.available_begin || origin.now >= coupon.available_end {
        return Err(LedgerError::StateConflict(
            "coupon is outside its validity window".into(),
        ));
    }
    let d = discount(&coupon.kind, order_amount)
        .map_err(|DiscountRefusal::BelowThreshold| LedgerError::BelowThreshold)?;
    conn.prepare_cached(
        "INSERT INTO redemptions (order_id, coupon_id, order_amount, discount_amount, pay_amount, usage_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![order_id, coupon_id, order_amount, d.discount, d.pay, origin.now])
    .map_err(from_constraint)?;
    conn.prepare_cached(
        "UPDATE coupons SET status = 2, status_ms = ?2, usage_ms = ?2 WHERE coupon_id = ?1",
    )?
    .execute(params![coupon_id, origin.now])
    .map_err(from_constraint)?;
    let detail = json!({
        "order_id": order_id, "order_amount": order_amount,
        "discount_amount": d.discount, "pay_amount": d.pay,
    })
    .to_string();
    let usage = Some(origin.now);
    coupon_moved(
        conn,
        sync,
        &coupon,
        CouponStatus::Used,
        usage,
        "redeem",
        origin,
        Some(detail),
    )?;
    Ok(Redemption {
        order_id: order_id.to_string(),
        coupon_id: coupon_id.to_string(),
        order_amount,
        discount_amount: d.discount,
        pay_amount: d.pay,
        usage_ms: origin.now,
        undone_ms: None,
    })
}

fn unredeem_tx(
    conn: &Connection,
    coupon_id: &str,
    order_id: &str,
    origin: &Origin,
    sync: Option<&SyncRenderer>,
) -> Result<Redemption, LedgerError> {
    let r = load_redemption(conn, order_id)?
        .filter(|r| r.coupon_id == coupon_id)
        .ok_or_else(|| {
            LedgerError::invalid("order_id", "no redemption of this coupon has this order_id")
        })?;
    if r.undone_ms.is_some() {
        return Ok(r);
    }
    let coupon = load_coupon(conn, coupon_id)?.ok_or(LedgerError::CouponNotFound)?;
    if coupon.status != CouponStatus::Used {
        return Err(LedgerError::StateConflict(format!(
            "coupon_status: {} does not allow an un-redemption",
            coupon.status.code()
        )));
    }
    if origin.now >= coupon.available_end {
        return Err(LedgerError::StateConflict(
            "coupon's window has closed; it can no longer be un-redeemed".into(),
        ));
    }
    conn.prepare_cached("UPDATE redemptions SET undone_ms = ?2 WHERE order_id = ?1")?
        .execute(params![order_id, origin.now])?;
    conn.prepare_cached(
        "UPDATE coupons SET status = 1, status_ms = ?2, usage_ms = NULL WHERE coupon_id = ?1",
    )?
    .execute(params![coupon_id, origin.now])
    .map_err(from_constraint)?;
    let detail = json!({"order_id": order_id, "order_amount": r.order_amount,
                        "discount_amount": r.discount_amount, "pay_amount": r.pay_amount})
    .to_string();
    let to = CouponStatus::Available;
    coupon_moved(
        conn,
        sync,
        &coupon,
        to,
        None,
        "unredeem",
        origin,
        Some(detail),
    )?;
    Ok(Redemption {
        undone_ms: Some(origin.now),
        ..r
    })
}

/// SPEC §7 sweeper: expires up to `limit` available coupons whose window has
/// passed, oldest end first. Returns how many it expired.
fn expire_due_tx(
    conn: &Connection,
    limit: i64,
    origin: &Origin,
    sync: Option<&SyncRenderer>,
) -> Result<usize, LedgerError> {
    let due = conn
        .prepare_cached(&format!(
            "SELECT {COUPON_COLUMNS} FROM coupons WHERE status = 1 AND available_end_ms <= ?1
             ORDER BY available_end_ms LIMIT ?2"
        ))?
        .query_map(params![origin.now, limit], rows::coupon)?
        .collect::<Result<Vec<_>, _>>()?;
    for coupon in &due {
        conn.prepare_cached(
            "UPDATE coupons SET status = 3, status_ms = ?2 WHERE coupon_id = ?1 AND status = 1",
        )?
        .execute(params![coupon.coupon_id, origin.now])
        .map_err(from_constraint)?;
        let to = CouponStatus::Expired;
        coupon_moved(conn, sync, coupon, to, None, "expire", origin, None)?;
    }
    Ok(due.len())
}

fn journal_of(conn: &Connection, entity: &str, id: &str) -> Result<Vec<JournalEntry>, LedgerError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, entity, entity_id, event, from_status, to_status, source, seq_id, at_ms, detail
         FROM journal WHERE entity = ?1 AND entity_id = ?2 ORDER BY id",
    )?;
    let rows = stmt.query_map([entity, id], rows::journal)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

impl Store {
    /// Creates a stock; the same definition again answers the existing stock.
    pub fn create_stock(&self, spec: StockSpec, origin: Origin) -> Result<Stock, LedgerError> {
        let sync = self.inner.sync.clone();
        self.write(move |c| create_stock_tx(c, spec, &origin, sync.as_ref()))
    }

    /// Edits a stock's editable fields (SPEC §5).
    pub fn patch_stock(
        &self,
        stock_id: &str,
        patch: StockPatch,
        origin: Origin,
    ) -> Result<Stock, LedgerError> {
        let id = stock_id.to_string();
        let sync = self.inner.sync.clone();
        self.write(move |c| patch_stock_tx(c, &id, patch, &origin, sync.as_ref()))
    }

    /// Moves a stock along its state machine.
    pub fn set_stock_status(
        &self,
        stock_id: &str,
        to: StockStatus,
        origin: Origin,
    ) -> Result<Stock, LedgerError> {
        let id = stock_id.to_string();
        let sync = self.inner.sync.clone();
        self.write(move |c| set_stock_status_tx(c, &id, to, &origin, sync.as_ref()))
    }

    /// One stock.
    pub fn stock(&self, stock_id: &str) -> Result<Stock, LedgerError> {
        self.read(|c| load_stock(c, stock_id)?.ok_or(LedgerError::StockNotFound))
    }

    /// One stock with its counts by state.
    pub fn stock_with_counts(&self, stock_id: &str) -> Result<(Stock, StockCounts), LedgerError> {
        self.read(|c| {
            let s = load_stock(c, stock_id)?.ok_or(LedgerError::StockNotFound)?;
            Ok((s, stock_counts(c, stock_id)?))
        })
    }

    /// Every stock with its counts, oldest first.
    pub fn stocks_with_counts(&self) -> Result<Vec<(Stock, StockCounts)>, LedgerError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {} FROM stocks ORDER BY create_ms, stock_id",
                rows::STOCK_COLUMNS
            ))?;
            let stocks = stmt
                .query_map([], rows::stock)?
                .collect::<Result<Vec<_>, _>>()?;
            stocks
                .into_iter()
                .map(|s| {
                    let counts = stock_counts(c, &s.spec.stock_id)?;
                    Ok((s, counts))
                })
                .collect()
        })
    }

    /// 领券 or an operator issue (SPEC §5 claim + idempotency).
    pub fn claim(
        &self,
        nonce: Option<NonceUse>,
        req: ClaimRequest,
        origin: Origin,
    ) -> Result<Coupon, LedgerError> {
        let sync = self.inner.sync.clone();
        self.write_once(nonce, move |c| claim_tx(c, &req, &origin, sync.as_ref()))
    }

    /// Expire or deactivate one or a batch of coupons, all or nothing.
    pub fn settle(
        &self,
        nonce: Option<NonceUse>,
        req: DeactivateRequest,
        origin: Origin,
    ) -> Result<BatchOutcome, LedgerError> {
        let sync = self.inner.sync.clone();
        self.write_once(nonce, move |c| settle_tx(c, &req, &origin, sync.as_ref()))
    }

    /// One coupon with its whole journal.
    pub fn coupon_with_journal(
        &self,
        coupon_id: &str,
    ) -> Result<(Coupon, Vec<JournalEntry>), LedgerError> {
        self.read(|c| {
            let coupon = load_coupon(c, coupon_id)?.ok_or(LedgerError::CouponNotFound)?;
            Ok((coupon, journal_of(c, "coupon", coupon_id)?))
        })
    }

    /// One coupon and its stock, read together.
    pub fn coupon_with_stock(&self, coupon_id: &str) -> Result<(Coupon, Stock), LedgerError> {
        self.read(|c| {
            let coupon = load_coupon(c, coupon_id)?.ok_or(LedgerError::CouponNotFound)?;
            let stock = load_stock(c, &coupon.stock_id)?.ok_or(LedgerError::StockNotFound)?;
            Ok((coupon, stock))
        })
    }

    /// One coupon.
    pub fn coupon(&self, coupon_id: &str) -> Result<Coupon, LedgerError> {
        self.read(|c| load_coupon(c, coupon_id)?.ok_or(LedgerError::CouponNotFound))
    }

    /// A page of coupons in issue order, and the cursor of the next page.
    pub fn coupons(&self, q: &CouponQuery) -> Result<(Vec<Coupon>, Option<i64>), LedgerError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {COUPON_COLUMNS}, seq FROM coupons
                 WHERE (?1 IS NULL OR user_code = ?1) AND (?2 IS NULL OR stock_id = ?2)
                   AND (?3 IS NULL OR status = ?3) AND seq > ?4
                 ORDER BY seq LIMIT ?5"
            ))?;
            let rows = stmt.query_map(
                params![
                    q.user_code,
                    q.stock_id,
                    q.status.map(|s| s.code()),
                    q.after.unwrap_or(0),
                    q.limit
                ],
                |r| Ok((rows::coupon(r)?, r.get::<_, i64>(18)?)),
            )?;
            let page = rows.collect::<Result<Vec<_>, _>>()?;
            let next = if page.len() as i64 == q.limit {
                page.last().map(|(_, seq)| *seq)
            } else {
                None
            };
            Ok((page.into_iter().map(|(c, _)| c).collect(), next))
        })
    }

    /// Redeems a coupon against an order (SPEC §10), idempotent by `order_id`.
    pub fn redeem(
        &self,
        coupon_id: &str,
        order_id: &str,
        order_amount: Fen,
        origin: Origin,
    ) -> Result<Redemption, LedgerError> {
        let (id, order) = (coupon_id.to_string(), order_id.to_string());
        let sync = self.inner.sync.clone();
        self.write(move |c| redeem_tx(c, &id, &order, order_amount, &origin, sync.as_ref()))
    }

    /// Undoes the redemption of `order_id` while the coupon's window is open.
    pub fn unredeem(
        &self,
        coupon_id: &str,
        order_id: &str,
        origin: Origin,
    ) -> Result<Redemption, LedgerError> {
        let (id, order) = (coupon_id.to_string(), order_id.to_string());
        let sync = self.inner.sync.clone();
        self.write(move |c| unredeem_tx(c, &id, &order, &origin, sync.as_ref()))
    }

    /// Expires one bounded batch of coupons whose window has passed (one short transaction).
    pub fn expire_due(&self, limit: i64, origin: Origin) -> Result<usize, LedgerError> {
        let sync = self.inner.sync.clone();
        self.write(move |c| expire_due_tx(c, limit, &origin, sync.as_ref()))
    }

    /// Reads a value of the `meta` table.
    pub fn meta(&self, key: &str) -> Result<Option<String>, LedgerError> {
        self.read(|c| {
            Ok(c.prepare_cached("SELECT value FROM meta WHERE key = ?1")?
                .query_row([key], |r| r.get(0))
                .optional()?)
        })
    }

    /// Writes values of the `meta` table, all in one transaction.
    pub fn set_meta(&self, pairs: Vec<(String, String)>) -> Result<(), LedgerError> {
        self.write(move |c| {
            for (k, v) in &pairs {
                c.prepare_cached("INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value")?
                    .execute([k, v])?;
            }
            Ok(())
        })
    }

    /// True when the database holds no stock yet.
    pub fn is_empty(&self) -> Result<bool, LedgerError> {
        self.read(|c| {
            let n: i64 = c.query_row("SELECT count(*) FROM stocks", [], |r| r.get(0))?;
            Ok(n == 0)
        })
    }
}
