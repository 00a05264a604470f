//! Erasure of a contact (`api.md` section 12, ADR 15): once the job is done, a full dump of the
//! database, `herald export` and the server's log hold none of the contact's values; the
//! address stays suppressed as a hash; analytics and a replay are unchanged.

use std::collections::HashSet;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::db_test;
use crate::helpers::*;

const EMAIL: &str = "Zyxo.Quillfeather@Erasure-Test.example";
const PHONE: &str = "+14155559876";
const FIRST: &str = "Zyxoria";
const LAST: &str = "Quillfeatherton";
const COLOUR: &str = "vermilion-zq7";
const LOYALTY: &str = "LC88213ZQX";
/// A date attribute a milestone campaign enrolls the contact at: its milestone date is the
/// same day.
const RENEWAL: &str = "2031-08-23";
/// The contact's zone, which its enrollments are timed in.
const ZONE: &str = "Pacific/Chatham";

/// Every value of the contact that must be gone.
const VALUES: [&str; 8] = [EMAIL, PHONE, FIRST, LAST, COLOUR, LOYALTY, RENEWAL, ZONE];

const BROWSER: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15";

fn contact(id: &str) -> Value {
    json!({"id": id, "email": EMAIL, "phone": PHONE, "firstName": FIRST, "lastName": LAST,
        "timezone": ZONE, "tags": ["prospect"],
        "attributes": {"favouriteColour": COLOUR, "loyaltyCode": LOYALTY, "renewalAt": RENEWAL}})
}

/// A template that quotes the contact's names and puts an attribute into a link's target.
async fn personal_template(app: &TestApp) {
    let template = json!({"id": "tpl-personal", "name": "Personal",
        "email": {"subject": "Hi {{ contact.firstName }} {{ contact.lastName }}",
            "html": "<p>Hi {{ contact.firstName }}</p><a href=\"https://shop.example/w?code={{ contact.attributes.loyaltyCode }}\">Shop</a>"},
        "sms": {"body": "Hi {{ contact.firstName }}! {{ unsubscribeUrl }}"}});
    let reply = app
        .admin(Method::POST, "/crm/marketing/templates")
        .json(&template)
        .send()
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
}

/// Launches a one-shot on email and SMS to the seed audience and waits until it completed.
async fn send_campaign(app: &TestApp, id: &str) {
    let body = json!({"id": id, "name": id, "type": "multi-channel", "channels": ["email", "sms"],
        "audienceId": "aud-spring-prospects", "templateId": "tpl-personal", "status": "running"});
    let reply = app.post_campaign(&body).await;
    assert_eq!(reply.body["status"], "running", "{}", reply.text);
    let completed = eventually(Duration::from_secs(60), || async {
        app.get_campaign(id).await.body["status"] == "completed"
    })
    .await;
    assert!(completed, "{}", app.get_campaign(id).await.text);
}

/// Starts an erasure and waits until its job is done.
async fn erase(app: &TestApp, contact_id: &str) -> Value {
    let reply = app
        .admin(Method::POST, &format!("/crm/contacts/{contact_id}/erase"))
        .send()
        .await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    let job = reply.body["jobId"].as_str().expect("a job id").to_string();
    assert_eq!(
        reply.header("location"),
        Some(format!("/crm/contacts/erasures/{job}").as_str())
    );
    assert_eq!(reply.body["contactId"], contact_id);
    assert!(
        ["pending", "running", "done"].contains(&reply.body["status"].as_str().unwrap()),
        "{}",
        reply.text
    );
    wait_done(app, &job).await
}

async fn wait_done(app: &TestApp, job: &str) -> Value {
    let path = format!("/crm/contacts/erasures/{job}");
    let done = eventually(Duration::from_secs(60), || async {
        let reply = app.admin(Method::GET, &path).send().await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        matches!(reply.body["status"].as_str(), Some("done" | "failed"))
    })
    .await;
    let reply = app.admin(Method::GET, &path).send().await;
    assert!(done, "the erasure did not finish: {}", reply.text);
    assert_eq!(reply.body["status"], "done", "{}", reply.text);
    assert!(reply.body["finishedAt"].is_string(), "{}", reply.text);
    reply.body
}

/// Waits until every projection has caught up with the log.
async fn caught_up(app: &TestApp) {
    let caught_up = eventually(Duration::from_secs(30), || async {
        let health = app.admin(Method::GET, "/crm/marketing/health").send().await;
        let projections = health.body["projections"].as_object().cloned();
        projections.is_some_and(|p| !p.is_empty() && p.values().all(|v| v["lag"] == 0))
    })
    .await;
    assert!(caught_up, "the projections did not catch up");
}

/// A full dump of the test's database: `pg_dump` of it, or `sqlite3 .dump` of the file (every
/// table read through the driver when the `sqlite3` tool is missing).
async fn dump(app: &TestApp) -> String {
    match app.backend {
        Backend::Postgres => {
            let out = std::process::Command::new("pg_dump")
                .arg("--no-owner")
                .arg(&app.database_url)
                .output()
                .expect("run pg_dump");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
        Backend::Sqlite => {
            let file = app.data_dir.join("herald.db");
            if let Ok(out) = std::process::Command::new("sqlite3")
                .arg(&file)
                .arg(".dump")
                .output()
            {
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                return String::from_utf8_lossy(&out.stdout).into_owned();
            }
            let db = herald::db::Db::connect(&app.database_url, 2).await.unwrap();
            let mut tables: Vec<String> = catalogue(&db)
                .await
                .into_iter()
                .map(|(t, _, _)| t)
                .collect();
            tables.dedup();
            let mut out = String::new();
            for table in tables {
                for row in table_rows(&db, &table, &[]).await {
                    out.push_str(&row);
                    out.push('\n');
                }
            }
            out
        }
    }
}

/// What to look for: each value, and the stretches of its base64 forms (standard and URL-safe,
/// at each of the three alignments) that depend on the value alone, since signed tracking
/// tokens carry JSON in base64.
fn needles() -> Vec<(String, String)> {
    use base64::Engine;
    let mut out = Vec::new();
    for value in VALUES {
        out.push((value.to_string(), value.to_lowercase()));
        for offset in 0..3usize {
            let mut bytes = vec![0u8; offset];
            bytes.extend_from_slice(value.as_bytes());
            let start = (8 * offset).div_ceil(6);
            let end = 8 * (offset + value.len()) / 6;
            for engine in [
                base64::engine::general_purpose::STANDARD_NO_PAD,
                base64::engine::general_purpose::URL_SAFE_NO_PAD,
            ] {
                let encoded = engine.encode(&bytes);
                out.push((format!("{value} (base64)"), encoded[start..end].to_string()));
            }
        }
    }
    out
}

/// The values of [`VALUES`] found in `text` (plain ones case-insensitively), with some context.
fn leaks(text: &str) -> Vec<String> {
    let lower = text.to_lowercase();
    let mut found = Vec::new();
    for (value, needle) in needles() {
        let at = if value.ends_with("(base64)") {
            text.find(&needle)
        } else {
            lower.find(&needle)
        };
        if let Some(at) = at {
            let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
            let line: String = text[line_start..].chars().take(300).collect();
            let line = line.lines().next().unwrap_or_default().to_string();
            found.push(format!("{value} in: {line}"));
        }
    }
    found
}

/// `herald export` of the test's database.
fn export(app: &TestApp) -> String {
    let out = herald_process(&app.database_url, &app.data_dir)
        .arg("export")
        .output()
        .expect("run herald export");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A campaign's enrollments (`GET …/enrollments`).
async fn enrollments(app: &TestApp, campaign: &str) -> Vec<Value> {
    let path = format!("/crm/marketing/campaigns/{campaign}/enrollments");
    let reply = app.admin(Method::GET, &path).send().await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.body["items"].as_array().cloned().unwrap_or_default()
}

async fn analytics(app: &TestApp, campaign: &str) -> Value {
    let reply = app
        .admin(
            Method::GET,
            &format!("/crm/marketing/campaigns/{campaign}/analytics"),
        )
        .send()
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.body["totals"].clone()
}

async fn an_erased_contact_is_in_no_table_event_export_or_log_line(backend: Backend) {
    let server = spawn_logged(backend).await;
    let app = &server.app;
    app.make_ready().await;
    personal_template(app).await;
    // Created with an Idempotency-Key, so its answer is stored too.
    let reply = app
        .admin(Method::POST, "/crm/contacts")
        .header("idempotency-key", "create-zyxo")
        .json(&contact("ct-zyxo"))
        .send()
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let reply = app
        .admin(Method::POST, "/crm/contacts")
        .json(&json!({"id": "ct-other", "email": "other@acme.test", "tags": ["prospect"]}))
        .send()
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    // The phone goes on the suppression list in plain form before the erasure.
    let reply = app
        .admin(Method::POST, "/crm/suppressions")
        .json(&json!({"channel": "sms", "address": PHONE, "reason": "manual"}))
        .send()
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);

    send_campaign(app, "camp-personal").await;
    let messages = sandbox(app, "campaignId=camp-personal").await;
    let email = messages
        .iter()
        .find(|m| m["contactId"] == "ct-zyxo" && m["channel"] == "email")
        .unwrap_or_else(|| panic!("no email to the contact: {messages:?}"));
    let open = email["trackingUrls"]["open"]
        .as_str()
        .expect("an open pixel");
    let click = email["trackingUrls"]["clicks"][0]
        .as_str()
        .expect("a click link");
    // Not following the click's redirect: the shop is not there.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for url in [open, click] {
        let reply = client
            .get(app.url(&url[url.find("/connect/").unwrap()..]))
            .header("user-agent", BROWSER)
            .send()
            .await
            .unwrap();
        assert!(reply.status().as_u16() < 400, "{url}: {}", reply.status());
    }
    let reply = app
        .admin(
            Method::POST,
            "/crm/marketing/campaigns/camp-personal/engagements",
        )
        .json(
            &json!([{"type": "conversion", "channel": "email", "contactId": "ct-zyxo",
            "value": "12.50", "currency": "EUR"}]),
        )
        .send()
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let recorded = eventually(Duration::from_secs(20), || async {
        engagements(app).await.len() >= 3
    })
    .await;
    // A milestone campaign enrolls the contact at its renewal date, timed in its zone.
    let body = json!({"id": "camp-renew", "name": "Renewal", "type": "milestone",
        "channels": ["email"], "audienceId": "aud-spring-prospects", "templateId": "tpl-personal",
        "trigger": {"field": "attributes.renewalAt"}, "steps": [{"id": "remind", "delay": "PT0S"}],
        "status": "running"});
    let reply = app.post_campaign(&body).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let enrolled = eventually(Duration::from_secs(20), || async {
        enrollments(app, "camp-renew").await.iter().any(|e| {
            e["contactId"] == "ct-zyxo" && e["milestone"] == RENEWAL && e["status"] == "active"
        })
    })
    .await;
    assert!(enrolled, "{:?}", enrollments(app, "camp-renew").await);
    assert!(recorded, "{:?}", engagements(app).await);
    caught_up(app).await;
    let mut before = analytics(app, "camp-personal").await;
    assert_eq!(before["conversions"], 1, "{before}");
    let activities = app
        .admin(Method::GET, "/crm/contacts/ct-zyxo/activities")
        .send()
        .await;
    assert!(
        activities.text.contains(LOYALTY),
        "the click's link quotes the attribute before the erasure: {}",
        activities.text
    );
    let seeded = dump(app).await;
    for value in VALUES {
        assert!(
            seeded.to_lowercase().contains(&value.to_lowercase()),
            "{value} is not in the dump before the erasure: the check would prove nothing"
        );
    }

    // A marketer may not erase.
    let marketer = token(&["acme"], &["marketer"], "mia");
    app.as_user(
        &marketer,
        "acme",
        Method::POST,
        "/crm/contacts/ct-zyxo/erase",
    )
    .send()
    .await
    .assert_problem(403);
    let job = erase(app, "ct-zyxo").await;
    assert_eq!(job["contactId"], "ct-zyxo");
    app.admin(Method::GET, "/crm/contacts/ct-zyxo")
        .send()
        .await
        .assert_problem(404);
    // A late click on the old message still goes where its link pointed, and is counted, but
    // its link is not stored again.
    let clicks = |events: Vec<Value>| {
        events
            .iter()
            .filter(|e| e["data"]["type"] == "click")
            .count()
    };
    let clicked = clicks(engagements(app).await);
    let reply = client
        .get(app.url(&click[click.find("/connect/").unwrap()..]))
        .header("user-agent", BROWSER)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status().as_u16(), 302, "the late click");
    let location = reply.headers()["location"].to_str().unwrap().to_string();
    assert!(location.contains(LOYALTY), "{location}");
    assert_eq!(clicks(engagements(app).await), clicked + 1);
    before["clicks"] = json!(before["clicks"].as_i64().unwrap() + 1);
    caught_up(app).await;

    let dumped = dump(app).await;
    assert_eq!(leaks(&dumped), Vec::<String>::new(), "the database dump");
    // Nor the milestone's moment (in UTC, the evening before in Chatham), which gives the
    // date away.
    assert!(!dumped.contains("2031-08-2"), "the milestone's moment");
    assert_eq!(leaks(&export(app)), Vec::<String>::new(), "herald export");
    let log = std::fs::read_to_string(&server.log).unwrap();
    assert_eq!(leaks(&log), Vec::<String>::new(), "the server log");
    assert!(
        dumped.contains("other@acme.test"),
        "the other contact is untouched"
    );

    // The tombstone, the unchanged analytics, the hashed suppressions.
    let events = app.all_events().await;
    let erased: Vec<&Value> = events
        .iter()
        .filter(|e| e["eventType"] == "Erased")
        .collect();
    assert_eq!(erased.len(), 1, "{erased:?}");
    assert_eq!(erased[0]["streamId"], "audit-acme");
    assert_eq!(erased[0]["data"]["contactId"], "ct-zyxo");
    assert_eq!(erased[0]["metadata"]["actor"], "alice");
    let created = events
        .iter()
        .find(|e| e["streamId"] == "contact-acme:ct-zyxo" && e["eventType"] == "ContactCreated")
        .expect("the contact's events keep their place");
    assert_eq!(created["data"]["body"]["erased"], true, "{created}");
    // Its enrollment is still counted, exited as its contact is gone, without its date.
    let enrolled = enrollments(app, "camp-renew").await;
    let zyxo: Vec<&Value> = enrolled
        .iter()
        .filter(|e| e["contactId"] == "ct-zyxo")
        .collect();
    assert_eq!(zyxo.len(), 1, "{enrolled:?}");
    assert_eq!(zyxo[0]["status"], "exited", "{enrolled:?}");
    assert_eq!(zyxo[0]["exitReason"], "contact-deleted", "{enrolled:?}");
    assert_eq!(analytics(app, "camp-personal").await, before);
    let listed = app
        .admin(Method::GET, "/crm/suppressions?limit=100")
        .send()
        .await;
    let hashed: Vec<&Value> = listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["address"].as_str().unwrap().starts_with("hmac:"))
        .collect();
    assert_eq!(hashed.len(), 2, "email and phone: {}", listed.text);

    // Re-created with the address in other letter case, the person is still not messaged.
    let mut again = contact("ct-zyxo-again");
    again["email"] = json!(EMAIL.to_uppercase());
    let reply = app
        .admin(Method::POST, "/crm/contacts")
        .json(&again)
        .send()
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_eq!(
        reply.body["unsubscribed"],
        json!({"email": true, "sms": true}),
        "{}",
        reply.text
    );
    send_campaign(app, "camp-after").await;
    let after = sandbox(app, "campaignId=camp-after").await;
    assert!(
        after.iter().all(|m| m["contactId"] != "ct-zyxo-again"),
        "{after:?}"
    );
    assert!(
        after.iter().any(|m| m["contactId"] == "ct-other"),
        "{after:?}"
    );

    // Erasing again is harmless: done, and nothing more changes.
    let twice = erase(app, "ct-zyxo").await;
    assert_eq!(twice["status"], "done");
    assert_eq!(analytics(app, "camp-personal").await, before);

    // A replay from 0 gives the same read models.
    caught_up(app).await;
    let db = herald::db::Db::connect(&app.database_url, 2).await.unwrap();
    let live = read_models(&db).await;
    wipe(&db, READ_MODEL_TABLES).await;
    let out = herald_process(&app.database_url, &app.data_dir)
        .arg("replay")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(read_models(&db).await, live);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_contact_is_in_no_table_event_export_or_log_line_sqlite() {
    an_erased_contact_is_in_no_table_event_export_or_log_line(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_contact_is_in_no_table_event_export_or_log_line_postgres() {
    an_erased_contact_is_in_no_table_event_export_or_log_line(Backend::Postgres).await;
}

db_test!(
    api_only erasing_an_unknown_or_another_orgs_contact_is_not_found,
    |app: TestApp| async move {
        app.admin(Method::POST, "/crm/contacts/ct-nobody/erase")
            .send()
            .await
            .assert_problem(404);
        let reply = app
            .admin(Method::POST, "/crm/contacts")
            .json(&contact("ct-zyxo"))
            .send()
            .await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        let globex = token(&["globex"], &["admin"], "gus");
        app.as_user(&globex, "globex", Method::POST, "/crm/contacts/ct-zyxo/erase")
            .send()
            .await
            .assert_problem(404);
        let marketer = token(&["acme"], &["marketer"], "mia");
        app.as_user(&marketer, "acme", Method::POST, "/crm/contacts/ct-zyxo/erase")
            .send()
            .await
            .assert_problem(403);
        // Nothing was erased by those.
        let reply = app.admin(Method::GET, "/crm/contacts/ct-zyxo").send().await;
        assert_eq!(reply.body["email"], EMAIL, "{}", reply.text);

        let job = erase(&app, "ct-zyxo").await;
        let job_id = job["jobId"].as_str().unwrap();
        let path = format!("/crm/contacts/erasures/{job_id}");
        app.as_user(&globex, "globex", Method::GET, &path)
            .send()
            .await
            .assert_problem(404);
        app.as_user(&marketer, "acme", Method::GET, &path)
            .send()
            .await
            .assert_problem(403);
        app.admin(Method::GET, "/crm/contacts/erasures/erase-nope")
            .send()
            .await
            .assert_problem(404);
        // A deleted (and erased) contact can be erased again; the second job changes nothing.
        let events = app.all_events().await.len();
        erase(&app, "ct-zyxo").await;
        let after = app.all_events().await;
        assert_eq!(after.len(), events + 1, "only a second tombstone");
        assert_eq!(after.last().unwrap()["eventType"], "Erased");
    }
);

db_test!(
    api_only erasures_of_several_contacts_of_one_org_at_once_all_finish,
    |app: TestApp| async move {
        // Each job ends with a tombstone in the org's one audit stream: run at once, they must
        // take turns at its head, not fail on its revision. Contacts without an address have
        // no suppression to hide, the step that would otherwise make the jobs wait in turn.
        const N: usize = 6;
        let ids: Vec<String> = (0..N).map(|i| format!("ct-many-{i}")).collect();
        for (i, id) in ids.iter().enumerate() {
            let body = if i % 2 == 0 {
                json!({"id": id, "firstName": id})
            } else {
                json!({"id": id, "email": format!("{id}@acme.test"), "firstName": id})
            };
            let reply = app
                .admin(Method::POST, "/crm/contacts")
                .json(&body)
                .send()
                .await;
            assert_eq!(reply.status, 201, "{}", reply.text);
        }
        let started = futures::future::join_all(ids.iter().map(|id| {
            app.admin(Method::POST, &format!("/crm/contacts/{id}/erase"))
                .send()
        }))
        .await;
        let mut jobs = Vec::new();
        for reply in started {
            assert_eq!(reply.status, 202, "{}", reply.text);
            jobs.push(reply.body["jobId"].as_str().expect("a job id").to_string());
        }
        for job in &jobs {
            wait_done(&app, job).await;
        }
        let tombstones: HashSet<String> = app
            .all_events()
            .await
            .iter()
            .filter(|e| e["eventType"] == "Erased")
            .map(|e| e["data"]["contactId"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(tombstones, ids.iter().cloned().collect::<HashSet<_>>());
    }
);

db_test!(
    an_erasure_racing_a_send_leaves_nothing_behind_and_sends_at_most_once,
    |app: TestApp| async move {
        app.make_ready().await;
        personal_template(&app).await;
        // Enough recipients that the run is still sending when the erasure starts.
        let mut rows: Vec<Value> = (0..400)
            .map(|i| json!({"id": format!("ct-{i:04}"), "email": format!("p{i}@acme.test"), "tags": ["prospect"]}))
            .collect();
        rows.push(contact("ct-0200x"));
        let reply = app
            .admin(Method::POST, "/crm/contacts/import")
            .json(&json!(rows))
            .send()
            .await;
        assert!(reply.status.is_success(), "{}", reply.text);
        let body = json!({"id": "camp-race", "name": "race", "type": "multi-channel",
            "channels": ["email", "sms"], "audienceId": "aud-spring-prospects",
            "templateId": "tpl-personal", "status": "running"});
        let reply = app.post_campaign(&body).await;
        assert_eq!(reply.body["status"], "running", "{}", reply.text);
        erase(&app, "ct-0200x").await;
        let completed = eventually(Duration::from_secs(60), || async {
            app.get_campaign("camp-race").await.body["status"] == "completed"
        })
        .await;
        assert!(completed, "{}", app.get_campaign("camp-race").await.text);
        let messages = sandbox(&app, "campaignId=camp-race").await;
        for channel in ["email", "sms"] {
            let to_erased = messages
                .iter()
                .filter(|m| m["contactId"] == "ct-0200x" && m["channel"] == channel)
                .count();
            assert!(to_erased <= 1, "{channel}: {to_erased} messages");
        }
        // A send that lost the race to the erasure was scrubbed by its second pass; a later
        // erasure finds nothing left either way.
        assert_eq!(leaks(&dump(&app).await), Vec::<String>::new());
    }
);

db_test!(
    a_vendor_bounce_quoting_the_address_keeps_no_trace_of_it_after_the_erasure,
    |app: TestApp| async move {
        use crate::webhooks::{
            form, mailgun_connection, mailgun_signed, post_json, run_campaign, MAILGUN_SIGNING_KEY,
        };
        const ADDRESS: &str = "Bouncy.Quillfeather@Erasure-Test.example";
        let (vendor, connection) = mailgun_connection(&app).await;
        let reply = app
            .admin(Method::POST, "/crm/contacts")
            .json(&json!({"id": "ct-bouncy", "email": ADDRESS, "tags": ["news"]}))
            .send()
            .await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        run_campaign(&app, "camp-mg", "email").await;
        let key = vendor
            .received_requests()
            .await
            .unwrap()
            .iter()
            .map(form)
            .find(|fields| fields["to"].eq_ignore_ascii_case(ADDRESS))
            .map(|fields| fields["v:herald_message_key"].clone())
            .expect("a message to the contact");
        // A permanent failure whose reason quotes the address, as receiving servers do.
        let bounce = |id: &str| {
            json!({"event-data": {"event": "failed", "id": id, "severity": "permanent",
                "timestamp": chrono::Utc::now().timestamp(), "recipient": ADDRESS,
                "reason": format!("550 5.1.1 <{ADDRESS}>: Recipient address rejected"),
                "delivery-status": {"code": 550, "message": "5.1.1 user unknown"},
                "user-variables": {"herald_message_key": key}}})
        };
        let path = format!("/connect/webhooks/mailgun/{connection}");
        let reply = post_json(
            &app,
            &path,
            mailgun_signed(bounce("bounce-1"), MAILGUN_SIGNING_KEY),
        )
        .await;
        assert_eq!(reply.body["recorded"], 1, "{}", reply.text);
        let reasons = |events: Vec<Value>| -> Vec<String> {
            events
                .iter()
                .filter(|e| e["data"]["type"] == "bounce")
                .map(|e| e["data"]["reason"].as_str().unwrap_or_default().to_string())
                .collect()
        };
        let before = reasons(engagements(&app).await);
        assert!(
            before.len() == 1 && before[0].contains(ADDRESS),
            "the reason quotes the address before the erasure: {before:?}"
        );
        erase(&app, "ct-bouncy").await;
        // The vendor reports the same bounce again, late: counted, without the quote.
        let reply = post_json(
            &app,
            &path,
            mailgun_signed(bounce("bounce-2"), MAILGUN_SIGNING_KEY),
        )
        .await;
        assert_eq!(reply.body["recorded"], 1, "{}", reply.text);
        assert_eq!(
            reasons(engagements(&app).await),
            [ERASED_TEXT, ERASED_TEXT],
            "both bounces are still there"
        );
        caught_up(&app).await;
        let dumped = dump(&app).await.to_lowercase();
        let at = dumped.find(&ADDRESS.to_lowercase());
        assert!(
            at.is_none(),
            "the address is in the dump: {}",
            &dumped[at.unwrap_or(0).saturating_sub(200)..at.unwrap_or(0) + 100]
        );
    }
);

/// What an erased link or reason reads.
const ERASED_TEXT: &str = "[erased]";

db_test!(
    an_erasure_job_run_again_by_two_processes_writes_one_tombstone,
    |app: TestApp| async move {
        let reply = app
            .admin(Method::POST, "/crm/contacts")
            .json(&contact("ct-zyxo"))
            .send()
            .await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        let job = erase(&app, "ct-zyxo").await;
        let job_id = job["jobId"].as_str().unwrap().to_string();
        // Two more processes took the job while it was `running` (as one does after another
        // node's crash) and run it at once, each on its own connections.
        let db = herald::db::Db::connect(&app.database_url, 2).await.unwrap();
        sqlx::query("update jobs set state = 'running' where id = $1")
            .bind(&job_id)
            .execute(&db.write)
            .await
            .unwrap();
        let key = "a-second-node-erasure-key-of-32-bytes-or-more";
        let one = herald::db::Db::connect(&app.database_url, 2)
            .await
            .unwrap()
            .with_erasure_key(key);
        let two = herald::db::Db::connect(&app.database_url, 2)
            .await
            .unwrap()
            .with_erasure_key(key);
        tokio::join!(
            herald::erasure::run(&one, &job_id),
            herald::erasure::run(&two, &job_id)
        );
        let tombstones = app
            .all_events()
            .await
            .into_iter()
            .filter(|e| e["eventType"] == "Erased" && e["data"]["jobId"] == job_id.as_str())
            .count();
        assert_eq!(tombstones, 1);
        let path = format!("/crm/contacts/erasures/{job_id}");
        let reply = app.admin(Method::GET, &path).send().await;
        assert_eq!(reply.body["status"], "done", "{}", reply.text);
    }
);
