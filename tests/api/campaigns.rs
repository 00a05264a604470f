//! Campaign CRUD as a client sees it.

use reqwest::Method;
use serde_json::json;

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
    every_route_answers_under_the_api_prefix_too,
    |app: TestApp| async move {
        let created = app
            .admin(Method::POST, "/api/crm/marketing/campaigns")
            .json(&seed_campaign())
            .send()
            .await;
        assert_eq!(created.status, 201, "{}", created.text);
        let id = created.body["id"].as_str().unwrap();
        let fetched = app
            .admin(Method::GET, &format!("/api/crm/marketing/campaigns/{id}"))
            .send()
            .await;
        assert_eq!(fetched.status, 200);
        let events = app
            .admin(
                Method::GET,
                &format!("/api/crm/marketing/campaigns/{id}/events"),
            )
            .send()
            .await;
        assert_eq!(events.status, 200);
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
