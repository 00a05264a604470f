//! Client-side pacing of one connection's vendor calls (`settings.rateLimitPerSecond`).

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// The longest gap a very small rate may ask for between two calls.
const MAX_INTERVAL: Duration = Duration::from_secs(60 * 60);

/// A token bucket that holds a single token refilled every `1 / rate` seconds: calls are spaced
/// evenly, with no burst, so a vendor's per-second quota is never exceeded even at the start of
/// a run. Waiting callers are served in the order they asked. Uses tokio's clock, so tests can
/// pause it.
#[derive(Debug)]
pub struct RateLimiter {
    interval: Duration,
    next_free: Mutex<Option<Instant>>,
}

impl RateLimiter {
    /// A limiter allowing `per_second` calls a second; `None` unless it is positive and finite.
    pub fn new(per_second: f64) -> Option<RateLimiter> {
        if !per_second.is_finite() || per_second <= 0.0 {
            return None;
        }
        let interval = Duration::try_from_secs_f64(1.0 / per_second)
            .unwrap_or(MAX_INTERVAL)
            .min(MAX_INTERVAL);
        Some(RateLimiter {
            interval,
            next_free: Mutex::new(None),
        })
    }

    /// Waits until this caller may make its call. A caller that gives up while waiting still
    /// uses its slot, which only ever makes the pace slower.
    pub async fn acquire(&self) {
        let at = {
            let mut next_free = self
                .next_free
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let now = Instant::now();
            let at = next_free.map_or(now, |free| free.max(now));
            *next_free = Some(at + self.interval);
            at
        };
        tokio::time::sleep_until(at).await;
    }
}
