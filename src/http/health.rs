//! Liveness, readiness, the operations health view and Prometheus metrics.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Map, Value};

use super::error::{ApiError, Result};
use super::extract::Auth;
use super::AppState;
use crate::projector::{self, Projection};
use crate::store;

pub fn router() -> Router<AppState> {
    let marketing = Router::new().route("/crm/marketing/health", get(marketing_health));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .merge(marketing.clone())
        .nest("/api", marketing)
}

async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn readyz(State(state): State<AppState>) -> Response {
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

// TODO(scheduling issue): scheduler heartbeat, queue depth and per-channel send results come
// with the scheduler and send workers; until then they report an idle system.
async fn marketing_health(State(state): State<AppState>, _auth: Auth) -> Result<Json<Value>> {
    let (_, projections) = projection_lag(&state).await?;
    Ok(Json(json!({
        "status": "ok",
        "scheduler": { "heartbeatAt": null, "workers": 0 },
        "queue": { "depth": 0, "scheduled": 0, "running": 0, "failed": 0 },
        "channels": {},
        "projections": projections,
    })))
}

async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Result<Response> {
    if let Some(token) = &state.metrics_token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if given != Some(token.as_str()) {
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
    let uptime = chrono::Utc::now()
        .signed_duration_since(*state.started)
        .num_seconds();
    out.push_str("# HELP herald_uptime_seconds Seconds since this process started.\n");
    out.push_str("# TYPE herald_uptime_seconds gauge\n");
    out.push_str(&format!("herald_uptime_seconds {uptime}\n"));
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response())
}
