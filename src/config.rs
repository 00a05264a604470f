//! Configuration: read once in `main` from flags and environment, then passed down.

use std::path::{Path, PathBuf};

use anyhow::Context;
use base64::Engine;
use clap::{Args, Parser, Subcommand};

use crate::auth::Role;
use crate::db::sqlite_file;

/// Herald: event-sourced multi-channel marketing campaigns.
///
/// Without a subcommand it serves, with the options below.
#[derive(Debug, Parser)]
#[command(
    name = "herald",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub config: Config,
}

/// Only `serve` and `migrate` may create a data dir or a database; every other subcommand works
/// on an existing one and refuses, naming where it looked, when there is none.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API (and, unless HERALD_WORKERS=false, the background workers). The default.
    Serve(Box<Config>),
    /// Apply database migrations (creating the SQLite database if needed) and exit.
    Migrate(MigrateArgs),
    /// Print a JWT signed with the server's HS256 secret.
    Token(TokenArgs),
    /// Rebuild read models from the event log.
    Replay(ReplayArgs),
    /// Write event records as NDJSON to stdout.
    Export(ExportArgs),
    /// Permanently remove an org's soft-deleted campaigns (their streams, read rows and
    /// engagement data), leaving a `Purged` tombstone in the org's audit stream.
    Purge(PurgeArgs),
    /// Fill an org with demo data through the API (contacts, audiences, templates, sandbox
    /// connections, campaigns of every type and status, 30 days of engagement); rerunning it
    /// adds nothing.
    Demo(Box<DemoArgs>),
}

/// Where the data is: the options of every subcommand that works on the server's data.
#[derive(Debug, Clone, Args)]
pub struct Store {
    /// `sqlite://…` or `postgres://…`; default: `herald.db` in the data dir.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// The server's data dir: its SQLite database and generated secrets.
    #[arg(long, env = "HERALD_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// `text` or `json`.
    #[arg(long, env = "HERALD_LOG_FORMAT", default_value = "text")]
    pub log_format: String,
}

impl Store {
    pub fn database_url(&self) -> String {
        database_url(self.database_url.as_deref(), &self.data_dir)
    }

    /// Where this looked for the data, for a refusal: the SQLite file (or the database URL,
    /// without its password), then both settings.
    pub fn looked_at(&self) -> String {
        let url = self.database_url();
        match sqlite_file(&url) {
            Some(file) => self.looked_at_file(&file),
            None => format!("{} {}", without_password(&url), self.settings()),
        }
    }

    fn looked_at_file(&self, file: &Path) -> String {
        format!("{} {}", absolute(file).display(), self.settings())
    }

    fn settings(&self) -> String {
        format!(
            "(HERALD_DATA_DIR={}, DATABASE_URL={})",
            absolute(&self.data_dir).display(),
            self.database_url
                .as_deref()
                .map_or_else(|| "unset".to_string(), without_password)
        )
    }

    /// The HS256 secret `herald token` signs with: `given` (`HERALD_JWT_SECRET`), or the one
    /// `herald serve` generated into the data dir (SQLite only). Never generates one: a token
    /// signed with a secret the server does not have is only refused later with a bare `401`.
    pub fn jwt_secret(&self, given: Option<&str>) -> anyhow::Result<String> {
        let secret = match given {
            Some(secret) => secret.to_string(),
            None => {
                let file = self.data_dir.join("jwt-secret");
                match read_secret(&file) {
                    Some(secret) if sqlite_file(&self.database_url()).is_some() => secret,
                    _ => anyhow::bail!(
                        "no JWT secret: HERALD_JWT_SECRET is not set and there is no generated one at {}; \
                         run herald token with the server's environment: its HERALD_JWT_SECRET or, with SQLite, \
                         its HERALD_DATA_DIR (where `herald serve` generates one)",
                        self.looked_at_file(&file)
                    ),
                }
            }
        };
        if secret.len() < 32 {
            anyhow::bail!("HERALD_JWT_SECRET must be at least 32 bytes");
        }
        Ok(secret)
    }
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub store: Store,
}

#[derive(Debug, Args)]
pub struct PurgeArgs {
    /// The org to purge.
    #[arg(long, required = true)]
    pub org: String,
    /// No progress display (there is none anyway when stderr is not a terminal).
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub store: Store,
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// Org the token may act for (repeatable).
    #[arg(long = "org", required = true)]
    pub orgs: Vec<String>,
    /// Role (repeatable).
    #[arg(long = "role", value_parser = clap::builder::PossibleValuesParser::new(Role::NAMES))]
    pub roles: Vec<String>,
    /// The actor recorded on every event the token causes.
    #[arg(long, default_value = "herald-cli")]
    pub sub: String,
    /// Lifetime, e.g. 30m, 1h, 7d.
    #[arg(long, default_value = "1h")]
    pub ttl: String,
    /// The server's HS256 secret; default: the one it generated into the data dir.
    #[arg(long, env = "HERALD_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// Set on a server that takes RS256/ES256 tokens: it then refuses, tokens come from your
    /// identity provider.
    #[arg(long, env = "HERALD_JWT_PUBLIC_KEY")]
    pub jwt_public_key: Option<String>,
    /// The `iss` claim.
    #[arg(long, env = "HERALD_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    /// The `aud` claim.
    #[arg(long, env = "HERALD_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,
    #[command(flatten)]
    pub store: Store,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Only this projection (`campaigns`, `documents`, `campaign-status-counts`, `analytics`);
    /// all when absent.
    #[arg(long)]
    pub projection: Option<String>,
    /// No progress display (there is none anyway when stderr is not a terminal).
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub store: Store,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Only this org's events.
    #[arg(long)]
    pub org: Option<String>,
    /// Start after this global position.
    #[arg(long, default_value_t = 0)]
    pub after: i64,
    /// No progress display (there is none anyway when stderr is not a terminal).
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub store: Store,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The org to fill.
    #[arg(long, default_value = "demo")]
    pub org: String,
    /// No progress display (there is none anyway when stderr is not a terminal).
    #[arg(long, short)]
    pub quiet: bool,
    /// The server's configuration: the demo runs the server in-process on a loopback port.
    #[command(flatten)]
    pub config: Config,
}

/// Everything the service reads from its environment. Its `Debug` leaves the secrets out.
#[derive(Clone, Args)]
pub struct Config {
    /// `sqlite://…` (embedded, the default) or `postgres://…`.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    #[arg(long, env = "HERALD_BIND", default_value = "127.0.0.1:8080")]
    pub bind: String,
    #[arg(long, env = "HERALD_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    #[arg(long, env = "HERALD_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// PEM public key (the PEM text or a path to it) for RS256 or ES256 tokens.
    #[arg(long, env = "HERALD_JWT_PUBLIC_KEY")]
    pub jwt_public_key: Option<String>,
    #[arg(long, env = "HERALD_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    #[arg(long, env = "HERALD_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,
    #[arg(long, env = "HERALD_TRACKING_SECRET", hide_env_values = true)]
    pub tracking_secret: Option<String>,
    #[arg(long, env = "HERALD_SECRETS_KEY", hide_env_values = true)]
    pub secrets_key: Option<String>,
    /// The key erased addresses stay suppressed under (an HMAC of each address). Default:
    /// derived from `HERALD_SECRETS_KEY`; set it on its own to rotate that key without losing
    /// the erased part of the suppression list. Read with [`Config::secrets`].
    #[arg(long, env = "HERALD_ERASURE_KEY", hide_env_values = true)]
    pub erasure_key: Option<String>,
    #[arg(long, env = "HERALD_PUBLIC_URL")]
    pub public_url: Option<String>,
    #[arg(long, env = "HERALD_WORKERS", default_value_t = true, action = clap::ArgAction::Set)]
    pub workers: bool,
    #[arg(long, env = "HERALD_LOG_FORMAT", default_value = "text")]
    pub log_format: String,
    #[arg(long, env = "HERALD_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
    /// Largest database pool. Default: six per CPU core. More connections than the database's
    /// cores can run only queue inside PostgreSQL (measured in docs/benchmarks.md).
    #[arg(long, env = "HERALD_DB_CONNECTIONS")]
    pub db_connections: Option<u32>,
    /// Tests only, hidden: how far ahead of the wall clock the scheduler decides launches
    /// (`1d`), so a test makes a far-future `startAt` due by moving its launch job's `run_at`
    /// instead of waiting for it (`docs/scheduling.md`, Testing).
    #[arg(long, env = "HERALD_TEST_CLOCK_AHEAD", hide = true, value_parser = parse_ttl)]
    pub test_clock_ahead: Option<chrono::Duration>,
    /// How long a claimed job stays this node's without a renewal (renewed every second);
    /// after that another node takes it over. At least 3s. Read with [`Config::job_lease`].
    #[arg(long, env = "HERALD_JOB_LEASE", default_value = "4s")]
    pub job_lease: String,
    /// How long a stop (SIGTERM, Ctrl-C) may take before the process exits anyway. Read with
    /// [`Config::shutdown_timeout`].
    #[arg(long, env = "HERALD_SHUTDOWN_TIMEOUT", default_value = "20s")]
    pub shutdown_timeout: String,
    /// Requests per second each org may make on `/crm` routes, with a burst of twice that;
    /// over it the answer is `429` with `Retry-After`. Per process. `0` turns it off.
    #[arg(long, env = "HERALD_RATE_LIMIT_ORG", default_value_t = 200)]
    pub rate_limit_org: u32,
    /// Engagements one tracking token records per hour (a bucket of this many, refilled at this
    /// many an hour); further hits get their normal answer, are counted in `/metrics` and are
    /// not recorded. Per process. `0` turns it off.
    #[arg(long, env = "HERALD_TRACKING_MAX_PER_TOKEN", default_value_t = 20)]
    pub tracking_max_per_token: u32,
    /// Hosts, addresses and networks (CIDR) vendor calls may reach although they are not
    /// public, comma-separated (`relay.lan,10.0.0.0/8`). By default a connection's `baseUrl` or
    /// SMTP host may not point at loopback, private, link-local or other non-public addresses.
    /// Read with [`Config::outbound_policy`].
    #[arg(long, env = "HERALD_OUTBOUND_ALLOW", default_value = "")]
    pub outbound_allow: String,
    /// Most HTTP connections open at once; at the cap new ones wait in the listen backlog until
    /// one closes.
    #[arg(long, env = "HERALD_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,
    /// Longest a request's headers may take to arrive (against clients that trickle them), and
    /// how long an idle keep-alive connection stays open. Read with
    /// [`Config::connection_limits`].
    #[arg(long, env = "HERALD_HEADER_READ_TIMEOUT", default_value = "30s")]
    pub header_read_timeout: String,
    /// Tests only, hidden: this node's clock set ahead of the wall clock (`10s`), for the job
    /// table's due checks and the launch clock; leases keep the database's clock (`jobs.rs`).
    #[arg(long, env = "HERALD_TEST_CLOCK_SKEW", hide = true, value_parser = parse_ttl)]
    pub test_clock_skew: Option<chrono::Duration>,
    /// Whether start-up prints a one-time dashboard sign-in link: `auto` (when the JWT secret is
    /// the one generated into the data dir, the embedded default), `on` (whenever there is an
    /// HS256 secret) or `off`.
    #[arg(long, env = "HERALD_SIGNIN_LINK", default_value = "auto",
          value_parser = clap::builder::PossibleValuesParser::new(["auto", "on", "off"]))]
    pub signin_link: String,
    /// The org the sign-in link's admin token acts for.
    #[arg(long, env = "HERALD_SIGNIN_ORG", default_value = "demo")]
    pub signin_org: String,
}

/// Secrets the service needs, after defaults and generation.
#[derive(Clone)]
pub struct Secrets {
    pub jwt_secret: Option<String>,
    pub tracking_secret: String,
    pub secrets_key: String,
    /// The key of erased addresses on the suppression list (`HERALD_ERASURE_KEY`, or derived
    /// from `secrets_key`).
    pub erasure_key: String,
    /// True when any secret was generated into the data dir on this start.
    pub generated: bool,
    /// True when the JWT secret is the one generated into the data dir (now or earlier): the
    /// embedded default, where `HERALD_SIGNIN_LINK=auto` prints a sign-in link.
    pub jwt_secret_in_data_dir: bool,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets { .. }")
    }
}

impl Config {
    pub fn database_url(&self) -> String {
        database_url(self.database_url.as_deref(), &self.data_dir)
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
    /// `HERALD_OUTBOUND_ALLOW`, parsed.
    pub fn outbound_policy(&self) -> anyhow::Result<crate::vendors::OutboundPolicy> {
        crate::vendors::OutboundPolicy::parse(&self.outbound_allow).map_err(anyhow::Error::msg)
    }

    /// The connection cap and header deadline of the accept loop.
    pub fn connection_limits(&self) -> anyhow::Result<crate::serve::ConnectionLimits> {
        let header_read_timeout = match parse_duration(&self.header_read_timeout) {
            Some(timeout) if !timeout.is_zero() => timeout,
            _ => anyhow::bail!(
                "HERALD_HEADER_READ_TIMEOUT={:?} is not a duration longer than zero; write e.g. 30s",
                self.header_read_timeout
            ),
        };
        if self.max_connections == 0 {
            anyhow::bail!("HERALD_MAX_CONNECTIONS must be at least 1");
        }
        Ok(crate::serve::ConnectionLimits {
            max_connections: self.max_connections,
            header_read_timeout,
        })
    }

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

    /// Whether the links the server hands out (tracking, unsubscribe) point at this machine
    /// only: a loopback or unspecified address, or `localhost`. Recipients cannot follow them.
    pub fn public_url_is_local(&self) -> bool {
        is_local_url(&self.public_url())
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
        let jwt_secret_in_data_dir = needs_jwt_secret && self.jwt_secret.is_none();
        let jwt_secret = if needs_jwt_secret {
            Some(resolve(&self.jwt_secret, "jwt-secret")?)
        } else {
            None
        };
        let tracking_secret = resolve(&self.tracking_secret, "tracking-secret")?;
        let secrets_key = resolve(&self.secrets_key, "secrets-key")?;
        if let Some(secret) = &jwt_secret {
            if secret.len() < MIN_SECRET_BYTES {
                anyhow::bail!("HERALD_JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes");
            }
        }
        // Short keys can be guessed offline from one tracking link or one sealed credential.
        for (name, value) in [
            ("HERALD_TRACKING_SECRET", &tracking_secret),
            ("HERALD_SECRETS_KEY", &secrets_key),
        ] {
            if value.len() < MIN_SECRET_BYTES {
                anyhow::bail!(
                    "{name} must be at least {MIN_SECRET_BYTES} bytes; generate one with `openssl rand -base64 48`"
                );
            }
        }
        let erasure_key = match &self.erasure_key {
            Some(given) if given.len() < MIN_SECRET_BYTES => anyhow::bail!(
                "HERALD_ERASURE_KEY must be at least {MIN_SECRET_BYTES} bytes; generate one with `openssl rand -base64 48`"
            ),
            Some(given) => given.clone(),
            None => derived_key(&secrets_key, "herald erasure key v1"),
        };
        Ok(Secrets {
            jwt_secret,
            tracking_secret,
            secrets_key,
            erasure_key,
            generated,
            jwt_secret_in_data_dir,
        })
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |secret: &Option<String>| secret.as_ref().map(|_| "***");
        f.debug_struct("Config")
            .field(
                "database_url",
                &self.database_url.as_deref().map(without_password),
            )
            .field("bind", &self.bind)
            .field("data_dir", &self.data_dir)
            .field("jwt_secret", &hidden(&self.jwt_secret))
            .field("jwt_public_key", &self.jwt_public_key)
            .field("jwt_issuer", &self.jwt_issuer)
            .field("jwt_audience", &self.jwt_audience)
            .field("tracking_secret", &hidden(&self.tracking_secret))
            .field("secrets_key", &hidden(&self.secrets_key))
            .field("erasure_key", &hidden(&self.erasure_key))
            .field("public_url", &self.public_url)
            .field("workers", &self.workers)
            .field("log_format", &self.log_format)
            .field("metrics_token", &hidden(&self.metrics_token))
            .field("db_connections", &self.db_connections)
            .field("job_lease", &self.job_lease)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("rate_limit_org", &self.rate_limit_org)
            .field("tracking_max_per_token", &self.tracking_max_per_token)
            .field("signin_link", &self.signin_link)
            .field("signin_org", &self.signin_org)
            .field("outbound_allow", &self.outbound_allow)
            .field("max_connections", &self.max_connections)
            .field("header_read_timeout", &self.header_read_timeout)
            .finish_non_exhaustive()
    }
}

/// A key for one purpose drawn from `secret`: the hex HMAC-SHA256 of `label` under it, so a
/// derived key tells nothing about the secret or about keys for other labels.
fn derived_key(secret: &str, label: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac =
        Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(label.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Shortest secret accepted for signing and sealing keys.
const MIN_SECRET_BYTES: usize = 32;

/// `DATABASE_URL`, or the SQLite database in the data dir.
fn database_url(given: Option<&str>, data_dir: &Path) -> String {
    given.map_or_else(
        || format!("sqlite://{}", data_dir.join("herald.db").display()),
        str::to_string,
    )
}

/// `url` with its password, if any, replaced by `***`: it goes into messages and logs.
pub fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rsplit_once('@') {
        Some((user_info, host)) if user_info.contains(':') => {
            let user = user_info.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}{}", &rest[authority_end..])
        }
        _ => url.to_string(),
    }
}

/// Whether `url`'s host is `localhost`, a loopback address or an unspecified one (`0.0.0.0`).
fn is_local_url(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host_port.split(':').next().unwrap_or_default(),
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == "localhost"
        || host.ends_with(".localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback() || ip.is_unspecified())
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// A generated secret stored at `path`, if there is one.
fn read_secret(path: &Path) -> Option<String> {
    let existing = std::fs::read_to_string(path).ok()?;
    let existing = existing.trim();
    (!existing.is_empty()).then(|| existing.to_string())
}

/// Reads a generated secret from `path`, or creates it (48 random bytes, base64) with mode 0600.
fn load_or_generate(path: &Path) -> anyhow::Result<(String, bool)> {
    if let Some(existing) = read_secret(path) {
        return Ok((existing, false));
    }
    if let Some(dir) = path.parent() {
        crate::db::create_private_dir(dir)?;
    }
    let mut bytes = [0u8; 48];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    let value = base64::engine::general_purpose::STANDARD.encode(bytes);
    match write_new_private(path, &value) {
        Ok(()) => Ok((value, true)),
        // Another process starting at the same moment wrote it first: use theirs, so both
        // sign and seal with the same secret.
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            for _ in 0..50 {
                if let Some(theirs) = read_secret(path) {
                    return Ok((theirs, false));
                }
                // Created but not yet written.
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            anyhow::bail!("{} exists but holds no secret", path.display())
        }
        Err(error) => Err(error).with_context(|| format!("writing {}", path.display())),
    }
}

/// Writes a new file readable by this user only (`0600`); `AlreadyExists` if it is there.
#[cfg(unix)]
fn write_new_private(path: &Path, value: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(value.as_bytes())?;
    file.sync_all()
}

#[cfg(not(unix))]
fn write_new_private(path: &Path, value: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    file.write_all(value.as_bytes())
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
    use super::*;
    use clap::Parser;

    #[test]
    fn two_first_starts_at_once_end_up_with_one_secret() {
        let dir = std::env::temp_dir().join(format!("herald-secret-{}", uuid::Uuid::now_v7()));
        let path = dir.join("tracking-secret");
        let values: Vec<(String, bool)> = std::thread::scope(|scope| {
            let starts: Vec<_> = (0..8)
                .map(|_| scope.spawn(|| load_or_generate(&path).unwrap()))
                .collect();
            starts.into_iter().map(|s| s.join().unwrap()).collect()
        });
        let stored = std::fs::read_to_string(&path).unwrap();
        assert!(
            values.iter().all(|(value, _)| *value == stored),
            "{values:?}"
        );
        assert_eq!(values.iter().filter(|(_, fresh)| *fresh).count(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn short_tracking_and_sealing_keys_are_refused() {
        let config = Cli::parse_from([
            "herald",
            "--database-url",
            "sqlite://x.db",
            "--jwt-secret",
            "jwt-secret-value-jwt-secret-value-0000",
            "--tracking-secret",
            "short",
            "--secrets-key",
            "secrets-key-value-secrets-key-value-00",
        ])
        .config;
        let error = config.secrets().unwrap_err().to_string();
        assert!(error.contains("HERALD_TRACKING_SECRET"), "{error}");
    }

    #[test]
    fn debug_output_and_help_hold_no_secret() {
        use clap::CommandFactory;
        let config = Cli::parse_from([
            "herald",
            "--database-url",
            "postgres://herald:db-password-1@db.example/herald",
            "--jwt-secret",
            "jwt-secret-value-jwt-secret-value-0000",
            "--tracking-secret",
            "tracking-secret-value-tracking-secret",
            "--secrets-key",
            "secrets-key-value-secrets-key-value-00",
            "--metrics-token",
            "metrics-token-value",
        ])
        .config;
        let shown = format!("{config:?}");
        for secret in [
            "db-password-1",
            "jwt-secret-value",
            "tracking-secret-value",
            "secrets-key-value",
            "metrics-token-value",
        ] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("db.example"), "{shown}");
        // --help shows no value taken from the environment for these.
        let help = Cli::command().render_long_help().to_string();
        for env in [
            "DATABASE_URL",
            "HERALD_JWT_SECRET",
            "HERALD_TRACKING_SECRET",
            "HERALD_SECRETS_KEY",
            "HERALD_METRICS_TOKEN",
        ] {
            let arg = Cli::command()
                .get_arguments()
                .find(|a| a.get_env().is_some_and(|e| e == env))
                .map(|a| a.is_hide_env_values_set());
            assert_eq!(arg, Some(true), "{env} shows its value in --help: {help}");
        }
    }

    #[test]
    fn links_to_this_machine_only_are_told_apart_from_public_ones() {
        for local in [
            "http://127.0.0.1:8080",
            "http://127.0.1.1",
            "http://localhost:8080/",
            "https://LOCALHOST.",
            "http://app.localhost",
            "http://[::1]:8080",
            "http://0.0.0.0:8080",
            "http://[::]:80",
            "http://user:pw@127.0.0.1/herald",
        ] {
            assert!(is_local_url(local), "{local}");
        }
        for public in [
            "https://herald.example.com",
            "https://links.acme.test:8443/herald",
            "http://203.0.113.7:8080",
            "http://[2001:db8::1]:8080",
            "https://localhost-proxy.example.com",
        ] {
            assert!(!is_local_url(public), "{public}");
        }
    }

    #[test]
    fn a_database_url_is_shown_without_its_password() {
        assert_eq!(
            without_password("postgres://herald:s3cret@db.internal:5432/herald?sslmode=require"),
            "postgres://herald:***@db.internal:5432/herald?sslmode=require"
        );
        assert_eq!(
            without_password("postgres://postgres@127.0.0.1/herald"),
            "postgres://postgres@127.0.0.1/herald"
        );
        assert_eq!(
            without_password("sqlite://data/herald.db"),
            "sqlite://data/herald.db"
        );
    }

    #[test]
    fn durations_take_a_number_and_a_unit() {
        use std::time::Duration;
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
