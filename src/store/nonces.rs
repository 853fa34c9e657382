//! Nonces: a signed request's nonce is recorded once, in the same transaction
//! as the request's work, so a replay is refused across restarts.

use rusqlite::Connection;

use crate::domain::time::{now_ms, Millis};
use crate::domain::LedgerError;

/// A nonce to record together with a request's work (replay refusal).
#[derive(Debug, Clone)]
pub struct NonceUse {
    pub api_key: String,
    pub nonce: String,
}

/// Records a nonce; 40104 when this key used it already.
pub(super) fn record(conn: &Connection, nonce: &NonceUse) -> Result<(), LedgerError> {
    let inserted = conn
        .prepare_cached(
            "INSERT INTO nonces (api_key, nonce, seen_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT DO NOTHING",
        )?
        .execute(rusqlite::params![nonce.api_key, nonce.nonce, now_ms()])?;
    if inserted == 0 {
        return Err(LedgerError::NonceReused);
    }
    Ok(())
}

/// Forgets nonces seen before `before` (they are outside every window now).
pub(super) fn purge(conn: &Connection, before: Millis) {
    if let Err(e) = conn.execute("DELETE FROM nonces WHERE seen_ms < ?1", [before]) {
        log::warn!("could not purge old nonces: {e}");
    }
}
