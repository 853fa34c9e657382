//! Sync to the platform: the calls the outbox holds, and their delivery.

pub mod dispatcher;
pub mod mock;

use std::sync::Arc;

use time::UtcOffset;

use crate::domain::ledger::SyncEvent;
use crate::store::SyncCalls;
use crate::wire::sync::platform_call;

/// The sync calls the store writes to the outbox, rendered in the configured offset.
pub fn sync_calls(tz: UtcOffset) -> Arc<SyncCalls> {
    SyncCalls::new(move |event: &SyncEvent| platform_call(event, tz))
}
