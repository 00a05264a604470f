//! Connections, discovery that reflects them, and blockers that tell the truth.

use reqwest::Method;
use serde_json::{json, Value};

use crate::db_test;
use crate::helpers::*;

const SECRET: &str = "SG.very-secret-api-key-0123456789";

fn sendgrid() -> Value {
    json!({"platform": "email", "vendor": "sendgrid", "label": "Main",
        "credentials": {"apiKey": SECRET},
        "settings": {"fromEmail": "news@acme.test", "fromName": "Acme"}})
}

db_test!(
    a_connection_is_admin_only_and_its_credentials_never_come_back,
    |app: TestApp| async move {
        let created = app
            .admin(Method::POST, "/crm/integrations/connections")
            .json(&sendgrid())
            .send()
            .await;
        assert_eq!(created.status, 201, "{}", created.text);
        let id = created.body["id"].as_str().unwrap().to_string();
        assert!(id.starts_with("conn-"));
        assert_eq!(created.body["vendor"], "sendgrid");
        assert_eq!(created.body["settings"]["fromEmail"], "news@acme.test");

        let listed = app
            .admin(Method::GET, "/crm/integrations/connections")
            .send()
            .await;
        assert_eq!(listed.body["items"].as_array().unwrap().len(), 1);
        let one = app
            .admin(Method::GET, &format!("/crm/integrations/connections/{id}"))
            .send()
            .await;
        let export = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
            .args(["export"])
            .env_clear()
            .env("DATABASE_URL", &app.database_url)
            .env("HERALD_DATA_DIR", &app.data_dir)
            .output()
            .unwrap();
        let events = app.all_events().await;
        for (what, text) in [
            ("create response", created.text.clone()),
            ("list", listed.text.clone()),
            ("get", one.text.clone()),
            ("event log", serde_json::to_string(&events).unwrap()),
            (
                "export",
                String::from_utf8_lossy(&export.stdout).to_string(),
            ),
        ] {
            assert!(!text.contains(SECRET), "the secret leaked into the {what}");
        }
        // Nor is it stored in the clear in any column of any table.
        let dump = database_dump(&app).await;
        for needle in [SECRET, "very-secret"] {
            assert_eq!(
                leaks(&dump, needle),
                Vec::<&str>::new(),
                "{needle} is stored in the clear"
            );
        }

        for role in ["marketer", "analyst"] {
            let t = token(&["acme"], &[role], "someone");
            app.as_user(&t, "acme", Method::GET, "/crm/integrations/connections")
                .send()
                .await
                .assert_problem(403);
            app.as_user(&t, "acme", Method::POST, "/crm/integrations/connections")
                .json(&sendgrid())
                .send()
                .await
                .assert_problem(403);
        }
        let deleted = app
            .admin(
                Method::DELETE,
                &format!("/crm/integrations/connections/{id}"),
            )
            .send()
            .await;
        assert_eq!(deleted.status, 204);
        let listed = app
            .admin(Method::GET, "/crm/integrations/connections")
            .send()
            .await;
        assert_eq!(listed.body["items"], json!([]));
    }
);

/// Every value of every column that can hold text (from the database catalogue: text and JSON
/// columns on PostgreSQL; every column on SQLite, whose columns take any type, read as bytes),
/// each line `table.column: value`, for leak checks.
async fn database_dump(app: &TestApp) -> String {
    use sqlx::Row;
    let db = herald::db::Db::connect(&app.database_url, 2).await.unwrap();
    let sqlite = db.backend == herald::db::Backend::Sqlite;
    let columns: Vec<(String, String)> = catalogue(&db)
        .await
        .into_iter()
        .filter(|(_, _, ty)| sqlite || !matches!(ty.as_str(), "bigint" | "integer" | "xid8"))
        .map(|(t, c, _)| (t, c))
        .collect();
    for expected in [
        ("events", "data"),
        ("events", "metadata"),
        ("connection_secrets", "ciphertext"),
        ("send_ledger", "last_error"),
        ("jobs", "last_error"),
        ("idempotency_keys", "body"),
    ] {
        assert!(
            columns
                .iter()
                .any(|(t, c)| (t.as_str(), c.as_str()) == expected),
            "{expected:?} is not among the columns searched: {columns:?}"
        );
    }
    let mut out = String::new();
    for (table, column) in columns {
        let sql = if sqlite {
            format!("select cast({column} as blob) from {table}")
        } else {
            format!("select cast({column} as text) from {table}")
        };
        for row in sqlx::query(&sql).fetch_all(&db.read).await.unwrap() {
            let value = if sqlite {
                row.get::<Option<Vec<u8>>, _>(0)
                    .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            } else {
                row.get::<Option<String>, _>(0)
            };
            if let Some(value) = value {
                out.push_str(&format!("{table}.{column}: {value}\n"));
            }
        }
    }
    out
}

/// The lines of `dump` that hold `needle`.
fn leaks<'a>(dump: &'a str, needle: &str) -> Vec<&'a str> {
    dump.lines().filter(|l| l.contains(needle)).collect()
}

async fn credentials_are_in_no_column_and_no_log_line(backend: Backend) {
    use wiremock::matchers::{body_string_contains, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let vendor = MockServer::start().await;
    // A vendor that quotes the key back in its error, as some do for a bad request.
    Mock::given(method("POST"))
        .and(path("/v3/mail/send"))
        .and(body_string_contains("bad@acme.test"))
        .respond_with(ResponseTemplate::new(400).set_body_string(format!(
            "{{\"errors\":[{{\"message\":\"key {SECRET} may not send to this address\"}}]}}"
        )))
        .with_priority(1)
        .mount(&vendor)
        .await;
    Mock::given(method("POST"))
        .and(path("/v3/mail/send"))
        .respond_with(ResponseTemplate::new(202).insert_header("x-message-id", "sg-1"))
        .with_priority(2)
        .mount(&vendor)
        .await;
    let server = spawn_logged(backend).await;
    let app = &server.app;
    let mut connection = sendgrid();
    connection["settings"]["baseUrl"] = json!(vendor.uri());
    let created = app
        .admin(Method::POST, "/crm/integrations/connections")
        .header("idempotency-key", "connect-sendgrid-1")
        .json(&connection)
        .send()
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let again = app
        .admin(Method::POST, "/crm/integrations/connections")
        .header("idempotency-key", "connect-sendgrid-1")
        .json(&connection)
        .send()
        .await;
    assert_eq!(again.status, 201, "{}", again.text);
    assert_eq!(
        again.body["id"], created.body["id"],
        "the stored response came back"
    );
    let template = json!({"id": "tpl-plain", "name": "Plain",
        "email": {"subject": "Hello", "html": "<p>Hello</p>"}});
    let reply = app
        .admin(Method::POST, "/crm/marketing/templates")
        .json(&template)
        .send()
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let audience = json!({"id": "aud-news", "name": "News",
        "filter": {"datatype": "contact", "where": {"tags": "news"}}});
    let reply = app
        .admin(Method::POST, "/crm/audiences")
        .json(&audience)
        .send()
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let contacts = json!([
        {"id": "ct-ok", "email": "ok@acme.test", "tags": ["news"]},
        {"id": "ct-bad", "email": "bad@acme.test", "tags": ["news"]}
    ]);
    let reply = app
        .admin(Method::POST, "/crm/contacts/import")
        .json(&contacts)
        .send()
        .await;
    assert!(reply.status.is_success(), "{}", reply.text);
    let campaign = json!({"id": "camp-sg", "name": "SendGrid", "type": "one-shot",
        "channels": ["email"], "audienceId": "aud-news", "templateId": "tpl-plain",
        "status": "running"});
    let reply = app.post_campaign(&campaign).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let completed = eventually(std::time::Duration::from_secs(30), || async {
        app.get_campaign("camp-sg").await.body["status"] == "completed"
    })
    .await;
    assert!(completed, "{}", app.get_campaign("camp-sg").await.text);

    // The credentials were in play: every call carried the key, one failed.
    let requests = vendor.received_requests().await.unwrap();
    assert_eq!(requests.len(), 2, "one send and one failure");
    for request in &requests {
        assert_eq!(
            request
                .headers
                .get("authorization")
                .and_then(|v| v.to_str().ok()),
            Some(format!("Bearer {SECRET}").as_str())
        );
    }
    let dump = database_dump(app).await;
    assert!(
        dump.contains("HTTP 400"),
        "the vendor's failure is recorded somewhere searched"
    );
    for needle in [SECRET, "very-secret"] {
        assert_eq!(
            leaks(&dump, needle),
            Vec::<&str>::new(),
            "{needle} is stored in the clear"
        );
    }
    let log = std::fs::read_to_string(&server.log).unwrap();
    assert!(log.contains("camp-sg"), "the log was captured: {log}");
    for needle in [SECRET, "very-secret"] {
        assert_eq!(
            leaks(&log, needle),
            Vec::<&str>::new(),
            "{needle} is in the server's log"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_in_no_column_and_no_log_line_on_sqlite() {
    credentials_are_in_no_column_and_no_log_line(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_in_no_column_and_no_log_line_on_postgres() {
    credentials_are_in_no_column_and_no_log_line(Backend::Postgres).await;
}

db_test!(
    bad_connections_are_422_and_change_nothing,
    |app: TestApp| async move {
        let cases = [
            (json!({"platform": "email", "vendor": "pigeon"}), "vendor"),
            (json!({"platform": "fax", "vendor": "sandbox"}), "platform"),
            (
                json!({"platform": "email", "vendor": "sendgrid", "settings": {"fromEmail": "a@b.test"}}),
                "credentials.apiKey",
            ),
            (
                json!({"platform": "sms", "vendor": "twilio", "credentials": {"accountSid": "AC1"}, "settings": {"fromNumber": "555"}}),
                "credentials.authToken",
            ),
            (
                json!({"platform": "facebook", "vendor": "meta-graph", "credentials": {"accessToken": "t"}}),
                "profiles",
            ),
        ];
        for (body, field) in cases {
            let reply = app
                .admin(Method::POST, "/crm/integrations/connections")
                .json(&body)
                .send()
                .await;
            reply.assert_problem(422);
            assert!(
                reply.body["errors"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|e| e["field"] == field),
                "{field}: {}",
                reply.text
            );
        }
        assert!(app.all_events().await.is_empty());
    }
);

db_test!(
    platforms_and_social_profiles_follow_the_connections,
    |app: TestApp| async move {
        let before = app
            .admin(Method::GET, "/crm/marketing/platforms")
            .send()
            .await;
        assert!(before
            .body
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["connected"] == false));
        app.admin(Method::POST, "/crm/integrations/connections")
            .json(&sendgrid())
            .send()
            .await;
        let fb = json!({"platform": "facebook", "vendor": "meta-graph", "credentials": {"accessToken": "EAAB-token"},
        "profiles": [{"id": "fb-page-1", "name": "Acme", "handle": "acme"}]});
        let fb = app
            .admin(Method::POST, "/crm/integrations/connections")
            .json(&fb)
            .send()
            .await;
        assert_eq!(fb.status, 201, "{}", fb.text);
        let after = app
            .admin(Method::GET, "/crm/marketing/platforms")
            .send()
            .await;
        let email = after
            .body
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"] == "email")
            .unwrap();
        assert_eq!(email["connected"], true);
        assert_eq!(email["connections"][0]["vendor"], "sendgrid");
        assert_eq!(email["connections"][0]["label"], "Main");
        let sms = after
            .body
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"] == "sms")
            .unwrap();
        assert_eq!(sms["connected"], false);

        let profiles = app
            .admin(Method::GET, "/crm/marketing/social-profiles/facebook")
            .send()
            .await;
        assert_eq!(
            profiles.body,
            json!([{"id": "fb-page-1", "platform": "facebook", "name": "Acme", "handle": "acme", "connectionId": fb.body["id"]}])
        );
        let linkedin = app
            .admin(Method::GET, "/crm/marketing/social-profiles/linkedin")
            .send()
            .await;
        assert_eq!(linkedin.body, json!([]));
        let all = app
            .admin(Method::GET, "/crm/marketing/social-profiles")
            .send()
            .await;
        assert_eq!(all.body.as_array().unwrap().len(), 1);
    }
);

db_test!(
    an_unconnected_email_campaign_saves_stays_draft_and_says_why_until_connected,
    |app: TestApp| async move {
        // Template and audience exist; only the email connection is missing.
        let template =
            json!({"id": "tpl-1", "name": "T", "email": {"subject": "Hi", "text": "Hello"}});
        assert_eq!(
            app.admin(Method::POST, "/crm/marketing/templates")
                .json(&template)
                .send()
                .await
                .status,
            201
        );
        let audience =
            json!({"id": "aud-1", "name": "All", "filter": {"datatype": "contact", "where": {}}});
        assert_eq!(
            app.admin(Method::POST, "/crm/audiences")
                .json(&audience)
                .send()
                .await
                .status,
            201
        );
        let body = json!({"name": "Email blast", "type": "one-shot", "channels": ["email"],
        "audienceId": "aud-1", "templateId": "tpl-1", "status": "running"});
        let saved = app.post_campaign(&body).await;
        assert_eq!(saved.status, 201, "{}", saved.text);
        assert_eq!(saved.body["status"], "draft");
        assert_eq!(
            saved.body["blockers"],
            json!([{"code": "channel_not_connected", "channel": "email"}])
        );
        let id = saved.body["id"].as_str().unwrap().to_string();

        app.admin(Method::POST, "/crm/integrations/connections")
            .json(&sendgrid())
            .send()
            .await;
        let fetched = app.get_campaign(&id).await;
        assert_eq!(
            fetched.body["blockers"],
            json!([]),
            "blockers follow the connections"
        );
        let mut again = body.clone();
        again["schedule"] =
            json!({"startAt": (chrono::Utc::now() + chrono::Duration::days(3)).to_rfc3339()});
        again["status"] = json!("scheduled");
        let scheduled = app.put_campaign(&id, &again).await;
        assert_eq!(scheduled.status, 200, "{}", scheduled.text);
        assert_eq!(scheduled.body["status"], "scheduled");
    }
);

db_test!(
    a_missing_template_or_audience_is_a_blocker,
    |app: TestApp| async move {
        let conn = json!({"platform": "sms", "vendor": "sandbox"});
        app.admin(Method::POST, "/crm/integrations/connections")
            .json(&conn)
            .send()
            .await;
        let body = json!({"name": "SMS", "type": "one-shot", "channels": ["sms"], "audienceId": "aud-none", "templateId": "tpl-none", "status": "running"});
        let saved = app.post_campaign(&body).await;
        assert_eq!(saved.body["status"], "draft");
        let codes: Vec<&str> = saved.body["blockers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["code"].as_str().unwrap())
            .collect();
        assert_eq!(codes, ["template_missing", "audience_missing"]);
    }
);
