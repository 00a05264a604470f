//! The suppression list (`api.md` section 12): admin-owned entries keyed by the normalised
//! address, each change an event with its actor; a contact's `unsubscribed` derived from it and
//! no send to a listed address, whatever happens to the contact.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::db_test;
use crate::helpers::*;

/// Every entry of acme's list, through every page of `limit`.
async fn listed(app: &TestApp, query: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor = String::new();
    loop {
        let reply = app
            .admin(
                Method::GET,
                &format!("/crm/suppressions?{query}&limit=2{cursor}"),
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

async fn events_of_type(app: &TestApp, kind: &str) -> Vec<Value> {
    app.all_events()
        .await
        .into_iter()
        .filter(|e| e["eventType"] == kind)
        .collect()
}

async fn contact(app: &TestApp, id: &str) -> Value {
    let reply = app
        .admin(Method::GET, &format!("/crm/contacts/{id}"))
        .send()
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.body
}

/// A sandbox email connection (bouncing `bounce`), a template and an audience of tag `s`.
async fn ready_to_send(app: &TestApp, bounce: &[&str]) {
    let connection = json!({"platform": "email", "vendor": "sandbox",
        "settings": {"bounce": bounce}});
    let template =
        json!({"id": "tpl-s", "name": "S", "email": {"subject": "Hi", "html": "<p>Hi</p>"}});
    let audience = json!({"id": "aud-s", "name": "S",
        "filter": {"datatype": "contact", "where": {"tags": "s"}}});
    for (path, body) in [
        ("/crm/integrations/connections", connection),
        ("/crm/marketing/templates", template),
        ("/crm/audiences", audience),
    ] {
        let reply = app.admin(Method::POST, path).json(&body).send().await;
        assert!(reply.status.is_success(), "{path}: {}", reply.text);
    }
}

/// Launches a one-shot email campaign `id` to the audience and waits until it completes.
/// Returns the addresses the sandbox received.
async fn send_to_audience(app: &TestApp, id: &str) -> Vec<String> {
    let campaign = json!({"id": id, "name": id, "type": "one-shot", "channels": ["email"],
        "audienceId": "aud-s", "templateId": "tpl-s", "status": "running"});
    let reply = app.post_campaign(&campaign).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let completed = eventually(Duration::from_secs(30), || async {
        app.get_campaign(id).await.body["status"] == "completed"
    })
    .await;
    assert!(completed, "{}", app.get_campaign(id).await.text);
    let mut to: Vec<String> = sandbox(app, &format!("campaignId={id}"))
        .await
        .iter()
        .filter_map(|m| m["to"].as_str().map(str::to_string))
        .collect();
    to.sort();
    to
}

db_test!(
    api_only an_admin_adds_lists_and_removes_suppressions_each_an_event_with_its_actor,
    |app: TestApp| async move {
        let added = app
            .admin(Method::POST, "/crm/suppressions")
            .json(&json!({"channel": "email", "address": " Ann@Acme.TEST ", "reason": "manual"}))
            .send()
            .await;
        assert_eq!(added.status, 201, "{}", added.text);
        assert_eq!(added.body["address"], "ann@acme.test");
        assert_eq!(added.body["reason"], "manual");
        assert_eq!(added.body["source"], "api");
        assert!(added.body["at"].as_str().is_some_and(|at| at.ends_with('Z')));
        let again = app
            .admin(Method::POST, "/api/crm/suppressions")
            .json(&json!({"channel": "email", "address": "ANN@acme.test"}))
            .send()
            .await;
        assert_eq!(again.status, 200, "already listed: {}", again.text);
        for (channel, address) in [
            ("sms", "+14155550100"),
            ("email", "bob@acme.test"),
            ("email", "cy@acme.test"),
        ] {
            let reply = app
                .admin(Method::POST, "/crm/suppressions")
                .json(&json!({"channel": channel, "address": address}))
                .send()
                .await;
            assert_eq!(reply.status, 201, "{}", reply.text);
        }
        let emails: Vec<Value> = listed(&app, "channel=email")
            .await
            .iter()
            .map(|e| e["address"].clone())
            .collect();
        assert_eq!(
            emails,
            [json!("ann@acme.test"), json!("bob@acme.test"), json!("cy@acme.test")]
        );
        assert_eq!(listed(&app, "").await.len(), 4);
        let other_org = token(&["globex"], &["admin"], "gina");
        let theirs = app
            .as_user(&other_org, "globex", Method::GET, "/crm/suppressions")
            .send()
            .await;
        assert_eq!(theirs.body["items"], json!([]), "another org sees nothing");

        let removed = app
            .admin(Method::DELETE, "/crm/suppressions/email/Bob@Acme.test")
            .send()
            .await;
        assert_eq!(removed.status, 204, "{}", removed.text);
        app.admin(Method::DELETE, "/crm/suppressions/email/bob@acme.test")
            .send()
            .await
            .assert_problem(404);
        let removed = app
            .admin(Method::DELETE, "/crm/suppressions/sms/%2B14155550100")
            .send()
            .await;
        assert_eq!(removed.status, 204, "{}", removed.text);
        assert_eq!(listed(&app, "").await.len(), 2);

        let adds = events_of_type(&app, "SuppressionAdded").await;
        assert_eq!(adds.len(), 4, "a repeated add writes nothing: {adds:?}");
        assert_eq!(adds[0]["streamId"], "suppression-acme:email:ann@acme.test");
        assert_eq!(adds[0]["metadata"]["actor"], "alice");
        assert_eq!(adds[0]["data"]["address"], "ann@acme.test");
        let removes = events_of_type(&app, "SuppressionRemoved").await;
        assert_eq!(removes.len(), 2, "{removes:?}");
        assert_eq!(removes[0]["data"]["address"], "bob@acme.test");
        assert_eq!(removes[0]["metadata"]["actor"], "alice");
    }
);

db_test!(
    api_only bad_suppressions_are_refused_and_change_nothing,
    |app: TestApp| async move {
        for (body, field) in [
            (json!({"channel": "email", "address": "not-an-email"}), "address"),
            (json!({"channel": "sms", "address": "555-0100"}), "address"),
            (json!({"channel": "fax", "address": "ann@acme.test"}), "channel"),
            (json!({"channel": "facebook", "address": "ann@acme.test"}), "channel"),
            (json!({"channel": "email", "address": "ann@acme.test", "reason": "dislike"}), "reason"),
            (json!({"channel": "email"}), "address"),
        ] {
            let reply = app
                .admin(Method::POST, "/crm/suppressions")
                .json(&body)
                .send()
                .await;
            reply.assert_problem(422);
            assert_eq!(reply.body["errors"][0]["field"], field, "{body}: {}", reply.text);
        }
        app.admin(Method::DELETE, "/crm/suppressions/fax/ann@acme.test")
            .send()
            .await
            .assert_problem(422);
        app.admin(Method::DELETE, "/crm/suppressions/email/nobody")
            .send()
            .await
            .assert_problem(422);
        app.admin(Method::GET, "/crm/suppressions?channel=fax")
            .send()
            .await
            .assert_problem(400);
        assert_eq!(listed(&app, "").await, Vec::<Value>::new());
        assert!(events_of_type(&app, "SuppressionAdded").await.is_empty());

        let marketer = token(&["acme"], &["marketer"], "mo");
        app.as_user(&marketer, "acme", Method::POST, "/crm/suppressions")
            .json(&json!({"channel": "email", "address": "ann@acme.test"}))
            .send()
            .await
            .assert_problem(403);
        let added = app
            .admin(Method::POST, "/crm/suppressions")
            .json(&json!({"channel": "email", "address": "ann@acme.test"}))
            .send()
            .await;
        assert_eq!(added.status, 201);
        app.as_user(
            &marketer,
            "acme",
            Method::DELETE,
            "/crm/suppressions/email/ann@acme.test",
        )
        .send()
        .await
        .assert_problem(403);
        let read = app
            .as_user(&marketer, "acme", Method::GET, "/crm/suppressions")
            .send()
            .await;
        assert_eq!(read.status, 200, "any role reads");
        assert_eq!(read.body["items"].as_array().unwrap().len(), 1);
    }
);

db_test!(
    an_opt_out_survives_put_reimport_and_delete_then_recreate_in_other_letter_case,
    |app: TestApp| async move {
        ready_to_send(&app, &[]).await;
        let created = app
            .admin(Method::POST, "/crm/contacts")
            .json(
                &json!({"id": "ct-ann", "email": "Ann@Acme.test", "tags": ["s"],
                "unsubscribed": {"email": true}}),
            )
            .send()
            .await;
        assert_eq!(created.status, 201, "{}", created.text);
        assert_eq!(created.body["unsubscribed"], json!({"email": true}));
        let entry = listed(&app, "channel=email").await;
        assert_eq!(entry.len(), 1);
        assert_eq!(entry[0]["address"], "ann@acme.test");
        assert_eq!(entry[0]["reason"], "manual");
        let bob = app
            .admin(Method::POST, "/crm/contacts")
            .json(&json!({"id": "ct-bob", "email": "bob@acme.test", "tags": ["s"]}))
            .send()
            .await;
        assert_eq!(bob.body["unsubscribed"], json!({}));

        // A PUT without the field, and one with `false`: still suppressed.
        for body in [
            json!({"email": "Ann@Acme.test", "tags": ["s"], "firstName": "Ann"}),
            json!({"email": "Ann@Acme.test", "tags": ["s"], "unsubscribed": {"email": false}}),
        ] {
            let put = app
                .admin(Method::PUT, "/crm/contacts/ct-ann")
                .json(&body)
                .send()
                .await;
            assert_eq!(put.status, 200, "{}", put.text);
            assert_eq!(put.body["unsubscribed"], json!({"email": true}), "{body}");
        }
        // A CRM re-import that knows nothing of the opt-out.
        let import = app
            .admin(Method::POST, "/crm/contacts/import")
            .json(&json!([{"email": "ann@acme.test", "tags": ["s"], "unsubscribed": {}}]))
            .send()
            .await;
        assert_eq!(import.status, 200, "{}", import.text);
        assert_eq!(
            contact(&app, "ct-ann").await["unsubscribed"],
            json!({"email": true})
        );
        // Deleted and created again, the address in other letter case.
        let deleted = app
            .admin(Method::DELETE, "/crm/contacts/ct-ann")
            .send()
            .await;
        assert_eq!(deleted.status, 204);
        let again = app
            .admin(Method::POST, "/crm/contacts")
            .json(&json!({"id": "ct-ann-2", "email": "ANN@ACME.TEST", "tags": ["s"]}))
            .send()
            .await;
        assert_eq!(again.status, 201, "{}", again.text);
        assert_eq!(again.body["unsubscribed"], json!({"email": true}));
        let listed_contacts = app.admin(Method::GET, "/crm/contacts").send().await;
        let unsubscribed: Vec<&Value> = listed_contacts.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| &c["unsubscribed"])
            .collect();
        assert_eq!(unsubscribed, [&json!({}), &json!({"email": true})]);

        assert_eq!(
            send_to_audience(&app, "camp-1").await,
            ["bob@acme.test"],
            "no send to the suppressed address"
        );
        assert_eq!(listed(&app, "").await.len(), 1, "nothing removed it");

        // Only a DELETE of the entry lets her be reached again.
        let removed = app
            .admin(Method::DELETE, "/crm/suppressions/email/ann@acme.test")
            .send()
            .await;
        assert_eq!(removed.status, 204);
        assert_eq!(contact(&app, "ct-ann-2").await["unsubscribed"], json!({}));
        assert_eq!(
            send_to_audience(&app, "camp-2").await,
            ["ANN@ACME.TEST", "bob@acme.test"]
        );
    }
);

db_test!(
    a_hard_bounce_suppresses_the_address_and_the_next_run_skips_it,
    |app: TestApp| async move {
        ready_to_send(&app, &["gone@acme.test"]).await;
        let import = app
            .admin(Method::POST, "/crm/contacts/import")
            .json(&json!([
                {"id": "ct-a", "email": "a@acme.test", "tags": ["s"]},
                {"id": "ct-gone", "email": "Gone@Acme.test", "tags": ["s"]},
                {"id": "ct-opt", "email": "opt@acme.test", "tags": ["s"], "unsubscribed": {"email": true}}
            ]))
            .send()
            .await;
        assert_eq!(import.status, 200, "{}", import.text);
        assert_eq!(send_to_audience(&app, "camp-1").await, ["a@acme.test"]);
        let entries = listed(&app, "channel=email").await;
        let reasons: Vec<(&str, &str, &str)> = entries
            .iter()
            .map(|e| {
                (
                    e["address"].as_str().unwrap(),
                    e["reason"].as_str().unwrap(),
                    e["source"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            reasons,
            [
                ("gone@acme.test", "bounce", "sandbox"),
                ("opt@acme.test", "manual", "contact")
            ]
        );
        assert_eq!(
            contact(&app, "ct-gone").await["unsubscribed"],
            json!({"email": true})
        );

        assert_eq!(send_to_audience(&app, "camp-2").await, ["a@acme.test"]);
        let sends: Vec<Value> = events_of_type(&app, "SendsRecorded")
            .await
            .into_iter()
            .filter(|e| e["data"]["campaignId"] == "camp-2")
            .collect();
        let touched: Vec<&Value> = sends
            .iter()
            .flat_map(|e| {
                ["sent", "failed", "bounced"]
                    .into_iter()
                    .flat_map(move |k| e["data"][k].as_array().into_iter().flatten())
            })
            .collect();
        assert_eq!(
            touched,
            [&json!("ct-a")],
            "the suppressed are neither sent nor bounced again"
        );
    }
);
