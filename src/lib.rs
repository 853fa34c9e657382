//! coupon-ledger: a durable coupon ledger for a small coupon service provider.
//! See ARCHITECTURE.md for the map of the code.

pub mod admin_client;
pub mod api;
pub mod app;
pub mod bench;
pub mod cli;
pub mod config;
pub mod demo;
pub mod domain;
pub mod http;
pub mod lock;
pub mod logging;
pub mod metrics;
pub mod outbox;
pub mod progress;
pub mod sign;
pub mod store;
pub mod sweeper;
pub mod wire;
