//! Scheduling, launch and sending: scheduled campaigns launch by themselves, each run is fanned
//! out to its audience once, whatever is delivered twice or interrupted, and health reports it.

use std::time::Duration;

use herald_domain::tracking::{self, TrackingKind};
use reqwest::Method;
use serde_json::{json, Value};

use crate::db_test;
use crate::helpers::*;

async fn import(app: &TestApp, contacts: Value) {
    let reply = app
        .admin(Method::POST, "/crm/contacts/import")
        .json(&contacts)
        .send()
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["errors"], json!([]), "{}", reply.text);
}

/// A template whose email has a tracked link and an unsubscribe link.
async fn links_template(app: &TestApp) {
    let template = json!({"id": "tpl-links", "name": "Links",
        "email": {"subject": "Spring is here, {{ contact.firstName }}",
            "html": "<html><body><p>Hi {{ contact.firstName }}</p><a href=\"https://acme.test/spring?utm=1&amp;x=2\">Shop</a> <a href=\"{{ unsubscribeUrl }}\">Unsubscribe</a></body></html>",
            "text": "Hi {{ contact.firstName }}, shop at https://acme.test/spring"},
        "sms": {"body": "Spring sale! Stop: {{ unsubscribeUrl }}"},
        "social": {"text": "Spring 2026 is here"}});
    let reply = app
        .admin(Method::POST, "/crm/marketing/templates")
        .json(&template)
        .send()
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
}

async fn status_of(app: &TestApp, id: &str) -> String {
    app.get_campaign(id).await.body["status"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

async fn wait_for_status(app: &TestApp, id: &str, status: &str) {
    let reached = eventually(Duration::from_secs(30), || async {
        status_of(app, id).await == status
    })
    .await;
    assert!(
        reached,
        "campaign {id} never became {status}: {}",
        app.get_campaign(id).await.text
    );
}

fn event_types(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["eventType"].as_str().unwrap().to_string())
        .collect()
}

fn contacts_of(messages: &[Value]) -> Vec<String> {
    let mut ids: Vec<String> = messages
        .iter()
        .map(|m| m["contactId"].as_str().unwrap_or("-").to_string())
        .collect();
    ids.sort();
    ids
}

async fn db(app: &TestApp) -> herald::db::Db {
    herald::db::Db::connect(&app.database_url, 2).await.unwrap()
}

async fn health(app: &TestApp) -> Value {
    let reply = app.admin(Method::GET, "/crm/marketing/health").send().await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.body
}

/// The `t` parameter of a tracking URL, verified with the test secret.
fn claims(url: &str) -> tracking::TrackingClaims {
    let token = url.split("?t=").nth(1).expect("a tracking URL has ?t=");
    tracking::verify(TRACKING_SECRET.as_bytes(), token).expect("a valid token")
}

db_test!(
    clock_ahead a_scheduled_campaign_launches_by_itself_sends_once_to_each_eligible_contact_and_completes,
    |app: TestApp| async move {
        app.make_ready().await;
        links_template(&app).await;
        import(
            &app,
            json!([
                {"id": "ct-ann", "email": "ann@acme.test", "firstName": "Ann", "tags": ["prospect"]},
                {"id": "ct-bob", "email": "bob@acme.test", "firstName": "Bob", "tags": ["vip"]},
                {"id": "ct-cid", "email": "cid@acme.test", "tags": ["prospect"], "unsubscribed": {"email": true}},
                {"id": "ct-dan", "phone": "+14155550101", "tags": ["vip"]},
                {"id": "ct-eve", "email": "eve@acme.test", "tags": ["customer"]}
            ]),
        )
        .await;
        let body = json!({"id": "camp-soon", "name": "Soon", "type": "multi-channel",
            "channels": ["email", "sms", "facebook"], "audienceId": "aud-spring-prospects",
            "templateId": "tpl-links", "schedule": {"startAt": start_ahead()},
            "status": "scheduled"});
        let created = app.post_campaign(&body).await;
        assert_eq!(created.status, 201, "{}", created.text);
        assert_eq!(created.body["status"], "scheduled");

        app.make_launch_due("camp-soon").await;
        wait_for_status(&app, "camp-soon", "completed").await;
        let events = app.campaign_events("camp-soon").await;
        assert_eq!(
            event_types(&events),
            ["Created", "Scheduled", "Launched", "Completed"]
        );
        let launched = &events[2];
        assert_eq!(launched["metadata"]["actor"], "herald-scheduler");
        assert_eq!(launched["data"]["reach"], 4, "the audience at launch");
        assert_eq!(launched["data"]["at"], body["schedule"]["startAt"]);
        let run_id = launched["data"]["runId"].as_str().unwrap().to_string();

        let emails = sandbox(&app, "campaignId=camp-soon&channel=email").await;
        assert_eq!(
            contacts_of(&emails),
            ["ct-ann", "ct-bob"],
            "the unsubscribed contact, the one without an email and the one outside the audience get nothing"
        );
        let sms = sandbox(&app, "campaignId=camp-soon&channel=sms").await;
        assert_eq!(contacts_of(&sms), ["ct-dan"]);
        assert_eq!(sms[0]["to"], "+14155550101");
        let posts = sandbox(&app, "campaignId=camp-soon&channel=facebook").await;
        assert_eq!(posts.len(), 1, "a social channel posts once per run");
        assert_eq!(posts[0]["to"], "facebook-page");
        assert_eq!(posts[0]["body"], "Spring 2026 is here");
        assert!(posts[0]["contactId"].is_null());

        let ann = emails.iter().find(|m| m["contactId"] == "ct-ann").unwrap();
        assert_eq!(ann["to"], "ann@acme.test");
        assert_eq!(ann["runId"], run_id.as_str());
        assert_eq!(ann["subject"], "Spring is here, Ann");
        let html = ann["html"].as_str().unwrap();
        let urls = &ann["trackingUrls"];
        let open = urls["open"].as_str().unwrap();
        let prefix = format!("/connect/automation/camp-soon/{run_id}/");
        assert!(open.contains(&format!("{prefix}email/open/?t=")), "{open}");
        assert!(html.contains(&format!(r#"<img src="{open}" width="1" height="1""#)));
        assert!(
            html.ends_with("</body></html>"),
            "the pixel sits inside the body"
        );
        let clicks = urls["clicks"].as_array().unwrap();
        assert_eq!(clicks.len(), 1, "only the shop link is tracked");
        let click = clicks[0].as_str().unwrap();
        assert!(click.contains(&format!("{prefix}link/click/?t=")));
        assert!(html.contains(&format!(r#"href="{click}""#)));
        assert!(!html.contains("href=\"https://acme.test"), "{html}");
        let unsubscribe = urls["unsubscribe"].as_str().unwrap();
        assert!(unsubscribe.contains(&format!("{prefix}unsubscribe/?t=")));
        assert!(
            html.contains(&format!(r#"href="{unsubscribe}""#)),
            "the unsubscribe link is rendered, not wrapped"
        );
        assert_eq!(
            ann["headers"]["List-Unsubscribe"],
            format!("<{unsubscribe}>").as_str()
        );
        assert_eq!(
            ann["headers"]["List-Unsubscribe-Post"],
            "List-Unsubscribe=One-Click"
        );
        let click_claims = claims(click);
        assert_eq!(click_claims.org_id, "acme");
        assert_eq!(click_claims.campaign_id, "camp-soon");
        assert_eq!(click_claims.run_id, run_id);
        assert_eq!(click_claims.contact_id, "ct-ann");
        assert_eq!(click_claims.kind, TrackingKind::Click);
        assert_eq!(click_claims.link, Some(0));
        assert_eq!(
            click_claims.url.as_deref(),
            Some("https://acme.test/spring?utm=1&x=2")
        );
        assert_eq!(claims(open).kind, TrackingKind::Open);
        assert_eq!(claims(unsubscribe).kind, TrackingKind::Unsubscribe);
        assert_eq!(claims(unsubscribe).contact_id, "ct-ann");

        let only_ann = sandbox(&app, "contactId=ct-ann").await;
        assert_eq!(only_ann.len(), 1);

        // The launch job, delivered again, changes nothing: the aggregate has nothing due.
        let db = db(&app).await;
        let redelivered = sqlx::query(
            "update jobs set state = 'scheduled', run_at = $1 where kind = 'launch' and campaign_id = 'camp-soon'",
        )
        .bind(herald::store::format_time(chrono::Utc::now()))
        .execute(&db.write)
        .await
        .unwrap();
        assert_eq!(redelivered.rows_affected(), 1);
        let handled = eventually(Duration::from_secs(10), || async {
            let state: String = sqlx::query_scalar(
                "select state from jobs where kind = 'launch' and campaign_id = 'camp-soon'",
            )
            .fetch_one(&db.read)
            .await
            .unwrap();
            // Ran (and found nothing due), or was cancelled by a reconcile first: both are fine.
            state == "done" || state == "cancelled"
        })
        .await;
        assert!(handled, "the redelivered launch job was handled");
        assert_eq!(app.campaign_events("camp-soon").await.len(), 4);
        assert_eq!(sandbox(&app, "campaignId=camp-soon").await.len(), 4);

        let settled = eventually(Duration::from_secs(10), || async {
            health(&app).await["queue"]["depth"] == 0
        })
        .await;
        assert!(settled, "{}", health(&app).await);
        let view = health(&app).await;
        assert_eq!(view["status"], "ok", "{view}");
        assert!(view["scheduler"]["heartbeatAt"].is_string());
        assert!(view["scheduler"]["workers"].as_i64().unwrap() >= 1);
        assert!(view["channels"]["email"]["lastSuccessAt"].is_string());
        assert!(view["channels"]["email"]["lastFailureAt"].is_null());
        assert!(view["projections"]["scheduler"]["position"].is_i64());
    }
);

db_test!(
    clock_ahead unscheduling_or_deleting_before_start_at_cancels_the_launch,
    |app: TestApp| async move {
        app.make_ready().await;
        import(
            &app,
            json!([{"id": "ct-1", "email": "one@acme.test", "tags": ["prospect"]}]),
        )
        .await;
        let start = start_ahead();
        for id in ["camp-unscheduled", "camp-deleted", "camp-kept"] {
            let body = json!({"id": id, "name": id, "type": "one-shot", "channels": ["email"],
                "audienceId": "aud-spring-prospects", "templateId": "tpl-spring-launch",
                "schedule": {"startAt": start}, "status": "scheduled"});
            let reply = app.post_campaign(&body).await;
            assert_eq!(reply.status, 201, "{}", reply.text);
        }
        let queued = eventually(Duration::from_secs(30), || async {
            health(&app).await["queue"]["scheduled"] == 3
        })
        .await;
        assert!(queued, "{}", health(&app).await);

        let mut draft = app.get_campaign("camp-unscheduled").await.body;
        draft["status"] = json!("draft");
        let reply = app.put_campaign("camp-unscheduled", &draft).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let reply = app
            .admin(Method::DELETE, "/crm/marketing/campaigns/camp-deleted")
            .send()
            .await;
        assert_eq!(reply.status, 204);
        let cancelled = eventually(Duration::from_secs(30), || async {
            health(&app).await["queue"]["depth"] == 1
        })
        .await;
        assert!(cancelled, "{}", health(&app).await);

        // Past the start for the scheduler: every launch job is due, and `camp-kept`, the
        // control, launches and completes; the other two have nothing left to launch.
        let db = db(&app).await;
        sqlx::query("update jobs set run_at = $1 where kind = 'launch'")
            .bind(herald::store::format_time(chrono::Utc::now()))
            .execute(&db.write)
            .await
            .unwrap();
        wait_for_status(&app, "camp-kept", "completed").await;
        assert_eq!(
            event_types(&app.campaign_events("camp-unscheduled").await),
            ["Created", "Scheduled", "Unscheduled"]
        );
        assert_eq!(
            event_types(&app.campaign_events("camp-deleted").await),
            ["Created", "Scheduled", "SoftDeleted"]
        );
        let emails = sandbox(&app, "channel=email").await;
        let campaigns: Vec<&str> = emails
            .iter()
            .map(|m| m["campaignId"].as_str().unwrap())
            .collect();
        assert_eq!(campaigns, ["camp-kept"], "only the control sent");
        let states: Vec<(String, String)> =
            sqlx::query_as("select campaign_id, state from jobs where kind = 'launch' order by campaign_id")
                .fetch_all(&db.read)
                .await
                .unwrap();
        let state = |id: &str| {
            states
                .iter()
                .find(|(c, _)| c == id)
                .map(|(_, s)| s.as_str())
                .unwrap_or("none")
                .to_string()
        };
        assert_eq!(state("camp-unscheduled"), "cancelled");
        assert_eq!(state("camp-deleted"), "cancelled");
        assert_eq!(state("camp-kept"), "done");
    }
);

/// Launches `camp-now` to `contacts` on an API-only server; returns it and the run's id and
/// launch time. Nothing is sent until a server with workers starts on the same database.
async fn launch_without_workers(backend: Backend, contacts: Value) -> (TestApp, String, String) {
    let app = spawn_api_only(backend).await;
    app.make_ready().await;
    import(&app, contacts).await;
    let body = json!({"id": "camp-now", "name": "Now", "type": "multi-channel",
        "channels": ["email", "facebook"], "audienceId": "aud-spring-prospects",
        "templateId": "tpl-spring-launch", "status": "running"});
    let reply = app.post_campaign(&body).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_eq!(reply.body["status"], "running");
    let events = app.campaign_events("camp-now").await;
    let launched = events
        .iter()
        .find(|e| e["eventType"] == "Launched")
        .unwrap();
    (
        app,
        launched["data"]["runId"].as_str().unwrap().to_string(),
        launched["created"].as_str().unwrap().to_string(),
    )
}

/// A server with workers on the same database as `app`.
async fn workers_for(app: &TestApp) -> TestApp {
    spawn_with(
        app.backend,
        test_config(app.database_url.clone(), &app.data_dir),
    )
    .await
}

async fn run_delivered_three_times(backend: Backend) {
    let contacts: Vec<Value> = (0..30)
        .map(|i| json!({"id": format!("ct-{i:02}"), "email": format!("c{i}@acme.test"), "tags": ["prospect"]}))
        .collect();
    let (api, run_id, launched_at) = launch_without_workers(backend, Value::Array(contacts)).await;
    let db = db(&api).await;
    let payload = json!({"channels": ["email", "facebook"], "launchedAt": launched_at}).to_string();
    for copy in ["a", "b"] {
        sqlx::query(
            "insert into jobs (id, org_id, campaign_id, kind, run_id, run_at, state, payload, created_at, updated_at)
             values ($1, 'acme', 'camp-now', 'send', $2, $3, 'scheduled', $4, $3, $3)",
        )
        .bind(format!("send:acme:{run_id}:copy-{copy}"))
        .bind(&run_id)
        .bind(&launched_at)
        .bind(&payload)
        .execute(&db.write)
        .await
        .unwrap();
    }
    let app = workers_for(&api).await;
    wait_for_status(&app, "camp-now", "completed").await;
    let idle = eventually(Duration::from_secs(20), || async {
        let open: i64 = sqlx::query_scalar(
            "select count(*) from jobs where kind = 'send' and state in ('scheduled', 'running')",
        )
        .fetch_one(&db.read)
        .await
        .unwrap();
        open == 0
    })
    .await;
    assert!(idle, "every copy of the send job ran");
    let jobs: i64 = sqlx::query_scalar("select count(*) from jobs where kind = 'send'")
        .fetch_one(&db.read)
        .await
        .unwrap();
    assert_eq!(jobs, 3, "the run's own job and two copies");
    let emails = sandbox(&app, "campaignId=camp-now&channel=email").await;
    let expected: Vec<String> = (0..30).map(|i| format!("ct-{i:02}")).collect();
    assert_eq!(contacts_of(&emails), expected, "one message per contact");
    assert_eq!(
        sandbox(&app, "campaignId=camp-now&channel=facebook")
            .await
            .len(),
        1
    );
    assert_eq!(
        event_types(&app.campaign_events("camp-now").await),
        ["Created", "Launched", "Completed"]
    );
}

/// A send job whose lease ran out five times (every process that ran it died while running it)
/// is dead-lettered at its next claim, not run again; one abandoned once is taken over.
async fn abandoned_jobs(backend: Backend) {
    let contacts: Vec<Value> = (0..10)
        .map(|i| json!({"id": format!("ct-{i:02}"), "email": format!("c{i}@acme.test"), "tags": ["prospect"]}))
        .collect();
    let (api, run_id, launched_at) = launch_without_workers(backend, Value::Array(contacts)).await;
    let db = db(&api).await;
    let payload = json!({"channels": ["email"], "launchedAt": launched_at}).to_string();
    for (copy, attempts) in [("crashed-5", 5), ("crashed-1", 1)] {
        sqlx::query(
            "insert into jobs (id, org_id, campaign_id, kind, run_id, run_at, state, attempts, locked_by, locked_until, payload, created_at, updated_at)
             values ($1, 'acme', 'camp-now', 'send', $2, $3, 'running', $4, 'node-gone', $3, $5, $3, $3)",
        )
        .bind(format!("send:acme:{run_id}:{copy}"))
        .bind(&run_id)
        .bind(&launched_at)
        .bind(attempts)
        .bind(&payload)
        .execute(&db.write)
        .await
        .unwrap();
    }
    let app = workers_for(&api).await;
    wait_for_status(&app, "camp-now", "completed").await;
    let state_of = |copy: &'static str| {
        let (db, id) = (db.clone(), format!("send:acme:{run_id}:{copy}"));
        async move {
            sqlx::query_as::<_, (String, Option<String>)>(
                "select state, last_error from jobs where id = $1",
            )
            .bind(id)
            .fetch_one(&db.read)
            .await
            .unwrap()
        }
    };
    let settled = eventually(Duration::from_secs(20), || async {
        state_of("crashed-5").await.0 == "failed"
            && matches!(state_of("crashed-1").await.0.as_str(), "done" | "cancelled")
    })
    .await;
    assert!(
        settled,
        "abandoned five times: {:?}; once: {:?}",
        state_of("crashed-5").await,
        state_of("crashed-1").await
    );
    let (_, error) = state_of("crashed-5").await;
    assert!(error.unwrap_or_default().contains("abandoned 5 times"));
    let emails = sandbox(&app, "campaignId=camp-now&channel=email").await;
    assert_eq!(emails.len(), 10, "one message per contact");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_job_abandoned_five_times_is_dead_lettered_not_run_again_sqlite() {
    abandoned_jobs(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_job_abandoned_five_times_is_dead_lettered_not_run_again_postgres() {
    abandoned_jobs(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_delivered_three_times_sends_each_contact_once_sqlite() {
    run_delivered_three_times(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_delivered_three_times_sends_each_contact_once_postgres() {
    run_delivered_three_times(Backend::Postgres).await;
}

async fn interrupted_run_resumes(backend: Backend) {
    let contacts: Vec<Value> = (1..=5)
        .map(|i| json!({"id": format!("ct-{i}"), "email": format!("c{i}@acme.test"), "tags": ["prospect"]}))
        .collect();
    let (api, run_id, launched_at) = launch_without_workers(backend, Value::Array(contacts)).await;
    let late = api
        .admin(Method::POST, "/crm/contacts")
        .json(&json!({"id": "ct-late", "email": "late@acme.test", "tags": ["vip"]}))
        .send()
        .await;
    assert_eq!(late.status, 201, "{}", late.text);
    // What a process killed in the middle of the run leaves: its claimed job, with an expired
    // lease, and the ledger rows of the contacts it had already sent.
    let db = db(&api).await;
    sqlx::query(
        "insert into jobs (id, org_id, campaign_id, kind, run_id, run_at, state, attempts, locked_by, locked_until, payload, created_at, updated_at)
         values ($1, 'acme', 'camp-now', 'send', $2, $3, 'running', 1, 'node-killed', $3, $4, $3, $3)",
    )
    .bind(format!("send:acme:{run_id}"))
    .bind(&run_id)
    .bind(&launched_at)
    .bind(json!({"channels": ["email"], "launchedAt": launched_at}).to_string())
    .execute(&db.write)
    .await
    .unwrap();
    for contact in ["ct-1", "ct-2"] {
        sqlx::query(
            "insert into send_ledger (org_id, run_id, contact_id, channel, campaign_id, state, attempts, created_at, updated_at)
             values ('acme', $1, $2, 'email', 'camp-now', 'sent', 1, $3, $3)",
        )
        .bind(&run_id)
        .bind(contact)
        .bind(&launched_at)
        .execute(&db.write)
        .await
        .unwrap();
    }
    let app = workers_for(&api).await;
    wait_for_status(&app, "camp-now", "completed").await;
    let emails = sandbox(&app, "campaignId=camp-now&channel=email").await;
    assert_eq!(
        contacts_of(&emails),
        ["ct-3", "ct-4", "ct-5"],
        "contacts in the ledger are not sent again; a contact added after the launch gets nothing"
    );
    let ledger: i64 = sqlx::query_scalar(
        "select count(*) from send_ledger where run_id = $1 and channel = 'email'",
    )
    .bind(&run_id)
    .fetch_one(&db.read)
    .await
    .unwrap();
    assert_eq!(ledger, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_run_resumes_skips_what_was_sent_and_ignores_later_contacts_sqlite() {
    interrupted_run_resumes(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_run_resumes_skips_what_was_sent_and_ignores_later_contacts_postgres() {
    interrupted_run_resumes(Backend::Postgres).await;
}

db_test!(
    a_channel_whose_sends_all_fail_makes_health_degraded,
    |app: TestApp| async move {
        let connection =
            json!({"platform": "email", "vendor": "sandbox", "settings": {"failRate": 1}});
        let reply = app
            .admin(Method::POST, "/crm/integrations/connections")
            .json(&connection)
            .send()
            .await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        links_template(&app).await;
        let audience = json!({"id": "aud-all", "name": "All",
            "filter": {"datatype": "contact", "where": {"tags": "news"}}});
        app.admin(Method::POST, "/crm/audiences")
            .json(&audience)
            .send()
            .await;
        let contacts: Vec<Value> = (0..20)
            .map(|i| json!({"email": format!("c{i}@acme.test"), "tags": ["news"]}))
            .collect();
        import(&app, Value::Array(contacts)).await;
        assert_eq!(health(&app).await["status"], "ok");
        let body = json!({"id": "camp-fail", "name": "Fails", "type": "one-shot", "channels": ["email"],
            "audienceId": "aud-all", "templateId": "tpl-links", "status": "running"});
        assert_eq!(app.post_campaign(&body).await.status, 201);
        wait_for_status(&app, "camp-fail", "completed").await;
        assert_eq!(sandbox(&app, "campaignId=camp-fail").await.len(), 0);
        let view = health(&app).await;
        assert_eq!(view["status"], "degraded", "{view}");
        assert!(view["channels"]["email"]["lastFailureAt"].is_string());
        assert!(view["channels"]["email"]["lastSuccessAt"].is_null());
        assert_eq!(view["channels"]["email"]["failing"], true);
    }
);

db_test!(
    api_only a_stale_scheduler_heartbeat_makes_health_degraded,
    |app: TestApp| async move {
        let view = health(&app).await;
        assert_eq!(view["status"], "ok", "no process runs workers: nothing is stale");
        assert!(view["scheduler"]["heartbeatAt"].is_null());
        let stale = herald::store::format_time(chrono::Utc::now() - chrono::Duration::seconds(30));
        sqlx::query(
            "insert into scheduler_nodes (node_id, workers, started_at, heartbeat_at) values ('node-gone', 2, $1, $1)",
        )
        .bind(&stale)
        .execute(&db(&app).await.write)
        .await
        .unwrap();
        let view = health(&app).await;
        assert_eq!(view["status"], "degraded", "{view}");
        assert_eq!(view["scheduler"]["heartbeatAt"], stale.as_str());
        assert_eq!(view["scheduler"]["workers"], 0);
    }
);

db_test!(
    a_real_vendor_is_retried_after_a_5xx_and_a_refusal_is_recorded_as_failed,
    |app: TestApp| async move {
        use wiremock::matchers::{body_string_contains, method, path};
        use wiremock::{Mock, MockServer, ResponseTemplate};
        let vendor = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v3/mail/send"))
            .and(body_string_contains("bad@acme.test"))
            .respond_with(
                ResponseTemplate::new(400)
                    .set_body_string("{\"errors\":[{\"message\":\"invalid\"}]}"),
            )
            .with_priority(1)
            .mount(&vendor)
            .await;
        Mock::given(method("POST"))
            .and(path("/v3/mail/send"))
            .respond_with(ResponseTemplate::new(500))
            .up_to_n_times(1)
            .with_priority(2)
            .mount(&vendor)
            .await;
        Mock::given(method("POST"))
            .and(path("/v3/mail/send"))
            .respond_with(ResponseTemplate::new(202).insert_header("x-message-id", "sg-1"))
            .with_priority(3)
            .mount(&vendor)
            .await;
        let connection = json!({"platform": "email", "vendor": "sendgrid",
            "credentials": {"apiKey": "SG.test-key"},
            "settings": {"fromEmail": "news@acme.test", "baseUrl": vendor.uri()}});
        let reply = app
            .admin(Method::POST, "/crm/integrations/connections")
            .json(&connection)
            .send()
            .await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        links_template(&app).await;
        let audience = json!({"id": "aud-all", "name": "All",
            "filter": {"datatype": "contact", "where": {"tags": "news"}}});
        app.admin(Method::POST, "/crm/audiences")
            .json(&audience)
            .send()
            .await;
        import(
            &app,
            json!([
                {"id": "ct-a", "email": "a@acme.test", "tags": ["news"]},
                {"id": "ct-b", "email": "b@acme.test", "tags": ["news"]},
                {"id": "ct-bad", "email": "bad@acme.test", "tags": ["news"]}
            ]),
        )
        .await;
        let body = json!({"id": "camp-sg", "name": "SendGrid", "type": "one-shot", "channels": ["email"],
            "audienceId": "aud-all", "templateId": "tpl-links", "status": "running"});
        assert_eq!(app.post_campaign(&body).await.status, 201);
        wait_for_status(&app, "camp-sg", "completed").await;
        let requests = vendor.received_requests().await.unwrap();
        assert_eq!(
            requests.len(),
            4,
            "three messages and one retry after the 500"
        );
        let sent = requests
            .iter()
            .filter(|r| String::from_utf8_lossy(&r.body).contains("List-Unsubscribe"))
            .count();
        assert_eq!(sent, 4, "every call carries the List-Unsubscribe header");
        let rows = sqlx::query("select contact_id, state, provider_message_id, last_error from send_ledger order by contact_id")
            .fetch_all(&db(&app).await.read)
            .await
            .unwrap();
        use sqlx::Row;
        let states: Vec<(String, String, Option<String>)> = rows
            .iter()
            .map(|r| {
                (
                    r.get("contact_id"),
                    r.get("state"),
                    r.get("provider_message_id"),
                )
            })
            .collect();
        assert_eq!(
            states,
            [
                (
                    "ct-a".to_string(),
                    "sent".to_string(),
                    Some("sg-1".to_string())
                ),
                (
                    "ct-b".to_string(),
                    "sent".to_string(),
                    Some("sg-1".to_string())
                ),
                ("ct-bad".to_string(), "failed".to_string(), None),
            ]
        );
        let error: String = rows[2].get("last_error");
        assert!(error.contains("400"), "{error}");
        assert!(!error.contains("SG.test-key"));
        let view = health(&app).await;
        assert!(view["channels"]["email"]["lastSuccessAt"].is_string());
        assert!(view["channels"]["email"]["lastFailureAt"].is_string());
        assert_eq!(view["status"], "ok", "{view}");
    }
);

async fn launches(app: &TestApp) -> usize {
    app.campaign_events("camp-every")
        .await
        .into_iter()
        .filter(|e| e["eventType"] == "Launched")
        .count()
}

db_test!(
    a_recurring_campaign_sends_each_occurrence_to_the_audience_of_that_moment,
    |app: TestApp| async move {
        app.make_ready().await;
        import(
            &app,
            json!([{"id": "ct-first", "email": "first@acme.test", "tags": ["prospect"]}]),
        )
        .await;
        let body = json!({"id": "camp-every", "name": "Every two seconds", "type": "recurring",
            "channels": ["email"], "audienceId": "aud-spring-prospects",
            "templateId": "tpl-spring-launch", "recurring": {"cron": "*/2 * * * * *"},
            "status": "running"});
        let created = app.post_campaign(&body).await;
        assert_eq!(created.status, 201, "{}", created.text);
        assert_eq!(created.body["status"], "scheduled");
        assert!(
            eventually(Duration::from_secs(10), || async {
                launches(&app).await >= 1
            })
            .await,
            "the first occurrence launched"
        );
        let reply = app
            .admin(Method::POST, "/crm/contacts")
            .json(&json!({"id": "ct-second", "email": "second@acme.test", "tags": ["vip"]}))
            .send()
            .await;
        assert_eq!(reply.status, 201);
        let reached = eventually(Duration::from_secs(15), || async {
            !sandbox(&app, "contactId=ct-second").await.is_empty()
        })
        .await;
        assert!(reached, "a contact added before a later run gets that run");
        assert_eq!(status_of(&app, "camp-every").await, "running");
        let done = app
            .admin(Method::POST, "/crm/marketing/campaigns/camp-every/complete")
            .send()
            .await;
        assert_eq!(done.status, 200, "{}", done.text);
        let settled = eventually(Duration::from_secs(10), || async {
            health(&app).await["queue"]["depth"] == 0
        })
        .await;
        assert!(settled, "{}", health(&app).await);
        let runs = launches(&app).await;
        let first: Vec<Value> = sandbox(&app, "contactId=ct-first").await;
        let mut run_ids: Vec<&str> = first.iter().map(|m| m["runId"].as_str().unwrap()).collect();
        run_ids.sort();
        run_ids.dedup();
        assert_eq!(run_ids.len(), first.len(), "one message per run");
        // The run in flight when the campaign was completed may stop before it sends.
        assert!(
            first.len() + 1 >= runs && first.len() <= runs,
            "every run reached the first contact: {} messages, {runs} runs",
            first.len()
        );
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(
            launches(&app).await,
            runs,
            "a completed campaign runs no more"
        );
    }
);

db_test!(
    a_recurring_campaign_with_an_end_completes_after_its_last_occurrence,
    |app: TestApp| async move {
        app.make_ready().await;
        import(
            &app,
            json!([{"id": "ct-first", "email": "first@acme.test", "tags": ["prospect"]}]),
        )
        .await;
        // The end falls on an occurrence a few seconds away: that last run still goes out, and
        // the campaign completes after it, with no occurrence left to wake it.
        let end = chrono::Utc::now().timestamp() + 6;
        let end = chrono::DateTime::from_timestamp(end - end % 2, 0).unwrap();
        let body = json!({"id": "camp-ends", "name": "Every two seconds, briefly", "type": "recurring",
            "channels": ["email"], "audienceId": "aud-spring-prospects",
            "templateId": "tpl-spring-launch", "recurring": {"cron": "*/2 * * * * *"},
            "schedule": {"endAt": end.to_rfc3339()}, "status": "running"});
        let created = app.post_campaign(&body).await;
        assert_eq!(created.status, 201, "{}", created.text);
        assert_eq!(created.body["status"], "scheduled", "{}", created.text);
        wait_for_status(&app, "camp-ends", "completed").await;

        let campaign = app.get_campaign("camp-ends").await.body;
        assert!(campaign["nextRunAt"].is_null(), "{campaign}");
        let completed_at = campaign["completedAt"]
            .as_str()
            .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
            .unwrap_or_else(|| panic!("no completedAt: {campaign}"));
        assert!(
            completed_at >= end,
            "completed at {completed_at}, before its end {end}"
        );
        let events = app.campaign_events("camp-ends").await;
        let runs = events
            .iter()
            .filter(|e| e["eventType"] == "Launched")
            .count();
        assert!(runs >= 1, "{:?}", event_types(&events));
        assert_eq!(
            event_types(&events).last().map(String::as_str),
            Some("Completed")
        );
        // Completing did not cut a run short: every run reached the contact.
        let sent = eventually(Duration::from_secs(10), || async {
            sandbox(&app, "campaignId=camp-ends").await.len() == runs
        })
        .await;
        assert!(
            sent,
            "{runs} runs, messages: {:?}",
            sandbox(&app, "campaignId=camp-ends").await
        );
        let settled = eventually(Duration::from_secs(10), || async {
            health(&app).await["queue"]["depth"] == 0
        })
        .await;
        assert!(settled, "{}", health(&app).await);
    }
);
