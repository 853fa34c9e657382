//! Every integration test in one binary: one link instead of thirteen, one
//! process whose tests run in parallel. Each module is one area of the ledger;
//! `common` is the harness they share (servers on temp databases, clients,
//! signing, assertions).

mod common;

mod admin_api;
mod admin_lists;
mod admin_page;
mod bench;
mod cli;
mod cli_admin;
mod deploy;
mod durability;
mod edge;
mod fd_exhaustion;
mod hostile;
mod http_layer;
mod metrics;
mod migration;
mod numbers;
mod openapi;
mod operators;
mod partners;
mod platform_api;
mod production;
mod progress;
mod properties;
mod replication;
mod report;
mod sync;
mod tls;
mod webdriver;
