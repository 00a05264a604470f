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
