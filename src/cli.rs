//! Subcommands and flags of the `coupon-ledger` binary.

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};
use serde_json::{json, Value};

use crate::admin_client::{segment, AdminClient};
use crate::app;
use crate::config::Config;
use crate::lock::DbLock;
use crate::sign::{self, SignFields, SignRule};
use crate::store::{check_database_to, CheckDepth, Store, StoreOptions};

/// Prints a line on stdout; a closed stdout is not worth a panic.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// Prints a line on stderr; a closed stderr is not worth a panic.
macro_rules! tell {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

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
        /// Serve HTTPS on the listen address with a throwaway certificate for localhost,
        /// 127.0.0.1 and ::1 (30 days), made at every start and written beside the database
        /// as DB.selfsigned.crt and DB.selfsigned.key. For a demo only; not with tls_cert.
        #[arg(long)]
        tls_self_signed: bool,
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
        /// SQLite's quick_check instead of integrity_check: skips matching every index
        /// entry against its table row (about half the time on a big ledger); every ledger
        /// rule is still checked.
        #[arg(long)]
        quick: bool,
    },
    /// Inspect, retry and abandon the calls waiting for the platform.
    Outbox {
        #[command(subcommand)]
        action: OutboxAction,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Stocks, through the running server's admin API: create FILE, list, show ID, status ID N.
    Stock {
        #[command(subcommand)]
        action: StockAction,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Coupons, through the running server's admin API: issue FILE, show ID, redeem, unredeem.
    Coupon {
        #[command(subcommand)]
        action: CouponAction,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// The daily statement (对账) of one local day as CSV, from the running server.
    Report {
        /// The day, yyyy-MM-dd, in the server's utc_offset.
        #[arg(long)]
        date: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Import third-party vouchers (docs/protocol.md, voucher gateway).
    Voucher {
        #[command(subcommand)]
        action: VoucherAction,
        #[command(flatten)]
        db: DbArgs,
    },
    /// A stand-in travel platform: verifies signatures, records calls, fails some on purpose.
    MockPlatform {
        /// Listen address.
        #[arg(long, default_value = "127.0.0.1:9090")]
        listen: String,
        /// The secret the ledger signs its calls with (`[platform] secret`).
        #[arg(long)]
        secret: String,
        /// Fraction of calls (0 to 1) answered with an error on purpose.
        #[arg(long, default_value_t = 0.0)]
        fail_rate: f64,
    },
    /// Measure throughput and latency: of in-process servers on temp databases, or of a running
    /// server with --target.
    ///
    /// Without --target: start two servers in-process on temp databases and print one table
    /// (HTTP ceiling, healthz, claims, queries, claims without group commit, the writer without
    /// HTTP; then over HTTPS on the first server, with a self-signed certificate: the ceiling,
    /// claims and queries on keep-alive connections, and a full handshake per request) and
    /// check each stock's issued count against the claims that succeeded. With --target: drive
    /// a running server in one --mode, over plain HTTP, or over HTTPS with
    /// --target https://... --cacert FILE.
    Bench {
        /// Drive the server listening here, `http://host:port` or `host:port`, instead of
        /// starting one.
        #[arg(long)]
        target: Option<String>,
        /// With --target: claim, query, healthz, livez or ceiling.
        #[arg(long, requires = "target")]
        mode: Option<String>,
        /// Keep-alive connections (one thread each), a comma list such as 16,64,256; every
        /// row runs at each. Default: 16,64,256, or 16 with --target.
        #[arg(long)]
        connections: Option<String>,
        /// How long each row runs. Default: 5, or 10 with --target.
        #[arg(long)]
        seconds: Option<u64>,
        /// Pre-fill this many coupons into each stock first (bulk inserts), then also time
        /// `check` and print the bytes per coupon. Not with --target.
        #[arg(long, conflicts_with = "target")]
        scale: Option<u64>,
        /// At each connection count, after the other rows: bulk-fill this many coupons into
        /// a second stock, then run claims while the sweeper expires all of them (the
        /// claim+sweep row). Not with --target.
        #[arg(long, conflicts_with = "target")]
        sweep: Option<u64>,
        /// Without --target: run only these rows, a comma list such as claim,claim-tls (rows:
        /// http-ceiling, healthz, claim, query, claim-no-group, writer-direct, ceiling-tls,
        /// claim-tls, query-tls, handshake-tls; http-ceiling always runs, every row is compared
        /// with it). Default: every row.
        #[arg(long, conflicts_with = "target")]
        rows: Option<String>,
        /// Without --target: run every row this many times, in whole rounds, and print each
        /// row's median run with every run's req/s beside it (runs on one machine can differ
        /// by a third; compare medians). The claim+sweep row runs once.
        #[arg(long, default_value_t = 1, conflicts_with = "target", value_parser = clap::value_parser!(u64).range(1..=20))]
        repeat: u64,
        /// With --target: partner api_key (default: the embedded default's demo partner, read
        /// from --db).
        #[arg(long, requires = "target")]
        api_key: Option<String>,
        /// With --target: partner secret (default: the demo partner's).
        #[arg(long, requires = "target")]
        secret: Option<String>,
        /// With --target: the stock to claim from or query [default: demo-stock].
        #[arg(long, requires = "target")]
        stock: Option<String>,
        /// With --target: the stock's app_channel_id [default: 1].
        #[arg(long, requires = "target")]
        app_channel_id: Option<i64>,
        /// With --target: database of the embedded default, to read the demo partner from
        /// [default: ledger.db].
        #[arg(long, requires = "target")]
        db: Option<PathBuf>,
        /// With --target https://...: the PEM file of the certificates to trust (the
        /// server's own self-signed one, or a CA bundle such as
        /// /etc/ssl/certs/ca-certificates.crt). Connections are keep-alive; each one's
        /// handshake is made before timing.
        #[arg(long, requires = "target")]
        cacert: Option<PathBuf>,
    },
    /// Copy a ledger to DEST while it runs (online, consistent), then verify the copy like `check`.
    Backup {
        /// The new file to write; it must not exist.
        dest: PathBuf,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Print a freshly signed demo claim for a database made by the embedded default.
    DemoCurl {
        /// The database file.
        #[arg(long, default_value = "ledger.db")]
        db: PathBuf,
        /// Where the server listens [default: the address the embedded default's
        /// server last recorded in the database, else 127.0.0.1:8080].
        #[arg(long)]
        addr: Option<String>,
    },
}

/// Which database a command works on: `--db PATH`, or the `db` of `--config FILE`.
#[derive(clap::Args, Debug)]
pub struct DbArgs {
    /// The database file.
    #[arg(long, global = true)]
    pub db: Option<PathBuf>,
    /// Take the database (and time offset) from this config file.
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
}

/// Which running server a mirror of the admin API talks to, and as whom.
#[derive(clap::Args, Debug)]
pub struct ServerArgs {
    /// The server's admin address, `http://host:port` or `host:port`.
    #[arg(long, global = true)]
    pub server: Option<String>,
    /// An operator's admin token [default: the config's admin_token, else
    /// COUPON_LEDGER_ADMIN_TOKEN].
    #[arg(long, global = true)]
    pub token: Option<String>,
    /// Take the server (admin_listen, else listen) and admin_token from this config file.
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
}

/// `coupon-ledger stock ...`
#[derive(Subcommand, Debug)]
pub enum StockAction {
    /// Create a stock from a JSON file (`-`: standard input), as POST /admin/stocks.
    Create {
        /// The stock as JSON.
        file: PathBuf,
    },
    /// Every stock with its counts.
    List,
    /// One stock with its counts.
    Show {
        /// The stock_id.
        id: String,
    },
    /// Move a stock to another status (1 to 5).
    Status {
        /// The stock_id.
        id: String,
        /// The new stock_status.
        status: i64,
    },
}

/// `coupon-ledger coupon ...`
#[derive(Subcommand, Debug)]
pub enum CouponAction {
    /// Issue a coupon from a JSON file (`-`: standard input), as POST /admin/coupons.
    Issue {
        /// The request as JSON: stock_id, user_code, app_channel_id, request_id.
        file: PathBuf,
    },
    /// One coupon with its journal.
    Show {
        /// The coupon_id.
        id: String,
    },
    /// Redeem a coupon against an order.
    Redeem {
        /// The coupon_id.
        id: String,
        /// The order.
        #[arg(long)]
        order_id: String,
        /// The order amount in fen (an integer).
        #[arg(long)]
        amount: i64,
    },
    /// Undo the redemption of an order.
    Unredeem {
        /// The coupon_id.
        id: String,
        /// The order that redeemed it.
        #[arg(long)]
        order_id: String,
    },
}

fn admin_client(args: &ServerArgs) -> Result<AdminClient, String> {
    AdminClient::resolve(
        args.server.as_deref(),
        args.token.as_deref(),
        args.config.as_deref(),
    )
}

/// A request body from a file, or standard input for `-`, sent as written.
fn read_body(file: &Path) -> Result<Vec<u8>, String> {
    if file.as_os_str() == "-" {
        let mut body = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut body)
            .map_err(|e| format!("cannot read standard input: {e}"))?;
        return Ok(body);
    }
    std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))
}

fn print_data(data: &Value) -> Result<(), String> {
    let text = serde_json::to_string_pretty(data).map_err(|e| e.to_string())?;
    say!("{text}");
    Ok(())
}

fn stock(action: StockAction, args: &ServerArgs) -> Result<(), String> {
    let client = admin_client(args)?;
    let data = match action {
        StockAction::Create { file } => {
            client.call("POST", "/admin/stocks", Some(&read_body(&file)?))?
        }
        StockAction::List => client.call("GET", "/admin/stocks", None)?,
        StockAction::Show { id } => {
            client.call("GET", &format!("/admin/stocks/{}", segment(&id)), None)?
        }
        StockAction::Status { id, status } => {
            let body = json!({ "stock_status": status }).to_string();
            client.call(
                "POST",
                &format!("/admin/stocks/{}/status", segment(&id)),
                Some(body.as_bytes()),
            )?
        }
    };
    print_data(&data)
}

fn coupon(action: CouponAction, args: &ServerArgs) -> Result<(), String> {
    let client = admin_client(args)?;
    let data = match action {
        CouponAction::Issue { file } => {
            client.call("POST", "/admin/coupons", Some(&read_body(&file)?))?
        }
        CouponAction::Show { id } => {
            client.call("GET", &format!("/admin/coupons/{}", segment(&id)), None)?
        }
        CouponAction::Redeem {
            id,
            order_id,
            amount,
        } => {
            let body = json!({ "order_id": order_id, "order_amount": amount }).to_string();
            client.call(
                "POST",
                &format!("/admin/coupons/{}/redeem", segment(&id)),
                Some(body.as_bytes()),
            )?
        }
        CouponAction::Unredeem { id, order_id } => {
            let body = json!({ "order_id": order_id }).to_string();
            client.call(
                "POST",
                &format!("/admin/coupons/{}/unredeem", segment(&id)),
                Some(body.as_bytes()),
            )?
        }
    };
    print_data(&data)
}

fn report(date: &str, args: &ServerArgs) -> Result<(), String> {
    let client = admin_client(args)?;
    let csv = client.text(&format!("/admin/report?date={}", segment(date)))?;
    use std::io::Write as _;
    let _ = std::io::stdout().lock().write_all(csv.as_bytes());
    Ok(())
}

/// `coupon-ledger outbox ...`
#[derive(Subcommand, Debug)]
pub enum OutboxAction {
    /// List calls, oldest first.
    List {
        /// pending, dead, delivered or abandoned.
        #[arg(long)]
        state: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// Put a dead call back in line, with a fresh attempt budget.
    Retry {
        /// The call's id.
        id: i64,
    },
    /// Give up on a dead call for good (journaled); the calls behind it move on.
    Abandon {
        /// The call's id.
        id: i64,
        /// Why, for the journal (required, at most 256 characters).
        #[arg(long)]
        reason: String,
    },
}

/// `coupon-ledger voucher ...`
#[derive(Subcommand, Debug)]
pub enum VoucherAction {
    /// Import a file of JSON lines, one voucher record per line, all or nothing.
    Import {
        /// The JSON-lines file.
        file: PathBuf,
    },
}

fn voucher(action: VoucherAction, args: &DbArgs) -> Result<(), String> {
    let VoucherAction::Import { file } = action;
    // The lock first: beside a running server the answer is always the same refusal.
    let (store, _, _lock) = open_store_for_write(args)?;
    let progress = crate::progress::Progress::new(&format!("voucher import {}", file.display()));
    progress.step("reading");
    let text = std::fs::read_to_string(&file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    progress.step(format!("checking {} lines", text.lines().count()));
    let specs = crate::wire::voucher::parse_voucher_lines(&text)
        .map_err(|e| format!("{}: {e}", file.display()))?;
    if specs.is_empty() {
        return Err(format!("{}: no voucher records", file.display()));
    }
    progress.step(format!(
        "importing {} vouchers in one transaction",
        specs.len()
    ));
    let origin = cli_origin();
    let n = store
        .import_vouchers(specs, origin)
        .map_err(|e| e.message())?;
    progress.done();
    say!("imported {n} vouchers");
    Ok(())
}

/// The origin of a change the command line makes on the database directly:
/// source `admin`, and no named operator (it did not come through the admin API).
fn cli_origin() -> crate::domain::ledger::Origin {
    crate::domain::ledger::Origin {
        source: crate::domain::ledger::Source::Admin,
        seq_id: None,
        now: crate::domain::time::now_ms(),
        operator: None,
    }
}

/// The database a command names: `--db`, else the config's, else `ledger.db`.
fn db_path(args: &DbArgs) -> Result<PathBuf, String> {
    Ok(db_config(args)?.db)
}

fn db_config(args: &DbArgs) -> Result<Config, String> {
    let mut cfg = match &args.config {
        Some(path) => Config::from_file(path)?,
        None => Config::embedded_default(),
    };
    if let Some(db) = &args.db {
        cfg.db = db.clone();
    }
    Ok(cfg)
}

/// Opens the database a command names, for a short administrative session
/// that only reads.
fn open_store(args: &DbArgs) -> Result<(Store, Config), String> {
    let cfg = db_config(args)?;
    if !cfg.db.exists() {
        return Err(format!("{}: no such database", cfg.db.display()));
    }
    let store = Store::open(
        &cfg.db,
        StoreOptions {
            durability: cfg.durability,
            timestamp_window_s: cfg.timestamp_window_s,
            sync_calls: None,
            max_batch: cfg.write_batch_max,
        },
    )?;
    Ok((store, cfg))
}

/// Like [`open_store`], for a command that writes: takes the database lock
/// first, so it refuses to run beside a server on the same database.
fn open_store_for_write(args: &DbArgs) -> Result<(Store, Config, DbLock), String> {
    let cfg = db_config(args)?;
    if !cfg.db.exists() {
        return Err(format!("{}: no such database", cfg.db.display()));
    }
    let lock = DbLock::acquire(&cfg.db)?;
    let (store, cfg) = open_store(args)?;
    Ok((store, cfg, lock))
}

fn outbox(action: OutboxAction, args: &DbArgs) -> Result<(), String> {
    match action {
        OutboxAction::List { state, limit } => {
            let (store, cfg) = open_store(args)?;
            let tz = cfg.utc_offset;
            if let Some(s) = &state {
                if !crate::domain::ledger::OUTBOX_STATES.contains(&s.as_str()) {
                    return Err(format!(
                        "--state: {s:?} is not pending, dead, delivered or abandoned"
                    ));
                }
            }
            let calls = store
                .outbox_list(state.as_deref(), 0, limit.clamp(1, 100_000))
                .map_err(|e| e.to_string())?;
            for c in &calls {
                say!("{}", crate::wire::render::outbox_call(c, tz));
            }
            let h = store.outbox_health().map_err(|e| e.to_string())?;
            tell!(
                "pending {} (blocked behind dead calls: {}) · dead {} · delivered {} · abandoned {}",
                h.pending,
                h.blocked,
                h.dead,
                h.delivered,
                h.abandoned
            );
        }
        OutboxAction::Retry { id } => {
            let (store, cfg, _lock) = open_store_for_write(args)?;
            let tz = cfg.utc_offset;
            let call = store
                .outbox_retry(id, cli_origin())
                .map_err(|e| e.to_string())?;
            say!("{}", crate::wire::render::outbox_call(&call, tz));
        }
        OutboxAction::Abandon { id, reason } => {
            let (store, cfg, _lock) = open_store_for_write(args)?;
            let tz = cfg.utc_offset;
            let origin = cli_origin();
            let call = store
                .outbox_abandon(id, &reason, origin)
                .map_err(|e| e.to_string())?;
            say!("{}", crate::wire::render::outbox_call(&call, tz));
        }
    }
    Ok(())
}

fn mock_platform(listen: &str, secret: &str, fail_rate: f64) -> Result<(), String> {
    if !(0.0..=1.0).contains(&fail_rate) {
        return Err("--fail-rate: must be between 0 and 1".into());
    }
    let mock = crate::outbox::mock::MockPlatform::start(listen, secret, fail_rate)
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    tell!(
        "mock platform on http://{} (fail rate {fail_rate}); what it received: GET /received",
        mock.local_addr()
    );
    mock.join();
    Ok(())
}

/// Runs a parsed command; `Err` is a one-line message for stderr, exit code 1.
pub fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Serve {
            config,
            listen,
            db,
            tls_self_signed,
        } => serve(config, listen, db, tls_self_signed),
        Command::Sign {
            secret,
            sign_fields,
            key_name,
            file,
        } => sign_file(&secret, &sign_fields, key_name, &file),
        Command::Check { db, quick } => check(&db, quick),
        Command::DemoCurl { db, addr } => demo_curl(&db, addr.as_deref()),
        Command::Outbox { action, db } => outbox(action, &db),
        Command::Bench {
            target,
            mode,
            connections,
            seconds,
            scale,
            sweep,
            rows,
            repeat,
            api_key,
            secret,
            stock,
            app_channel_id,
            db,
            cacert,
        } => {
            let connections = connection_counts(connections.as_deref(), target.is_some())?;
            let Some(target) = target else {
                let opts = crate::bench::SelfContained {
                    connections,
                    duration: std::time::Duration::from_secs(seconds.unwrap_or(5).max(1)),
                    scale: scale.unwrap_or(0),
                    sweep: sweep.unwrap_or(0),
                    rows: crate::bench::pick_rows(rows.as_deref())?,
                    repeat: usize::try_from(repeat).unwrap_or(1),
                };
                let report = crate::bench::run_self_contained(&opts)?;
                say!("{}", report.text.trim_end());
                if report.problems.is_empty() {
                    return Ok(());
                }
                return Err(report.problems.join("; "));
            };
            let mode = crate::bench::Mode::parse(mode.as_deref().unwrap_or("claim"))?;
            let (api_key, secret) = match (api_key, secret) {
                (Some(k), Some(s)) => (k, s),
                _ if !mode.signed() => (String::new(), String::new()),
                _ => {
                    let (store, _) = open_store(&DbArgs {
                        db: Some(db.unwrap_or_else(|| PathBuf::from("ledger.db"))),
                        config: None,
                    })?;
                    let demo = crate::demo::load(&store)
                        .map_err(|e| e.to_string())?
                        .ok_or(
                            "--api-key and --secret are needed: the database has no demo partner",
                        )?;
                    (demo.api_key, demo.secret)
                }
            };
            let (addr, https) = match target.strip_prefix("https://") {
                Some(addr) => match &cacert {
                    Some(file) => (addr, Some(file.as_path())),
                    None => {
                        return Err(
                            "--target https://...: give --cacert, the PEM file of the certificates to trust"
                                .into(),
                        )
                    }
                },
                None if cacert.is_some() => {
                    return Err("--cacert: only with --target https://...".into())
                }
                None => (target.trim_start_matches("http://"), None),
            };
            let target = crate::bench::Target {
                addr: addr.trim_end_matches('/').to_string(),
                api_key,
                secret,
                stock_id: stock.unwrap_or_else(|| crate::demo::DEMO_STOCK.to_string()),
                app_channel_id: app_channel_id.unwrap_or(crate::demo::DEMO_CHANNEL),
            };
            let duration = std::time::Duration::from_secs(seconds.unwrap_or(10).max(1));
            for (i, &c) in connections.iter().enumerate() {
                let m = crate::bench::run_target(&target, https, mode, c, duration)?;
                if i > 0 {
                    say!("");
                }
                say!("{}", m.render(mode, c));
            }
            Ok(())
        }
        Command::Voucher { action, db } => voucher(action, &db),
        Command::Stock { action, server } => stock(action, &server),
        Command::Coupon { action, server } => coupon(action, &server),
        Command::Report { date, server } => report(&date, &server),
        Command::Backup { dest, db } => backup(&db, &dest),
        Command::MockPlatform {
            listen,
            secret,
            fail_rate,
        } => mock_platform(&listen, &secret, fail_rate),
    }
}

/// `--connections`: a comma list of counts, each at least 1.
fn connection_counts(list: Option<&str>, target: bool) -> Result<Vec<usize>, String> {
    let list = list.unwrap_or(if target { "16" } else { "16,64,256" });
    let counts: Vec<usize> = list
        .split(',')
        .map(|c| match c.trim().parse::<usize>() {
            Ok(n) if n >= 1 => Ok(n),
            _ => Err(format!(
                "--connections: {c:?} is not a count of at least 1 (give a comma list such as 16,64,256)"
            )),
        })
        .collect::<Result<_, _>>()?;
    Ok(counts)
}

fn serve(
    config: Option<PathBuf>,
    listen: Option<String>,
    db: Option<PathBuf>,
    tls_self_signed: bool,
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
    if tls_self_signed {
        cfg.use_self_signed()?;
    }
    let signals = app::catch_signals()?;
    let running = app::start(cfg)?;
    let addr = running.local_addr();
    let scheme = if running.config().tls.is_some() {
        "https"
    } else {
        "http"
    };
    tell!(
        "coupon-ledger listening on {scheme}://{addr} (database {})",
        running.config().db.display()
    );
    if let Some(admin) = running.admin_addr() {
        tell!("admin API on http://{admin}/admin/ (not served on {addr})");
    }
    if let Some(w) = &running.self_signed {
        print_self_signed(w, addr);
    }
    let ca = running.self_signed.as_ref().map(|w| w.cert.as_path());
    if running.config().demo {
        match &running.demo {
            Some(d) => {
                if let Some(p) = &running.config().platform {
                    tell!("sync calls go to the in-process mock platform: {}/received", p.base_url);
                }
                tell!("embedded default: demo partner and running stock `{}`", crate::demo::DEMO_STOCK);
                tell!("  api_key     {}", d.api_key);
                tell!("  secret      {}", d.secret);
                tell!("  admin token {}", d.admin_token);
                tell!("claim a coupon (signed now: valid for 5 minutes, once; `coupon-ledger demo-curl` prints a fresh one):");
                say!("{}", d.claim_curl(&dial_host(addr), ca)?);
            }
            None => tell!(
                "warning: this database was not created by the embedded default, so no partner is configured; use --config"
            ),
        }
    }
    running.run_until_signal(signals)
}

/// The throwaway certificate: where it is, until when, its fingerprint (to
/// compare with what a client is shown), and a `curl` that trusts it.
fn print_self_signed(w: &crate::http::self_signed::Written, addr: std::net::SocketAddr) {
    use crate::http::self_signed::NAMES;
    tell!(
        "self-signed certificate for {}, for a demo only: valid until {} UTC, a new one at every start",
        NAMES.join(", "),
        w.not_after.date()
    );
    tell!("  certificate {}", w.cert.display());
    tell!("  key         {}", w.key.display());
    tell!("  SHA-256 fingerprint {}", w.fingerprint);
    let ip = addr.ip();
    if !(ip.is_loopback() || ip.is_unspecified()) {
        tell!("  warning: clients that reach {ip} will not accept it (it names only this machine's loopback)");
    }
    tell!("check it:");
    tell!(
        "curl --cacert {} https://{}/healthz",
        crate::demo::shell_word(&w.cert.display().to_string()),
        dial_host(addr)
    );
}

/// Where a client on this machine reaches `addr`: loopback for a wildcard
/// address, which the self-signed certificate names.
fn dial_host(addr: std::net::SocketAddr) -> String {
    crate::admin_client::dial_addr(&addr.to_string())
}

fn backup(args: &DbArgs, dest: &Path) -> Result<(), String> {
    let db = db_path(args)?;
    let progress = crate::progress::Progress::new(&format!("backup {}", db.display()));
    let report = crate::store::backup_with(&db, dest, &mut |step| progress.step(step))?;
    progress.done();
    say!(
        "ok: {} → {} ({} bytes, {} coupons, {} ms); verified with every ledger check",
        db.display(),
        report.dest.display(),
        report.bytes,
        report.coupons,
        report.elapsed.as_millis()
    );
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
    // Numbers are signed as written in the file, as the server checks them.
    let to_sign = sign::string_to_sign_raw(text.as_bytes(), &rule, secret)
        .unwrap_or_else(|| sign::string_to_sign(&map, &rule, secret));
    say!("string-to-sign: {to_sign}");
    say!("sign: {}", sign::md5_upper(&to_sign));
    Ok(())
}

fn check(db: &Path, quick: bool) -> Result<(), String> {
    let depth = if quick {
        CheckDepth::Quick
    } else {
        CheckDepth::Full
    };
    let violations = check_database_to(db, depth)?;
    if violations.is_empty() {
        say!("ok: {} holds every ledger invariant", db.display());
        return Ok(());
    }
    for v in &violations {
        say!("{v}");
    }
    Err(format!(
        "{} violations in {}",
        violations.len(),
        db.display()
    ))
}

fn demo_curl(db: &Path, addr: Option<&str>) -> Result<(), String> {
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
            durability: defaults.durability,
            timestamp_window_s: defaults.timestamp_window_s,
            sync_calls: None,
            max_batch: defaults.write_batch_max,
        },
    )?;
    match crate::demo::load(&store).map_err(|e| e.to_string())? {
        Some(demo) => {
            let addr = match addr {
                Some(a) => a.to_string(),
                None => store
                    .meta(crate::demo::DEMO_LISTEN_KEY)
                    .map_err(|e| e.to_string())?
                    .map(|a| crate::admin_client::dial_addr(&a))
                    .unwrap_or_else(|| "127.0.0.1:8080".into()),
            };
            let ca = store
                .meta(crate::demo::DEMO_TLS_CA_KEY)
                .map_err(|e| e.to_string())?
                .filter(|ca| !ca.is_empty())
                .map(PathBuf::from);
            say!("{}", demo.claim_curl(&addr, ca.as_deref())?);
            Ok(())
        }
        None => Err(format!(
            "{}: not a database made by the embedded default",
            db.display()
        )),
    }
}
