//! How every HTTP vendor's failures are classified, and that none of them leaks a credential.

use std::time::Duration;

use herald::vendors::{Receipt, SendError};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{adapter, adapter_with_timeout, http_cases, Case};

/// The error, after checking that neither its text nor its debug form holds a credential.
fn scrubbed(case: &Case, result: Result<Receipt, SendError>) -> SendError {
    let error = match result {
        Ok(receipt) => panic!("{}: expected an error, got {receipt:?}", case.name),
        Err(error) => error,
    };
    let shown = format!("{error} {error:?}");
    for secret in case.secrets() {
        assert!(!shown.contains(&secret), "{}: {shown}", case.name);
    }
    error
}

/// A stand-in answering every request with `response`.
async fn answering(response: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(response)
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn a_throttled_send_is_retried_after_the_delay_the_vendor_asked_for() {
    let server = answering(ResponseTemplate::new(429).insert_header("Retry-After", "7")).await;
    for case in http_cases(&server.uri()) {
        let error = scrubbed(&case, adapter(&case.config).send(&case.message).await);

        assert!(error.is_retryable(), "{}: {error}", case.name);
        assert_eq!(
            error.retry_after(),
            Some(Duration::from_secs(7)),
            "{}",
            case.name
        );
    }
}

#[tokio::test]
async fn x_rate_limit_reset_is_honoured_when_there_is_no_retry_after() {
    let reset = chrono::Utc::now().timestamp() + 60;
    let server = answering(
        ResponseTemplate::new(429).insert_header("x-rate-limit-reset", reset.to_string().as_str()),
    )
    .await;
    let case = http_cases(&server.uri())
        .into_iter()
        .find(|c| c.name == "x")
        .unwrap();

    let before = chrono::Utc::now().timestamp();
    let error = scrubbed(&case, adapter(&case.config).send(&case.message).await);
    let after = chrono::Utc::now().timestamp();

    // The delay runs up to the reset, from some second of the call, however long it took.
    let delay = error.retry_after().expect("a delay").as_secs() as i64;
    assert!(
        (reset - after..=reset - before).contains(&delay),
        "{delay} s, reset {reset}, call between {before} and {after}"
    );
}

#[tokio::test]
async fn a_vendor_server_error_is_retryable() {
    let server = answering(ResponseTemplate::new(500).set_body_string("oops")).await;
    for case in http_cases(&server.uri()) {
        let error = scrubbed(&case, adapter(&case.config).send(&case.message).await);

        assert!(error.is_retryable(), "{}: {error}", case.name);
        assert!(error.to_string().contains("HTTP 500"), "{error}");
    }
}

#[tokio::test]
async fn a_vendor_slower_than_the_client_timeout_is_retryable() {
    let server = answering(ResponseTemplate::new(200).set_delay(Duration::from_secs(3))).await;
    for case in http_cases(&server.uri()) {
        let adapter = adapter_with_timeout(&case.config, Duration::from_millis(200));

        let error = scrubbed(&case, adapter.send(&case.message).await);

        assert!(error.is_retryable(), "{}: {error}", case.name);
        assert!(error.to_string().contains("timed out"), "{error}");
    }
}

#[tokio::test]
async fn an_unreachable_vendor_is_retryable_and_its_url_is_not_quoted() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    for case in http_cases(&base) {
        let error = scrubbed(&case, adapter(&case.config).send(&case.message).await);

        assert!(error.is_retryable(), "{}: {error}", case.name);
        assert!(!error.to_string().contains("127.0.0.1"), "{error}");
    }
}

#[tokio::test]
async fn a_rejected_request_is_permanent_and_credentials_echoed_back_are_scrubbed() {
    let server = MockServer::start().await;
    for case in http_cases(&server.uri()) {
        server.reset().await;
        let echo = format!(
            "{{\"errors\":[{{\"message\":\"bad request from {}\"}}]}}",
            case.secrets().join(" and ")
        );
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(400).set_body_string(echo))
            .mount(&server)
            .await;

        let error = scrubbed(&case, adapter(&case.config).send(&case.message).await);

        assert!(!error.is_retryable(), "{}: {error}", case.name);
        let shown = error.to_string();
        assert!(shown.contains(case.config.vendor.as_str()), "{shown}");
        assert!(shown.contains("HTTP 400"), "{shown}");
        assert!(shown.contains("bad request from [redacted]"), "{shown}");
    }
}

#[tokio::test]
async fn a_2xx_with_a_garbage_body_is_a_send_without_an_id() {
    let server = answering(ResponseTemplate::new(200).set_body_string("\u{0}<<not json>>")).await;
    for case in http_cases(&server.uri()) {
        // Instagram must read the container id before publishing; see the meta tests.
        if case.name == "instagram" {
            continue;
        }
        let receipt = adapter(&case.config).send(&case.message).await;

        let receipt = receipt.unwrap_or_else(|e| panic!("{}: {e}", case.name));
        assert_eq!(receipt.provider_message_id, None, "{}", case.name);
    }
}

/// Server-side request forgery: without an operator's `HERALD_OUTBOUND_ALLOW`, no vendor call
/// reaches a loopback, private or link-local address, whether the connection names it as an
/// address or by a name that resolves there when the call is made (as after DNS rebinding).
#[tokio::test]
async fn vendor_calls_never_reach_non_public_addresses_unless_allowed() {
    use herald::vendors::{adapter_for, Outbound, OutboundPolicy};
    let strict = crate::helpers::strict_client(Duration::from_secs(5));
    for base in [
        "http://169.254.169.254/latest",
        "http://127.0.0.1:9",
        "http://[::1]:9",
        "http://10.0.0.5",
        "http://[::ffff:127.0.0.1]:9",
    ] {
        for case in http_cases(base) {
            let refused = adapter_for(&case.config, strict.clone())
                .err()
                .unwrap_or_else(|| panic!("{} built for {base}", case.name));
            assert!(
                refused.contains("HERALD_OUTBOUND_ALLOW"),
                "{}: {refused}",
                case.name
            );
        }
    }
    // A stand-in on loopback, named `localhost`: never called.
    let server = answering(ResponseTemplate::new(200).set_body_string("{}")).await;
    let by_name = server.uri().replace("127.0.0.1", "localhost");
    for case in http_cases(&by_name) {
        let adapter =
            adapter_for(&case.config, strict.clone()).expect("a name is checked per call");
        let error = scrubbed(&case, adapter.send(&case.message).await);
        assert!(!error.is_retryable(), "{}: {error}", case.name);
    }
    assert!(server.received_requests().await.unwrap().is_empty());
    // Named in the allow list, the same stand-in is reached.
    let allowed = Outbound::new(
        Duration::from_secs(5),
        std::sync::Arc::new(OutboundPolicy::parse("localhost").unwrap()),
    );
    let case = &http_cases(&by_name)[0];
    let _ = adapter_for(&case.config, allowed)
        .unwrap()
        .send(&case.message)
        .await;
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

/// A vendor answer is read up to a bound, however long the vendor streams.
#[tokio::test]
async fn a_huge_vendor_answer_is_read_only_up_to_a_bound() {
    let huge = "x".repeat(8 * 1024 * 1024);
    let server = answering(ResponseTemplate::new(500).set_body_string(huge)).await;
    for case in http_cases(&server.uri()) {
        let error = scrubbed(&case, adapter(&case.config).send(&case.message).await);
        assert!(
            error.to_string().len() < 70 * 1024,
            "{}: {} bytes",
            case.name,
            error.to_string().len()
        );
    }
}
