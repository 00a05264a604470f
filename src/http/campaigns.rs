//! Campaign routes: CRUD, lifecycle actions (`api.md` section 2).

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use herald_domain::campaign::CampaignCommand;
use herald_domain::drip::Enrollment;
use herald_domain::error::{CampaignError, FieldError};
use herald_domain::spec::{parse_campaign, Action, CampaignSpec, CampaignType, Channel, Status};
use serde_json::{json, Value};

use super::error::{ApiError, Result};
use super::extract::{decode_cursor, encode_cursor, if_match, Auth, JsonBody, Params, RequestMeta};
use super::idempotency;
use super::routes::Routes;
use super::schemas;
use super::AppState;
use crate::campaigns::{self, CommandError, ListQuery, SortKey};
use crate::sending::{drip, launch};

pub fn router() -> Routes {
    Routes::new()
        .get("/crm/marketing/campaigns", list)
        .post("/crm/marketing/campaigns", create)
        .get("/crm/marketing/campaigns/{id}", fetch)
        .put("/crm/marketing/campaigns/{id}", replace)
        .delete("/crm/marketing/campaigns/{id}", remove)
        .post("/crm/marketing/campaigns/{id}/{action}", action)
        .get("/crm/marketing/campaigns/{id}/enrollments", enrollments)
}

/// `GET …/enrollments?status=active|completed|exited&limit=&cursor=`: a drip or milestone
/// campaign's contacts with their step statuses (`api.md` section 11), by contact id.
#[utoipa::path(get, operation_id = "list_enrollments", path = "/crm/marketing/campaigns/{id}/enrollments", tag = "campaigns",
    summary = "A drip or milestone campaign's enrollments",
    params(("id" = String, Path, description = "The campaign's id"), schemas::EnrollmentFilter, schemas::Page),
    responses((status = 200, description = "A page of enrollments", body = schemas::EnrollmentList)))]
async fn enrollments(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    params: Params,
) -> Result<Response> {
    let org_id = &auth.0.org_id;
    let status = match params.get("status") {
        None => None,
        Some(s @ ("active" | "completed" | "exited")) => Some(s),
        Some(_) => {
            return Err(ApiError::bad_request(
                "status must be active, completed or exited",
            ))
        }
    };
    let limit = params.limit()?;
    let after = match params.get("cursor") {
        Some(cursor) => decode_cursor(cursor)?,
        None => (String::new(), String::new()),
    };
    let doc = campaigns::get(&state.db, org_id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such campaign"))?;
    let spec: CampaignSpec =
        serde_json::from_value(doc).map_err(|e| ApiError::internal(e.to_string()))?;
    let items = drip::list(
        &state.db,
        org_id,
        &spec,
        &id,
        status,
        (&after.0, &after.1),
        limit + 1,
    )
    .await?;
    let more = items.len() as i64 > limit;
    let items: Vec<Value> = items.into_iter().take(limit as usize).collect();
    let next = if more {
        items.last().map(|last| {
            encode_cursor(
                last["contactId"].as_str().unwrap_or_default(),
                last["milestone"].as_str().unwrap_or_default(),
            )
        })
    } else {
        None
    };
    Ok(Json(json!({ "items": items, "nextCursor": next })).into_response())
}

/// Answers a campaign body with its `ETag`.
fn campaign_response(status: StatusCode, doc: &Value) -> Response {
    let mut response = (status, Json(doc)).into_response();
    if let Some(version) = doc.get("version").and_then(Value::as_i64) {
        if let Ok(etag) = HeaderValue::from_str(&format!("\"{version}\"")) {
            response.headers_mut().insert(header::ETAG, etag);
        }
    }
    if status == StatusCode::CREATED {
        if let Some(id) = doc.get("id").and_then(Value::as_str) {
            if let Ok(location) = HeaderValue::from_str(&format!("/crm/marketing/campaigns/{id}")) {
                response.headers_mut().insert(header::LOCATION, location);
            }
        }
    }
    response
}

impl From<CommandError> for ApiError {
    fn from(error: CommandError) -> Self {
        match error {
            CommandError::Domain(CampaignError::Invalid(errors)) => ApiError::unprocessable(errors),
            CommandError::Domain(CampaignError::NotFound) => {
                ApiError::not_found("no such campaign")
            }
            CommandError::Domain(CampaignError::AlreadyExists) => {
                ApiError::conflict("a campaign with this id already exists")
            }
            CommandError::Domain(CampaignError::CannotLaunch { blockers }) => {
                let listed = json!(blockers);
                ApiError::conflict(CampaignError::CannotLaunch { blockers }.to_string())
                    .with("blockers", listed)
            }
            CommandError::Domain(other) => ApiError::conflict(other.to_string()),
            CommandError::VersionMismatch { current } => ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                format!("If-Match does not match the current version \"{current}\""),
            ),
            CommandError::IdempotencyRace => {
                ApiError::conflict("a request with this Idempotency-Key is still being processed")
            }
            CommandError::Contention => {
                ApiError::conflict("too many concurrent changes to this campaign; retry")
            }
            CommandError::Unreadable(e) => ApiError::internal(e),
            CommandError::Db(e) => e.into(),
        }
    }
}

/// An engagement-triggered drip names another campaign of the same org (`api.md` section 11):
/// an unknown one, another org's (indistinguishable from unknown) or itself is `422`.
async fn check_trigger_campaign(
    state: &AppState,
    org_id: &str,
    own_id: Option<&str>,
    spec: &CampaignSpec,
) -> Result<()> {
    let Some(Enrollment::Event { campaign_id, .. }) = &spec.enrollment else {
        return Ok(());
    };
    let message = if own_id == Some(campaign_id.as_str()) {
        "must name another campaign, not this one"
    } else if campaigns::get(&state.db, org_id, campaign_id)
        .await?
        .is_some_and(|doc| doc["state"] != "deleted")
    {
        return Ok(());
    } else {
        "is not a campaign of this organization"
    };
    Err(ApiError::unprocessable(vec![FieldError::new(
        "enrollment.campaignId",
        message,
    )]))
}

#[utoipa::path(post, operation_id = "create_campaign", path = "/crm/marketing/campaigns", tag = "campaigns",
    summary = "Create a campaign",
    params(("Idempotency-Key" = Option<String>, Header, description = "Repeats with the same key and body within 24 h answer the first response")),
    request_body(content = schemas::CampaignInput, content_type = "application/json"),
    responses((status = 201, description = "Created", body = schemas::Campaign,
        headers(("ETag" = String), ("Location" = String)))))]
#[tracing::instrument(skip_all, fields(org = %auth.0.org_id))]
async fn create(
    State(state): State<AppState>,
    auth: Auth,
    request: RequestMeta,
    headers: HeaderMap,
    body: JsonBody,
) -> Result<Response> {
    auth.writer()?;
    let org_id = auth.0.org_id.clone();
    let assets = state.assets.get(&state.db, &org_id).await?;
    let claim = match idempotency::claim(&headers, "campaigns", &body.raw)? {
        Some(claim) => {
            if let Some((status, doc)) = idempotency::replay(&state.db, &org_id, &claim).await? {
                return Ok(campaign_response(status, &assets.live_blockers(doc)));
            }
            Some(claim)
        }
        None => None,
    };
    let input = parse_campaign(&body.value).map_err(ApiError::unprocessable)?;
    check_trigger_campaign(&state, &org_id, input.id.as_deref(), &input.spec).await?;
    let id = input
        .id
        .clone()
        .unwrap_or_else(|| format!("camp-{}", uuid::Uuid::now_v7()));
    let meta = request.of(&auth.0);
    let assets = launch::assets_for(&state.db, &org_id, input.status, assets).await?;
    let ready = assets.readiness(&input.spec);
    let reach = launch::reach_if_launching(&state.db, &org_id, input.status, &input.spec).await?;
    let (new_id, spec, status) = (id.clone(), input.spec.clone(), input.status);
    let outcome = campaigns::execute(
        &state.db,
        &meta,
        &id,
        true,
        None,
        claim.as_ref(),
        move |_, now| CampaignCommand::Create {
            id: new_id.clone(),
            input: spec.clone(),
            status,
            ctx: launch::context(now, launch::new_run_id(), &ready, reach),
        },
    )
    .await;
    let outcome = match (outcome, &claim) {
        (Err(CommandError::IdempotencyRace), Some(claim)) => {
            let claim = idempotency::Claim {
                key: claim.key.clone(),
                request_hash: claim.request_hash.clone(),
            };
            return idempotency::replay(&state.db, &org_id, &claim)
                .await?
                .map(|(status, doc)| campaign_response(status, &assets.live_blockers(doc)))
                .ok_or_else(|| {
                    ApiError::conflict(
                        "a request with this Idempotency-Key is still being processed",
                    )
                });
        }
        (outcome, _) => outcome?,
    };
    state.wakeup.wake();
    Ok(campaign_response(
        StatusCode::CREATED,
        &assets.live_blockers(outcome.view.to_json()),
    ))
}

#[utoipa::path(get, operation_id = "get_campaign", path = "/crm/marketing/campaigns/{id}", tag = "campaigns",
    summary = "A campaign",
    params(("id" = String, Path, description = "The campaign's id")),
    responses((status = 200, description = "The campaign", body = schemas::Campaign,
        headers(("ETag" = String)))))]
#[tracing::instrument(skip_all, fields(org = %auth.0.org_id, campaign = %id))]
async fn fetch(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Response> {
    let org_id = &auth.0.org_id;
    let doc = campaigns::get_shared(&state.db, org_id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such campaign"))?;
    let assets = state.assets.get(&state.db, org_id).await?;
    let rendered = match state.assets.rendered(org_id, &id, &doc, &assets) {
        Some(rendered) => rendered,
        None => state.assets.render(org_id, &id, doc, &assets),
    };
    let mut response = (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        rendered.body,
    )
        .into_response();
    if let Some(etag) = rendered
        .version
        .and_then(|v| HeaderValue::from_str(&format!("\"{v}\"")).ok())
    {
        response.headers_mut().insert(header::ETAG, etag);
    }
    Ok(response)
}

#[utoipa::path(put, operation_id = "replace_campaign", path = "/crm/marketing/campaigns/{id}", tag = "campaigns",
    summary = "Replace a campaign's spec",
    params(("id" = String, Path, description = "The campaign's id"), ("If-Match" = Option<String>, Header, description = "The ETag the change is based on")),
    request_body(content = schemas::CampaignInput, content_type = "application/json"),
    responses((status = 200, description = "The changed campaign", body = schemas::Campaign,
        headers(("ETag" = String)))))]
#[tracing::instrument(skip_all, fields(org = %auth.0.org_id, campaign = %id))]
async fn replace(
    State(state): State<AppState>,
    auth: Auth,
    request: RequestMeta,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: JsonBody,
) -> Result<Response> {
    auth.writer()?;
    let expected = if_match(&headers)?;
    let input = parse_campaign(&body.value).map_err(ApiError::unprocessable)?;
    check_trigger_campaign(&state, &auth.0.org_id, Some(&id), &input.spec).await?;
    let meta = request.of(&auth.0);
    let cached = state.assets.get(&state.db, &auth.0.org_id).await?;
    let assets = launch::assets_for(&state.db, &auth.0.org_id, input.status, cached).await?;
    let ready = assets.readiness(&input.spec);
    let reach =
        launch::reach_if_launching(&state.db, &auth.0.org_id, input.status, &input.spec).await?;
    let (spec, status) = (input.spec.clone(), input.status);
    let outcome = campaigns::execute(
        &state.db,
        &meta,
        &id,
        false,
        expected,
        None,
        move |_, now| CampaignCommand::Update {
            spec: spec.clone(),
            status,
            ctx: launch::context(now, launch::new_run_id(), &ready, reach),
        },
    )
    .await
    .map_err(not_found_when_missing)?;
    state.wakeup.wake();
    Ok(campaign_response(
        StatusCode::OK,
        &assets.live_blockers(outcome.view.to_json()),
    ))
}

/// An `If-Match` on a campaign that does not exist is a 404, not a 412.
fn not_found_when_missing(error: CommandError) -> ApiError {
    match error {
        CommandError::VersionMismatch { current: 0 } => ApiError::not_found("no such campaign"),
        other => other.into(),
    }
}

#[utoipa::path(delete, operation_id = "delete_campaign", path = "/crm/marketing/campaigns/{id}", tag = "campaigns",
    summary = "Delete a campaign (soft: its analytics stay)",
    params(("id" = String, Path, description = "The campaign's id"), ("If-Match" = Option<String>, Header, description = "The ETag the change is based on")),
    responses((status = 204, description = "Deleted")))]
#[tracing::instrument(skip_all, fields(org = %auth.0.org_id, campaign = %id))]
async fn remove(
    State(state): State<AppState>,
    auth: Auth,
    request: RequestMeta,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    auth.writer()?;
    let expected = if_match(&headers)?;
    let meta = request.of(&auth.0);
    let outcome = campaigns::execute(&state.db, &meta, &id, false, expected, None, |_, _| {
        CampaignCommand::Delete
    })
    .await;
    match outcome {
        // Deleting twice is not an error: the campaign is deleted, as asked.
        Ok(_) | Err(CommandError::Domain(CampaignError::Deleted)) => {
            state.wakeup.wake();
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        Err(error) => Err(not_found_when_missing(error)),
    }
}

#[utoipa::path(post, operation_id = "act_on_campaign", path = "/crm/marketing/campaigns/{id}/{action}", tag = "campaigns",
    summary = "Launch, pause, resume or complete a campaign",
    params(("id" = String, Path, description = "The campaign's id"), ("action" = schemas::CampaignAction, Path, description = "What to do"),
        ("If-Match" = Option<String>, Header, description = "The ETag the change is based on")),
    responses((status = 200, description = "The campaign after the action", body = schemas::Campaign,
        headers(("ETag" = String)))))]
#[tracing::instrument(skip_all, fields(org = %auth.0.org_id, campaign = %id, action = %action))]
async fn action(
    State(state): State<AppState>,
    auth: Auth,
    request: RequestMeta,
    Path((id, action)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response> {
    let action = Action::parse(&action).ok_or_else(|| ApiError::not_found("no such route"))?;
    let to = action.target();
    auth.writer()?;
    let expected = if_match(&headers)?;
    // The spec decides what the launch context holds; whether the action applies is the
    // aggregate's decision, inside the command's transaction.
    let current = campaigns::get(&state.db, &auth.0.org_id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such campaign"))?;
    let meta = request.of(&auth.0);
    let spec: CampaignSpec = serde_json::from_value(current.clone()).map_err(ApiError::internal)?;
    let cached = state.assets.get(&state.db, &auth.0.org_id).await?;
    let assets = launch::assets_for(&state.db, &auth.0.org_id, Some(to), cached).await?;
    let ready = assets.readiness(&spec);
    let reach = launch::reach_if_launching(&state.db, &auth.0.org_id, Some(to), &spec).await?;
    let outcome = campaigns::execute(
        &state.db,
        &meta,
        &id,
        false,
        expected,
        None,
        move |_, now| CampaignCommand::Act {
            action,
            ctx: launch::context(now, launch::new_run_id(), &ready, reach),
        },
    )
    .await
    .map_err(not_found_when_missing)?;
    state.wakeup.wake();
    Ok(campaign_response(
        StatusCode::OK,
        &assets.live_blockers(outcome.view.to_json()),
    ))
}

#[utoipa::path(get, operation_id = "list_campaigns", path = "/crm/marketing/campaigns", tag = "campaigns",
    summary = "List campaigns",
    params(schemas::CampaignFilter, schemas::Page),
    responses((status = 200, description = "A page of campaigns", body = schemas::CampaignList)))]
#[tracing::instrument(skip_all, fields(org = %auth.0.org_id))]
async fn list(State(state): State<AppState>, auth: Auth, params: Params) -> Result<Response> {
    let status = match params.get("status") {
        Some(s) => Some(
            Status::parse(s)
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "status must be draft, scheduled, running, paused or completed",
                    )
                })?
                .as_str()
                .to_string(),
        ),
        None => None,
    };
    let campaign_type = match params.get("type") {
        Some(t) if CampaignType::all().iter().any(|k| k.id() == t) => Some(t.to_string()),
        Some(_) => return Err(ApiError::bad_request("type must be a campaign type id")),
        None => None,
    };
    let channel = match params.get("channel") {
        Some(c) if Channel::all().iter().any(|k| k.id() == c) => Some(c.to_string()),
        Some(_) => return Err(ApiError::bad_request("channel must be a platform id")),
        None => None,
    };
    let (sort, descending) = match params.get("sort").unwrap_or("-createdAt") {
        "createdAt" => (SortKey::CreatedAt, false),
        "-createdAt" => (SortKey::CreatedAt, true),
        "name" => (SortKey::Name, false),
        "-name" => (SortKey::Name, true),
        "updatedAt" => (SortKey::UpdatedAt, false),
        "-updatedAt" => (SortKey::UpdatedAt, true),
        _ => {
            return Err(ApiError::bad_request(
                "sort must be one of createdAt, -createdAt, name, -name, updatedAt, -updatedAt",
            ))
        }
    };
    let after = match params.get("cursor") {
        Some(cursor) => Some(decode_cursor(cursor)?),
        None => None,
    };
    let query = ListQuery {
        status,
        campaign_type,
        channel,
        name_contains: params.get("q").map(str::to_string),
        include_deleted: params.flag("includeDeleted")?,
        sort,
        descending,
        after,
        limit: params.limit()?,
    };
    let (items, last) = campaigns::list(&state.db, &auth.0.org_id, &query).await?;
    let next = last.map(|(value, id)| encode_cursor(&value, &id));
    let assets = state.assets.get(&state.db, &auth.0.org_id).await?;
    let items: Vec<Value> = items
        .into_iter()
        .map(|doc| assets.live_blockers(doc))
        .collect();
    Ok(Json(json!({ "items": items, "nextCursor": next })).into_response())
}
