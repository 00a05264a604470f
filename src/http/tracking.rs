//! Public tracking routes (`api.md` section 6): the open pixel, click redirects and the
//! unsubscribe page and one-click `POST`, each behind a signed `?t=` token instead of a JWT.
//!
//! A token is honoured only when it verifies, has not expired, names the campaign and run of
//! the path and is of the route's kind; anything else is answered as if the URL did not exist
//! (the pixel still answers its GIF, so a mail client never shows a broken image). Clicks
//! redirect to the URL inside the signed token, never to anything the request carries.
//!
//! One token records at most `HERALD_TRACKING_MAX_PER_TOKEN` opens or clicks an hour
//! ([`crate::limits`]); further hits get the same GIF or redirect, are counted in `/metrics`
//! and are not recorded. Nothing here is limited per client address: mail proxies fetch for
//! millions of recipients from a few addresses.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use herald_domain::document::DocumentKind;
use herald_domain::engagement::{self, Classification, Engagement, EngagementType};
use herald_domain::tracking::{self, TrackingClaims, TrackingKind};

use super::error::{ApiError, Result};
use super::extract::RequestMeta;
use super::routes::Routes;
use super::{schemas, AppState};
use crate::campaigns::CommandMeta;
use crate::documents;
use crate::engagements::{Pending, RecordError};
use crate::suppressions::{self, Suppress};
use herald_domain::suppression::Reason;

/// A transparent 1×1 GIF (43 bytes).
const PIXEL: [u8; 43] = [
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
];

/// The actor of the suppression an unsubscribe adds.
pub const UNSUBSCRIBE_ACTOR: &str = "tracking:unsubscribe";

/// The routes, with and without the trailing slash the sender writes. Mounted at `/` and
/// `/api` with the rest of the API.
pub fn router() -> Routes {
    // The twins without the trailing slash serve the same handlers; the document lists the
    // form the sender writes, once.
    Routes::new()
        .get("/connect/automation/{id}/{step}/email/open/", open)
        .undocumented(
            Method::GET,
            "/connect/automation/{id}/{step}/email/open",
            open,
        )
        .get("/connect/automation/{id}/{step}/link/click/", click)
        .undocumented(
            Method::GET,
            "/connect/automation/{id}/{step}/link/click",
            click,
        )
        .get(
            "/connect/automation/{id}/{step}/unsubscribe/",
            unsubscribe_page,
        )
        .post("/connect/automation/{id}/{step}/unsubscribe/", unsubscribe)
        .undocumented(
            Method::GET,
            "/connect/automation/{id}/{step}/unsubscribe",
            unsubscribe_page,
        )
        .undocumented(
            Method::POST,
            "/connect/automation/{id}/{step}/unsubscribe",
            unsubscribe,
        )
}

/// The `t` query parameter, if the query string has one.
fn token_of(uri: &Uri) -> Option<String> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(uri.query()?).ok()?;
    pairs
        .into_iter()
        .find(|(key, _)| key == "t")
        .map(|(_, value)| value)
}

/// A token that verified, and what it says.
struct Verified {
    claims: TrackingClaims,
    /// The token as sent: what the per-token cap counts by.
    token: String,
}

/// A preview's or test send's link (`sending::preview`): it works, but records nothing.
fn is_test(claims: &TrackingClaims) -> bool {
    claims.run_id == crate::sending::preview::TEST_RUN
}

/// The token's claims when it verifies, has not expired, and belongs to this route: the
/// campaign and run of the path and the route's kind.
fn verified(
    state: &AppState,
    path: &Result<Path<(String, String)>, PathRejection>,
    uri: &Uri,
    kind: TrackingKind,
) -> Option<Verified> {
    let Ok(Path((campaign_id, run_id))) = path else {
        return None;
    };
    let token = token_of(uri)?;
    let claims = match tracking::verify_at(&state.tracking_key, &token, Utc::now().timestamp()) {
        Ok(claims) => claims,
        Err(error) => {
            tracing::debug!(%error, "tracking token refused");
            return None;
        }
    };
    // A step's URLs carry the step's id where a run's carry the run's.
    let path_step = claims.step_id.as_deref().unwrap_or(&claims.run_id);
    let belongs = claims.campaign_id == *campaign_id && path_step == run_id && claims.kind == kind;
    if !belongs {
        tracing::debug!("tracking token for another campaign, run or route");
        return None;
    }
    Some(Verified { claims, token })
}

/// The engagement a followed tracking URL stands for.
fn engagement_of(
    claims: &TrackingClaims,
    kind: EngagementType,
    classification: Classification,
) -> Engagement {
    Engagement {
        campaign_id: claims.campaign_id.clone(),
        run_id: Some(claims.run_id.clone()),
        contact_id: Some(claims.contact_id.clone()),
        channel: claims.channel,
        kind,
        classification,
        occurred_at: Utc::now(),
        external_id: None,
        link: None,
        value: None,
        currency: None,
        count: None,
        source: "tracking".to_string(),
        reason: None,
    }
}

/// Event metadata for an engagement reported by a tracking URL: the token's org, a system
/// actor naming the route, and the request's ids.
fn command_meta(claims: &TrackingClaims, actor: &str, request: &RequestMeta) -> CommandMeta {
    request.command_meta(&claims.org_id, actor)
}

fn classification(method: &Method, headers: &HeaderMap) -> Classification {
    let agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    engagement::classify(method == Method::HEAD, agent)
}

fn unavailable(error: RecordError) -> ApiError {
    tracing::error!(%error, "tracking engagement not recorded");
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "the engagement could not be recorded; retry shortly",
    )
}

fn pixel() -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "image/gif"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        PIXEL.as_slice(),
    )
        .into_response()
}

#[utoipa::path(get, path = "/connect/automation/{id}/{step}/email/open/", tag = "tracking",
    summary = "The open pixel of an email",
    params(("id" = String, Path, description = "The campaign's id"),
        ("step" = String, Path, description = "The run's or the drip step's id"), schemas::TrackingToken),
    responses((status = 200, description = "A 1×1 GIF, whatever the token", content_type = "image/gif", body = Vec<u8>)))]
/// `GET|HEAD …/email/open/?t=` → always the GIF; a valid open token records an open.
#[tracing::instrument(skip_all)]
async fn open(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    uri: Uri,
    request: RequestMeta,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Response {
    if let Some(Verified { claims, token }) =
        verified(&state, &path, &uri, TrackingKind::Open).filter(|v| !is_test(&v.claims))
    {
        let pending = Pending {
            org_id: claims.org_id.clone(),
            engagement: engagement_of(
                &claims,
                EngagementType::Open,
                classification(&method, &headers),
            ),
            metadata: command_meta(&claims, "tracking:open", &request).metadata(),
            key: None,
        };
        if !state.limits.tracking_allows(&token) {
            tracing::debug!(campaign = %claims.campaign_id, "open over the token's cap; not recorded");
        } else if let Err(error) = state.recorder.record(pending).await {
            // The image must still load; the open is lost and logged.
            tracing::error!(%error, campaign = %claims.campaign_id, "open not recorded");
        }
    }
    pixel()
}

#[utoipa::path(get, path = "/connect/automation/{id}/{step}/link/click/", tag = "tracking",
    summary = "A tracked link",
    params(("id" = String, Path, description = "The campaign's id"),
        ("step" = String, Path, description = "The run's or the drip step's id"), schemas::TrackingToken),
    responses((status = 302, description = "To the link the token carries", headers(("Location" = String)))))]
/// `GET|HEAD …/link/click/?t=` → a valid click token records a click and redirects (`302`) to
/// the link the token carries; anything else is `404`, never a redirect.
#[tracing::instrument(skip_all)]
async fn click(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    uri: Uri,
    request: RequestMeta,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response> {
    let no_link = || ApiError::not_found("no such link");
    let Verified { claims, token } =
        verified(&state, &path, &uri, TrackingKind::Click).ok_or_else(no_link)?;
    // The sender only wraps http(s) links; check again so a token can never send a browser to
    // another scheme.
    let target = claims
        .url
        .clone()
        .filter(|url| tracking::is_trackable(url))
        .ok_or_else(no_link)?;
    let location = HeaderValue::from_str(&target).map_err(|_| no_link())?;
    let mut engagement = engagement_of(
        &claims,
        EngagementType::Click,
        classification(&method, &headers),
    );
    engagement.link = Some(target);
    if is_test(&claims) {
        tracing::debug!(campaign = %claims.campaign_id, "click on a preview or test message; not recorded");
    } else if state.limits.tracking_allows(&token) {
        state
            .recorder
            .record(Pending {
                org_id: claims.org_id.clone(),
                engagement,
                metadata: command_meta(&claims, "tracking:click", &request).metadata(),
                key: None,
            })
            .await
            .map_err(unavailable)?;
    } else {
        tracing::debug!(campaign = %claims.campaign_id, "click over the token's cap; not recorded");
    }
    let mut response = StatusCode::FOUND.into_response();
    let out = response.headers_mut();
    out.insert(header::LOCATION, location);
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // The token stays out of the destination's logs.
    out.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    Ok(response)
}

/// A small page: no scripts, no external resources, not indexed, not cached.
fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex\"><title>{title}</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;line-height:1.5}}\
         button{{font-size:1rem;padding:.5rem 1rem}}</style></head>\
         <body><h1>{title}</h1>{body}</body></html>\n"
    );
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
            ),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        html,
    )
        .into_response()
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[utoipa::path(get, path = "/connect/automation/{id}/{step}/unsubscribe/", tag = "tracking",
    summary = "The unsubscribe confirmation page; changes nothing",
    params(("id" = String, Path, description = "The campaign's id"),
        ("step" = String, Path, description = "The run's or the drip step's id"), schemas::TrackingToken),
    responses((status = 200, description = "An HTML page whose button posts to the same URL", content_type = "text/html", body = String)))]
/// `GET …/unsubscribe/?t=` → a confirmation page whose button `POST`s to the same URL. Changes
/// nothing: link scanners fetch every URL of a message.
#[tracing::instrument(skip_all)]
async fn unsubscribe_page(
    State(state): State<AppState>,
    uri: Uri,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response> {
    let Verified { claims, token } = verified(&state, &path, &uri, TrackingKind::Unsubscribe)
        .ok_or_else(|| ApiError::not_found("no such unsubscribe link"))?;
    let channel = escape_html(claims.channel.id());
    let body = format!(
        "<p>Stop receiving {channel} messages from this sender?</p>\
         <form method=\"post\" action=\"?t={}\">\
         <input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">\
         <button type=\"submit\">Unsubscribe</button></form>",
        escape_html(&token)
    );
    Ok(page(StatusCode::OK, "Unsubscribe", &body))
}

/// What became of the contact an unsubscribe names.
enum ContactChange {
    /// Now (or already) unsubscribed from the channel.
    Unsubscribed,
    /// Deleted or never existed: nothing to change.
    Gone,
}

#[utoipa::path(post, path = "/connect/automation/{id}/{step}/unsubscribe/", tag = "tracking",
    summary = "Unsubscribe (RFC 8058 one-click; any body)",
    params(("id" = String, Path, description = "The campaign's id"),
        ("step" = String, Path, description = "The run's or the drip step's id"), schemas::TrackingToken),
    responses((status = 200, description = "An HTML page saying it is done", content_type = "text/html", body = String)))]
/// `POST …/unsubscribe/?t=` (RFC 8058 one-click; any body, no cookies, no JWT) → suppresses
/// the contact's address on the channel and records one `unsubscribe` engagement per
/// (campaign, run, contact, channel). Repeating it changes nothing and answers the same page.
#[tracing::instrument(skip_all)]
async fn unsubscribe(
    State(state): State<AppState>,
    uri: Uri,
    request: RequestMeta,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response> {
    // Not under the per-token cap: an unsubscribe is recorded once per contact and channel
    // anyway, and a recipient must always be able to leave.
    let Verified { claims, .. } = verified(&state, &path, &uri, TrackingKind::Unsubscribe)
        .ok_or_else(|| ApiError::not_found("no such unsubscribe link"))?;
    if is_test(&claims) {
        return Ok(page(
            StatusCode::OK,
            "This is a test message",
            "<p>This link unsubscribes the recipient of a real message. Nothing changed.</p>",
        ));
    }
    let meta = command_meta(&claims, UNSUBSCRIBE_ACTOR, &request);
    // The contact first: if recording the engagement then fails, a retry finds the contact
    // already unsubscribed and records it; the reverse order could leave a counted unsubscribe
    // for a contact who still gets messages.
    if let ContactChange::Unsubscribed = unsubscribe_contact(&state, &meta, &claims).await? {
        let key = format!(
            "unsubscribe:{}:{}:{}:{}",
            claims.campaign_id,
            claims.run_id,
            claims.contact_id,
            claims.channel.id()
        );
        state
            .recorder
            .record(Pending {
                org_id: claims.org_id.clone(),
                engagement: engagement_of(
                    &claims,
                    EngagementType::Unsubscribe,
                    Classification::Human,
                ),
                metadata: meta.metadata(),
                key: Some(key),
            })
            .await
            .map_err(unavailable)?;
    }
    Ok(page(
        StatusCode::OK,
        "You are unsubscribed",
        &format!(
            "<p>You will no longer receive {} messages from this sender.</p>",
            escape_html(claims.channel.id())
        ),
    ))
}

/// Puts the token's contact's address on the channel's suppression list (reason
/// `unsubscribe`); the contact's `unsubscribed` is derived from it.
async fn unsubscribe_contact(
    state: &AppState,
    meta: &CommandMeta,
    claims: &TrackingClaims,
) -> Result<ContactChange> {
    let Some(doc) = documents::get(
        &state.db,
        &claims.org_id,
        DocumentKind::Contact,
        &claims.contact_id,
    )
    .await?
    else {
        return Ok(ContactChange::Gone);
    };
    let Some(entry) = suppressions::contact_address(&doc, claims.channel)
        .and_then(|a| Suppress::new(claims.channel, &a, Reason::Unsubscribe, "one-click"))
    else {
        return Ok(ContactChange::Gone);
    };
    suppressions::add_now(&state.db, &[entry], &meta.metadata())
        .await
        .map_err(|error| {
            tracing::error!(%error, contact = %claims.contact_id, "unsubscribe not stored");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the unsubscribe could not be stored; retry shortly",
            )
        })?;
    Ok(ContactChange::Unsubscribed)
}
