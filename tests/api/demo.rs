//! `herald demo`: fills an org through the API (so everything is in the event log), with
//! campaigns of every type in every status and 30 days of engagement, and a second run adds
//! nothing.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::Value;

use crate::helpers::*;

fn demo(url: &str, dir: &std::path::Path, quiet: bool) -> (Value, String) {
    let output = herald_process(url, dir)
        .args(["demo", "--org", "demo"])
        .args(quiet.then_some("--quiet"))
        .env("RUST_LOG", "warn")
        .output()
        .expect("run herald demo");
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    let tail: String = stderr.lines().rev().take(5).collect::<Vec<_>>().join("\n");
    assert!(output.status.success(), "herald demo failed: {tail}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let summary = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("not one JSON line ({e}): {stdout}"));
    (summary, stderr)
}

async fn check(backend: Backend) {
    let (url, dir) = fresh_database(backend).await;
    // Like every command but serve and migrate, demo needs the server's database.
    let refused = herald_process(&url, &dir)
        .args(["demo", "--org", "demo"])
        .output()
        .expect("run herald demo");
    if backend == Backend::Sqlite {
        assert!(!refused.status.success());
    }
    let migrated = herald_process(&url, &dir)
        .arg("migrate")
        .output()
        .expect("migrate");
    assert!(migrated.status.success());

    let (first, stderr) = demo(&url, &dir, false);
    assert_eq!(first["orgId"], "demo");
    assert_eq!(first["alreadyThere"], 0, "{first}");
    assert_eq!(first["contacts"]["created"], 300, "{first}");
    assert!(first["engagements"].as_u64().unwrap() > 100, "{first}");
    // stderr is not a terminal here: no progress bar, no carriage returns.
    assert!(!stderr.contains('\r'), "{stderr:?}");

    let mut config = test_config(url.clone(), &dir);
    config.workers = false;
    let app = spawn_with(backend, config).await;
    let demo_admin = token(&["demo"], &["admin"], "alice");
    let get = |path: &str| {
        let path = path.to_string();
        let app = &app;
        let demo_admin = demo_admin.clone();
        async move {
            let reply = app
                .as_user(&demo_admin, "demo", Method::GET, &path)
                .send()
                .await;
            assert_eq!(reply.status, 200, "{path}: {}", reply.text);
            reply.body
        }
    };

    let campaigns = get("/crm/marketing/campaigns?includeDeleted=true&limit=100").await;
    let items = campaigns["items"].as_array().unwrap();
    let statuses: BTreeSet<&str> = items
        .iter()
        .map(|c| c["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        BTreeSet::from(["completed", "draft", "paused", "running", "scheduled"]),
        "{campaigns}"
    );
    let types: BTreeSet<&str> = items.iter().map(|c| c["type"].as_str().unwrap()).collect();
    let offered = get("/crm/marketing/campaign-types").await;
    let offered: BTreeSet<&str> = offered
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(types, offered, "every campaign type");
    assert!(items.iter().any(|c| c["state"] == "deleted"));
    assert!(items
        .iter()
        .any(|c| c["blockers"].as_array().is_some_and(|b| !b.is_empty())));
    let connections = get("/crm/integrations/connections").await;
    let connections = connections
        .get("items")
        .unwrap_or(&connections)
        .as_array()
        .unwrap()
        .len();
    assert_eq!(connections, 8, "a sandbox connection per platform");

    // Numbers on more than one day of the last 30.
    let dashboard = get("/crm/marketing/dashboard?days=30").await;
    let tiles = &dashboard["tiles"];
    for key in ["sends", "opens", "clicks", "conversions"] {
        assert!(tiles[key].as_i64().unwrap() > 0, "{key}: {tiles}");
    }
    let busy_days = dashboard["series"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["conversions"].as_i64().unwrap_or(0) > 0)
        .count();
    assert!(busy_days > 10, "{busy_days} days with conversions");

    // Everything came through the API, as the demo: each campaign's stream starts with its
    // `Created` by `herald-demo`.
    for campaign in items {
        let id = campaign["id"].as_str().unwrap();
        let stream = get(&format!("/crm/marketing/campaigns/{id}/events")).await;
        let first = &stream["items"][0];
        assert_eq!(first["eventType"], "Created", "{id}");
        assert_eq!(first["metadata"]["actor"], "herald-demo", "{id}");
    }
    let before = head(&app.database_url).await;

    // A second run finds everything in place and writes nothing.
    let (second, _) = demo(&url, &dir, true);
    assert_eq!(second["created"], serde_json::json!([]), "{second}");
    assert_eq!(second["engagements"], 0, "{second}");
    assert_eq!(second["contacts"]["unchanged"], 300, "{second}");
    assert_eq!(
        head(&app.database_url).await,
        before,
        "the second run wrote events"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_fills_an_org_once_sqlite() {
    check(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_fills_an_org_once_postgres() {
    check(Backend::Postgres).await;
}

async fn head(database_url: &str) -> i64 {
    let db = herald::db::Db::connect(database_url, 2).await.unwrap();
    herald::store::head_position(&db).await.unwrap()
}

/// On a terminal (here util-linux `script`'s pseudo-terminal) the demo draws its progress; with
/// `--quiet` it does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_is_drawn_on_a_terminal_only() {
    let (url, dir) = fresh_database(Backend::Sqlite).await;
    let migrated = herald_process(&url, &dir)
        .arg("migrate")
        .output()
        .expect("migrate");
    assert!(migrated.status.success());
    let on_a_terminal = |extra: &str| {
        let command = format!(
            "{} demo --org tty {extra} > /dev/null",
            env!("CARGO_BIN_EXE_herald")
        );
        let output = std::process::Command::new("/usr/bin/script")
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("TERM", "xterm")
            .env("RUST_LOG", "error")
            .env("DATABASE_URL", &url)
            .env("HERALD_DATA_DIR", &dir)
            .env("HERALD_JWT_SECRET", JWT_SECRET)
            .env("HERALD_TRACKING_SECRET", TRACKING_SECRET)
            .env("HERALD_SECRETS_KEY", SECRETS_KEY)
            .args(["-qefc", &command, "/dev/null"])
            .output()
            .expect("run script");
        assert!(output.status.success(), "{output:?}");
        String::from_utf8_lossy(&output.stdout).to_string()
    };
    let drawn = on_a_terminal("");
    assert!(drawn.contains("demo ["), "no progress bar: {drawn:?}");
    assert!(drawn.contains("/7"), "{drawn:?}");
    let quiet = on_a_terminal("--quiet");
    assert!(!quiet.contains("demo ["), "{quiet:?}");
}
