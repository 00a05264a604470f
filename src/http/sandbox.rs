//! The sandbox vendor's outbox (`api.md` section 4): what every `sandbox` connection would have
//! sent, newest last, for tests and demos. Admin only, like the connections themselves.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use herald_domain::spec::Channel;
use serde_json::{json, Value};
use sqlx::Row;

use super::error::{ApiError, Result};
use super::extract::{Auth, Params};
use super::routes::Routes;
use super::{schemas, AppState};

pub fn router() -> Routes {
    Routes::new().get("/crm/integrations/sandbox/messages", list)
}

#[utoipa::path(get, operation_id = "list_sandbox_messages", path = "/crm/integrations/sandbox/messages", tag = "integrations",
    summary = "What the sandbox connections would have sent, oldest first (admin)",
    params(schemas::SandboxFilter, schemas::Page),
    responses((status = 200, description = "A page of messages", body = schemas::SandboxMessageList)))]
/// `GET /crm/integrations/sandbox/messages?campaignId=&channel=&contactId=&limit=&cursor=`.
#[tracing::instrument(skip_all, fields(org = %auth.0.org_id))]
async fn list(State(state): State<AppState>, auth: Auth, params: Params) -> Result<Response> {
    if !auth.0.is_admin() {
        return Err(ApiError::forbidden("integrations need the admin role"));
    }
    if let Some(channel) = params.get("channel") {
        if Channel::parse(channel).is_none() {
            return Err(ApiError::bad_request("channel must be a platform id"));
        }
    }
    let limit = params.limit()?;
    let after = match params.get("cursor") {
        Some(cursor) => decode_cursor(cursor)?,
        None => String::new(),
    };
    let rows = sqlx::query(
        "select id, campaign_id, run_id, channel, contact_id, to_address, subject, html, text_body, body, headers, tracking, sent_at
         from sandbox_messages
         where org_id = $1 and ($2 = '' or campaign_id = $2) and ($3 = '' or channel = $3)
           and ($4 = '' or contact_id = $4) and id > $5
         order by id limit $6",
    )
    .bind(&auth.0.org_id)
    .bind(params.get("campaignId").unwrap_or(""))
    .bind(params.get("channel").unwrap_or(""))
    .bind(params.get("contactId").unwrap_or(""))
    .bind(&after)
    .bind(limit + 1)
    .fetch_all(&state.db.read)
    .await?;
    let more = rows.len() as i64 > limit;
    let mut items = Vec::with_capacity(rows.len());
    let mut last = None;
    for row in rows.iter().take(limit as usize) {
        let id: String = row.try_get("id")?;
        let json_column = |name: &str| -> Result<Value> {
            let text: String = row.try_get(name)?;
            Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
        };
        items.push(json!({
            "id": id,
            "campaignId": row.try_get::<String, _>("campaign_id")?,
            "runId": row.try_get::<String, _>("run_id")?,
            "channel": row.try_get::<String, _>("channel")?,
            "contactId": row.try_get::<Option<String>, _>("contact_id")?,
            "to": row.try_get::<String, _>("to_address")?,
            "subject": row.try_get::<Option<String>, _>("subject")?,
            "html": row.try_get::<Option<String>, _>("html")?,
            "text": row.try_get::<Option<String>, _>("text_body")?,
            "body": row.try_get::<Option<String>, _>("body")?,
            "headers": json_column("headers")?,
            "trackingUrls": json_column("tracking")?,
            "sentAt": row.try_get::<String, _>("sent_at")?,
        }));
        last = Some(id);
    }
    let next = last
        .filter(|_| more)
        .map(|id| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id));
    Ok(Json(json!({ "items": items, "nextCursor": next })).into_response())
}

fn decode_cursor(cursor: &str) -> Result<String> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| ApiError::bad_request("cursor is not one this server issued"))
}
