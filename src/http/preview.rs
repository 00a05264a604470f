//! Dry run and test send (`api.md` section 2): `POST /crm/marketing/campaigns/:id/preview`
//! renders every channel for one contact and sends nothing; `POST …/test-send` sends one
//! `[Test]` message through the campaign's connection, counted nowhere and logged as
//! `TestSent`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use herald_domain::document::DocumentKind;
use herald_domain::error::FieldError;
use herald_domain::spec::{CampaignSpec, Category, Channel};
use herald_domain::suppression::normalise;
use serde_json::{Map, Value};

use super::error::{ApiError, Result};
use super::extract::{Auth, JsonBody, RequestMeta};
use super::routes::Routes;
use super::{schemas, AppState};
use crate::campaigns;
use crate::documents;
use crate::sending::preview::TestSendError;
use crate::sending::report::SendRunError;

pub fn router() -> Routes {
    Routes::new()
        .post("/crm/marketing/campaigns/{id}/preview", preview)
        .post("/crm/marketing/campaigns/{id}/test-send", test_send)
}

/// The campaign and its spec; `404` when it is missing, another org's or deleted.
async fn campaign(state: &AppState, org_id: &str, id: &str) -> Result<(Value, CampaignSpec)> {
    let doc = campaigns::get(&state.db, org_id, id)
        .await?
        .filter(|doc| doc["state"] != "deleted")
        .ok_or_else(|| ApiError::not_found("no such campaign"))?;
    let spec = serde_json::from_value(doc.clone()).map_err(ApiError::internal)?;
    Ok((doc, spec))
}

/// The org's contact `id` as `GET /crm/contacts/:id` shows it (with `unsubscribed` from the
/// suppression list); `404` when there is none.
async fn contact(state: &AppState, org_id: &str, id: &str) -> Result<Value> {
    let mut found =
        documents::get_many(&state.db, org_id, DocumentKind::Contact, &[id.into()]).await?;
    crate::suppressions::overlay(&state.db, org_id, found.values_mut()).await?;
    found
        .remove(id)
        .ok_or_else(|| ApiError::not_found("no such contact"))
}

fn object(body: &JsonBody) -> Result<&Map<String, Value>> {
    body.value
        .as_object()
        .ok_or_else(|| ApiError::field("", "the body must be a JSON object"))
}

fn setup_error(error: SendRunError) -> ApiError {
    match error {
        SendRunError::Setup(reason) => ApiError::conflict(reason),
        SendRunError::Db(error) => error.into(),
        SendRunError::LeaseLost => ApiError::internal("a preview has no lease"),
    }
}

#[utoipa::path(post, operation_id = "preview_campaign", path = "/crm/marketing/campaigns/{id}/preview", tag = "campaigns",
    summary = "Render every channel (and drip step) for one contact; sends nothing",
    params(("id" = String, Path, description = "The campaign's id")),
    request_body(content = schemas::PreviewRequest, content_type = "application/json"),
    responses((status = 200, description = "The rendered messages", body = schemas::CampaignPreview)))]
/// `POST …/preview` `{"contactId"}`: any role that reads campaigns.
#[tracing::instrument(skip_all, fields(org = %auth.0.org_id))]
async fn preview(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    body: JsonBody,
) -> Result<Response> {
    let org_id = auth.0.org_id.as_str();
    let contact_id = match object(&body)?.get("contactId") {
        Some(Value::String(id)) if !id.is_empty() => id.clone(),
        Some(_) => return Err(ApiError::field("contactId", "must be a contact id")),
        None => return Err(ApiError::field("contactId", "is required")),
    };
    let (doc, spec) = campaign(&state, org_id, &id).await?;
    let contact = contact(&state, org_id, &contact_id).await?;
    let rendered = state
        .sender
        .preview(org_id, &doc, &spec, &contact_id, &contact)
        .await
        .map_err(setup_error)?;
    Ok(Json(rendered).into_response())
}

#[utoipa::path(post, path = "/crm/marketing/campaigns/{id}/test-send", tag = "campaigns",
    summary = "Send one [Test] message through the campaign's connection",
    params(("id" = String, Path, description = "The campaign's id")),
    request_body(content = schemas::TestSendRequest, content_type = "application/json"),
    responses((status = 200, description = "What was sent", body = schemas::TestSent)))]
/// `POST …/test-send` `{"channel", "to", "contactId"?}`: the writer roles.
#[tracing::instrument(skip_all, fields(org = %auth.0.org_id))]
async fn test_send(
    State(state): State<AppState>,
    auth: Auth,
    request: RequestMeta,
    Path(id): Path<String>,
    body: JsonBody,
) -> Result<Response> {
    auth.writer()?;
    let org_id = auth.0.org_id.as_str();
    let fields = object(&body)?;
    let (doc, spec) = campaign(&state, org_id, &id).await?;
    let mut errors = Vec::new();
    let channel = match fields.get("channel").and_then(Value::as_str) {
        None => {
            errors.push(FieldError::new("channel", "is required: email or sms"));
            None
        }
        Some(text) => match Channel::parse(text) {
            Some(c) if !matches!(c.kind(), Category::Email | Category::Sms) => {
                errors.push(FieldError::new(
                    "channel",
                    "a test send is an email or an SMS; social and ads channels have none",
                ));
                None
            }
            Some(c) if !spec.channels.contains(&c) => {
                errors.push(FieldError::new(
                    "channel",
                    format!("the campaign does not use {c}"),
                ));
                None
            }
            Some(c) => Some(c),
            None => {
                errors.push(FieldError::new("channel", "must be email or sms"));
                None
            }
        },
    };
    let to = match (fields.get("to"), channel) {
        (None, _) => {
            errors.push(FieldError::new("to", "is required"));
            None
        }
        (Some(Value::String(to)), Some(channel)) => match normalise(channel, to) {
            Some(to) => Some(to),
            None if channel == Channel::Email => {
                errors.push(FieldError::new("to", "must be an email address"));
                None
            }
            None => {
                errors.push(FieldError::new(
                    "to",
                    "must be a phone number in E.164 form (+15551234567)",
                ));
                None
            }
        },
        (Some(Value::String(_)), None) => None,
        (Some(_), _) => {
            errors.push(FieldError::new("to", "must be a string"));
            None
        }
    };
    let contact_id = match fields.get("contactId") {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) if !id.is_empty() => Some(id.clone()),
        Some(_) => {
            errors.push(FieldError::new("contactId", "must be a contact id"));
            None
        }
    };
    let (Some(channel), Some(to)) = (channel, to) else {
        return Err(ApiError::unprocessable(errors));
    };
    if !errors.is_empty() {
        return Err(ApiError::unprocessable(errors));
    }
    let contact = match &contact_id {
        Some(id) => Some(contact(&state, org_id, id).await?),
        None => None,
    };
    let metadata = request.of(&auth.0).metadata();
    let sent = state
        .sender
        .test_send(
            &metadata,
            &doc,
            &spec,
            channel,
            &to,
            contact_id.as_deref().zip(contact.as_ref()),
        )
        .await
        .map_err(|error| match error {
            TestSendError::Unsendable(reason) => ApiError::conflict(reason),
            error @ TestSendError::Vendor(_) => {
                ApiError::new(StatusCode::BAD_GATEWAY, error.to_string())
            }
            TestSendError::Run(error) => setup_error(error),
        })?;
    let mut out = sent.message;
    out["eventPosition"] = Value::from(sent.event_position);
    Ok((StatusCode::OK, Json(out)).into_response())
}
