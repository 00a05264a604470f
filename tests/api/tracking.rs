//! Public tracking routes: the open pixel counts valid tokens only, clicks redirect only to the
//! link a valid token carries, and unsubscribe links confirm on GET and unsubscribe on POST.

use std::time::{Duration, Instant};

use herald_domain::tracking::{self, TrackingClaims};
use reqwest::Method;
use serde_json::{json, Value};

use crate::db_test;
use crate::helpers::*;

const BROWSER: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15";

/// The link the template's email carries.
const SHOP: &str = "https://acme.test/spring?utm=1&x=2";

/// An email connection, a template with a link, an audience of the `news` tag and two
/// contacts in it.
async fn prepare(app: &TestApp) {
    let steps = [
        (
            "/crm/integrations/connections",
            json!({"platform": "email", "vendor": "sandbox"}),
        ),
        (
            "/crm/marketing/templates",
            json!({"id": "tpl-links", "name": "Links",
                "email": {"subject": "Spring is here",
                    "html": "<html><body><p>Hi {{ contact.firstName }}</p><a href=\"https://acme.test/spring?utm=1&amp;x=2\">Shop</a> <a href=\"{{ unsubscribeUrl }}\">Unsubscribe</a></body></html>"}}),
        ),
        (
            "/crm/audiences",
            json!({"id": "aud-news", "name": "News", "filter": {"datatype": "contact", "where": {"tags": "news"}}}),
        ),
    ];
    for (path, body) in steps {
        let reply = app.admin(Method::POST, path).json(&body).send().await;
        assert_eq!(reply.status, 201, "{path}: {}", reply.text);
    }
    let reply = app
        .admin(Method::POST, "/crm/contacts/import")
        .json(&json!([
            {"id": "ct-ann", "email": "ann@acme.test", "firstName": "Ann", "tags": ["news"]},
            {"id": "ct-bob", "email": "bob@acme.test", "firstName": "Bob", "tags": ["news"]}
        ]))
        .send()
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
}

/// Launches a one-shot email campaign now, waits for it to complete, and returns its email
/// messages from the sandbox outbox.
async fn send(app: &TestApp, campaign_id: &str) -> Vec<Value> {
    let body = json!({"id": campaign_id, "name": campaign_id, "type": "one-shot", "channels": ["email"],
        "audienceId": "aud-news", "templateId": "tpl-links", "status": "running"});
    let created = app.post_campaign(&body).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let start = Instant::now();
    while app.get_campaign(campaign_id).await.body["status"] != "completed" {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "campaign {campaign_id} never completed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let reply = app
        .admin(
            Method::GET,
            &format!("/crm/integrations/sandbox/messages?campaignId={campaign_id}&limit=500"),
        )
        .send()
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.body["items"].as_array().unwrap().clone()
}

/// The tracking URLs of one contact's message, as paths on the test server (the configured
/// public URL is not the test server's address).
struct Urls {
    open: String,
    click: String,
    unsubscribe: String,
}

fn urls_of(messages: &[Value], contact_id: &str) -> Urls {
    let message = messages
        .iter()
        .find(|m| m["contactId"] == contact_id)
        .unwrap_or_else(|| panic!("no message to {contact_id}: {messages:?}"));
    let path = |url: &Value| {
        let url = url.as_str().expect("a tracking URL");
        url[url.find("/connect/").expect("a /connect/ URL")..].to_string()
    };
    let tracking = &message["trackingUrls"];
    Urls {
        open: path(&tracking["open"]),
        click: path(&tracking["clicks"][0]),
        unsubscribe: path(&tracking["unsubscribe"]),
    }
}

/// Splits a tracking path into the part before the token and the token.
fn split(path: &str) -> (&str, &str) {
    path.split_once("?t=").expect("a tracking path has ?t=")
}

fn claims_of(path: &str) -> TrackingClaims {
    tracking::verify(TRACKING_SECRET.as_bytes(), split(path).1).expect("a valid token")
}

/// The same path with another token.
fn with_token(path: &str, token: &str) -> String {
    format!("{}?t={token}", split(path).0)
}

/// Changes the character at `at` of `text` to another base64url character.
fn flip(text: &str, at: usize) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    chars[at] = if chars[at] == 'A' { 'B' } else { 'A' };
    chars.into_iter().collect()
}

async fn of_type(app: &TestApp, kind: &str) -> Vec<Value> {
    engagements(app)
        .await
        .into_iter()
        .filter(|e| e["data"]["type"] == kind)
        .collect()
}

/// Fetches an open pixel URL and asserts the answer is the 1×1 GIF, uncached (and without a
/// body for `HEAD`).
async fn pixel(app: &TestApp, method: Method, path: &str, agent: Option<&str>) {
    let head = method == Method::HEAD;
    let mut request = app.client.request(method, app.url(path));
    if let Some(agent) = agent {
        request = request.header("user-agent", agent);
    }
    let response = request.send().await.expect("request");
    assert_eq!(response.status(), 200, "{path}");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    assert_eq!(header("content-type").as_deref(), Some("image/gif"));
    assert_eq!(header("cache-control").as_deref(), Some("no-store"));
    let bytes = response.bytes().await.unwrap();
    if head {
        assert!(bytes.is_empty());
    } else {
        assert_eq!(bytes.len(), 43, "{path}");
        assert!(bytes.starts_with(b"GIF89a"));
    }
}

db_test!(
    the_open_pixel_always_answers_a_gif_and_counts_only_valid_tokens,
    |app: TestApp| async move {
        prepare(&app).await;
        let messages = send(&app, "camp-open").await;
        let ann = urls_of(&messages, "ct-ann");
        let bob = urls_of(&messages, "ct-bob");
        let run_id = claims_of(&ann.open).run_id;
        let (open_path, token) = split(&ann.open);
        let (payload, signature) = token.split_once('.').unwrap();

        // Not counted: every way a token can be wrong, and a token of another kind.
        let refused = [
            format!("{open_path}?t={payload}.{}", flip(signature, 10)),
            format!("{open_path}?t={}.{signature}", flip(payload, 10)),
            format!("{open_path}?t={}", &token[..token.len() - 5]),
            format!("{open_path}?t=garbage"),
            format!("{open_path}?t="),
            open_path.to_string(),
            with_token(&ann.open, split(&ann.click).1),
            with_token(&ann.open, split(&ann.unsubscribe).1),
            ann.open.replace(&run_id, "run-other"),
            ann.open.replace("camp-open", "camp-other"),
        ];
        for path in &refused {
            pixel(&app, Method::GET, path, Some(BROWSER)).await;
        }
        assert_eq!(engagements(&app).await.len(), 0, "no bad token was counted");

        // Counted: both prefixes, with and without the trailing slash.
        let bare = ann.open.replacen("/open/?t=", "/open?t=", 1);
        for path in [ann.open.clone(), format!("/api{}", ann.open), bare] {
            pixel(&app, Method::GET, &path, Some(BROWSER)).await;
        }
        // Machines: a HEAD request, Apple's privacy proxy, no user agent at all.
        pixel(&app, Method::HEAD, &bob.open, Some(BROWSER)).await;
        pixel(&app, Method::GET, &bob.open, Some("Mozilla/5.0")).await;
        pixel(&app, Method::GET, &bob.open, None).await;

        let opens = of_type(&app, "open").await;
        assert_eq!(opens.len(), 6, "{opens:?}");
        assert_eq!(engagements(&app).await.len(), 6);
        for event in &opens[..3] {
            let data = &event["data"];
            assert_eq!(data["contactId"], "ct-ann");
            assert_eq!(data["classification"], "human");
            assert_eq!(data["campaignId"], "camp-open");
            assert_eq!(data["runId"], run_id.as_str());
            assert_eq!(data["channel"], "email");
            assert_eq!(data["source"], "tracking");
            assert_eq!(event["metadata"]["orgId"], "acme");
        }
        for event in &opens[3..] {
            assert_eq!(event["data"]["contactId"], "ct-bob");
            assert_eq!(event["data"]["classification"], "machine");
        }
    }
);

db_test!(
    a_click_records_the_link_it_carries_and_redirects_there,
    |app: TestApp| async move {
        prepare(&app).await;
        let messages = send(&app, "camp-click").await;
        let ann = urls_of(&messages, "ct-ann");
        let bob = urls_of(&messages, "ct-bob");

        // A query parameter cannot choose the destination.
        let reply = app
            .anonymous(
                Method::GET,
                &format!("{}&url=https://evil.test/&t=other", ann.click),
            )
            .header("user-agent", BROWSER)
            .send()
            .await;
        assert_eq!(reply.status, 302, "{}", reply.text);
        assert_eq!(reply.header("location"), Some(SHOP));
        assert_eq!(reply.header("cache-control"), Some("no-store"));
        let under_api = app
            .anonymous(Method::GET, &format!("/api{}", ann.click))
            .header("user-agent", BROWSER)
            .send()
            .await;
        assert_eq!(under_api.status, 302);
        assert_eq!(under_api.header("location"), Some(SHOP));
        let scanner = app
            .anonymous(Method::GET, &bob.click)
            .header("user-agent", "Barracuda Sentinel (EE)")
            .send()
            .await;
        assert_eq!(scanner.status, 302);

        let clicks = of_type(&app, "click").await;
        assert_eq!(clicks.len(), 3, "{clicks:?}");
        assert_eq!(clicks[0]["data"]["link"], SHOP);
        assert_eq!(clicks[0]["data"]["contactId"], "ct-ann");
        assert_eq!(clicks[0]["data"]["classification"], "human");
        assert_eq!(clicks[2]["data"]["contactId"], "ct-bob");
        assert_eq!(clicks[2]["data"]["classification"], "machine");
    }
);

db_test!(
    a_click_token_that_fails_any_check_is_404_and_never_a_redirect,
    |app: TestApp| async move {
        prepare(&app).await;
        let messages = send(&app, "camp-bad").await;
        let ann = urls_of(&messages, "ct-ann");
        let claims = claims_of(&ann.click);
        let (click_path, token) = split(&ann.click);
        let (payload, signature) = token.split_once('.').unwrap();
        let sign = |claims: &TrackingClaims| tracking::sign(TRACKING_SECRET.as_bytes(), claims);
        let mut expired = claims.clone();
        expired.expires = Some(chrono::Utc::now().timestamp() - 60);
        let mut no_url = claims.clone();
        no_url.url = None;
        let mut other_scheme = claims.clone();
        other_scheme.url = Some("javascript:alert(1)".into());
        let mut other_campaign = claims.clone();
        other_campaign.campaign_id = "camp-other".into();
        let mut other_run = claims.clone();
        other_run.run_id = "run-other".into();

        let refused = [
            format!("{click_path}?t={payload}.{}", flip(signature, 10)),
            format!("{click_path}?t={}.{signature}", flip(payload, 10)),
            format!("{click_path}?t={}", &token[..token.len() - 5]),
            format!("{click_path}?t={}", &token[..payload.len()]),
            click_path.to_string(),
            with_token(&ann.click, &sign(&expired)),
            with_token(&ann.click, &sign(&no_url)),
            with_token(&ann.click, &sign(&other_scheme)),
            // Signed for another campaign or run than the path names.
            with_token(&ann.click, &sign(&other_campaign)),
            with_token(&ann.click, &sign(&other_run)),
            ann.click.replace(&claims.run_id, "run-other"),
            ann.click.replace("camp-bad", "camp-other"),
            // Tokens of the other routes.
            with_token(&ann.click, split(&ann.open).1),
            with_token(&ann.click, split(&ann.unsubscribe).1),
            // Signed with another secret.
            with_token(&ann.click, &tracking::sign(b"another-secret", &claims)),
        ];
        for path in &refused {
            let reply = app.anonymous(Method::GET, path).send().await;
            reply.assert_problem(404);
            assert_eq!(reply.header("location"), None, "{path}");
        }
        assert_eq!(engagements(&app).await.len(), 0);
    }
);

async fn contact(app: &TestApp, id: &str) -> Reply {
    app.admin(Method::GET, &format!("/crm/contacts/{id}"))
        .send()
        .await
}

db_test!(
    unsubscribe_confirms_on_get_and_unsubscribes_once_on_post,
    |app: TestApp| async move {
        prepare(&app).await;
        let messages = send(&app, "camp-unsub").await;
        let ann = urls_of(&messages, "ct-ann");
        let before = contact(&app, "ct-ann").await;
        assert_eq!(before.body["unsubscribed"], json!({}));

        for path in [ann.unsubscribe.clone(), format!("/api{}", ann.unsubscribe)] {
            let page = app.anonymous(Method::GET, &path).send().await;
            assert_eq!(page.status, 200, "{}", page.text);
            assert_eq!(
                page.header("content-type"),
                Some("text/html; charset=utf-8")
            );
            assert!(page.text.contains("<form method=\"post\""), "{}", page.text);
            assert!(page.text.contains(split(&ann.unsubscribe).1));
        }
        assert_eq!(
            contact(&app, "ct-ann").await.body,
            before.body,
            "GET changes nothing"
        );
        assert_eq!(engagements(&app).await.len(), 0);

        let bad = with_token(&ann.unsubscribe, split(&ann.open).1);
        app.anonymous(Method::GET, &bad)
            .send()
            .await
            .assert_problem(404);
        app.anonymous(Method::POST, &bad)
            .send()
            .await
            .assert_problem(404);
        assert_eq!(contact(&app, "ct-ann").await.body, before.body);

        // RFC 8058 one-click, as a mail provider sends it.
        let done = app
            .anonymous(Method::POST, &ann.unsubscribe)
            .raw(
                Some("application/x-www-form-urlencoded"),
                "List-Unsubscribe=One-Click",
            )
            .send()
            .await;
        assert_eq!(done.status, 200, "{}", done.text);
        assert!(done
            .header("content-type")
            .unwrap()
            .starts_with("text/html"));
        let after = contact(&app, "ct-ann").await;
        assert_eq!(after.body["unsubscribed"], json!({"email": true}));
        assert_eq!(after.body["email"], "ann@acme.test", "the rest is kept");
        assert_eq!(after.body["tags"], json!(["news"]));
        assert_eq!(
            after.body["version"], before.body["version"],
            "the contact is not changed: its address is suppressed"
        );

        // Again, without a body and under /api, without the trailing slash: nothing changes.
        let again = app
            .anonymous(
                Method::POST,
                &format!(
                    "/api{}",
                    ann.unsubscribe
                        .replacen("/unsubscribe/?", "/unsubscribe?", 1)
                ),
            )
            .send()
            .await;
        assert_eq!(again.status, 200, "{}", again.text);
        assert_eq!(contact(&app, "ct-ann").await.body, after.body);
        let unsubscribes = of_type(&app, "unsubscribe").await;
        assert_eq!(unsubscribes.len(), 1, "{unsubscribes:?}");
        assert_eq!(unsubscribes[0]["data"]["contactId"], "ct-ann");
        assert_eq!(unsubscribes[0]["data"]["channel"], "email");
        assert_eq!(unsubscribes[0]["metadata"]["actor"], "tracking:unsubscribe");
        let changes = app
            .admin(
                Method::GET,
                "/crm/marketing/events?type=SuppressionAdded&limit=500",
            )
            .send()
            .await;
        let changes = changes.body["items"].as_array().unwrap().clone();
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert_eq!(changes[0]["metadata"]["actor"], "tracking:unsubscribe");
        assert_eq!(changes[0]["data"]["address"], "ann@acme.test");
        assert_eq!(changes[0]["data"]["reason"], "unsubscribe");

        // The next run skips her.
        let later = send(&app, "camp-later").await;
        let to: Vec<&str> = later
            .iter()
            .filter_map(|m| m["contactId"].as_str())
            .collect();
        assert_eq!(to, ["ct-bob"]);
    }
);

db_test!(
    unsubscribing_a_deleted_contact_answers_the_page_and_records_nothing,
    |app: TestApp| async move {
        prepare(&app).await;
        let messages = send(&app, "camp-gone").await;
        let bob = urls_of(&messages, "ct-bob");
        let deleted = app
            .admin(Method::DELETE, "/crm/contacts/ct-bob")
            .send()
            .await;
        assert_eq!(deleted.status, 204, "{}", deleted.text);
        let done = app.anonymous(Method::POST, &bob.unsubscribe).send().await;
        assert_eq!(done.status, 200, "{}", done.text);
        contact(&app, "ct-bob").await.assert_problem(404);
        assert_eq!(of_type(&app, "unsubscribe").await.len(), 0);
    }
);

/// `/metrics`' count of tracking hits over their token's cap.
async fn over_cap(app: &TestApp) -> u64 {
    let reply = app.anonymous(Method::GET, "/metrics").send().await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply
        .text
        .lines()
        .find_map(|line| line.strip_prefix("herald_tracking_hits_over_cap_total "))
        .expect("the over-cap counter")
        .parse()
        .unwrap()
}

db_test!(
    limits(0, 20) a_tracking_token_records_twenty_engagements_an_hour_and_answers_the_rest_unrecorded,
    |app: TestApp| async move {
        prepare(&app).await;
        let messages = send(&app, "camp-cap").await;
        let ann = urls_of(&messages, "ct-ann");
        let bob = urls_of(&messages, "ct-bob");
        assert_eq!(over_cap(&app).await, 0);

        // The 21st open still gets its GIF, and the 21st click its redirect.
        for _ in 0..21 {
            pixel(&app, Method::GET, &ann.open, Some(BROWSER)).await;
            let click = app
                .anonymous(Method::GET, &ann.click)
                .header("user-agent", BROWSER)
                .send()
                .await;
            assert_eq!(click.status, 302, "{}", click.text);
            assert_eq!(click.header("location"), Some(SHOP));
        }
        // Another token has its own count.
        pixel(&app, Method::GET, &bob.open, Some(BROWSER)).await;

        assert_eq!(of_type(&app, "open").await.len(), 21, "20 of ann's, 1 of bob's");
        assert_eq!(of_type(&app, "click").await.len(), 20);
        assert_eq!(over_cap(&app).await, 2, "one open and one click over the cap");

        // Analytics and the contact's activities see only what was recorded.
        let counted = eventually(Duration::from_secs(30), || async {
            let reply = app
                .admin(Method::GET, "/crm/marketing/campaigns/camp-cap/analytics")
                .send()
                .await;
            reply.body["totals"]["opens"] == 21 && reply.body["totals"]["clicks"] == 20
        })
        .await;
        let analytics = app
            .admin(Method::GET, "/crm/marketing/campaigns/camp-cap/analytics")
            .send()
            .await;
        assert!(counted, "{}", analytics.text);
        let activities = || async {
            let reply = app
                .admin(
                    Method::GET,
                    "/crm/contacts/ct-ann/activities?type=open,click&limit=500",
                )
                .send()
                .await;
            assert_eq!(reply.status, 200, "{}", reply.text);
            let items = reply.body["items"].as_array().unwrap().clone();
            let count = |kind: &str| items.iter().filter(|a| a["type"] == kind).count();
            (count("open"), count("click"))
        };
        let listed = eventually(Duration::from_secs(30), || async {
            activities().await == (20, 20)
        })
        .await;
        assert!(listed, "ann's opens and clicks: {:?}", activities().await);
    }
);
