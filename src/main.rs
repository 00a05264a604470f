//! The `herald` binary: parses the command line and hands off to the library.

use std::io::Write;

use clap::Parser;
use herald::auth::{sign_hs256, Claims};
use herald::config::{parse_ttl, Cli, Command, Store, TokenArgs};
use herald::db::{Db, OpenError};
use herald::progress::Progress;
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
        Some(Command::Demo(_)) => "demo",
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
            init_tracing(&config.log_format, "info");
            Application::build(&config).await?.run_until_stopped().await
        }
        Command::Migrate(args) => {
            init_tracing(&args.store.log_format, "info");
            let db = Db::connect(&args.store.database_url(), 2).await?;
            db.migrate().await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::Token(args) => {
            init_tracing(&args.store.log_format, "info");
            println!("{}", token(&args)?);
            Ok(())
        }
        Command::Replay(args) => {
            init_tracing(&args.store.log_format, "info");
            replay(&args.store, args.projection.as_deref(), args.quiet).await
        }
        Command::Export(args) => {
            init_tracing(&args.store.log_format, "info");
            export(&args.store, args.org.as_deref(), args.after, args.quiet).await
        }
        Command::Purge(args) => {
            init_tracing(&args.store.log_format, "info");
            if !herald_domain::is_valid_id(&args.org) {
                anyhow::bail!("{} is not a valid org id", args.org);
            }
            let db = open(&args.store, 4).await?;
            db.migrate().await?;
            let job = herald::purge::enqueue(&db, &args.org, "herald-cli").await?;
            let progress = Progress::open_ended(args.quiet, "purge");
            progress.say(&format!("removing {}'s deleted campaigns", args.org));
            let result = herald::purge::run(&db, &job).await;
            progress.finish();
            let result = result?;
            let purged: Vec<String> =
                serde_json::from_value(result["campaignIds"].clone()).unwrap_or_default();
            db.tell_other_processes(Some((&args.org, &purged))).await?;
            println!("{}", serde_json::json!({"jobId": job, "result": result}));
            Ok(())
        }
        Command::Demo(args) => {
            // The in-process server's request lines would bury the progress: warnings only,
            // unless RUST_LOG says otherwise.
            init_tracing(&args.config.log_format, "warn");
            let store = Store {
                database_url: args.config.database_url.clone(),
                data_dir: args.config.data_dir.clone(),
                log_format: args.config.log_format.clone(),
            };
            open(&store, 1).await?;
            let summary = herald::demo::run(&args.config, &args.org, args.quiet).await?;
            println!("{}", serde_json::to_string(&summary)?);
            Ok(())
        }
    }
}

fn init_tracing(log_format: &str, default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
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

async fn replay(store: &Store, only: Option<&str>, quiet: bool) -> anyhow::Result<()> {
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
    let progress = Progress::steps(
        quiet,
        known.iter().filter(|name| wanted(name)).count() as u64,
        "replay",
    );
    let result = replay_each(&db, &wanted, &progress).await;
    progress.finish();
    result
}

async fn replay_each(
    db: &Db,
    wanted: &dyn Fn(&str) -> bool,
    progress: &Progress,
) -> anyhow::Result<()> {
    if wanted("campaigns") {
        progress.say("campaigns");
        let started = std::time::Instant::now();
        let events = projector::rebuild_campaigns(db).await?;
        db.tell_other_processes(None).await?;
        report("campaigns", events, started, progress);
    }
    if wanted("documents") {
        progress.say("documents");
        let started = std::time::Instant::now();
        let events = projector::rebuild_documents(db).await?;
        report("documents", events, started, progress);
    }
    if wanted("suppressions") {
        progress.say("suppressions");
        let started = std::time::Instant::now();
        let events = projector::rebuild_suppressions(db).await?;
        report("suppressions", events, started, progress);
    }
    if wanted("settings") {
        progress.say("settings");
        let started = std::time::Instant::now();
        let events = projector::rebuild_settings(db).await?;
        report("settings", events, started, progress);
    }
    for projection in Projection::ALL {
        if wanted(projection.name()) {
            progress.say(projection.name());
            let started = std::time::Instant::now();
            let events = projector::rebuild(db, projection).await?;
            report(projection.name(), events, started, progress);
        }
    }
    Ok(())
}

fn report(name: &str, events: u64, started: std::time::Instant, progress: &Progress) {
    progress.inc();
    let seconds = started.elapsed().as_secs_f64();
    let rate = if seconds > 0.0 {
        events as f64 / seconds
    } else {
        0.0
    };
    progress.suspend(|| {
        tracing::info!(
            projection = name,
            events,
            seconds,
            events_per_second = rate as u64,
            "rebuilt"
        )
    });
}

/// Writes the events after `after` (of `org`, or all) to stdout. The progress bar counts log
/// positions up to the head at the start, so with `--org` it runs ahead of the events written.
async fn export(store: &Store, org: Option<&str>, after: i64, quiet: bool) -> anyhow::Result<()> {
    let db = open(store, 2).await?;
    let head = store::head_position(&db).await?;
    let progress = Progress::count(quiet, head.saturating_sub(after).max(0) as u64, "export");
    progress.say("positions");
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
        progress.set(at.saturating_sub(after).max(0) as u64);
    }
    out.flush()?;
    progress.finish();
    Ok(())
}
