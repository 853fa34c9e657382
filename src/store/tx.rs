//! The context every write runs in: the writer's connection, who asked and
//! when, and where the change's platform calls go. It replaces the long
//! parameter lists the write functions would otherwise repeat.

use rusqlite::Connection;

use super::journal::JournalRow;
use std::sync::Arc;

use super::outbox::SyncCalls;
use crate::domain::ledger::{Origin, SyncEvent};
use crate::domain::time::Millis;
use crate::domain::LedgerError;

/// One job's view of the writer's transaction.
pub(super) struct Tx<'a> {
    pub conn: &'a Connection,
    pub origin: &'a Origin,
    sync: Option<&'a Arc<SyncCalls>>,
}

impl<'a> Tx<'a> {
    pub fn new(conn: &'a Connection, origin: &'a Origin, sync: Option<&'a Arc<SyncCalls>>) -> Self {
        Tx { conn, origin, sync }
    }

    /// The time of the request, the same for every row it writes.
    pub fn now(&self) -> Millis {
        self.origin.now
    }

    /// Appends one journal row, in this transaction.
    pub fn journal(&self, row: JournalRow) -> Result<(), LedgerError> {
        row.append(self.conn, self.origin)
    }

    /// Queues the platform call `event` causes, in this transaction; its id,
    /// or `None` when sync is off or the platform itself asked for the change.
    pub fn enqueue(&self, event: &SyncEvent) -> Result<Option<i64>, LedgerError> {
        super::outbox::enqueue(self.conn, self.sync, event, self.origin)
    }
}

/// Turns a constraint raised by the schema into the ledger outcome it stands for.
/// The code checks every rule first, so reaching this means a race the code missed.
pub(super) fn from_constraint(e: rusqlite::Error) -> LedgerError {
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
        LedgerError::from(e)
    }
}
