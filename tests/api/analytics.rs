//! Analytics: per-campaign metrics, the seed's aggregated-metrics roll-up, the dashboard and the
//! contact activity log, with their input rules, org isolation and exact money.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::db_test;
use crate::helpers::*;

async fn db(app: &TestApp) -> herald::db::Db {
    herald::db::Db::connect(&app.database_url, 2).await.unwrap()
}

/// Writes one rollup row of the `analytics` read model, as the projection would.
async fn put_day(
    db: &herald::db::Db,
    (org, campaign, channel, day): (&str, &str, &str, &str),
    counters: &[(&str, i64)],
) {
    let columns: Vec<&str> = counters.iter().map(|(c, _)| *c).collect();
    let params: Vec<String> = (6..6 + counters.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "insert into analytics_daily (org_id, campaign_id, channel, day, updated_at{}{}) values ($1, $2, $3, $4, $5{}{})",
        if columns.is_empty() { "" } else { ", " },
        columns.join(", "),
        if params.is_empty() { "" } else { ", " },
        params.join(", ")
    );
    let mut query = sqlx::query(&sql)
        .bind(org)
        .bind(campaign)
        .bind(channel)
        .bind(day)
        .bind("2026-05-02T08:00:00.000000Z");
    for (_, value) in counters {
        query = query.bind(*value);
    }
    query.execute(&db.write).await.unwrap();
}

async fn create(app: &TestApp, body: Value) {
    let reply = app.post_campaign(&body).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
}

fn draft(id: &str, channels: &[&str]) -> Value {
    json!({"id": id, "name": format!("Campaign {id}"), "type": "one-shot", "channels": channels})
}

/// The seed's own request, as its `fetch` example sends it (a string body, so `text/plain`).
async fn seed_request(app: &TestApp, token: &str, org: &str, ids: Value) -> Reply {
    let body = json!({"campaignIds": ids, "range": {"start": "2026-04-01", "end": "2026-04-30"}});
    app.as_user(
        token,
        org,
        Method::POST,
        "/api/crm/marketing/campaigns/aggregated-metrics",
    )
    .raw(Some("text/plain;charset=UTF-8"), body.to_string())
    .send()
    .await
}

async fn aggregate(app: &TestApp, body: Value) -> Reply {
    app.admin(Method::POST, "/crm/marketing/campaigns/aggregated-metrics")
        .json(&body)
        .send()
        .await
}

/// `GET /crm/marketing/campaigns/:id/analytics` with `query`, expected to answer `200`.
async fn campaign_analytics(app: &TestApp, id: &str, query: &str) -> Value {
    let reply = app
        .admin(
            Method::GET,
            &format!("/crm/marketing/campaigns/{id}/analytics{query}"),
        )
        .send()
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.body
}

fn fields(reply: &Reply) -> Vec<String> {
    reply.body["errors"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|e| e["field"].as_str().unwrap_or_default().to_string())
        .collect()
}

const COUNTS: [&str; 18] = [
    "sends",
    "failures",
    "deliveries",
    "opens",
    "uniqueOpens",
    "machineOpens",
    "clicks",
    "uniqueClicks",
    "machineClicks",
    "replies",
    "bounces",
    "complaints",
    "unsubscribes",
    "conversions",
    "impressions",
    "interactions",
    "capped",
    "revenue",
];

#[track_caller]
fn assert_zero(metrics: &Value) {
    for key in COUNTS {
        assert_eq!(metrics[key], 0, "{key} of {metrics}");
    }
    assert_eq!(metrics["openRate"], 0.0, "{metrics}");
    assert_eq!(metrics["clickRate"], 0.0, "{metrics}");
}

db_test!(
    a_campaign_without_activity_reports_zeros_and_bad_ranges_are_refused,
    |app: TestApp| async move {
        create(&app, draft("camp-quiet", &["email", "sms"])).await;
        for prefix in ["", "/api"] {
            let reply = app
                .admin(
                    Method::GET,
                    &format!("{prefix}/crm/marketing/campaigns/camp-quiet/analytics"),
                )
                .send()
                .await;
            assert_eq!(reply.status, 200, "{}", reply.text);
            assert_eq!(reply.body["campaignId"], "camp-quiet");
            assert_eq!(reply.body["range"], Value::Null);
            assert!(reply.body["updatedAt"].is_null());
            assert_zero(&reply.body["totals"]);
            let channels = reply.body["channels"].as_object().unwrap();
            assert_eq!(
                channels.keys().collect::<Vec<_>>(),
                ["email", "sms"],
                "the campaign's channels, at zero"
            );
            assert_zero(&channels["email"]);
        }
        let ranged = app
            .admin(
                Method::GET,
                "/crm/marketing/campaigns/camp-quiet/analytics?from=2026-04-01&to=2026-04-30T12:00:00Z",
            )
            .send()
            .await;
        assert_eq!(ranged.status, 200, "{}", ranged.text);
        assert_eq!(
            ranged.body["range"],
            json!({"from": "2026-04-01", "to": "2026-04-30"})
        );

        for query in [
            "from=yesterday",
            "to=2026-13-01",
            "from=2026-4-1",
            "from=2026-05-02&to=2026-05-01",
        ] {
            app.admin(
                Method::GET,
                &format!("/crm/marketing/campaigns/camp-quiet/analytics?{query}"),
            )
            .send()
            .await
            .assert_problem(400);
        }
        app.admin(Method::GET, "/crm/marketing/campaigns/camp-nope/analytics")
            .send()
            .await
            .assert_problem(404);
        let beta = token(&["beta"], &["admin"], "bob");
        app.as_user(
            &beta,
            "beta",
            Method::GET,
            "/crm/marketing/campaigns/camp-quiet/analytics",
        )
        .send()
        .await
        .assert_problem(404);
        app.anonymous(Method::GET, "/crm/marketing/campaigns/camp-quiet/analytics")
            .send()
            .await
            .assert_problem(401);
        // Any role reads analytics.
        let analyst = token(&["acme"], &["analyst"], "ana");
        let read = app
            .as_user(
                &analyst,
                "acme",
                Method::GET,
                "/crm/marketing/campaigns/camp-quiet/analytics",
            )
            .send()
            .await;
        assert_eq!(read.status, 200, "{}", read.text);
    }
);

db_test!(
    aggregated_metrics_answers_the_seed_request_and_refuses_bad_bodies_with_field_errors,
    |app: TestApp| async move {
        create(&app, draft("camp-1", &["email"])).await;
        let reply = seed_request(
            &app,
            &app.admin,
            "acme",
            json!(["camp-1", "camp-2", "camp-3"]),
        )
        .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(
            reply.body["range"],
            json!({"start": "2026-04-01", "end": "2026-04-30"})
        );
        assert_eq!(reply.body["missing"], json!(["camp-2", "camp-3"]));
        assert_zero(&reply.body["totals"]);
        assert_zero(&reply.body["campaigns"]["camp-1"]);
        assert!(reply.body["campaigns"].get("camp-2").is_none());
        let series = reply.body["series"].as_array().unwrap();
        assert_eq!(series.len(), 30, "one entry per day, zero-filled");
        assert_eq!(series[0]["date"], "2026-04-01");
        assert_eq!(series[29]["date"], "2026-04-30");
        assert_zero(&series[12]);

        // Timestamps stand for their UTC day.
        let stamped = aggregate(
            &app,
            json!({"campaignIds": ["camp-1"],
                "range": {"start": "2026-03-31T22:00:00-05:00", "end": "2026-04-02T23:59:59Z"}}),
        )
        .await;
        assert_eq!(stamped.status, 200, "{}", stamped.text);
        assert_eq!(
            stamped.body["range"],
            json!({"start": "2026-04-01", "end": "2026-04-02"})
        );
        assert_eq!(stamped.body["series"].as_array().unwrap().len(), 2);

        let range = json!({"start": "2026-04-01", "end": "2026-04-30"});
        let too_many: Vec<String> = (0..1001).map(|i| format!("camp-{i}")).collect();
        let far_too_many: Vec<String> = (0..10_000).map(|i| format!("camp-{i}")).collect();
        let cases = [
            (json!({"range": range}), vec!["campaignIds"]),
            (
                json!({"campaignIds": "camp-1", "range": range}),
                vec!["campaignIds"],
            ),
            (
                json!({"campaignIds": ["camp-1", 7, null], "range": range}),
                vec!["campaignIds[1]", "campaignIds[2]"],
            ),
            (
                json!({"campaignIds": ["", "has space"], "range": range}),
                vec!["campaignIds[0]", "campaignIds[1]"],
            ),
            (
                json!({"campaignIds": too_many, "range": range}),
                vec!["campaignIds"],
            ),
            (
                json!({"campaignIds": far_too_many, "range": range}),
                vec!["campaignIds"],
            ),
            (
                json!({"campaignIds": ["camp-1"], "range": {"start": "2026-04-30", "end": "2026-04-01"}}),
                vec!["range.end"],
            ),
            (
                json!({"campaignIds": ["camp-1"], "range": {"start": "2006-01-01", "end": "2026-01-01"}}),
                vec!["range"],
            ),
            (
                json!({"campaignIds": ["camp-1"], "range": {"start": "2026-02-30", "end": "April"}}),
                vec!["range.start", "range.end"],
            ),
            (
                json!({"campaignIds": ["camp-1"], "range": {"start": 20260401}}),
                vec!["range.start", "range.end"],
            ),
            (
                json!({"campaignIds": ["camp-1"], "range": "2026-04"}),
                vec!["range"],
            ),
            (json!(["camp-1"]), vec![""]),
        ];
        for (body, expected) in cases {
            let reply = aggregate(&app, body.clone()).await;
            reply.assert_problem(422);
            assert_eq!(fields(&reply), expected, "{}", reply.text);
        }
        // A whole year is fine; a day more is not.
        let year = aggregate(
            &app,
            json!({"campaignIds": ["camp-1"], "range": {"start": "2024-01-01", "end": "2024-12-31"}}),
        )
        .await;
        assert_eq!(year.status, 200, "{}", year.text);
        assert_eq!(year.body["series"].as_array().unwrap().len(), 366);
        // No range: the last 30 days.
        let recent = aggregate(&app, json!({"campaignIds": []})).await;
        assert_eq!(recent.status, 200, "{}", recent.text);
        assert_eq!(recent.body["series"].as_array().unwrap().len(), 30);
        assert_eq!(recent.body["campaigns"], json!({}));
        // Not JSON at all.
        app.admin(Method::POST, "/crm/marketing/campaigns/aggregated-metrics")
            .raw(Some("application/json"), "{\"campaignIds\": [")
            .send()
            .await
            .assert_problem(400);
    }
);

db_test!(
    rollups_sum_exactly_across_days_channels_and_campaigns_of_the_org_only,
    |app: TestApp| async move {
        create(&app, draft("camp-1", &["email", "facebook"])).await;
        create(&app, draft("camp-2", &["email"])).await;
        create(&app, draft("camp-3", &["email"])).await;
        let deleted = app
            .admin(Method::DELETE, "/crm/marketing/campaigns/camp-3")
            .send()
            .await;
        assert_eq!(deleted.status, 204, "{}", deleted.text);
        let globex = token(&["globex"], &["admin"], "gus");
        let foreign = app
            .as_user(&globex, "globex", Method::POST, "/crm/marketing/campaigns")
            .json(&draft("camp-g", &["email"]))
            .send()
            .await;
        assert_eq!(foreign.status, 201, "{}", foreign.text);

        let db = db(&app).await;
        let acme = "acme";
        put_day(
            &db,
            (acme, "camp-1", "email", "2026-04-01"),
            &[
                ("sends", 100),
                ("deliveries", 90),
                ("opens", 40),
                ("unique_opens", 30),
                ("machine_opens", 5),
                ("clicks", 12),
                ("unique_clicks", 10),
                ("conversions", 1),
                ("revenue_micros", 100_000),
            ],
        )
        .await;
        put_day(
            &db,
            (acme, "camp-1", "email", "2026-04-30"),
            &[
                ("opens", 3),
                ("unique_opens", 2),
                ("conversions", 1),
                ("revenue_micros", 200_000),
            ],
        )
        .await;
        put_day(
            &db,
            (acme, "camp-1", "facebook", "2026-04-15"),
            &[
                ("sends", 1),
                ("impressions", 1000),
                ("interactions", 50),
                ("clicks", 7),
            ],
        )
        .await;
        put_day(
            &db,
            (acme, "camp-1", "email", "2026-03-31"),
            &[("sends", 1000)],
        )
        .await;
        put_day(
            &db,
            (acme, "camp-1", "email", "2026-05-01"),
            &[("sends", 1000)],
        )
        .await;
        put_day(
            &db,
            (acme, "camp-2", "email", "2026-04-10"),
            &[
                ("sends", 10),
                ("unique_opens", 5),
                ("opens", 6),
                ("unique_clicks", 1),
                ("clicks", 1),
                ("conversions", 1),
                ("revenue_micros", 19_990_000),
            ],
        )
        .await;
        put_day(
            &db,
            (acme, "camp-3", "email", "2026-04-20"),
            &[("sends", 5), ("revenue_micros", 10_000)],
        )
        .await;
        put_day(
            &db,
            ("globex", "camp-g", "email", "2026-04-10"),
            &[("sends", 999), ("revenue_micros", 1_000_000_000)],
        )
        .await;

        let reply = seed_request(
            &app,
            &app.admin,
            "acme",
            json!(["camp-1", "camp-2", "camp-3", "camp-g", "camp-1"]),
        )
        .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let body = &reply.body;
        assert_eq!(
            body["missing"],
            json!(["camp-g"]),
            "another org's id is missing"
        );
        let totals = &body["totals"];
        assert_eq!(totals["sends"], 116);
        assert_eq!(totals["deliveries"], 90);
        assert_eq!(totals["opens"], 49);
        assert_eq!(totals["uniqueOpens"], 37);
        assert_eq!(totals["machineOpens"], 5);
        assert_eq!(totals["clicks"], 20);
        assert_eq!(totals["uniqueClicks"], 11);
        assert_eq!(totals["conversions"], 3);
        assert_eq!(totals["impressions"], 1000);
        assert_eq!(totals["interactions"], 50);
        // 0.1 + 0.2 + 19.99 + 0.01, summed as micro-units: exactly 20.3.
        assert!(reply.text.contains("\"revenue\":20.3,"), "{}", reply.text);
        assert_eq!(totals["revenue"], 20.3);
        assert_eq!(totals["openRate"], 37.0 / 90.0);
        assert_eq!(totals["clickRate"], 11.0 / 90.0);

        let campaigns = &body["campaigns"];
        assert_eq!(campaigns.as_object().unwrap().len(), 3);
        assert_eq!(
            campaigns["camp-1"]["revenue"], 0.3,
            "not 0.30000000000000004"
        );
        assert_eq!(campaigns["camp-1"]["sends"], 101);
        assert_eq!(campaigns["camp-2"]["revenue"], 19.99);
        // No deliveries reported: rates are over sends.
        assert_eq!(campaigns["camp-2"]["openRate"], 0.5);
        assert_eq!(campaigns["camp-2"]["clickRate"], 0.1);
        assert_eq!(
            campaigns["camp-3"]["sends"], 5,
            "a deleted campaign still counts"
        );
        assert_eq!(campaigns["camp-3"]["revenue"], 0.01);
        assert_eq!(body["channels"]["email"]["sends"], 115);
        assert_eq!(body["channels"]["facebook"]["impressions"], 1000);

        let series = body["series"].as_array().unwrap();
        assert_eq!(series.len(), 30);
        assert_eq!(series[0]["date"], "2026-04-01");
        assert_eq!(series[0]["sends"], 100);
        assert_eq!(series[0]["revenue"], 0.1);
        assert_eq!(series[9]["date"], "2026-04-10");
        assert_eq!(series[9]["revenue"], 19.99);
        assert_eq!(series[14]["impressions"], 1000);
        assert_eq!(series[29]["revenue"], 0.2);
        assert_zero(&series[1]);
        let summed: i64 = series.iter().map(|d| d["sends"].as_i64().unwrap()).sum();
        assert_eq!(summed, 116, "the series adds up to the totals");

        // The other org sees only its own campaign, and none of acme's.
        let theirs = seed_request(&app, &globex, "globex", json!(["camp-g", "camp-1"])).await;
        assert_eq!(theirs.status, 200, "{}", theirs.text);
        assert_eq!(theirs.body["missing"], json!(["camp-1"]));
        assert_eq!(theirs.body["totals"]["sends"], 999);
        assert_eq!(theirs.body["totals"]["revenue"], 1000);

        // One campaign, all time, a range, and a timestamp whose UTC day is the next one.
        let all_time = campaign_analytics(&app, "camp-1", "").await;
        assert_eq!(all_time["totals"]["sends"], 2101);
        assert_eq!(all_time["channels"]["email"]["sends"], 2100);
        assert_eq!(all_time["channels"]["facebook"]["interactions"], 50);
        assert_eq!(all_time["updatedAt"], "2026-05-02T08:00:00.000000Z");
        let april = campaign_analytics(&app, "camp-1", "?from=2026-04-01&to=2026-04-30").await;
        assert_eq!(april["totals"]["sends"], 101);
        assert_eq!(april["totals"]["revenue"], 0.3);
        assert_eq!(april["totals"]["openRate"], 32.0 / 90.0);
        let late = campaign_analytics(
            &app,
            "camp-1",
            "?from=2026-04-01&to=2026-04-30T20:00:00-05:00",
        )
        .await;
        assert_eq!(late["range"]["to"], "2026-05-01");
        assert_eq!(late["totals"]["sends"], 1101);
        let open_ended = campaign_analytics(&app, "camp-1", "?from=2026-05-01").await;
        assert_eq!(open_ended["totals"]["sends"], 1000);
        assert_eq!(
            open_ended["range"],
            json!({"from": "2026-05-01", "to": null})
        );
        let deleted = campaign_analytics(&app, "camp-3", "").await;
        assert_eq!(
            deleted["totals"]["revenue"], 0.01,
            "a deleted campaign keeps its analytics"
        );

        // The dashboard: the whole org, ranked by revenue then clicks.
        let dashboard = app
            .admin(
                Method::GET,
                "/api/crm/marketing/dashboard?from=2026-04-01&to=2026-04-30",
            )
            .send()
            .await;
        assert_eq!(dashboard.status, 200, "{}", dashboard.text);
        let view = &dashboard.body;
        assert_eq!(
            view["range"],
            json!({"from": "2026-04-01", "to": "2026-04-30", "days": 30})
        );
        assert_eq!(view["tiles"]["sends"], 116);
        assert_eq!(view["tiles"]["opens"], 49);
        assert_eq!(view["tiles"]["clicks"], 20);
        assert_eq!(view["tiles"]["conversions"], 3);
        assert_eq!(view["tiles"]["revenue"], 20.3);
        assert_eq!(view["tiles"]["openRate"], 37.0 / 90.0);
        assert_eq!(view["series"].as_array().unwrap().len(), 30);
        let top: Vec<(&str, &str, bool)> = view["topCampaigns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["campaignId"].as_str().unwrap(),
                    c["name"].as_str().unwrap(),
                    c["deleted"].as_bool().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            top,
            [
                ("camp-2", "Campaign camp-2", false),
                ("camp-1", "Campaign camp-1", false),
                ("camp-3", "Campaign camp-3", true)
            ]
        );
        let week = app
            .admin(Method::GET, "/crm/marketing/dashboard?days=7&to=2026-04-10")
            .send()
            .await;
        assert_eq!(week.status, 200, "{}", week.text);
        assert_eq!(week.body["range"]["from"], "2026-04-04");
        assert_eq!(week.body["tiles"]["sends"], 10);
        let theirs = app
            .as_user(
                &globex,
                "globex",
                Method::GET,
                "/crm/marketing/dashboard?from=2026-04-01&to=2026-04-30",
            )
            .send()
            .await;
        assert_eq!(theirs.body["tiles"]["sends"], 999);
        assert_eq!(theirs.body["topCampaigns"][0]["campaignId"], "camp-g");
        assert_eq!(theirs.body["topCampaigns"].as_array().unwrap().len(), 1);
    }
);

db_test!(
    the_dashboard_counts_running_and_scheduled_campaigns_and_refuses_bad_ranges,
    |app: TestApp| async move {
        app.make_ready().await;
        let mut later = seed_campaign();
        later["id"] = json!("camp-later");
        later["status"] = json!("scheduled");
        let start = chrono::Utc::now() + chrono::Duration::days(300);
        later["schedule"] = json!({"startAt": start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "timezone": "UTC"});
        create(&app, later).await;
        create(&app, draft("camp-draft", &["email"])).await;
        let counted = eventually(Duration::from_secs(20), || async {
            let reply = app
                .admin(Method::GET, "/crm/marketing/dashboard")
                .send()
                .await;
            reply.body["tiles"]["scheduledCampaigns"] == 1
        })
        .await;
        assert!(counted, "the scheduled campaign is counted");
        let reply = app
            .admin(Method::GET, "/crm/marketing/dashboard")
            .send()
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(reply.body["tiles"]["activeCampaigns"], 0);
        assert_eq!(reply.body["range"]["days"], 30);
        let today = chrono::Utc::now().date_naive().to_string();
        assert_eq!(reply.body["range"]["to"], today.as_str());
        let series = reply.body["series"].as_array().unwrap();
        assert_eq!(series.len(), 30);
        assert_eq!(series[29]["date"], today.as_str());
        assert_eq!(reply.body["topCampaigns"], json!([]));
        assert_zero(&reply.body["tiles"]);

        for query in [
            "days=0",
            "days=367",
            "days=thirty",
            "days=-5",
            "days=7&from=2026-04-01",
            "from=2026-04-02&to=2026-04-01",
            "from=2025-01-01&to=2026-04-01",
            "from=01/04/2026",
        ] {
            app.admin(Method::GET, &format!("/crm/marketing/dashboard?{query}"))
                .send()
                .await
                .assert_problem(400);
        }
        let year = app
            .admin(Method::GET, "/crm/marketing/dashboard?days=366")
            .send()
            .await;
        assert_eq!(year.status, 200, "{}", year.text);
    }
);

/// Writes one row of the contact activity log, as the projection would.
async fn put_activity(
    db: &herald::db::Db,
    contact: &str,
    (position, seq): (i64, i64),
    kind: &str,
    detail: Value,
) {
    sqlx::query(
        "insert into contact_activities (org_id, contact_id, position, seq, type, campaign_id, channel, at, detail)
         values ('acme', $1, $2, $3, $4, 'camp-1', 'email', $5, $6)",
    )
    .bind(contact)
    .bind(position)
    .bind(seq)
    .bind(kind)
    .bind(format!("2026-05-02T10:00:{position:02}.000Z"))
    .bind(detail.to_string())
    .execute(&db.write)
    .await
    .unwrap();
}

db_test!(
    a_contacts_activity_log_pages_newest_first_and_filters_by_type,
    |app: TestApp| async move {
        let created = app
            .admin(Method::POST, "/crm/contacts")
            .json(&json!({"id": "ct-ann", "email": "ann@acme.test"}))
            .send()
            .await;
        assert_eq!(created.status, 201, "{}", created.text);
        let empty = app
            .admin(Method::GET, "/crm/contacts/ct-ann/activities")
            .send()
            .await;
        assert_eq!(empty.body, json!({"items": [], "nextCursor": null}));

        let db = db(&app).await;
        put_activity(&db, "ct-ann", (10, 0), "send", json!({"runId": "run-1"})).await;
        put_activity(&db, "ct-ann", (10, 1), "bounce", json!({"runId": "run-1"})).await;
        put_activity(
            &db,
            "ct-ann",
            (12, 0),
            "open",
            json!({"runId": "run-1", "classification": "human", "source": "tracking"}),
        )
        .await;
        put_activity(
            &db,
            "ct-ann",
            (13, 0),
            "click",
            json!({"link": "https://acme.test/spring", "classification": "human"}),
        )
        .await;
        put_activity(
            &db,
            "ct-ann",
            (20, 0),
            "conversion",
            json!({"value": "19.99", "currency": "USD", "source": "api", "type": "ignored"}),
        )
        .await;
        put_activity(&db, "ct-other", (21, 0), "open", json!({})).await;

        let mut seen = Vec::new();
        let mut cursor = String::new();
        for _ in 0..5 {
            let reply = app
                .admin(
                    Method::GET,
                    &format!("/crm/contacts/ct-ann/activities?limit=2{cursor}"),
                )
                .send()
                .await;
            assert_eq!(reply.status, 200, "{}", reply.text);
            seen.extend(reply.body["items"].as_array().unwrap().iter().cloned());
            match reply.body["nextCursor"].as_str() {
                Some(next) => cursor = format!("&cursor={next}"),
                None => break,
            }
        }
        let types: Vec<&str> = seen.iter().map(|i| i["type"].as_str().unwrap()).collect();
        assert_eq!(types, ["conversion", "click", "open", "bounce", "send"]);
        assert_eq!(
            seen[0],
            json!({"type": "conversion", "campaignId": "camp-1", "channel": "email",
                "at": "2026-05-02T10:00:20.000Z", "value": 19.99, "currency": "USD", "source": "api"})
        );
        assert_eq!(seen[1]["link"], "https://acme.test/spring");

        let filtered = app
            .admin(
                Method::GET,
                "/crm/contacts/ct-ann/activities?type=open,click",
            )
            .send()
            .await;
        let types: Vec<&str> = filtered.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["type"].as_str().unwrap())
            .collect();
        assert_eq!(types, ["click", "open"]);

        for query in [
            "type=opened",
            "cursor=not-a-cursor",
            "limit=0",
            "limit=many",
        ] {
            app.admin(
                Method::GET,
                &format!("/crm/contacts/ct-ann/activities?{query}"),
            )
            .send()
            .await
            .assert_problem(400);
        }
        app.admin(Method::GET, "/crm/contacts/ct-nobody/activities")
            .send()
            .await
            .assert_problem(404);
        let beta = token(&["beta"], &["analyst"], "bob");
        app.as_user(
            &beta,
            "beta",
            Method::GET,
            "/crm/contacts/ct-ann/activities",
        )
        .send()
        .await
        .assert_problem(404);
        assert_eq!(
            app.admin(Method::DELETE, "/crm/contacts/ct-ann")
                .send()
                .await
                .status,
            204
        );
        app.admin(Method::GET, "/crm/contacts/ct-ann/activities")
            .send()
            .await
            .assert_problem(404);
    }
);

db_test!(
    a_conversion_reported_late_is_listed_below_a_later_open,
    |app: TestApp| async move {
        app.make_ready().await;
        let imported = app
            .admin(Method::POST, "/crm/contacts/import")
            .json(&json!([{"id": "ct-ann", "email": "ann@acme.test", "tags": ["prospect"]}]))
            .send()
            .await;
        assert_eq!(imported.status, 200, "{}", imported.text);
        let mut body = seed_campaign();
        body.as_object_mut().unwrap().remove("schedule");
        body["id"] = json!("camp-1");
        body["channels"] = json!(["email"]);
        body["status"] = json!("running");
        create(&app, body).await;
        let sent = eventually(Duration::from_secs(30), || async {
            !sandbox(&app, "campaignId=camp-1").await.is_empty()
        })
        .await;
        assert!(sent, "the campaign sent to ct-ann");
        let message = sandbox(&app, "campaignId=camp-1").await.remove(0);
        assert_eq!(
            follow(&app, Method::GET, &message["trackingUrls"]["open"], BROWSER).await,
            200
        );
        // Recorded after the send and the open, but it happened an hour before both.
        let converted_at = chrono::Utc::now() - chrono::Duration::hours(1);
        let reply = app
            .admin(Method::POST, "/crm/marketing/campaigns/camp-1/engagements")
            .json(
                &json!([{"type": "conversion", "channel": "email", "contactId": "ct-ann",
                "value": 19.99, "currency": "USD", "occurredAt": converted_at.to_rfc3339()}]),
            )
            .send()
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(reply.body["recorded"], 1, "{}", reply.text);
        let recorded = eventually(Duration::from_secs(30), || async {
            let reply = app
                .admin(Method::GET, "/crm/contacts/ct-ann/activities")
                .send()
                .await;
            reply.body["items"].as_array().is_some_and(|i| i.len() == 3)
        })
        .await;
        assert!(
            recorded,
            "the send, the open and the conversion reached the log"
        );

        // One item a page, so the cursor has to follow the same order.
        let mut seen = Vec::new();
        let mut cursor = String::new();
        for _ in 0..4 {
            let reply = app
                .admin(
                    Method::GET,
                    &format!("/crm/contacts/ct-ann/activities?limit=1{cursor}"),
                )
                .send()
                .await;
            assert_eq!(reply.status, 200, "{}", reply.text);
            seen.extend(reply.body["items"].as_array().unwrap().iter().cloned());
            match reply.body["nextCursor"].as_str() {
                Some(next) => cursor = format!("&cursor={next}"),
                None => break,
            }
        }
        let types: Vec<&str> = seen.iter().map(|i| i["type"].as_str().unwrap()).collect();
        assert_eq!(types, ["open", "send", "conversion"], "{seen:?}");
        let times: Vec<&str> = seen.iter().map(|i| i["at"].as_str().unwrap()).collect();
        let mut newest_first = times.clone();
        newest_first.sort_by(|a, b| b.cmp(a));
        assert_eq!(times, newest_first);
    }
);

const BROWSER: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Safari/605.1.15";

/// Fetches a tracking URL of the sandbox outbox on the test server (the configured public URL
/// is not its address) as `agent`, and returns the status.
async fn follow(app: &TestApp, method: Method, url: &Value, agent: &str) -> u16 {
    let url = url.as_str().expect("a tracking URL");
    let path = &url[url.find("/connect/").expect("a /connect/ URL")..];
    app.client
        .request(method, app.url(path))
        .header("user-agent", agent)
        .send()
        .await
        .expect("request")
        .status()
        .as_u16()
}

db_test!(
    a_launched_campaigns_opens_clicks_and_conversions_reach_every_analytics_endpoint,
    |app: TestApp| async move {
        app.make_ready().await;
        let template = json!({"id": "tpl-links", "name": "Links",
            "email": {"subject": "Spring is here, {{ contact.firstName }}",
                "html": "<html><body><p>Hi {{ contact.firstName }}</p><a href=\"https://acme.test/spring\">Shop</a></body></html>"}});
        let reply = app
            .admin(Method::POST, "/crm/marketing/templates")
            .json(&template)
            .send()
            .await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        let contacts: Vec<Value> = (0..1000)
            .map(|i| {
                json!({"id": format!("ct-{i:04}"), "email": format!("c{i}@acme.test"),
                "firstName": format!("C{i}"), "tags": ["prospect"]})
            })
            .collect();
        let reply = app
            .admin(Method::POST, "/crm/contacts/import")
            .json(&Value::Array(contacts))
            .send()
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(reply.body["created"], 1000, "{}", reply.text);
        create(
            &app,
            json!({"id": "camp-e2e", "name": "Spring e2e", "type": "one-shot",
            "channels": ["email"], "audienceId": "aud-spring-prospects", "templateId": "tpl-links",
            "status": "running"}),
        )
        .await;
        let completed = eventually(Duration::from_secs(60), || async {
            app.get_campaign("camp-e2e").await.body["status"] == "completed"
        })
        .await;
        assert!(completed, "{}", app.get_campaign("camp-e2e").await.text);
        let mut messages = sandbox(&app, "campaignId=camp-e2e").await;
        messages.sort_by_key(|m| m["contactId"].as_str().unwrap_or_default().to_string());
        assert_eq!(messages.len(), 1000);

        // 20 people open (10 of them twice), 5 click; a privacy proxy opens one more message
        // and a scanner follows one more link.
        for (i, message) in messages.iter().enumerate() {
            let urls = &message["trackingUrls"];
            let times = match i {
                0..10 => 2,
                10..20 => 1,
                _ => 0,
            };
            for _ in 0..times {
                assert_eq!(follow(&app, Method::GET, &urls["open"], BROWSER).await, 200);
            }
            if i < 5 {
                assert_eq!(
                    follow(&app, Method::GET, &urls["clicks"][0], BROWSER).await,
                    302
                );
            }
        }
        // One person unsubscribes with the one-click link.
        assert_eq!(
            follow(
                &app,
                Method::POST,
                &messages[30]["trackingUrls"]["unsubscribe"],
                BROWSER
            )
            .await,
            200
        );
        let proxy = &messages[49]["trackingUrls"];
        assert_eq!(
            follow(&app, Method::GET, &proxy["open"], "Mozilla/5.0").await,
            200
        );
        let scanned = &messages[48]["trackingUrls"];
        assert_eq!(
            follow(
                &app,
                Method::GET,
                &scanned["clicks"][0],
                "Mimecast Link Scanner"
            )
            .await,
            302
        );
        // Money the client reports: 19.99 + 0.1 + 0.2 now, and 5 back in April (the seed's range).
        let reply = app
            .admin(Method::POST, "/crm/marketing/campaigns/camp-e2e/engagements")
            .json(&json!([
                {"type": "conversion", "channel": "email", "contactId": "ct-0000", "value": 19.99, "currency": "USD"},
                {"type": "conversion", "channel": "email", "contactId": "ct-0001", "value": "0.1", "currency": "USD"},
                {"type": "revenue", "channel": "email", "contactId": "ct-0001", "value": 0.2, "currency": "USD"},
                {"type": "conversion", "channel": "email", "contactId": "ct-0002", "value": 5, "currency": "USD",
                    "occurredAt": "2026-04-15T12:00:00Z"}
            ]))
            .send()
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);

        // The projection is asynchronous: wait until the last engagements show.
        let caught_up = eventually(Duration::from_secs(30), || async {
            let body = campaign_analytics(&app, "camp-e2e", "").await;
            body["totals"]["conversions"] == 3 && body["totals"]["machineClicks"] == 1
        })
        .await;
        let body = campaign_analytics(&app, "camp-e2e", "").await;
        assert!(caught_up, "{body}");
        let totals = &body["totals"];
        let expected = json!({"sends": 1000, "failures": 0, "deliveries": 1000, "opens": 30,
            "uniqueOpens": 20, "machineOpens": 1, "clicks": 5, "uniqueClicks": 5, "machineClicks": 1,
            "replies": 0, "bounces": 0, "complaints": 0, "unsubscribes": 1, "conversions": 3,
            "revenue": 25.29, "impressions": 0, "interactions": 0, "capped": 0, "openRate": 0.02, "clickRate": 0.005});
        assert_eq!(totals, &expected, "{body}");
        assert_eq!(body["channels"], json!({"email": expected}));
        assert!(body["updatedAt"].as_str().unwrap().ends_with('Z'));
        let april = campaign_analytics(&app, "camp-e2e", "?from=2026-04-15&to=2026-04-15").await;
        assert_eq!(april["totals"]["conversions"], 1);
        assert_eq!(april["totals"]["revenue"], 5);
        assert_eq!(april["totals"]["sends"], 0);

        // The seed's request, verbatim: only April's conversion falls in its range.
        let seed = seed_request(&app, &app.admin, "acme", json!(["camp-e2e", "camp-2"])).await;
        assert_eq!(seed.status, 200, "{}", seed.text);
        assert_eq!(seed.body["missing"], json!(["camp-2"]));
        assert_eq!(seed.body["totals"]["conversions"], 1);
        assert_eq!(seed.body["totals"]["revenue"], 5);
        assert_eq!(seed.body["campaigns"]["camp-e2e"]["revenue"], 5);
        assert_eq!(seed.body["series"][14]["date"], "2026-04-15");
        assert_eq!(seed.body["series"][14]["conversions"], 1);
        // The last two days hold the send and everything people did.
        let today = chrono::Utc::now().date_naive();
        let recent = aggregate(
            &app,
            json!({"campaignIds": ["camp-e2e"], "range": {
            "start": (today - chrono::Duration::days(1)).to_string(), "end": today.to_string()}}),
        )
        .await;
        assert_eq!(recent.status, 200, "{}", recent.text);
        let recent_totals = &recent.body["totals"];
        assert_eq!(recent_totals["sends"], 1000);
        assert_eq!(recent_totals["uniqueOpens"], 20);
        assert_eq!(recent_totals["clicks"], 5);
        assert_eq!(recent_totals["conversions"], 2);
        assert_eq!(recent_totals["revenue"], 20.29);
        assert_eq!(recent.body["campaigns"]["camp-e2e"], recent.body["totals"]);

        let dashboard = app
            .admin(Method::GET, "/crm/marketing/dashboard")
            .send()
            .await;
        assert_eq!(dashboard.status, 200, "{}", dashboard.text);
        let tiles = &dashboard.body["tiles"];
        assert_eq!(tiles["sends"], 1000);
        assert_eq!(tiles["opens"], 30);
        assert_eq!(tiles["clicks"], 5);
        assert_eq!(tiles["conversions"], 2);
        assert_eq!(tiles["revenue"], 20.29);
        assert_eq!(tiles["openRate"], 0.02);
        assert_eq!(tiles["clickRate"], 0.005);
        assert_eq!(tiles["activeCampaigns"], 0, "the campaign has completed");
        let top = &dashboard.body["topCampaigns"];
        assert_eq!(top.as_array().unwrap().len(), 1, "{top}");
        assert_eq!(top[0]["campaignId"], "camp-e2e");
        assert_eq!(top[0]["name"], "Spring e2e");
        assert_eq!(top[0]["revenue"], 20.29);

        // ct-0000's log, newest first.
        let log = app
            .admin(Method::GET, "/crm/contacts/ct-0000/activities")
            .send()
            .await;
        assert_eq!(log.status, 200, "{}", log.text);
        let items = log.body["items"].as_array().unwrap();
        let types: Vec<&str> = items.iter().map(|i| i["type"].as_str().unwrap()).collect();
        assert_eq!(
            types,
            ["conversion", "click", "open", "open", "send"],
            "{}",
            log.text
        );
        assert_eq!(items[0]["value"], 19.99);
        assert_eq!(items[0]["currency"], "USD");
        assert_eq!(items[1]["link"], "https://acme.test/spring");
        assert_eq!(items[2]["classification"], "human");
        for item in items {
            assert_eq!(item["campaignId"], "camp-e2e");
            assert_eq!(item["channel"], "email");
            assert!(item["at"].as_str().unwrap().ends_with('Z'));
        }
        let proxied = app
            .admin(Method::GET, "/crm/contacts/ct-0049/activities?type=open")
            .send()
            .await;
        assert_eq!(proxied.body["items"][0]["classification"], "machine");

        // A replay of the projection from position 0 rebuilds the same numbers.
        let dashboard_before = dashboard.body["tiles"].clone();
        let log_before = log.body["items"].clone();
        let db = db(&app).await;
        let tables = ["analytics_daily", "analytics_uniques", "contact_activities"];
        let before = read_models(&db).await;
        for table in tables {
            assert!(
                !before[table].is_empty(),
                "{table} is empty before the replay"
            );
        }
        // Only the rebuild can bring the rows back.
        wipe(&db, &tables).await;
        let replayed = herald::projector::rebuild(&db, herald::projector::Projection::Analytics)
            .await
            .unwrap();
        assert!(replayed > 0, "the rebuild replayed no events");
        assert_eq!(read_models(&db).await, before);
        let replayed = campaign_analytics(&app, "camp-e2e", "").await;
        assert_eq!(replayed["totals"], expected, "{replayed}");
        assert_eq!(replayed["channels"], json!({"email": expected}));
        let dashboard = app
            .admin(Method::GET, "/crm/marketing/dashboard")
            .send()
            .await;
        assert_eq!(dashboard.body["tiles"], dashboard_before);
        let log = app
            .admin(Method::GET, "/crm/contacts/ct-0000/activities")
            .send()
            .await;
        assert_eq!(log.body["items"], log_before);

        // A deleted campaign keeps its history.
        let deleted = app
            .admin(Method::DELETE, "/crm/marketing/campaigns/camp-e2e")
            .send()
            .await;
        assert_eq!(deleted.status, 204, "{}", deleted.text);
        let after = campaign_analytics(&app, "camp-e2e", "").await;
        assert_eq!(after["totals"], expected);
        let seed = seed_request(&app, &app.admin, "acme", json!(["camp-e2e"])).await;
        assert_eq!(seed.body["missing"], json!([]));
        assert_eq!(seed.body["totals"]["revenue"], 5);
    }
);
