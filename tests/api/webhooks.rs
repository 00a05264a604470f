//! Vendor webhooks: a campaign is sent through a local stand-in of SendGrid, Mailgun or Twilio,
//! then the vendor's documented callbacks (tests/fixtures/webhooks), signed with test keys,
//! become `EngagementRecorded` events, each once, and only when the signature holds.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::EncodePublicKey;
use reqwest::Method;
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::helpers::*;

/// `HERALD_PUBLIC_URL` of these tests: Twilio signs the URL it calls, which starts with it.
const PUBLIC_URL: &str = "https://herald.test";

const TWILIO_TOKEN: &str = "twilio-auth-token-for-tests";

/// Like `db_test!`, on a server whose public URL is [`PUBLIC_URL`].
macro_rules! webhook_test {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                ($body)(spawn_public(Backend::Sqlite).await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                ($body)(spawn_public(Backend::Postgres).await).await;
            }
        }
    };
}

async fn spawn_public(backend: Backend) -> TestApp {
    let (url, dir) = fresh_database(backend).await;
    let mut config = test_config(url, &dir);
    config.public_url = Some(PUBLIC_URL.to_string());
    spawn_with(backend, config).await
}

fn fixture(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/webhooks")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Four contacts with email and phone, an audience of them, and a template for email and SMS.
async fn prepare_audience(app: &TestApp) {
    let contacts = json!([
        {"id": "ct-ada", "email": "ada@acme.test", "phone": "+14155550101", "firstName": "Ada", "tags": ["news"]},
        {"id": "ct-bob", "email": "bob@acme.test", "phone": "+14155550102", "firstName": "Bob", "tags": ["news"]},
        {"id": "ct-cy", "email": "cy@acme.test", "phone": "+14155550103", "firstName": "Cy", "tags": ["news"]},
        {"id": "ct-dan", "email": "dan@acme.test", "phone": "+14155550104", "firstName": "Dan", "tags": ["news"]}
    ]);
    let reply = app
        .admin(Method::POST, "/crm/contacts/import")
        .json(&contacts)
        .send()
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let template = json!({"id": "tpl-spring", "name": "Spring",
        "email": {"subject": "Spring is here, {{ contact.firstName }}",
            "html": "<p>Hi {{ contact.firstName }}, <a href=\"https://acme.test/spring?utm=1&amp;x=2\">shop</a></p>"},
        "sms": {"body": "Spring sale today! Reply STOP to opt out."}});
    let reply = app
        .admin(Method::POST, "/crm/marketing/templates")
        .json(&template)
        .send()
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let audience = json!({"id": "aud-news", "name": "News",
        "filter": {"datatype": "contact", "where": {"tags": "news"}}});
    let reply = app
        .admin(Method::POST, "/crm/audiences")
        .json(&audience)
        .send()
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
}

async fn connect(app: &TestApp, body: Value) -> String {
    let reply = app
        .admin(Method::POST, "/crm/integrations/connections")
        .json(&body)
        .send()
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    reply.body["id"].as_str().unwrap().to_string()
}

/// Sends a one-shot campaign on `channel` to the audience and waits until its run is done.
pub(crate) async fn run_campaign(app: &TestApp, id: &str, channel: &str) {
    let body = json!({"id": id, "name": "Spring", "type": "one-shot", "channels": [channel],
        "audienceId": "aud-news", "templateId": "tpl-spring", "status": "running"});
    let reply = app.post_campaign(&body).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let start = Instant::now();
    loop {
        let status = app.get_campaign(id).await.body["status"].clone();
        if status == "completed" {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "campaign {id} never completed: {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `(contact, type, classification)` of each engagement, sorted.
fn summary(events: &[Value]) -> Vec<(String, String, String)> {
    let mut out: Vec<(String, String, String)> = events
        .iter()
        .map(|e| {
            let d = &e["data"];
            (
                d["contactId"].as_str().unwrap_or("-").to_string(),
                d["type"].as_str().unwrap().to_string(),
                d["classification"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

fn rows(expected: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    let mut out: Vec<(String, String, String)> = expected
        .iter()
        .map(|(c, t, k)| (c.to_string(), t.to_string(), k.to_string()))
        .collect();
    out.sort();
    out
}

async fn contact(app: &TestApp, id: &str) -> Value {
    app.admin(Method::GET, &format!("/crm/contacts/{id}"))
        .send()
        .await
        .body
}

/// The form fields of a stand-in request.
pub(crate) fn form(request: &Request) -> HashMap<String, String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(&request.body)
        .unwrap()
        .into_iter()
        .collect()
}

fn local_part(address: &str) -> &str {
    address.split('@').next().unwrap()
}

/// SendGrid's answer to a send: `202` with an `X-Message-Id` made from the recipient.
struct SendGridStandIn;

fn sendgrid_message_id(email: &str) -> String {
    format!("{}Z4Tn9kQbR0a", local_part(email))
}

impl Respond for SendGridStandIn {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        let to = body["personalizations"][0]["to"][0]["email"]
            .as_str()
            .unwrap();
        ResponseTemplate::new(202).insert_header("x-message-id", sendgrid_message_id(to))
    }
}

/// Mailgun's answer: the message id in angle brackets, made from the recipient.
struct MailgunStandIn;

fn mailgun_message_id(email: &str) -> String {
    format!("20260424101500.{}.7f3a@acme.test", local_part(email))
}

impl Respond for MailgunStandIn {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let to = form(request)["to"].clone();
        ResponseTemplate::new(200).set_body_json(json!({
            "id": format!("<{}>", mailgun_message_id(&to)),
            "message": "Queued. Thank you."
        }))
    }
}

/// Twilio's answer: a message SID made from the recipient's number.
struct TwilioStandIn;

fn twilio_sid(phone: &str) -> String {
    format!("SM{:0>32}", phone.trim_start_matches('+'))
}

impl Respond for TwilioStandIn {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let to = form(request)["To"].clone();
        ResponseTemplate::new(201)
            .set_body_json(json!({"sid": twilio_sid(&to), "status": "queued"}))
    }
}

/// Fills a fixture's placeholders for the recipient `email` with what its send carried.
fn fill(text: &str, key: Option<&String>, message_id: &str) -> String {
    let text = text.replace("{{messageId}}", message_id);
    match key {
        Some(key) => text.replace("{{messageKey}}", key),
        None => text,
    }
}

async fn post_sendgrid(
    app: &TestApp,
    path: &str,
    key: &SigningKey,
    signed: &[u8],
    sent: &[u8],
) -> Reply {
    let timestamp = chrono::Utc::now().timestamp().to_string();
    let mut message = timestamp.as_bytes().to_vec();
    message.extend_from_slice(signed);
    let signature: Signature = key.sign(&message);
    app.anonymous(Method::POST, path)
        .header(
            "X-Twilio-Email-Event-Webhook-Signature",
            &STANDARD.encode(signature.to_der().as_bytes()),
        )
        .header("X-Twilio-Email-Event-Webhook-Timestamp", &timestamp)
        .raw(Some("application/json"), sent.to_vec())
        .send()
        .await
}

webhook_test!(
    sendgrid_events_are_recorded_once_each_and_only_when_signed,
    |app: TestApp| async move {
        let vendor = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v3/mail/send"))
            .respond_with(SendGridStandIn)
            .mount(&vendor)
            .await;
        let signing = SigningKey::random(&mut rand::rngs::OsRng);
        let public = STANDARD.encode(
            signing
                .verifying_key()
                .to_public_key_der()
                .unwrap()
                .as_bytes(),
        );
        prepare_audience(&app).await;
        let connection = connect(
            &app,
            json!({"platform": "email", "vendor": "sendgrid",
                "credentials": {"apiKey": "SG.test-key", "webhookVerificationKey": public},
                "settings": {"fromEmail": "news@acme.test", "baseUrl": vendor.uri()}}),
        )
        .await;
        run_campaign(&app, "camp-sg", "email").await;
        let keys: HashMap<String, String> = vendor
            .received_requests()
            .await
            .unwrap()
            .iter()
            .map(|r| {
                let body: Value = serde_json::from_slice(&r.body).unwrap();
                (
                    body["personalizations"][0]["to"][0]["email"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                    body["custom_args"]["herald_message_key"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                )
            })
            .collect();
        assert_eq!(keys.len(), 4, "{keys:?}");

        let events: Vec<Value> = serde_json::from_str(&fixture("sendgrid/events.json")).unwrap();
        let events: Vec<Value> = events
            .iter()
            .map(|event| {
                let email = event["email"].as_str().unwrap();
                let text = fill(
                    &event.to_string(),
                    keys.get(email),
                    &sendgrid_message_id(email),
                );
                serde_json::from_str(&text).unwrap()
            })
            .collect();
        let body = serde_json::to_vec(&events).unwrap();
        let path = format!("/connect/webhooks/sendgrid/{connection}");

        let first = post_sendgrid(&app, &path, &signing, &body, &body).await;
        assert_eq!(first.status, 200, "{}", first.text);
        // processed and deferred are ignored, and so is the event of a send Herald never made.
        assert_eq!(
            first.body,
            json!({"recorded": 9, "duplicates": 0, "ignored": 3})
        );
        crate::openapi::assert_documented(
            &first,
            "POST",
            "/connect/webhooks/{vendor}/{connection_id}",
        );
        let again = post_sendgrid(&app, &format!("/api{path}"), &signing, &body, &body).await;
        assert_eq!(
            again.body,
            json!({"recorded": 0, "duplicates": 9, "ignored": 3}),
            "{}",
            again.text
        );

        let recorded = engagements(&app).await;
        assert_eq!(
            summary(&recorded),
            rows(&[
                ("ct-ada", "delivery", "human"),
                ("ct-ada", "open", "human"),
                ("ct-ada", "open", "machine"),
                ("ct-ada", "click", "human"),
                // Matched by SendGrid's message id: this event carries no custom argument.
                ("ct-bob", "delivery", "human"),
                ("ct-bob", "complaint", "human"),
                ("ct-bob", "unsubscribe", "human"),
                ("ct-cy", "bounce", "human"),
                ("ct-dan", "dropped", "human"),
            ])
        );
        for event in &recorded {
            let data = &event["data"];
            assert_eq!(data["campaignId"], "camp-sg");
            assert_eq!(data["channel"], "email");
            assert_eq!(data["source"], "sendgrid");
            assert!(data["runId"].is_string());
            assert!(data["externalId"].is_string());
        }
        let click = recorded
            .iter()
            .find(|e| e["data"]["type"] == "click")
            .unwrap();
        assert_eq!(
            click["data"]["link"], "https://acme.test/spring?utm=1&x=2",
            "{click}"
        );
        assert_eq!(click["data"]["occurredAt"], "2026-04-24T10:01:00Z");
        let bounce = recorded
            .iter()
            .find(|e| e["data"]["type"] == "bounce")
            .unwrap();
        assert_eq!(bounce["data"]["reason"], "Invalid Address");
        assert_eq!(contact(&app, "ct-bob").await["unsubscribed"]["email"], true);
        assert_eq!(contact(&app, "ct-ada").await["unsubscribed"], json!({}));

        // Signed by another key, or a body other than the one signed: refused, nothing stored.
        let stranger = SigningKey::random(&mut rand::rngs::OsRng);
        post_sendgrid(&app, &path, &stranger, &body, &body)
            .await
            .assert_problem(403);
        let mut forged = events.clone();
        forged[2]["sg_event_id"] = json!("forged-event-id");
        let forged = serde_json::to_vec(&forged).unwrap();
        post_sendgrid(&app, &path, &signing, &body, &forged)
            .await
            .assert_problem(403);
        app.anonymous(Method::POST, &path)
            .raw(Some("application/json"), body.clone())
            .send()
            .await
            .assert_problem(403);
        // Signed but not JSON: 400.
        let broken = b"[{\"event\": \"delivered\", ";
        post_sendgrid(&app, &path, &signing, broken, broken)
            .await
            .assert_problem(400);
        // An unknown connection is answered exactly like a known one whose signature does
        // not match, so the answer does not tell which connection ids exist.
        let unknown = post_sendgrid(
            &app,
            "/connect/webhooks/sendgrid/conn-nope",
            &signing,
            &body,
            &body,
        )
        .await;
        unknown.assert_problem(403);
        let wrong_key = post_sendgrid(&app, &path, &signing, &body, &forged).await;
        assert_eq!(
            (unknown.status, &unknown.body["detail"]),
            (wrong_key.status, &wrong_key.body["detail"])
        );
        // A SendGrid body is no Mailgun post; an unknown vendor is 404.
        post_sendgrid(
            &app,
            &format!("/connect/webhooks/mailgun/{connection}"),
            &signing,
            &body,
            &body,
        )
        .await
        .assert_problem(400);
        post_sendgrid(
            &app,
            &format!("/connect/webhooks/pigeon/{connection}"),
            &signing,
            &body,
            &body,
        )
        .await
        .assert_problem(404);
        assert_eq!(engagements(&app).await.len(), 9);
    }
);

/// A Mailgun body with a fresh signature by `key`.
pub(crate) fn mailgun_signed(mut body: Value, key: &str) -> Vec<u8> {
    let timestamp = chrono::Utc::now().timestamp().to_string();
    let token = format!("{:050x}", rand::random::<u128>());
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(timestamp.as_bytes());
    mac.update(token.as_bytes());
    body["signature"] = json!({"timestamp": timestamp, "token": token,
        "signature": hex::encode(mac.finalize().into_bytes())});
    serde_json::to_vec(&body).unwrap()
}

/// acme's webhook signing key on its Mailgun connection.
pub(crate) const MAILGUN_SIGNING_KEY: &str = "key-acme-webhook-signing";

/// acme's audience and a Mailgun connection (`conn-mg`, signing key
/// [`MAILGUN_SIGNING_KEY`]) sending through a stand-in; the stand-in and the connection id.
pub(crate) async fn mailgun_connection(app: &TestApp) -> (MockServer, String) {
    let vendor = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v3/acme.test/messages"))
        .respond_with(MailgunStandIn)
        .mount(&vendor)
        .await;
    prepare_audience(app).await;
    let connection = connect(
        app,
        json!({"id": "conn-mg", "platform": "email", "vendor": "mailgun",
            "credentials": {"apiKey": "mg-api-key", "webhookSigningKey": MAILGUN_SIGNING_KEY},
            "settings": {"domain": "acme.test", "fromEmail": "news@acme.test", "baseUrl": vendor.uri()}}),
    )
    .await;
    (vendor, connection)
}

pub(crate) async fn post_json(app: &TestApp, path: &str, body: Vec<u8>) -> Reply {
    app.anonymous(Method::POST, path)
        .raw(Some("application/json"), body)
        .send()
        .await
}

webhook_test!(
    mailgun_events_are_recorded_once_and_the_signature_picks_the_org,
    |app: TestApp| async move {
        let signing_key = MAILGUN_SIGNING_KEY;
        let (vendor, connection) = mailgun_connection(&app).await;
        // Another org's connection with the same id and its own signing key.
        let beta = token(&["beta"], &["admin"], "bea");
        let reply = app
            .as_user(&beta, "beta", Method::POST, "/crm/integrations/connections")
            .json(&json!({"id": "conn-mg", "platform": "email", "vendor": "mailgun",
                "credentials": {"apiKey": "mg-beta", "webhookSigningKey": "key-beta-webhook-signing"},
                "settings": {"domain": "beta.test", "fromEmail": "news@beta.test"}}))
            .send()
            .await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        run_campaign(&app, "camp-mg", "email").await;
        let keys: HashMap<String, String> = vendor
            .received_requests()
            .await
            .unwrap()
            .iter()
            .map(|r| {
                let fields = form(r);
                (fields["to"].clone(), fields["v:herald_message_key"].clone())
            })
            .collect();
        assert_eq!(keys.len(), 4, "{keys:?}");

        let posts: Vec<Value> = serde_json::from_str(&fixture("mailgun/events.json")).unwrap();
        let posts: Vec<Value> = posts
            .iter()
            .map(|post| {
                let email = post["event-data"]["recipient"].as_str().unwrap();
                serde_json::from_str(&fill(
                    &post.to_string(),
                    keys.get(email),
                    &mailgun_message_id(email),
                ))
                .unwrap()
            })
            .collect();
        let path = format!("/connect/webhooks/mailgun/{connection}");
        let mut totals = BTreeMap::new();
        let mut signed_bodies = Vec::new();
        for post in &posts {
            let body = mailgun_signed(post.clone(), signing_key);
            let reply = post_json(&app, &path, body.clone()).await;
            assert_eq!(reply.status, 200, "{}", reply.text);
            for field in ["recorded", "duplicates", "ignored"] {
                *totals.entry(field).or_insert(0) += reply.body[field].as_i64().unwrap();
            }
            signed_bodies.push(body);
        }
        // accepted and the temporary failure are ignored.
        assert_eq!(
            totals,
            BTreeMap::from([("duplicates", 0), ("ignored", 2), ("recorded", 9)])
        );
        // The same posts again: each signature's token was used, so each is a replay,
        // refused with 406 (which tells Mailgun not to retry) and recorded nowhere.
        for body in &signed_bodies {
            post_json(&app, &format!("/api{path}"), body.clone())
                .await
                .assert_problem(406);
        }
        // A captured signature with other events in it: refused the same way. Mailgun signs
        // only the timestamp and token, so this is the forgery the token memory stops.
        let mut forged: Value = serde_json::from_slice(&signed_bodies[0]).unwrap();
        forged["event-data"] = posts[7]["event-data"].clone();
        forged["event-data"]["id"] = json!("forged-unsubscribe");
        post_json(&app, &path, serde_json::to_vec(&forged).unwrap())
            .await
            .assert_problem(406);
        // Mailgun's retries of the same events under fresh signatures: duplicates, nothing new.
        for post in &posts {
            let reply = post_json(&app, &path, mailgun_signed(post.clone(), signing_key)).await;
            assert_eq!(reply.status, 200, "{}", reply.text);
            assert_eq!(reply.body["recorded"], 0, "{}", reply.text);
        }
        let recorded = engagements(&app).await;
        assert_eq!(
            summary(&recorded),
            rows(&[
                ("ct-ada", "delivery", "human"),
                ("ct-ada", "open", "human"),
                ("ct-ada", "open", "machine"),
                ("ct-ada", "click", "human"),
                // Matched by the Message-Id header: no user variables on this one.
                ("ct-bob", "delivery", "human"),
                ("ct-bob", "complaint", "human"),
                ("ct-bob", "unsubscribe", "human"),
                ("ct-cy", "bounce", "human"),
                ("ct-dan", "dropped", "human"),
            ])
        );
        assert!(recorded.iter().all(|e| e["data"]["source"] == "mailgun"));
        let bounce = recorded
            .iter()
            .find(|e| e["data"]["type"] == "bounce")
            .unwrap();
        assert_eq!(bounce["data"]["reason"], "bounce 550");
        assert_eq!(contact(&app, "ct-bob").await["unsubscribed"]["email"], true);

        // Signed with org beta's key: beta's connection takes it, and beta sent nothing.
        let beta_signed = mailgun_signed(posts[1].clone(), "key-beta-webhook-signing");
        let reply = post_json(&app, &path, beta_signed).await;
        assert_eq!(
            reply.body,
            json!({"recorded": 0, "duplicates": 0, "ignored": 1}),
            "{}",
            reply.text
        );
        // Signed with neither, unsigned, malformed: refused.
        post_json(&app, &path, mailgun_signed(posts[1].clone(), "key-wrong"))
            .await
            .assert_problem(403);
        let mut unsigned = posts[1].clone();
        unsigned.as_object_mut().unwrap().remove("signature");
        post_json(&app, &path, serde_json::to_vec(&unsigned).unwrap())
            .await
            .assert_problem(403);
        post_json(&app, &path, b"{\"signature\": ".to_vec())
            .await
            .assert_problem(400);
        post_json(
            &app,
            &path,
            mailgun_signed(json!({"event-data": "no"}), signing_key),
        )
        .await
        .assert_problem(400);
        assert_eq!(engagements(&app).await.len(), 9);
    }
);

/// Posts a Twilio form fixture to `path`, signed for `signed_path` with `auth_token`.
async fn post_twilio(
    app: &TestApp,
    path: &str,
    signed_path: &str,
    auth_token: &str,
    form_body: &str,
) -> Reply {
    let mut params: Vec<(String, String)> = serde_urlencoded::from_str(form_body).unwrap();
    params.sort();
    let mut data = format!("{PUBLIC_URL}{signed_path}");
    for (name, value) in &params {
        data.push_str(name);
        data.push_str(value);
    }
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(auth_token.as_bytes()).unwrap();
    mac.update(data.as_bytes());
    app.anonymous(Method::POST, path)
        .header(
            "X-Twilio-Signature",
            &STANDARD.encode(mac.finalize().into_bytes()),
        )
        .raw(
            Some("application/x-www-form-urlencoded"),
            form_body.to_string(),
        )
        .send()
        .await
}

fn twilio_fixture(name: &str, phone: &str) -> String {
    fixture(&format!("twilio/{name}"))
        .trim()
        .replace("{{messageId}}", &twilio_sid(phone))
}

webhook_test!(
    twilio_status_callbacks_and_inbound_replies_are_recorded_and_stop_unsubscribes,
    |app: TestApp| async move {
        let vendor = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/2010-04-01/Accounts/AC0123/Messages.json"))
            .respond_with(TwilioStandIn)
            .mount(&vendor)
            .await;
        prepare_audience(&app).await;
        let connection = connect(
            &app,
            json!({"platform": "sms", "vendor": "twilio",
                "credentials": {"accountSid": "AC0123", "authToken": TWILIO_TOKEN},
                "settings": {"fromNumber": "+15005550006", "baseUrl": vendor.uri()}}),
        )
        .await;
        run_campaign(&app, "camp-sms", "sms").await;
        let sent = vendor.received_requests().await.unwrap();
        assert_eq!(sent.len(), 4);
        let path = format!("/connect/webhooks/twilio/{connection}");
        // Each SMS asks Twilio to post its statuses back to this connection's webhook.
        for request in &sent {
            let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&request.body).unwrap();
            let callback = form
                .iter()
                .find(|(k, _)| k == "StatusCallback")
                .map(|(_, v)| v.clone())
                .expect("a StatusCallback");
            assert!(
                callback.contains(&format!("{path}?herald_message_key=run-")),
                "{callback}"
            );
        }
        let post = |name: &'static str, phone: &'static str| {
            let app = &app;
            let path = path.clone();
            async move {
                let body = twilio_fixture(name, phone);
                let reply = post_twilio(app, &path, &path, TWILIO_TOKEN, &body).await;
                assert_eq!(reply.status, 200, "{name}: {}", reply.text);
                reply.body
            }
        };
        assert_eq!(
            post("status-sent.form", "+14155550101").await,
            json!({"recorded": 0, "duplicates": 0, "ignored": 1})
        );
        assert_eq!(
            post("status-delivered.form", "+14155550101").await,
            json!({"recorded": 1, "duplicates": 0, "ignored": 0})
        );
        assert_eq!(
            post("status-undelivered.form", "+14155550102").await,
            json!({"recorded": 1, "duplicates": 0, "ignored": 0})
        );
        assert_eq!(
            post("inbound-reply.form", "+14155550101").await,
            json!({"recorded": 1, "duplicates": 0, "ignored": 0})
        );
        // STOP is a reply and an unsubscribe.
        assert_eq!(
            post("inbound-stop.form", "+14155550102").await,
            json!({"recorded": 2, "duplicates": 0, "ignored": 0})
        );
        assert_eq!(
            post("inbound-stop.form", "+14155550102").await,
            json!({"recorded": 0, "duplicates": 2, "ignored": 0})
        );
        assert_eq!(
            post("status-delivered.form", "+14155550101").await,
            json!({"recorded": 0, "duplicates": 1, "ignored": 0})
        );
        let recorded = engagements(&app).await;
        assert_eq!(
            summary(&recorded),
            rows(&[
                ("ct-ada", "delivery", "human"),
                ("ct-ada", "reply", "human"),
                ("ct-bob", "bounce", "human"),
                ("ct-bob", "reply", "human"),
                ("ct-bob", "unsubscribe", "human"),
            ])
        );
        assert!(recorded
            .iter()
            .all(|e| e["data"]["campaignId"] == "camp-sms"
                && e["data"]["channel"] == "sms"
                && e["data"]["source"] == "twilio"));
        let bounce = recorded
            .iter()
            .find(|e| e["data"]["type"] == "bounce")
            .unwrap();
        assert_eq!(bounce["data"]["reason"], "error 30003");
        let bob = contact(&app, "ct-bob").await;
        assert_eq!(bob["unsubscribed"], json!({"sms": true}), "{bob}");
        assert_eq!(contact(&app, "ct-ada").await["unsubscribed"], json!({}));

        // The wrong token, a signature for another URL, no signature: refused.
        let body = twilio_fixture("status-undelivered.form", "+14155550102");
        post_twilio(&app, &path, &path, "not-the-token", &body)
            .await
            .assert_problem(403);
        post_twilio(&app, &format!("/api{path}"), &path, TWILIO_TOKEN, &body)
            .await
            .assert_problem(403);
        app.anonymous(Method::POST, &path)
            .raw(Some("application/x-www-form-urlencoded"), body.clone())
            .send()
            .await
            .assert_problem(403);
        // Signed under /api: accepted there (a duplicate by now).
        let reply = post_twilio(
            &app,
            &format!("/api{path}"),
            &format!("/api{path}"),
            TWILIO_TOKEN,
            &body,
        )
        .await;
        assert_eq!(reply.body["duplicates"], 1, "{}", reply.text);
        // Signed, but not a message callback: 400.
        post_twilio(
            &app,
            &path,
            &path,
            TWILIO_TOKEN,
            "AccountSid=AC0123&Body=hi",
        )
        .await
        .assert_problem(400);
        assert_eq!(engagements(&app).await.len(), 5);
    }
);

webhook_test!(
    a_third_mailgun_soft_bounce_within_30_days_suppresses_the_address,
    |app: TestApp| async move {
        let signing_key = MAILGUN_SIGNING_KEY;
        let (vendor, connection) = mailgun_connection(&app).await;
        let mut keys = Vec::new();
        for id in ["camp-s1", "camp-s2", "camp-s3"] {
            run_campaign(&app, id, "email").await;
            let key = vendor
                .received_requests()
                .await
                .unwrap()
                .iter()
                .map(form)
                .filter(|f| f["to"] == "ada@acme.test")
                .map(|f| f["v:herald_message_key"].clone())
                .next_back()
                .unwrap();
            keys.push(key);
        }
        let path = format!("/connect/webhooks/mailgun/{connection}");
        let soft = |event_id: &str, key: &str| {
            mailgun_signed(
                json!({"event-data": {"event": "failed", "severity": "temporary",
                    "reason": "generic", "id": event_id, "recipient": "ada@acme.test",
                    "timestamp": chrono::Utc::now().timestamp(),
                    "delivery-status": {"code": 452, "message": "Mailbox full, try later"},
                    "user-variables": {"herald_message_key": key}}}),
                signing_key,
            )
        };
        let suppressed = || async {
            app.admin(Method::GET, "/crm/suppressions?channel=email")
                .send()
                .await
                .body["items"]
                .as_array()
                .unwrap()
                .clone()
        };
        // Two messages soft-bounce, one of them reported twice and the post retried: two.
        for (event_id, key) in [
            ("soft-1", &keys[0]),
            ("soft-2", &keys[1]),
            ("soft-2b", &keys[1]),
            ("soft-2b", &keys[1]),
        ] {
            let reply = post_json(&app, &path, soft(event_id, key)).await;
            assert_eq!(reply.status, 200, "{}", reply.text);
            assert_eq!(
                reply.body["recorded"], 0,
                "not an engagement: {}",
                reply.text
            );
        }
        assert!(suppressed().await.is_empty());
        assert_eq!(
            contact(&app, "ct-ada").await["unsubscribed"]["email"],
            Value::Null
        );

        // The third message: the address goes on the list as a bounce.
        let reply = post_json(&app, &path, soft("soft-3", &keys[2])).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let listed = suppressed().await;
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert_eq!(listed[0]["address"], "ada@acme.test");
        assert_eq!(listed[0]["reason"], "bounce");
        assert_eq!(listed[0]["source"], "mailgun");
        assert_eq!(contact(&app, "ct-ada").await["unsubscribed"]["email"], true);
        assert!(
            engagements(&app).await.is_empty(),
            "soft bounces count in no analytics"
        );
    }
);
