//! Test harness: starts the real server on port 0 against a fresh database and talks HTTP.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use herald::auth::{sign_hs256, Claims};
use herald::config::Config;
use herald::startup::Application;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

pub const JWT_SECRET: &str = "test-secret-that-is-at-least-32-bytes-long";
pub const TRACKING_SECRET: &str = "test-tracking-secret-test-tracking-secret";
pub const SECRETS_KEY: &str = "test-secrets-key-test-secrets-key-test";

/// The `herald` binary with a clean environment, pointed at a test database with the test
/// secrets (the same ones [`test_config`] gives an in-process server).
pub fn herald_process(database_url: &str, data_dir: &std::path::Path) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_herald"));
    command
        .env_clear()
        .env("RUST_LOG", "info")
        .env("DATABASE_URL", database_url)
        .env("HERALD_DATA_DIR", data_dir)
        .env("HERALD_JWT_SECRET", JWT_SECRET)
        .env("HERALD_TRACKING_SECRET", TRACKING_SECRET)
        .env("HERALD_SECRETS_KEY", SECRETS_KEY)
        .env("HERALD_RATE_LIMIT_ORG", "0")
        .env("HERALD_TRACKING_MAX_PER_TOKEN", "0")
        .env("HERALD_OUTBOUND_ALLOW", OUTBOUND_ALLOW);
    command
}

/// A `herald serve` process whose log (at debug level) goes to a file, and a client for it.
pub struct LoggedServer {
    pub app: TestApp,
    pub child: std::process::Child,
    pub log: std::path::PathBuf,
}

impl Drop for LoggedServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn spawn_logged(backend: Backend) -> LoggedServer {
    let (url, dir) = fresh_database(backend).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = dir.join("server.log");
    let child = herald_process(&url, &dir)
        .arg("serve")
        .env("HERALD_BIND", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "debug")
        // JSON lines: no colour codes between the characters of a leaked value.
        .env("HERALD_LOG_FORMAT", "json")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start herald");
    let address = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let ready = eventually(std::time::Duration::from_secs(30), || async {
        client
            .get(format!("{address}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    assert!(
        ready,
        "herald did not start: {}",
        std::fs::read_to_string(&log).unwrap()
    );
    LoggedServer {
        app: TestApp {
            address,
            client,
            backend,
            database_url: url,
            data_dir: dir,
            admin: token(&["acme"], &["admin"], "alice"),
        },
        child,
        log,
    }
}

/// Which database a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs the body once per database: `db_test!(name, |app| async move { ... })` makes
/// `name::sqlite` and `name::postgres`. `db_test!(api_only name, ...)` runs the server with
/// `HERALD_WORKERS=false`: launches are recorded but nothing sends or completes them, for tests
/// of the lifecycle rules themselves. `db_test!(clock_ahead name, ...)` runs it with the
/// scheduler's launch clock [`CLOCK_AHEAD`] of the wall clock (see [`start_ahead`]).
/// `db_test!(limits(per_org, per_token) name, ...)` runs it with `HERALD_RATE_LIMIT_ORG` and
/// `HERALD_TRACKING_MAX_PER_TOKEN` set; every other server runs with both off.
#[macro_export]
macro_rules! db_test {
    (api_only $name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let app = $crate::helpers::spawn_api_only($crate::helpers::Backend::Sqlite).await;
                ($body)(app).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let app = $crate::helpers::spawn_api_only($crate::helpers::Backend::Postgres).await;
                ($body)(app).await;
            }
        }
    };
    (clock_ahead $name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let app =
                    $crate::helpers::spawn_clock_ahead($crate::helpers::Backend::Sqlite).await;
                ($body)(app).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let app =
                    $crate::helpers::spawn_clock_ahead($crate::helpers::Backend::Postgres).await;
                ($body)(app).await;
            }
        }
    };
    (limits($per_org:expr, $per_token:expr) $name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let app = $crate::helpers::spawn_limited(
                    $crate::helpers::Backend::Sqlite,
                    $per_org,
                    $per_token,
                )
                .await;
                ($body)(app).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let app = $crate::helpers::spawn_limited(
                    $crate::helpers::Backend::Postgres,
                    $per_org,
                    $per_token,
                )
                .await;
                ($body)(app).await;
            }
        }
    };
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let app = $crate::helpers::spawn_app($crate::helpers::Backend::Sqlite).await;
                ($body)(app).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let app = $crate::helpers::spawn_app($crate::helpers::Backend::Postgres).await;
                ($body)(app).await;
            }
        }
    };
}

/// A running server and a client for it.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub backend: Backend,
    pub database_url: String,
    pub data_dir: std::path::PathBuf,
    /// A token for org `acme` with the admin role.
    pub admin: String,
}

/// The admin URL tests create their databases through.
pub fn postgres_admin_url() -> String {
    std::env::var("HERALD_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);
static CLEANED: OnceLock<()> = OnceLock::new();

fn binary_tag() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().to_string()))
        .unwrap_or_default()
        .split('-')
        .next()
        .unwrap_or("t")
        .replace(|c: char| !c.is_ascii_alphanumeric(), "")
}

/// Creates an empty PostgreSQL database for one test and returns its URL. Panics loudly when
/// PostgreSQL cannot be reached: a Postgres test never passes by skipping.
pub async fn fresh_postgres_database() -> String {
    use sqlx::Connection;
    let admin_url = postgres_admin_url();
    let mut conn = sqlx::PgConnection::connect(&admin_url).await.unwrap_or_else(|e| {
        panic!(
            "PostgreSQL is not reachable at {admin_url} ({e}). Start it (see README) or set HERALD_TEST_POSTGRES_URL."
        )
    });
    let tag = binary_tag();
    let pid = std::process::id();
    if CLEANED.set(()).is_ok() {
        // Databases left by earlier runs of this test binary (the process id tells them apart).
        let stale: Vec<String> = sqlx::query_scalar(
            "select datname from pg_database where datname like $1 and datname not like $2",
        )
        .bind(format!("herald_{tag}_%"))
        .bind(format!("herald_{tag}_{pid}_%"))
        .fetch_all(&mut conn)
        .await
        .unwrap_or_default();
        // Only those of processes that have exited: test binaries running side by side must
        // not drop each other's databases.
        let alive = |name: &str| {
            name.split('_')
                .nth(2)
                .is_some_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists())
        };
        for name in stale.into_iter().filter(|n| !alive(n)) {
            let _ = sqlx::query(&format!("drop database if exists \"{name}\" with (force)"))
                .execute(&mut conn)
                .await;
        }
    }
    let name = format!(
        "herald_{tag}_{pid}_{}",
        COUNTER.fetch_add(1, Ordering::SeqCst)
    );
    sqlx::query(&format!("create database \"{name}\""))
        .execute(&mut conn)
        .await
        .expect("create test database");
    let base = admin_url
        .rsplit_once('/')
        .map(|(b, _)| b)
        .unwrap_or(&admin_url);
    format!("{base}/{name}")
}

/// The configuration a test server runs with.
pub fn test_config(database_url: String, data_dir: &std::path::Path) -> Config {
    Config {
        database_url: Some(database_url),
        bind: "127.0.0.1:0".into(),
        data_dir: data_dir.to_path_buf(),
        jwt_secret: Some(JWT_SECRET.into()),
        jwt_public_key: None,
        jwt_issuer: None,
        jwt_audience: None,
        tracking_secret: Some(TRACKING_SECRET.into()),
        secrets_key: Some(SECRETS_KEY.into()),
        erasure_key: None,
        public_url: None,
        workers: true,
        log_format: "text".into(),
        metrics_token: None,
        db_connections: Some(8),
        test_clock_ahead: None,
        job_lease: "4s".into(),
        shutdown_timeout: "20s".into(),
        test_clock_skew: None,
        // Tests send as fast as they can; those of the limits set their own.
        rate_limit_org: 0,
        tracking_max_per_token: 0,
        signin_link: "auto".into(),
        signin_org: "demo".into(),
        // The vendor stand-ins listen on loopback.
        outbound_allow: OUTBOUND_ALLOW.into(),
        max_connections: 10_000,
        header_read_timeout: "30s".into(),
    }
}

/// What the test servers may call although it is not public: the local vendor stand-ins.
pub const OUTBOUND_ALLOW: &str = "127.0.0.1";

/// A fresh database URL and data dir for `backend`.
pub async fn fresh_database(backend: Backend) -> (String, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!(
        "herald-test-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let url = match backend {
        Backend::Sqlite => format!("sqlite://{}", dir.join("herald.db").display()),
        Backend::Postgres => fresh_postgres_database().await,
    };
    (url, dir)
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    let (url, dir) = fresh_database(backend).await;
    spawn_with(backend, test_config(url, &dir)).await
}

/// A server without the scheduler and send workers (`HERALD_WORKERS=false`).
pub async fn spawn_api_only(backend: Backend) -> TestApp {
    let (url, dir) = fresh_database(backend).await;
    let mut config = test_config(url, &dir);
    config.workers = false;
    spawn_with(backend, config).await
}

/// A server with `HERALD_RATE_LIMIT_ORG=per_org` and `HERALD_TRACKING_MAX_PER_TOKEN=per_token`.
pub async fn spawn_limited(backend: Backend, per_org: u32, per_token: u32) -> TestApp {
    let (url, dir) = fresh_database(backend).await;
    let mut config = test_config(url, &dir);
    config.rate_limit_org = per_org;
    config.tracking_max_per_token = per_token;
    spawn_with(backend, config).await
}

/// How far ahead of the wall clock a `clock_ahead` server decides launches
/// (`HERALD_TEST_CLOCK_AHEAD`).
pub const CLOCK_AHEAD: &str = "1d";

/// A `startAt` an hour from now: in the future for the API, already past for the launches of a
/// server whose clock is [`CLOCK_AHEAD`]. Nothing launches until the test makes the launch job
/// due ([`TestApp::make_launch_due`]), however slow the set-up was.
pub fn start_ahead() -> String {
    (chrono::Utc::now() + chrono::Duration::hours(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A server whose scheduler decides launches [`CLOCK_AHEAD`] of the wall clock.
pub async fn spawn_clock_ahead(backend: Backend) -> TestApp {
    let (url, dir) = fresh_database(backend).await;
    let mut config = test_config(url, &dir);
    config.test_clock_ahead = Some(herald::config::parse_ttl(CLOCK_AHEAD).unwrap());
    spawn_with(backend, config).await
}

/// Starts a server with a given configuration.
pub async fn spawn_with(backend: Backend, config: Config) -> TestApp {
    let app = Application::build(&config).await.expect("build app");
    let address = format!("http://{}", app.local_addr());
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        backend,
        database_url: config.database_url.clone().unwrap(),
        data_dir: config.data_dir.clone(),
        admin: token(&["acme"], &["admin"], "alice"),
    }
}

/// An HS256 token for the test secret.
pub fn token(orgs: &[&str], roles: &[&str], sub: &str) -> String {
    let claims = Claims {
        sub: sub.into(),
        exp: chrono::Utc::now().timestamp() + 3600,
        orgs: orgs.iter().map(|s| s.to_string()).collect(),
        roles: roles.iter().map(|s| s.to_string()).collect(),
        iss: None,
        aud: None,
    };
    sign_hs256(JWT_SECRET, &claims).unwrap()
}

/// A response read whole: status, headers and body (JSON when it parses).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts a problem+json error with this status.
    #[track_caller]
    pub fn assert_problem(&self, status: u16) {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text);
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "body: {}",
            self.text
        );
        assert_eq!(self.body["status"], status);
    }
}

/// A request under construction.
pub struct Call<'a> {
    app: &'a TestApp,
    builder: reqwest::RequestBuilder,
}

impl<'a> Call<'a> {
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.builder = self.builder.header(name, value);
        self
    }

    pub fn json(mut self, body: &Value) -> Self {
        self.builder = self.builder.json(body);
        self
    }

    pub fn raw(mut self, content_type: Option<&str>, body: impl Into<reqwest::Body>) -> Self {
        if let Some(ct) = content_type {
            self.builder = self.builder.header("content-type", ct);
        }
        self.builder = self.builder.body(body);
        self
    }

    pub async fn send(self) -> Reply {
        let _ = self.app;
        let response = self.builder.send().await.expect("request");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
            text,
        }
    }
}

impl TestApp {
    /// Makes the pending launch job of acme's campaign `id` due now, once the scheduler has
    /// derived it, as if its `run_at` had come: the scheduler then claims it and runs `RunDue`
    /// as for any launch. With [`start_ahead`] and a `clock_ahead` server, the campaign is due.
    pub async fn make_launch_due(&self, id: &str) {
        let db = herald::db::Db::connect(&self.database_url, 2)
            .await
            .expect("connect");
        let moved = eventually(std::time::Duration::from_secs(30), || async {
            sqlx::query(
                "update jobs set run_at = $1
                 where org_id = 'acme' and campaign_id = $2 and kind = 'launch' and state = 'scheduled'",
            )
            .bind(herald::store::format_time(chrono::Utc::now()))
            .bind(id)
            .execute(&db.write)
            .await
            .expect("move run_at")
            .rows_affected()
                == 1
        })
        .await;
        assert!(moved, "campaign {id} never had a pending launch job");
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// A request with no credentials.
    pub fn anonymous(&self, method: Method, path: &str) -> Call<'_> {
        Call {
            app: self,
            builder: self.client.request(method, self.url(path)),
        }
    }

    /// A request as `token` for `org`.
    pub fn as_user(&self, token: &str, org: &str, method: Method, path: &str) -> Call<'_> {
        self.anonymous(method, path)
            .header("authorization", &format!("Bearer {token}"))
            .header("orgid", org)
    }

    /// A request as the acme admin.
    pub fn admin(&self, method: Method, path: &str) -> Call<'_> {
        let token = self.admin.clone();
        self.as_user(&token, "acme", method, path)
    }

    pub async fn post_campaign(&self, body: &Value) -> Reply {
        self.admin(Method::POST, "/crm/marketing/campaigns")
            .json(body)
            .send()
            .await
    }

    pub async fn get_campaign(&self, id: &str) -> Reply {
        self.admin(Method::GET, &format!("/crm/marketing/campaigns/{id}"))
            .send()
            .await
    }

    pub async fn put_campaign(&self, id: &str, body: &Value) -> Reply {
        self.admin(Method::PUT, &format!("/crm/marketing/campaigns/{id}"))
            .json(body)
            .send()
            .await
    }

    /// The campaign's events (up to 500). Panics on any answer but a `200` with an `items` array:
    /// a failed read must not look like a campaign without events.
    pub async fn campaign_events(&self, id: &str) -> Vec<Value> {
        let reply = self
            .admin(
                Method::GET,
                &format!("/crm/marketing/campaigns/{id}/events?limit=500"),
            )
            .send()
            .await;
        assert_eq!(reply.status, 200, "events of {id}: {}", reply.text);
        reply.body["items"]
            .as_array()
            .cloned()
            .unwrap_or_else(|| panic!("events of {id} have no items array: {}", reply.text))
    }

    /// Every event of org `acme`, in global order.
    pub async fn all_events(&self) -> Vec<Value> {
        let mut out = Vec::new();
        let mut after = 0i64;
        loop {
            let reply = self
                .admin(
                    Method::GET,
                    &format!("/crm/marketing/events?after={after}&limit=500"),
                )
                .send()
                .await;
            assert_eq!(reply.status, 200, "{}", reply.text);
            let items = reply.body["items"].as_array().cloned().unwrap_or_default();
            if items.is_empty() {
                return out;
            }
            after = items.last().unwrap()["position"].as_i64().unwrap();
            out.extend(items);
        }
    }
}

impl TestApp {
    /// Connects every platform through the sandbox vendor and creates the template and audience
    /// the seed's example campaign names, so it can launch.
    pub async fn make_ready(&self) {
        for platform in [
            "email",
            "sms",
            "facebook",
            "instagram",
            "linkedin",
            "x",
            "google-ads",
            "meta-ads",
        ] {
            let body = json!({"platform": platform, "vendor": "sandbox", "label": format!("{platform} sandbox"),
                "profiles": [{"id": format!("{platform}-page"), "name": "Acme", "handle": "acme"}]});
            let reply = self
                .admin(Method::POST, "/crm/integrations/connections")
                .json(&body)
                .send()
                .await;
            assert_eq!(reply.status, 201, "{}", reply.text);
        }
        let template = json!({"id": "tpl-spring-launch", "name": "Spring launch",
            "email": {"subject": "Spring is here, {{ contact.firstName }}", "html": "<p>Hi {{ contact.firstName }}</p>"},
            "sms": {"body": "Spring sale! {{ unsubscribeUrl }}"},
            "social": {"text": "Spring 2026 is here"}});
        let reply = self
            .admin(Method::POST, "/crm/marketing/templates")
            .json(&template)
            .send()
            .await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        let audience = json!({"id": "aud-spring-prospects", "name": "Spring prospects", "type": "dynamic",
            "filter": {"datatype": "contact", "where": {"tags": {"$in": ["prospect", "vip"]}}}});
        let reply = self
            .admin(Method::POST, "/crm/audiences")
            .json(&audience)
            .send()
            .await;
        assert_eq!(reply.status, 201, "{}", reply.text);
    }
}

/// The seed's example campaign body, verbatim.
pub fn seed_campaign() -> Value {
    json!({
      "name": "Spring 2026 Launch",
      "type": "multi-channel",
      "channels": ["email", "facebook", "linkedin"],
      "audienceId": "aud-spring-prospects",
      "templateId": "tpl-spring-launch",
      "schedule": {
        "startAt": "2026-05-01T09:00:00Z",
        "endAt": "2026-05-15T23:59:59Z",
        "timezone": "America/New_York"
      },
      "status": "draft"
    })
}

/// Polls `check` every 50 ms until it holds or `timeout` passes; true when it held.
pub async fn eventually<F, Fut>(timeout: std::time::Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = std::time::Instant::now();
    loop {
        if check().await {
            return true;
        }
        if start.elapsed() > timeout {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Every `EngagementRecorded` event of org acme (up to 500).
pub async fn engagements(app: &TestApp) -> Vec<Value> {
    let reply = app
        .admin(
            Method::GET,
            "/crm/marketing/events?type=EngagementRecorded&limit=500",
        )
        .send()
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.body["items"].as_array().unwrap().clone()
}

/// Every sandbox message matching `query` (e.g. `campaignId=camp-1`), through every page.
pub async fn sandbox(app: &TestApp, query: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor = String::new();
    loop {
        let reply = app
            .admin(
                Method::GET,
                &format!("/crm/integrations/sandbox/messages?{query}&limit=7{cursor}"),
            )
            .send()
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        out.extend(reply.body["items"].as_array().unwrap().iter().cloned());
        match reply.body["nextCursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => return out,
        }
    }
}

/// The read models `herald replay` rebuilds from the log: `campaigns`, `documents`,
/// `suppressions` and `org_settings` (`projector::rebuild_campaigns`, `rebuild_documents`,
/// `rebuild_suppressions`, `rebuild_settings`) and the tables of the checkpointed
/// projections (`Projection::reset`).
pub const READ_MODEL_TABLES: &[&str] = &[
    "analytics_daily",
    "analytics_step_days",
    "analytics_uniques",
    "campaign_status_counts",
    "campaign_status_index",
    "campaigns",
    "contact_activities",
    "documents",
    "org_settings",
    "suppressions",
];

/// Every other table, and so not compared after a replay: the log itself, bookkeeping that is
/// not derived from it (checkpoints, idempotency and engagement keys, jobs, drip and milestone
/// enrollments (durable step timers, like jobs), the send ledger and
/// its counters, channel health, the sandbox outbox, short links, purge jobs, scheduler nodes,
/// cache versions), and the encrypted credentials.
pub const NOT_REBUILT_TABLES: &[&str] = &[
    "_sqlx_migrations",
    "cache_epoch",
    "analytics_versions",
    "channel_stats",
    "connection_secrets",
    "engagement_keys",
    "enrollments",
    "erased_contacts",
    "frequency_counts",
    "soft_bounces",
    "events",
    "idempotency_keys",
    "job_counters",
    "jobs",
    "projection_checkpoints",
    "purge_jobs",
    "scheduler_nodes",
    "send_counts",
    "send_ledger",
    "short_links",
    "sandbox_messages",
    "webhook_tokens",
];

/// Columns that hold the time a row was last written rather than anything read from the log.
const WRITE_TIME_COLUMNS: &[(&str, &str)] = &[
    ("analytics_daily", "updated_at"),
    ("analytics_step_days", "updated_at"),
];

/// Every column of every table, from the database catalogue: `(table, column, declared type)`.
pub async fn catalogue(db: &herald::db::Db) -> Vec<(String, String, String)> {
    use sqlx::Row;
    let sql = match db.backend {
        herald::db::Backend::Sqlite => {
            "select m.name as t, p.name as c, lower(p.type) as ty
             from sqlite_master m join pragma_table_info(m.name) p
             where m.type = 'table' and m.name not like 'sqlite_%'
             order by m.name, p.cid"
        }
        herald::db::Backend::Postgres => {
            "select cast(table_name as text) as t, cast(column_name as text) as c,
                    cast(data_type as text) as ty
             from information_schema.columns where table_schema = current_schema()
             order by table_name, ordinal_position"
        }
    };
    sqlx::query(sql)
        .fetch_all(&db.read)
        .await
        .expect("read the catalogue")
        .iter()
        .map(|r| (r.get("t"), r.get("c"), r.get("ty")))
        .collect()
}

/// Every row of `table`, each column cast to text, rows sorted. `skip` names columns left out.
pub async fn table_rows(db: &herald::db::Db, table: &str, skip: &[&str]) -> Vec<String> {
    use sqlx::Row;
    let columns: Vec<String> = catalogue(db)
        .await
        .into_iter()
        .filter(|(t, c, _)| t == table && !skip.contains(&c.as_str()))
        .map(|(_, c, _)| c)
        .collect();
    assert!(!columns.is_empty(), "table {table} has no columns");
    let select: Vec<String> = columns
        .iter()
        .map(|c| format!("cast({c} as text) as {c}"))
        .collect();
    let sql = format!("select {} from {table}", select.join(", "));
    let mut rows: Vec<String> = sqlx::query(&sql)
        .fetch_all(&db.read)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .iter()
        .map(|row| {
            let cells: Vec<String> = columns
                .iter()
                .map(|c| {
                    let v: Option<String> = row.get(c.as_str());
                    format!("{c}={}", v.as_deref().unwrap_or("NULL"))
                })
                .collect();
            cells.join(" | ")
        })
        .collect();
    rows.sort();
    rows
}

/// Every row of every read model, by table. Fails when the database holds a table that is in
/// neither [`READ_MODEL_TABLES`] nor [`NOT_REBUILT_TABLES`]: a new table must be classified
/// before a replay test can claim to compare every read model.
pub async fn read_models(db: &herald::db::Db) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut tables: Vec<String> = catalogue(db).await.into_iter().map(|(t, _, _)| t).collect();
    tables.dedup();
    let unclassified: Vec<&String> = tables
        .iter()
        .filter(|t| {
            !READ_MODEL_TABLES.contains(&t.as_str()) && !NOT_REBUILT_TABLES.contains(&t.as_str())
        })
        .collect();
    assert!(
        unclassified.is_empty(),
        "tables neither read models nor listed as not rebuilt: {unclassified:?}"
    );
    for table in READ_MODEL_TABLES {
        assert!(tables.iter().any(|t| t == table), "no table {table}");
    }
    let mut out = std::collections::BTreeMap::new();
    for table in READ_MODEL_TABLES {
        let skip: Vec<&str> = WRITE_TIME_COLUMNS
            .iter()
            .filter(|(t, _)| t == table)
            .map(|(_, c)| *c)
            .collect();
        let rows = table_rows(db, table, &skip).await;
        // A status count that went back to zero may be kept by the live projection and left out
        // by a rebuild: the same count either way.
        let rows = if *table == "campaign_status_counts" {
            rows.into_iter()
                .filter(|r| !r.ends_with("count=0"))
                .collect()
        } else {
            rows
        };
        out.insert(table.to_string(), rows);
    }
    out
}

/// Empties `tables`, so that only a rebuild can bring their rows back.
pub async fn wipe(db: &herald::db::Db, tables: &[&str]) {
    for table in tables {
        sqlx::query(&format!("delete from {table}"))
            .execute(&db.write)
            .await
            .unwrap_or_else(|e| panic!("wipe {table}: {e}"));
    }
}

/// The events each projection replayed, from `herald replay`'s JSON log (`rebuilt` lines).
pub fn rebuilt_counts(log: &str) -> std::collections::BTreeMap<String, u64> {
    log.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["fields"]["message"] == "rebuilt")
        .map(|line| {
            let fields = &line["fields"];
            let name = fields["projection"]
                .as_str()
                .expect("projection")
                .to_string();
            (name, fields["events"].as_u64().expect("events"))
        })
        .collect()
}
