//! This process's request limits (`api.md` section 13): a token bucket per org on `/crm`, and a
//! cap on the engagements one tracking token records per hour.
//!
//! Both live in memory (governor's keyed GCRA limiters): a check costs a hash-map lookup and no
//! database round trip, so the limits do not cost throughput. Each process keeps its own
//! buckets, so with several processes behind a balancer an org gets up to that many times the
//! configured rate. Keys are only created after the caller proved itself (a verified JWT for its
//! org, a tracking token whose signature verified), so nobody can grow the maps with made-up
//! keys; [`Limits::prune`] drops the buckets that have refilled.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use sha2::{Digest, Sha256};

/// How often [`prune_every_while`] drops refilled buckets.
pub const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// The limiters of one process, shared by every request.
pub struct Limits {
    /// Requests per second per org, with a burst of twice that; `None` when turned off.
    org: Option<DefaultKeyedRateLimiter<String>>,
    /// Engagements per tracking token per hour, keyed by a digest of the token; `None` when off.
    tracking: Option<DefaultKeyedRateLimiter<[u8; 16]>>,
    /// Tracking hits answered but not recorded because their token was over its cap.
    dropped: AtomicU64,
    clock: DefaultClock,
}

impl Limits {
    /// `org_per_second` (`HERALD_RATE_LIMIT_ORG`) and `per_token_per_hour`
    /// (`HERALD_TRACKING_MAX_PER_TOKEN`); `0` turns either off.
    pub fn new(org_per_second: u32, per_token_per_hour: u32) -> Limits {
        let org = NonZeroU32::new(org_per_second).map(|rate| {
            let burst = NonZeroU32::new(org_per_second.saturating_mul(2)).unwrap_or(rate);
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        let tracking =
            NonZeroU32::new(per_token_per_hour).map(|cap| RateLimiter::keyed(Quota::per_hour(cap)));
        Limits {
            org,
            tracking,
            dropped: AtomicU64::new(0),
            clock: DefaultClock::default(),
        }
    }

    /// Takes one request from `org_id`'s bucket; when it is empty, how long until it holds one
    /// again.
    pub fn check_org(&self, org_id: &str) -> Result<(), Duration> {
        let Some(limiter) = &self.org else {
            return Ok(());
        };
        limiter
            .check_key(&org_id.to_string())
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Whether a verified tracking `token` may record one more engagement; when it may not, the
    /// hit is counted as dropped.
    pub fn tracking_allows(&self, token: &str) -> bool {
        let Some(limiter) = &self.tracking else {
            return true;
        };
        let digest = Sha256::digest(token.as_bytes());
        let mut key = [0u8; 16];
        key.copy_from_slice(&digest[..16]);
        let allowed = limiter.check_key(&key).is_ok();
        if !allowed {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        allowed
    }

    /// Tracking hits this process answered without recording them (over their token's cap).
    pub fn tracking_dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Forgets the buckets that are full again: they hold nothing a new bucket would not.
    pub fn prune(&self) {
        if let Some(limiter) = &self.org {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        if let Some(limiter) = &self.tracking {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

impl Default for Limits {
    /// No limits.
    fn default() -> Self {
        Limits::new(0, 0)
    }
}

/// Prunes `limits` every [`PRUNE_EVERY`] until the task is aborted.
pub async fn prune_every_while(limits: std::sync::Arc<Limits>) {
    let mut every = tokio::time::interval(PRUNE_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        limits.prune();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_org_gets_a_burst_of_twice_its_rate_and_others_keep_theirs() {
        let limits = Limits::new(5, 0);
        for _ in 0..10 {
            assert!(limits.check_org("acme").is_ok());
        }
        let wait = limits.check_org("acme").expect_err("the burst is spent");
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(200),
            "{wait:?}"
        );
        assert!(limits.check_org("beta").is_ok());
    }

    #[test]
    fn zero_turns_each_limit_off() {
        let limits = Limits::new(0, 0);
        for _ in 0..10_000 {
            assert!(limits.check_org("acme").is_ok());
            assert!(limits.tracking_allows("token"));
        }
        assert_eq!(limits.tracking_dropped(), 0);
    }

    #[test]
    fn a_tracking_token_records_its_cap_and_the_rest_are_counted() {
        let limits = Limits::new(0, 3);
        let allowed = (0..5).filter(|_| limits.tracking_allows("t1")).count();
        assert_eq!(allowed, 3);
        assert_eq!(limits.tracking_dropped(), 2);
        assert!(
            limits.tracking_allows("t2"),
            "another token has its own cap"
        );
    }
}
