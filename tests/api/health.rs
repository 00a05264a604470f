//! Liveness, readiness and the operations health view.

use reqwest::Method;

use crate::db_test;
use crate::helpers::*;

db_test!(
    health_endpoints_report_the_process_and_projections,
    |app: TestApp| async move {
        assert_eq!(
            app.anonymous(Method::GET, "/healthz").send().await.status,
            200
        );
        let ready = app.anonymous(Method::GET, "/readyz").send().await;
        assert_eq!(ready.status, 200, "{}", ready.text);
        app.post_campaign(&seed_campaign()).await;
        let health = app.admin(Method::GET, "/crm/marketing/health").send().await;
        assert_eq!(health.status, 200);
        assert_eq!(health.body["status"], "ok");
        assert!(
            health.body["projections"]["campaigns"]["position"]
                .as_i64()
                .unwrap()
                >= 1
        );
        app.anonymous(Method::GET, "/crm/marketing/health")
            .send()
            .await
            .assert_problem(401);
        let metrics = app.anonymous(Method::GET, "/metrics").send().await;
        assert!(metrics.text.contains("herald_event_log_head_position"));
    }
);

/// The value of the one series line that starts with `series ` in a Prometheus text page.
fn sample(page: &str, series: &str) -> Option<f64> {
    page.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|value| value.parse().expect("a number"))
}

db_test!(
    metrics_count_sends_by_channel_and_outcome_jobs_by_state_and_the_heartbeat_age,
    |app: TestApp| async move {
        use serde_json::json;
        use std::time::{Duration, Instant};
        let connection = json!({"platform": "email", "vendor": "sandbox",
            "settings": {"bounce": ["gone@acme.test"]}});
        let template =
            json!({"id": "tpl-m", "name": "M", "email": {"subject": "Hi", "html": "<p>Hi</p>"}});
        let audience = json!({"id": "aud-m", "name": "M",
            "filter": {"datatype": "contact", "where": {"tags": "m"}}});
        let contacts = json!([
            {"email": "a@acme.test", "tags": ["m"]},
            {"email": "b@acme.test", "tags": ["m"]},
            {"email": "gone@acme.test", "tags": ["m"]}
        ]);
        for (path, body) in [
            ("/crm/integrations/connections", connection),
            ("/crm/marketing/templates", template),
            ("/crm/audiences", audience),
            ("/crm/contacts/import", contacts),
        ] {
            let reply = app.admin(Method::POST, path).json(&body).send().await;
            assert!(reply.status.is_success(), "{path}: {}", reply.text);
        }
        let campaign = json!({"id": "camp-m", "name": "M", "type": "one-shot", "channels": ["email"],
            "audienceId": "aud-m", "templateId": "tpl-m", "status": "running"});
        assert_eq!(app.post_campaign(&campaign).await.status, 201);

        // Polled until the run is done and the queue empty; the figures are then fixed.
        let deadline = Instant::now() + Duration::from_secs(30);
        let page = loop {
            let page = app.anonymous(Method::GET, "/metrics").send().await;
            assert_eq!(page.status, 200);
            let done = sample(&page.text, r#"herald_queue_jobs{kind="send",state="done"}"#);
            if done == Some(1.0) && sample(&page.text, "herald_queue_depth") == Some(0.0) {
                break page.text;
            }
            assert!(
                Instant::now() < deadline,
                "the run never finished: {}",
                page.text
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(
            sample(
                &page,
                r#"herald_sends_total{channel="email",outcome="sent"}"#
            ),
            Some(2.0),
            "{page}"
        );
        assert_eq!(
            sample(
                &page,
                r#"herald_sends_total{channel="email",outcome="failed"}"#
            ),
            Some(1.0),
            "the bounced address"
        );
        assert_eq!(
            sample(
                &page,
                r#"herald_queue_jobs{kind="launch",state="scheduled"}"#
            ),
            None,
            "a launched one-shot has no pending launch job"
        );
        assert_eq!(sample(&page, "herald_queue_oldest_due_seconds"), Some(0.0));
        let age = sample(&page, "herald_scheduler_heartbeat_age_seconds").expect("a heartbeat");
        assert!(age >= 0.0, "{age}");
        // A live scheduler keeps beating: its heartbeat moves on.
        let heartbeat = || async {
            let reply = app.admin(Method::GET, "/crm/marketing/health").send().await;
            reply.body["scheduler"]["heartbeatAt"]
                .as_str()
                .expect("a heartbeat")
                .to_string()
        };
        let first = heartbeat().await;
        let beat = eventually(Duration::from_secs(30), || async {
            heartbeat().await > first
        })
        .await;
        assert!(beat, "the heartbeat stayed at {first}");
        for line in page.lines().filter(|l| !l.starts_with('#')) {
            let (_, value) = line.rsplit_once(' ').expect("`series value`");
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
        assert!(page.contains("# TYPE herald_sends_total counter"));

        // A counter never goes down: purging the campaign's ledger rows leaves it as it was.
        let reply = app
            .admin(Method::DELETE, "/crm/marketing/campaigns/camp-m")
            .send()
            .await;
        assert!(reply.status.is_success(), "{}", reply.text);
        let reply = app.admin(Method::POST, "/crm/marketing/purge").send().await;
        let done = crate::purge::wait_done(&app, reply.body["jobId"].as_str().unwrap()).await;
        assert_eq!(done["campaignIds"], json!(["camp-m"]), "{done}");
        let outbox = app
            .admin(
                Method::GET,
                "/crm/integrations/sandbox/messages?campaignId=camp-m",
            )
            .send()
            .await;
        assert_eq!(
            outbox.body["items"],
            json!([]),
            "the purge removed the sends"
        );
        let page = app.anonymous(Method::GET, "/metrics").send().await.text;
        let sent = r#"herald_sends_total{channel="email",outcome="sent"}"#;
        assert_eq!(sample(&page, sent), Some(2.0), "{page}");
    }
);

/// `herald_sends_total` for `channel` and `outcome` on a scrape, 0 when absent.
fn sends_on(page: &str, channel: &str, outcome: &str) -> i64 {
    let series = format!("herald_sends_total{{channel=\"{channel}\",outcome=\"{outcome}\"}} ");
    page.lines()
        .find_map(|line| line.strip_prefix(&series))
        .map_or(0, |n| n.trim().parse().unwrap())
}

db_test!(
    metrics_reads_the_database_series_at_most_once_a_second_however_often_it_is_scraped,
    |app: TestApp| async move {
        let db = herald::db::Db::connect(&app.database_url, 2).await.unwrap();
        let scrape = || async { app.anonymous(Method::GET, "/metrics").send().await.text };
        // The send counters move only with sends; this test moves them itself.
        let bump = || async {
            sqlx::query(
                "insert into send_counts (channel, state, shard, n) values ('sms', 'sent', 7, 1)
                 on conflict (channel, state, shard) do update set n = send_counts.n + 1",
            )
            .execute(&db.write)
            .await
            .unwrap();
        };
        // A change made right after a scrape does not show on the next scrape when that one
        // comes within the cache's second. A scrape that came later (a slow machine) is no
        // evidence either way, so a few tries; without a cache none of them would be stale.
        let mut bumps = 0;
        let mut stale = false;
        for _ in 0..20 {
            let before = sends_on(&scrape().await, "sms", "sent");
            bump().await;
            bumps += 1;
            if sends_on(&scrape().await, "sms", "sent") == before {
                stale = true;
                break;
            }
        }
        assert!(
            stale,
            "every scrape right after a change read it from the database: no cache"
        );
        // Once the second is over, the next scrape reads the database again.
        let caught_up = eventually(std::time::Duration::from_secs(10), || async {
            sends_on(&scrape().await, "sms", "sent") == bumps
        })
        .await;
        assert!(caught_up, "the change never showed on /metrics");
    }
);
