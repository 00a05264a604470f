//! Request extractors that answer every rejection in the project's problem+json shape.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{header, request::Parts, HeaderMap};
use serde_json::Value;

use base64::Engine;
use serde_json::json;

use super::error::{ApiError, Result};
use super::AppState;
use crate::auth::{Principal, Verifier};
use crate::commands::CommandMeta;

/// A JSON body. `application/json`, `text/plain` or no content type are parsed as JSON (the
/// seed's own `fetch` example sends no type); anything else is `415`.
pub struct JsonBody {
    pub value: Value,
    pub raw: Bytes,
}

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        check_json_content_type(req.headers())?;
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > super::BODY_LIMIT) {
            // Read (and drop) a moderately oversized body before answering, so the client sees
            // the 413 instead of a connection reset while it is still sending.
            drain(req.into_body(), 8 * super::BODY_LIMIT).await;
            return Err(ApiError::new(
                axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                "the request body is larger than 1 MiB",
            ));
        }
        let raw = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(rejection.status(), "the request body is larger than 1 MiB")
            } else {
                ApiError::bad_request("the request body could not be read")
            }
        })?;
        if raw.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::bad_request(
                "the request body is empty; send a JSON document",
            ));
        }
        let value: Value = serde_json::from_slice(&raw)
            .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))?;
        // PostgreSQL cannot store a NUL in text: refuse it here rather than fail on write.
        if holds_nul(&value) {
            return Err(ApiError::bad_request(
                "the body holds a NUL character (\\u0000), which no field accepts",
            ));
        }
        Ok(JsonBody { value, raw })
    }
}

/// Whether any string or key of a JSON value holds a NUL character.
pub(crate) fn holds_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(holds_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || holds_nul(v)),
        _ => false,
    }
}

/// Consumes up to `cap` bytes of a body and discards them.
async fn drain(body: axum::body::Body, cap: usize) {
    use futures::StreamExt;
    let mut stream = body.into_data_stream();
    let mut seen = 0usize;
    while let Some(Ok(chunk)) = stream.next().await {
        seen += chunk.len();
        if seen > cap {
            break;
        }
    }
}

fn check_json_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let value = value
        .to_str()
        .map_err(|_| ApiError::bad_request("the Content-Type header is malformed"))?;
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let json_like = essence == "application/json"
        || essence == "text/plain"
        || essence.is_empty()
        || (essence.starts_with("application/") && essence.ends_with("+json"));
    if json_like {
        Ok(())
    } else {
        Err(ApiError::new(
            axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Content-Type {essence} is not supported; send application/json"),
        ))
    }
}

/// Query parameters; a malformed query string is `400`.
pub struct Params(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
            .map_err(|_| ApiError::bad_request("the query string is malformed"))?;
        Ok(Params(pairs.into_iter().collect()))
    }
}

impl Params {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// `limit`: default 50, at most 500.
    pub fn limit(&self) -> Result<i64, ApiError> {
        match self.get("limit") {
            None => Ok(50),
            Some(raw) => match raw.parse::<i64>() {
                Ok(n) if n >= 1 => Ok(n.min(500)),
                _ => Err(ApiError::bad_request(
                    "limit must be an integer from 1 to 500",
                )),
            },
        }
    }

    pub fn flag(&self, key: &str) -> Result<bool, ApiError> {
        match self.get(key) {
            None | Some("false") | Some("0") => Ok(false),
            Some("true") | Some("1") => Ok(true),
            Some(_) => Err(ApiError::bad_request(format!(
                "{key} must be true or false"
            ))),
        }
    }
}

/// The caller: a verified bearer token acting for the org named in the `orgid` header, within
/// the org's request rate (`HERALD_RATE_LIMIT_ORG`).
pub struct Auth(pub Principal);

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| ApiError::unauthorized("an Authorization: Bearer token is required"))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::unauthorized("the Authorization header must be `Bearer <token>`")
            })?;
        let claims = state
            .verifier
            .verify(token)
            .ok_or_else(|| ApiError::unauthorized("the token is invalid or expired"))?;
        let org_id = parts
            .headers
            .get("orgid")
            .ok_or_else(|| ApiError::bad_request("the orgid header is required"))?
            .to_str()
            .ok()
            .filter(|o| herald_domain::ids::is_valid_id(o))
            .ok_or_else(|| ApiError::bad_request("the orgid header is malformed"))?;
        let principal = Verifier::principal(claims, org_id)
            .ok_or_else(|| ApiError::forbidden("the token may not act for this org"))?;
        // Counted only once the caller proved it acts for the org: nobody else can spend an
        // org's requests.
        state.limits.check_org(&principal.org_id).map_err(|wait| {
            ApiError::too_many_requests("this org is over its request rate; retry later", wait)
        })?;
        Ok(Auth(principal))
    }
}

impl Auth {
    /// Requires the `admin` or `marketer` role.
    pub fn writer(&self) -> Result<&Principal, ApiError> {
        if self.0.can_write() {
            Ok(&self.0)
        } else {
            Err(ApiError::forbidden(
                "this action needs the admin or marketer role",
            ))
        }
    }
}

/// Request correlation: the request id (set by the request-id layer) and an optional
/// caller-supplied correlation id.
#[derive(Debug, Clone)]
pub struct RequestMeta {
    pub request_id: String,
    pub correlation_id: String,
}

impl RequestMeta {
    /// Who asks for a command in this request, and the ids its events carry.
    pub fn command_meta(&self, org_id: &str, actor: &str) -> CommandMeta {
        CommandMeta {
            org_id: org_id.to_string(),
            actor: actor.to_string(),
            request_id: self.request_id.clone(),
            correlation_id: self.correlation_id.clone(),
        }
    }

    /// [`RequestMeta::command_meta`] for a signed-in principal.
    pub fn of(&self, principal: &Principal) -> CommandMeta {
        self.command_meta(&principal.org_id, &principal.actor)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestMeta {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let header_str = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.is_empty() && v.len() <= 200)
                .map(str::to_string)
        };
        let request_id =
            header_str("x-request-id").unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
        let correlation_id = header_str("x-correlation-id").unwrap_or_else(|| request_id.clone());
        Ok(RequestMeta {
            request_id,
            correlation_id,
        })
    }
}

/// Parses `If-Match`: `"3"`, `W/"3"` or `*` (any version).
pub fn if_match(headers: &HeaderMap) -> Result<Option<i64>> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| ApiError::bad_request("If-Match is malformed"))?
        .trim();
    if value == "*" {
        return Ok(None);
    }
    let tag = value.trim_start_matches("W/").trim_matches('"');
    match tag.parse::<i64>() {
        Ok(version) => Ok(Some(version)),
        // A tag this server never issued cannot match the current one.
        Err(_) => Ok(Some(-1)),
    }
}

/// An opaque list cursor: the sort value and id of the last item of a page.
pub fn encode_cursor(value: &str, id: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json!([value, id]).to_string())
}

pub fn decode_cursor(cursor: &str) -> Result<(String, String)> {
    let bad = || ApiError::bad_request("cursor is not one this server issued");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| bad())?;
    let (value, id): (String, String) = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    Ok((value, id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_cursor_is_decoded_or_refused_with_400(cursor in ".{0,200}") {
            if let Err(error) = decode_cursor(&cursor) {
                prop_assert_eq!(error.status, axum::http::StatusCode::BAD_REQUEST);
            }
        }

        #[test]
        fn issued_cursors_come_back_as_they_were(value in ".{0,40}", id in ".{0,40}") {
            let cursor = encode_cursor(&value, &id);
            prop_assert_eq!(decode_cursor(&cursor).unwrap(), (value, id));
        }
    }
}
