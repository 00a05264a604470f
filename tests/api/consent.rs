//! Consent at send time (`api.md` section 12): frequency caps held in the send transaction, even
//! between campaigns launched at once; `ignoreFrequencyCaps`; `capped` in `lastRun` and in
//! analytics; a capped drip contact moves on.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::db_test;
use crate::helpers::*;

const SETTINGS: &str = "/crm/marketing/settings";

/// A sandbox email connection, a template, an audience of tag `c` and `n` contacts in it
/// (`ct-000`, `ct-001`…).
async fn ready(app: &TestApp, n: usize) {
    let connection = json!({"platform": "email", "vendor": "sandbox"});
    let template = json!({"id": "tpl-c", "name": "C",
        "email": {"subject": "Hi {{ contact.firstName }}", "html": "<p>Hi</p>"}});
    let audience = json!({"id": "aud-c", "name": "C",
        "filter": {"datatype": "contact", "where": {"tags": "c"}}});
    for (path, body) in [
        ("/crm/integrations/connections", connection),
        ("/crm/marketing/templates", template),
        ("/crm/audiences", audience),
    ] {
        let reply = app.admin(Method::POST, path).json(&body).send().await;
        assert!(reply.status.is_success(), "{path}: {}", reply.text);
    }
    if n == 0 {
        return;
    }
    let contacts: Vec<Value> = (0..n)
        .map(|i| json!({"id": format!("ct-{i:03}"), "email": format!("c{i:03}@acme.test"), "tags": ["c"]}))
        .collect();
    let reply = app
        .admin(Method::POST, "/crm/contacts/import")
        .json(&Value::Array(contacts))
        .send()
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["created"], n, "{}", reply.text);
}

async fn set_settings(app: &TestApp, settings: Value) {
    let reply = app
        .admin(Method::PUT, SETTINGS)
        .json(&settings)
        .send()
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
}

fn one_shot(id: &str, extra: Value) -> Value {
    let mut body = json!({"id": id, "name": id, "type": "one-shot", "channels": ["email"],
        "audienceId": "aud-c", "templateId": "tpl-c", "status": "running"});
    for (key, value) in extra.as_object().unwrap() {
        body[key] = value.clone();
    }
    body
}

async fn wait_completed(app: &TestApp, id: &str) -> Value {
    let done = eventually(Duration::from_secs(30), || async {
        app.get_campaign(id).await.body["status"] == "completed"
    })
    .await;
    let campaign = app.get_campaign(id).await;
    assert!(done, "{id} never completed: {}", campaign.text);
    campaign.body
}

/// The contact ids a campaign's sandbox messages went to, sorted.
async fn recipients(app: &TestApp, campaign: &str) -> Vec<String> {
    let mut ids: Vec<String> = sandbox(app, &format!("campaignId={campaign}"))
        .await
        .iter()
        .map(|m| m["contactId"].as_str().unwrap_or_default().to_string())
        .collect();
    ids.sort();
    ids
}

async fn analytics_totals(app: &TestApp, id: &str) -> Value {
    let reply = app
        .admin(
            Method::GET,
            &format!("/crm/marketing/campaigns/{id}/analytics"),
        )
        .send()
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.body["totals"].clone()
}

db_test!(
    two_campaigns_launched_at_once_under_a_cap_of_one_send_one_message_per_contact,
    |app: TestApp| async move {
        // More than a batch of four pages of 500 each: two runs then hold eight page
        // transactions at once, the test pool's every connection (none may wait for another).
        const N: usize = 2_100;
        ready(&app, N).await;
        set_settings(
            &app,
            json!({"frequencyCaps": [{"channel": "email", "max": 1, "per": "day"}]}),
        )
        .await;
        let (body_a, body_b) = (one_shot("camp-a", json!({})), one_shot("camp-b", json!({})));
        let (a, b) = tokio::join!(app.post_campaign(&body_a), app.post_campaign(&body_b));
        assert_eq!(a.status, 201, "{}", a.text);
        assert_eq!(b.status, 201, "{}", b.text);
        let (a, b) = tokio::join!(
            wait_completed(&app, "camp-a"),
            wait_completed(&app, "camp-b")
        );
        let mut both = recipients(&app, "camp-a").await;
        both.extend(recipients(&app, "camp-b").await);
        both.sort();
        let mut expected: Vec<String> = (0..N).map(|i| format!("ct-{i:03}")).collect();
        expected.sort();
        assert_eq!(both, expected, "each contact got exactly one of the two");

        // What was held back shows on each run and in analytics.
        let capped_a = a["lastRun"]["capped"].as_u64().unwrap();
        let capped_b = b["lastRun"]["capped"].as_u64().unwrap();
        assert_eq!(capped_a + capped_b, N as u64, "{a} {b}");
        let sent_a = recipients(&app, "camp-a").await.len() as u64;
        assert_eq!(capped_a, N as u64 - sent_a);
        let counted = eventually(Duration::from_secs(20), || async {
            let (ta, tb) = (
                analytics_totals(&app, "camp-a").await,
                analytics_totals(&app, "camp-b").await,
            );
            ta["capped"].as_u64() == Some(capped_a)
                && tb["capped"].as_u64() == Some(capped_b)
                && ta["sends"].as_u64().unwrap_or(0) + tb["sends"].as_u64().unwrap_or(0) == N as u64
        })
        .await;
        assert!(
            counted,
            "{} {}",
            analytics_totals(&app, "camp-a").await,
            analytics_totals(&app, "camp-b").await
        );
        let events = app.all_events().await;
        let capped_in_log: usize = events
            .iter()
            .filter(|e| e["eventType"] == "SendsRecorded")
            .map(|e| e["data"]["capped"].as_array().map_or(0, Vec::len))
            .sum();
        assert_eq!(capped_in_log, N, "every capped send is in the log");
        for (id, capped) in [("camp-a", capped_a), ("camp-b", capped_b)] {
            let reported = app
                .campaign_events(id)
                .await
                .iter()
                .any(|e| e["eventType"] == "RunReported" && e["data"]["capped"] == capped);
            assert_eq!(
                reported,
                capped > 0,
                "{id}: a RunReported when something was capped"
            );
        }

        // A third campaign the same day reaches nobody.
        app.post_campaign(&one_shot("camp-c", json!({}))).await;
        let c = wait_completed(&app, "camp-c").await;
        assert!(recipients(&app, "camp-c").await.is_empty());
        assert_eq!(c["lastRun"]["capped"], N);
    }
);

db_test!(
    a_campaign_that_ignores_the_caps_is_neither_capped_nor_counted,
    |app: TestApp| async move {
        ready(&app, 3).await;
        set_settings(
            &app,
            json!({"frequencyCaps": [{"channel": "*", "max": 1, "per": "week"}]}),
        )
        .await;
        let first = app.post_campaign(&one_shot("camp-1", json!({}))).await;
        assert_eq!(first.status, 201, "{}", first.text);
        wait_completed(&app, "camp-1").await;
        assert_eq!(recipients(&app, "camp-1").await.len(), 3);

        let urgent = one_shot("camp-urgent", json!({"ignoreFrequencyCaps": true}));
        let created = app.post_campaign(&urgent).await;
        assert_eq!(created.status, 201, "{}", created.text);
        assert_eq!(created.body["ignoreFrequencyCaps"], true);
        let done = wait_completed(&app, "camp-urgent").await;
        assert_eq!(recipients(&app, "camp-urgent").await.len(), 3, "not capped");
        assert_eq!(done["lastRun"]["capped"], 0);

        // Raising the cap to 2 lets one more through: the urgent sends did not count.
        set_settings(
            &app,
            json!({"frequencyCaps": [{"channel": "*", "max": 2, "per": "week"}]}),
        )
        .await;
        app.post_campaign(&one_shot("camp-2", json!({}))).await;
        wait_completed(&app, "camp-2").await;
        assert_eq!(recipients(&app, "camp-2").await.len(), 3, "not counted");
        app.post_campaign(&one_shot("camp-3", json!({}))).await;
        let third = wait_completed(&app, "camp-3").await;
        assert!(recipients(&app, "camp-3").await.is_empty());
        assert_eq!(third["lastRun"]["capped"], 3);

        let bad = app
            .post_campaign(&one_shot("camp-bad", json!({"ignoreFrequencyCaps": "yes"})))
            .await;
        bad.assert_problem(422);
        assert_eq!(bad.body["errors"][0]["field"], "ignoreFrequencyCaps");
    }
);

db_test!(
    a_capped_drip_contact_moves_on_to_its_next_step,
    |app: TestApp| async move {
        ready(&app, 2).await;
        set_settings(
            &app,
            json!({"frequencyCaps": [{"channel": "email", "max": 1, "per": "day"}]}),
        )
        .await;
        let body = json!({"id": "camp-drip", "name": "Drip", "type": "drip",
            "channels": ["email"], "audienceId": "aud-c", "templateId": "tpl-c",
            "steps": [{"id": "one", "delay": "PT0S"}, {"id": "two", "delay": "PT1S"},
                {"id": "three", "delay": "PT1S"}],
            "status": "running"});
        let created = app.post_campaign(&body).await;
        assert_eq!(created.status, 201, "{}", created.text);
        let done = eventually(Duration::from_secs(30), || async {
            app.get_campaign("camp-drip").await.body["status"] == "completed"
        })
        .await;
        assert!(done, "{}", app.get_campaign("camp-drip").await.text);
        // Step one went out; two and three were capped, and each contact went through both.
        assert_eq!(recipients(&app, "camp-drip").await, ["ct-000", "ct-001"]);
        let reply = app
            .admin(
                Method::GET,
                "/crm/marketing/campaigns/camp-drip/enrollments?status=completed",
            )
            .send()
            .await;
        assert_eq!(
            reply.body["items"].as_array().unwrap().len(),
            2,
            "{}",
            reply.text
        );
        let counted = eventually(Duration::from_secs(20), || async {
            let body = app
                .admin(Method::GET, "/crm/marketing/campaigns/camp-drip/analytics")
                .send()
                .await
                .body;
            body["totals"]["capped"] == 4
                && body["steps"]["two"]["capped"] == 2
                && body["steps"]["one"]["sends"] == 2
        })
        .await;
        assert!(
            counted,
            "{}",
            app.admin(Method::GET, "/crm/marketing/campaigns/camp-drip/analytics")
                .send()
                .await
                .text
        );
    }
);

/// The sandbox messages of a campaign to one contact.
async fn messages_to(app: &TestApp, campaign: &str, contact: &str) -> Vec<Value> {
    sandbox(app, &format!("campaignId={campaign}"))
        .await
        .into_iter()
        .filter(|m| m["contactId"] == contact)
        .collect()
}

db_test!(
    a_send_inside_quiet_hours_waits_for_the_windows_end_and_goes_once,
    |app: TestApp| async move {
        use chrono::{DurationRound, Timelike};
        ready(&app, 0).await;
        let reply = app
            .admin(Method::POST, "/crm/contacts/import")
            .json(&json!([
                {"id": "ct-utc", "email": "utc@acme.test", "timezone": "UTC", "tags": ["c"]},
                {"id": "ct-kol", "email": "kol@acme.test", "timezone": "Asia/Kolkata", "tags": ["c"]},
                {"id": "ct-none", "email": "none@acme.test", "tags": ["c"]}
            ]))
            .send()
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        // A window in UTC that began five minutes ago and ends at the next minute, at least
        // ten seconds away: UTC contacts (and those whose zone falls back to the org's UTC) are
        // inside it; Kolkata, 5:30 ahead, is not.
        let mut now = chrono::Utc::now();
        if now.second() >= 50 {
            tokio::time::sleep(Duration::from_secs(61 - u64::from(now.second()))).await;
            now = chrono::Utc::now();
        }
        let end = now.duration_trunc(chrono::Duration::minutes(1)).unwrap()
            + chrono::Duration::minutes(1);
        let start = now - chrono::Duration::minutes(5);
        set_settings(
            &app,
            json!({"quietHours": {"start": start.format("%H:%M").to_string(),
                "end": end.format("%H:%M").to_string(), "channels": ["email"]}}),
        )
        .await;
        let drip = json!({"id": "camp-qd", "name": "Quiet drip", "type": "drip",
            "channels": ["email"], "audienceId": "aud-c", "templateId": "tpl-c",
            "steps": [{"id": "hello", "delay": "PT0S"}], "status": "running"});
        for body in [one_shot("camp-q", json!({})), drip] {
            let created = app.post_campaign(&body).await;
            assert_eq!(created.status, 201, "{}", created.text);
        }
        // Outside the window: at once.
        let sent = eventually(Duration::from_secs(8), || async {
            messages_to(&app, "camp-q", "ct-kol").await.len() == 1
                && messages_to(&app, "camp-qd", "ct-kol").await.len() == 1
        })
        .await;
        assert!(sent, "{:?}", sandbox(&app, "").await);
        assert!(
            chrono::Utc::now() < end,
            "the test was too slow to see the wait"
        );
        for campaign in ["camp-q", "camp-qd"] {
            for contact in ["ct-utc", "ct-none"] {
                assert!(
                    messages_to(&app, campaign, contact).await.is_empty(),
                    "{campaign} to {contact} inside quiet hours"
                );
            }
        }
        assert_eq!(app.get_campaign("camp-q").await.body["status"], "running");

        // At the window's end, the held sends go, once each.
        let completed = eventually(Duration::from_secs(90), || async {
            app.get_campaign("camp-q").await.body["status"] == "completed"
        })
        .await;
        assert!(completed, "{}", app.get_campaign("camp-q").await.text);
        let all = eventually(Duration::from_secs(20), || async {
            recipients(&app, "camp-qd").await == ["ct-kol", "ct-none", "ct-utc"]
        })
        .await;
        assert!(all, "{:?}", recipients(&app, "camp-qd").await);
        assert_eq!(
            recipients(&app, "camp-q").await,
            ["ct-kol", "ct-none", "ct-utc"]
        );
        for campaign in ["camp-q", "camp-qd"] {
            for contact in ["ct-utc", "ct-none"] {
                let held = messages_to(&app, campaign, contact).await;
                let at: chrono::DateTime<chrono::Utc> =
                    held[0]["sentAt"].as_str().unwrap().parse().unwrap();
                assert!(
                    at >= end,
                    "{campaign} to {contact} sent at {at}, before {end}"
                );
            }
        }
        let enrollments = app
            .admin(
                Method::GET,
                "/crm/marketing/campaigns/camp-qd/enrollments?status=completed",
            )
            .send()
            .await;
        assert_eq!(
            enrollments.body["items"].as_array().unwrap().len(),
            3,
            "{}",
            enrollments.text
        );
    }
);

db_test!(
    a_local_time_one_shot_reaches_each_contact_at_start_at_in_their_zone,
    |app: TestApp| async move {
        ready(&app, 0).await;
        let reply = app
            .admin(Method::POST, "/crm/contacts/import")
            .json(&json!([
                {"id": "ct-west", "email": "west@acme.test", "timezone": "Etc/GMT+1", "tags": ["c"]},
                {"id": "ct-east", "email": "east@acme.test", "timezone": "Asia/Tokyo", "tags": ["c"]},
                {"id": "ct-none", "email": "none@acme.test", "tags": ["c"]}
            ]))
            .send()
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        // startAt's wall time (UTC) an hour ago, plus 12 s: in UTC-1 that moment is 12 s away;
        // in Tokyo it passed hours ago; a contact without a zone takes the campaign's (UTC),
        // where it passed too, and is counted as a fallback.
        let start = chrono::Utc::now() - chrono::Duration::hours(1) + chrono::Duration::seconds(12);
        let west_moment = start + chrono::Duration::hours(1);
        let body = one_shot(
            "camp-local",
            json!({"schedule": {"startAt": start.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "timezone": "UTC", "localTime": true}}),
        );
        let created = app.post_campaign(&body).await;
        assert_eq!(created.status, 201, "{}", created.text);
        assert_eq!(created.body["schedule"]["localTime"], true);
        let at_launch = eventually(Duration::from_secs(8), || async {
            recipients(&app, "camp-local").await == ["ct-east", "ct-none"]
        })
        .await;
        assert!(at_launch, "{:?}", recipients(&app, "camp-local").await);
        assert!(
            chrono::Utc::now() < west_moment,
            "the test was too slow to see the wait"
        );
        assert_eq!(
            app.get_campaign("camp-local").await.body["status"],
            "running"
        );

        let done = eventually(Duration::from_secs(40), || async {
            app.get_campaign("camp-local").await.body["status"] == "completed"
        })
        .await;
        let campaign = app.get_campaign("camp-local").await.body;
        assert!(done, "{campaign}");
        assert_eq!(
            recipients(&app, "camp-local").await,
            ["ct-east", "ct-none", "ct-west"]
        );
        let west = messages_to(&app, "camp-local", "ct-west").await;
        let at: chrono::DateTime<chrono::Utc> =
            west[0]["sentAt"].as_str().unwrap().parse().unwrap();
        assert!(at >= west_moment, "sent at {at}, before {west_moment}");
        assert_eq!(campaign["lastRun"]["zoneFallbacks"], 1, "{campaign}");

        // Bad input: not a boolean, no startAt, a recurring campaign.
        for (extra, field) in [
            (
                json!({"schedule": {"startAt": "2026-05-01T09:00:00Z", "localTime": "yes"}}),
                "schedule.localTime",
            ),
            (
                json!({"schedule": {"localTime": true}}),
                "schedule.localTime",
            ),
            (
                json!({"type": "recurring", "recurring": {"cron": "0 9 * * 1"},
                "schedule": {"startAt": "2026-05-01T09:00:00Z", "localTime": true}}),
                "schedule.localTime",
            ),
        ] {
            let reply = app.post_campaign(&one_shot("camp-bad", extra)).await;
            reply.assert_problem(422);
            assert_eq!(reply.body["errors"][0]["field"], field, "{}", reply.text);
        }
    }
);

db_test!(
    a_scheduled_local_time_one_shot_starts_at_the_first_zones_moment_and_east_of_it_waits_for_none,
    |app: TestApp| async move {
        use chrono::TimeZone;
        ready(&app, 0).await;
        let reply = app
            .admin(Method::POST, "/crm/contacts/import")
            .json(&json!([
                {"id": "ct-kiritimati", "email": "kiritimati@acme.test", "timezone": "Pacific/Kiritimati", "tags": ["c"]},
                {"id": "ct-tokyo", "email": "tokyo@acme.test", "timezone": "Asia/Tokyo", "tags": ["c"]},
                {"id": "ct-berlin", "email": "berlin@acme.test", "timezone": "Europe/Berlin", "tags": ["c"]},
                {"id": "ct-la", "email": "la@acme.test", "timezone": "America/Los_Angeles", "tags": ["c"]}
            ]))
            .send()
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let la = chrono_tz::America::Los_Angeles;
        let text = |t: chrono::DateTime<chrono::Utc>| {
            t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        };
        let parse = |v: &Value| -> chrono::DateTime<chrono::Utc> {
            v.as_str().unwrap_or_default().parse().unwrap()
        };
        // Where `start`'s wall time in Los Angeles comes first: the same wall time in UTC+14.
        let first_moment = |start: chrono::DateTime<chrono::Utc>| {
            (start.with_timezone(&la).naive_local() - chrono::Duration::hours(14)).and_utc()
        };

        // camp-first: the wall time reaches Kiritimati (UTC+14) 30 s from now, and Los Angeles
        // (and startAt) about a day later.
        let wall =
            (chrono::Utc::now() + chrono::Duration::seconds(30) + chrono::Duration::hours(14))
                .naive_utc();
        let start = la
            .from_local_datetime(&wall)
            .earliest()
            .expect("a wall time Los Angeles has")
            .with_timezone(&chrono::Utc);
        // As the API keeps it: to the millisecond.
        let start: chrono::DateTime<chrono::Utc> = text(start).parse().unwrap();
        let first = first_moment(start);
        let created = app
            .post_campaign(&one_shot(
                "camp-first",
                json!({"status": "scheduled", "schedule": {"startAt": text(start),
                    "timezone": "America/Los_Angeles", "localTime": true}}),
            ))
            .await;
        assert_eq!(created.status, 201, "{}", created.text);
        assert_eq!(created.body["status"], "scheduled", "{}", created.text);
        assert_eq!(parse(&created.body["nextRunAt"]), first, "{}", created.text);

        // camp-passed: startAt an hour from now in Los Angeles, so the wall time has passed in
        // Berlin, Tokyo and Kiritimati already: the run starts now, and they get it at once.
        let start_passed = chrono::Utc::now() + chrono::Duration::hours(1);
        let passed = app
            .post_campaign(&one_shot(
                "camp-passed",
                json!({"status": "scheduled", "schedule": {"startAt": text(start_passed),
                    "timezone": "America/Los_Angeles", "localTime": true}}),
            ))
            .await;
        assert_eq!(passed.status, 201, "{}", passed.text);
        let at_launch = eventually(Duration::from_secs(30), || async {
            recipients(&app, "camp-passed").await == ["ct-berlin", "ct-kiritimati", "ct-tokyo"]
        })
        .await;
        assert!(at_launch, "{:?}", recipients(&app, "camp-passed").await);
        let campaign = app.get_campaign("camp-passed").await.body;
        assert_eq!(
            campaign["status"], "running",
            "Los Angeles still waits: {campaign}"
        );
        assert!(
            parse(&campaign["lastRun"]["at"]) < start_passed,
            "{campaign}"
        );

        // Kiritimati gets camp-first at its own 'startAt', a day before startAt; the zones
        // west of it wait for theirs.
        let kiritimati = eventually(Duration::from_secs(90), || async {
            !recipients(&app, "camp-first").await.is_empty()
        })
        .await;
        assert!(kiritimati, "camp-first never started its run");
        assert_eq!(recipients(&app, "camp-first").await, ["ct-kiritimati"]);
        let sent = messages_to(&app, "camp-first", "ct-kiritimati").await;
        let at = parse(&sent[0]["sentAt"]);
        assert!(at >= first, "sent at {at}, before its moment {first}");
        assert!(at < start, "sent at {at}, not before startAt {start}");
        let campaign = app.get_campaign("camp-first").await.body;
        assert_eq!(campaign["status"], "running", "{campaign}");
        assert_eq!(parse(&campaign["lastRun"]["at"]), first, "{campaign}");
    }
);

/// The keys of `table`'s rows, sorted: its key columns joined by `|`.
async fn keys(db: &herald::db::Db, table: &str, columns: &str) -> Vec<String> {
    use sqlx::Row;
    let rows = sqlx::query(&format!(
        "select {} as k from {table} order by 1",
        columns.replace(',', " || '|' || ")
    ))
    .fetch_all(&db.read)
    .await
    .unwrap();
    rows.iter().map(|r| r.get::<String, _>("k")).collect()
}

db_test!(
    api_only a_worker_prunes_counters_of_periods_long_past_and_soft_bounces_older_than_30_days,
    |app: TestApp| async move {
        let db = herald::db::Db::connect(&app.database_url, 2).await.unwrap();
        let now = chrono::Utc::now();
        let ago = |days: i64| herald::store::format_time(now - chrono::Duration::days(days));
        // More old counters than one pruning batch deletes, and counters of this day and week.
        sqlx::query(
            "with recursive n(i) as (select 1 union all select i + 1 from n where i < 2100)
             insert into frequency_counts (org_id, contact_id, channel, period, n, updated_at)
             select 'acme', 'ct-old-' || i, 'email', 'day:2026-01-01', 1, $1 from n",
        )
        .bind(ago(40))
        .execute(&db.write)
        .await
        .unwrap();
        for (contact, period, at) in [
            ("ct-today", "day:today", ago(0)),
            ("ct-week", "week:this", ago(6)),
            ("ct-fortnight", "week:last", ago(15)),
        ] {
            sqlx::query(
                "insert into frequency_counts (org_id, contact_id, channel, period, n, updated_at)
                 values ('acme', $1, '*', $2, 1, $3)",
            )
            .bind(contact)
            .bind(period)
            .bind(at)
            .execute(&db.write)
            .await
            .unwrap();
        }
        for (address, at) in [
            ("old@acme.test", ago(31)),
            ("recent@acme.test", ago(29)),
            ("today@acme.test", ago(0)),
        ] {
            sqlx::query(
                "insert into soft_bounces (org_id, channel, address, message_key, at)
                 values ('acme', 'email', $1, 'run-1:ct:email', $2)",
            )
            .bind(address)
            .bind(at)
            .execute(&db.write)
            .await
            .unwrap();
        }
        assert_eq!(keys(&db, "frequency_counts", "contact_id").await.len(), 2103);

        // This server runs no workers; one that does prunes in its reconcile pass.
        let _worker = spawn_with(app.backend, test_config(app.database_url.clone(), &app.data_dir)).await;
        let pruned = eventually(Duration::from_secs(60), || async {
            keys(&db, "frequency_counts", "contact_id").await.len() == 2
        })
        .await;
        assert!(pruned, "{:?}", keys(&db, "frequency_counts", "contact_id").await.len());
        assert_eq!(
            keys(&db, "frequency_counts", "contact_id,period").await,
            ["ct-today|day:today", "ct-week|week:this"]
        );
        let bounces = eventually(Duration::from_secs(30), || async {
            keys(&db, "soft_bounces", "address").await.len() == 2
        })
        .await;
        assert!(bounces, "{:?}", keys(&db, "soft_bounces", "address").await);
        assert_eq!(
            keys(&db, "soft_bounces", "address").await,
            ["recent@acme.test", "today@acme.test"]
        );
    }
);
