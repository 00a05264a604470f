//! The campaign lifecycle: draft → scheduled → running → completed, paused, and nothing else.

use reqwest::Method;
use serde_json::{json, Value};

use crate::db_test;
use crate::helpers::*;

fn future_campaign() -> Value {
    let start = chrono::Utc::now() + chrono::Duration::days(30);
    let mut body = seed_campaign();
    body["schedule"]["startAt"] = json!(start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    body["schedule"]["endAt"] = json!(
        (start + chrono::Duration::days(14)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    body
}

async fn act(app: &TestApp, id: &str, action: &str) -> Reply {
    app.admin(
        Method::POST,
        &format!("/crm/marketing/campaigns/{id}/{action}"),
    )
    .send()
    .await
}

fn event_types(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["eventType"].as_str().unwrap().to_string())
        .collect()
}

db_test!(
    api_only a_campaign_walks_the_whole_lifecycle_by_actions,
    |app: TestApp| async move {
        app.make_ready().await;
        let mut body = future_campaign();
        body["status"] = json!("scheduled");
        let created = app.post_campaign(&body).await;
        assert_eq!(created.status, 201, "{}", created.text);
        assert_eq!(created.body["status"], "scheduled");
        assert_eq!(created.body["nextRunAt"], body["schedule"]["startAt"]);
        let id = created.body["id"].as_str().unwrap().to_string();

        let launched = act(&app, &id, "launch").await;
        assert_eq!(launched.status, 200, "{}", launched.text);
        assert_eq!(launched.body["status"], "running");
        assert!(launched.body["launchedAt"].is_string());
        assert!(launched.body["lastRun"]["at"].is_string());
        assert_eq!(act(&app, &id, "pause").await.body["status"], "paused");
        assert_eq!(act(&app, &id, "resume").await.body["status"], "running");
        let done = act(&app, &id, "complete").await;
        assert_eq!(done.body["status"], "completed");
        assert!(done.body["completedAt"].is_string());

        for action in ["launch", "pause", "resume", "complete"] {
            act(&app, &id, action).await.assert_problem(409);
        }
        let mut reopen = created.body.clone();
        reopen["status"] = json!("running");
        app.put_campaign(&id, &reopen).await.assert_problem(409);

        let types = event_types(&app.campaign_events(&id).await);
        assert_eq!(
            types,
            [
                "Created",
                "Scheduled",
                "Launched",
                "Paused",
                "Resumed",
                "Completed"
            ]
        );
    }
);

db_test!(
    api_only status_changes_by_put_follow_the_same_rules,
    |app: TestApp| async move {
        app.make_ready().await;
        let created = app.post_campaign(&future_campaign()).await;
        let id = created.body["id"].as_str().unwrap().to_string();
        let mut body = created.body.clone();

        body["status"] = json!("paused");
        app.put_campaign(&id, &body).await.assert_problem(409);
        body["status"] = json!("completed");
        app.put_campaign(&id, &body).await.assert_problem(409);

        body["status"] = json!("scheduled");
        let scheduled = app.put_campaign(&id, &body).await;
        assert_eq!(scheduled.body["status"], "scheduled", "{}", scheduled.text);
        body["status"] = json!("draft");
        let unscheduled = app.put_campaign(&id, &body).await;
        assert_eq!(unscheduled.body["status"], "draft");
        assert!(unscheduled.body["nextRunAt"].is_null());
        body["status"] = json!("running");
        let running = app.put_campaign(&id, &body).await;
        assert_eq!(running.body["status"], "running");
        let types = event_types(&app.campaign_events(&id).await);
        assert_eq!(types, ["Created", "Scheduled", "Unscheduled", "Launched"]);
    }
);

db_test!(scheduling_needs_a_future_start, |app: TestApp| async move {
    app.make_ready().await;
    let mut past = seed_campaign();
    past["schedule"]["startAt"] = json!("2020-01-01T09:00:00Z");
    past["schedule"]["endAt"] = json!("2020-01-02T09:00:00Z");
    past["status"] = json!("scheduled");
    let reply = app.post_campaign(&past).await;
    reply.assert_problem(422);
    assert_eq!(reply.body["errors"][0]["field"], "schedule.startAt");
    let campaign_events = app
        .all_events()
        .await
        .into_iter()
        .filter(|e| e["streamId"].as_str().unwrap().starts_with("campaign-"))
        .count();
    assert_eq!(campaign_events, 0);
});

db_test!(
    api_only running_without_a_schedule_launches_now,
    |app: TestApp| async move {
        app.make_ready().await;
        let mut body = seed_campaign();
        body.as_object_mut().unwrap().remove("schedule");
        body["status"] = json!("running");
        let reply = app.post_campaign(&body).await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        assert_eq!(reply.body["status"], "running");
        let run = &reply.body["lastRun"];
        assert!(run["runId"].is_string());
        assert_eq!(run["channels"], json!(["email", "facebook", "linkedin"]));
        let id = reply.body["id"].as_str().unwrap();
        assert_eq!(
            event_types(&app.campaign_events(id).await),
            ["Created", "Launched"]
        );
    }
);

db_test!(
    a_recurring_campaign_is_scheduled_for_its_next_occurrence,
    |app: TestApp| async move {
        app.make_ready().await;
        let mut body = future_campaign();
        body["type"] = json!("recurring");
        body["schedule"]["recurring"] = json!({"cron": "0 9 * * 1"});
        body["status"] = json!("scheduled");
        let reply = app.post_campaign(&body).await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        assert_eq!(reply.body["status"], "scheduled");
        let next = chrono::DateTime::parse_from_rfc3339(reply.body["nextRunAt"].as_str().unwrap())
            .unwrap();
        let start =
            chrono::DateTime::parse_from_rfc3339(body["schedule"]["startAt"].as_str().unwrap())
                .unwrap();
        assert!(next >= start);
        use chrono::{Datelike, Timelike};
        let local = next.with_timezone(&chrono_tz::America::New_York);
        assert_eq!(local.weekday(), chrono::Weekday::Mon);
        assert_eq!((local.hour(), local.minute()), (9, 0));
    }
);

db_test!(
    a_deleted_campaign_cannot_be_launched_but_delete_is_idempotent,
    |app: TestApp| async move {
        app.make_ready().await;
        let created = app.post_campaign(&seed_campaign()).await;
        let id = created.body["id"].as_str().unwrap().to_string();
        let path = format!("/crm/marketing/campaigns/{id}");
        assert_eq!(app.admin(Method::DELETE, &path).send().await.status, 204);
        act(&app, &id, "launch").await.assert_problem(409);
        assert_eq!(app.admin(Method::DELETE, &path).send().await.status, 204);
        assert_eq!(
            event_types(&app.campaign_events(&id).await),
            ["Created", "SoftDeleted"]
        );
    }
);

db_test!(
    api_only a_launch_that_no_channel_can_take_is_409_with_its_blockers_and_changes_nothing,
    |app: TestApp| async move {
        // Nothing connected, no template, no audience: the seed's campaign is saved as draft.
        let created = app.post_campaign(&future_campaign()).await;
        assert_eq!(created.status, 201, "{}", created.text);
        let id = created.body["id"].as_str().unwrap().to_string();
        let before = app.campaign_events(&id).await.len();
        let refused = act(&app, &id, "launch").await;
        refused.assert_problem(409);
        let codes: Vec<&str> = refused.body["blockers"]
            .as_array()
            .expect("the problem lists the blockers")
            .iter()
            .map(|b| b["code"].as_str().unwrap())
            .collect();
        assert!(codes.contains(&"channel_not_connected"), "{}", refused.text);
        assert!(
            refused.body["detail"]
                .as_str()
                .unwrap()
                .contains("email is not connected"),
            "{}",
            refused.text
        );
        let after = app.get_campaign(&id).await;
        assert_eq!(after.body["status"], "draft");
        assert_eq!(app.campaign_events(&id).await.len(), before, "nothing written");
    }
);

db_test!(
    api_only a_campaign_whose_end_has_passed_cannot_be_launched_or_scheduled,
    |app: TestApp| async move {
        app.make_ready().await;
        let ended = |status: &str| {
            let mut body = seed_campaign();
            body["schedule"]["startAt"] = json!("2020-01-01T09:00:00Z");
            body["schedule"]["endAt"] = json!("2020-01-15T09:00:00Z");
            body["status"] = json!(status);
            body
        };
        for status in ["running", "scheduled"] {
            let refused = app.post_campaign(&ended(status)).await;
            refused.assert_problem(422);
            let fields: Vec<&str> = refused.body["errors"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["field"].as_str().unwrap())
                .collect();
            assert!(fields.contains(&"schedule.endAt"), "{}", refused.text);
        }
        let draft = app.post_campaign(&ended("draft")).await;
        assert_eq!(draft.status, 201, "{}", draft.text);
        let id = draft.body["id"].as_str().unwrap().to_string();
        act(&app, &id, "launch").await.assert_problem(409);
        assert_eq!(app.get_campaign(&id).await.body["status"], "draft");
    }
);

db_test!(
    api_only a_completed_campaign_has_no_blockers,
    |app: TestApp| async move {
        app.make_ready().await;
        let mut body = seed_campaign();
        body["schedule"] = json!(null);
        body["status"] = json!("running");
        let created = app.post_campaign(&body).await;
        assert_eq!(created.body["status"], "running", "{}", created.text);
        let id = created.body["id"].as_str().unwrap().to_string();
        assert_eq!(act(&app, &id, "complete").await.status, 200);
        // Its connection goes away: a completed campaign still has nothing blocking it.
        let connections = app
            .admin(Method::GET, "/crm/integrations/connections")
            .send()
            .await;
        for connection in connections.body["items"].as_array().unwrap() {
            let path = format!(
                "/crm/integrations/connections/{}",
                connection["id"].as_str().unwrap()
            );
            assert_eq!(app.admin(Method::DELETE, &path).send().await.status, 204);
        }
        let completed = app.get_campaign(&id).await;
        assert_eq!(completed.body["status"], "completed");
        assert_eq!(completed.body["blockers"], json!([]), "{}", completed.text);
    }
);
