//! The per-org request limit on `/crm` (`HERALD_RATE_LIMIT_ORG`, `api.md` section 13): a burst
//! of twice the rate, then `429` problem+json with `Retry-After`, for that org only.

use std::time::Duration;

use reqwest::Method;

use crate::db_test;
use crate::helpers::*;

const LIST: &str = "/crm/marketing/campaigns";

/// Sends `GET path` as acme's admin until the first answer that is not `200`, at most `cap`
/// times; returns how many were `200` and the first other answer.
async fn until_refused(app: &TestApp, path: &str, cap: usize) -> (usize, Option<Reply>) {
    for served in 0..cap {
        let reply = app.admin(Method::GET, path).send().await;
        if reply.status != 200 {
            return (served, Some(reply));
        }
    }
    (cap, None)
}

db_test!(
    limits(1, 0) an_org_over_its_rate_gets_429_with_retry_after_and_other_orgs_are_served,
    |app: TestApp| async move {
        // One request a second with a burst of two: the third in a row is refused, unless the
        // machine took a second to answer one (then a later one is).
        let (served, refused) = until_refused(&app, LIST, 10).await;
        let refused = refused.expect("acme was never refused");
        assert!(served >= 2, "the burst is twice the rate; served {served}");
        refused.assert_problem(429);
        let wait: u64 = refused
            .header("retry-after")
            .expect("a Retry-After header")
            .parse()
            .expect("Retry-After in whole seconds");
        assert_eq!(wait, 1, "at one request a second the bucket refills in a second");

        // The /api prefix draws on the same bucket.
        let again = app.admin(Method::GET, &format!("/api{LIST}")).send().await;
        again.assert_problem(429);

        // Another org, and the routes without an org, are not affected.
        let beta = token(&["beta"], &["admin"], "bob");
        let other = app.as_user(&beta, "beta", Method::GET, LIST).send().await;
        assert_eq!(other.status, 200, "{}", other.text);
        let health = app.anonymous(Method::GET, "/healthz").send().await;
        assert_eq!(health.status, 200);

        // After Retry-After, acme is served again.
        tokio::time::sleep(Duration::from_secs(wait)).await;
        let later = app.admin(Method::GET, LIST).send().await;
        assert_eq!(later.status, 200, "{}", later.text);
    }
);

db_test!(
    limits(0, 0) a_rate_limit_of_zero_is_off,
    |app: TestApp| async move {
        // More than the default's burst of 400, as fast as the server answers.
        let calls = (0..8).map(|_| async {
            until_refused(&app, "/crm/marketing/platforms", 60).await
        });
        for (served, refused) in futures::future::join_all(calls).await {
            assert_eq!(served, 60, "refused: {:?}", refused.map(|r| r.text));
        }
    }
);

/// A server on SQLite with these connection limits and no workers.
async fn with_connection_limits(max_connections: usize, header_read_timeout: &str) -> TestApp {
    let (url, dir) = fresh_database(Backend::Sqlite).await;
    let mut config = test_config(url, &dir);
    config.workers = false;
    config.max_connections = max_connections;
    config.header_read_timeout = header_read_timeout.into();
    spawn_with(Backend::Sqlite, config).await
}

/// A raw connection to the server, not yet sending anything.
async fn raw_connection(app: &TestApp) -> tokio::net::TcpStream {
    let address = app.address.trim_start_matches("http://");
    tokio::net::TcpStream::connect(address).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_trickles_its_headers_is_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = with_connection_limits(100, "1s").await;
    let mut slow = raw_connection(&app).await;
    // Headers begun and never finished (slowloris): the server closes the connection.
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: herald\r\nX-Slow: 1")
        .await
        .unwrap();
    let mut buffer = [0u8; 1024];
    let closed = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match slow.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                // hyper may answer 408 before closing.
                Ok(_) => continue,
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the server kept a half-sent request open");
    // Whole requests are still served.
    let reply = app.anonymous(Method::GET, "/healthz").send().await;
    assert_eq!(reply.status, 200, "{}", reply.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_connection_cap_new_connections_wait_until_one_closes() {
    let app = with_connection_limits(2, "60s").await;
    let first = raw_connection(&app).await;
    let _second = raw_connection(&app).await;
    // Both held open without a request: a third is not served meanwhile.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(1500))
        .build()
        .unwrap();
    let waited = client.get(app.url("/healthz")).send().await;
    assert!(waited.is_err(), "a third connection was served: {waited:?}");
    // One closes: the next one is served.
    drop(first);
    let served = eventually(Duration::from_secs(10), || async {
        client
            .get(app.url("/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    assert!(served, "no connection was served after one closed");
}
