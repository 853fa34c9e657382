//! Subcommands and flags of the `coupon-ledger` binary.

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};
use serde_json::Value;

use crate::app;
use crate::config::Config;
use crate::sign::{self, SignFields, SignRule};
use crate::store::{check_database, Store, StoreOptions};

/// A durable coupon ledger for a small coupon service provider.
#[derive(Parser, Debug)]
#[command(name = "coupon-ledger", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// What to do.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve the ledger over HTTP (no --config: the embedded demo default).
    Serve {
        /// TOML config file.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Listen address, overriding the config.
        #[arg(long)]
        listen: Option<String>,
        /// Database file, overriding the config.
        #[arg(long)]
        db: Option<PathBuf>,
    },
    /// Print the string-to-sign and the sign of a JSON request body.
    Sign {
        /// The partner's secret.
        #[arg(long)]
        secret: String,
        /// Which fields are signed: all or common.
        #[arg(long, default_value = "all")]
        sign_fields: String,
        /// The name of the appended secret.
        #[arg(long, default_value = "key")]
        key_name: String,
        /// The JSON body.
        file: PathBuf,
    },
    /// Verify every ledger invariant on a database file; exits 1 listing violations.
    Check {
        /// The database file.
        db: PathBuf,
    },
    /// Print a freshly signed demo claim for a database made by the embedded default.
    DemoCurl {
        /// The database file.
        #[arg(long, default_value = "ledger.db")]
        db: PathBuf,
        /// Where the server listens.
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: String,
    },
}

/// Runs a parsed command; `Err` is a one-line message for stderr, exit code 1.
pub fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Serve { config, listen, db } => serve(config, listen, db),
        Command::Sign {
            secret,
            sign_fields,
            key_name,
            file,
        } => sign_file(&secret, &sign_fields, key_name, &file),
        Command::Check { db } => check(&db),
        Command::DemoCurl { db, addr } => demo_curl(&db, &addr),
    }
}

fn serve(
    config: Option<PathBuf>,
    listen: Option<String>,
    db: Option<PathBuf>,
) -> Result<(), String> {
    let mut cfg = match &config {
        Some(path) => Config::from_file(path)?,
        None => Config::embedded_default(),
    };
    if let Some(l) = listen {
        cfg.listen = l;
    }
    if let Some(d) = db {
        cfg.db = d;
    }
    let running = app::start(cfg)?;
    let addr = running.local_addr();
    eprintln!(
        "coupon-ledger listening on http://{addr} (database {})",
        running.config().db.display()
    );
    if running.config().demo {
        match &running.demo {
            Some(d) => {
                eprintln!("embedded default: demo partner and running stock `{}`", crate::demo::DEMO_STOCK);
                eprintln!("  api_key     {}", d.api_key);
                eprintln!("  secret      {}", d.secret);
                eprintln!("  admin token {}", d.admin_token);
                eprintln!("claim a coupon (signed now: valid for 5 minutes, once; `coupon-ledger demo-curl` prints a fresh one):");
                println!("{}", d.claim_curl(&addr.to_string())?);
            }
            None => eprintln!(
                "warning: this database was not created by the embedded default, so no partner is configured; use --config"
            ),
        }
    }
    running.join();
    Ok(())
}

fn sign_file(secret: &str, fields: &str, key_name: String, file: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let map = match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(m)) => m,
        Ok(_) => return Err(format!("{}: not a JSON object", file.display())),
        Err(e) => return Err(format!("{}: not valid JSON: {e}", file.display())),
    };
    let fields = match fields {
        "all" => SignFields::All,
        "common" => SignFields::Common,
        other => return Err(format!("--sign-fields: {other:?} is not all or common")),
    };
    let rule = SignRule { fields, key_name };
    println!(
        "string-to-sign: {}",
        sign::string_to_sign(&map, &rule, secret)
    );
    println!("sign: {}", sign::sign(&map, &rule, secret));
    Ok(())
}

fn check(db: &Path) -> Result<(), String> {
    let violations = check_database(db)?;
    if violations.is_empty() {
        println!("ok: {} holds every ledger invariant", db.display());
        return Ok(());
    }
    for v in &violations {
        println!("{v}");
    }
    Err(format!(
        "{} violations in {}",
        violations.len(),
        db.display()
    ))
}

fn demo_curl(db: &Path, addr: &str) -> Result<(), String> {
    if !db.exists() {
        return Err(format!(
            "{}: no such database; run `coupon-ledger serve` first",
            db.display()
        ));
    }
    let defaults = Config::embedded_default();
    let store = Store::open(
        db,
        StoreOptions {
            sync: defaults.sync,
            timestamp_window_s: defaults.timestamp_window_s,
        },
    )?;
    let found = (
        store.meta("demo_api_key").map_err(|e| e.to_string())?,
        store.meta("demo_secret").map_err(|e| e.to_string())?,
        store.meta("demo_admin_token").map_err(|e| e.to_string())?,
    );
    match found {
        (Some(api_key), Some(secret), Some(admin_token)) => {
            let demo = crate::demo::Demo {
                api_key,
                secret,
                admin_token,
            };
            println!("{}", demo.claim_curl(addr)?);
            Ok(())
        }
        _ => Err(format!(
            "{}: not a database made by the embedded default",
            db.display()
        )),
    }
}
