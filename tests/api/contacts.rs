//! Contacts: CRUD, validation, import and the activity log.

use reqwest::Method;
use serde_json::{json, Value};

use crate::db_test;
use crate::helpers::*;

db_test!(
    contacts_are_created_read_replaced_and_deleted,
    |app: TestApp| async move {
        let body = json!({"email": "ann@example.com", "phone": "+14155550100", "firstName": "Ann",
        "tags": ["vip"], "attributes": {"plan": "pro", "score": 42}, "timezone": "Europe/Paris"});
        let created = app
            .admin(Method::POST, "/crm/contacts")
            .json(&body)
            .send()
            .await;
        assert_eq!(created.status, 201, "{}", created.text);
        let id = created.body["id"].as_str().unwrap().to_string();
        assert!(id.starts_with("ct-"));
        assert_eq!(created.body["attributes"]["score"], 42);
        assert_eq!(created.body["unsubscribed"], json!({}));
        let dup = app
            .admin(Method::POST, "/crm/contacts")
            .json(&json!({"email": "ANN@example.com"}))
            .send()
            .await;
        dup.assert_problem(409);

        let mut edited = created.body.clone();
        edited["lastName"] = json!("Lee");
        let put = app
            .admin(Method::PUT, &format!("/crm/contacts/{id}"))
            .header("if-match", "\"1\"")
            .json(&edited)
            .send()
            .await;
        assert_eq!(put.status, 200, "{}", put.text);
        assert_eq!(put.body["lastName"], "Lee");
        assert_eq!(put.body["version"], 2);
        let activities = app
            .admin(Method::GET, &format!("/crm/contacts/{id}/activities"))
            .send()
            .await;
        assert_eq!(activities.body, json!({"items": [], "nextCursor": null}));

        let beta = token(&["beta"], &["admin"], "bob");
        let foreign = app
            .as_user(&beta, "beta", Method::GET, &format!("/crm/contacts/{id}"))
            .send()
            .await;
        foreign.assert_problem(404);

        assert_eq!(
            app.admin(Method::DELETE, &format!("/crm/contacts/{id}"))
                .send()
                .await
                .status,
            204
        );
        app.admin(Method::GET, &format!("/crm/contacts/{id}"))
            .send()
            .await
            .assert_problem(404);
        app.admin(Method::DELETE, &format!("/crm/contacts/{id}"))
            .send()
            .await
            .assert_problem(404);
    }
);

db_test!(
    invalid_contacts_are_422_and_change_nothing,
    |app: TestApp| async move {
        for (body, field) in [
            (json!({"email": "not-an-email"}), "email"),
            (json!({"phone": "555-0100"}), "phone"),
            (json!({"tags": "vip"}), "tags"),
            (json!({"attributes": [1, 2]}), "attributes"),
            (json!({"timezone": "Nowhere/Else"}), "timezone"),
        ] {
            let reply = app
                .admin(Method::POST, "/crm/contacts")
                .json(&body)
                .send()
                .await;
            reply.assert_problem(422);
            assert_eq!(reply.body["errors"][0]["field"], field);
        }
        assert!(app.all_events().await.is_empty());
    }
);

fn rows(n: usize, bad_every: usize) -> Vec<Value> {
    (1..=n)
        .map(|i| {
            if bad_every > 0 && i % bad_every == 0 {
                json!({"email": format!("broken-{i}"), "firstName": "Bad"})
            } else {
                json!({"email": format!("person{i}@example.com"), "firstName": format!("P{i}"), "tags": if i % 2 == 0 { json!(["prospect"]) } else { json!(["customer"]) }, "attributes": {"score": i}})
            }
        })
        .collect()
}

db_test!(
    an_import_keeps_the_good_rows_reports_the_bad_ones_and_updates_on_reimport,
    |app: TestApp| async move {
        let mut list = rows(1000, 0);
        for line in [10usize, 500, 999] {
            list[line - 1] = json!({"email": "nope", "phone": "12"});
        }
        let reply = app
            .admin(Method::POST, "/crm/contacts/import")
            .json(&Value::Array(list.clone()))
            .send()
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(reply.body["created"], 997);
        assert_eq!(reply.body["updated"], 0);
        let lines: Vec<i64> = reply.body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["line"].as_i64().unwrap())
            .collect();
        assert_eq!(lines, [10, 500, 999]);

        // Re-import as NDJSON with one change: updates, no duplicates.
        list[0]["firstName"] = json!("Changed");
        let ndjson: String = list.iter().map(|r| format!("{r}\n")).collect();
        let again = app
            .admin(Method::POST, "/crm/contacts/import")
            .raw(Some("application/x-ndjson"), ndjson)
            .send()
            .await;
        assert_eq!(again.status, 200, "{}", again.text);
        assert_eq!(again.body["created"], 0);
        assert_eq!(again.body["updated"], 1);
        let mut count = 0;
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/crm/contacts?limit=500&cursor={c}"),
                None => "/crm/contacts?limit=500".into(),
            };
            let page = app.admin(Method::GET, &path).send().await;
            count += page.body["items"].as_array().unwrap().len();
            match page.body["nextCursor"].as_str() {
                Some(c) => cursor = Some(c.into()),
                None => break,
            }
        }
        assert_eq!(count, 997);
    }
);

db_test!(
    an_import_row_holding_a_nul_is_reported_and_the_others_kept,
    |app: TestApp| async move {
        // Found by Schemathesis on PostgreSQL: a NUL in a key or value of a row answered 500.
        let list = json!([
            {"id": "ct-ok-1", "email": "ok1@acme.test"},
            {"id": "ct-nul-key", "email": "k@acme.test", "attributes": {"a\u{0}b": 1}},
            {"id": "ct-nul-value", "firstName": "An\u{0}n"},
            {"id": "ct-ok-2", "email": "ok2@acme.test"},
        ]);
        for (content_type, body) in [
            ("application/json", list.to_string()),
            (
                "application/x-ndjson",
                list.as_array()
                    .unwrap()
                    .iter()
                    .map(|r| format!("{r}\n"))
                    .collect(),
            ),
        ] {
            let reply = app
                .admin(Method::POST, "/crm/contacts/import")
                .raw(Some(content_type), body)
                .send()
                .await;
            assert_eq!(reply.status, 200, "{}", reply.text);
            let errors = reply.body["errors"].as_array().unwrap();
            let lines: Vec<i64> = errors.iter().map(|e| e["line"].as_i64().unwrap()).collect();
            assert_eq!(lines, [2, 3], "{}", reply.text);
            assert!(errors[0]["message"].as_str().unwrap().contains("NUL"));
        }
        for id in ["ct-nul-key", "ct-nul-value"] {
            let missing = app
                .admin(Method::GET, &format!("/crm/contacts/{id}"))
                .send()
                .await;
            assert_eq!(missing.status, 404, "{}", missing.text);
        }
        let kept = app.admin(Method::GET, "/crm/contacts/ct-ok-2").send().await;
        assert_eq!(kept.status, 200, "{}", kept.text);
    }
);

db_test!(
    a_malformed_ndjson_line_is_reported_by_number,
    |app: TestApp| async move {
        let body = "{\"email\": \"a@example.com\"}\n{not json\n\n{\"email\": \"b@example.com\"}\n";
        let reply = app
            .admin(Method::POST, "/crm/contacts/import")
            .raw(Some("application/x-ndjson"), body)
            .send()
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(reply.body["created"], 2);
        assert_eq!(reply.body["errors"][0]["line"], 2);
        let not_array = app
            .admin(Method::POST, "/crm/contacts/import")
            .json(&json!({"email": "x@y.z"}))
            .send()
            .await;
        not_array.assert_problem(422);
        let xml = app
            .admin(Method::POST, "/crm/contacts/import")
            .raw(Some("application/xml"), "<a/>")
            .send()
            .await;
        xml.assert_problem(415);
    }
);

db_test!(
    concurrent_creates_of_one_email_make_one_contact,
    |app: TestApp| async move {
        let app = std::sync::Arc::new(app);
        let mut tasks = Vec::new();
        for i in 0..8 {
            let app = app.clone();
            tasks.push(tokio::spawn(async move {
                app.admin(Method::POST, "/crm/contacts")
                    .json(&json!({"id": format!("ct-race-{i}"), "email": "race@example.com"}))
                    .send()
                    .await
            }));
        }
        let mut statuses = Vec::new();
        for task in tasks {
            let reply = task.await.unwrap();
            if reply.status == 409 {
                assert!(reply.body["detail"]
                    .as_str()
                    .unwrap()
                    .contains("already has this email"));
            }
            statuses.push(reply.status);
        }
        statuses.sort_unstable();
        assert_eq!(statuses, [201, 409, 409, 409, 409, 409, 409, 409]);
        let list = app.admin(Method::GET, "/crm/contacts").send().await;
        assert_eq!(list.body["items"].as_array().unwrap().len(), 1);

        // Moving another contact onto the email is refused too; keeping its own is not.
        let other = app
            .admin(Method::POST, "/crm/contacts")
            .json(&json!({"id": "ct-other", "email": "other@example.com"}))
            .send()
            .await;
        assert_eq!(other.status, 201, "{}", other.text);
        let mut moved = other.body.clone();
        moved["email"] = json!("RACE@example.com");
        app.admin(Method::PUT, "/crm/contacts/ct-other")
            .json(&moved)
            .send()
            .await
            .assert_problem(409);
        let mut renamed = other.body.clone();
        renamed["firstName"] = json!("Otto");
        let kept = app
            .admin(Method::PUT, "/crm/contacts/ct-other")
            .json(&renamed)
            .send()
            .await;
        assert_eq!(kept.status, 200, "{}", kept.text);
    }
);

db_test!(
    an_import_over_the_row_limit_is_refused_whole,
    |app: TestApp| async move {
        let line = "{\"firstName\": \"Row\"}\n";
        let ndjson = line.repeat(100_001);
        let reply = app
            .admin(Method::POST, "/crm/contacts/import")
            .raw(Some("application/x-ndjson"), ndjson)
            .send()
            .await;
        reply.assert_problem(413);
        assert!(
            reply.body["detail"].as_str().unwrap().contains("100001"),
            "{}",
            reply.text
        );
        let array = format!("[{}]", vec!["{\"firstName\": \"Row\"}"; 100_001].join(","));
        app.admin(Method::POST, "/crm/contacts/import")
            .raw(Some("application/json"), array)
            .send()
            .await
            .assert_problem(413);
        // The array is read one row at a time and reading stops at row 100 001: what follows
        // it is never parsed (a whole-body parse would fail on it first, with 400, after
        // building every row: a 32 MiB `[0,0,…]` cost about a gigabyte that way).
        let mut array = String::from("[");
        array.push_str(&"0,".repeat(100_001));
        array.push_str("0]]] not json at all");
        let reply = app
            .admin(Method::POST, "/crm/contacts/import")
            .raw(Some("application/json"), array)
            .send()
            .await;
        reply.assert_problem(413);
        // Not an array, or broken JSON: 422 and 400 as before.
        app.admin(Method::POST, "/crm/contacts/import")
            .raw(Some("application/json"), "{\"firstName\": \"Row\"}")
            .send()
            .await
            .assert_problem(422);
        app.admin(Method::POST, "/crm/contacts/import")
            .raw(Some("application/json"), "[{\"firstName\": ")
            .send()
            .await
            .assert_problem(400);
        let list = app.admin(Method::GET, "/crm/contacts").send().await;
        assert_eq!(list.body["items"], json!([]), "nothing was written");
    }
);

db_test!(
    an_idempotency_key_on_a_contact_create_replays_and_writes_once,
    |app: TestApp| async move {
        let app = std::sync::Arc::new(app);
        let mut tasks = Vec::new();
        for _ in 0..6 {
            let app = app.clone();
            tasks.push(tokio::spawn(async move {
                app.admin(Method::POST, "/crm/contacts")
                    .header("idempotency-key", "ct-create-1")
                    .json(&json!({"email": "once@example.com"}))
                    .send()
                    .await
            }));
        }
        let mut ids = Vec::new();
        for task in tasks {
            let reply = task.await.unwrap();
            assert!(reply.status == 201 || reply.status == 409, "{}", reply.text);
            if reply.status == 201 {
                ids.push(reply.body["id"].as_str().unwrap().to_string());
            }
        }
        ids.dedup();
        assert_eq!(ids.len(), 1, "every replay names the same contact");
        let created = app
            .all_events()
            .await
            .iter()
            .filter(|e| e["eventType"] == "ContactCreated")
            .count();
        assert_eq!(created, 1);
        let reused = app
            .admin(Method::POST, "/crm/contacts")
            .header("idempotency-key", "ct-create-1")
            .json(&json!({"email": "other@example.com"}))
            .send()
            .await;
        reused.assert_problem(422);
    }
);
