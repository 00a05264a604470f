//! Configuration: read once in `main` from flags and environment, then passed down.

use std::path::{Path, PathBuf};

use anyhow::Context;
use base64::Engine;
use clap::{Args, Parser, Subcommand};

/// Herald: event-sourced multi-channel marketing campaigns.
#[derive(Debug, Parser)]
#[command(name = "herald", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub config: Config,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API (and, unless HERALD_WORKERS=false, the background workers). The default.
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Print a JWT signed with the configured HS256 secret.
    Token(TokenArgs),
    /// Rebuild read models from the event log.
    Replay(ReplayArgs),
    /// Write event records as NDJSON to stdout.
    Export(ExportArgs),
    /// Permanently remove an org's soft-deleted campaigns (their streams, read rows and
    /// engagement data), leaving a `Purged` tombstone in the org's audit stream.
    Purge(PurgeArgs),
}

#[derive(Debug, Args)]
pub struct PurgeArgs {
    /// The org to purge.
    #[arg(long, required = true)]
    pub org: String,
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// Org the token may act for (repeatable).
    #[arg(long = "org", required = true)]
    pub orgs: Vec<String>,
    /// Role: admin, marketer, analyst or auditor (repeatable).
    #[arg(long = "role")]
    pub roles: Vec<String>,
    /// The actor recorded on every event the token causes.
    #[arg(long, default_value = "herald-cli")]
    pub sub: String,
    /// Lifetime, e.g. 30m, 1h, 7d.
    #[arg(long, default_value = "1h")]
    pub ttl: String,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Only this projection (`campaigns`, `documents`, `campaign-status-counts`, `analytics`);
    /// all when absent.
    #[arg(long)]
    pub projection: Option<String>,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Only this org's events.
    #[arg(long)]
    pub org: Option<String>,
    /// Start after this global position.
    #[arg(long, default_value_t = 0)]
    pub after: i64,
}

/// Everything the service reads from its environment.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// `sqlite://…` (embedded, the default) or `postgres://…`.
    #[arg(long, env = "DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    #[arg(
        long,
        env = "HERALD_BIND",
        default_value = "127.0.0.1:8080",
        global = true
    )]
    pub bind: String,
    #[arg(long, env = "HERALD_DATA_DIR", default_value = "./data", global = true)]
    pub data_dir: PathBuf,
    #[arg(long, env = "HERALD_JWT_SECRET", hide_env_values = true, global = true)]
    pub jwt_secret: Option<String>,
    /// PEM public key (the PEM text or a path to it) for RS256 or ES256 tokens.
    #[arg(long, env = "HERALD_JWT_PUBLIC_KEY", global = true)]
    pub jwt_public_key: Option<String>,
    #[arg(long, env = "HERALD_JWT_ISSUER", global = true)]
    pub jwt_issuer: Option<String>,
    #[arg(long, env = "HERALD_JWT_AUDIENCE", global = true)]
    pub jwt_audience: Option<String>,
    #[arg(
        long,
        env = "HERALD_TRACKING_SECRET",
        hide_env_values = true,
        global = true
    )]
    pub tracking_secret: Option<String>,
    #[arg(
        long,
        env = "HERALD_SECRETS_KEY",
        hide_env_values = true,
        global = true
    )]
    pub secrets_key: Option<String>,
    #[arg(long, env = "HERALD_PUBLIC_URL", global = true)]
    pub public_url: Option<String>,
    #[arg(long, env = "HERALD_WORKERS", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub workers: bool,
    #[arg(long, env = "HERALD_LOG_FORMAT", default_value = "text", global = true)]
    pub log_format: String,
    #[arg(
        long,
        env = "HERALD_METRICS_TOKEN",
        hide_env_values = true,
        global = true
    )]
    pub metrics_token: Option<String>,
    /// Largest database pool. Default: six per CPU core. More connections than the database's
    /// cores can run only queue inside PostgreSQL (measured in docs/benchmarks.md).
    #[arg(long, env = "HERALD_DB_CONNECTIONS", global = true)]
    pub db_connections: Option<u32>,
    /// Tests only, hidden: how far ahead of the wall clock the scheduler decides launches
    /// (`1d`), so a test makes a far-future `startAt` due by moving its launch job's `run_at`
    /// instead of waiting for it (`docs/scheduling.md`, Testing).
    #[arg(long, env = "HERALD_TEST_CLOCK_AHEAD", hide = true, value_parser = parse_ttl, global = true)]
    pub test_clock_ahead: Option<chrono::Duration>,
    /// How long a claimed job stays this node's without a renewal (renewed every second);
    /// after that another node takes it over. At least 3s. Read with [`Config::job_lease`].
    #[arg(long, env = "HERALD_JOB_LEASE", default_value = "4s", global = true)]
    pub job_lease: String,
    /// How long a stop (SIGTERM, Ctrl-C) may take before the process exits anyway. Read with
    /// [`Config::shutdown_timeout`].
    #[arg(
        long,
        env = "HERALD_SHUTDOWN_TIMEOUT",
        default_value = "20s",
        global = true
    )]
    pub shutdown_timeout: String,
    /// Tests only, hidden: this node's clock set ahead of the wall clock (`10s`), for the job
    /// table's due checks and the launch clock; leases keep the database's clock (`jobs.rs`).
    #[arg(long, env = "HERALD_TEST_CLOCK_SKEW", hide = true, value_parser = parse_ttl, global = true)]
    pub test_clock_skew: Option<chrono::Duration>,
}

/// Secrets the service needs, after defaults and generation.
#[derive(Clone)]
pub struct Secrets {
    pub jwt_secret: Option<String>,
    pub tracking_secret: String,
    pub secrets_key: String,
    /// True when any secret was generated into the data dir on this start.
    pub generated: bool,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets { .. }")
    }
}

impl Config {
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("herald.db").display()))
    }

    pub fn is_postgres(&self) -> bool {
        self.database_url().starts_with("postgres")
    }

    /// The pool size: as configured, or six connections per CPU core (at least 8).
    pub fn db_connections(&self) -> u32 {
        self.db_connections.unwrap_or_else(|| {
            let cores = std::thread::available_parallelism().map_or(2, |n| n.get()) as u32;
            (cores * 6).max(8)
        })
    }

    /// `HERALD_JOB_LEASE`, refused unless it is a duration of at least three renewal intervals.
    pub fn job_lease(&self) -> anyhow::Result<std::time::Duration> {
        let min = crate::sending::jobs::MIN_LEASE;
        let renew = crate::sending::jobs::RENEW_EVERY;
        let lease = parse_duration(&self.job_lease).ok_or_else(|| {
            anyhow::anyhow!(
                "HERALD_JOB_LEASE={:?} is not a duration; write e.g. 4s, 4500ms or 1m",
                self.job_lease
            )
        })?;
        if lease < min {
            anyhow::bail!(
                "HERALD_JOB_LEASE={} is too short: a lease must last at least three renewal intervals of {}s, {}s",
                self.job_lease.trim(),
                renew.as_secs(),
                min.as_secs()
            );
        }
        Ok(lease)
    }

    /// `HERALD_SHUTDOWN_TIMEOUT`, refused unless it is a duration longer than zero.
    pub fn shutdown_timeout(&self) -> anyhow::Result<std::time::Duration> {
        match parse_duration(&self.shutdown_timeout) {
            Some(timeout) if !timeout.is_zero() => Ok(timeout),
            _ => anyhow::bail!(
                "HERALD_SHUTDOWN_TIMEOUT={:?} is not a duration longer than zero; write e.g. 20s or 1m",
                self.shutdown_timeout
            ),
        }
    }

    pub fn public_url(&self) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.bind))
            .trim_end_matches('/')
            .to_string()
    }

    /// The PEM text of the configured public key, read from a file when given a path.
    pub fn jwt_public_key_pem(&self) -> anyhow::Result<Option<String>> {
        match &self.jwt_public_key {
            None => Ok(None),
            Some(value) if value.trim_start().starts_with("-----BEGIN") => Ok(Some(value.clone())),
            Some(path) => std::fs::read_to_string(path)
                .map(Some)
                .with_context(|| format!("reading HERALD_JWT_PUBLIC_KEY file {path}")),
        }
    }

    /// Resolves the secrets: from the environment, or (SQLite only) generated into the data dir
    /// on first start and read back afterwards. PostgreSQL deployments must set them.
    pub fn secrets(&self) -> anyhow::Result<Secrets> {
        let mut generated = false;
        let needs_jwt_secret = self.jwt_public_key.is_none();
        if self.is_postgres() {
            let mut missing = Vec::new();
            if needs_jwt_secret && self.jwt_secret.is_none() {
                missing.push("HERALD_JWT_SECRET (or HERALD_JWT_PUBLIC_KEY)");
            }
            if self.tracking_secret.is_none() {
                missing.push("HERALD_TRACKING_SECRET");
            }
            if self.secrets_key.is_none() {
                missing.push("HERALD_SECRETS_KEY");
            }
            if !missing.is_empty() {
                anyhow::bail!(
                    "with PostgreSQL these must be set: {}; generate each with `openssl rand -base64 48`",
                    missing.join(", ")
                );
            }
        }
        let mut resolve = |given: &Option<String>, file: &str| -> anyhow::Result<String> {
            if let Some(value) = given {
                return Ok(value.clone());
            }
            let (value, fresh) = load_or_generate(&self.data_dir.join(file))?;
            generated |= fresh;
            Ok(value)
        };
        let jwt_secret = if needs_jwt_secret {
            Some(resolve(&self.jwt_secret, "jwt-secret")?)
        } else {
            None
        };
        let tracking_secret = resolve(&self.tracking_secret, "tracking-secret")?;
        let secrets_key = resolve(&self.secrets_key, "secrets-key")?;
        if let Some(secret) = &jwt_secret {
            if secret.len() < 32 {
                anyhow::bail!("HERALD_JWT_SECRET must be at least 32 bytes");
            }
        }
        Ok(Secrets {
            jwt_secret,
            tracking_secret,
            secrets_key,
            generated,
        })
    }
}

/// Reads a generated secret from `path`, or creates it (48 random bytes, base64) with mode 0600.
fn load_or_generate(path: &Path) -> anyhow::Result<(String, bool)> {
    if let Ok(existing) = std::fs::read_to_string(path) {
        let existing = existing.trim().to_string();
        if !existing.is_empty() {
            return Ok((existing, false));
        }
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut bytes = [0u8; 48];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    let value = base64::engine::general_purpose::STANDARD.encode(bytes);
    write_private(path, &value).with_context(|| format!("writing {}", path.display()))?;
    Ok((value, true))
}

#[cfg(unix)]
fn write_private(path: &Path, value: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(value.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, value: &str) -> std::io::Result<()> {
    std::fs::write(path, value)
}

/// Parses a duration like `1500ms`, `4s`, `1m` or `1h`.
pub fn parse_duration(value: &str) -> Option<std::time::Duration> {
    let value = value.trim();
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let n: u64 = number.parse().ok()?;
    let millis = match unit {
        "ms" => Some(n),
        "s" => n.checked_mul(1000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        _ => None,
    };
    millis.map(std::time::Duration::from_millis)
}

/// Parses a duration like `90s`, `30m`, `1h` or `7d`.
pub fn parse_ttl(ttl: &str) -> anyhow::Result<chrono::Duration> {
    let ttl = ttl.trim();
    let split = ttl.find(|c: char| !c.is_ascii_digit()).unwrap_or(ttl.len());
    let (number, unit) = ttl.split_at(split);
    let n: i64 = number
        .parse()
        .context("ttl must start with a number, e.g. 1h")?;
    Ok(match unit {
        "s" | "" => chrono::Duration::seconds(n),
        "m" => chrono::Duration::minutes(n),
        "h" => chrono::Duration::hours(n),
        "d" => chrono::Duration::days(n),
        _ => anyhow::bail!("ttl unit must be s, m, h or d"),
    })
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations_take_a_number_and_a_unit() {
        assert_eq!(parse_duration("4s"), Some(Duration::from_secs(4)));
        assert_eq!(
            parse_duration(" 1500ms "),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(parse_duration("1m"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        for bad in ["", "4", "s", "4 s", "-4s", "4.5s", "4d", "soon"] {
            assert!(parse_duration(bad).is_none(), "{bad:?}");
        }
    }
}
