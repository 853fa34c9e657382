//! Pure types and rules of the ledger. Nothing here does I/O.

pub mod coupon;
pub mod discount;
pub mod error;
pub mod ids;
pub mod ledger;
pub mod money;
pub mod net;
pub mod report;
pub mod stock;
pub mod time;
pub mod voucher;

pub use error::LedgerError;
