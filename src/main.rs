//! The `herald` binary: parses the command line and hands off to the library.

use std::io::Write;

use clap::Parser;
use herald::auth::{sign_hs256, Claims};
use herald::config::{parse_ttl, Cli, Command, Config};
use herald::db::Db;
use herald::projector::{self, Projection};
use herald::startup::Application;
use herald::store;

/// mimalloc instead of the system allocator: the server's hot paths (JSON documents, rows,
/// HTTP buffers) allocate many small short-lived values, where glibc's malloc was a quarter of
/// the CPU in profiles (ADR 7).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing(&cli.config);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            Application::build(&cli.config)
                .await?
                .run_until_stopped()
                .await
        }
        Command::Migrate => {
            let db = Db::connect(&cli.config.database_url(), 2).await?;
            db.migrate().await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::Token(args) => {
            let secrets = cli.config.secrets()?;
            let secret = secrets.jwt_secret.ok_or_else(|| {
                anyhow::anyhow!("herald token signs with HERALD_JWT_SECRET; a public-key setup mints tokens elsewhere")
            })?;
            let exp = chrono::Utc::now() + parse_ttl(&args.ttl)?;
            let claims = Claims {
                sub: args.sub,
                exp: exp.timestamp(),
                orgs: args.orgs,
                roles: args.roles,
                iss: cli.config.jwt_issuer.clone(),
                aud: cli
                    .config
                    .jwt_audience
                    .clone()
                    .map(serde_json::Value::String),
            };
            println!("{}", sign_hs256(&secret, &claims)?);
            Ok(())
        }
        Command::Replay(args) => replay(&cli.config, args.projection.as_deref()).await,
        Command::Export(args) => export(&cli.config, args.org.as_deref(), args.after).await,
        Command::Purge(args) => {
            if !herald_domain::is_valid_id(&args.org) {
                anyhow::bail!("{} is not a valid org id", args.org);
            }
            let db = Db::connect(&cli.config.database_url(), 4).await?;
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

fn init_tracing(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if config.log_format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn replay(config: &Config, only: Option<&str>) -> anyhow::Result<()> {
    let db = Db::connect(&config.database_url(), 4).await?;
    db.migrate().await?;
    let known: Vec<&str> = ["campaigns", "documents"]
        .into_iter()
        .chain(Projection::ALL.iter().map(|p| p.name()))
        .collect();
    if let Some(name) = only {
        if !known.contains(&name) {
            anyhow::bail!("unknown projection {name}; known: {}", known.join(", "));
        }
    }
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

async fn export(config: &Config, org: Option<&str>, after: i64) -> anyhow::Result<()> {
    let db = Db::connect(&config.database_url(), 2).await?;
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
