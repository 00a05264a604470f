//! The `herald` binary: parses the command line and hands off to the library.

use std::io::Write;

use clap::Parser;
use herald::auth::{sign_hs256, Claims};
use herald::config::{parse_ttl, Cli, Command, Store, TokenArgs};
use herald::db::{Db, OpenError};
use herald::projector::{self, Projection};
use herald::startup::Application;
use herald::store;

/// mimalloc instead of the system allocator: the server's hot paths (JSON documents, rows,
/// HTTP buffers) allocate many small short-lived values, where glibc's malloc was a quarter of
/// the CPU in profiles (ADR 7).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let name = match &cli.command {
        None | Some(Command::Serve(_)) => "serve",
        Some(Command::Migrate(_)) => "migrate",
        Some(Command::Token(_)) => "token",
        Some(Command::Replay(_)) => "replay",
        Some(Command::Export(_)) => "export",
        Some(Command::Purge(_)) => "purge",
    };
    // One line, whatever RUST_BACKTRACE says: the cause chain joined with `: `.
    if let Err(error) = run(cli).await {
        eprintln!("herald {name}: {error:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command.unwrap_or(Command::Serve(Box::new(cli.config))) {
        Command::Serve(config) => {
            init_tracing(&config.log_format);
            Application::build(&config).await?.run_until_stopped().await
        }
        Command::Migrate(args) => {
            init_tracing(&args.store.log_format);
            let db = Db::connect(&args.store.database_url(), 2).await?;
            db.migrate().await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::Token(args) => {
            init_tracing(&args.store.log_format);
            println!("{}", token(&args)?);
            Ok(())
        }
        Command::Replay(args) => {
            init_tracing(&args.store.log_format);
            replay(&args.store, args.projection.as_deref()).await
        }
        Command::Export(args) => {
            init_tracing(&args.store.log_format);
            export(&args.store, args.org.as_deref(), args.after).await
        }
        Command::Purge(args) => {
            init_tracing(&args.store.log_format);
            if !herald_domain::is_valid_id(&args.org) {
                anyhow::bail!("{} is not a valid org id", args.org);
            }
            let db = open(&args.store, 4).await?;
            db.migrate().await?;
            let job = herald::purge::enqueue(&db, &args.org, "herald-cli").await?;
            let result = herald::purge::run(&db, &job).await?;
            let purged: Vec<String> =
                serde_json::from_value(result["campaignIds"].clone()).unwrap_or_default();
            db.tell_other_processes(Some((&args.org, &purged))).await?;
            println!("{}", serde_json::json!({"jobId": job, "result": result}));
            Ok(())
        }
    }
}

fn init_tracing(log_format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if log_format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// The server's existing database, or one line saying where none was found. Only `serve` and
/// `migrate` create one.
async fn open(store: &Store, max_connections: u32) -> anyhow::Result<Db> {
    Db::open_existing(&store.database_url(), max_connections)
        .await
        .map_err(|error| {
            let why = match &error {
                OpenError::Unreachable(why) => format!(" ({why})"),
                OpenError::NoFile | OpenError::NoSchema => String::new(),
            };
            anyhow::anyhow!(
                "{error} at {}{why}; point HERALD_DATA_DIR at the server's data dir or DATABASE_URL at its database \
                 (only `herald serve` and `herald migrate` create one)",
                store.looked_at()
            )
        })
}

fn token(args: &TokenArgs) -> anyhow::Result<String> {
    if args.jwt_public_key.is_some() {
        anyhow::bail!(
            "herald token signs with HERALD_JWT_SECRET; a public-key setup (HERALD_JWT_PUBLIC_KEY) mints tokens elsewhere"
        );
    }
    let secret = args.store.jwt_secret(args.jwt_secret.as_deref())?;
    let exp = chrono::Utc::now() + parse_ttl(&args.ttl)?;
    let claims = Claims {
        sub: args.sub.clone(),
        exp: exp.timestamp(),
        orgs: args.orgs.clone(),
        roles: args.roles.clone(),
        iss: args.jwt_issuer.clone(),
        aud: args.jwt_audience.clone().map(serde_json::Value::String),
    };
    sign_hs256(&secret, &claims)
}

async fn replay(store: &Store, only: Option<&str>) -> anyhow::Result<()> {
    let known: Vec<&str> = ["campaigns", "documents", "suppressions", "settings"]
        .into_iter()
        .chain(Projection::ALL.iter().map(|p| p.name()))
        .collect();
    if let Some(name) = only {
        if !known.contains(&name) {
            anyhow::bail!("unknown projection {name}; known: {}", known.join(", "));
        }
    }
    let db = open(store, 4).await?;
    db.migrate().await?;
    let wanted = |name: &str| only.is_none_or(|o| o == name);
    if wanted("campaigns") {
        let started = std::time::Instant::now();
        let events = projector::rebuild_campaigns(&db).await?;
        db.tell_other_processes(None).await?;
        report("campaigns", events, started);
    }
    if wanted("documents") {
        let started = std::time::Instant::now();
        let events = projector::rebuild_documents(&db).await?;
        report("documents", events, started);
    }
    if wanted("suppressions") {
        let started = std::time::Instant::now();
        let events = projector::rebuild_suppressions(&db).await?;
        report("suppressions", events, started);
    }
    if wanted("settings") {
        let started = std::time::Instant::now();
        let events = projector::rebuild_settings(&db).await?;
        report("settings", events, started);
    }
    for projection in Projection::ALL {
        if wanted(projection.name()) {
            let started = std::time::Instant::now();
            let events = projector::rebuild(&db, projection).await?;
            report(projection.name(), events, started);
        }
    }
    Ok(())
}

fn report(name: &str, events: u64, started: std::time::Instant) {
    let seconds = started.elapsed().as_secs_f64();
    let rate = if seconds > 0.0 {
        events as f64 / seconds
    } else {
        0.0
    };
    tracing::info!(
        projection = name,
        events,
        seconds,
        events_per_second = rate as u64,
        "rebuilt"
    );
}

async fn export(store: &Store, org: Option<&str>, after: i64) -> anyhow::Result<()> {
    let db = open(store, 2).await?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut at = after;
    loop {
        let events = store::read_org(&db, org, at, None, 1000).await?;
        let Some(last) = events.last() else { break };
        at = last.record.position;
        for event in &events {
            serde_json::to_writer(&mut out, &event.record)?;
            out.write_all(b"\n")?;
        }
    }
    out.flush()?;
    Ok(())
}
