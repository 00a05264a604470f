//! The suppression list (`api.md` section 12): `GET/POST /crm/suppressions` and
//! `DELETE /crm/suppressions/:channel/:address`; writes need the admin role.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use herald_domain::error::FieldError;
use herald_domain::suppression::{self, parse_suppression};
use serde_json::json;

use super::error::{ApiError, Result};
use super::extract::{decode_cursor, encode_cursor, Auth, JsonBody, Params, RequestMeta};
use super::routes::Routes;
use super::{schemas, AppState};
use crate::suppressions::{self as list, Suppress};

pub fn router() -> Routes {
    Routes::new()
        .get("/crm/suppressions", index)
        .post("/crm/suppressions", create)
        .delete("/crm/suppressions/{channel}/{address}", remove)
}

fn admin(auth: &Auth) -> Result<()> {
    if auth.0.is_admin() {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "changing the suppression list needs the admin role",
        ))
    }
}

#[utoipa::path(get, operation_id = "list_suppressions", path = "/crm/suppressions", tag = "consent",
    summary = "The org's suppression list",
    params(schemas::SuppressionFilter, schemas::Page),
    responses((status = 200, description = "A page of suppressed addresses", body = schemas::SuppressionList)))]
async fn index(State(state): State<AppState>, auth: Auth, params: Params) -> Result<Response> {
    let channel = params
        .get("channel")
        .map(|id| {
            suppression::parse_channel(id)
                .ok_or_else(|| ApiError::bad_request("channel must be email or sms"))
        })
        .transpose()?;
    let after = params.get("cursor").map(decode_cursor).transpose()?;
    let (items, next) =
        list::list(&state.db, &auth.0.org_id, channel, after, params.limit()?).await?;
    let next = next.map(|(channel, address)| encode_cursor(&channel, &address));
    Ok(Json(json!({ "items": items, "nextCursor": next })).into_response())
}

#[utoipa::path(post, operation_id = "add_suppression", path = "/crm/suppressions", tag = "consent",
    summary = "Suppress an address (admin)",
    request_body(content = schemas::SuppressionInput, content_type = "application/json"),
    responses((status = 201, description = "Added", body = schemas::Suppression),
        (status = 200, description = "Already suppressed", body = schemas::Suppression)))]
#[tracing::instrument(skip_all, fields(org = %auth.0.org_id))]
async fn create(
    State(state): State<AppState>,
    auth: Auth,
    request: RequestMeta,
    body: JsonBody,
) -> Result<Response> {
    admin(&auth)?;
    let input = parse_suppression(&body.value).map_err(ApiError::unprocessable)?;
    let entry = Suppress {
        channel: input.channel,
        address: input.address,
        reason: input.reason,
        source: "api".to_string(),
    };
    let metadata = request.of(&auth.0).metadata();
    let added = list::add_now(&state.db, std::slice::from_ref(&entry), &metadata).await?;
    let stored = list::get(&state.db, &auth.0.org_id, entry.channel, &entry.address)
        .await?
        .ok_or_else(|| ApiError::internal("a suppression vanished as it was added"))?;
    let status = if added > 0 {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(stored)).into_response())
}

#[utoipa::path(delete, operation_id = "remove_suppression", path = "/crm/suppressions/{channel}/{address}", tag = "consent",
    summary = "Lift a suppression (admin)",
    params(("channel" = String, Path, description = "`email` or `sms`"),
        ("address" = String, Path, description = "The address, URL-encoded")),
    responses((status = 204, description = "Removed")))]
#[tracing::instrument(skip_all, fields(org = %auth.0.org_id))]
async fn remove(
    State(state): State<AppState>,
    auth: Auth,
    request: RequestMeta,
    Path((channel, address)): Path<(String, String)>,
) -> Result<Response> {
    admin(&auth)?;
    let Some(channel) = suppression::parse_channel(&channel) else {
        return Err(ApiError::unprocessable(vec![FieldError::new(
            "channel",
            "must be \"email\" or \"sms\"",
        )]));
    };
    let address = suppression::normalise(channel, &address).ok_or_else(|| {
        ApiError::unprocessable(vec![FieldError::new(
            "address",
            format!("is not an address of the {} channel", channel.id()),
        )])
    })?;
    let metadata = request.of(&auth.0).metadata();
    if list::remove(&state.db, channel, &address, &metadata).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::not_found("this address is not suppressed"))
    }
}
