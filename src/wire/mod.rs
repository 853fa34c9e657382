//! The partner-facing JSON: field readers with their limits, the renderers of
//! stocks, coupons and outbox calls, the platform's sync calls, and the
//! voucher record. Shared by `api/`, `outbox/` and the CLI, so none of them
//! imports another's handlers. No I/O and no SQL here.

pub mod fields;
pub mod render;
pub mod report;
pub mod requests;
pub mod sync;
pub mod voucher;
