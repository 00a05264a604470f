//! The server's log: one `info` line per request, and none of what a request carries as a
//! credential (the query string of a tracking URL, the `Authorization` header).

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::*;

/// The JSON lines of a server's log.
fn log_lines(server: &LoggedServer) -> Vec<Value> {
    std::fs::read_to_string(&server.log)
        .unwrap()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// The request lines with this request id.
fn request_lines<'a>(lines: &'a [Value], request_id: &str) -> Vec<&'a Value> {
    lines
        .iter()
        .filter(|l| l["fields"]["message"] == "request" && l["fields"]["request_id"] == request_id)
        .collect()
}

async fn every_request_is_logged_once_without_its_query_or_credentials(backend: Backend) {
    let server = spawn_logged(backend).await;
    let app = &server.app;
    let body = json!({"id": "camp-1", "name": "One", "type": "one-shot", "channels": ["email"]});
    let requests = [
        (
            app.admin(Method::POST, "/crm/marketing/campaigns")
                .json(&body),
            "POST",
            "/crm/marketing/campaigns",
        ),
        (
            app.admin(
                Method::GET,
                "/api/crm/marketing/campaigns/camp-1?secret-query-value=1",
            ),
            "GET",
            "/api/crm/marketing/campaigns/{id}",
        ),
        (
            app.anonymous(
                Method::GET,
                "/connect/automation/camp-1/step-1/email/open?t=tracking-token-value",
            ),
            "GET",
            "/connect/automation/{id}/{step}/email/open",
        ),
        (
            app.anonymous(Method::GET, "/no/such/route?t=another-token-value"),
            "GET",
            "-",
        ),
    ];
    let mut expected = Vec::new();
    for (call, method, route) in requests {
        let reply = call.send().await;
        let id = reply
            .header("x-request-id")
            .expect("every answer carries its request id")
            .to_string();
        expected.push((id, method, route, reply.status.as_u16()));
    }
    assert_eq!(expected[0].3, 201);
    assert_eq!(expected[1].3, 200);
    assert_eq!(expected[3].3, 404);

    let logged = eventually(Duration::from_secs(10), || async {
        let lines = log_lines(&server);
        expected
            .iter()
            .all(|(id, ..)| !request_lines(&lines, id).is_empty())
    })
    .await;
    let lines = log_lines(&server);
    assert!(logged, "request lines missing: {lines:#?}");
    for (id, method, route, status) in &expected {
        let found = request_lines(&lines, id);
        assert_eq!(found.len(), 1, "one line for request {id}: {found:#?}");
        let line = found[0];
        assert_eq!(line["level"], "INFO", "{line}");
        let fields = &line["fields"];
        assert_eq!(fields["method"], *method, "{line}");
        assert_eq!(fields["route"], *route, "{line}");
        assert_eq!(fields["status"], *status, "{line}");
        assert!(
            fields["latency_ms"].as_f64().is_some_and(|ms| ms >= 0.0),
            "{line}"
        );
    }

    let log = std::fs::read_to_string(&server.log).unwrap();
    for needle in [
        "secret-query-value",
        "tracking-token-value",
        "another-token-value",
        app.admin.as_str(),
        "Bearer",
    ] {
        let leaks: Vec<&str> = log.lines().filter(|l| l.contains(needle)).collect();
        assert_eq!(leaks, Vec::<&str>::new(), "{needle} is in the log");
    }

    // Started without HERALD_PUBLIC_URL on 127.0.0.1: its links would lead nowhere.
    let warnings: Vec<&Value> = lines
        .iter()
        .filter(|l| {
            l["level"] == "WARN"
                && l["fields"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("HERALD_PUBLIC_URL"))
        })
        .collect();
    assert_eq!(warnings.len(), 1, "{lines:#?}");
    assert!(
        warnings[0]["fields"]["public_url"]
            .as_str()
            .is_some_and(|url| url.starts_with("http://127.0.0.1:")),
        "{}",
        warnings[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_is_logged_once_without_its_query_or_credentials_on_sqlite() {
    every_request_is_logged_once_without_its_query_or_credentials(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_is_logged_once_without_its_query_or_credentials_on_postgres() {
    every_request_is_logged_once_without_its_query_or_credentials(Backend::Postgres).await;
}
