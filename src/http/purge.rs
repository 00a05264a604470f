//! The org purge job (`api.md` section 8): `POST /crm/marketing/purge` (admin) answers `202`
//! with a job id; `GET /crm/marketing/purge/:jobId` shows its progress and outcome.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::error::{ApiError, Result};
use super::extract::Auth;
use super::routes::Routes;
use super::schemas;
use super::AppState;
use crate::purge;

pub fn router() -> Routes {
    Routes::new()
        .post("/crm/marketing/purge", start)
        .get("/crm/marketing/purge/{job_id}", show)
}

fn admin(auth: &Auth) -> Result<()> {
    if auth.0.is_admin() {
        Ok(())
    } else {
        Err(ApiError::forbidden("the purge job needs the admin role"))
    }
}

#[utoipa::path(post, operation_id = "start_purge", path = "/crm/marketing/purge", tag = "operations",
    summary = "Start purging the org's deleted data (admin)",
    responses((status = 202, description = "The job, started", body = schemas::PurgeJob, headers(("Location" = String)))))]
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

#[utoipa::path(get, operation_id = "get_purge", path = "/crm/marketing/purge/{job_id}", tag = "operations",
    summary = "A purge job's progress (admin)",
    params(("job_id" = String, Path, description = "The job's id")),
    responses((status = 200, description = "The job", body = schemas::PurgeJob)))]
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
