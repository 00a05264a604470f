//! Exactly once, with real processes: two `herald serve` on one PostgreSQL launch each scheduled
//! campaign once and send each contact one message; a process killed with SIGKILL in the middle
//! of a 10 000-contact run is restarted and finishes it without sending anyone twice; a job
//! delivered again changes nothing. And SMS links: short, signed, redirecting to the click URL.

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use herald_domain::tracking::{self, TrackingKind};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::Row;

use crate::db_test;
use crate::helpers::*;

const SECRETS_KEY: &str = "test-secrets-key-test-secrets-key-test";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `herald serve` process of the real binary, killed (SIGKILL) when dropped.
struct Process {
    child: Child,
    base: String,
}

impl Process {
    /// Starts `herald serve` on `url` and waits until it answers `/readyz`.
    async fn start(url: &str, dir: &std::path::Path, port: u16) -> Process {
        Process::start_with(url, dir, port, &[]).await
    }

    /// [`Process::start`] with more environment, e.g. `HERALD_TEST_CLOCK_AHEAD`.
    async fn start_with(
        url: &str,
        dir: &std::path::Path,
        port: u16,
        env: &[(&str, &str)],
    ) -> Process {
        let child = Command::new(env!("CARGO_BIN_EXE_herald"))
            .arg("serve")
            .env_clear()
            .env("HERALD_RATE_LIMIT_ORG", "0")
            .env("HERALD_TRACKING_MAX_PER_TOKEN", "0")
            .env("HERALD_OUTBOUND_ALLOW", crate::helpers::OUTBOUND_ALLOW)
            .envs(env.iter().copied())
            .env("DATABASE_URL", url)
            .env("HERALD_BIND", format!("127.0.0.1:{port}"))
            .env("HERALD_DATA_DIR", dir)
            .env("HERALD_JWT_SECRET", JWT_SECRET)
            .env("HERALD_TRACKING_SECRET", TRACKING_SECRET)
            .env("HERALD_SECRETS_KEY", SECRETS_KEY)
            .env("HERALD_DB_CONNECTIONS", "8")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start herald serve");
        let process = Process {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let client = reqwest::Client::new();
        let ready = eventually(Duration::from_secs(60), || async {
            client
                .get(format!("{}/readyz", process.base))
                .send()
                .await
                .is_ok_and(|r| r.status() == StatusCode::OK)
        })
        .await;
        assert!(
            ready,
            "herald serve did not become ready at {}",
            process.base
        );
        process
    }

    fn sigkill(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An admin client for org `acme` against one process's base URL.
#[derive(Clone)]
struct Admin {
    client: reqwest::Client,
    token: String,
}

impl Admin {
    fn new() -> Admin {
        Admin {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            token: token(&["acme"], &["admin"], "alice"),
        }
    }

    async fn call(&self, base: &str, method: Method, path: &str, body: Option<&Value>) -> Value {
        let mut request = self
            .client
            .request(method.clone(), format!("{base}{path}"))
            .bearer_auth(&self.token)
            .header("orgid", "acme");
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.is_success(), "{method} {path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    async fn post(&self, base: &str, path: &str, body: &Value) -> Value {
        self.call(base, Method::POST, path, Some(body)).await
    }

    async fn get(&self, base: &str, path: &str) -> Value {
        self.call(base, Method::GET, path, None).await
    }

    /// Every sandbox message of a campaign, through every page.
    async fn outbox(&self, base: &str, campaign: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut cursor = String::new();
        loop {
            let page = self
                .get(
                    base,
                    &format!(
                        "/crm/integrations/sandbox/messages?campaignId={campaign}&limit=500{cursor}"
                    ),
                )
                .await;
            out.extend(page["items"].as_array().unwrap().iter().cloned());
            match page["nextCursor"].as_str() {
                Some(next) => cursor = format!("&cursor={next}"),
                None => return out,
            }
        }
    }

    async fn status(&self, base: &str, campaign: &str) -> String {
        self.get(base, &format!("/crm/marketing/campaigns/{campaign}"))
            .await["status"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    async fn launches(&self, base: &str, campaign: &str) -> Vec<Value> {
        let events = self
            .get(
                base,
                &format!("/crm/marketing/campaigns/{campaign}/events?limit=500"),
            )
            .await;
        events["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["eventType"] == "Launched")
            .cloned()
            .collect()
    }

    /// A sandbox email connection, a template, an audience of every contact tagged `news`,
    /// and `n` such contacts (`ct-00000`…), imported in one request.
    async fn prepare_org(&self, base: &str, n: usize) {
        self.post(
            base,
            "/crm/integrations/connections",
            &json!({"platform": "email", "vendor": "sandbox", "label": "Sandbox"}),
        )
        .await;
        self.post(
            base,
            "/crm/marketing/templates",
            &json!({"id": "tpl-news", "name": "News",
                "email": {"subject": "News for {{ contact.firstName }}",
                    "html": "<p>Hi {{ contact.firstName }}, <a href=\"https://acme.test/news\">read on</a></p>"}}),
        )
        .await;
        self.post(
            base,
            "/crm/audiences",
            &json!({"id": "aud-news", "name": "News",
                "filter": {"datatype": "contact", "where": {"tags": "news"}}}),
        )
        .await;
        let contacts: Vec<Value> = (0..n)
            .map(|i| {
                json!({"id": format!("ct-{i:05}"), "email": format!("c{i}@acme.test"),
                "firstName": format!("C{i}"), "tags": ["news"]})
            })
            .collect();
        let imported = self
            .post(base, "/crm/contacts/import", &Value::Array(contacts))
            .await;
        assert_eq!(imported["created"], n, "{imported}");
    }
}

/// Asserts that `messages` are one run's, one per contact, `n` of them.
#[track_caller]
fn one_message_per_contact(messages: &[Value], n: usize) {
    let contacts: HashSet<&str> = messages
        .iter()
        .map(|m| m["contactId"].as_str().unwrap())
        .collect();
    let runs: HashSet<&str> = messages
        .iter()
        .map(|m| m["runId"].as_str().unwrap())
        .collect();
    assert_eq!(messages.len(), n, "messages in the outbox");
    assert_eq!(contacts.len(), n, "no contact has two messages");
    assert_eq!(runs.len(), 1, "one run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_postgres_launch_each_scheduled_campaign_once_and_send_each_contact_once(
) {
    const CONTACTS: usize = 300;
    const CAMPAIGNS: usize = 6;
    let url = fresh_postgres_database().await;
    let dir = std::env::temp_dir().join(format!("herald-two-{}", uuid::Uuid::now_v7()));
    let ahead = [("HERALD_TEST_CLOCK_AHEAD", CLOCK_AHEAD)];
    let a = Process::start_with(&url, &dir, free_port(), &ahead).await;
    let b = Process::start_with(&url, &dir, free_port(), &ahead).await;
    let admin = Admin::new();
    admin.prepare_org(&a.base, CONTACTS).await;

    // Every campaign starts at the same instant, in an hour (already past for both processes'
    // launch clocks); half are created through each process.
    let start_at = start_ahead();
    let ids: Vec<String> = (0..CAMPAIGNS).map(|i| format!("camp-{i}")).collect();
    for (i, id) in ids.iter().enumerate() {
        let base = if i % 2 == 0 { &a.base } else { &b.base };
        let created = admin
            .post(
                base,
                "/crm/marketing/campaigns",
                &json!({"id": id, "name": id, "type": "one-shot", "channels": ["email"],
                    "audienceId": "aud-news", "templateId": "tpl-news",
                    "schedule": {"startAt": start_at}, "status": "scheduled"}),
            )
            .await;
        assert_eq!(created["status"], "scheduled", "{created}");
    }
    let health = admin.get(&a.base, "/crm/marketing/health").await;
    assert_eq!(
        health["scheduler"]["nodes"], 2,
        "both processes run a scheduler: {health}"
    );
    // Every launch job falls due at once, in one statement, once the schedulers derived them.
    let db = herald::db::Db::connect(&url, 2).await.unwrap();
    let derived = eventually(Duration::from_secs(30), || async {
        sqlx::query_scalar::<_, i64>(
            "select count(*) from jobs where kind = 'launch' and state = 'scheduled'",
        )
        .fetch_one(&db.read)
        .await
        .unwrap()
            == CAMPAIGNS as i64
    })
    .await;
    assert!(derived, "every campaign has its launch job");
    sqlx::query("update jobs set run_at = $1 where kind = 'launch' and state = 'scheduled'")
        .bind(herald::store::format_time(chrono::Utc::now()))
        .execute(&db.write)
        .await
        .unwrap();

    let completed = eventually(Duration::from_secs(60), || async {
        for id in &ids {
            if admin.status(&b.base, id).await != "completed" {
                return false;
            }
        }
        true
    })
    .await;
    assert!(completed, "every campaign launched and completed");
    let settled = eventually(Duration::from_secs(20), || async {
        admin.get(&a.base, "/crm/marketing/health").await["queue"]["depth"] == 0
    })
    .await;
    assert!(settled, "the queue drained");

    for id in &ids {
        let launches = admin.launches(&a.base, id).await;
        assert_eq!(launches.len(), 1, "{id} launched once: {launches:?}");
        assert_eq!(launches[0]["metadata"]["actor"], "herald-scheduler");
        assert_eq!(launches[0]["data"]["reach"], CONTACTS);
        let messages = admin.outbox(&b.base, id).await;
        one_message_per_contact(&messages, CONTACTS);
        assert_eq!(
            messages[0]["runId"], launches[0]["data"]["runId"],
            "{id}'s messages are its run's"
        );
    }
    let (total, distinct): (i64, i64) = {
        let row = sqlx::query(
            "select count(*) as total, count(distinct campaign_id || '|' || contact_id) as pairs from sandbox_messages",
        )
        .fetch_one(&db.read)
        .await
        .unwrap();
        (row.get("total"), row.get("pairs"))
    };
    assert_eq!(total, (CONTACTS * CAMPAIGNS) as i64);
    assert_eq!(distinct, total, "one message per (campaign, contact)");
}

/// Imports 10 000 contacts, launches a campaign to them, SIGKILLs the process once the first
/// messages are in the outbox, restarts it, and checks the run finishes with one message each.
async fn killed_mid_run_resumes_after_restart(backend: Backend) {
    const CONTACTS: usize = 10_000;
    let (url, dir) = fresh_database(backend).await;
    let port = free_port();
    let mut process = Process::start(&url, &dir, port).await;
    let admin = Admin::new();
    admin.prepare_org(&process.base, CONTACTS).await;
    let launched = admin
        .post(
            &process.base,
            "/crm/marketing/campaigns",
            &json!({"id": "camp-big", "name": "Big", "type": "one-shot", "channels": ["email"],
                "audienceId": "aud-news", "templateId": "tpl-news", "status": "running"}),
        )
        .await;
    assert_eq!(launched["status"], "running", "{launched}");

    let base = process.base.clone();
    let started = eventually(Duration::from_secs(60), || async {
        let page = admin
            .get(
                &base,
                "/crm/integrations/sandbox/messages?campaignId=camp-big&limit=1",
            )
            .await;
        !page["items"].as_array().unwrap().is_empty()
    })
    .await;
    assert!(started, "the run started sending");
    process.sigkill();

    let db = herald::db::Db::connect(&url, 2).await.unwrap();
    let count = |sql: &'static str| {
        let db = db.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&db.read)
                .await
                .unwrap()
        }
    };
    let before_restart = count("select count(*) from sandbox_messages").await;
    assert!(
        before_restart > 0 && before_restart < CONTACTS as i64,
        "the kill landed in the middle of the run ({before_restart} of {CONTACTS} sent)"
    );

    // The restarted process takes the run over: at once on SQLite, once the dead process's
    // lease runs out (30 s) on PostgreSQL.
    let process = Process::start(&url, &dir, port).await;
    let completed = eventually(Duration::from_secs(120), || async {
        admin.status(&process.base, "camp-big").await == "completed"
    })
    .await;
    assert!(completed, "the run finished after the restart");
    let messages = admin.outbox(&process.base, "camp-big").await;
    one_message_per_contact(&messages, CONTACTS);
    assert_eq!(
        count("select count(*) from send_ledger where state = 'sent'").await,
        CONTACTS as i64
    );
    assert_eq!(admin.launches(&process.base, "camp-big").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_with_sigkill_finishes_after_a_restart_with_one_message_per_contact_sqlite() {
    killed_mid_run_resumes_after_restart(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_with_sigkill_finishes_after_a_restart_with_one_message_per_contact_postgres()
{
    killed_mid_run_resumes_after_restart(Backend::Postgres).await;
}

/// The moment an RFC 3339 time of the API stands for.
fn instant(value: &Value) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(value.as_str().expect("a time"))
        .expect("an RFC 3339 time")
        .with_timezone(&chrono::Utc)
}

/// The types of `events`, in order.
fn types(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["eventType"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// The events of a campaign (up to 500).
async fn events_of(admin: &Admin, base: &str, campaign: &str) -> Vec<Value> {
    admin
        .get(
            base,
            &format!("/crm/marketing/campaigns/{campaign}/events?limit=500"),
        )
        .await["items"]
        .as_array()
        .unwrap()
        .clone()
}

/// Downtime (`api.md` section 2): a process schedules a one-shot and an hourly campaign, both due
/// within the hour, and is killed. While no process runs, their launch jobs fall due and a day
/// passes (the next process's launch clock is a day ahead). The next process, on the same
/// database, launches the one-shot once and records the hourly campaign's missed occurrences as
/// one `RunSkipped`, launching none of them.
async fn restart_after_downtime(backend: Backend) {
    const CONTACTS: usize = 20;
    let (url, dir) = fresh_database(backend).await;
    let mut first = Process::start(&url, &dir, free_port()).await;
    let admin = Admin::new();
    admin.prepare_org(&first.base, CONTACTS).await;
    let start_at = start_ahead();
    let once = admin
        .post(
            &first.base,
            "/crm/marketing/campaigns",
            &json!({"id": "camp-once", "name": "Once", "type": "one-shot", "channels": ["email"],
                "audienceId": "aud-news", "templateId": "tpl-news",
                "schedule": {"startAt": start_at}, "status": "scheduled"}),
        )
        .await;
    assert_eq!(once["status"], "scheduled", "{once}");
    // Hourly, at the minute and second half an hour from now: its next run is within the hour.
    let first_run = chrono::Utc::now() + chrono::Duration::minutes(30);
    let hourly = admin
        .post(
            &first.base,
            "/crm/marketing/campaigns",
            &json!({"id": "camp-hourly", "name": "Hourly", "type": "recurring",
                "channels": ["email"], "audienceId": "aud-news", "templateId": "tpl-news",
                "recurring": {"cron": format!("{} {} * * * *", first_run.format("%S"), first_run.format("%M"))},
                "status": "running"}),
        )
        .await;
    assert_eq!(hourly["status"], "scheduled", "{hourly}");
    let missed = hourly["nextRunAt"].clone();
    assert!(instant(&missed) < chrono::Utc::now() + chrono::Duration::hours(1));

    let db = herald::db::Db::connect(&url, 2).await.unwrap();
    let pending = || async {
        sqlx::query_scalar::<_, i64>(
            "select count(*) from jobs where kind = 'launch' and state = 'scheduled'",
        )
        .fetch_one(&db.read)
        .await
        .unwrap()
    };
    let derived = eventually(Duration::from_secs(30), || async { pending().await == 2 }).await;
    assert!(derived, "both campaigns have their launch job");
    first.sigkill();
    // Down: the launch jobs fall due, and (for the next process) a day goes by.
    sqlx::query("update jobs set run_at = $1 where kind = 'launch' and state = 'scheduled'")
        .bind(herald::store::format_time(chrono::Utc::now()))
        .execute(&db.write)
        .await
        .unwrap();
    let restart = chrono::Utc::now();
    let next = Process::start_with(
        &url,
        &dir,
        free_port(),
        &[("HERALD_TEST_CLOCK_AHEAD", CLOCK_AHEAD)],
    )
    .await;

    let settled = eventually(Duration::from_secs(60), || async {
        let skipped = events_of(&admin, &next.base, "camp-hourly")
            .await
            .iter()
            .any(|e| e["eventType"] == "RunSkipped");
        skipped
            && admin.status(&next.base, "camp-once").await == "completed"
            && admin.get(&next.base, "/crm/marketing/health").await["queue"]["running"] == 0
    })
    .await;
    assert!(
        settled,
        "the restart launched the one-shot and skipped the hourly runs: once {:?}, hourly {:?}",
        types(&events_of(&admin, &next.base, "camp-once").await),
        types(&events_of(&admin, &next.base, "camp-hourly").await)
    );

    let once_events = events_of(&admin, &next.base, "camp-once").await;
    assert_eq!(
        types(&once_events),
        ["Created", "Scheduled", "Launched", "Completed"],
        "the missed one-shot launches once"
    );
    assert_eq!(once_events[2]["data"]["at"], start_at.as_str());
    assert_eq!(once_events[2]["metadata"]["actor"], "herald-scheduler");
    one_message_per_contact(&admin.outbox(&next.base, "camp-once").await, CONTACTS);

    let hourly_events = events_of(&admin, &next.base, "camp-hourly").await;
    assert_eq!(
        types(&hourly_events),
        ["Created", "Scheduled", "RunSkipped"],
        "missed occurrences are not replayed"
    );
    let skip = &hourly_events[2]["data"];
    assert_eq!(instant(&skip["from"]), instant(&missed), "{skip}");
    let ahead = restart + herald::config::parse_ttl(CLOCK_AHEAD).unwrap();
    let resumed = instant(&skip["nextRunAt"]);
    assert!(
        resumed > ahead
            && resumed <= ahead + chrono::Duration::hours(1) + chrono::Duration::minutes(1),
        "only the next future occurrence is scheduled: {skip}"
    );
    let view = admin
        .get(&next.base, "/crm/marketing/campaigns/camp-hourly")
        .await;
    assert_eq!(view["status"], "scheduled", "{view}");
    assert_eq!(instant(&view["nextRunAt"]), resumed);
    assert!(admin.outbox(&next.base, "camp-hourly").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_downtime_a_restart_launches_a_missed_one_shot_once_and_skips_missed_recurring_runs_sqlite(
) {
    restart_after_downtime(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_downtime_a_restart_launches_a_missed_one_shot_once_and_skips_missed_recurring_runs_postgres(
) {
    restart_after_downtime(Backend::Postgres).await;
}

/// The exactly-once promise across processes: two `herald serve` on one PostgreSQL, a
/// 5 000-contact run; the process holding the run's send job is killed with SIGKILL once its
/// first pages are out, and the other, running all along, takes the job over when the dead
/// one's lease runs out (30 s, `jobs.rs`) and finishes it. Both sent part of the run, and no
/// contact got two messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_killed_mid_run_leaves_the_rest_to_the_other_process_and_no_contact_gets_two_messages(
) {
    const CONTACTS: usize = 5_000;
    let url = fresh_postgres_database().await;
    let dir = std::env::temp_dir().join(format!("herald-takeover-{}", uuid::Uuid::now_v7()));
    let db = herald::db::Db::connect(&url, 2).await.unwrap();
    let nodes = || async {
        sqlx::query_scalar::<_, String>("select node_id from scheduler_nodes")
            .fetch_all(&db.read)
            .await
            .unwrap()
    };
    // Started one after the other, so each scheduler node is known to be its process's.
    let a = Process::start(&url, &dir, free_port()).await;
    let node_a = nodes().await.pop().expect("a's node");
    let b = Process::start(&url, &dir, free_port()).await;
    let node_b = nodes()
        .await
        .into_iter()
        .find(|n| *n != node_a)
        .expect("b's node");
    let mut processes = [(node_a, a), (node_b, b)];
    let admin = Admin::new();
    admin.prepare_org(&processes[0].1.base, CONTACTS).await;
    let launched = admin
        .post(
            &processes[0].1.base,
            "/crm/marketing/campaigns",
            &json!({"id": "camp-big", "name": "Big", "type": "one-shot", "channels": ["email"],
                "audienceId": "aud-news", "templateId": "tpl-news", "status": "running"}),
        )
        .await;
    assert_eq!(launched["status"], "running", "{launched}");

    let holder = || async {
        sqlx::query_scalar::<_, Option<String>>(
            "select locked_by from jobs where kind = 'send' and state = 'running'",
        )
        .fetch_optional(&db.read)
        .await
        .unwrap()
        .flatten()
    };
    let count = |sql: &'static str| {
        let db = db.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&db.read)
                .await
                .unwrap()
        }
    };
    let mut killed = None;
    let sending = eventually(Duration::from_secs(60), || async {
        holder().await.is_some() && count("select count(*) from send_ledger").await > 0
    })
    .await;
    assert!(sending, "the run started sending");
    let node = holder().await.expect("a process holds the send job");
    for (i, (id, process)) in processes.iter_mut().enumerate() {
        if *id == node {
            process.sigkill();
            killed = Some(i);
        }
    }
    let killed = killed.expect("the holder is one of the two processes");
    let survivor = &processes[1 - killed].1;
    let by_the_killed = count("select count(*) from sandbox_messages").await;
    assert!(
        by_the_killed > 0 && by_the_killed < CONTACTS as i64,
        "the kill landed in the middle of the run ({by_the_killed} of {CONTACTS} sent)"
    );

    let completed = eventually(Duration::from_secs(120), || async {
        admin.status(&survivor.base, "camp-big").await == "completed"
    })
    .await;
    assert!(
        completed,
        "the other process finished the run once the lease ran out"
    );
    // The killed process sent `by_the_killed` and is gone: the survivor sent the rest.
    let messages = admin.outbox(&survivor.base, "camp-big").await;
    one_message_per_contact(&messages, CONTACTS);
    assert_eq!(
        count("select count(*) from send_ledger where state = 'sent'").await,
        CONTACTS as i64
    );
    assert_eq!(admin.launches(&survivor.base, "camp-big").await.len(), 1);
}

/// A 6-field cron (with seconds) that fires once in the coming year: at `when`, UTC.
fn cron_at(when: chrono::DateTime<chrono::Utc>) -> String {
    use chrono::{Datelike, Timelike};
    format!(
        "{} {} {} {} {} *",
        when.second(),
        when.minute(),
        when.hour(),
        when.day(),
        when.month()
    )
}

async fn job_state(db: &herald::db::Db, id: &str) -> (String, Option<String>) {
    let row = sqlx::query("select state, last_error from jobs where id = $1")
        .bind(id)
        .fetch_one(&db.read)
        .await
        .unwrap();
    (row.get("state"), row.get("last_error"))
}

db_test!(
    clock_ahead a_send_job_and_a_launch_job_delivered_again_change_nothing,
    |app: TestApp| async move {
        let admin = Admin::new();
        admin.prepare_org(&app.address, 40).await;
        // A recurring campaign stays running after its run, so a send job delivered again
        // finds a running campaign and only the ledger stands between it and a second send.
        // Its one occurrence a year is in an hour: past for the server's launch clock.
        let when = chrono::Utc::now() + chrono::Duration::hours(1);
        let created = admin
            .post(
                &app.address,
                "/crm/marketing/campaigns",
                &json!({"id": "camp-yearly", "name": "Yearly", "type": "recurring",
                    "channels": ["email"], "audienceId": "aud-news", "templateId": "tpl-news",
                    "recurring": {"cron": cron_at(when)}, "status": "running"}),
            )
            .await;
        assert_eq!(created["status"], "scheduled", "{created}");
        app.make_launch_due("camp-yearly").await;
        let db = herald::db::Db::connect(&app.database_url, 2).await.unwrap();
        let send_job = || async {
            sqlx::query("select id, state from jobs where kind = 'send'")
                .fetch_optional(&db.read)
                .await
                .unwrap()
                .map(|row| (row.get::<String, _>("id"), row.get::<String, _>("state")))
        };
        let sent = eventually(Duration::from_secs(30), || async {
            send_job().await.is_some_and(|(_, state)| state == "done")
        })
        .await;
        assert!(sent, "the run was sent");
        let (send_id, _) = send_job().await.unwrap();
        let launch_id: String =
            sqlx::query_scalar("select id from jobs where kind = 'launch' and state = 'done'")
                .fetch_one(&db.read)
                .await
                .unwrap();
        assert_eq!(admin.status(&app.address, "camp-yearly").await, "running");
        let messages = admin.outbox(&app.address, "camp-yearly").await;
        one_message_per_contact(&messages, 40);

        // Deliver both jobs again: the finished send job back to pending, and a copy of the
        // launch job of the occurrence that already ran.
        let now = herald::store::format_time(chrono::Utc::now());
        sqlx::query(
            "update jobs set state = 'scheduled', run_at = $1, last_error = null, attempts = 0 where id = $2",
        )
        .bind(&now)
        .bind(&send_id)
        .execute(&db.write)
        .await
        .unwrap();
        sqlx::query(
            "insert into jobs (id, org_id, campaign_id, kind, run_id, run_at, state, payload, created_at, updated_at)
             select id || ':again', org_id, campaign_id, kind, run_id, $1, 'scheduled', payload, $1, $1
             from jobs where id = $2",
        )
        .bind(&now)
        .bind(&launch_id)
        .execute(&db.write)
        .await
        .unwrap();
        let again = format!("{launch_id}:again");
        let handled = eventually(Duration::from_secs(30), || async {
            let (send, _) = job_state(&db, &send_id).await;
            let (launch, _) = job_state(&db, &again).await;
            // The launch copy runs and finds nothing due, or a reconcile cancels it first.
            send == "done" && (launch == "done" || launch == "cancelled")
        })
        .await;
        assert!(handled, "both jobs were delivered again and finished");
        let (_, report) = job_state(&db, &send_id).await;
        let report: Value = serde_json::from_str(&report.expect("the run's report")).unwrap();
        assert_eq!(report["sent"], 0, "{report}");
        assert_eq!(report["alreadyInLedger"], 40, "{report}");

        assert_eq!(admin.launches(&app.address, "camp-yearly").await.len(), 1);
        let after = admin.outbox(&app.address, "camp-yearly").await;
        assert_eq!(after, messages, "the outbox did not change");
        let ledger: i64 = sqlx::query_scalar("select count(*) from send_ledger")
            .fetch_one(&db.read)
            .await
            .unwrap();
        assert_eq!(ledger, 40);
    }
);

/// The code of a short link `…/connect/s/<code>`.
fn short_code(url: &str) -> &str {
    url.rsplit_once("/connect/s/").expect("a short link").1
}

db_test!(
    sms_links_are_short_links_that_redirect_to_the_signed_click_url,
    |app: TestApp| async move {
        let admin = Admin::new();
        let base = &app.address;
        admin
            .post(
                base,
                "/crm/integrations/connections",
                &json!({"platform": "sms", "vendor": "sandbox"}),
            )
            .await;
        admin
            .post(
                base,
                "/crm/marketing/templates",
                &json!({"id": "tpl-sms", "name": "SMS",
                    "sms": {"body": "Hi {{ contact.firstName }}! Spring sale at https://acme.test/spring?utm=sms&x=1. Stop: {{ unsubscribeUrl }}"}}),
            )
            .await;
        admin
            .post(
                base,
                "/crm/audiences",
                &json!({"id": "aud-all", "name": "All",
                    "filter": {"datatype": "contact", "where": {"tags": "news"}}}),
            )
            .await;
        admin
            .post(
                base,
                "/crm/contacts/import",
                &json!([
                    {"id": "ct-ann", "phone": "+14155550101", "firstName": "Ann", "tags": ["news"]},
                    {"id": "ct-bob", "phone": "+14155550102", "firstName": "Bob", "tags": ["news"]}
                ]),
            )
            .await;
        admin
            .post(
                base,
                "/crm/marketing/campaigns",
                &json!({"id": "camp-sms", "name": "SMS", "type": "one-shot", "channels": ["sms"],
                    "audienceId": "aud-all", "templateId": "tpl-sms", "status": "running"}),
            )
            .await;
        let completed = eventually(Duration::from_secs(30), || async {
            admin.status(base, "camp-sms").await == "completed"
        })
        .await;
        assert!(completed, "the SMS run finished");
        let messages = admin.outbox(base, "camp-sms").await;
        assert_eq!(messages.len(), 2);

        let mut codes = HashSet::new();
        for message in &messages {
            let body = message["body"].as_str().unwrap();
            let urls = &message["trackingUrls"];
            let links = urls["shortLinks"].as_array().unwrap();
            assert_eq!(links.len(), 2, "both links are short: {message}");
            let (shop, stop) = (
                links[0]["url"].as_str().unwrap(),
                links[1]["url"].as_str().unwrap(),
            );
            let name = if message["contactId"] == "ct-ann" {
                "Ann"
            } else {
                "Bob"
            };
            assert_eq!(
                body,
                format!("Hi {name}! Spring sale at {shop}. Stop: {stop}"),
                "every link is replaced, the text around it kept"
            );
            for url in [shop, stop] {
                let code = short_code(url);
                assert!(
                    code.len() >= 10 && code.bytes().all(|b| b.is_ascii_alphanumeric()),
                    "{code}"
                );
                assert!(codes.insert(code.to_string()), "codes are never reused");
            }

            // The shop link: 302 to the signed click URL of this contact and link.
            let click = urls["clicks"][0].as_str().unwrap();
            for prefix in ["", "/api"] {
                let followed = app
                    .anonymous(
                        Method::GET,
                        &format!("{prefix}/connect/s/{}", short_code(shop)),
                    )
                    .send()
                    .await;
                assert_eq!(followed.status, 302, "{}", followed.text);
                assert_eq!(followed.header("location"), Some(click));
            }
            assert!(click.contains("/connect/automation/camp-sms/"), "{click}");
            let token = click.split("?t=").nth(1).unwrap();
            let claims = tracking::verify(TRACKING_SECRET.as_bytes(), token).unwrap();
            assert_eq!(claims.kind, TrackingKind::Click);
            assert_eq!(claims.contact_id, message["contactId"].as_str().unwrap());
            assert_eq!(claims.link, Some(0));
            assert_eq!(
                claims.url.as_deref(),
                Some("https://acme.test/spring?utm=sms&x=1")
            );
            // The unsubscribe link is Herald's own: short, straight to the unsubscribe URL.
            let followed = app
                .anonymous(Method::GET, &format!("/connect/s/{}", short_code(stop)))
                .send()
                .await;
            assert_eq!(followed.status, 302);
            assert_eq!(followed.header("location"), urls["unsubscribe"].as_str());
            assert_eq!(urls["clicks"].as_array().unwrap().len(), 1);
        }

        for unknown in ["AbCdEf123456", "not-a-code!", &"a".repeat(65)] {
            app.anonymous(Method::GET, &format!("/connect/s/{unknown}"))
                .send()
                .await
                .assert_problem(404);
        }
    }
);
