//! The `herald` command line: token, export, and refusing to start without secrets.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::Method;

use crate::db_test;
use crate::helpers::*;

fn herald() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_herald"));
    command.env_clear().env("RUST_LOG", "info");
    command
}

db_test!(
    herald_token_mints_a_token_the_server_accepts_and_export_prints_the_log,
    |app: TestApp| async move {
        let out = herald()
            .args([
                "token", "--org", "acme", "--role", "marketer", "--sub", "cli-user", "--ttl", "10m",
            ])
            .env("HERALD_JWT_SECRET", JWT_SECRET)
            .env("HERALD_DATA_DIR", &app.data_dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let jwt = String::from_utf8(out.stdout).unwrap().trim().to_string();
        let created = app
            .as_user(&jwt, "acme", Method::POST, "/crm/marketing/campaigns")
            .json(&seed_campaign())
            .send()
            .await;
        assert_eq!(created.status, 201, "{}", created.text);
        assert_eq!(created.body["createdBy"], "cli-user");

        let out = herald()
            .args(["export", "--org", "acme"])
            .env("DATABASE_URL", &app.database_url)
            .env("HERALD_DATA_DIR", &app.data_dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0]["eventType"], "Created");
        assert_eq!(lines[0]["metadata"]["actor"], "cli-user");
    }
);

#[tokio::test]
async fn with_postgres_the_server_refuses_to_start_without_secrets() {
    let out = herald()
        .arg("serve")
        .env("DATABASE_URL", postgres_admin_url())
        .env("HERALD_BIND", "127.0.0.1:0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    for name in [
        "HERALD_JWT_SECRET",
        "HERALD_TRACKING_SECRET",
        "HERALD_SECRETS_KEY",
    ] {
        assert!(stderr.contains(name), "{name} not named in: {stderr}");
    }
}

#[tokio::test]
async fn with_sqlite_and_no_secrets_the_server_generates_them_and_says_how_to_mint_a_token() {
    let dir = std::env::temp_dir().join(format!("herald-cli-{}", uuid::Uuid::now_v7()));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = herald()
        .arg("serve")
        .env("HERALD_DATA_DIR", &dir)
        .env("HERALD_BIND", format!("127.0.0.1:{port}"))
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = client
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await
        {
            if r.status() == 200 {
                break;
            }
        }
        assert!(Instant::now() < deadline, "server did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for file in ["jwt-secret", "tracking-secret", "secrets-key", "herald.db"] {
        assert!(dir.join(file).exists(), "{file} missing from the data dir");
    }
    // The generated secret signs tokens the running server accepts.
    let out = herald()
        .args(["token", "--org", "acme", "--role", "admin"])
        .env("HERALD_DATA_DIR", &dir)
        .output()
        .unwrap();
    let jwt = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let listed = client
        .get(format!("http://127.0.0.1:{port}/crm/marketing/campaigns"))
        .bearer_auth(&jwt)
        .header("orgid", "acme")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 200);
    child.kill().unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let hints: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("herald token --org"))
        .collect();
    assert_eq!(
        hints.len(),
        1,
        "one log line says how to mint a token: {stderr}"
    );
    let secret = std::fs::read_to_string(dir.join("jwt-secret")).unwrap();
    assert!(
        !stderr.contains(secret.trim()),
        "the secret itself is never logged"
    );
}

/// Waits until every projection has caught up with the log.
async fn caught_up(app: &TestApp) {
    let caught_up = eventually(Duration::from_secs(30), || async {
        let health = app.admin(Method::GET, "/crm/marketing/health").send().await;
        let projections = health.body["projections"].as_object().cloned();
        projections.is_some_and(|p| !p.is_empty() && p.values().all(|v| v["lag"] == 0))
    })
    .await;
    assert!(caught_up, "the projections did not catch up");
}

db_test!(
    herald_replay_rebuilds_every_read_model_to_the_same_rows,
    |app: TestApp| async move {
        app.make_ready().await;
        let contacts = serde_json::json!([
            {"id": "ct-1", "email": "one@example.com", "tags": ["prospect"]},
            {"email": "two@example.com", "tags": ["vip"]},
            {"id": "ct-3", "phone": "+14155550100", "unsubscribed": {"sms": true}}
        ]);
        let imported = app
            .admin(Method::POST, "/crm/contacts/import")
            .json(&contacts)
            .send()
            .await;
        assert!(imported.status.is_success(), "{}", imported.text);
        let put = app
            .admin(Method::PUT, "/crm/contacts/ct-1")
            .json(&serde_json::json!({"email": "one@example.com", "firstName": "Uno"}))
            .send()
            .await;
        assert!(put.status.is_success(), "{}", put.text);
        let deleted = app.admin(Method::DELETE, "/crm/contacts/ct-3").send().await;
        assert_eq!(deleted.status, 204, "{}", deleted.text);
        let mut body = seed_campaign();
        body.as_object_mut().unwrap().remove("schedule");
        body["id"] = serde_json::json!("camp-replay");
        body["status"] = serde_json::json!("running");
        let launched = app.post_campaign(&body).await;
        assert_eq!(launched.body["status"], "running", "{}", launched.text);
        assert_eq!(
            launched.body["lastRun"]["reach"], 1,
            "reach counts the audience at launch (the PUT dropped ct-1's tags)"
        );
        let completed = eventually(Duration::from_secs(30), || async {
            app.get_campaign("camp-replay").await.body["status"] == "completed"
        })
        .await;
        assert!(completed, "{}", app.get_campaign("camp-replay").await.text);
        let sent = sandbox(&app, "campaignId=camp-replay").await;
        let email = sent
            .iter()
            .find(|m| m["channel"] == "email")
            .unwrap_or_else(|| panic!("no email sent: {sent:?}"));
        let contact = email["contactId"].as_str().unwrap();
        // An open through the message's own pixel, and what the API takes.
        let pixel = email["trackingUrls"]["open"]
            .as_str()
            .expect("an open pixel");
        let opened = app
            .anonymous(Method::GET, &pixel[pixel.find("/connect/").unwrap()..])
            .header(
                "user-agent",
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
            )
            .send()
            .await;
        assert_eq!(opened.status, 200, "{}", opened.text);
        let engaged = app
            .admin(Method::POST, "/crm/marketing/campaigns/camp-replay/engagements")
            .json(&serde_json::json!([
                {"type": "conversion", "channel": "email", "contactId": contact, "value": "19.99", "currency": "USD"},
                {"type": "impression", "channel": "facebook", "value": 1200}
            ]))
            .send()
            .await;
        assert_eq!(engaged.status, 200, "{}", engaged.text);
        assert_eq!(engaged.body["recorded"], 2, "{}", engaged.text);
        let recorded = eventually(Duration::from_secs(10), || async {
            engagements(&app).await.len() == 3
        })
        .await;
        assert!(recorded, "{:?}", engagements(&app).await);
        // A drip step's sends, for the per-step rollups.
        let drip = serde_json::json!({"id": "camp-drip", "name": "Welcome", "type": "drip",
            "channels": ["email"], "audienceId": "aud-spring-prospects",
            "templateId": "tpl-spring-launch", "steps": [{"id": "welcome", "delay": "PT0S"}],
            "status": "running"});
        let created = app.post_campaign(&drip).await;
        assert_eq!(created.status, 201, "{}", created.text);
        let stepped = eventually(Duration::from_secs(20), || async {
            !sandbox(&app, "campaignId=camp-drip").await.is_empty()
        })
        .await;
        assert!(stepped, "the drip's step was not sent");
        let draft = app.post_campaign(&seed_campaign()).await;
        assert_eq!(draft.status, 201, "{}", draft.text);
        let settings = app
            .admin(Method::PUT, "/crm/marketing/settings")
            .json(&serde_json::json!({"defaultTimezone": "Europe/Berlin",
                "frequencyCaps": [{"channel": "*", "max": 3, "per": "week"}]}))
            .send()
            .await;
        assert_eq!(settings.status, 200, "{}", settings.text);
        caught_up(&app).await;

        let db = herald::db::Db::connect(&app.database_url, 2).await.unwrap();
        let live = read_models(&db).await;
        for (table, rows) in &live {
            assert!(
                !rows.is_empty(),
                "{table} is empty before the replay: the comparison would prove nothing"
            );
        }
        wipe(&db, READ_MODEL_TABLES).await;
        let out = herald_for(&app).arg("replay").output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        let rebuilt = rebuilt_counts(&stderr);
        for projection in [
            "campaigns",
            "documents",
            "suppressions",
            "settings",
            "campaign-status-counts",
            "analytics",
        ] {
            assert!(
                rebuilt.get(projection).is_some_and(|n| *n > 0),
                "{projection} replayed no events: {stderr}"
            );
        }
        assert_eq!(read_models(&db).await, live);
    }
);

/// `herald` with the database and secrets of `app`.
fn herald_for(app: &TestApp) -> Command {
    let mut command = herald_process(&app.database_url, &app.data_dir);
    command.env("HERALD_LOG_FORMAT", "json");
    command
}

async fn herald_migrate_creates_the_schema_and_can_run_twice(backend: Backend) {
    let (url, dir) = fresh_database(backend).await;
    for run in 0..2 {
        let out = herald()
            .arg("migrate")
            .env("DATABASE_URL", &url)
            .env("HERALD_DATA_DIR", &dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "run {run}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let db = herald::db::Db::connect(&url, 2).await.unwrap();
    let tables: Vec<String> = catalogue(&db)
        .await
        .into_iter()
        .map(|(t, _, _)| t)
        .collect();
    for table in READ_MODEL_TABLES.iter().chain(NOT_REBUILT_TABLES) {
        assert!(
            tables.iter().any(|t| t == table),
            "{table} missing after migrate"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn herald_migrate_creates_the_schema_and_can_run_twice_on_sqlite() {
    herald_migrate_creates_the_schema_and_can_run_twice(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn herald_migrate_creates_the_schema_and_can_run_twice_on_postgres() {
    herald_migrate_creates_the_schema_and_can_run_twice(Backend::Postgres).await;
}

async fn herald_purge_removes_the_orgs_deleted_campaigns(app: TestApp) {
    for id in ["camp-gone", "camp-kept"] {
        let body =
            serde_json::json!({"id": id, "name": id, "type": "one-shot", "channels": ["email"]});
        assert_eq!(app.post_campaign(&body).await.status, 201);
    }
    let deleted = app
        .admin(Method::DELETE, "/crm/marketing/campaigns/camp-gone")
        .send()
        .await;
    assert_eq!(deleted.status, 204);
    let refused = herald_for(&app)
        .args(["purge", "--org", "not an org"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let out = herald_for(&app)
        .args(["purge", "--org", "acme"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("one JSON object on stdout");
    assert!(printed["jobId"].is_string(), "{printed}");
    assert_eq!(
        printed["result"]["campaignIds"],
        serde_json::json!(["camp-gone"])
    );
    let streams: Vec<String> = app
        .all_events()
        .await
        .iter()
        .map(|e| e["streamId"].as_str().unwrap().to_string())
        .collect();
    assert!(
        !streams.iter().any(|s| s.contains("camp-gone")),
        "{streams:?}"
    );
    assert!(streams.contains(&"audit-acme".to_string()), "{streams:?}");
    app.get_campaign("camp-gone").await.assert_problem(404);
    assert_eq!(app.get_campaign("camp-kept").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn herald_purge_removes_the_orgs_deleted_campaigns_on_sqlite() {
    herald_purge_removes_the_orgs_deleted_campaigns(spawn_api_only(Backend::Sqlite).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn herald_purge_removes_the_orgs_deleted_campaigns_on_postgres() {
    herald_purge_removes_the_orgs_deleted_campaigns(spawn_api_only(Backend::Postgres).await).await;
}

db_test!(
    api_only herald_replay_projection_rebuilds_only_that_projection,
    |app: TestApp| async move {
        let body = serde_json::json!({"id": "camp-1", "name": "One", "type": "one-shot", "channels": ["email"]});
        assert_eq!(app.post_campaign(&body).await.status, 201);
        // `campaigns`, the inline read model; the checkpointed ones are rebuilt in the replay
        // tests above and in herald_replay_on_postgres_waits_for_events_behind_an_open_transaction.
        let db = herald::db::Db::connect(&app.database_url, 2).await.unwrap();
        let before = read_models(&db).await;
        assert_eq!(before["campaigns"].len(), 1);
        wipe(&db, &["campaigns"]).await;
        let out = herald_for(&app)
            .args(["replay", "--projection", "campaigns"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert_eq!(read_models(&db).await, before);
        let rebuilt = rebuilt_counts(&stderr);
        assert_eq!(
            rebuilt.keys().collect::<Vec<_>>(),
            ["campaigns"],
            "{stderr}"
        );
        assert_eq!(rebuilt["campaigns"], 1);
        let out = herald_for(&app)
            .args(["replay", "--projection", "nope"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(stderr.contains("unknown projection nope"), "{stderr}");
        assert!(stderr.contains("analytics"), "the known names are listed: {stderr}");
    }
);

db_test!(
    api_only herald_export_after_a_position_prints_only_later_events,
    |app: TestApp| async move {
        for id in ["camp-1", "camp-2", "camp-3"] {
            let body = serde_json::json!({"id": id, "name": id, "type": "one-shot", "channels": ["email"]});
            assert_eq!(app.post_campaign(&body).await.status, 201);
        }
        let all = app.all_events().await;
        assert_eq!(all.len(), 3);
        let after = all[0]["position"].as_i64().unwrap();
        let out = herald_for(&app)
            .args(["export", "--org", "acme", "--after", &after.to_string()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines, all[1..].to_vec());
    }
);

#[tokio::test]
async fn bare_herald_serves() {
    let dir = std::env::temp_dir().join(format!("herald-cli-{}", uuid::Uuid::now_v7()));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = herald()
        .env("HERALD_DATA_DIR", &dir)
        .env("HERALD_BIND", format!("127.0.0.1:{port}"))
        .stderr(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let ready = eventually(Duration::from_secs(30), || async {
        client
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(ready, "herald without a subcommand did not serve");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn herald_replay_on_postgres_waits_for_events_behind_an_open_transaction() {
    use sqlx::Connection;
    let app = spawn_api_only(Backend::Postgres).await;
    // Any transaction with an id, in any database of the cluster, opened before the write.
    let mut other = sqlx::PgConnection::connect(&postgres_admin_url())
        .await
        .unwrap();
    sqlx::query("begin").execute(&mut other).await.unwrap();
    sqlx::query("select pg_current_xact_id()")
        .execute(&mut other)
        .await
        .unwrap();
    let body = serde_json::json!({"id": "camp-1", "name": "One", "type": "one-shot", "channels": ["email"]});
    assert_eq!(app.post_campaign(&body).await.status, 201);
    // The replay cannot read the event while the older transaction is open: it must wait for
    // it to end, not report an empty log.
    let replay = herald_for(&app)
        .args(["replay", "--projection", "campaign-status-counts"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    sqlx::query("rollback").execute(&mut other).await.unwrap();
    let out = tokio::task::spawn_blocking(move || replay.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        rebuilt_counts(&stderr).get("campaign-status-counts"),
        Some(&1),
        "{stderr}"
    );
}

/// The commands of the README's command table: `(subcommand, flags)` of each `herald …` row.
fn readme_commands() -> Vec<(String, Vec<String>)> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("the README is readable");
    let mut out = Vec::new();
    for line in readme.lines().filter(|l| l.starts_with("| `herald")) {
        let cell = line.split('|').nth(1).unwrap_or_default();
        for usage in cell.split('/').map(str::trim) {
            let usage = usage.trim_matches('`');
            let mut words = usage.split_whitespace();
            if words.next() != Some("herald") {
                continue;
            }
            let sub = words.next().unwrap_or("serve").to_string();
            let flags = usage
                .split(|c: char| c.is_whitespace() || c == '[' || c == ']')
                .filter(|w| w.starts_with("--"))
                .map(str::to_string)
                .collect();
            out.push((sub, flags));
        }
    }
    out
}

#[test]
fn every_command_and_flag_the_readme_names_exists() {
    let commands = readme_commands();
    let subs: Vec<&str> = commands.iter().map(|(s, _)| s.as_str()).collect();
    for expected in ["serve", "migrate", "token", "replay", "export", "purge"] {
        assert!(subs.contains(&expected), "the README lists {expected}");
    }
    for (sub, flags) in &commands {
        let out = herald().args([sub.as_str(), "--help"]).output().unwrap();
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "herald {sub} --help: {help}");
        for flag in flags {
            assert!(
                help.contains(flag.as_str()),
                "herald {sub} has no {flag}: {help}"
            );
        }
    }
}

db_test!(
    api_only every_replay_projection_the_docs_name_is_accepted,
    |app: TestApp| async move {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
            .unwrap();
        let line = readme
            .lines()
            .find(|l| l.starts_with("| `herald replay"))
            .expect("the README documents replay");
        let names: Vec<&str> = line
            .rsplit_once('(')
            .map(|(_, list)| list)
            .unwrap_or_default()
            .split('`')
            .skip(1)
            .step_by(2)
            .collect();
        assert_eq!(
            names,
            [
                "campaigns",
                "documents",
                "suppressions",
                "settings",
                "campaign-status-counts",
                "analytics"
            ]
        );
        let operations = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/docs/operations.md"
        ))
        .unwrap();
        for name in names {
            assert!(
                operations.contains(&format!("--projection {name}")),
                "docs/operations.md tells how to rebuild {name}"
            );
            let out = herald_for(&app)
                .args(["replay", "--projection", name])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "replay --projection {name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
);

/// The subcommands that work on the server's existing data.
const DATA_COMMANDS: [&[&str]; 4] = [
    &["token", "--org", "acme", "--role", "admin"],
    &["export"],
    &["replay"],
    &["purge", "--org", "acme"],
];

/// Runs `command` and returns its stderr, asserting that it failed with exactly one line that
/// names `looked_at`, `HERALD_DATA_DIR` and `DATABASE_URL`, and printed nothing on stdout.
fn refused(mut command: Command, looked_at: &str) -> String {
    let out = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "{stderr}");
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    for name in [looked_at, "HERALD_DATA_DIR", "DATABASE_URL"] {
        assert!(stderr.contains(name), "{name} not named in: {stderr}");
    }
    stderr
}

#[test]
fn run_elsewhere_every_data_command_refuses_and_creates_no_data_dir() {
    let cwd = std::env::temp_dir().join(format!("herald-cli-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&cwd).unwrap();
    let data = cwd.join("data");
    for args in DATA_COMMANDS {
        let mut command = herald();
        command.args(args).current_dir(&cwd);
        let looked_at = if args[0] == "token" {
            data.join("jwt-secret")
        } else {
            data.join("herald.db")
        };
        refused(command, &looked_at.display().to_string());
        assert!(
            std::fs::read_dir(&cwd).unwrap().next().is_none(),
            "herald {} created something in {}",
            args[0],
            cwd.display()
        );
    }
}

/// A database URL where no Herald database is, and a database that exists without Herald's
/// schema; each with what to look for in the refusal.
async fn not_herald_databases(backend: Backend) -> [(String, String); 2] {
    let (empty, dir) = fresh_database(backend).await;
    match backend {
        Backend::Sqlite => {
            let missing = dir.join("elsewhere").join("herald.db");
            std::fs::File::create(dir.join("herald.db")).unwrap();
            [
                (
                    format!("sqlite://{}", missing.display()),
                    missing.display().to_string(),
                ),
                (empty, dir.join("herald.db").display().to_string()),
            ]
        }
        Backend::Postgres => {
            let missing = format!("{}_missing", empty);
            let name = |url: &str| url.rsplit_once('/').unwrap().1.to_string();
            [
                (missing.clone(), name(&missing)),
                (empty.clone(), name(&empty)),
            ]
        }
    }
}

async fn data_commands_refuse_a_database_that_is_not_there(backend: Backend) {
    let databases = not_herald_databases(backend).await;
    for (url, looked_at) in &databases {
        let dir = std::env::temp_dir().join(format!("herald-cli-{}", uuid::Uuid::now_v7()));
        for args in &DATA_COMMANDS[1..] {
            let mut command = herald_process(url, &dir);
            command.args(*args);
            refused(command, looked_at);
        }
        let mut token = herald_process(url, &dir);
        token.env_remove("HERALD_JWT_SECRET").args(DATA_COMMANDS[0]);
        refused(token, &dir.join("jwt-secret").display().to_string());
        assert!(!dir.exists(), "a data dir was created at {}", dir.display());
    }
    // Nothing was created where they looked.
    let (missing, empty) = (&databases[0].0, &databases[1].0);
    match backend {
        Backend::Sqlite => {
            let file = |url: &str| std::path::PathBuf::from(url.trim_start_matches("sqlite://"));
            assert!(!file(missing).exists());
            assert!(!file(missing).parent().unwrap().exists());
            assert_eq!(std::fs::metadata(file(empty)).unwrap().len(), 0);
        }
        Backend::Postgres => {
            use sqlx::Connection;
            assert!(sqlx::PgConnection::connect(missing).await.is_err());
        }
    }
    let db = herald::db::Db::connect(empty, 1).await.unwrap();
    assert_eq!(catalogue(&db).await, Vec::new(), "tables were created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_commands_refuse_a_database_that_is_not_there_on_sqlite() {
    data_commands_refuse_a_database_that_is_not_there(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_commands_refuse_a_database_that_is_not_there_on_postgres() {
    data_commands_refuse_a_database_that_is_not_there(Backend::Postgres).await;
}

#[test]
fn herald_token_takes_only_the_four_roles() {
    let dir = std::env::temp_dir().join(format!("herald-cli-{}", uuid::Uuid::now_v7()));
    let out = herald_process("sqlite://unused.db", &dir)
        .args(["token", "--org", "acme", "--role", "superuser"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "no token is printed");
    assert!(stderr.contains("superuser"), "{stderr}");
    assert!(
        stderr.contains("admin, marketer, analyst, auditor"),
        "the roles are listed: {stderr}"
    );
    for role in ["admin", "marketer", "analyst", "auditor"] {
        let out = herald_process("sqlite://unused.db", &dir)
            .args(["token", "--org", "acme", "--role", role])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{role}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn each_subcommands_help_shows_its_own_options_not_the_servers() {
    let help = |sub: &str| {
        let out = herald().args([sub, "--help"]).output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    let serve = help("serve");
    for server_only in [
        "--bind",
        "--workers",
        "--metrics-token",
        "--tracking-secret",
        "--rate-limit-org",
        "--tracking-max-per-token",
    ] {
        assert!(
            serve.contains(server_only),
            "serve has {server_only}: {serve}"
        );
        for sub in ["migrate", "token", "replay", "export", "purge"] {
            let text = help(sub);
            assert!(
                !text.contains(server_only),
                "herald {sub} --help lists the server's {server_only}: {text}"
            );
            assert!(text.contains("--data-dir"), "{text}");
        }
    }
    assert!(help("token").contains("--role"));
    assert!(help("export").contains("--after"));
}

#[tokio::test]
async fn a_job_lease_shorter_than_three_renewals_or_not_a_duration_is_refused_in_one_line() {
    let dir = std::env::temp_dir().join(format!("herald-lease-{}", uuid::Uuid::now_v7()));
    for (lease, says) in [
        ("2s", "HERALD_JOB_LEASE=2s is too short"),
        ("2500ms", "HERALD_JOB_LEASE=2500ms is too short"),
        ("soon", "HERALD_JOB_LEASE=\"soon\" is not a duration"),
    ] {
        let out = herald_process(&format!("sqlite://{}/herald.db", dir.display()), &dir)
            .arg("serve")
            .env("HERALD_BIND", "127.0.0.1:0")
            .env("HERALD_JOB_LEASE", lease)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{lease} refused");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "one line: {stderr}");
        assert!(lines[0].contains(says), "{lease}: {stderr}");
    }
    let out = herald_process(&format!("sqlite://{}/herald.db", dir.display()), &dir)
        .arg("serve")
        .env("HERALD_BIND", "127.0.0.1:0")
        .env("HERALD_SHUTDOWN_TIMEOUT", "later")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.lines().filter(|l| !l.trim().is_empty()).count(),
        1,
        "{stderr}"
    );
    assert!(stderr.contains("HERALD_SHUTDOWN_TIMEOUT"), "{stderr}");
}
