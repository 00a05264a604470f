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
        assert!(!dump.contains(SECRET), "the secret is stored in the clear");
        assert!(
            !dump.contains("very-secret"),
            "part of the secret is stored in the clear"
        );

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

/// Every text value of every table, for leak checks.
async fn database_dump(app: &TestApp) -> String {
    use sqlx::Row;
    let db = herald::db::Db::connect(&app.database_url, 2).await.unwrap();
    let mut out = String::new();
    for (table, columns) in [
        ("events", "data, metadata"),
        ("documents", "doc"),
        ("connection_secrets", "nonce || ciphertext"),
        ("campaigns", "doc"),
        ("idempotency_keys", "body"),
    ] {
        let sql = match db.backend {
            herald::db::Backend::Postgres => format!(
                "select ({})::text from {table}",
                columns.replace(", ", ")::text || (")
            ),
            herald::db::Backend::Sqlite => {
                format!("select {} from {table}", columns.replace(", ", " || "))
            }
        };
        for row in sqlx::query(&sql).fetch_all(&db.read).await.unwrap() {
            out.push_str(&row.get::<String, _>(0));
        }
    }
    out
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
