//! Short links of SMS bodies (`/connect/s/{code}`): a public redirect to the URL a code stands
//! for, written by the sender with the message (docs/scheduling.md).

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use super::error::{ApiError, Result};
use super::routes::Routes;
use super::AppState;

/// Codes are 12 base62 characters today; anything longer or of other characters is refused
/// without a lookup.
const MAX_CODE_CHARS: usize = 64;

pub fn router() -> Routes {
    Routes::new().get("/connect/s/{code}", follow)
}

#[utoipa::path(get, path = "/connect/s/{code}", tag = "tracking",
    summary = "Follow a short link of an SMS",
    params(("code" = String, Path, description = "The link's code")),
    responses((status = 302, description = "To the link's target", headers(("Location" = String)))))]
/// `GET /connect/s/{code}` → `302` to the stored target (a signed click URL, or Herald's own
/// unsubscribe URL); an unknown code is `404`. Targets are only ever written by the sender, so
/// this can never be an open redirect.
#[tracing::instrument(skip_all)]
async fn follow(State(state): State<AppState>, Path(code): Path<String>) -> Result<Response> {
    let well_formed = !code.is_empty()
        && code.len() <= MAX_CODE_CHARS
        && code.bytes().all(|b| b.is_ascii_alphanumeric());
    if !well_formed {
        return Err(ApiError::not_found("no such link"));
    }
    let target: Option<String> =
        sqlx::query_scalar("select target from short_links where code = $1")
            .bind(&code)
            .fetch_optional(&state.db.read)
            .await?;
    let target = target.ok_or_else(|| ApiError::not_found("no such link"))?;
    Ok((
        StatusCode::FOUND,
        [
            (header::LOCATION, target),
            (header::CACHE_CONTROL, "no-store".to_string()),
            (header::REFERRER_POLICY, "no-referrer".to_string()),
        ],
    )
        .into_response())
}
