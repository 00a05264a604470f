//! The org purge job (`api.md` section 8): `POST /crm/marketing/purge` (admin) answers `202`
//! with a job id; `GET /crm/marketing/purge/:jobId` shows its progress and outcome.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use super::error::{ApiError, Result};
use super::extract::Auth;
use super::AppState;
use crate::purge;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/crm/marketing/purge", post(start))
        .route("/crm/marketing/purge/{job_id}", get(show))
}

fn admin(auth: &Auth) -> Result<()> {
    if auth.0.is_admin() {
        Ok(())
    } else {
        Err(ApiError::forbidden("the purge job needs the admin role"))
    }
}

async fn start(State(state): State<AppState>, auth: Auth) -> Result<Response> {
    admin(&auth)?;
    let job_id = purge::enqueue(&state.db, &auth.0.org_id, &auth.0.actor).await?;
    let db = state.db.clone();
    let id = job_id.clone();
    tokio::spawn(async move {
        let _ = purge::run(&db, &id).await;
    });
    let body = purge::status(&state.db, &auth.0.org_id, &job_id)
        .await?
        .ok_or_else(|| ApiError::internal("the purge job vanished"))?;
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, format!("/crm/marketing/purge/{job_id}"))],
        Json(body),
    )
        .into_response())
}

async fn show(
    State(state): State<AppState>,
    auth: Auth,
    Path(job_id): Path<String>,
) -> Result<Json<serde_json::Value>> {
    admin(&auth)?;
    purge::status(&state.db, &auth.0.org_id, &job_id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("no such purge job"))
}
