//! The dashboard in a real browser: headless Chromium driven through chromedriver (WebDriver)
//! against a server with a seeded org. SQLite only: the page reads the same API on both
//! databases, and the API's own tests cover PostgreSQL. Fails, never skips, when chromedriver is
//! missing (`.ci/run` installs Debian's `chromium` and `chromium-driver`).
//!
//! `HERALD_SCREENSHOTS=docs/screenshots` also saves a PNG of each page there.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::*;
use webdriver::{Browser, Session};

const BROWSER_AGENT: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15";
const EVIL_NAME: &str = "<script>alert('x')</script> & <b>Bold</b>";

/// A small WebDriver client over reqwest: the handful of commands the test needs (ADR 10).
mod webdriver {
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    use base64::Engine;
    use serde_json::{json, Value};

    /// A chromedriver process; killed on drop.
    pub struct Browser {
        child: Child,
        base: String,
        http: reqwest::Client,
    }

    impl Drop for Browser {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// `HERALD_CHROMEDRIVER`, else `chromedriver` on the `PATH`.
    fn chromedriver() -> std::path::PathBuf {
        if let Ok(path) = std::env::var("HERALD_CHROMEDRIVER") {
            return path.into();
        }
        std::env::var_os("PATH")
            .and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|dir| dir.join("chromedriver"))
                    .find(|candidate| candidate.is_file())
            })
            .unwrap_or_else(|| {
                panic!(
                    "chromedriver is not installed, and the dashboard's browser test needs it: \
                     `apt-get install -y chromium chromium-driver` (.ci/run does this), or point \
                     HERALD_CHROMEDRIVER at one"
                )
            })
    }

    impl Browser {
        pub async fn start() -> Browser {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let child = Command::new(chromedriver())
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("chromedriver did not start: {e}"));
            let browser = Browser {
                child,
                base: format!("http://127.0.0.1:{port}"),
                http: reqwest::Client::new(),
            };
            let started = Instant::now();
            loop {
                let ready = browser
                    .http
                    .get(format!("{}/status", browser.base))
                    .send()
                    .await;
                if let Ok(response) = ready {
                    let status: Value = response.json().await.unwrap_or_default();
                    if status["value"]["ready"] == true {
                        return browser;
                    }
                }
                assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "chromedriver did not become ready"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }

        /// A headless Chromium session with its console log kept.
        pub async fn session(&self) -> Session {
            let mut options = json!({"args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1200,900", "--hide-scrollbars", "--force-device-scale-factor=1",
                "--no-first-run", "--disable-extensions", "--lang=en-US"
            ]});
            for binary in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] {
                if std::path::Path::new(binary).exists() {
                    options["binary"] = json!(binary);
                    break;
                }
            }
            let body = json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": options,
                "goog:loggingPrefs": {"browser": "ALL"}
            }}});
            let reply: Value = self
                .http
                .post(format!("{}/session", self.base))
                .json(&body)
                .send()
                .await
                .expect("new session")
                .json()
                .await
                .expect("new session answer");
            let id = reply["value"]["sessionId"]
                .as_str()
                .unwrap_or_else(|| panic!("no session: {reply}"))
                .to_string();
            Session {
                base: format!("{}/session/{id}", self.base),
                http: self.http.clone(),
            }
        }
    }

    pub struct Session {
        base: String,
        http: reqwest::Client,
    }

    impl Session {
        /// One command; panics with WebDriver's error on failure.
        pub async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
            let mut request = self.http.request(method, format!("{}{path}", self.base));
            if let Some(body) = body {
                request = request.json(&body);
            }
            let reply: Value = request
                .send()
                .await
                .expect("webdriver request")
                .json()
                .await
                .expect("webdriver answer");
            if let Some(error) = reply["value"]["error"].as_str() {
                panic!(
                    "webdriver {path}: {error}: {}",
                    reply["value"]["message"].as_str().unwrap_or_default()
                );
            }
            reply["value"].clone()
        }

        pub async fn goto(&self, url: &str) {
            self.cmd(reqwest::Method::POST, "/url", Some(json!({"url": url})))
                .await;
        }

        /// Runs `script` (a function body; `arguments` holds `args`) in the page.
        pub async fn js(&self, script: &str, args: Value) -> Value {
            self.cmd(
                reqwest::Method::POST,
                "/execute/sync",
                Some(json!({"script": script, "args": args})),
            )
            .await
        }

        /// Polls `script` until it returns something other than `null`/`false`, and returns it.
        pub async fn wait(&self, what: &str, script: &str, args: Value) -> Value {
            let started = Instant::now();
            loop {
                let value = self.js(script, args.clone()).await;
                if !value.is_null() && value != false {
                    return value;
                }
                if started.elapsed() > Duration::from_secs(10) {
                    let page = self
                        .js(
                            "return document.getElementById('main').innerText",
                            json!([]),
                        )
                        .await;
                    panic!("timed out waiting for {what}; the page shows: {page}");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }

        /// The element matching `css` (the first).
        pub async fn find(&self, css: &str) -> String {
            let found = self
                .cmd(
                    reqwest::Method::POST,
                    "/element",
                    Some(json!({"using": "css selector", "value": css})),
                )
                .await;
            found
                .as_object()
                .and_then(|o| o.values().next())
                .and_then(Value::as_str)
                .unwrap_or_else(|| panic!("no element id for {css}: {found}"))
                .to_string()
        }

        pub async fn click(&self, css: &str) {
            let element = self.find(css).await;
            self.cmd(
                reqwest::Method::POST,
                &format!("/element/{element}/click"),
                Some(json!({})),
            )
            .await;
        }

        /// Clears the field matching `css` and types `text` into it, key by key.
        pub async fn type_into(&self, css: &str, text: &str) {
            let element = self.find(css).await;
            self.cmd(
                reqwest::Method::POST,
                &format!("/element/{element}/clear"),
                Some(json!({})),
            )
            .await;
            self.cmd(
                reqwest::Method::POST,
                &format!("/element/{element}/value"),
                Some(json!({"text": text})),
            )
            .await;
        }

        /// A PNG of the whole page (the window grown to the page's height, at most 2 400 px).
        pub async fn screenshot(&self) -> Vec<u8> {
            let height = self
                .js("return document.documentElement.scrollHeight", json!([]))
                .await
                .as_i64()
                .unwrap_or(900)
                .clamp(600, 2400);
            self.cmd(
                reqwest::Method::POST,
                "/window/rect",
                Some(json!({"width": 1200, "height": height + 90})),
            )
            .await;
            let png = self.cmd(reqwest::Method::GET, "/screenshot", None).await;
            self.cmd(
                reqwest::Method::POST,
                "/window/rect",
                Some(json!({"width": 1200, "height": 900})),
            )
            .await;
            base64::engine::general_purpose::STANDARD
                .decode(png.as_str().expect("base64 PNG"))
                .expect("PNG")
        }

        /// The browser console's entries since the last call (`level`, `message`, `source`).
        pub async fn console(&self) -> Vec<Value> {
            self.cmd(
                reqwest::Method::POST,
                "/se/log",
                Some(json!({"type": "browser"})),
            )
            .await
            .as_array()
            .cloned()
            .unwrap_or_default()
        }

        pub async fn quit(&self) {
            let _ = self.http.delete(&self.base).send().await;
        }
    }
}

/// `1234567` → `1,234,567`, as the page writes counts.
fn grouped(n: i64) -> String {
    let digits = n.abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

/// What a tile should show for `value` of `key`.
fn tile_text(key: &str, value: &Value) -> String {
    match key {
        "revenue" => {
            let cents = (value.as_f64().unwrap_or(0.0) * 100.0).round() as i64;
            format!("{}.{:02}", grouped(cents / 100), cents % 100)
        }
        "openRate" | "clickRate" => format!("{:.1}%", value.as_f64().unwrap_or(0.0) * 100.0),
        _ => grouped(value.as_i64().unwrap_or(0)),
    }
}

/// Seeds org acme: every channel connected but Facebook, five contacts, a running one-shot
/// that sends, a drip, and a draft named with markup whose launch is refused.
async fn seed(app: &TestApp) {
    for platform in ["email", "sms"] {
        let body = json!({"platform": platform, "vendor": "sandbox", "label": format!("{platform} sandbox")});
        let reply = app
            .admin(Method::POST, "/crm/integrations/connections")
            .json(&body)
            .send()
            .await;
        assert_eq!(reply.status, 201, "{}", reply.text);
    }
    let template = json!({"id": "tpl-spring", "name": "Spring",
        "email": {"subject": "Spring is here, {{ contact.firstName }}",
            "html": "<html><body><p>Hi {{ contact.firstName }}</p><a href=\"https://acme.test/spring\">Shop</a></body></html>"},
        "sms": {"body": "Spring sale! {{ unsubscribeUrl }}"},
        "social": {"text": "Spring is here"}});
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
            {"id": "ct-cyd", "email": "cyd@acme.test", "firstName": "Cyd", "tags": ["prospect", "vip"]},
            {"id": "ct-dan", "email": "dan@acme.test", "firstName": "Dan", "tags": ["prospect"]},
            {"id": "ct-eve", "email": "eve@acme.test", "tags": ["customer"]}
        ]))
        .send()
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let audience = json!({"id": "aud-prospects", "name": "Prospects and VIPs", "type": "dynamic",
        "filter": {"datatype": "contact", "where": {"tags": {"$in": ["prospect", "vip"]}}}});
    let reply = app
        .admin(Method::POST, "/crm/audiences")
        .json(&audience)
        .send()
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);

    let spring = json!({"id": "camp-spring", "name": "Spring 2026 Launch", "type": "one-shot",
        "channels": ["email"], "audienceId": "aud-prospects", "templateId": "tpl-spring",
        "status": "running"});
    let drip = json!({"id": "camp-welcome", "name": "Welcome series", "type": "drip",
        "channels": ["email"], "audienceId": "aud-prospects", "templateId": "tpl-spring",
        "steps": [{"id": "welcome", "delay": "PT0S"},
                  {"id": "nudge", "delay": "P3D", "when": {"notOpened": "welcome"}}],
        "status": "running"});
    let evil = json!({"id": "camp-evil", "name": EVIL_NAME, "type": "one-shot",
        "channels": ["facebook"], "audienceId": "aud-prospects", "templateId": "tpl-spring"});
    for body in [spring, drip, evil] {
        let reply = app.post_campaign(&body).await;
        assert_eq!(reply.status, 201, "{}", reply.text);
    }
    // The one-shot sends to the four contacts; two of them open and one clicks.
    let sent = eventually(Duration::from_secs(20), || async {
        sandbox(app, "campaignId=camp-spring").await.len() == 4
    })
    .await;
    assert!(sent, "camp-spring did not send");
    let messages = sandbox(app, "campaignId=camp-spring").await;
    for (i, message) in messages.iter().enumerate().take(2) {
        let mut urls = vec![message["trackingUrls"]["open"].clone()];
        if i == 0 {
            urls.push(message["trackingUrls"]["clicks"][0].clone());
        }
        for url in urls {
            let url = url.as_str().expect("a tracking URL");
            let path = &url[url.find("/connect/").expect("a /connect/ URL")..];
            let status = app
                .client
                .get(app.url(path))
                .header("user-agent", BROWSER_AGENT)
                .send()
                .await
                .expect("tracking request")
                .status();
            assert!(status.is_success() || status.is_redirection(), "{status}");
        }
    }
    let reply = app
        .admin(Method::POST, "/crm/marketing/campaigns/camp-spring/engagements")
        .json(&json!([
            {"type": "conversion", "channel": "email", "contactId": "ct-ann", "value": "1234.5", "currency": "USD"},
            {"type": "conversion", "channel": "email", "contactId": "ct-bob", "value": "19.99", "currency": "USD"}
        ]))
        .send()
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
}

/// The dashboard API's answer once its numbers are all in and stop moving (the projection is
/// asynchronous).
async fn settled_dashboard(app: &TestApp) -> Value {
    let started = std::time::Instant::now();
    let mut previous = Value::Null;
    loop {
        let reply = app
            .admin(Method::GET, "/crm/marketing/dashboard?days=30")
            .send()
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let tiles = &reply.body["tiles"];
        // Four one-shot sends, the drip's first step to the same four, both conversions.
        let all_in = tiles["sends"] == 8 && tiles["conversions"] == 2 && tiles["clicks"] == 1;
        if all_in && *tiles == previous {
            return reply.body;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the dashboard's numbers did not settle: {tiles}"
        );
        previous = tiles.clone();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn save(name: &str, png: &[u8]) {
    if let Ok(dir) = std::env::var("HERALD_SCREENSHOTS") {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("write screenshot");
    }
}

/// Console entries that are not the two refusals the test provokes on purpose (the launch's
/// `409` and the bad token's `401`, which Chromium logs as failed resource loads).
fn unexpected(entries: Vec<Value>) -> Vec<Value> {
    entries
        .into_iter()
        .filter(|e| e["level"] == "SEVERE" || e["level"] == "WARNING")
        .filter(|e| {
            let message = e["message"].as_str().unwrap_or_default();
            let expected_refusal = message.contains("Failed to load resource")
                && (message.contains("status of 409") || message.contains("status of 401"));
            !expected_refusal
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_works_in_a_real_browser() {
    let browser = Browser::start().await;
    let (url, dir) = fresh_database(Backend::Sqlite).await;
    let mut config = test_config(url, &dir);
    config.signin_link = "on".into();
    config.signin_org = "acme".into();
    let server = herald::startup::Application::build(&config)
        .await
        .expect("build app");
    let link = server.signin_link().expect("a sign-in link").to_string();
    let address = format!("http://{}", server.local_addr());
    tokio::spawn(server.run_until_stopped());
    let app = TestApp {
        address: address.clone(),
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        backend: Backend::Sqlite,
        database_url: config.database_url.clone().unwrap(),
        data_dir: config.data_dir.clone(),
        admin: token(&["acme"], &["admin"], "alice"),
    };
    let (session, ()) = tokio::join!(browser.session(), seed(&app));
    run(&app, &session, &link).await;
    session.quit().await;
}

async fn run(app: &TestApp, b: &Session, link: &str) {
    let api = settled_dashboard(app).await;
    // The start-up link signs in once and leaves no code in the address bar.
    b.goto(link).await;
    b.wait(
        "the tiles",
        "return document.querySelector('[data-tile=sends]')",
        json!([]),
    )
    .await;
    let href = b.js("return location.href", json!([])).await;
    assert_eq!(href, format!("{}/#/", app.address));
    let stored = b
        .js("return sessionStorage.getItem('herald.org')", json!([]))
        .await;
    assert_eq!(stored, "acme");

    // Dashboard: every tile shows what the API says.
    for key in [
        "activeCampaigns",
        "scheduledCampaigns",
        "sends",
        "opens",
        "clicks",
        "conversions",
        "revenue",
        "openRate",
        "clickRate",
    ] {
        let shown = b
            .wait(
                key,
                "const t = document.querySelector(`[data-tile=\"${arguments[0]}\"] .value`); \
                 return t && t.textContent",
                json!([key]),
            )
            .await;
        assert_eq!(shown, tile_text(key, &api["tiles"][key]), "tile {key}");
    }
    let tiles = b
        .js(
            "return document.querySelectorAll('[data-tile]').length",
            json!([]),
        )
        .await;
    assert_eq!(tiles, 9);
    let chart_points = b
        .js(
            "return document.querySelectorAll('figure.chart circle').length",
            json!([]),
        )
        .await;
    assert_eq!(chart_points, 30 * 4, "a point per day and series");
    let top = b
        .js("return [...document.querySelectorAll('#top-campaigns tbody tr')].map(r => r.dataset.campaign)", json!([]))
        .await;
    assert_eq!(top[0], "camp-spring");
    save("dashboard", &b.screenshot().await);

    // Campaigns: the list, with markup in a name shown as text.
    b.goto(&format!("{}/#/campaigns", app.address)).await;
    let names = b
        .wait(
            "three campaigns",
            "const rows = document.querySelectorAll('#campaigns tbody tr'); \
             return rows.length === 3 && [...rows].map(r => r.cells[0].textContent)",
            json!([]),
        )
        .await;
    assert!(
        names.as_array().unwrap().contains(&json!(EVIL_NAME)),
        "{names}"
    );
    let scripts = b.js("return document.scripts.length", json!([])).await;
    assert_eq!(scripts, 1, "only the dashboard's own script");
    let bold = b
        .js(
            "return document.querySelectorAll('main b').length",
            json!([]),
        )
        .await;
    assert_eq!(bold, 0);
    let blockers = b
        .js("return document.querySelector('tr[data-campaign=\"camp-evil\"] td.blockers').textContent", json!([]))
        .await;
    assert_eq!(blockers, "facebook is not connected");
    save("campaigns", &b.screenshot().await);
    b.goto(&format!("{}/#/campaigns?status=draft", app.address))
        .await;
    b.wait(
        "the draft filter",
        "const rows = document.querySelectorAll('#campaigns tbody tr'); \
         return rows.length === 1 && rows[0].dataset.campaign === 'camp-evil'",
        json!([]),
    )
    .await;

    // A campaign page shows its audit trail, as the API has it.
    let events: Vec<String> = app
        .campaign_events("camp-spring")
        .await
        .iter()
        .map(|e| e["eventType"].as_str().unwrap().to_string())
        .collect();
    b.goto(&format!("{}/#/campaigns/camp-spring", app.address))
        .await;
    let shown = b
        .wait(
            "the audit trail",
            "const rows = document.querySelectorAll('#events tbody tr'); \
             return rows.length === arguments[0] && [...rows].map(r => r.dataset.eventType)",
            json!([events.len()]),
        )
        .await;
    assert_eq!(shown, json!(events));
    let reach = b
        .js(
            "return document.getElementById('reach').textContent",
            json!([]),
        )
        .await;
    assert_eq!(reach, "4");
    save("campaign", &b.screenshot().await);

    // A drip shows its steps and enrollments.
    b.goto(&format!("{}/#/campaigns/camp-welcome", app.address))
        .await;
    let steps = b
        .wait(
            "the steps",
            "const rows = document.querySelectorAll('#steps tbody tr'); \
             return rows.length === 2 && [...rows].map(r => r.dataset.step)",
            json!([]),
        )
        .await;
    assert_eq!(steps, json!(["welcome", "nudge"]));
    let enrolled = b
        .js(
            "return document.getElementById('enrollments').textContent",
            json!([]),
        )
        .await;
    assert!(
        enrolled.as_str().unwrap().contains("4 active"),
        "{enrolled}"
    );
    save("drip", &b.screenshot().await);

    // A refused action shows the API's problem detail.
    b.goto(&format!("{}/#/campaigns/camp-evil", app.address))
        .await;
    b.wait(
        "the launch button",
        "return document.querySelector('[data-action=launch]')",
        json!([]),
    )
    .await;
    b.click("[data-action=launch]").await;
    let problem = b
        .wait(
            "the refusal",
            "const p = document.querySelector('#outcome .problem'); return p && p.textContent",
            json!([]),
        )
        .await;
    let problem = problem.as_str().unwrap();
    assert!(problem.contains("Conflict"), "{problem}");
    assert!(problem.contains("facebook is not connected"), "{problem}");
    let still = app.get_campaign("camp-evil").await;
    assert_eq!(still.body["status"], "draft");
    let title = b
        .js("return document.querySelector('h1').textContent", json!([]))
        .await;
    assert!(title.as_str().unwrap().starts_with(EVIL_NAME), "{title}");
    save("refused", &b.screenshot().await);

    // Audiences: each with its reach now, and a live preview of a filter being typed.
    b.goto(&format!("{}/#/audiences", app.address)).await;
    b.wait(
        "the reach",
        "const c = document.querySelector('tr[data-audience=\"aud-prospects\"] td.reach'); \
         return c && c.textContent === '4'",
        json!([]),
    )
    .await;
    b.type_into(
        "#filter",
        r#"{"datatype": "contact", "where": {"tags": "vip"}}"#,
    )
    .await;
    b.wait(
        "the preview",
        "const c = document.getElementById('preview-count'); return c && c.textContent === '2'",
        json!([]),
    )
    .await;
    save("audiences", &b.screenshot().await);

    // Health.
    b.goto(&format!("{}/#/health", app.address)).await;
    b.wait(
        "the projections",
        "return document.querySelectorAll('#projections tbody tr').length > 0",
        json!([]),
    )
    .await;
    let channels = b
        .js("return [...document.querySelectorAll('#channels tbody tr')].map(r => r.dataset.channel)", json!([]))
        .await;
    assert_eq!(channels, json!(["email"]));
    save("health", &b.screenshot().await);

    // A token the server refuses brings the sign-in prompt back, and a pasted token works.
    b.js(
        "sessionStorage.setItem('herald.token', 'not-a-token'); location.hash = '#/campaigns';",
        json!([]),
    )
    .await;
    let message = b
        .wait(
            "the sign-in prompt",
            "const m = document.querySelector('#signin-message'); \
             return document.getElementById('signin') && m && m.textContent",
            json!([]),
        )
        .await;
    assert!(message.as_str().unwrap().contains("refused"), "{message}");
    save("signin", &b.screenshot().await);
    let analyst = token(&["acme"], &["analyst"], "ana");
    b.type_into("#token", &analyst).await;
    b.type_into("#org", "acme").await;
    b.click("#signin button[type=submit]").await;
    b.wait(
        "the campaigns after signing in",
        "return document.querySelectorAll('#campaigns tbody tr').length === 3",
        json!([]),
    )
    .await;

    let console = b.console().await;
    // The log is really read: the refused launch is in it.
    assert!(
        console.iter().any(|e| e["message"]
            .as_str()
            .is_some_and(|m| m.contains("status of 409"))),
        "{console:#?}"
    );
    let errors = unexpected(console);
    assert!(errors.is_empty(), "console errors: {errors:#?}");
}
