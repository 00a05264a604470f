//! `herald demo [--org demo]`: fills an org with something to look at. It starts this server
//! in-process on a loopback port (with its workers, so launches really send through the sandbox)
//! and calls the public API with an admin token, so every change goes through the command layer
//! and lands in the event log as in real use. Every resource has a fixed id and every reported
//! engagement an `externalId`, so a second run finds everything in place and writes nothing.

use std::time::Duration;

use anyhow::{bail, Context};
use chrono::Utc;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::auth::{sign_hs256, Claims};
use crate::config::Config;
use crate::progress::Progress;
use crate::startup::Application;

/// The actor recorded on every event the demo causes.
pub const ACTOR: &str = "herald-demo";

const CONTACTS: usize = 300;
const PLATFORMS: [&str; 8] = [
    "email",
    "sms",
    "facebook",
    "instagram",
    "linkedin",
    "x",
    "google-ads",
    "meta-ads",
];
const BROWSER: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36";

/// What a run did, printed as one JSON line.
#[derive(Debug, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub org_id: String,
    pub created: Vec<String>,
    pub already_there: usize,
    pub contacts: Value,
    pub engagements: u64,
}

struct Client {
    base: String,
    http: reqwest::Client,
    token: String,
    org: String,
}

impl Client {
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header("orgid", &self.org);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("calling {path}"))?;
        let status = response.status();
        let text = response.text().await?;
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }

    /// Creates a resource unless one with its id is there: `true` when it created it.
    async fn create(&self, path: &str, body: &Value) -> anyhow::Result<bool> {
        match self.call(Method::POST, path, Some(body)).await? {
            (StatusCode::CREATED, _) => Ok(true),
            (StatusCode::CONFLICT, _) => Ok(false),
            (status, answer) => bail!("POST {path} answered {status}: {answer}"),
        }
    }

    async fn expect(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let (status, answer) = self.call(method.clone(), path, body).await?;
        if !status.is_success() {
            bail!("{method} {path} answered {status}: {answer}");
        }
        Ok(answer)
    }
}

/// A small deterministic generator, so every run makes the same contacts and numbers.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

/// Fills `org` on the database `config` points at. `config` is the server's configuration;
/// its listen address and sign-in link are ignored.
pub async fn run(config: &Config, org: &str, quiet: bool) -> anyhow::Result<Summary> {
    if !herald_domain::is_valid_id(org) {
        bail!("{org} is not a valid org id");
    }
    let secrets = config.secrets()?;
    let Some(secret) = secrets.jwt_secret.clone() else {
        bail!("herald demo signs its requests with HERALD_JWT_SECRET; with HERALD_JWT_PUBLIC_KEY it cannot");
    };
    let mut config = config.clone();
    // Links in what the demo sends point where the real server listens.
    config.public_url = Some(config.public_url());
    config.bind = "127.0.0.1:0".into();
    config.signin_link = "off".into();
    config.workers = true;
    config.rate_limit_org = 0;
    config.tracking_max_per_token = 0;
    let app = Application::build(&config).await?;
    let base = format!("http://{}", app.local_addr());
    tokio::spawn(app.run_until_stopped());
    let claims = Claims {
        sub: ACTOR.into(),
        exp: (Utc::now() + chrono::TimeDelta::hours(1)).timestamp(),
        orgs: vec![org.to_string()],
        roles: vec!["admin".into()],
        iss: config.jwt_issuer.clone(),
        aud: config.jwt_audience.clone().map(Value::String),
    };
    let client = Client {
        base,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()?,
        token: sign_hs256(&secret, &claims)?,
        org: org.to_string(),
    };
    let mut summary = Summary {
        org_id: org.to_string(),
        ..Summary::default()
    };
    let steps = Progress::steps(quiet, 7, "demo");

    steps.say("connections");
    for platform in PLATFORMS {
        let body = json!({"id": format!("conn-demo-{platform}"), "platform": platform, "vendor": "sandbox",
            "label": format!("{platform} (sandbox)"),
            "profiles": [{"id": format!("{platform}-demo"), "name": "Demo Outfitters", "handle": "demo-outfitters"}]});
        note(
            &mut summary,
            &format!("conn-demo-{platform}"),
            client
                .create("/crm/integrations/connections", &body)
                .await?,
        );
    }
    steps.inc();

    steps.say("contacts");
    summary.contacts = client
        .expect(
            Method::POST,
            "/crm/contacts/import",
            Some(&Value::Array(contacts())),
        )
        .await?;
    steps.inc();

    steps.say("audiences and templates");
    for (id, name, filter) in [
        ("aud-demo-everyone", "Everyone", json!({})),
        (
            "aud-demo-prospects",
            "Prospects",
            json!({"tags": "prospect"}),
        ),
        (
            "aud-demo-customers",
            "Customers",
            json!({"tags": "customer"}),
        ),
        ("aud-demo-vip", "VIPs", json!({"tags": "vip"})),
        ("aud-demo-dormant", "Dormant", json!({"tags": "dormant"})),
        (
            "aud-demo-pro-plan",
            "Pro plan",
            json!({"attributes.plan": "pro"}),
        ),
    ] {
        let body = json!({"id": id, "name": name, "type": "dynamic", "filter": {"datatype": "contact", "where": filter}});
        note(
            &mut summary,
            id,
            client.create("/crm/audiences", &body).await?,
        );
    }
    for body in templates() {
        let id = body["id"].as_str().unwrap_or_default().to_string();
        note(
            &mut summary,
            &id,
            client.create("/crm/marketing/templates", &body).await?,
        );
    }
    steps.inc();

    steps.say("campaigns");
    let mut fresh = Vec::new();
    for body in campaigns() {
        let id = body["id"].as_str().unwrap_or_default().to_string();
        let created = client.create("/crm/marketing/campaigns", &body).await?;
        note(&mut summary, &id, created);
        if created {
            fresh.push(id);
        }
    }
    steps.inc();

    steps.say("sends");
    let sent = [
        "camp-demo-spring",
        "camp-demo-flash",
        "camp-demo-old",
        "camp-demo-ads",
    ];
    for id in sent.iter().filter(|id| fresh.iter().any(|f| f == *id)) {
        wait_until_completed(&client, id).await?;
    }
    if fresh.iter().any(|f| f == "camp-demo-winback") {
        client
            .expect(
                Method::POST,
                "/crm/marketing/campaigns/camp-demo-winback/pause",
                None,
            )
            .await?;
    }
    steps.inc();

    steps.say("engagement");
    let mut dice = Dice(7);
    for id in sent.iter().filter(|id| fresh.iter().any(|f| f == *id)) {
        summary.engagements += opens_and_clicks(&client, id, &mut dice).await?;
        summary.engagements += history(&client, id, &mut dice).await?;
    }
    steps.inc();

    if fresh.iter().any(|f| f == "camp-demo-old") {
        client
            .expect(
                Method::DELETE,
                "/crm/marketing/campaigns/camp-demo-old",
                None,
            )
            .await?;
    }
    steps.say("letting the workers finish");
    settle(&client).await?;
    steps.inc();
    steps.finish();
    Ok(summary)
}

fn note(summary: &mut Summary, id: &str, created: bool) {
    if created {
        summary.created.push(id.to_string());
    } else {
        summary.already_there += 1;
    }
}

async fn wait_until_completed(client: &Client, id: &str) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    loop {
        let campaign = client
            .expect(Method::GET, &format!("/crm/marketing/campaigns/{id}"), None)
            .await?;
        if campaign["status"] == "completed" {
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(120) {
            bail!(
                "{id} did not finish sending within two minutes (status {})",
                campaign["status"]
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until the workers have nothing running, every read model has caught up and the log
/// has stopped growing for two seconds (a drip's first step goes out right after its launch),
/// so that nothing the demo set off is left for a later start.
async fn settle(client: &Client) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let mut last = (i64::MIN, std::time::Instant::now());
    loop {
        let health = client
            .expect(Method::GET, "/crm/marketing/health", None)
            .await?;
        let head = health["projections"]["campaigns"]["position"]
            .as_i64()
            .unwrap_or(0);
        let running = health["queue"]["running"].as_i64().unwrap_or(0);
        // The read models (analytics, status counts) are caught up with the log.
        let behind = health["projections"]
            .as_object()
            .into_iter()
            .flatten()
            .any(|(_, p)| p["lag"].as_i64().unwrap_or(0) > 0);
        if head != last.0 || running > 0 || behind {
            last = (head, std::time::Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(2) {
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(120) {
            bail!("the workers were still busy after two minutes");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Opens about half of a campaign's emails and clicks about one in six, as a person would
/// (through the tracking links, with a browser's User-Agent).
async fn opens_and_clicks(client: &Client, id: &str, dice: &mut Dice) -> anyhow::Result<u64> {
    let mut recorded = 0;
    let mut cursor = String::new();
    loop {
        let page = client
            .expect(
                Method::GET,
                &format!("/crm/integrations/sandbox/messages?campaignId={id}&channel=email&limit=500{cursor}"),
                None,
            )
            .await?;
        for message in page["items"].as_array().into_iter().flatten() {
            let urls = &message["trackingUrls"];
            let roll = dice.below(100);
            let mut hits = Vec::new();
            if roll < 50 {
                hits.push(urls["open"].clone());
            }
            if roll < 16 {
                hits.push(urls["clicks"][0].clone());
            }
            for url in hits.iter().filter_map(Value::as_str) {
                let Some(at) = url.find("/connect/") else {
                    continue;
                };
                client
                    .http
                    .get(format!("{}{}", client.base, &url[at..]))
                    .header("user-agent", BROWSER)
                    .send()
                    .await?;
                recorded += 1;
            }
        }
        match page["nextCursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => return Ok(recorded),
        }
    }
}

/// Conversions, revenue and replies (or, for ads, impressions and interactions) spread over
/// the last 30 days, each with an `externalId` so a repeat records nothing.
async fn history(client: &Client, id: &str, dice: &mut Dice) -> anyhow::Result<u64> {
    let ads = id == "camp-demo-ads";
    let mut items = Vec::new();
    for day in 0..30i64 {
        let at = Utc::now()
            - chrono::TimeDelta::days(day)
            - chrono::TimeDelta::minutes(dice.below(600) as i64);
        let at = at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        if ads {
            for channel in ["google-ads", "meta-ads"] {
                items.push(
                    json!({"type": "impression", "channel": channel, "value": 400 + dice.below(900),
                    "occurredAt": at, "externalId": format!("demo-{channel}-imp-{day}")}),
                );
                items.push(
                    json!({"type": "interaction", "channel": channel, "value": 5 + dice.below(40),
                    "occurredAt": at, "externalId": format!("demo-{channel}-int-{day}")}),
                );
            }
            continue;
        }
        let conversions = dice.below(4) + u64::from(day % 7 < 2);
        for n in 0..conversions {
            let cents = 1500 + dice.below(12000);
            items.push(json!({"type": "conversion", "channel": "email", "value": format!("{}.{:02}", cents / 100, cents % 100),
                "currency": "USD", "occurredAt": at, "externalId": format!("demo-{id}-conv-{day}-{n}")}));
        }
        if dice.below(3) == 0 {
            items.push(
                json!({"type": "reply", "channel": "email", "occurredAt": at,
                "externalId": format!("demo-{id}-reply-{day}")}),
            );
        }
    }
    let answer = client
        .expect(
            Method::POST,
            &format!("/crm/marketing/campaigns/{id}/engagements"),
            Some(&Value::Array(items)),
        )
        .await?;
    Ok(answer["recorded"].as_u64().unwrap_or(0))
}

/// [`CONTACTS`] contacts with names, tags, attributes and zones, the same on every run.
fn contacts() -> Vec<Value> {
    let first = [
        "Ada", "Ben", "Cleo", "Dev", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kemi",
        "Luca", "Maya", "Noor", "Omar", "Priya", "Quinn", "Rosa", "Sami", "Tess",
    ];
    let last = [
        "Archer",
        "Bauer",
        "Costa",
        "Dubois",
        "Eriksen",
        "Fischer",
        "Garcia",
        "Haddad",
        "Ito",
        "Jensen",
        "Kowalski",
        "Lindqvist",
        "Moreau",
        "Nakamura",
        "Okafor",
    ];
    let zones = [
        "America/New_York",
        "America/Chicago",
        "America/Los_Angeles",
        "Europe/London",
        "Europe/Paris",
        "Asia/Tokyo",
    ];
    let cities = [
        "New York",
        "Chicago",
        "San Francisco",
        "London",
        "Paris",
        "Tokyo",
    ];
    let mut dice = Dice(42);
    (1..=CONTACTS)
        .map(|n| {
            let f = dice.pick(&first);
            let l = dice.pick(&last);
            let place = dice.below(zones.len() as u64) as usize;
            let mut tags = vec![dice.pick(&["prospect", "prospect", "customer", "customer", "dormant"])];
            if dice.below(5) == 0 {
                tags.push("vip");
            }
            if dice.below(2) == 0 {
                tags.push("newsletter");
            }
            let plan = dice.pick(&["free", "free", "starter", "pro"]);
            let renewal = Utc::now().date_naive() + chrono::TimeDelta::days(5 + dice.below(360) as i64);
            json!({"id": format!("ct-demo-{n:03}"), "firstName": f, "lastName": l,
                "email": format!("{}.{}.{n}@example.com", f.to_lowercase(), l.to_lowercase()),
                "phone": format!("+1555010{n:04}"), "timezone": zones[place], "tags": tags,
                "attributes": {"city": cities[place], "plan": plan, "renewalAt": renewal.to_string()}})
        })
        .collect()
}

fn templates() -> Vec<Value> {
    let footer = "<p><a href=\"{{ unsubscribeUrl }}\">Unsubscribe</a></p>";
    vec![
        json!({"id": "tpl-demo-spring", "name": "Spring collection",
            "email": {"subject": "Spring is here, {{ contact.firstName }}",
                "html": format!("<h1>New season, {{{{ contact.firstName }}}}</h1><p>Our spring collection is in.</p><p><a href=\"https://shop.example.com/spring\">Shop now</a></p>{footer}")},
            "sms": {"body": "Spring collection is in: 20% off this week. Stop: {{ unsubscribeUrl }}"},
            "social": {"text": "Spring 2026 is here. New colours, same comfort."}}),
        json!({"id": "tpl-demo-flash", "name": "Flash sale",
            "email": {"subject": "48 hours only, {{ contact.firstName }}",
                "html": format!("<p>Everything 30% off until Sunday.</p><p><a href=\"https://shop.example.com/sale\">See the sale</a></p>{footer}")}}),
        json!({"id": "tpl-demo-welcome", "name": "Welcome",
            "email": {"subject": "Welcome aboard, {{ contact.firstName }}",
                "html": format!("<p>Thanks for joining.</p><p><a href=\"https://shop.example.com/start\">Get started</a></p>{footer}")}}),
        json!({"id": "tpl-demo-nudge", "name": "Nudge",
            "email": {"subject": "Did you see this?",
                "html": format!("<p>Your welcome offer ends soon.</p><p><a href=\"https://shop.example.com/offer\">Use it</a></p>{footer}")}}),
        json!({"id": "tpl-demo-renewal", "name": "Renewal reminder",
            "email": {"subject": "Your plan renews next week",
                "html": format!("<p>Your {{{{ contact.attributes.plan }}}} plan renews on {{{{ contact.attributes.renewalAt }}}}.</p>{footer}")},
            "sms": {"body": "Your plan renews soon. Stop: {{ unsubscribeUrl }}"}}),
        json!({"id": "tpl-demo-weekly", "name": "Weekly picks",
            "email": {"subject": "This week's picks",
                "html": format!("<p>Five things we like this week.</p><p><a href=\"https://shop.example.com/picks\">Read</a></p>{footer}")}}),
        json!({"id": "tpl-demo-ads", "name": "Spring ads", "social": {"text": "Spring sale: 20% off"}}),
    ]
}

/// Campaigns of every type, which the run brings into every status: completed one-shots and
/// multi-channel sends, a running drip, a running milestone, a recurring one waiting for
/// Monday, a scheduled one, a paused drip, a draft blocked by a missing template, a completed
/// ads campaign, and a deleted one.
fn campaigns() -> Vec<Value> {
    let in_a_month = (Utc::now() + chrono::TimeDelta::days(30))
        .format("%Y-%m-%dT09:00:00Z")
        .to_string();
    vec![
        json!({"id": "camp-demo-spring", "name": "Spring 2026 launch", "type": "multi-channel",
            "channels": ["email", "sms", "facebook", "instagram"], "audienceId": "aud-demo-prospects",
            "templateId": "tpl-demo-spring",
            "socialProfiles": {"facebook": "facebook-demo", "instagram": "instagram-demo"}, "status": "running"}),
        json!({"id": "camp-demo-flash", "name": "Weekend flash sale", "type": "one-shot", "channels": ["email"],
            "audienceId": "aud-demo-customers", "templateId": "tpl-demo-flash", "status": "running"}),
        json!({"id": "camp-demo-welcome", "name": "Welcome series", "type": "drip", "channels": ["email"],
            "audienceId": "aud-demo-vip", "templateId": "tpl-demo-welcome",
            "steps": [{"id": "welcome", "delay": "PT0S"},
                      {"id": "nudge", "templateId": "tpl-demo-nudge", "delay": "P3D", "at": "10:00", "when": {"notOpened": "welcome"}}],
            "exit": {"on": ["conversion"]}, "status": "running"}),
        json!({"id": "camp-demo-renewal", "name": "Renewal reminder", "type": "milestone", "channels": ["email", "sms"],
            "audienceId": "aud-demo-pro-plan", "templateId": "tpl-demo-renewal",
            "trigger": {"field": "attributes.renewalAt", "offset": "-P7D", "at": "09:00"},
            "steps": [{"id": "heads-up", "channels": ["email"], "delay": "PT0S"},
                      {"id": "last-call", "channels": ["sms"], "delay": "P6D", "at": "12:00", "when": {"notClicked": "heads-up"}}],
            "status": "running"}),
        json!({"id": "camp-demo-weekly", "name": "Weekly picks", "type": "recurring", "channels": ["email"],
            "audienceId": "aud-demo-everyone", "templateId": "tpl-demo-weekly",
            "recurring": {"cron": "0 9 * * 1"}, "schedule": {"timezone": "America/New_York"}, "status": "running"}),
        json!({"id": "camp-demo-summer", "name": "Summer preview", "type": "one-shot", "channels": ["email"],
            "audienceId": "aud-demo-vip", "templateId": "tpl-demo-spring",
            "schedule": {"startAt": in_a_month, "timezone": "Europe/Paris"}, "status": "scheduled"}),
        json!({"id": "camp-demo-winback", "name": "Win back", "type": "drip", "channels": ["email"],
            "audienceId": "aud-demo-dormant", "templateId": "tpl-demo-nudge",
            "steps": [{"id": "miss-you", "delay": "P1D", "at": "10:00"}], "status": "running"}),
        json!({"id": "camp-demo-holiday", "name": "Holiday teaser (template not written yet)", "type": "one-shot",
            "channels": ["email", "sms"], "audienceId": "aud-demo-everyone", "templateId": "tpl-demo-holiday"}),
        json!({"id": "camp-demo-ads", "name": "Spring ads", "type": "multi-channel", "channels": ["google-ads", "meta-ads"],
            "audienceId": "aud-demo-everyone", "templateId": "tpl-demo-ads", "status": "running"}),
        json!({"id": "camp-demo-old", "name": "Winter clearance (deleted)", "type": "one-shot", "channels": ["email"],
            "audienceId": "aud-demo-dormant", "templateId": "tpl-demo-flash", "status": "running"}),
    ]
}
