//! coupon-ledger: a durable coupon ledger for a small coupon service provider.
//! See ARCHITECTURE.md for the map of the code.

pub mod config;
pub mod domain;
pub mod sign;
pub mod store;
