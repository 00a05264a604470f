//! The embedded dashboard (`api.md` section 14): the page and its assets at `/`, what it must not
//! hide of the API, and the one-time sign-in exchange. The page's behaviour in a browser is in
//! `browser.rs`.

use reqwest::Method;
use serde_json::json;

use crate::db_test;
use crate::helpers::*;

const ASSETS: [(&str, &str); 3] = [
    ("/assets/app.js", "text/javascript"),
    ("/assets/app.css", "text/css"),
    ("/assets/favicon.svg", "image/svg+xml"),
];

db_test!(
    the_page_is_served_with_a_strict_policy,
    |app: TestApp| async move {
        let page = app.anonymous(Method::GET, "/").send().await;
        assert_eq!(page.status, 200, "{}", page.text);
        assert_eq!(
            page.header("content-type"),
            Some("text/html; charset=utf-8")
        );
        let csp = page.header("content-security-policy").expect("a CSP");
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "connect-src 'self'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
        ] {
            assert!(csp.contains(directive), "{directive} missing from {csp}");
        }
        assert!(!csp.contains("unsafe"), "{csp}");
        assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
        assert!(page
            .text
            .contains(r#"<script src="/assets/app.js" defer></script>"#));
        // The only script is the embedded file: no inline script, no handler attributes, nothing
        // fetched from elsewhere.
        assert_eq!(page.text.matches("<script").count(), 1, "{}", page.text);
        for forbidden in [
            " onclick=",
            " onload=",
            " style=",
            "http://",
            "https://",
            "//cdn",
        ] {
            assert!(!page.text.contains(forbidden), "{forbidden} in the page");
        }
    }
);

db_test!(
    the_assets_are_embedded_and_small,
    |app: TestApp| async move {
        let mut total = app.anonymous(Method::GET, "/").send().await.text.len();
        for (path, content_type) in ASSETS {
            let reply = app.anonymous(Method::GET, path).send().await;
            assert_eq!(reply.status, 200, "{path}: {}", reply.text);
            assert!(
                reply
                    .header("content-type")
                    .is_some_and(|v| v.starts_with(content_type)),
                "{path}: {:?}",
                reply.header("content-type")
            );
            assert!(reply.header("content-security-policy").is_some(), "{path}");
            assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
            // Revalidation: the same ETag is `304` with no body.
            let etag = reply.header("etag").expect("an ETag").to_string();
            let again = app
                .anonymous(Method::GET, path)
                .header("if-none-match", &etag)
                .send()
                .await;
            assert_eq!(again.status, 304, "{path}");
            assert!(again.text.is_empty());
            total += reply.text.len();
        }
        // Under 300 KB even uncompressed (the budget is 300 KB compressed).
        assert!(total < 300 * 1024, "page and assets are {total} bytes");
        // The script reaches the page only through text, never through HTML parsing.
        let script = app
            .anonymous(Method::GET, "/assets/app.js")
            .send()
            .await
            .text;
        for forbidden in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
        ] {
            assert!(!script.contains(forbidden), "{forbidden} in app.js");
        }
    }
);

db_test!(
    unknown_paths_are_404_and_api_routes_are_not_masked,
    |app: TestApp| async move {
        for path in [
            "/nope",
            "/index.html",
            "/assets/",
            "/assets/nope.js",
            "/assets/../Cargo.toml",
            "/campaigns",
            "/dashboard",
            "/api/",
            "/api/assets/app.js",
            "/api/dashboard/signin",
        ] {
            let reply = app.anonymous(Method::GET, path).send().await;
            assert_eq!(reply.status, 404, "{path}: {}", reply.text);
            if reply.header("content-type") == Some("application/problem+json") {
                reply.assert_problem(404);
            }
        }
        // The API keeps its answers beside the page.
        let anonymous = app
            .anonymous(Method::GET, "/crm/marketing/campaigns")
            .send()
            .await;
        anonymous.assert_problem(401);
        for path in ["/crm/marketing/campaigns", "/api/crm/marketing/campaigns"] {
            let reply = app.admin(Method::GET, path).send().await;
            assert_eq!(reply.status, 200, "{path}: {}", reply.text);
            assert!(reply.body["items"].is_array(), "{path}: {}", reply.text);
        }
        let health = app.anonymous(Method::GET, "/healthz").send().await;
        assert_eq!(health.body["status"], "ok");
        let post = app.anonymous(Method::POST, "/").send().await;
        post.assert_problem(405);
        let get_signin = app.anonymous(Method::GET, "/dashboard/signin").send().await;
        get_signin.assert_problem(405);
    }
);

/// A server with sign-in links on (`HERALD_SIGNIN_LINK=on`, org `demo`), and its link.
async fn with_signin(backend: Backend) -> (TestApp, String) {
    let (url, dir) = fresh_database(backend).await;
    let mut config = test_config(url, &dir);
    config.signin_link = "on".into();
    let app = herald::startup::Application::build(&config)
        .await
        .expect("build app");
    let link = app.signin_link().expect("a sign-in link").to_string();
    let address = format!("http://{}", app.local_addr());
    tokio::spawn(app.run_until_stopped());
    let test_app = TestApp {
        address,
        client: reqwest::Client::new(),
        backend,
        database_url: config.database_url.clone().unwrap(),
        data_dir: config.data_dir.clone(),
        admin: token(&["acme"], &["admin"], "alice"),
    };
    (test_app, link)
}

fn code_of(link: &str) -> &str {
    link.split_once("/#signin=").expect("a #signin= fragment").1
}

mod signin_code_works_once {
    use super::*;

    async fn check(backend: Backend) {
        let (app, link) = with_signin(backend).await;
        // A fragment, never a query: the code never reaches a server log or the history.
        assert!(link.starts_with(&app.address), "{link}");
        assert!(!link.contains('?'), "{link}");
        let code = code_of(&link);
        assert!(code.len() >= 43, "{code}");

        let wrong = app
            .anonymous(Method::POST, "/dashboard/signin")
            .json(&json!({"code": "not-the-code"}))
            .send()
            .await;
        wrong.assert_problem(401);
        assert_eq!(wrong.header("www-authenticate"), Some("Bearer"));

        let first = app
            .anonymous(Method::POST, "/dashboard/signin")
            .json(&json!({"code": code}))
            .send()
            .await;
        assert_eq!(first.status, 200, "{}", first.text);
        assert_eq!(first.header("cache-control"), Some("no-store"));
        assert_eq!(first.body["orgId"], "demo");
        let token = first.body["token"].as_str().expect("a token").to_string();
        let expires =
            chrono::DateTime::parse_from_rfc3339(first.body["expiresAt"].as_str().unwrap())
                .unwrap();
        let hours = (expires.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_minutes();
        assert!((470..=480).contains(&hours), "expires in {hours} minutes");

        // The token is an admin of `demo`, and of nothing else; what it does is recorded as the
        // dashboard's.
        let created = app
            .as_user(&token, "demo", Method::POST, "/crm/marketing/campaigns")
            .json(&json!({"id": "camp-1", "name": "From the dashboard", "type": "one-shot", "channels": ["email"]}))
            .send()
            .await;
        assert_eq!(created.status, 201, "{}", created.text);
        assert_eq!(created.body["createdBy"], "dashboard");
        let other = app
            .as_user(&token, "acme", Method::GET, "/crm/marketing/campaigns")
            .send()
            .await;
        other.assert_problem(403);

        // Once only.
        let again = app
            .anonymous(Method::POST, "/dashboard/signin")
            .json(&json!({"code": code}))
            .send()
            .await;
        again.assert_problem(401);
        assert!(again.body.get("token").is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        check(Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        check(Backend::Postgres).await;
    }
}

db_test!(
    signin_is_refused_when_links_are_off,
    |app: TestApp| async move {
        // The test servers have HERALD_JWT_SECRET set, so `auto` leaves links off.
        let reply = app
            .anonymous(Method::POST, "/dashboard/signin")
            .json(&json!({"code": "anything-at-all"}))
            .send()
            .await;
        reply.assert_problem(401);
        assert!(reply.body["detail"].as_str().unwrap().contains("off"));
    }
);

db_test!(bad_signin_bodies_are_refused, |app: TestApp| async move {
    for (body, status) in [
        (json!({}), 422),
        (json!({"code": 7}), 422),
        (json!({"code": ""}), 422),
        (json!({"code": "x".repeat(300)}), 422),
        (json!([]), 422),
    ] {
        let reply = app
            .anonymous(Method::POST, "/dashboard/signin")
            .json(&body)
            .send()
            .await;
        reply.assert_problem(status);
    }
    let malformed = app
        .anonymous(Method::POST, "/dashboard/signin")
        .raw(Some("application/json"), "{\"code\":")
        .send()
        .await;
    malformed.assert_problem(400);
    let form = app
        .anonymous(Method::POST, "/dashboard/signin")
        .raw(Some("application/x-www-form-urlencoded"), "code=x")
        .send()
        .await;
    form.assert_problem(415);
});

/// The embedded default (SQLite, secrets generated into the data dir) prints the link at
/// start-up; with `HERALD_SIGNIN_LINK=off` it does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_default_prints_a_signin_link() {
    let (url, dir) = fresh_database(Backend::Sqlite).await;
    let mut config = test_config(url.clone(), &dir);
    config.jwt_secret = None;
    config.tracking_secret = None;
    config.secrets_key = None;
    let app = herald::startup::Application::build(&config)
        .await
        .expect("build app");
    let link = app.signin_link().expect("a link on the embedded default");
    assert!(link.contains("/#signin="), "{link}");
    drop(app);

    config.signin_link = "off".into();
    config.bind = "127.0.0.1:0".into();
    let quiet = herald::startup::Application::build(&config)
        .await
        .expect("build app");
    assert!(quiet.signin_link().is_none());
    drop(quiet);

    // And the log of a real start says it, once listening.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = dir.join("signin.log");
    let mut child = herald_process(&url, &dir)
        .env_remove("HERALD_JWT_SECRET")
        .env_remove("HERALD_TRACKING_SECRET")
        .env_remove("HERALD_SECRETS_KEY")
        .env("HERALD_BIND", format!("127.0.0.1:{port}"))
        .env("HERALD_WORKERS", "false")
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start herald");
    let printed = eventually(std::time::Duration::from_secs(30), || async {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("#signin="))
    })
    .await;
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(printed, "no sign-in link in the log: {text}");
    assert!(
        text.contains(&format!("http://127.0.0.1:{port}/#signin=")),
        "{text}"
    );
}
