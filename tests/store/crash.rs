//! (b) The server is killed with SIGKILL while commands are appending and projections are
//! catching up: after a restart every acknowledged write is there, the projections catch up, and
//! the read models equal a full replay.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use herald::db::Db;
use serde_json::json;
use tokio::sync::Mutex;

use crate::helpers::{
    fresh_database, read_models, rebuilt_counts, token, wipe, Backend, JWT_SECRET,
    READ_MODEL_TABLES,
};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Server {
    child: Child,
    base: String,
}

fn start(url: &str, dir: &std::path::Path, port: u16) -> Server {
    let child = Command::new(env!("CARGO_BIN_EXE_herald"))
        .arg("serve")
        .env("DATABASE_URL", url)
        .env("HERALD_BIND", format!("127.0.0.1:{port}"))
        .env("HERALD_DATA_DIR", dir)
        .env("HERALD_JWT_SECRET", JWT_SECRET)
        .env(
            "HERALD_TRACKING_SECRET",
            "crash-test-tracking-secret-crash-test",
        )
        .env(
            "HERALD_SECRETS_KEY",
            "crash-test-secrets-key-crash-test-key",
        )
        .env("RUST_LOG", "warn")
        // The load below writes as fast as it can.
        .env("HERALD_RATE_LIMIT_ORG", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start herald");
    Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
    }
}

async fn wait_ready(client: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await {
            if r.status() == 200 {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("herald did not become ready at {base}");
}

fn sigkill(child: &mut Child) {
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
}

async fn killed_mid_load_recovers_and_equals_replay(backend: Backend) {
    let (url, dir) = fresh_database(backend).await;
    let client = reqwest::Client::new();
    let port = free_port();
    let mut server = start(&url, &dir, port);
    wait_ready(&client, &server.base).await;

    let jwt = token(&["acme"], &["admin"], "loader");
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for worker in 0..8 {
        let client = client.clone();
        let base = server.base.clone();
        let jwt = jwt.clone();
        let acknowledged = acknowledged.clone();
        let stop = stop.clone();
        load.push(tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                i += 1;
                let id = format!("crash-{worker}-{i}");
                let status = if i % 3 == 0 { "running" } else { "draft" };
                let body = json!({"id": id, "name": "Crash test", "type": "one-shot", "channels": ["email"], "status": status});
                let sent = client
                    .post(format!("{base}/crm/marketing/campaigns"))
                    .bearer_auth(&jwt)
                    .header("orgid", "acme")
                    .json(&body)
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status() == 201 => acknowledged.lock().await.push(id),
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    sigkill(&mut server.child);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for task in load {
        let _ = task.await;
    }
    let acknowledged = acknowledged.lock().await.clone();
    assert!(
        !acknowledged.is_empty(),
        "the load produced no writes before the kill"
    );

    // Restart: the projection runner resumes from its checkpoint.
    let mut server = start(&url, &dir, port);
    wait_ready(&client, &server.base).await;
    let db = Db::connect(&url, 4).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let health: serde_json::Value = client
            .get(format!("{}/crm/marketing/health", server.base))
            .bearer_auth(&jwt)
            .header("orgid", "acme")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let projections = health["projections"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        if !projections.is_empty() && projections.values().all(|p| p["lag"] == 0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "projection did not catch up: {health}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for id in &acknowledged {
        let r = client
            .get(format!("{}/crm/marketing/campaigns/{id}", server.base))
            .bearer_auth(&jwt)
            .header("orgid", "acme")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "acknowledged campaign {id} was lost");
    }
    sigkill(&mut server.child);
    let live = read_models(&db).await;
    for table in [
        "campaigns",
        "campaign_status_index",
        "campaign_status_counts",
    ] {
        assert!(
            !live[table].is_empty(),
            "{table} is empty before the replay"
        );
    }
    // Only a replay can bring the rows back.
    wipe(&db, READ_MODEL_TABLES).await;

    let replay = Command::new(env!("CARGO_BIN_EXE_herald"))
        .arg("replay")
        .env("DATABASE_URL", &url)
        .env("HERALD_DATA_DIR", &dir)
        .env("HERALD_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .env("HERALD_JWT_SECRET", JWT_SECRET)
        .env(
            "HERALD_TRACKING_SECRET",
            "crash-test-tracking-secret-crash-test",
        )
        .env(
            "HERALD_SECRETS_KEY",
            "crash-test-secrets-key-crash-test-key",
        )
        .output()
        .expect("run herald replay");
    let stderr = String::from_utf8_lossy(&replay.stderr);
    assert!(replay.status.success(), "{stderr}");
    let rebuilt = rebuilt_counts(&stderr);
    for projection in ["campaigns", "campaign-status-counts"] {
        assert!(
            rebuilt
                .get(projection)
                .is_some_and(|n| *n as usize >= acknowledged.len()),
            "{projection} replayed fewer events than campaigns were acknowledged: {stderr}"
        );
    }
    let replayed = read_models(&db).await;
    assert_eq!(live, replayed, "read models differ after replay");
    let total: i64 = live["campaign_status_counts"]
        .iter()
        .map(|row| row.rsplit_once("count=").unwrap().1.parse::<i64>().unwrap())
        .sum();
    assert_eq!(total as usize, live["campaigns"].len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_load_recovers_and_equals_replay_on_sqlite() {
    killed_mid_load_recovers_and_equals_replay(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_load_recovers_and_equals_replay_on_postgres() {
    killed_mid_load_recovers_and_equals_replay(Backend::Postgres).await;
}
