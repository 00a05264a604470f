//! The audit trail: a campaign's stream and the org's log in global order (`api.md` section 8).

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::StreamExt;
use herald_projections::record::campaign_stream;
use serde_json::json;

use super::error::{ApiError, Result};
use super::extract::{Auth, Params};
use super::routes::Routes;
use super::{schemas, AppState};
use crate::store;

pub fn router() -> Routes {
    Routes::new()
        .get("/crm/marketing/campaigns/{id}/events", campaign_events)
        .get("/crm/marketing/events", org_events)
}

fn parse_number(params: &Params, key: &str) -> Result<Option<i64>> {
    match params.get(key) {
        None => Ok(None),
        Some(raw) => raw
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .map(Some)
            .ok_or_else(|| ApiError::bad_request(format!("{key} must be a non-negative integer"))),
    }
}

#[utoipa::path(get, path = "/crm/marketing/campaigns/{id}/events", tag = "events",
    summary = "A campaign's events (its audit trail), oldest first",
    params(("id" = String, Path, description = "The campaign's id"), schemas::Page),
    responses((status = 200, description = "A page of events", body = schemas::EventList)))]
#[tracing::instrument(skip_all, fields(org = %auth.0.org_id, campaign = %id))]
async fn campaign_events(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    params: Params,
) -> Result<Response> {
    let limit = params.limit()?;
    let from = parse_number(&params, "cursor")
        .map_err(|_| ApiError::bad_request("cursor is not one this server issued"))?
        .unwrap_or(0);
    let stream_id = campaign_stream(&auth.0.org_id, &id);
    let events = store::read_stream(
        &state.db.read,
        state.db.backend,
        &stream_id,
        from,
        limit + 1,
    )
    .await?;
    if events.is_empty() && from == 0 {
        return Err(ApiError::not_found("no such campaign"));
    }
    let more = events.len() as i64 > limit;
    let items: Vec<_> = events
        .into_iter()
        .take(limit as usize)
        .map(|e| e.record)
        .collect();
    let next = if more {
        items.last().map(|r| (r.revision + 1).to_string())
    } else {
        None
    };
    Ok(Json(json!({ "items": items, "nextCursor": next })).into_response())
}

#[utoipa::path(get, path = "/crm/marketing/events", tag = "events",
    summary = "The org's event log, oldest first; `Accept: application/x-ndjson` streams it whole",
    params(schemas::EventFilter, schemas::Page),
    responses((status = 200, description = "A page of events, or every event as NDJSON",
        content((schemas::EventList = "application/json"), (String = "application/x-ndjson")))))]
#[tracing::instrument(skip_all, fields(org = %auth.0.org_id))]
async fn org_events(
    State(state): State<AppState>,
    auth: Auth,
    params: Params,
    headers: HeaderMap,
) -> Result<Response> {
    let after = match parse_number(&params, "cursor")
        .map_err(|_| ApiError::bad_request("cursor is not one this server issued"))?
    {
        Some(cursor) => cursor,
        None => parse_number(&params, "after")?.unwrap_or(0),
    };
    let event_type = params.get("type").map(str::to_string);
    let wants_ndjson = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/x-ndjson"));
    let org_id = auth.0.org_id.clone();
    // Connection events carry settings and profiles: only admins read them.
    let admin = auth.0.is_admin();
    if wants_ndjson {
        // Stream the whole log after `after`, a page at a time, so memory stays flat.
        let limit = match params.get("limit") {
            Some(_) => Some(params.limit()?),
            None => None,
        };
        let db = state.db.clone();
        let pages = futures::stream::unfold(
            (after, limit.unwrap_or(i64::MAX), false),
            move |(after, remaining, done)| {
                let db = db.clone();
                let org_id = org_id.clone();
                let event_type = event_type.clone();
                async move {
                    if done || remaining <= 0 {
                        return None;
                    }
                    let page = remaining.min(1000);
                    let read = store::read_org_as(
                        &db,
                        Some(&org_id),
                        after,
                        event_type.as_deref(),
                        page,
                        admin,
                    );
                    match read.await {
                        Ok(events) if events.is_empty() => None,
                        Ok(events) => {
                            let last = events.last().map(|e| e.record.position).unwrap_or(after);
                            let finished = (events.len() as i64) < page;
                            let mut chunk = String::new();
                            for event in &events {
                                chunk.push_str(
                                    &serde_json::to_string(&event.record).unwrap_or_default(),
                                );
                                chunk.push('\n');
                            }
                            let n = events.len() as i64;
                            Some((
                                Ok::<_, std::io::Error>(chunk),
                                (last, remaining - n, finished),
                            ))
                        }
                        Err(error) => {
                            tracing::error!(%error, "event stream failed");
                            Some((
                                Err(std::io::Error::other("event stream failed")),
                                (after, 0, true),
                            ))
                        }
                    }
                }
            },
        )
        .boxed();
        let mut response = Body::from_stream(pages).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-ndjson"),
        );
        return Ok(response);
    }
    let limit = params.limit()?;
    let events = store::read_org_as(
        &state.db,
        Some(&org_id),
        after,
        event_type.as_deref(),
        limit + 1,
        admin,
    )
    .await?;
    let more = events.len() as i64 > limit;
    let items: Vec<_> = events
        .into_iter()
        .take(limit as usize)
        .map(|e| e.record)
        .collect();
    let next = if more {
        items.last().map(|r| r.position.to_string())
    } else {
        None
    };
    Ok(Json(json!({ "items": items, "nextCursor": next })).into_response())
}
