//! `POST /crm/marketing/campaigns/:id/engagements` (`api.md` section 6): conversions, revenue,
//! replies and social/ads metrics reported by the client, recorded as `EngagementRecorded`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use herald_domain::engagement::parse_inputs;
use serde_json::{json, Value};

use super::error::{ApiError, Result};
use super::extract::{Auth, JsonBody, RequestMeta};
use super::routes::Routes;
use super::{schemas, AppState};
use crate::campaigns;
use crate::engagements::{Pending, Recorded};

pub fn router() -> Routes {
    Routes::new().post("/crm/marketing/campaigns/{id}/engagements", record)
}

#[utoipa::path(post, path = "/crm/marketing/campaigns/{id}/engagements", tag = "engagements",
    summary = "Record engagements the client reports (conversions, revenue, replies, social metrics)",
    params(("id" = String, Path, description = "The campaign's id")),
    request_body(content = Vec<schemas::EngagementInput>, content_type = "application/json",
        description = "1 to 1 000 engagements; one bad item records none"),
    responses((status = 200, description = "What was recorded and what was a duplicate", body = schemas::EngagementsRecorded)))]
/// Validates the whole array first (one bad item records nothing), then records every item;
/// an item whose `externalId` was recorded before for this campaign is a `duplicate`.
/// Answers `200` with `{"recorded", "duplicates", "items": [{"index", "status", "position"?}]}`.
#[tracing::instrument(skip_all, fields(org = %auth.0.org_id, campaign = %id))]
async fn record(
    State(state): State<AppState>,
    auth: Auth,
    request: RequestMeta,
    Path(id): Path<String>,
    body: JsonBody,
) -> Result<Response> {
    let principal = auth.writer()?;
    // A soft-deleted campaign is still found: deleted campaigns still count.
    if campaigns::get_shared(&state.db, &principal.org_id, &id)
        .await?
        .is_none()
    {
        return Err(ApiError::not_found("no such campaign"));
    }
    let now = Utc::now();
    let inputs = parse_inputs(&body.value, now).map_err(ApiError::unprocessable)?;
    let metadata = request.of(principal).metadata();
    let pending: Vec<Pending> = inputs
        .into_iter()
        .map(|input| {
            let key = input
                .external_id
                .as_ref()
                .map(|external| format!("api:{id}:{external}"));
            Pending {
                org_id: principal.org_id.clone(),
                engagement: input.into_engagement(&id, now),
                metadata: metadata.clone(),
                key,
            }
        })
        .collect();
    let answers = state.recorder.record_all(pending).await.map_err(|error| {
        tracing::error!(%error, "engagements not recorded");
        // Items may have landed in earlier batches; a retry is safe for those with an
        // externalId, which come back as duplicates.
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the engagements could not all be recorded; retry shortly",
        )
    })?;
    let mut recorded = 0;
    let mut duplicates = 0;
    let items: Vec<Value> = answers
        .iter()
        .enumerate()
        .map(|(index, answer)| match answer {
            Recorded::Stored(position) => {
                recorded += 1;
                json!({"index": index, "status": "recorded", "position": position})
            }
            Recorded::Duplicate => {
                duplicates += 1;
                json!({"index": index, "status": "duplicate"})
            }
        })
        .collect();
    Ok(
        Json(json!({"recorded": recorded, "duplicates": duplicates, "items": items}))
            .into_response(),
    )
}
