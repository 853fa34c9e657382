//! Authentication of partner calls, once for every protocol: the api key, the
//! sign over the body as sent, the timestamp window and the nonce. Refusals are
//! logged at warn (rate-limited) with the key and the peer address.

use serde_json::{Map, Value};

use super::{access, App};
use crate::config::Partner;
use crate::domain::time::now_ms;
use crate::domain::LedgerError;
use crate::sign;
use crate::store::NonceUse;
use crate::wire::fields::{parse_object, Fields};

/// A request whose signature, timestamp and nonce have been checked.
pub struct Signed<'a> {
    pub body: Map<String, Value>,
    pub partner: &'a Partner,
    pub nonce: NonceUse,
    pub seq_id: Option<String>,
}

/// Checks a body's api key, source address, sign, timestamp, rate limit and
/// nonce, in the order of docs/protocol.md ("When a signed request is
/// refused"). Everything up to the rate limit is CPU only, so a refused call
/// does no database work. The nonce is returned, not recorded: the store
/// records it with the request's work.
pub fn authenticate<'a>(app: &'a App, body: &[u8]) -> Result<Signed<'a>, LedgerError> {
    let map = parse_object(body)?;
    let f = Fields::new(&map);
    let api_key = f.str("api_key", 64)?;
    let Some(partner) = app.config.partner(&api_key) else {
        access::refused("unknown api_key", &api_key);
        return Err(LedgerError::UnknownApiKey);
    };
    let seq_id = f.opt_str("seq_id", 64)?;
    access::partner(&partner.name, seq_id.as_deref());
    admit_source(app, partner)?;
    check_sign_and_time(app, body, &map, partner, true)?;
    charge_rate(app, partner)?;
    let nonce = f.str("nonce", 64)?;
    Ok(Signed {
        nonce: NonceUse {
            api_key: partner.api_key.clone(),
            nonce,
        },
        partner,
        seq_id,
        body: map,
    })
}

/// The partner's source allowlist (40301), counted by partner in `/metrics`
/// when it refuses.
pub fn admit_source(app: &App, partner: &Partner) -> Result<(), LedgerError> {
    app.edge
        .allow(partner, access::client_ip())
        .inspect_err(|_| app.metrics.not_allowed(&partner.name))
}

/// One call of the partner's rate limit (42900), counted by partner in
/// `/metrics` when it refuses. Only for a call whose sign and timestamp
/// passed: unsigned calls must not spend the partner's bucket.
pub fn charge_rate(app: &App, partner: &Partner) -> Result<(), LedgerError> {
    app.edge
        .charge(partner)
        .inspect_err(|_| app.metrics.rate_limited(&partner.name))
}

/// Checks a body's sign and (when `timestamp_required`, or when one is sent)
/// its timestamp, logging a refusal at warn.
pub fn check_sign_and_time(
    app: &App,
    body: &[u8],
    map: &Map<String, Value>,
    partner: &Partner,
    timestamp_required: bool,
) -> Result<(), LedgerError> {
    // Over the body as sent, so every number is hashed with its own text.
    if !sign::verify_body(body, map, &partner.sign, &partner.secret) {
        access::refused("bad signature", &partner.api_key);
        log::debug!(
            "bad signature from {}: string-to-sign was {}",
            partner.name,
            sign::masked_string_to_sign_raw(body, &partner.sign)
        );
        return Err(LedgerError::BadSignature);
    }
    if timestamp_required || map.get("timestamp").is_some_and(|v| !v.is_null()) {
        sign::check_timestamp(
            map.get("timestamp"),
            now_ms() / 1000,
            app.config.timestamp_window_s,
        )
        .inspect_err(|_| access::refused("timestamp outside the window", &partner.api_key))?;
    }
    Ok(())
}
