//! The audit trail: EventStoreDB-style records, per stream and in global order.

use reqwest::Method;
use serde_json::json;

use crate::db_test;
use crate::helpers::*;

db_test!(
    every_event_carries_ids_positions_and_who_caused_it,
    |app: TestApp| async move {
        let created = app
            .admin(Method::POST, "/crm/marketing/campaigns")
            .header("x-request-id", "req-123")
            .header("x-correlation-id", "corr-9")
            .json(&seed_campaign())
            .send()
            .await;
        let id = created.body["id"].as_str().unwrap().to_string();
        app.admin(Method::DELETE, &format!("/crm/marketing/campaigns/{id}"))
            .send()
            .await;
        let events = app.campaign_events(&id).await;
        assert_eq!(events.len(), 2);
        let first = &events[0];
        assert_eq!(first["streamId"], format!("campaign-acme:{id}"));
        assert_eq!(first["revision"], 0);
        assert_eq!(events[1]["revision"], 1);
        assert_eq!(first["eventType"], "Created");
        assert!(first["eventVersion"].is_string());
        assert_eq!(first["eventId"].as_str().unwrap().len(), 36);
        assert!(first["created"].as_str().unwrap().ends_with('Z'));
        assert!(events[1]["position"].as_i64() > first["position"].as_i64());
        assert_eq!(first["metadata"]["actor"], "alice");
        assert_eq!(first["metadata"]["orgId"], "acme");
        assert_eq!(first["metadata"]["requestId"], "req-123");
        assert_eq!(first["metadata"]["correlationId"], "corr-9");
        assert_eq!(first["data"]["spec"]["name"], "Spring 2026 Launch");
    }
);

db_test!(
    the_org_log_is_in_global_order_pages_and_streams_as_ndjson,
    |app: TestApp| async move {
        for i in 0..7 {
            let mut body = seed_campaign();
            body["name"] = json!(format!("Campaign {i}"));
            app.post_campaign(&body).await;
        }
        let all = app.all_events().await;
        assert_eq!(all.len(), 7);
        let positions: Vec<i64> = all
            .iter()
            .map(|e| e["position"].as_i64().unwrap())
            .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]));

        let page = app
            .admin(Method::GET, "/crm/marketing/events?limit=3")
            .send()
            .await;
        assert_eq!(page.body["items"].as_array().unwrap().len(), 3);
        let cursor = page.body["nextCursor"].as_str().unwrap().to_string();
        let rest = app
            .admin(
                Method::GET,
                &format!("/crm/marketing/events?cursor={cursor}&limit=10"),
            )
            .send()
            .await;
        assert_eq!(rest.body["items"].as_array().unwrap().len(), 4);
        assert!(rest.body["nextCursor"].is_null());

        let typed = app
            .admin(Method::GET, "/crm/marketing/events?type=SoftDeleted")
            .send()
            .await;
        assert_eq!(typed.body["items"], json!([]));

        let ndjson = app
            .admin(
                Method::GET,
                &format!("/crm/marketing/events?after={}", positions[1]),
            )
            .header("accept", "application/x-ndjson")
            .send()
            .await;
        assert_eq!(ndjson.header("content-type"), Some("application/x-ndjson"));
        let lines: Vec<serde_json::Value> = ndjson
            .text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 5);
        assert_eq!(lines[0]["position"].as_i64(), Some(positions[2]));
    }
);

db_test!(
    only_admins_read_connection_events,
    |app: TestApp| async move {
        let created = app
            .admin(Method::POST, "/crm/integrations/connections")
            .json(&json!({"id": "conn-sg", "platform": "email", "vendor": "sendgrid",
                "credentials": {"apiKey": "SG.secret-key-value"},
                "settings": {"fromEmail": "news@acme.test", "baseUrl": "https://sendgrid.example"}}))
            .send()
            .await;
        assert_eq!(created.status, 201, "{}", created.text);
        app.post_campaign(&seed_campaign()).await;

        let admin = app
            .admin(Method::GET, "/crm/marketing/events?type=ConnectionCreated")
            .send()
            .await;
        let items = admin.body["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "{}", admin.text);
        assert!(!admin.text.contains("secret-key-value"));

        for role in ["marketer", "analyst", "auditor"] {
            let token = token(&["acme"], &[role], "mallory");
            for path in [
                "/crm/marketing/events?type=ConnectionCreated",
                "/crm/marketing/events",
            ] {
                let reply = app.as_user(&token, "acme", Method::GET, path).send().await;
                assert_eq!(reply.status, 200, "{}", reply.text);
                assert!(
                    !reply.text.contains("sendgrid.example"),
                    "{role}: {}",
                    reply.text
                );
                assert!(
                    !reply.text.contains("ConnectionCreated"),
                    "{role}: {}",
                    reply.text
                );
            }
            // The campaign's event is still there for them.
            let all = app
                .as_user(&token, "acme", Method::GET, "/crm/marketing/events")
                .send()
                .await;
            assert_eq!(
                all.body["items"].as_array().unwrap().len(),
                1,
                "{}",
                all.text
            );
            let ndjson = app
                .as_user(&token, "acme", Method::GET, "/crm/marketing/events")
                .header("accept", "application/x-ndjson")
                .send()
                .await;
            assert_eq!(ndjson.text.lines().count(), 1, "{}", ndjson.text);
            assert!(!ndjson.text.contains("ConnectionCreated"));
        }
    }
);
