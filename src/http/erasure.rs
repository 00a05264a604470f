//! Erasure of a contact (`api.md` section 12): `POST /crm/contacts/:id/erase` (admin) answers
//! `202` with a job; `GET /crm/contacts/erasures/:jobId` shows where it stands.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::error::{ApiError, Result};
use super::extract::Auth;
use super::routes::Routes;
use super::schemas;
use super::AppState;
use crate::erasure::{self, ErasureJob};

pub fn router() -> Routes {
    Routes::new()
        .post("/crm/contacts/{id}/erase", start)
        .get("/crm/contacts/erasures/{job_id}", show)
}

fn admin(auth: &Auth) -> Result<()> {
    if auth.0.is_admin() {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "erasing a contact needs the admin role",
        ))
    }
}

#[utoipa::path(post, operation_id = "erase_contact", path = "/crm/contacts/{id}/erase", tag = "contacts",
    summary = "Erase a contact's personal data for good (admin)",
    params(("id" = String, Path, description = "The contact's id (a deleted contact can be erased too)")),
    responses((status = 202, description = "The erasure job, started", body = schemas::ErasureJob, headers(("Location" = String)))))]
async fn start(
    State(state): State<AppState>,
    auth: Auth,
    Path(contact_id): Path<String>,
) -> Result<Response> {
    admin(&auth)?;
    let job_id = erasure::enqueue(&state.db, &auth.0.org_id, &contact_id, &auth.0.actor)
        .await?
        .ok_or_else(|| ApiError::not_found("no such contact"))?;
    let db = state.db.clone();
    let id = job_id.clone();
    tokio::spawn(async move { erasure::run(&db, &id).await });
    let body = erasure::status(&state.db, &auth.0.org_id, &job_id)
        .await?
        .ok_or_else(|| ApiError::internal("the erasure job vanished"))?;
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, format!("/crm/contacts/erasures/{job_id}"))],
        Json(body),
    )
        .into_response())
}

#[utoipa::path(get, operation_id = "get_erasure", path = "/crm/contacts/erasures/{job_id}", tag = "contacts",
    summary = "An erasure job's progress (admin)",
    params(("job_id" = String, Path, description = "The job's id")),
    responses((status = 200, description = "The job", body = schemas::ErasureJob)))]
async fn show(
    State(state): State<AppState>,
    auth: Auth,
    Path(job_id): Path<String>,
) -> Result<Json<ErasureJob>> {
    admin(&auth)?;
    erasure::status(&state.db, &auth.0.org_id, &job_id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("no such erasure job"))
}
