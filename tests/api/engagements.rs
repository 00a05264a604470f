//! `POST /crm/marketing/campaigns/:id/engagements`: validated all-or-nothing, exact money,
//! idempotent by `externalId`, writers of the campaign's org only.

use reqwest::Method;
use serde_json::{json, Value};

use crate::db_test;
use crate::helpers::*;

/// Creates a draft campaign in org acme and returns its id.
async fn campaign(app: &TestApp) -> String {
    let created = app.post_campaign(&seed_campaign()).await;
    assert_eq!(created.status, 201, "{}", created.text);
    created.body["id"].as_str().unwrap().to_string()
}

fn path(id: &str) -> String {
    format!("/crm/marketing/campaigns/{id}/engagements")
}

db_test!(
    api_only conversions_are_recorded_exactly_and_a_replayed_external_id_is_a_duplicate,
    |app: TestApp| async move {
        let id = campaign(&app).await;
        let body = json!([
            {"type": "conversion", "channel": "email", "contactId": "ct-1", "value": 19.99,
             "currency": "usd", "externalId": "order-1", "occurredAt": "2026-05-01T10:00:00Z"},
            {"type": "revenue", "channel": "email", "contactId": "ct-1", "value": "5.01", "currency": "EUR"},
            {"type": "impression", "channel": "facebook", "value": 1200},
            {"type": "conversion", "channel": "sms", "externalId": "order-2"},
            {"type": "conversion", "channel": "sms", "externalId": "order-2"}
        ]);
        let reply = app
            .admin(Method::POST, &path(&id))
            .header("x-request-id", "req-eng-1")
            .header("x-correlation-id", "corr-eng")
            .json(&body)
            .send()
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(reply.body["recorded"], 4, "{}", reply.text);
        assert_eq!(reply.body["duplicates"], 1);
        let items = reply.body["items"].as_array().unwrap();
        assert_eq!(items.len(), 5);
        for (i, item) in items.iter().enumerate() {
            assert_eq!(item["index"], i);
        }
        // The same externalId twice in one request: one of them is recorded, the other is a
        // duplicate without a position.
        let twins = [&items[3], &items[4]];
        let mut statuses: Vec<&str> = twins.iter().map(|i| i["status"].as_str().unwrap()).collect();
        statuses.sort();
        assert_eq!(statuses, ["duplicate", "recorded"]);
        let duplicate = twins.iter().find(|i| i["status"] == "duplicate").unwrap();
        assert!(duplicate.get("position").is_none());
        let recorded: Vec<&Value> = items.iter().filter(|i| i["status"] == "recorded").collect();

        let events = engagements(&app).await;
        assert_eq!(events.len(), 4);
        // Items may commit in different batches: compare positions as sets.
        let mut positions: Vec<i64> = recorded
            .iter()
            .map(|i| i["position"].as_i64().unwrap())
            .collect();
        positions.sort();
        let stored: Vec<i64> = events
            .iter()
            .map(|e| e["position"].as_i64().unwrap())
            .collect();
        assert_eq!(positions, stored);
        let of_type = |kind: &str| {
            events
                .iter()
                .find(|e| e["data"]["type"] == kind && e["data"]["externalId"] != "order-2")
                .unwrap_or_else(|| panic!("no {kind} in {events:?}"))
        };
        let first = of_type("conversion");
        assert_eq!(first["data"]["campaignId"], id.as_str());
        assert_eq!(first["data"]["value"], "19.99");
        assert_eq!(first["data"]["currency"], "USD");
        assert_eq!(first["data"]["externalId"], "order-1");
        assert_eq!(first["data"]["occurredAt"], "2026-05-01T10:00:00Z");
        assert_eq!(first["data"]["source"], "api");
        assert_eq!(first["metadata"]["actor"], "alice");
        assert_eq!(first["metadata"]["orgId"], "acme");
        assert_eq!(first["metadata"]["requestId"], "req-eng-1");
        assert_eq!(first["metadata"]["correlationId"], "corr-eng");
        assert_eq!(of_type("revenue")["data"]["value"], "5.01");
        assert_eq!(of_type("impression")["data"]["count"], 1200);

        // The client retries: nothing new.
        let replay = app
            .admin(Method::POST, &format!("/api{}", path(&id)))
            .json(&json!([body[0].clone(), body[3].clone()]))
            .send()
            .await;
        assert_eq!(replay.status, 200, "{}", replay.text);
        assert_eq!(replay.body["recorded"], 0);
        assert_eq!(replay.body["duplicates"], 2);
        assert_eq!(replay.body["items"][0]["status"], "duplicate");
        assert_eq!(engagements(&app).await.len(), 4);
    }
);

db_test!(
    api_only invalid_engagements_are_refused_by_field_and_nothing_is_recorded,
    |app: TestApp| async move {
        let id = campaign(&app).await;
        let good = json!({"type": "conversion", "channel": "email", "value": 10, "currency": "USD"});
        let cases: [(Value, &[&str]); 5] = [
            (
                json!([good.clone(), {"type": "conversion", "channel": "email", "value": -5, "currency": "USD"}]),
                &["[1].value"],
            ),
            (
                json!([{"type": "conversion", "channel": "email", "value": 1, "currency": "XYZ"}]),
                &["[0].currency"],
            ),
            (
                json!([{"type": 5, "channel": true, "contactId": 7, "occurredAt": 1}]),
                &["[0].type", "[0].channel", "[0].contactId", "[0].occurredAt"],
            ),
            (json!({"type": "conversion", "channel": "email"}), &[""]),
            (json!([good.clone(), "conversion"]), &["[1]"]),
        ];
        for (body, fields) in cases {
            let reply = app.admin(Method::POST, &path(&id)).json(&body).send().await;
            reply.assert_problem(422);
            let got: Vec<&str> = reply.body["errors"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["field"].as_str().unwrap())
                .collect();
            assert_eq!(got, fields, "{body}");
        }
        // What JavaScript makes of 0.1 + 0.2 is refused, not rounded.
        let float = app
            .admin(Method::POST, &path(&id))
            .raw(
                Some("application/json"),
                r#"[{"type": "revenue", "channel": "email", "value": 0.30000000000000004, "currency": "USD"}]"#,
            )
            .send()
            .await;
        float.assert_problem(422);
        assert_eq!(float.body["errors"][0]["field"], "[0].value");

        let csv = app
            .admin(Method::POST, &path(&id))
            .raw(Some("text/csv"), "type,channel\nconversion,email\n")
            .send()
            .await;
        csv.assert_problem(415);
        let broken = app
            .admin(Method::POST, &path(&id))
            .raw(Some("application/json"), "[{\"type\": ")
            .send()
            .await;
        broken.assert_problem(400);
        assert_eq!(engagements(&app).await.len(), 0);
    }
);

db_test!(
    api_only only_writers_of_the_campaigns_org_may_report_engagements,
    |app: TestApp| async move {
        let id = campaign(&app).await;
        let body = json!([{"type": "reply", "channel": "email", "contactId": "ct-1"}]);
        let marketer = token(&["acme"], &["marketer"], "mia");
        let reply = app
            .as_user(&marketer, "acme", Method::POST, &path(&id))
            .json(&body)
            .send()
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(reply.body["recorded"], 1);
        assert_eq!(engagements(&app).await[0]["metadata"]["actor"], "mia");

        let analyst = token(&["acme"], &["analyst"], "ann");
        app.as_user(&analyst, "acme", Method::POST, &path(&id))
            .json(&body)
            .send()
            .await
            .assert_problem(403);
        app.anonymous(Method::POST, &path(&id))
            .json(&body)
            .send()
            .await
            .assert_problem(401);

        let globex = token(&["globex"], &["admin"], "gus");
        let theirs = app
            .as_user(&globex, "globex", Method::POST, "/crm/marketing/campaigns")
            .json(&seed_campaign())
            .send()
            .await;
        assert_eq!(theirs.status, 201, "{}", theirs.text);
        let theirs = theirs.body["id"].as_str().unwrap().to_string();
        app.admin(Method::POST, &path(&theirs))
            .json(&body)
            .send()
            .await
            .assert_problem(404);
        app.admin(Method::POST, &path("camp-unknown"))
            .json(&body)
            .send()
            .await
            .assert_problem(404);
        assert_eq!(engagements(&app).await.len(), 1);

        // Deleted campaigns still count.
        let deleted = app
            .admin(Method::DELETE, &format!("/crm/marketing/campaigns/{id}"))
            .send()
            .await;
        assert_eq!(deleted.status, 204);
        let late = app.admin(Method::POST, &path(&id)).json(&body).send().await;
        assert_eq!(late.status, 200, "{}", late.text);
        assert_eq!(engagements(&app).await.len(), 2);
    }
);
