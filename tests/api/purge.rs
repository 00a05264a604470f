//! The org purge job (`api.md` section 8): soft-deleted campaigns are removed for good, with a
//! `Purged` tombstone left in the org's audit stream.

use reqwest::Method;
use serde_json::{json, Value};

use crate::db_test;
use crate::helpers::{token, TestApp};

pub async fn wait_done(app: &TestApp, job: &str) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let reply = app
            .admin(Method::GET, &format!("/crm/marketing/purge/{job}"))
            .send()
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        if reply.body["status"] == "completed" || reply.body["status"] == "failed" {
            return reply.body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "purge did not finish: {}",
            reply.text
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

db_test!(api_only purge_removes_deleted_campaigns_and_leaves_a_tombstone, |app: TestApp| async move {
    for id in ["camp-gone", "camp-kept"] {
        let reply = app
            .post_campaign(&json!({"id": id, "name": id, "type": "one-shot", "channels": ["email"]}))
            .await;
        assert_eq!(reply.status, 201, "{}", reply.text);
    }
    let reply = app
        .admin(Method::DELETE, "/crm/marketing/campaigns/camp-gone")
        .send()
        .await;
    assert!(reply.status.is_success(), "{}", reply.text);

    let marketer = token(&["acme"], &["marketer"], "mia");
    app.as_user(&marketer, "acme", Method::POST, "/crm/marketing/purge")
        .send()
        .await
        .assert_problem(403);

    let reply = app.admin(Method::POST, "/crm/marketing/purge").send().await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    let job = reply.body["jobId"].as_str().unwrap().to_string();
    assert_eq!(
        reply.header("location"),
        Some(format!("/crm/marketing/purge/{job}").as_str())
    );
    let done = wait_done(&app, &job).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["campaignIds"], json!(["camp-gone"]));
    assert_eq!(done["requestedBy"], "alice");

    app.get_campaign("camp-gone").await.assert_problem(404);
    assert_eq!(app.get_campaign("camp-kept").await.status, 200);
    let log = app.all_events().await;
    assert!(
        log.iter().all(|e| !e["streamId"].as_str().unwrap().ends_with(":camp-gone")),
        "the purged stream is gone"
    );
    let tombstone: Vec<&Value> = log.iter().filter(|e| e["eventType"] == "Purged").collect();
    assert_eq!(tombstone.len(), 1);
    assert_eq!(tombstone[0]["streamId"], "audit-acme");
    assert_eq!(tombstone[0]["data"]["campaignIds"], json!(["camp-gone"]));
    assert_eq!(tombstone[0]["metadata"]["actor"], "alice");

    // A second purge finds nothing more to remove; jobs are private to their org.
    let reply = app.admin(Method::POST, "/crm/marketing/purge").send().await;
    let again = wait_done(&app, reply.body["jobId"].as_str().unwrap()).await;
    assert_eq!(again["campaignIds"], json!([]));
    let other = token(&["globex"], &["admin"], "gus");
    app.as_user(&other, "globex", Method::GET, &format!("/crm/marketing/purge/{job}"))
        .send()
        .await
        .assert_problem(404);
    app.admin(Method::GET, "/crm/marketing/purge/purge-nope")
        .send()
        .await
        .assert_problem(404);
});

db_test!(
    purge_takes_a_campaigns_numbers_out_of_cached_analytics,
    |app: TestApp| async move {
        for id in ["camp-gone", "camp-kept"] {
            let reply = app
                .post_campaign(
                    &json!({"id": id, "name": id, "type": "one-shot", "channels": ["email"]}),
                )
                .await;
            assert_eq!(reply.status, 201, "{}", reply.text);
            let reply = app
            .admin(Method::POST, &format!("/crm/marketing/campaigns/{id}/engagements"))
            .json(&json!([
                {"type": "conversion", "channel": "email", "contactId": "ct-1", "value": 10, "currency": "USD",
                    "occurredAt": "2026-04-15T12:00:00Z"}
            ]))
            .send()
            .await;
            assert_eq!(reply.status, 200, "{}", reply.text);
        }
        let aggregate = || async {
            app.admin(Method::POST, "/crm/marketing/campaigns/aggregated-metrics")
                .json(&json!({"campaignIds": ["camp-gone", "camp-kept"],
                "range": {"start": "2026-04-01", "end": "2026-04-30"}}))
                .send()
                .await
        };
        let counted = crate::helpers::eventually(std::time::Duration::from_secs(30), || async {
            aggregate().await.body["totals"]["conversions"] == 2
        })
        .await;
        assert!(counted, "{}", aggregate().await.text);
        // Read again: the answer now comes from the process's cache of sums.
        assert_eq!(aggregate().await.body["totals"]["conversions"], 2);

        let reply = app
            .admin(Method::DELETE, "/crm/marketing/campaigns/camp-gone")
            .send()
            .await;
        assert!(reply.status.is_success(), "{}", reply.text);
        // Deleted campaigns still count until they are purged.
        assert_eq!(aggregate().await.body["totals"]["conversions"], 2);
        let reply = app.admin(Method::POST, "/crm/marketing/purge").send().await;
        let done = wait_done(&app, reply.body["jobId"].as_str().unwrap()).await;
        assert_eq!(done["campaignIds"], json!(["camp-gone"]), "{done}");

        let after = aggregate().await;
        assert_eq!(after.status, 200, "{}", after.text);
        assert_eq!(after.body["totals"]["conversions"], 1, "{}", after.text);
        assert_eq!(after.body["missing"], json!(["camp-gone"]));
    }
);

db_test!(
    purging_an_id_with_an_underscore_leaves_the_campaign_it_looks_like_alone,
    |app: TestApp| async move {
        app.make_ready().await;
        for id in ["spring_1", "spring-1"] {
            let mut body = crate::helpers::seed_campaign();
            body["id"] = json!(id);
            body["schedule"] = json!(null);
            body["status"] = json!("running");
            let reply = app.post_campaign(&body).await;
            assert_eq!(reply.status, 201, "{}", reply.text);
        }
        let launched = crate::helpers::eventually(std::time::Duration::from_secs(30), || async {
            app.get_campaign("spring_1").await.body["status"] == "completed"
                && app.get_campaign("spring-1").await.body["status"] == "completed"
        })
        .await;
        assert!(launched, "both campaigns sent their runs");
        let streams_of = |events: &[Value], id: &str| -> Vec<String> {
            events
                .iter()
                .filter_map(|e| e["streamId"].as_str())
                .filter(|s| s.contains(&format!(":{id}")))
                .map(str::to_string)
                .collect()
        };
        let before = streams_of(&app.all_events().await, "spring-1");
        assert!(
            before.iter().any(|s| s.starts_with("run-acme:spring-1:")),
            "{before:?}"
        );
        let reply = app
            .admin(Method::DELETE, "/crm/marketing/campaigns/spring_1")
            .send()
            .await;
        assert!(reply.status.is_success(), "{}", reply.text);
        let reply = app.admin(Method::POST, "/crm/marketing/purge").send().await;
        let job = reply.body["jobId"].as_str().unwrap().to_string();
        let done = wait_done(&app, &job).await;
        assert_eq!(done["campaignIds"], json!(["spring_1"]), "{done}");
        let after = app.all_events().await;
        assert_eq!(
            streams_of(&after, "spring-1"),
            before,
            "spring-1 keeps every event"
        );
        assert!(
            streams_of(&after, "spring_1").is_empty(),
            "spring_1 is gone"
        );
    }
);
