//! The `coupon-ledger` binary: parse the CLI, run, map errors to exit codes.

use clap::Parser;

fn main() {
    coupon_ledger::logging::init();
    let cli = coupon_ledger::cli::Cli::parse();
    if let Err(e) = coupon_ledger::cli::run(cli) {
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), "coupon-ledger: {e}");
        std::process::exit(1);
    }
}
