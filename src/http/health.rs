//! Liveness, readiness, the operations health view and Prometheus metrics.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};
use sqlx::Row;

use super::error::{ApiError, Result};
use super::extract::Auth;
use super::routes::Routes;
use super::schemas;
use super::AppState;
use crate::projector::{self, Projection};
use crate::sending::{jobs, ledger, scheduler};
use crate::store;

/// `/crm/marketing/health`, mounted at `/` and `/api` with the rest of the API.
pub fn router() -> Routes {
    Routes::new().get("/crm/marketing/health", marketing_health)
}

/// Liveness, readiness and metrics: served at the root only, where probes and scrapers look.
pub fn root() -> Routes {
    Routes::new()
        .get("/healthz", healthz)
        .get("/readyz", readyz)
        .get("/metrics", metrics)
}

#[utoipa::path(get, path = "/healthz", tag = "operations", summary = "Liveness",
    responses((status = 200, description = "The process is up", body = schemas::Status)))]
async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

#[utoipa::path(get, path = "/readyz", tag = "operations", summary = "Readiness",
    responses((status = 200, description = "The database is reachable and migrated", body = schemas::Status)))]
async fn readyz(State(state): State<AppState>) -> Response {
    if state.stopping.load(std::sync::atomic::Ordering::Acquire) {
        return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the process is stopping")
            .into_response();
    }
    if state.db.migrations_done().await {
        Json(json!({ "status": "ready" })).into_response()
    } else {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the database is unreachable or not migrated",
        )
        .into_response()
    }
}

/// Projection positions and how far each trails the head of the log.
async fn projection_lag(state: &AppState) -> Result<(i64, Map<String, Value>)> {
    let head = store::head_position(&state.db).await?;
    let mut projections = Map::new();
    projections.insert(
        "campaigns".into(),
        json!({ "position": head, "lag": 0, "mode": "inline" }),
    );
    for projection in Projection::ALL {
        let at = projector::checkpoint(&state.db.read, projection).await?;
        let lag = store::lag(&state.db, at).await?;
        projections.insert(
            projection.name().into(),
            json!({ "position": at.position, "lag": lag }),
        );
    }
    Ok((head, projections))
}

#[utoipa::path(get, path = "/crm/marketing/health", tag = "operations",
    summary = "The health view: projections, jobs, channels",
    responses((status = 200, description = "Health", body = schemas::Health)))]
/// The operations view of the caller's org: scheduler heartbeat (any node's), queue depth by
/// state, the latest send outcomes per channel, and projection positions. `degraded` when the
/// heartbeat is older than 10 seconds while workers run (here or on any node that registered),
/// or when a channel's last 20 sends or more all failed.
async fn marketing_health(State(state): State<AppState>, auth: Auth) -> Result<Json<Value>> {
    let (_, mut projections) = projection_lag(&state).await?;
    let org_id = &auth.0.org_id;
    let scheduler = scheduler::health(&state.db, org_id).await?;
    let scheduler_at = store::checkpoint(&state.db.read, scheduler::CHECKPOINT, false).await?;
    let scheduler_lag = store::lag(&state.db, scheduler_at).await?;
    projections.insert(
        scheduler::CHECKPOINT.into(),
        json!({ "position": scheduler_at.position, "lag": scheduler_lag }),
    );
    let mut channels = Map::new();
    let mut failing = false;
    for (channel, mut figures) in ledger::channel_health(&state.db, org_id).await? {
        let run = figures["consecutiveFailures"].as_i64().unwrap_or(0);
        failing |= run >= FAILING_CHANNEL_SENDS;
        figures["failing"] = json!(run >= FAILING_CHANNEL_SENDS);
        channels.insert(channel, figures);
    }
    let stale = scheduler.stale && (state.workers || scheduler.registered);
    let status = if stale || failing { "degraded" } else { "ok" };
    Ok(Json(json!({
        "status": status,
        "scheduler": scheduler.scheduler,
        "queue": scheduler.queue,
        "channels": channels,
        "projections": projections,
    })))
}

/// A channel whose last this-many sends all failed makes the health view `degraded`.
const FAILING_CHANNEL_SENDS: i64 = 20;

/// Compares a presented secret with the configured one in time that does not depend on where
/// they first differ (only on their lengths), so the token cannot be guessed byte by byte.
fn same_secret(given: &str, expected: &str) -> bool {
    given.len() == expected.len()
        && given
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |differ, (a, b)| differ | (a ^ b))
            == 0
}

#[utoipa::path(get, path = "/metrics", tag = "operations", summary = "Prometheus metrics",
    security((), ("metrics" = [])),
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Result<Response> {
    if let Some(token) = &state.metrics_token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if !given.is_some_and(|given| same_secret(given, token)) {
            return Err(ApiError::unauthorized("metrics need the metrics token"));
        }
    }
    let (head, projections) = projection_lag(&state).await?;
    let mut out = String::new();
    out.push_str(
        "# HELP herald_event_log_head_position Position of the newest event in the log.\n",
    );
    out.push_str("# TYPE herald_event_log_head_position gauge\n");
    out.push_str(&format!("herald_event_log_head_position {head}\n"));
    out.push_str("# HELP herald_projection_lag_events Events a projection has yet to apply.\n");
    out.push_str("# TYPE herald_projection_lag_events gauge\n");
    for (name, value) in &projections {
        let lag = value.get("lag").and_then(Value::as_i64).unwrap_or(0);
        out.push_str(&format!(
            "herald_projection_lag_events{{projection=\"{name}\"}} {lag}\n"
        ));
    }
    out.push_str(&state.metrics_cache.read(&state).await?);
    out.push_str("# HELP herald_tracking_hits_over_cap_total Tracking hits (opens, clicks) this process answered without recording them: their token was over HERALD_TRACKING_MAX_PER_TOKEN for the hour.\n");
    out.push_str("# TYPE herald_tracking_hits_over_cap_total counter\n");
    out.push_str(&format!(
        "herald_tracking_hits_over_cap_total {}\n",
        state.limits.tracking_dropped()
    ));
    let uptime = chrono::Utc::now()
        .signed_duration_since(*state.started)
        .num_seconds();
    out.push_str("# HELP herald_uptime_seconds Seconds since this process started.\n");
    out.push_str("# TYPE herald_uptime_seconds gauge\n");
    out.push_str(&format!("herald_uptime_seconds {uptime}\n"));
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response())
}

/// How long `/metrics` reuses its database series.
const METRICS_TTL: std::time::Duration = std::time::Duration::from_secs(1);

/// The database series of `/metrics`, computed by one scrape at a time and reused for
/// [`METRICS_TTL`]: a scraper (or anyone, without `HERALD_METRICS_TOKEN`) hitting `/metrics`
/// in a loop costs the database one round of these queries a second, not one per hit.
#[derive(Default)]
pub struct MetricsCache {
    last: tokio::sync::Mutex<Option<(std::time::Instant, String)>>,
}

impl MetricsCache {
    async fn read(&self, state: &AppState) -> Result<String> {
        // Held while computing: concurrent scrapes wait for the one in flight and share it.
        let mut last = self.last.lock().await;
        if let Some((at, text)) = last.as_ref() {
            if at.elapsed() < METRICS_TTL {
                return Ok(text.clone());
            }
        }
        let mut text = String::new();
        send_metrics(state, &mut text).await?;
        *last = Some((std::time::Instant::now(), text.clone()));
        Ok(text)
    }
}

/// The sending series, read from the database so every process reports the same figures:
/// sends per channel and outcome (the send counters, all orgs), jobs per kind and state, the age
/// of the oldest due job nobody has claimed, and the newest scheduler heartbeat's age.
async fn send_metrics(state: &AppState, out: &mut String) -> Result<()> {
    let now = chrono::Utc::now();
    let sends = sqlx::query(
        "select channel, state, cast(sum(n) as bigint) as n from send_counts
         group by channel, state having sum(n) <> 0 order by channel, state",
    )
    .fetch_all(&state.db.read)
    .await?;
    let mut counts = std::collections::BTreeMap::new();
    for row in &sends {
        let channel: String = row.try_get("channel")?;
        let outcome: String = row.try_get("state")?;
        counts.insert((channel, outcome), row.try_get::<i64, _>("n")?);
    }
    // Every channel that has sent shows both final outcomes, zero or not.
    let channels: std::collections::BTreeSet<String> =
        counts.keys().map(|(channel, _)| channel.clone()).collect();
    for channel in channels {
        for outcome in ["sent", "failed"] {
            counts
                .entry((channel.clone(), outcome.to_string()))
                .or_insert(0);
        }
    }
    out.push_str("# HELP herald_sends_total Sends recorded by channel and outcome (sent, failed, or sending: a vendor call in flight or cut off); purges do not lower them.\n");
    out.push_str("# TYPE herald_sends_total counter\n");
    for ((channel, outcome), n) in &counts {
        out.push_str(&format!(
            "herald_sends_total{{channel=\"{channel}\",outcome=\"{outcome}\"}} {n}\n"
        ));
    }

    let jobs = sqlx::query(
        "select kind, state, count(*) as n from jobs group by kind, state order by kind, state",
    )
    .fetch_all(&state.db.read)
    .await?;
    out.push_str("# HELP herald_queue_jobs Scheduler jobs by kind (launch, send) and state.\n");
    out.push_str("# TYPE herald_queue_jobs gauge\n");
    let mut depth = 0;
    for row in &jobs {
        let kind: String = row.try_get("kind")?;
        let job_state: String = row.try_get("state")?;
        let n: i64 = row.try_get("n")?;
        if matches!(job_state.as_str(), "scheduled" | "running") {
            depth += n;
        }
        out.push_str(&format!(
            "herald_queue_jobs{{kind=\"{kind}\",state=\"{job_state}\"}} {n}\n"
        ));
    }
    out.push_str("# HELP herald_queue_depth Jobs scheduled or running.\n");
    out.push_str("# TYPE herald_queue_depth gauge\n");
    out.push_str(&format!("herald_queue_depth {depth}\n"));
    let oldest_due: Option<String> = sqlx::query_scalar(
        "select min(run_at) from jobs where state = 'scheduled' and run_at <= $1",
    )
    .bind(store::format_time(now))
    .fetch_one(&state.db.read)
    .await?;
    out.push_str("# HELP herald_queue_oldest_due_seconds How long the oldest due, unclaimed job has waited (0 when none).\n");
    out.push_str("# TYPE herald_queue_oldest_due_seconds gauge\n");
    out.push_str(&format!(
        "herald_queue_oldest_due_seconds {}\n",
        seconds_since(oldest_due.as_deref(), now).unwrap_or(0.0)
    ));

    let (takeovers, renewals_failed) = jobs::lease_counters(&state.db).await?;
    out.push_str("# HELP herald_job_takeovers_total Jobs a node took over after the lease of the node running them ran out.\n");
    out.push_str("# TYPE herald_job_takeovers_total counter\n");
    out.push_str(&format!("herald_job_takeovers_total {takeovers}\n"));
    out.push_str("# HELP herald_job_lease_renewals_failed_total Job lease renewals that failed: the database did not answer, or another node had taken the job over.\n");
    out.push_str("# TYPE herald_job_lease_renewals_failed_total counter\n");
    out.push_str(&format!(
        "herald_job_lease_renewals_failed_total {renewals_failed}\n"
    ));

    // Heartbeats are stamped by the database's clock, so their age is taken on it too.
    let row = sqlx::query(&format!(
        "select max(heartbeat_at) as heartbeat_at, {} as now from scheduler_nodes",
        jobs::db_time(state.db.backend, 0)
    ))
    .fetch_one(&state.db.read)
    .await?;
    let heartbeat: Option<String> = row.try_get("heartbeat_at")?;
    let db_now = row
        .try_get::<String, _>("now")
        .ok()
        .and_then(|at| chrono::DateTime::parse_from_rfc3339(&at).ok())
        .map_or(now, |at| at.with_timezone(&chrono::Utc));
    // No series while no process has ever run the scheduler: an age of nothing is not zero.
    if let Some(age) = seconds_since(heartbeat.as_deref(), db_now) {
        out.push_str("# HELP herald_scheduler_heartbeat_age_seconds Age of the newest scheduler heartbeat of any process.\n");
        out.push_str("# TYPE herald_scheduler_heartbeat_age_seconds gauge\n");
        out.push_str(&format!("herald_scheduler_heartbeat_age_seconds {age}\n"));
    }
    Ok(())
}

/// Seconds from an RFC 3339 time to `now` (never negative), or `None` without one.
fn seconds_since(at: Option<&str>, now: chrono::DateTime<chrono::Utc>) -> Option<f64> {
    let at = chrono::DateTime::parse_from_rfc3339(at?).ok()?;
    let age = now.signed_duration_since(at).num_milliseconds().max(0);
    Some(age as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::same_secret;

    #[test]
    fn only_the_same_secret_matches() {
        assert!(same_secret("metrics-token", "metrics-token"));
        assert!(!same_secret("metrics-tokem", "metrics-token"));
        assert!(!same_secret("metrics-token-", "metrics-token"));
        assert!(!same_secret("", "metrics-token"));
    }
}
