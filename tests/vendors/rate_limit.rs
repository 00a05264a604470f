use std::time::Duration;

use herald::vendors::RateLimiter;
use herald_domain::spec::Channel;
use serde_json::json;
use tokio::time::Instant;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{adapter, connection, post};

#[tokio::test(start_paused = true)]
async fn five_calls_at_two_per_second_take_two_seconds() {
    let limiter = RateLimiter::new(2.0).unwrap();
    let start = Instant::now();

    for _ in 0..5 {
        limiter.acquire().await;
    }

    assert_eq!(start.elapsed(), Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn concurrent_callers_are_spaced_out_too() {
    let limiter = std::sync::Arc::new(RateLimiter::new(4.0).unwrap());
    let start = Instant::now();
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let limiter = limiter.clone();
            tokio::spawn(async move {
                limiter.acquire().await;
                start.elapsed()
            })
        })
        .collect();

    let mut finished = Vec::new();
    for task in tasks {
        finished.push(task.await.unwrap());
    }
    finished.sort();

    let expected: Vec<_> = (0..4).map(|i| Duration::from_millis(250 * i)).collect();
    assert_eq!(finished, expected);
}

#[test]
fn a_rate_must_be_positive() {
    for rate in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        assert!(RateLimiter::new(rate).is_none(), "{rate}");
    }
}

/// The pacing itself is timed on tokio's paused clock above; this checks that an adapter holds
/// its connection's limiter: at one call in 1 000 s, the second call waits and never reaches
/// the vendor. (Without the limiter it would be answered in milliseconds; the timeout only
/// stops the wait, so a slow machine cannot make this fail.)
#[tokio::test]
async fn an_adapter_holds_a_call_back_by_the_connection_rate_limit() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"data": {"id": "1"}})))
        .mount(&server)
        .await;
    let config = connection(
        "x",
        json!({"baseUrl": server.uri(), "rateLimitPerSecond": 0.001}),
        json!({"accessToken": "x-token-secret"}),
    );
    let adapter = adapter(&config);
    let message = post(Channel::X, "acme", "Spring sale");

    adapter.send(&message).await.unwrap();
    let second = tokio::time::timeout(Duration::from_secs(1), adapter.send(&message)).await;

    assert!(second.is_err(), "the second call was not held back");
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}
