//! Nonces: a signed request's nonce is used once per api_key. The writer
//! keeps the nonces of the replay window in memory ([`Seen`]) and refuses a
//! reuse there; each new nonce is also written to the `nonces` table in the
//! transaction of the request's work, so the window survives a restart.
//!
//! The table is ordered by the time a nonce was seen, so each write goes to
//! its last page and the purge cuts pages off its front. Before, it was keyed
//! by the nonce itself: every signed request wrote a page at a random place
//! of that index (and of the index by age beside it) at every commit.

use std::collections::hash_map::RandomState;
use std::collections::{HashSet, VecDeque};
use std::hash::BuildHasher;

use rusqlite::Connection;

use crate::domain::time::Millis;
use crate::domain::LedgerError;

/// A nonce to record together with a request's work (replay refusal).
#[derive(Debug, Clone)]
pub struct NonceUse {
    pub api_key: String,
    pub nonce: String,
}

/// The nonces seen within the replay window, held by the writer thread.
///
/// A nonce is kept as a 64-bit hash of its api_key and text, keyed at random
/// per process, in one set per minute in which it was seen: lookups try each
/// minute's set, and a minute's set is dropped whole when the window has
/// passed it. 10 to 20 bytes per nonce: a window of 10 minutes at 1,000
/// signed requests a second is 6 to 12 MB. Two different nonces share a hash
/// with odds of one in 2^64 per pair; the worst a clash does is refuse a
/// fresh request with 40104.
///
/// The nonces the current transaction added are kept aside until it ends, so
/// a transaction that is rolled back takes its nonces with it.
pub(super) struct Seen {
    hasher: RandomState,
    /// Oldest minute first.
    minutes: VecDeque<Minute>,
    /// Hashes added since the last commit or rollback, with their minute.
    pending: Vec<(Millis, u64)>,
    /// How long a nonce is remembered after it was seen.
    keep_ms: Millis,
}

struct Minute {
    start: Millis,
    hashes: HashSet<u64>,
}

const MINUTE_MS: Millis = 60_000;

impl Seen {
    /// The nonces of the last `keep_ms` before `now`, read from the table.
    pub fn load(conn: &Connection, keep_ms: Millis, now: Millis) -> rusqlite::Result<Seen> {
        let mut seen = Seen {
            hasher: RandomState::new(),
            minutes: VecDeque::new(),
            pending: Vec::new(),
            keep_ms,
        };
        let mut stmt = conn.prepare(
            "SELECT api_key, nonce, seen_ms FROM nonces WHERE seen_ms >= ?1 ORDER BY seen_ms",
        )?;
        let mut rows = stmt.query([now.saturating_sub(keep_ms)])?;
        while let Some(row) = rows.next()? {
            let (api_key, nonce): (String, String) = (row.get(0)?, row.get(1)?);
            let h = seen.hash(&api_key, &nonce);
            seen.minute(row.get(2)?).insert(h);
        }
        Ok(seen)
    }

    /// How many nonces are held.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.minutes.iter().map(|m| m.hashes.len()).sum()
    }

    fn hash(&self, api_key: &str, nonce: &str) -> u64 {
        self.hasher.hash_one((api_key, nonce))
    }

    /// The set of the minute of `at`, made when needed. Times run forward but
    /// for clock steps; a nonce seen before the newest minute joins it.
    fn minute(&mut self, at: Millis) -> &mut HashSet<u64> {
        let start = at - at.rem_euclid(MINUTE_MS);
        if self.minutes.back().is_none_or(|m| m.start < start) {
            self.minutes.push_back(Minute {
                start,
                hashes: HashSet::new(),
            });
        }
        let newest = self.minutes.len() - 1;
        &mut self.minutes[newest].hashes
    }

    /// Records a nonce seen at `now` in the transaction open on `conn`;
    /// 40104 when its api_key used it within the window.
    pub fn record(
        &mut self,
        conn: &Connection,
        nonce: &NonceUse,
        now: Millis,
    ) -> Result<(), LedgerError> {
        let h = self.hash(&nonce.api_key, &nonce.nonce);
        if self.minutes.iter().any(|m| m.hashes.contains(&h)) {
            return Err(LedgerError::NonceReused);
        }
        conn.prepare_cached("INSERT INTO nonces (seen_ms, api_key, nonce) VALUES (?1, ?2, ?3)")?
            .execute(rusqlite::params![now, nonce.api_key, nonce.nonce])?;
        self.minute(now).insert(h);
        let start = self.minutes.back().map_or(now, |m| m.start);
        self.pending.push((start, h));
        Ok(())
    }

    /// The transaction committed: its nonces are kept.
    pub fn committed(&mut self) {
        self.pending.clear();
    }

    /// The transaction was rolled back: its nonces are forgotten.
    pub fn rolled_back(&mut self) {
        for (start, h) in self.pending.drain(..) {
            if let Some(m) = self.minutes.iter_mut().find(|m| m.start == start) {
                m.hashes.remove(&h);
            }
        }
    }

    /// Forgets what the window has passed: whole minutes in memory, and the
    /// rows seen more than `keep_ms` before `now`. Runs outside a transaction.
    pub fn purge(&mut self, conn: &Connection, now: Millis) {
        let before = now.saturating_sub(self.keep_ms);
        while self
            .minutes
            .front()
            .is_some_and(|m| m.start + MINUTE_MS <= before)
        {
            self.minutes.pop_front();
        }
        if let Err(e) = conn.execute("DELETE FROM nonces WHERE seen_ms < ?1", [before]) {
            log::warn!("could not purge old nonces: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEEP: Millis = 605_000;

    fn ledger() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE nonces (seen_ms INTEGER NOT NULL, api_key TEXT NOT NULL,
                 nonce TEXT NOT NULL, PRIMARY KEY (seen_ms, api_key, nonce)) WITHOUT ROWID;",
        )
        .unwrap();
        conn
    }

    fn n(api_key: &str, nonce: &str) -> NonceUse {
        NonceUse {
            api_key: api_key.into(),
            nonce: nonce.into(),
        }
    }

    fn rows(conn: &Connection) -> i64 {
        conn.query_row("SELECT count(*) FROM nonces", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn a_nonce_is_refused_the_second_time_for_its_key_only() {
        let conn = ledger();
        let mut seen = Seen::load(&conn, KEEP, 1_000_000).unwrap();
        seen.record(&conn, &n("k1", "a"), 1_000_000).unwrap();
        assert_eq!(
            seen.record(&conn, &n("k1", "a"), 1_000_001),
            Err(LedgerError::NonceReused)
        );
        seen.record(&conn, &n("k2", "a"), 1_000_002).unwrap();
        // The pair is hashed as a pair: "k1"+"a2" is not "k1a"+"2".
        seen.record(&conn, &n("k1a", "2"), 1_000_003).unwrap();
        seen.record(&conn, &n("k1", "a2"), 1_000_004).unwrap();
        seen.committed();
        assert_eq!(rows(&conn), 4, "the refused use wrote nothing");
        assert_eq!(seen.len(), 4);
    }

    #[test]
    fn a_rolled_back_transaction_forgets_its_nonces_and_a_committed_one_keeps_them() {
        let conn = ledger();
        let mut seen = Seen::load(&conn, KEEP, 1_000_000).unwrap();
        seen.record(&conn, &n("k", "kept"), 1_000_000).unwrap();
        seen.committed();
        // A transaction that spans a minute's end, then is rolled back.
        seen.record(&conn, &n("k", "gone-1"), 1_019_999).unwrap();
        seen.record(&conn, &n("k", "gone-2"), 1_020_000).unwrap();
        seen.rolled_back();
        assert_eq!(seen.len(), 1);
        seen.record(&conn, &n("k", "gone-1"), 1_030_000).unwrap();
        seen.record(&conn, &n("k", "gone-2"), 1_030_000).unwrap();
        assert_eq!(
            seen.record(&conn, &n("k", "kept"), 1_030_000),
            Err(LedgerError::NonceReused)
        );
    }

    #[test]
    fn a_restart_reads_the_window_back_from_the_table() {
        let conn = ledger();
        let mut seen = Seen::load(&conn, KEEP, 0).unwrap();
        seen.record(&conn, &n("k", "old"), 0).unwrap();
        seen.record(&conn, &n("k", "recent"), 500_000).unwrap();
        seen.committed();
        let mut again = Seen::load(&conn, KEEP, KEEP + 1).unwrap();
        assert_eq!(again.len(), 1, "only what the window still covers");
        assert_eq!(
            again.record(&conn, &n("k", "recent"), KEEP + 2),
            Err(LedgerError::NonceReused)
        );
        again.record(&conn, &n("k", "old"), KEEP + 3).unwrap();
    }

    #[test]
    fn the_purge_forgets_only_what_the_window_has_passed() {
        let conn = ledger();
        let mut seen = Seen::load(&conn, KEEP, 0).unwrap();
        seen.record(&conn, &n("k", "first"), 10_000).unwrap();
        seen.record(&conn, &n("k", "later"), 130_000).unwrap();
        seen.committed();
        // At KEEP + 10,000 the first nonce is just out of the window.
        seen.purge(&conn, KEEP + 10_001);
        assert_eq!(rows(&conn), 1, "its row is gone");
        assert_eq!(
            seen.len(),
            2,
            "its minute is kept until the whole minute is out of the window"
        );
        seen.purge(&conn, KEEP + MINUTE_MS);
        assert_eq!(seen.len(), 1);
        assert_eq!(
            seen.record(&conn, &n("k", "later"), KEEP + MINUTE_MS),
            Err(LedgerError::NonceReused),
            "still within its window"
        );
        seen.record(&conn, &n("k", "first"), KEEP + MINUTE_MS)
            .unwrap();
    }

    #[derive(Debug, Clone)]
    enum Op {
        /// Record nonce `n` of key `k`, `dt` ms after the last step.
        Record {
            k: u8,
            n: u8,
            dt: Millis,
        },
        Commit,
        /// The transaction is rolled back.
        Rollback,
        /// Commit, then purge outside a transaction, as the writer does.
        Purge {
            dt: Millis,
        },
        /// A crash: the open transaction is lost and the window is read back.
        Restart,
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            6 => (0u8..3, 0u8..6, 0i64..120_000).prop_map(|(k, n, dt)| Op::Record { k, n, dt }),
            2 => Just(Op::Commit),
            1 => Just(Op::Rollback),
            1 => (0i64..400_000).prop_map(|dt| Op::Purge { dt }),
            1 => Just(Op::Restart),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]

        /// Within the window a committed nonce is always refused, across
        /// purges and restarts; a nonce never committed (new, or only in
        /// rolled-back transactions) is always accepted. Between the window
        /// and a minute after it, either answer is right.
        #[test]
        fn a_nonce_is_refused_within_its_window_and_only_if_it_was_committed(
            ops in proptest::collection::vec(op(), 1..120)
        ) {
            let conn = ledger();
            let mut now: Millis = 1_000_000;
            let mut seen = Seen::load(&conn, KEEP, now).unwrap();
            conn.execute_batch("BEGIN").unwrap();
            // (key, nonce) -> when it was committed, and this transaction's.
            let mut committed: Vec<(u8, u8, Millis)> = Vec::new();
            let mut pending: Vec<(u8, u8, Millis)> = Vec::new();
            for op in ops {
                match op {
                    Op::Record { k, n, dt } => {
                        now += dt;
                        let got = seen.record(&conn, &n_of(k, n), now);
                        let in_tx = pending.iter().any(|&(pk, pn, _)| (pk, pn) == (k, n));
                        let last = committed
                            .iter()
                            .filter(|&&(ck, cn, _)| (ck, cn) == (k, n))
                            .map(|&(_, _, at)| at)
                            .max();
                        match last {
                            _ if in_tx => proptest::prop_assert_eq!(&got, &Err(LedgerError::NonceReused)),
                            Some(at) if now - at < KEEP => {
                                proptest::prop_assert_eq!(&got, &Err(LedgerError::NonceReused), "seen at {}, now {}", at, now)
                            }
                            None => proptest::prop_assert_eq!(&got, &Ok(())),
                            Some(_) => {}
                        }
                        if got.is_ok() {
                            pending.push((k, n, now));
                        }
                    }
                    Op::Commit => {
                        conn.execute_batch("COMMIT; BEGIN").unwrap();
                        seen.committed();
                        committed.append(&mut pending);
                    }
                    Op::Rollback => {
                        conn.execute_batch("ROLLBACK; BEGIN").unwrap();
                        seen.rolled_back();
                        pending.clear();
                    }
                    Op::Purge { dt } => {
                        conn.execute_batch("COMMIT").unwrap();
                        seen.committed();
                        committed.append(&mut pending);
                        now += dt;
                        seen.purge(&conn, now);
                        conn.execute_batch("BEGIN").unwrap();
                    }
                    Op::Restart => {
                        conn.execute_batch("ROLLBACK").unwrap();
                        pending.clear();
                        seen = Seen::load(&conn, KEEP, now).unwrap();
                        conn.execute_batch("BEGIN").unwrap();
                    }
                }
            }
        }
    }

    fn n_of(k: u8, n: u8) -> NonceUse {
        NonceUse {
            api_key: format!("key-{k}"),
            nonce: format!("nonce-{n}"),
        }
    }

    #[test]
    fn a_clock_step_back_keeps_the_nonce_in_the_newest_minute() {
        let conn = ledger();
        let mut seen = Seen::load(&conn, KEEP, 0).unwrap();
        seen.record(&conn, &n("k", "a"), 200_000).unwrap();
        seen.record(&conn, &n("k", "b"), 100_000).unwrap();
        seen.committed();
        assert_eq!(seen.minutes.len(), 1);
        assert_eq!(
            seen.record(&conn, &n("k", "b"), 200_001),
            Err(LedgerError::NonceReused)
        );
    }
}
