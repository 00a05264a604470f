//! Dry run and test send (`api.md` section 2): `POST …/preview` renders every channel for one
//! contact and sends nothing; `POST …/test-send` sends one `[Test]` message, counted nowhere
//! and logged as `TestSent`. Links in either work but record nothing.

use reqwest::Method;
use serde_json::{json, Value};

use crate::db_test;
use crate::helpers::*;

async fn prepare(app: &TestApp) {
    app.make_ready().await;
    let template = json!({"id": "tpl-links", "name": "Links",
        "email": {"subject": "Hello {{ contact.firstName }}",
            "html": "<html><body><a href=\"https://acme.test/spring\">Shop</a> <a href=\"{{ unsubscribeUrl }}\">Unsubscribe</a></body></html>"},
        "sms": {"body": "Hi {{ contact.firstName }}! https://acme.test/sms Stop: {{ unsubscribeUrl }}"},
        "social": {"text": "Spring is here", "link": "https://acme.test/social"}});
    let reply = app
        .admin(Method::POST, "/crm/marketing/templates")
        .json(&template)
        .send()
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let reply = app
        .admin(Method::POST, "/crm/contacts/import")
        .json(&json!([
            {"id": "ct-ann", "email": "ann@acme.test", "phone": "+15550001111", "firstName": "Ann", "tags": ["prospect"]},
            {"id": "ct-bob", "email": "bob@acme.test", "firstName": "Bob", "tags": ["vip"]}
        ]))
        .send()
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let reply = app
        .post_campaign(&json!({"id": "camp-pre", "name": "Preview me", "type": "multi-channel",
            "channels": ["email", "sms", "facebook", "google-ads"], "audienceId": "aud-spring-prospects",
            "templateId": "tpl-links", "socialProfiles": {"facebook": "facebook-page"}}))
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
}

/// The tracking path of a message's URL (the public URL is not the test server's).
fn path_of(url: &Value) -> String {
    let url = url.as_str().expect("a URL");
    url[url.find("/connect/").expect("a /connect/ URL")..].to_string()
}

fn message<'a>(messages: &'a Value, channel: &str) -> &'a Value {
    messages
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["channel"] == channel)
        .unwrap_or_else(|| panic!("no {channel} message in {messages}"))
}

async fn count_of(app: &TestApp, kind: &str) -> usize {
    app.all_events()
        .await
        .iter()
        .filter(|e| e["eventType"] == kind)
        .count()
}

db_test!(
    a_preview_renders_every_channel_for_one_contact_and_sends_nothing,
    |app: TestApp| async move {
        prepare(&app).await;
        let before = app.all_events().await.len();
        let analyst = token(&["acme"], &["analyst"], "ana");
        let reply = app
            .as_user(
                &analyst,
                "acme",
                Method::POST,
                "/crm/marketing/campaigns/camp-pre/preview",
            )
            .json(&json!({"contactId": "ct-ann"}))
            .send()
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let messages = &reply.body["messages"];
        let email = message(messages, "email");
        assert_eq!(email["to"], "ann@acme.test");
        assert_eq!(email["subject"], "Hello Ann");
        let click = &email["tracking"]["clicks"][0];
        assert!(
            path_of(click).starts_with("/connect/automation/camp-pre/test/link/click/"),
            "{email}"
        );
        assert!(email["html"].as_str().unwrap().contains("/email/open/"));
        assert_eq!(
            email["headers"]["List-Unsubscribe-Post"],
            "List-Unsubscribe=One-Click"
        );
        let sms = message(messages, "sms");
        assert_eq!(sms["to"], "+15550001111");
        assert!(
            sms["body"].as_str().unwrap().starts_with("Hi Ann! "),
            "{sms}"
        );
        let facebook = message(messages, "facebook");
        assert_eq!(facebook["body"], "Spring is here");
        assert_eq!(facebook["link"], "https://acme.test/social");
        assert!(message(messages, "google-ads")["error"].is_string());

        // Nothing was sent or written.
        assert_eq!(
            sandbox(&app, "campaignId=camp-pre").await,
            Vec::<Value>::new()
        );
        assert_eq!(app.all_events().await.len(), before);

        // Its links work and record nothing.
        let reply = app.anonymous(Method::GET, &path_of(click)).send().await;
        assert_eq!(reply.status, 302, "{}", reply.text);
        assert_eq!(reply.header("location"), Some("https://acme.test/spring"));
        let open = &email["tracking"]["open"];
        let reply = app.anonymous(Method::GET, &path_of(open)).send().await;
        assert_eq!(reply.status, 200);
        let unsubscribe = &email["tracking"]["unsubscribe"];
        let reply = app
            .anonymous(Method::POST, &path_of(unsubscribe))
            .send()
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(count_of(&app, "EngagementRecorded").await, 0);
        assert_eq!(count_of(&app, "SuppressionAdded").await, 0);
        let ann = app.admin(Method::GET, "/crm/contacts/ct-ann").send().await;
        assert_ne!(ann.body["unsubscribed"]["email"], true, "{}", ann.text);

        // Bad input.
        let preview = |body: Value| {
            let app = &app;
            async move {
                app.admin(Method::POST, "/crm/marketing/campaigns/camp-pre/preview")
                    .json(&body)
                    .send()
                    .await
            }
        };
        preview(json!({"contactId": "ct-nobody"}))
            .await
            .assert_problem(404);
        let reply = preview(json!({})).await;
        reply.assert_problem(422);
        assert!(reply.text.contains("contactId"), "{}", reply.text);
        preview(json!({"contactId": 7})).await.assert_problem(422);
        let other = token(&["globex"], &["admin"], "gus");
        app.as_user(
            &other,
            "globex",
            Method::POST,
            "/crm/marketing/campaigns/camp-pre/preview",
        )
        .json(&json!({"contactId": "ct-ann"}))
        .send()
        .await
        .assert_problem(404);
        assert_eq!(app.all_events().await.len(), before);
    }
);

db_test!(
    a_drips_preview_shows_each_step_with_its_own_links,
    |app: TestApp| async move {
        prepare(&app).await;
        let reply = app
            .post_campaign(&json!({"id": "camp-seq", "name": "Sequence", "type": "drip",
                "channels": ["email"], "audienceId": "aud-spring-prospects", "templateId": "tpl-links",
                "steps": [{"id": "hello", "delay": "PT0S"}, {"id": "nudge", "delay": "P2D"}]}))
            .await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        let reply = app
            .admin(Method::POST, "/crm/marketing/campaigns/camp-seq/preview")
            .json(&json!({"contactId": "ct-bob"}))
            .send()
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let steps = reply.body["steps"].as_array().unwrap();
        assert_eq!(steps.len(), 2, "{}", reply.text);
        let nudge = message(&steps[1]["messages"], "email");
        assert_eq!(nudge["subject"], "Hello Bob");
        assert!(
            path_of(&nudge["tracking"]["clicks"][0])
                .starts_with("/connect/automation/camp-seq/nudge/link/click/"),
            "{nudge}"
        );
    }
);

db_test!(
    a_test_send_sends_one_marked_message_counted_nowhere_and_logged,
    |app: TestApp| async move {
        prepare(&app).await;
        let marketer = token(&["acme"], &["marketer"], "mia");
        let test_send = |who: &str, body: Value| {
            let app = &app;
            let who = who.to_string();
            async move {
                app.as_user(
                    &who,
                    "acme",
                    Method::POST,
                    "/crm/marketing/campaigns/camp-pre/test-send",
                )
                .json(&body)
                .send()
                .await
            }
        };
        let reply = test_send(&marketer, json!({"channel": "email", "to": "Me@Acme.test"})).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(reply.body["to"], "me@acme.test");
        assert_eq!(reply.body["subject"], "[Test] Hello ");
        assert_eq!(reply.body["sandbox"], true);
        // Personalised for a contact, sent to the tester.
        let reply = test_send(
            &marketer,
            json!({"channel": "sms", "to": "+15559990000", "contactId": "ct-ann"}),
        )
        .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert!(
            reply.body["body"]
                .as_str()
                .unwrap()
                .starts_with("[Test] Hi Ann! "),
            "{}",
            reply.text
        );

        let outbox = sandbox(&app, "campaignId=camp-pre").await;
        assert_eq!(outbox.len(), 2, "{outbox:?}");
        let email = outbox.iter().find(|m| m["channel"] == "email").unwrap();
        assert_eq!(email["to"], "me@acme.test", "{email}");
        assert_eq!(email["subject"], "[Test] Hello ");
        let sms = outbox.iter().find(|m| m["channel"] == "sms").unwrap();
        assert_eq!(sms["to"], "+15559990000", "{sms}");

        // Logged with its actor; counted nowhere.
        let events = app.all_events().await;
        let logged: Vec<&Value> = events
            .iter()
            .filter(|e| e["eventType"] == "TestSent")
            .collect();
        assert_eq!(logged.len(), 2);
        assert_eq!(logged[0]["metadata"]["actor"], "mia");
        assert_eq!(logged[0]["data"]["campaignId"], "camp-pre");
        assert_eq!(logged[0]["data"]["to"], "me@acme.test");
        assert_eq!(logged[1]["data"]["contactId"], "ct-ann");
        assert!(events.iter().all(|e| e["eventType"] != "SendsRecorded"));
        let campaign = app.get_campaign("camp-pre").await;
        assert_eq!(campaign.body["status"], "draft", "{}", campaign.text);
        // The SMS's short link resolves to its click URL, whose hit records nothing.
        let short = &sms["trackingUrls"]["shortLinks"][0]["url"];
        let reply = app.anonymous(Method::GET, &path_of(short)).send().await;
        assert_eq!(reply.status, 302, "{}", reply.text);
        assert_eq!(count_of(&app, "EngagementRecorded").await, 0);

        // Bad input changes nothing.
        let analyst = token(&["acme"], &["analyst"], "ana");
        test_send(&analyst, json!({"channel": "email", "to": "me@acme.test"}))
            .await
            .assert_problem(403);
        for (body, field) in [
            (
                json!({"channel": "facebook", "to": "me@acme.test"}),
                "channel",
            ),
            (
                json!({"channel": "linkedin", "to": "me@acme.test"}),
                "channel",
            ),
            (
                json!({"channel": "pigeon", "to": "me@acme.test"}),
                "channel",
            ),
            (json!({"to": "me@acme.test"}), "channel"),
            (json!({"channel": "email", "to": "not-an-address"}), "to"),
            (json!({"channel": "sms", "to": "555-1234"}), "to"),
            (json!({"channel": "email"}), "to"),
            (json!({"channel": "email", "to": 7}), "to"),
        ] {
            let reply = test_send(&marketer, body.clone()).await;
            reply.assert_problem(422);
            assert!(reply.text.contains(field), "{body}: {}", reply.text);
        }
        test_send(
            &marketer,
            json!({"channel": "email", "to": "me@acme.test", "contactId": "ct-nobody"}),
        )
        .await
        .assert_problem(404);
        app.admin(Method::POST, "/crm/marketing/campaigns/camp-none/test-send")
            .json(&json!({"channel": "email", "to": "me@acme.test"}))
            .send()
            .await
            .assert_problem(404);
        assert_eq!(sandbox(&app, "campaignId=camp-pre").await.len(), 2);
        assert_eq!(count_of(&app, "TestSent").await, 2);

        // A purge of the deleted campaign takes its test sends out of the log.
        let reply = app
            .admin(Method::DELETE, "/crm/marketing/campaigns/camp-pre")
            .send()
            .await;
        assert!(reply.status.is_success(), "{}", reply.text);
        let reply = app.admin(Method::POST, "/crm/marketing/purge").send().await;
        let done = crate::purge::wait_done(&app, reply.body["jobId"].as_str().unwrap()).await;
        assert_eq!(done["campaignIds"], json!(["camp-pre"]), "{done}");
        assert_eq!(count_of(&app, "TestSent").await, 0);
    }
);

db_test!(
    a_test_send_on_an_unconnected_channel_is_refused_with_the_reason,
    |app: TestApp| async move {
        let template = json!({"id": "tpl-plain", "name": "Plain",
            "email": {"subject": "Hi", "html": "<p>Hi</p>"}});
        let reply = app
            .admin(Method::POST, "/crm/marketing/templates")
            .json(&template)
            .send()
            .await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        let reply = app
            .post_campaign(&json!({"id": "camp-off", "name": "Off", "type": "one-shot",
                "channels": ["email"], "templateId": "tpl-plain"}))
            .await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        let reply = app
            .admin(Method::POST, "/crm/marketing/campaigns/camp-off/test-send")
            .json(&json!({"channel": "email", "to": "me@acme.test"}))
            .send()
            .await;
        reply.assert_problem(409);
        assert!(
            reply.text.contains("email is not connected"),
            "{}",
            reply.text
        );
        assert_eq!(count_of(&app, "TestSent").await, 0);
    }
);
