//! `Idempotency-Key` for create endpoints: a repeat with the same key and body within 24 hours
//! gets the first response and writes nothing; the same key with another body is `422`.

use axum::http::{HeaderMap, StatusCode};
use chrono::Utc;
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::Row;

use super::error::{ApiError, Result};
use crate::db::Db;

/// A key and the hash of the request it came with: the command runner's claim.
pub use crate::commands::IdempotencyClaim as Claim;

/// Reads the `Idempotency-Key` header; the hash covers the route and the raw body.
pub fn claim(headers: &HeaderMap, route: &str, body: &[u8]) -> Result<Option<Claim>> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 255)
        .ok_or_else(|| {
            ApiError::bad_request("Idempotency-Key must be 1 to 255 visible characters")
        })?;
    let mut hasher = Sha256::new();
    hasher.update(route.as_bytes());
    hasher.update([0]);
    hasher.update(body);
    Ok(Some(Claim {
        key: format!("{route} {key}"),
        request_hash: hex::encode(hasher.finalize()),
    }))
}

/// The stored answer for this claim, if a request with the same key was answered within 24 h.
pub async fn replay(db: &Db, org_id: &str, claim: &Claim) -> Result<Option<(StatusCode, Value)>> {
    let row = sqlx::query(
        "select request_hash, status, body, created_at from idempotency_keys where org_id = $1 and key = $2",
    )
    .bind(org_id)
    .bind(&claim.key)
    .fetch_optional(&db.read)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let created: String = row.try_get("created_at")?;
    let fresh = chrono::DateTime::parse_from_rfc3339(&created)
        .map(|at| Utc::now().signed_duration_since(at) < chrono::Duration::hours(24))
        .unwrap_or(false);
    if !fresh {
        sqlx::query("delete from idempotency_keys where org_id = $1 and key = $2")
            .bind(org_id)
            .bind(&claim.key)
            .execute(&db.write)
            .await?;
        return Ok(None);
    }
    let stored_hash: String = row.try_get("request_hash")?;
    if stored_hash != claim.request_hash {
        return Err(ApiError::field(
            "Idempotency-Key",
            "this key was already used with a different request body",
        ));
    }
    let status: i64 = row.try_get("status")?;
    let body: String = row.try_get("body")?;
    let doc: Value = serde_json::from_str(&body).map_err(ApiError::internal)?;
    Ok(Some((
        StatusCode::from_u16(status as u16).unwrap_or(StatusCode::CREATED),
        doc,
    )))
}
