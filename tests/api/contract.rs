//! Contract points of `api.md` sections 0–10 that no other test covered: the purge's reach, a
//! partial launch, audience and template resources, list limits, `Idempotency-Key` on every
//! create route, the metrics token, the JWT secret's length, readiness and `causationId`.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::db_test;
use crate::helpers::*;

const BROWSER: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15";

/// Creates `id` as a running campaign of the seed on email and SMS and waits for it to complete.
async fn send_campaign(app: &TestApp, id: &str) {
    let body = json!({"id": id, "name": id, "type": "multi-channel", "channels": ["email", "sms"],
        "audienceId": "aud-spring-prospects", "templateId": "tpl-spring-launch", "status": "running"});
    let reply = app.post_campaign(&body).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let completed = eventually(Duration::from_secs(30), || async {
        app.get_campaign(id).await.body["status"] == "completed"
    })
    .await;
    assert!(completed, "{}", app.get_campaign(id).await.text);
}

/// The path of the first short link in `message`'s SMS body.
fn short_link(message: &Value) -> String {
    let body = message["body"].as_str().expect("an SMS body");
    let at = body.find("/connect/s/").expect("a short link");
    body[at..].split_whitespace().next().unwrap().to_string()
}

async fn activities_of(app: &TestApp, contact: &str) -> Vec<Value> {
    let reply = app
        .admin(
            Method::GET,
            &format!("/crm/contacts/{contact}/activities?limit=500"),
        )
        .send()
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.body["items"].as_array().unwrap().clone()
}

db_test!(
    the_purge_removes_engagement_deliveries_activities_short_links_and_sandbox_rows,
    |app: TestApp| async move {
        app.make_ready().await;
        let contacts = json!([{"id": "ct-ann", "email": "ann@example.com",
            "phone": "+14155550100", "tags": ["vip"]}]);
        let reply = app
            .admin(Method::POST, "/crm/contacts/import")
            .json(&contacts)
            .send()
            .await;
        assert!(reply.status.is_success(), "{}", reply.text);
        for id in ["camp-gone", "camp-kept"] {
            send_campaign(&app, id).await;
            let sent = sandbox(&app, &format!("campaignId={id}")).await;
            let email = sent.iter().find(|m| m["channel"] == "email").unwrap();
            let pixel = email["trackingUrls"]["open"].as_str().unwrap();
            let opened = app
                .anonymous(Method::GET, &pixel[pixel.find("/connect/").unwrap()..])
                .header("user-agent", BROWSER)
                .send()
                .await;
            assert_eq!(opened.status, 200);
            let reply = app
                .admin(Method::POST, &format!("/crm/marketing/campaigns/{id}/engagements"))
                .json(&json!([{"type": "conversion", "channel": "email", "contactId": "ct-ann", "value": "5", "currency": "USD"}]))
                .send()
                .await;
            assert_eq!(reply.status, 200, "{}", reply.text);
        }
        let gone_links: Vec<String> = sandbox(&app, "campaignId=camp-gone")
            .await
            .iter()
            .filter(|m| m["channel"] == "sms")
            .map(short_link)
            .collect();
        let kept_links: Vec<String> = sandbox(&app, "campaignId=camp-kept")
            .await
            .iter()
            .filter(|m| m["channel"] == "sms")
            .map(short_link)
            .collect();
        assert_eq!((gone_links.len(), kept_links.len()), (1, 1));
        assert_eq!(
            app.anonymous(Method::GET, &gone_links[0])
                .send()
                .await
                .status,
            302
        );
        let activities = eventually(Duration::from_secs(10), || async {
            let items = activities_of(&app, "ct-ann").await;
            ["camp-gone", "camp-kept"]
                .iter()
                .all(|id| items.iter().filter(|i| i["campaignId"] == *id).count() >= 3)
        })
        .await;
        assert!(activities, "{:?}", activities_of(&app, "ct-ann").await);

        let reply = app
            .admin(Method::DELETE, "/crm/marketing/campaigns/camp-gone")
            .send()
            .await;
        assert_eq!(reply.status, 204, "{}", reply.text);
        let reply = app.admin(Method::POST, "/crm/marketing/purge").send().await;
        assert_eq!(reply.status, 202, "{}", reply.text);
        let done = crate::purge::wait_done(&app, reply.body["jobId"].as_str().unwrap()).await;
        assert_eq!(done["status"], "completed", "{done}");

        let log = app.all_events().await;
        let streams: Vec<&str> = log
            .iter()
            .map(|e| e["streamId"].as_str().unwrap())
            .collect();
        assert!(
            !streams.iter().any(|s| s.contains("camp-gone")),
            "campaign, run and delivery streams of camp-gone are gone: {streams:?}"
        );
        for kept in [
            "campaign-acme:camp-kept",
            "run-acme:camp-kept:",
            "delivery-acme:camp-kept:",
        ] {
            assert!(
                streams.iter().any(|s| s.starts_with(kept)),
                "{kept} was kept"
            );
        }
        let recorded = engagements(&app).await;
        assert!(
            recorded
                .iter()
                .all(|e| e["data"]["campaignId"] == "camp-kept"),
            "{recorded:?}"
        );
        assert_eq!(recorded.len(), 2, "camp-kept's open and conversion");
        let items = activities_of(&app, "ct-ann").await;
        assert!(
            items.iter().all(|i| i["campaignId"] == "camp-kept"),
            "{items:?}"
        );
        assert!(items.len() >= 3, "{items:?}");
        assert_eq!(
            sandbox(&app, "campaignId=camp-gone").await,
            Vec::<Value>::new()
        );
        assert_eq!(sandbox(&app, "campaignId=camp-kept").await.len(), 2);
        app.anonymous(Method::GET, &gone_links[0])
            .send()
            .await
            .assert_problem(404);
        assert_eq!(
            app.anonymous(Method::GET, &kept_links[0])
                .send()
                .await
                .status,
            302
        );
    }
);

db_test!(
    api_only a_partial_launch_records_its_skipped_channels_in_launched_and_last_run,
    |app: TestApp| async move {
        let email = json!({"platform": "email", "vendor": "sandbox", "label": "Mail"});
        let reply = app
            .admin(Method::POST, "/crm/integrations/connections")
            .json(&email)
            .send()
            .await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        let template = json!({"id": "tpl-1", "name": "T", "email": {"subject": "Hi", "html": "<p>Hi</p>"},
            "sms": {"body": "Hi {{ unsubscribeUrl }}"}});
        let reply = app
            .admin(Method::POST, "/crm/marketing/templates")
            .json(&template)
            .send()
            .await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        let audience = json!({"id": "aud-all", "name": "All", "type": "dynamic",
            "filter": {"datatype": "contact", "where": {}}});
        let reply = app.admin(Method::POST, "/crm/audiences").json(&audience).send().await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        let body = json!({"id": "camp-partial", "name": "Partial", "type": "multi-channel",
            "channels": ["email", "sms"], "audienceId": "aud-all", "templateId": "tpl-1",
            "status": "running"});
        let launched = app.post_campaign(&body).await;
        assert_eq!(launched.status, 201, "{}", launched.text);
        assert_eq!(launched.body["status"], "running", "{}", launched.text);
        let skipped = json!([{"code": "channel_not_connected", "channel": "sms"}]);
        let last_run = &launched.body["lastRun"];
        assert_eq!(last_run["channels"], json!(["email"]), "{last_run}");
        assert_eq!(last_run["skipped"], skipped, "{last_run}");
        assert_eq!(app.get_campaign("camp-partial").await.body["lastRun"], *last_run);
        let events = app.campaign_events("camp-partial").await;
        let event = events
            .iter()
            .find(|e| e["eventType"] == "Launched")
            .unwrap_or_else(|| panic!("no Launched: {events:?}"));
        assert_eq!(event["data"]["channels"], json!(["email"]));
        assert_eq!(event["data"]["skipped"], skipped);
        assert_eq!(event["data"]["runId"], last_run["runId"]);
    }
);

/// A resource kind of `api.md` section 5 with a body to create it and a changed one to `PUT`.
struct Kind {
    path: &'static str,
    create: Value,
    change: Value,
}

fn audience_and_template() -> [Kind; 2] {
    [
        Kind {
            path: "/crm/audiences",
            create: json!({"id": "aud-1", "name": "VIPs", "type": "dynamic",
                "filter": {"datatype": "contact", "where": {"tags": "vip"}}}),
            change: json!({"name": "Very VIPs", "type": "dynamic",
                "filter": {"datatype": "contact", "where": {"tags": {"$in": ["vip", "gold"]}}}}),
        },
        Kind {
            path: "/crm/marketing/templates",
            create: json!({"id": "tpl-1", "name": "Welcome",
                "email": {"subject": "Hi {{ contact.firstName }}", "html": "<p>Hi</p>"}}),
            change: json!({"name": "Welcome back",
                "email": {"subject": "Hello again", "html": "<p>Hello</p>"}}),
        },
    ]
}

db_test!(
    api_only audiences_and_templates_are_read_replaced_listed_and_deleted_with_etags_and_roles,
    |app: TestApp| async move {
        let beta = token(&["beta"], &["admin"], "bob");
        let analyst = token(&["acme"], &["analyst"], "ana");
        for kind in audience_and_template() {
            let id = kind.create["id"].as_str().unwrap();
            let item = format!("{}/{id}", kind.path);
            app.as_user(&analyst, "acme", Method::POST, kind.path)
                .json(&kind.create)
                .send()
                .await
                .assert_problem(403);
            let created = app.admin(Method::POST, kind.path).json(&kind.create).send().await;
            assert_eq!(created.status, 201, "{}", created.text);
            assert_eq!(created.header("etag"), Some("\"1\""));
            assert_eq!(created.body["version"], 1);

            let read = app.admin(Method::GET, &item).send().await;
            assert_eq!(read.status, 200, "{}", read.text);
            assert_eq!(read.header("etag"), Some("\"1\""));
            assert_eq!(read.body, created.body);
            let as_analyst = app.as_user(&analyst, "acme", Method::GET, &item).send().await;
            assert_eq!(as_analyst.status, 200, "an analyst reads");

            // Another org sees nothing and changes nothing.
            for method in [Method::GET, Method::PUT, Method::DELETE] {
                let mut call = app.as_user(&beta, "beta", method.clone(), &item);
                if method == Method::PUT {
                    call = call.json(&kind.change);
                }
                let reply = call.send().await;
                reply.assert_problem(404);
            }
            let beta_list = app.as_user(&beta, "beta", Method::GET, kind.path).send().await;
            assert_eq!(beta_list.body["items"], json!([]), "{}", beta_list.text);
            // An analyst may not write.
            app.as_user(&analyst, "acme", Method::PUT, &item)
                .json(&kind.change)
                .send()
                .await
                .assert_problem(403);
            app.as_user(&analyst, "acme", Method::DELETE, &item)
                .send()
                .await
                .assert_problem(403);

            // A stale If-Match is 412 and changes nothing; the current one applies.
            app.admin(Method::PUT, &item)
                .header("if-match", "\"7\"")
                .json(&kind.change)
                .send()
                .await
                .assert_problem(412);
            let replaced = app
                .admin(Method::PUT, &item)
                .header("if-match", "\"1\"")
                .json(&kind.change)
                .send()
                .await;
            assert_eq!(replaced.status, 200, "{}", replaced.text);
            assert_eq!(replaced.header("etag"), Some("\"2\""));
            assert_eq!(replaced.body["name"], kind.change["name"]);
            let read = app.admin(Method::GET, &item).send().await;
            assert_eq!(read.body, replaced.body);

            let listed = app.admin(Method::GET, kind.path).send().await;
            assert_eq!(listed.status, 200, "{}", listed.text);
            assert_eq!(listed.header("etag"), None, "lists carry no ETag");
            let items = listed.body["items"].as_array().unwrap();
            assert_eq!(items.len(), 1, "{}", listed.text);
            assert_eq!(items[0]["id"], id);
            assert_eq!(items[0]["name"], kind.change["name"]);

            app.admin(Method::DELETE, &item)
                .header("if-match", "\"1\"")
                .send()
                .await
                .assert_problem(412);
            assert_eq!(app.admin(Method::GET, &item).send().await.status, 200);
            let deleted = app
                .admin(Method::DELETE, &item)
                .header("if-match", "\"2\"")
                .send()
                .await;
            assert_eq!(deleted.status, 204, "{}", deleted.text);
            app.admin(Method::GET, &item).send().await.assert_problem(404);
            let listed = app.admin(Method::GET, kind.path).send().await;
            assert_eq!(listed.body["items"], json!([]));
        }
    }
);

db_test!(
    api_only lists_default_to_fifty_items_and_clamp_the_limit_to_five_hundred,
    |app: TestApp| async move {
        let rows: Vec<Value> = (0..501)
            .map(|i| json!({"id": format!("ct-{i:04}"), "email": format!("c{i}@example.com")}))
            .collect();
        let reply = app
            .admin(Method::POST, "/crm/contacts/import")
            .json(&Value::Array(rows))
            .send()
            .await;
        assert!(reply.status.is_success(), "{}", reply.text);
        assert_eq!(reply.body["created"], 501, "{}", reply.text);
        let count = |path: &str| {
            let path = path.to_string();
            let app = &app;
            async move {
                let reply = app.admin(Method::GET, &path).send().await;
                assert_eq!(reply.status, 200, "{path}: {}", reply.text);
                (
                    reply.body["items"].as_array().unwrap().len(),
                    reply.body["nextCursor"].is_string(),
                )
            }
        };
        assert_eq!(count("/crm/contacts").await, (50, true), "default 50");
        assert_eq!(count("/crm/contacts?limit=500").await, (500, true));
        assert_eq!(count("/crm/contacts?limit=501").await, (500, true), "clamped");
        assert_eq!(count("/crm/contacts?limit=100000").await, (500, true), "clamped");
        for bad in ["0", "-1", "ten"] {
            app.admin(Method::GET, &format!("/crm/contacts?limit={bad}"))
                .send()
                .await
                .assert_problem(400);
        }
    }
);

db_test!(
    api_only every_create_route_honours_an_idempotency_key,
    |app: TestApp| async move {
        let creates = [
            ("/crm/marketing/campaigns", seed_campaign(), "campaign-"),
            ("/crm/contacts", json!({"email": "ann@example.com"}), "contact-"),
            ("/crm/audiences", json!({"name": "A", "type": "dynamic",
                "filter": {"datatype": "contact", "where": {}}}), "audience-"),
            ("/crm/marketing/templates", json!({"name": "T",
                "email": {"subject": "S", "html": "<p>H</p>"}}), "template-"),
            ("/crm/integrations/connections", json!({"platform": "email",
                "vendor": "sandbox", "label": "Mail"}), "connection-"),
        ];
        for (path, body, stream) in creates {
            let first = app
                .admin(Method::POST, path)
                .header("idempotency-key", "create-once")
                .json(&body)
                .send()
                .await;
            assert_eq!(first.status, 201, "{path}: {}", first.text);
            let id = first.body["id"].as_str().unwrap().to_string();
            let again = app
                .admin(Method::POST, path)
                .header("idempotency-key", "create-once")
                .json(&body)
                .send()
                .await;
            assert_eq!(again.status, 201, "{path}: {}", again.text);
            assert_eq!(again.body["id"], id.as_str(), "{path}: the first response came back");
            let mut other = body.clone();
            other["name"] = json!("Something else");
            other["label"] = json!("Something else");
            let conflict = app
                .admin(Method::POST, path)
                .header("idempotency-key", "create-once")
                .json(&other)
                .send()
                .await;
            conflict.assert_problem(422);
            assert_eq!(
                conflict.body["errors"][0]["field"], "Idempotency-Key",
                "{path}: {}",
                conflict.text
            );
            let written: Vec<Value> = app
                .all_events()
                .await
                .into_iter()
                .filter(|e| e["streamId"].as_str().unwrap().starts_with(stream))
                .collect();
            assert_eq!(written.len(), 1, "{path} wrote once: {written:?}");
            let listed = app.admin(Method::GET, path).send().await;
            assert_eq!(listed.body["items"].as_array().unwrap().len(), 1, "{path}");
        }
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_metrics_token_metrics_need_it() {
    let (url, dir) = fresh_database(Backend::Sqlite).await;
    let mut config = test_config(url, &dir);
    config.workers = false;
    config.metrics_token = Some("metrics-token-0123".into());
    let app = spawn_with(Backend::Sqlite, config).await;
    app.anonymous(Method::GET, "/metrics")
        .send()
        .await
        .assert_problem(401);
    app.anonymous(Method::GET, "/metrics")
        .header("authorization", "Bearer metrics-token-wrong")
        .send()
        .await
        .assert_problem(401);
    let jwt = app
        .anonymous(Method::GET, "/metrics")
        .header("authorization", &format!("Bearer {}", app.admin))
        .send()
        .await;
    jwt.assert_problem(401);
    let scraped = app
        .anonymous(Method::GET, "/metrics")
        .header("authorization", "Bearer metrics-token-0123")
        .send()
        .await;
    assert_eq!(scraped.status, 200, "{}", scraped.text);
    assert!(scraped.text.contains("herald_"), "{}", scraped.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwt_secret_shorter_than_32_bytes_is_refused_at_start() {
    let (url, dir) = fresh_database(Backend::Sqlite).await;
    let mut config = test_config(url, &dir);
    config.jwt_secret = Some("x".repeat(31));
    let refused = herald::startup::Application::build(&config).await;
    let error = refused.err().expect("a 31-byte secret is refused");
    assert!(
        format!("{error:#}").contains("at least 32 bytes"),
        "{error:#}"
    );
    config.jwt_secret = Some("x".repeat(32));
    assert!(herald::startup::Application::build(&config).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_fails_while_the_database_is_down() {
    use sqlx::Connection;
    let app = spawn_api_only(Backend::Postgres).await;
    assert_eq!(
        app.anonymous(Method::GET, "/readyz").send().await.status,
        200
    );
    let name = app.database_url.rsplit_once('/').unwrap().1.to_string();
    let mut admin = sqlx::PgConnection::connect(&postgres_admin_url())
        .await
        .unwrap();
    sqlx::query(&format!("drop database \"{name}\" with (force)"))
        .execute(&mut admin)
        .await
        .unwrap();
    let down = eventually(Duration::from_secs(20), || async {
        app.anonymous(Method::GET, "/readyz").send().await.status == 503
    })
    .await;
    assert!(down, "readyz still answers ready without its database");
    assert_eq!(
        app.anonymous(Method::GET, "/healthz").send().await.status,
        200,
        "the process is still up"
    );
}

db_test!(
    the_causation_id_is_the_request_or_the_scheduler_job,
    |app: TestApp| async move {
        app.make_ready().await;
        let contacts = json!([{"id": "ct-ann", "email": "ann@example.com", "tags": ["vip"]}]);
        app.admin(Method::POST, "/crm/contacts/import")
            .json(&contacts)
            .send()
            .await;
        let mut body = seed_campaign();
        body.as_object_mut().unwrap().remove("schedule");
        body["id"] = json!("camp-cause");
        body["status"] = json!("running");
        let reply = app
            .admin(Method::POST, "/crm/marketing/campaigns")
            .header("x-request-id", "req-cause-1")
            .header("x-correlation-id", "corr-cause")
            .json(&body)
            .send()
            .await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        let run_id = reply.body["lastRun"]["runId"].as_str().unwrap().to_string();
        let completed = eventually(Duration::from_secs(30), || async {
            app.get_campaign("camp-cause").await.body["status"] == "completed"
        })
        .await;
        assert!(completed);
        let events = app.campaign_events("camp-cause").await;
        for event in events.iter().filter(|e| e["eventType"] != "Completed") {
            let meta = &event["metadata"];
            assert_eq!(meta["requestId"], "req-cause-1", "{event}");
            assert_eq!(meta["causationId"], "req-cause-1", "{event}");
            assert_eq!(meta["correlationId"], "corr-cause", "{event}");
        }
        let done = events
            .iter()
            .find(|e| e["eventType"] == "Completed")
            .expect("the scheduler completed the run");
        let meta = &done["metadata"];
        assert_eq!(meta["actor"], "herald-scheduler", "{done}");
        assert!(
            meta["causationId"].as_str().is_some_and(|c| !c.is_empty()),
            "{done}"
        );
        assert_eq!(
            meta["causationId"], meta["requestId"],
            "the job is the cause: {done}"
        );
        assert_eq!(meta["correlationId"], run_id.as_str(), "{done}");
    }
);
