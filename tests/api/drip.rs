//! Drip and milestone campaigns (`api.md` section 11): steps sent on each contact's own clock,
//! once each, with the step's id in the tracking URLs; `when` skips; enrollments listed with
//! their step statuses; pause holds, complete and delete cancel; bad sequences are `422`.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::db_test;
use crate::helpers::*;

const BROWSER: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15";

async fn prepare(app: &TestApp) {
    app.make_ready().await;
    let template = json!({"id": "tpl-links", "name": "Links",
        "email": {"subject": "Hello {{ contact.firstName }}",
            "html": "<html><body><a href=\"https://acme.test/spring\">Shop</a> <a href=\"{{ unsubscribeUrl }}\">Unsubscribe</a></body></html>"},
        "sms": {"body": "Hi! Stop: {{ unsubscribeUrl }}"}});
    let reply = app
        .admin(Method::POST, "/crm/marketing/templates")
        .json(&template)
        .send()
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let reply = app
        .admin(Method::POST, "/crm/contacts/import")
        .json(&json!([
            {"id": "ct-ann", "email": "ann@acme.test", "firstName": "Ann", "tags": ["prospect"]},
            {"id": "ct-bob", "email": "bob@acme.test", "firstName": "Bob", "tags": ["vip"]},
            {"id": "ct-eve", "email": "eve@acme.test", "tags": ["customer"]}
        ]))
        .send()
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
}

async fn wait_for_status(app: &TestApp, id: &str, status: &str, seconds: u64) {
    let reached = eventually(Duration::from_secs(seconds), || async {
        app.get_campaign(id).await.body["status"] == status
    })
    .await;
    assert!(
        reached,
        "campaign {id} never became {status}: {}",
        app.get_campaign(id).await.text
    );
}

/// The tracking path of a message's URL (the public URL is not the test server's).
fn path_of(url: &Value) -> String {
    let url = url.as_str().expect("a tracking URL");
    url[url.find("/connect/").expect("a /connect/ URL")..].to_string()
}

/// A `200` answer's body of a campaign's sub-resource (`enrollments?…`, `analytics`).
async fn campaign_read(app: &TestApp, id: &str, path: &str) -> Value {
    let reply = app
        .admin(
            Method::GET,
            &format!("/crm/marketing/campaigns/{id}/{path}"),
        )
        .send()
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.body
}

async fn enrollments(app: &TestApp, id: &str, query: &str) -> Value {
    campaign_read(app, id, &format!("enrollments{query}")).await
}

db_test!(
    a_launched_drip_sends_each_step_once_with_its_step_id_skips_by_when_and_completes,
    |app: TestApp| async move {
        prepare(&app).await;
        let body = json!({"id": "camp-drip", "name": "Welcome series", "type": "drip",
            "channels": ["email"], "audienceId": "aud-spring-prospects", "templateId": "tpl-links",
            "steps": [
                {"id": "welcome", "delay": "PT0S"},
                {"id": "nudge", "delay": "PT4S", "when": {"notClicked": "welcome"}}
            ],
            "status": "running"});
        let created = app.post_campaign(&body).await;
        assert_eq!(created.status, 201, "{}", created.text);
        assert_eq!(
            created.body["steps"], body["steps"],
            "steps are kept as given"
        );

        // The first step goes out at once to the audience at launch.
        let welcomed = eventually(Duration::from_secs(20), || async {
            sandbox(&app, "campaignId=camp-drip").await.len() == 2
        })
        .await;
        let messages = sandbox(&app, "campaignId=camp-drip").await;
        assert!(
            welcomed,
            "the welcome step was not sent to both: {messages:?}"
        );
        for message in &messages {
            let unsubscribe = path_of(&message["trackingUrls"]["unsubscribe"]);
            assert!(
                unsubscribe.starts_with("/connect/automation/camp-drip/welcome/unsubscribe"),
                "{unsubscribe}"
            );
        }
        let launched = app.campaign_events("camp-drip").await;
        let launched = launched
            .iter()
            .find(|e| e["eventType"] == "Launched")
            .expect("a Launched event");
        assert_eq!(
            launched["data"]["reach"], 2,
            "lastRun.reach counts the enrolled audience"
        );

        // Ann clicks the welcome email: the nudge (sent when she has not clicked) skips her.
        let ann = messages
            .iter()
            .find(|m| m["contactId"] == "ct-ann")
            .expect("ann's welcome");
        let click = path_of(&ann["trackingUrls"]["clicks"][0]);
        assert!(
            click.starts_with("/connect/automation/camp-drip/welcome/link/click"),
            "{click}"
        );
        let reply = app
            .anonymous(Method::GET, &click)
            .header("user-agent", BROWSER)
            .send()
            .await;
        assert_eq!(reply.status, 302, "{}", reply.text);

        wait_for_status(&app, "camp-drip", "completed", 40).await;
        let messages = sandbox(&app, "campaignId=camp-drip").await;
        let mut sent: Vec<(String, String)> = messages
            .iter()
            .map(|m| {
                let path = path_of(&m["trackingUrls"]["unsubscribe"]);
                let step = path.split('/').nth(4).unwrap_or_default().to_string();
                (m["contactId"].as_str().unwrap().to_string(), step)
            })
            .collect();
        sent.sort();
        assert_eq!(
            sent,
            [
                ("ct-ann".to_string(), "welcome".to_string()),
                ("ct-bob".to_string(), "nudge".to_string()),
                ("ct-bob".to_string(), "welcome".to_string()),
            ],
            "each step once per contact; ann clicked, so her nudge was skipped"
        );

        let listed = enrollments(&app, "camp-drip", "").await;
        let items = listed["items"].as_array().unwrap();
        assert_eq!(items.len(), 2, "{listed}");
        assert_eq!(items[0]["contactId"], "ct-ann");
        assert_eq!(items[0]["status"], "completed");
        assert_eq!(items[0]["nextStepId"], Value::Null);
        let statuses = |item: &Value| -> Vec<(String, String)> {
            item["steps"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| {
                    (
                        s["id"].as_str().unwrap().to_string(),
                        s["status"].as_str().unwrap().to_string(),
                    )
                })
                .collect()
        };
        assert_eq!(
            statuses(&items[0]),
            [
                ("welcome".to_string(), "sent".to_string()),
                ("nudge".to_string(), "skipped".to_string())
            ]
        );
        assert_eq!(
            statuses(&items[1]),
            [
                ("welcome".to_string(), "sent".to_string()),
                ("nudge".to_string(), "sent".to_string())
            ]
        );
        // Paged by contact, and filtered by status.
        let first = enrollments(&app, "camp-drip", "?limit=1").await;
        assert_eq!(first["items"].as_array().unwrap().len(), 1);
        let cursor = first["nextCursor"].as_str().expect("a next cursor");
        let second = enrollments(&app, "camp-drip", &format!("?limit=1&cursor={cursor}")).await;
        assert_eq!(second["items"][0]["contactId"], "ct-bob");
        let active = enrollments(&app, "camp-drip", "?status=active").await;
        assert_eq!(active["items"], json!([]));
        let reply = app
            .admin(
                Method::GET,
                "/crm/marketing/campaigns/camp-drip/enrollments?status=gone",
            )
            .send()
            .await;
        reply.assert_problem(400);

        // The launch's enrollments are in the log; a purge of the deleted drip takes them out.
        let enrolled = app.all_events().await;
        let enrolled: Vec<&Value> = enrolled
            .iter()
            .filter(|e| e["eventType"] == "ContactsEnrolled")
            .flat_map(|e| e["data"]["contacts"].as_array().unwrap())
            .collect();
        assert_eq!(enrolled.len(), 2, "{enrolled:?}");
        let reply = app
            .admin(Method::DELETE, "/crm/marketing/campaigns/camp-drip")
            .send()
            .await;
        assert!(reply.status.is_success(), "{}", reply.text);
        let reply = app.admin(Method::POST, "/crm/marketing/purge").send().await;
        let done = crate::purge::wait_done(&app, reply.body["jobId"].as_str().unwrap()).await;
        assert_eq!(done["campaignIds"], json!(["camp-drip"]), "{done}");
        let left: Vec<Value> = app
            .all_events()
            .await
            .into_iter()
            .filter(|e| e["streamId"].as_str().unwrap().contains(":camp-drip"))
            .collect();
        assert_eq!(left, Vec::<Value>::new());
        let reply = app
            .admin(
                Method::GET,
                "/crm/marketing/campaigns/camp-drip/enrollments",
            )
            .send()
            .await;
        reply.assert_problem(404);
    }
);

db_test!(
    a_paused_drip_holds_its_steps_and_complete_cancels_them,
    |app: TestApp| async move {
        prepare(&app).await;
        let body = json!({"id": "camp-hold", "name": "Held", "type": "drip",
            "channels": ["email"], "audienceId": "aud-spring-prospects", "templateId": "tpl-links",
            "steps": [
                {"id": "first", "delay": "PT0S"},
                {"id": "second", "delay": "PT3S"},
                {"id": "third", "delay": "P30D"}
            ],
            "status": "running"});
        let created = app.post_campaign(&body).await;
        assert_eq!(created.status, 201, "{}", created.text);
        let first = eventually(Duration::from_secs(20), || async {
            sandbox(&app, "campaignId=camp-hold").await.len() == 2
        })
        .await;
        assert!(first, "the first step was not sent");
        let reply = app
            .admin(Method::POST, "/crm/marketing/campaigns/camp-hold/pause")
            .send()
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        // The second step falls due while paused: held, not sent.
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(sandbox(&app, "campaignId=camp-hold").await.len(), 2);
        let health = app.admin(Method::GET, "/crm/marketing/health").send().await;
        assert_eq!(health.body["queue"]["steps"], 2, "{}", health.text);

        // Editing a running or paused drip's existing steps is refused; adding one is not.
        let mut edited = body.clone();
        edited["steps"][1]["delay"] = json!("PT1H");
        edited.as_object_mut().unwrap().remove("status");
        let reply = app.put_campaign("camp-hold", &edited).await;
        reply.assert_problem(409);
        let mut grown = body.clone();
        grown.as_object_mut().unwrap().remove("status");
        grown["steps"]
            .as_array_mut()
            .unwrap()
            .push(json!({"id": "fourth", "delay": "P1D"}));
        let reply = app.put_campaign("camp-hold", &grown).await;
        assert_eq!(reply.status, 200, "{}", reply.text);

        // Resume: each held step goes out once.
        let reply = app
            .admin(Method::POST, "/crm/marketing/campaigns/camp-hold/resume")
            .send()
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let second = eventually(Duration::from_secs(20), || async {
            sandbox(&app, "campaignId=camp-hold").await.len() == 4
        })
        .await;
        assert!(second, "the held step was not sent once on resume");
        // The enrollments move on once the step's sends are recorded.
        let moved = eventually(Duration::from_secs(10), || async {
            let listed = enrollments(&app, "camp-hold", "?status=active").await;
            listed["items"][0]["nextStepId"] == "third"
                && listed["items"][1]["nextStepId"] == "third"
        })
        .await;
        assert!(moved, "{}", enrollments(&app, "camp-hold", "").await);

        // Complete cancels every pending step, and the queue drops.
        let reply = app
            .admin(Method::POST, "/crm/marketing/campaigns/camp-hold/complete")
            .send()
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let cancelled = eventually(Duration::from_secs(20), || async {
            let health = app.admin(Method::GET, "/crm/marketing/health").send().await;
            health.body["queue"]["steps"] == 0
        })
        .await;
        assert!(cancelled, "pending steps were not cancelled");
        let exited = enrollments(&app, "camp-hold", "?status=exited").await;
        assert_eq!(exited["items"][0]["exitReason"], "campaign-completed");
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(sandbox(&app, "campaignId=camp-hold").await.len(), 4);
    }
);

db_test!(
    api_only malformed_sequences_are_refused_by_field_and_create_nothing,
    |app: TestApp| async move {
        let base = json!({"name": "Bad", "type": "drip", "channels": ["email"]});
        let cases = [
            (json!({}), "steps"),
            (json!({"steps": [{"id": "a"}]}), "steps[0].delay"),
            (json!({"steps": [{"id": "a", "delay": "P1M"}]}), "steps[0].delay"),
            (json!({"steps": [{"id": "a", "delay": "P400D"}]}), "steps[0].delay"),
            (json!({"steps": [{"id": "a", "delay": "-PT5M"}]}), "steps[0].delay"),
            (json!({"steps": [{"id": "a", "delay": "PT0S"}, {"id": "a", "delay": "PT0S"}]}), "steps[1].id"),
            (json!({"steps": [{"id": "a", "delay": "PT0S", "when": {"opened": "b"}}, {"id": "b", "delay": "PT0S"}]}), "steps[0].when.opened"),
            (json!({"steps": [{"id": "a", "delay": "PT0S", "when": {"clicked": "nope"}}]}), "steps[0].when.clicked"),
            (json!({"steps": [{"id": "a", "delay": "PT0S", "channels": ["sms"]}]}), "steps[0].channels[0]"),
            (json!({"steps": [{"id": "a", "delay": "PT0S", "at": "24:00"}]}), "steps[0].at"),
            (json!({"steps": (0..21).map(|i| json!({"id": format!("s{i}"), "delay": "PT0S"})).collect::<Vec<_>>()}), "steps"),
            (json!({"type": "one-shot", "steps": [{"id": "a", "delay": "PT0S"}]}), "steps"),
            (json!({"type": "milestone", "steps": [{"id": "a", "delay": "PT0S"}], "trigger": {"field": "attributes[0]"}}), "trigger.field"),
            (json!({"steps": [{"id": "a", "delay": "PT0S"}], "enrollment": {"event": "click", "campaignId": "camp-unknown"}}), "enrollment.campaignId"),
        ];
        for (changes, field) in cases {
            let mut body = base.clone();
            for (k, v) in changes.as_object().unwrap() {
                body[k] = v.clone();
            }
            let reply = app.post_campaign(&body).await;
            reply.assert_problem(422);
            let fields: Vec<&str> = reply.body["errors"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|e| e["field"].as_str())
                .collect();
            assert!(fields.contains(&field), "{field} not named for {changes}: {}", reply.text);
        }
        let list = app.admin(Method::GET, "/crm/marketing/campaigns").send().await;
        assert_eq!(list.body["items"], json!([]), "nothing was created");
        // Another org's campaign is as unknown as a missing one.
        let theirs = app
            .as_user(&token(&["globex"], &["admin"], "u-globex"), "globex", Method::POST, "/crm/marketing/campaigns")
            .json(&json!({"id": "camp-globex", "name": "Theirs", "type": "one-shot", "channels": ["email"]}))
            .send()
            .await;
        assert_eq!(theirs.status, 201, "{}", theirs.text);
        let mut body = base.clone();
        body["steps"] = json!([{"id": "a", "delay": "PT0S"}]);
        body["enrollment"] = json!({"event": "click", "campaignId": "camp-globex"});
        let reply = app.post_campaign(&body).await;
        reply.assert_problem(422);
        assert!(
            reply.text.contains("is not a campaign of this organization"),
            "{}",
            reply.text
        );
    }
);

/// The contact ids of a campaign's sandbox messages, sorted.
async fn recipients(app: &TestApp, campaign: &str) -> Vec<String> {
    let mut ids: Vec<String> = sandbox(app, &format!("campaignId={campaign}"))
        .await
        .iter()
        .map(|m| m["contactId"].as_str().unwrap_or_default().to_string())
        .collect();
    ids.sort();
    ids
}

async fn analytics(app: &TestApp, id: &str) -> Value {
    campaign_read(app, id, "analytics").await
}

db_test!(
    a_continuous_drip_enrolls_contacts_who_come_to_match_once_and_analytics_counts_each_step,
    |app: TestApp| async move {
        prepare(&app).await;
        let body = json!({"id": "camp-cont", "name": "Always welcome", "type": "drip",
            "channels": ["email"], "audienceId": "aud-spring-prospects", "templateId": "tpl-links",
            "enrollment": "continuous",
            "steps": [{"id": "welcome", "delay": "PT0S"}, {"id": "later", "delay": "P30D"}],
            "status": "running"});
        let created = app.post_campaign(&body).await;
        assert_eq!(created.status, 201, "{}", created.text);
        let launched = eventually(Duration::from_secs(20), || async {
            recipients(&app, "camp-cont").await.len() == 2
        })
        .await;
        assert!(launched, "{:?}", recipients(&app, "camp-cont").await);

        // A new contact who matches, and an update that makes eve match, each enroll.
        let reply = app
            .admin(Method::POST, "/crm/contacts")
            .json(&json!({"id": "ct-dan", "email": "dan@acme.test", "tags": ["prospect"]}))
            .send()
            .await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        let reply = app
            .admin(Method::PUT, "/crm/contacts/ct-eve")
            .json(&json!({"email": "eve@acme.test", "tags": ["vip"]}))
            .send()
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        // A contact who does not match is not enrolled.
        let reply = app
            .admin(Method::POST, "/crm/contacts")
            .json(&json!({"id": "ct-fay", "email": "fay@acme.test", "tags": ["customer"]}))
            .send()
            .await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        let everyone = eventually(Duration::from_secs(20), || async {
            recipients(&app, "camp-cont").await.len() == 4
        })
        .await;
        assert!(everyone, "{:?}", recipients(&app, "camp-cont").await);

        // Updating an enrolled contact again (a re-import) enrolls nobody twice.
        let reply = app
            .admin(Method::POST, "/crm/contacts/import")
            .json(&json!([{"id": "ct-dan", "email": "dan@acme.test", "tags": ["prospect", "vip"]}]))
            .send()
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(
            recipients(&app, "camp-cont").await,
            ["ct-ann", "ct-bob", "ct-dan", "ct-eve"]
        );
        let listed = enrollments(&app, "camp-cont", "").await;
        assert_eq!(listed["items"].as_array().unwrap().len(), 4, "{listed}");

        // Analytics count each step's sends and the enrollments by status.
        let counted = eventually(Duration::from_secs(20), || async {
            let answer = analytics(&app, "camp-cont").await;
            answer["steps"]["welcome"]["sends"] == 4 && answer["totals"]["sends"] == 4
        })
        .await;
        let answer = analytics(&app, "camp-cont").await;
        assert!(counted, "{answer}");
        assert_eq!(answer["steps"]["later"]["sends"], 0, "{answer}");
        assert_eq!(
            answer["enrollments"],
            json!({"active": 4, "completed": 0, "exited": 0})
        );
    }
);

db_test!(
    a_click_on_another_campaign_enrolls_the_contact_in_a_triggered_drip,
    |app: TestApp| async move {
        prepare(&app).await;
        let thanks = json!({"id": "camp-thanks", "name": "Thank you", "type": "drip",
            "channels": ["email"], "audienceId": "aud-spring-prospects", "templateId": "tpl-links",
            "enrollment": {"event": "click", "campaignId": "camp-src"},
            "steps": [{"id": "thanks", "delay": "PT0S"}]});
        // The trigger campaign must exist first.
        let source = json!({"id": "camp-src", "name": "Spring", "type": "one-shot",
            "channels": ["email"], "audienceId": "aud-spring-prospects", "templateId": "tpl-links"});
        let created = app.post_campaign(&source).await;
        assert_eq!(created.status, 201, "{}", created.text);
        let mut running = thanks.clone();
        running["status"] = json!("running");
        let created = app.post_campaign(&running).await;
        assert_eq!(created.status, 201, "{}", created.text);
        // Nobody enters at launch.
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(recipients(&app, "camp-thanks").await.is_empty());

        let reply = app
            .admin(Method::POST, "/crm/marketing/campaigns/camp-src/launch")
            .send()
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let sent = eventually(Duration::from_secs(20), || async {
            recipients(&app, "camp-src").await.len() == 2
        })
        .await;
        assert!(sent);
        let messages = sandbox(&app, "campaignId=camp-src").await;
        let ann = messages
            .iter()
            .find(|m| m["contactId"] == "ct-ann")
            .unwrap();
        let click = path_of(&ann["trackingUrls"]["clicks"][0]);
        for _ in 0..2 {
            let reply = app
                .anonymous(Method::GET, &click)
                .header("user-agent", BROWSER)
                .send()
                .await;
            assert_eq!(reply.status, 302, "{}", reply.text);
        }
        // A conversion is not the trigger's event: bob does not enter.
        let reply = app
            .admin(
                Method::POST,
                "/crm/marketing/campaigns/camp-src/engagements",
            )
            .json(&json!([{"type": "conversion", "channel": "email", "contactId": "ct-bob"}]))
            .send()
            .await;
        assert!(reply.status.is_success(), "{}", reply.text);

        let thanked = eventually(Duration::from_secs(20), || async {
            recipients(&app, "camp-thanks").await == ["ct-ann"]
        })
        .await;
        assert!(thanked, "{:?}", recipients(&app, "camp-thanks").await);
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(
            recipients(&app, "camp-thanks").await,
            ["ct-ann"],
            "two clicks enroll once, and a conversion does not trigger a click drip"
        );
        // A triggered drip keeps running: later clicks still enroll.
        assert_eq!(
            app.get_campaign("camp-thanks").await.body["status"],
            "running"
        );
    }
);

db_test!(
    a_milestone_campaign_sends_at_each_contacts_date_follows_a_moved_date_and_repeats_yearly,
    |app: TestApp| async move {
        prepare(&app).await;
        let soon = |seconds: i64| {
            (chrono::Utc::now() + chrono::Duration::days(7) + chrono::Duration::seconds(seconds))
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        };
        let reply = app
            .admin(Method::POST, "/crm/contacts/import")
            .json(&json!([
                {"id": "ct-ann", "email": "ann@acme.test", "tags": ["prospect"],
                 "attributes": {"renewalAt": soon(4)}},
                {"id": "ct-bob", "email": "bob@acme.test", "tags": ["vip"],
                 "attributes": {"renewalAt": soon(2 * 86_400)}},
                {"id": "ct-dan", "email": "dan@acme.test", "tags": ["vip"],
                 "attributes": {"renewalAt": "next tuesday"}}
            ]))
            .send()
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let body = json!({"id": "camp-renew", "name": "Renewal reminder", "type": "milestone",
            "channels": ["email"], "audienceId": "aud-spring-prospects", "templateId": "tpl-links",
            "trigger": {"field": "attributes.renewalAt", "offset": "-P7D", "repeat": "yearly"},
            "steps": [{"id": "remind", "delay": "PT0S"}],
            "status": "running"});
        let created = app.post_campaign(&body).await;
        assert_eq!(created.status, 201, "{}", created.text);

        // Ann's date comes first; bob's is two days away; dan's is not a date.
        let ann = eventually(Duration::from_secs(30), || async {
            recipients(&app, "camp-renew").await == ["ct-ann"]
        })
        .await;
        assert!(ann, "{:?}", recipients(&app, "camp-renew").await);
        let listed = enrollments(&app, "camp-renew", "").await;
        let items = listed["items"].as_array().unwrap().clone();
        let dan = items.iter().find(|i| i["contactId"] == "ct-dan").unwrap();
        assert_eq!(dan["status"], "exited");
        assert_eq!(dan["exitReason"], "milestone-not-a-date");
        let bob = items.iter().find(|i| i["contactId"] == "ct-bob").unwrap();
        assert_eq!(bob["status"], "active", "{listed}");

        // Yearly: once ann's reminder went out, next year's milestone is enrolled.
        let renewed = eventually(Duration::from_secs(20), || async {
            let listed = enrollments(&app, "camp-renew", "").await;
            listed["items"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|i| i["contactId"] == "ct-ann")
                .map(|i| i["status"].as_str().unwrap_or_default().to_string())
                .collect::<Vec<_>>()
                == ["completed", "active"]
        })
        .await;
        assert!(renewed, "{}", enrollments(&app, "camp-renew", "").await);

        // Bob's date moves to now: his pending milestone follows it and he gets one reminder.
        let reply = app
            .admin(Method::PUT, "/crm/contacts/ct-bob")
            .json(&json!({"email": "bob@acme.test", "tags": ["vip"],
                "attributes": {"renewalAt": soon(2)}}))
            .send()
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let bob = eventually(Duration::from_secs(30), || async {
            recipients(&app, "camp-renew").await == ["ct-ann", "ct-bob"]
        })
        .await;
        assert!(bob, "{:?}", recipients(&app, "camp-renew").await);
        let listed = enrollments(&app, "camp-renew", "").await;
        let moved: Vec<&Value> = listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["contactId"] == "ct-bob")
            .collect();
        assert!(
            moved.iter().any(|i| i["exitReason"] == "milestone-moved"),
            "{listed}"
        );

        // The log holds who entered and who left, with the milestone and the reason.
        let events = app.all_events().await;
        let of_type = |kind: &str| -> Vec<Value> {
            events
                .iter()
                .filter(|e| e["eventType"] == kind)
                .flat_map(|e| {
                    assert_eq!(e["data"]["campaignId"], "camp-renew", "{e}");
                    assert!(
                        e["streamId"]
                            .as_str()
                            .unwrap()
                            .starts_with("enrollment-acme:camp-renew:"),
                        "{e}"
                    );
                    e["data"]["contacts"].as_array().unwrap().clone()
                })
                .collect()
        };
        let entered = of_type("ContactsEnrolled");
        let ann_years = entered
            .iter()
            .filter(|c| c["contactId"] == "ct-ann")
            .count();
        assert_eq!(ann_years, 2, "this year's and next year's: {entered:?}");
        assert!(
            entered
                .iter()
                .all(|c| c["milestone"].as_str().is_some_and(|m| m.len() == 10)),
            "{entered:?}"
        );
        let exited = of_type("EnrollmentsExited");
        let reasons: Vec<(&str, &str)> = exited
            .iter()
            .map(|c| {
                (
                    c["contactId"].as_str().unwrap(),
                    c["reason"].as_str().unwrap(),
                )
            })
            .collect();
        assert!(
            reasons.contains(&("ct-dan", "milestone-not-a-date")),
            "{reasons:?}"
        );
        assert!(
            reasons.contains(&("ct-bob", "milestone-moved")),
            "{reasons:?}"
        );
    }
);

db_test!(
    a_drips_end_at_completes_it_and_cancels_its_pending_steps,
    |app: TestApp| async move {
        prepare(&app).await;
        let end = (chrono::Utc::now() + chrono::Duration::seconds(5))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let body = json!({"id": "camp-ends", "name": "Ends", "type": "drip",
            "channels": ["email"], "audienceId": "aud-spring-prospects", "templateId": "tpl-links",
            "schedule": {"endAt": end},
            "steps": [{"id": "first", "delay": "PT0S"}, {"id": "second", "delay": "P1D"}],
            "status": "running"});
        let created = app.post_campaign(&body).await;
        assert_eq!(created.status, 201, "{}", created.text);
        wait_for_status(&app, "camp-ends", "completed", 30).await;
        let cancelled = eventually(Duration::from_secs(10), || async {
            let listed = enrollments(&app, "camp-ends", "?status=exited").await;
            listed["items"].as_array().unwrap().len() == 2
                && listed["items"][0]["exitReason"] == "campaign-completed"
        })
        .await;
        assert!(cancelled, "{}", enrollments(&app, "camp-ends", "").await);
        assert_eq!(recipients(&app, "camp-ends").await, ["ct-ann", "ct-bob"]);
    }
);
