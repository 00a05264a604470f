//! Racing writers on one campaign: each write lands on the newest state or is refused.

use reqwest::Method;
use serde_json::json;

use crate::db_test;
use crate::helpers::*;

db_test!(
    racing_puts_with_the_same_if_match_have_exactly_one_winner,
    |app: TestApp| async move {
        let created = app.post_campaign(&seed_campaign()).await;
        let id = created.body["id"].as_str().unwrap().to_string();
        let app = std::sync::Arc::new(app);
        let mut tasks = Vec::new();
        for i in 0..16 {
            let app = app.clone();
            let id = id.clone();
            tasks.push(tokio::spawn(async move {
                let mut body = seed_campaign();
                body["name"] = json!(format!("Writer {i}"));
                app.admin(Method::PUT, &format!("/crm/marketing/campaigns/{id}"))
                    .header("if-match", "\"1\"")
                    .json(&body)
                    .send()
                    .await
                    .status
                    .as_u16()
            }));
        }
        let mut statuses = Vec::new();
        for t in tasks {
            statuses.push(t.await.unwrap());
        }
        assert_eq!(
            statuses.iter().filter(|s| **s == 200).count(),
            1,
            "{statuses:?}"
        );
        assert!(
            statuses.iter().all(|s| *s == 200 || *s == 412),
            "{statuses:?}"
        );
        let events = app.campaign_events(&id).await;
        assert_eq!(events.len(), 2);
        assert_eq!(app.get_campaign(&id).await.body["version"], 2);
    }
);

db_test!(
    racing_puts_without_if_match_are_all_applied_in_turn,
    |app: TestApp| async move {
        let created = app.post_campaign(&seed_campaign()).await;
        let id = created.body["id"].as_str().unwrap().to_string();
        let app = std::sync::Arc::new(app);
        let mut tasks = Vec::new();
        for i in 0..12 {
            let app = app.clone();
            let id = id.clone();
            tasks.push(tokio::spawn(async move {
                let mut body = seed_campaign();
                body["name"] = json!(format!("Writer {i}"));
                app.put_campaign(&id, &body).await.status.as_u16()
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), 200);
        }
        let events = app.campaign_events(&id).await;
        assert_eq!(
            events.len(),
            13,
            "every write is one event on the newest state"
        );
        let revisions: Vec<i64> = events
            .iter()
            .map(|e| e["revision"].as_i64().unwrap())
            .collect();
        assert_eq!(revisions, (0..13).collect::<Vec<_>>());
        let fetched = app.get_campaign(&id).await;
        assert_eq!(fetched.body["version"], 13);
        assert_eq!(fetched.body["name"], events[12]["data"]["spec"]["name"]);
    }
);

db_test!(
    racing_creates_with_one_id_make_one_campaign,
    |app: TestApp| async move {
        let app = std::sync::Arc::new(app);
        let mut tasks = Vec::new();
        for _ in 0..10 {
            let app = app.clone();
            tasks.push(tokio::spawn(async move {
                let mut body = seed_campaign();
                body["id"] = json!("the-one");
                app.post_campaign(&body).await.status.as_u16()
            }));
        }
        let mut statuses = Vec::new();
        for t in tasks {
            statuses.push(t.await.unwrap());
        }
        assert_eq!(
            statuses.iter().filter(|s| **s == 201).count(),
            1,
            "{statuses:?}"
        );
        assert!(
            statuses.iter().all(|s| *s == 201 || *s == 409),
            "{statuses:?}"
        );
        assert_eq!(app.campaign_events("the-one").await.len(), 1);
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_postgres_see_each_others_writes() {
    let (url, dir) = fresh_database(Backend::Postgres).await;
    let a = spawn_with(Backend::Postgres, test_config(url.clone(), &dir)).await;
    let b = spawn_with(Backend::Postgres, test_config(url, &dir)).await;
    let created = a.post_campaign(&seed_campaign()).await;
    let id = created.body["id"].as_str().unwrap().to_string();
    // B reads (and may cache) version 1, then A changes the campaign.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(b.get_campaign(&id).await.body["version"], 1);
    let mut body = seed_campaign();
    body["name"] = json!("Renamed on A");
    assert_eq!(a.put_campaign(&id, &body).await.status, 200);
    // No entry expires by itself: without the eviction B would serve version 1 forever, so a
    // generous deadline keeps the test's meaning.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let seen = b.get_campaign(&id).await;
        if seen.body["name"] == "Renamed on A" {
            assert_eq!(seen.body["version"], 2);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "B kept serving a stale campaign"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
