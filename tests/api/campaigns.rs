//! Campaign CRUD as a client sees it.

use reqwest::Method;
use serde_json::{json, Value};

use crate::db_test;
use crate::helpers::*;

db_test!(
    the_seed_example_body_is_accepted_as_written,
    |app: TestApp| async move {
        let reply = app.post_campaign(&seed_campaign()).await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        let body = &reply.body;
        let id = body["id"].as_str().unwrap();
        assert!(id.starts_with("camp-"), "{id}");
        assert_eq!(body["name"], "Spring 2026 Launch");
        assert_eq!(body["type"], "multi-channel");
        assert_eq!(body["channels"], json!(["email", "facebook", "linkedin"]));
        assert_eq!(body["audienceId"], "aud-spring-prospects");
        assert_eq!(body["schedule"]["timezone"], "America/New_York");
        assert_eq!(body["schedule"]["startAt"], "2026-05-01T09:00:00Z");
        assert_eq!(body["status"], "draft");
        assert_eq!(body["state"], "active");
        assert_eq!(body["orgId"], "acme");
        assert_eq!(body["version"], 1);
        assert_eq!(body["createdBy"], "alice");
        assert!(body["createdAt"].as_str().unwrap().ends_with('Z'));
        assert_eq!(reply.header("etag"), Some("\"1\""));
        assert_eq!(
            reply.header("location"),
            Some(format!("/crm/marketing/campaigns/{id}").as_str())
        );

        let fetched = app.get_campaign(id).await;
        assert_eq!(fetched.status, 200);
        assert_eq!(
            fetched.body, reply.body,
            "read-your-writes: GET equals the POST answer"
        );
        assert_eq!(fetched.header("etag"), Some("\"1\""));
    }
);

db_test!(
    every_api_route_answers_under_the_api_prefix_too,
    |app: TestApp| async move {
        let created = app
            .admin(Method::POST, "/api/crm/marketing/campaigns")
            .json(&seed_campaign())
            .send()
            .await;
        assert_eq!(created.status, 201, "{}", created.text);
        let id = created.body["id"].as_str().unwrap().to_string();
        let c = format!("/crm/marketing/campaigns/{id}");
        let bad = Some(json!({"unexpected": true}));
        // Every route of the API router (src/http/*.rs `router()`), asked something that changes
        // nothing: a read, an unknown id, or a body that fails validation.
        let calls: Vec<(Method, String, Option<Value>)> = vec![
            (Method::GET, "/crm/marketing/campaigns".into(), None),
            (Method::POST, "/crm/marketing/campaigns".into(), bad.clone()),
            (Method::GET, c.clone(), None),
            (
                Method::PUT,
                "/crm/marketing/campaigns/nope".into(),
                Some(seed_campaign()),
            ),
            (Method::DELETE, "/crm/marketing/campaigns/nope".into(), None),
            (
                Method::POST,
                "/crm/marketing/campaigns/nope/launch".into(),
                None,
            ),
            (
                Method::POST,
                "/crm/marketing/campaigns/nope/pause".into(),
                None,
            ),
            (
                Method::POST,
                "/crm/marketing/campaigns/nope/resume".into(),
                None,
            ),
            (
                Method::POST,
                "/crm/marketing/campaigns/nope/complete".into(),
                None,
            ),
            (Method::GET, format!("{c}/events"), None),
            (Method::GET, format!("{c}/analytics"), None),
            (
                Method::POST,
                format!("{c}/engagements"),
                Some(json!([{"type": "nonsense"}])),
            ),
            (
                Method::POST,
                "/crm/marketing/campaigns/aggregated-metrics".into(),
                Some(json!({"campaignIds": [id]})),
            ),
            (Method::GET, "/crm/marketing/dashboard".into(), None),
            (Method::GET, "/crm/marketing/events".into(), None),
            (Method::GET, "/crm/marketing/platforms".into(), None),
            (Method::GET, "/crm/marketing/campaign-types".into(), None),
            (Method::GET, "/crm/marketing/social-profiles".into(), None),
            (
                Method::GET,
                "/crm/marketing/social-profiles/facebook".into(),
                None,
            ),
            (Method::GET, "/crm/marketing/health".into(), None),
            (Method::GET, "/crm/contacts".into(), None),
            (Method::POST, "/crm/contacts".into(), bad.clone()),
            (
                Method::POST,
                "/crm/contacts/import".into(),
                Some(json!({"not": "a list"})),
            ),
            (Method::GET, "/crm/contacts/nope".into(), None),
            (Method::PUT, "/crm/contacts/nope".into(), bad.clone()),
            (Method::DELETE, "/crm/contacts/nope".into(), None),
            (Method::GET, "/crm/contacts/nope/activities".into(), None),
            (Method::GET, "/crm/audiences".into(), None),
            (Method::POST, "/crm/audiences".into(), bad.clone()),
            (Method::POST, "/crm/audiences/preview".into(), bad.clone()),
            (Method::GET, "/crm/audiences/nope".into(), None),
            (Method::PUT, "/crm/audiences/nope".into(), bad.clone()),
            (Method::DELETE, "/crm/audiences/nope".into(), None),
            (Method::GET, "/crm/audiences/nope/reach".into(), None),
            (Method::GET, "/crm/marketing/templates".into(), None),
            (Method::POST, "/crm/marketing/templates".into(), bad.clone()),
            (Method::GET, "/crm/marketing/templates/nope".into(), None),
            (
                Method::PUT,
                "/crm/marketing/templates/nope".into(),
                bad.clone(),
            ),
            (Method::DELETE, "/crm/marketing/templates/nope".into(), None),
            (
                Method::POST,
                "/crm/marketing/templates/nope/render".into(),
                bad.clone(),
            ),
            (Method::GET, "/crm/integrations/connections".into(), None),
            (
                Method::POST,
                "/crm/integrations/connections".into(),
                bad.clone(),
            ),
            (
                Method::GET,
                "/crm/integrations/connections/nope".into(),
                None,
            ),
            (
                Method::DELETE,
                "/crm/integrations/connections/nope".into(),
                None,
            ),
            (
                Method::GET,
                "/crm/integrations/sandbox/messages".into(),
                None,
            ),
            (Method::POST, "/crm/marketing/purge".into(), bad.clone()),
            (Method::GET, "/crm/marketing/purge/nope".into(), None),
            (Method::GET, "/connect/s/nope".into(), None),
            (
                Method::POST,
                "/connect/webhooks/sendgrid/nope".into(),
                Some(json!([])),
            ),
            (
                Method::GET,
                "/connect/automation/nope/1/email/open".into(),
                None,
            ),
            (
                Method::GET,
                "/connect/automation/nope/1/link/click".into(),
                None,
            ),
            (
                Method::GET,
                "/connect/automation/nope/1/unsubscribe".into(),
                None,
            ),
            (
                Method::POST,
                "/connect/automation/nope/1/unsubscribe".into(),
                None,
            ),
        ];
        for (method, path, body) in calls {
            let mut answers = Vec::new();
            for prefix in ["", "/api"] {
                let mut call = app.admin(method.clone(), &format!("{prefix}{path}"));
                if let Some(b) = &body {
                    call = call.json(b);
                }
                let reply = call.send().await;
                assert_ne!(reply.status, 405, "{method} {prefix}{path}: {}", reply.text);
                assert_ne!(
                    reply.body["detail"], "no such route",
                    "{method} {prefix}{path} is not routed"
                );
                answers.push(reply.status);
            }
            assert_eq!(
                answers[0], answers[1],
                "{method} {path} answers differently under /api"
            );
        }
        assert_eq!(
            app.campaign_events(&id).await.len(),
            1,
            "nothing above changed the campaign"
        );
    }
);

db_test!(
    a_client_chosen_id_is_kept_and_a_duplicate_is_a_conflict,
    |app: TestApp| async move {
        let mut body = seed_campaign();
        body["id"] = json!("spring-launch");
        let first = app.post_campaign(&body).await;
        assert_eq!(first.status, 201);
        assert_eq!(first.body["id"], "spring-launch");
        let second = app.post_campaign(&body).await;
        second.assert_problem(409);
        assert_eq!(app.campaign_events("spring-launch").await.len(), 1);

        // The same id in another org is another campaign.
        let beta = token(&["beta"], &["marketer"], "bob");
        let other = app
            .as_user(&beta, "beta", Method::POST, "/crm/marketing/campaigns")
            .json(&body)
            .send()
            .await;
        assert_eq!(other.status, 201, "{}", other.text);
    }
);

db_test!(
    put_replaces_the_editable_fields_and_bumps_the_version,
    |app: TestApp| async move {
        let created = app.post_campaign(&seed_campaign()).await;
        let id = created.body["id"].as_str().unwrap().to_string();
        let mut edited = created.body.clone();
        edited["name"] = json!("Spring 2026 Relaunch");
        edited.as_object_mut().unwrap().remove("templateId");
        edited["version"] = json!(99);
        edited["createdBy"] = json!("mallory");
        let reply = app
            .admin(Method::PUT, &format!("/crm/marketing/campaigns/{id}"))
            .header("if-match", "\"1\"")
            .json(&edited)
            .send()
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(reply.body["name"], "Spring 2026 Relaunch");
        assert!(
            reply.body.get("templateId").is_none_or(|v| v.is_null()),
            "PUT clears omitted fields"
        );
        assert_eq!(reply.body["version"], 2);
        assert_eq!(reply.body["createdBy"], "alice");
        assert_eq!(reply.header("etag"), Some("\"2\""));

        // A stale If-Match is 412 and changes nothing.
        edited["name"] = json!("Lost update");
        let stale = app
            .admin(Method::PUT, &format!("/crm/marketing/campaigns/{id}"))
            .header("if-match", "\"1\"")
            .json(&edited)
            .send()
            .await;
        stale.assert_problem(412);
        let now = app.get_campaign(&id).await;
        assert_eq!(now.body["name"], "Spring 2026 Relaunch");
        assert_eq!(app.campaign_events(&id).await.len(), 2);
    }
);

db_test!(
    deleting_is_soft_and_the_record_stays_readable,
    |app: TestApp| async move {
        let created = app.post_campaign(&seed_campaign()).await;
        let id = created.body["id"].as_str().unwrap().to_string();
        let deleted = app
            .admin(Method::DELETE, &format!("/crm/marketing/campaigns/{id}"))
            .send()
            .await;
        assert_eq!(deleted.status, 204);
        let fetched = app.get_campaign(&id).await;
        assert_eq!(fetched.status, 200);
        assert_eq!(fetched.body["state"], "deleted");
        assert!(fetched.body["deletedAt"].is_string());

        let put = app.put_campaign(&id, &seed_campaign()).await;
        put.assert_problem(409);

        let listed = app
            .admin(Method::GET, "/crm/marketing/campaigns")
            .send()
            .await;
        assert_eq!(listed.body["items"].as_array().unwrap().len(), 0);
        let with_deleted = app
            .admin(Method::GET, "/crm/marketing/campaigns?includeDeleted=true")
            .send()
            .await;
        assert_eq!(with_deleted.body["items"].as_array().unwrap().len(), 1);

        let types: Vec<String> = app
            .campaign_events(&id)
            .await
            .iter()
            .map(|e| e["eventType"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(types, ["Created", "SoftDeleted"]);
    }
);

db_test!(
    listing_filters_sorts_and_pages_with_a_cursor,
    |app: TestApp| async move {
        let names = ["Delta", "alpha", "Charlie", "bravo", "Echo"];
        for (i, name) in names.iter().enumerate() {
            let mut body = seed_campaign();
            body["name"] = json!(name);
            if i % 2 == 0 {
                body["channels"] = json!(["sms"]);
                body["type"] = json!("one-shot");
            }
            assert_eq!(app.post_campaign(&body).await.status, 201);
        }
        let by_name = app
            .admin(Method::GET, "/crm/marketing/campaigns?sort=name&limit=2")
            .send()
            .await;
        let page: Vec<&str> = by_name.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(page, ["alpha", "bravo"]);
        let mut seen: Vec<String> = page.iter().map(|s| s.to_string()).collect();
        let mut cursor = by_name.body["nextCursor"].as_str().map(str::to_string);
        while let Some(c) = cursor {
            let next = app
                .admin(
                    Method::GET,
                    &format!("/crm/marketing/campaigns?sort=name&limit=2&cursor={c}"),
                )
                .send()
                .await;
            assert_eq!(next.status, 200, "{}", next.text);
            for item in next.body["items"].as_array().unwrap() {
                seen.push(item["name"].as_str().unwrap().to_string());
            }
            cursor = next.body["nextCursor"].as_str().map(str::to_string);
        }
        assert_eq!(seen, ["alpha", "bravo", "Charlie", "Delta", "Echo"]);

        let sms = app
            .admin(
                Method::GET,
                "/crm/marketing/campaigns?channel=sms&type=one-shot",
            )
            .send()
            .await;
        assert_eq!(sms.body["items"].as_array().unwrap().len(), 3);
        let q = app
            .admin(Method::GET, "/crm/marketing/campaigns?q=HARL")
            .send()
            .await;
        assert_eq!(q.body["items"][0]["name"], "Charlie");
        assert_eq!(q.body["items"].as_array().unwrap().len(), 1);
        let drafts = app
            .admin(
                Method::GET,
                "/crm/marketing/campaigns?status=draft&sort=-name",
            )
            .send()
            .await;
        assert_eq!(drafts.body["items"][0]["name"], "Echo");
        assert!(drafts.body["nextCursor"].is_null());
    }
);

db_test!(
    an_idempotency_key_replays_the_first_answer_and_writes_nothing,
    |app: TestApp| async move {
        let send = |body: serde_json::Value| {
            app.admin(Method::POST, "/crm/marketing/campaigns")
                .header("idempotency-key", "create-spring-1")
                .json(&body)
                .send()
        };
        let first = send(seed_campaign()).await;
        assert_eq!(first.status, 201);
        let again = send(seed_campaign()).await;
        assert_eq!(again.status, 201);
        assert_eq!(again.body, first.body);
        let listed = app
            .admin(Method::GET, "/crm/marketing/campaigns")
            .send()
            .await;
        assert_eq!(listed.body["items"].as_array().unwrap().len(), 1);

        let mut different = seed_campaign();
        different["name"] = json!("Another");
        let reused = send(different).await;
        reused.assert_problem(422);
        let listed = app
            .admin(Method::GET, "/crm/marketing/campaigns")
            .send()
            .await;
        assert_eq!(listed.body["items"].as_array().unwrap().len(), 1);
    }
);
