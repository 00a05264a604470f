//! Vendor callbacks, `POST /connect/webhooks/{vendor}/{connectionId}` (public: the vendor's
//! signature, checked with the connection's secret, stands in for a token). Each event becomes
//! an `EngagementRecorded` event keyed `<vendor>:<vendor event id>` (docs/webhooks.md).

use std::collections::{BTreeSet, HashMap};

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use herald_domain::engagement::{Engagement, EngagementType};
use herald_domain::ids::is_valid_id;
use herald_domain::suppression::Reason;
use herald_projections::record::Metadata;
use serde_json::json;

use super::error::{ApiError, Result};
use super::extract::RequestMeta;
use super::routes::Routes;
use super::AppState;
use crate::engagements::{Pending, Recorded};
use crate::webhooks::{
    lookup, Incoming, Received, Target, Vendor, WebhookError, MAILGUN_MAX_SIGNATURE_AGE,
    MAX_CLOCK_SKEW,
};

pub fn router() -> Routes {
    Routes::new().post("/connect/webhooks/{vendor}/{connection_id}", receive)
}

impl From<WebhookError> for ApiError {
    fn from(error: WebhookError) -> Self {
        match error {
            WebhookError::Malformed(detail) => ApiError::bad_request(detail),
            WebhookError::BadSignature(detail) => ApiError::forbidden(detail),
        }
    }
}

#[utoipa::path(post, path = "/connect/webhooks/{vendor}/{connection_id}", tag = "tracking",
    summary = "A vendor's delivery and engagement callbacks (signed by the vendor)",
    params(("vendor" = String, Path, description = "The connection's vendor"),
        ("connection_id" = String, Path, description = "The connection's id")),
    request_body(content = serde_json::Value, description = "The vendor's own payload"),
    responses((status = 200, description = "What was recorded", body = super::schemas::WebhookResult)))]
/// Checks the signature against each connection the id names, records the events of the first
/// one it matches, and answers `{"recorded", "duplicates", "ignored"}`.
#[tracing::instrument(skip_all, fields(vendor, connection))]
async fn receive(
    State(state): State<AppState>,
    path: std::result::Result<Path<(String, String)>, PathRejection>,
    OriginalUri(uri): OriginalUri,
    request: RequestMeta,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Result<Response> {
    let Ok(Path((vendor, connection_id))) = path else {
        return Err(ApiError::not_found("no such webhook"));
    };
    tracing::Span::current()
        .record("vendor", vendor.as_str())
        .record("connection", connection_id.as_str());
    let vendor = Vendor::parse(&vendor).ok_or_else(|| ApiError::not_found("no such vendor"))?;
    if !is_valid_id(&connection_id) {
        return Err(ApiError::not_found("no such connection"));
    }
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(rejection.status(), "the request body is larger than 1 MiB")
        } else {
            ApiError::bad_request("the request body could not be read")
        }
    })?;
    // Twilio signs the URL it called: Herald's public base and the path and query as sent.
    let path_and_query = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let url = format!("{}{path_and_query}", state.public_url);
    let received = Received::read(
        vendor,
        Incoming {
            body: &body,
            headers: &headers,
            url: &url,
            query: uri.query(),
        },
    )?;
    let now = Utc::now();
    // An unknown connection id is answered like a signature that fits none of the
    // connections with that id, so the answer does not tell which ids exist in some org.
    let candidates = lookup::connections(&state.db, &state.sealer, vendor, &connection_id).await?;
    let org_id = signed_for(&received, &candidates, now).map_err(|error| {
        tracing::warn!(reason = %error, "webhook signature refused");
        ApiError::forbidden(NO_SIGNATURE_MATCH)
    })?;
    let replay_token = received.replay_token().map(str::to_owned);
    if let Some(token) = &replay_token {
        if lookup::token_used(&state.db, vendor, token).await? {
            tracing::warn!("webhook signature token reused; refused as a replay");
            // 406 is what tells Mailgun not to retry a post.
            return Err(ApiError::new(
                StatusCode::NOT_ACCEPTABLE,
                "this signature's token was already used: a replayed post is not recorded",
            ));
        }
    }
    let parsed = received.events()?;

    let meta = request.command_meta(&org_id, &format!("webhook:{}:{connection_id}", vendor.id()));
    let metadata: Metadata = meta.metadata();
    let mut ignored = parsed.ignored;
    let mut pending = Vec::new();
    let mut suppress = BTreeSet::new();
    // A batch often reports several events of one message: match each message once.
    let mut resolved: HashMap<Target, lookup::Resolution> = HashMap::new();
    for event in parsed.events {
        let resolution = match resolved.get(&event.target) {
            Some(resolution) => resolution.clone(),
            None => {
                let resolution = lookup::resolve(&state.db, &org_id, &event.target).await?;
                resolved.insert(event.target.clone(), resolution.clone());
                resolution
            }
        };
        // What puts the contact's address on the suppression list (a vendor's bounce event is
        // a hard bounce: soft ones are not reported as bounces by the parsers).
        let reason = match event.kind {
            EngagementType::Unsubscribe => Some(Reason::Unsubscribe),
            EngagementType::Bounce => Some(Reason::Bounce),
            EngagementType::Complaint => Some(Reason::Complaint),
            _ => None,
        };
        if let Some(reason) = reason {
            let channel = resolution
                .send
                .as_ref()
                .map(|s| s.channel)
                .unwrap_or(match vendor {
                    Vendor::Twilio => herald_domain::spec::Channel::Sms,
                    Vendor::SendGrid | Vendor::Mailgun => herald_domain::spec::Channel::Email,
                });
            for contact in &resolution.contacts {
                suppress.insert((contact.clone(), channel, reason));
            }
        }
        let Some(send) = resolution.send else {
            ignored += 1;
            continue;
        };
        let engagement = Engagement {
            campaign_id: send.campaign_id,
            run_id: Some(send.run_id),
            contact_id: Some(send.contact_id),
            channel: send.channel,
            kind: event.kind,
            classification: event.classification,
            // A vendor clock ahead of ours is not allowed to put an engagement in the future.
            occurred_at: event.occurred_at.map_or(now, |at| at.min(now)),
            external_id: Some(event.event_id.clone()),
            link: event.link,
            value: None,
            currency: None,
            count: None,
            source: vendor.id().to_string(),
            reason: event.reason,
        };
        pending.push(Pending {
            org_id: org_id.clone(),
            engagement,
            metadata: metadata.clone(),
            key: Some(format!("{}:{}", vendor.id(), event.event_id)),
        });
    }
    // Soft bounces are not engagements: counted per address, the third in 30 days suppresses.
    for soft in parsed.soft_bounces {
        ignored += 1;
        let resolution = match resolved.get(&soft.target) {
            Some(resolution) => resolution.clone(),
            None => lookup::resolve(&state.db, &org_id, &soft.target).await?,
        };
        let Some(send) = resolution.send else {
            continue;
        };
        let at = soft.occurred_at.map_or(now, |at| at.min(now));
        lookup::soft_bounce(&state.db, &meta, &send, at, vendor.id())
            .await
            .map_err(|error| {
                tracing::error!(%error, contact = %send.contact_id, "soft bounce not stored");
                unavailable()
            })?;
    }
    // Suppressions first: if recording then fails, the vendor's retry finds them listed
    // already and records the events; the reverse order could count an unsubscribe for a
    // contact who still gets messages.
    for (contact, channel, reason) in suppress {
        lookup::suppress(&state.db, &meta, &contact, channel, reason, vendor.id())
            .await
            .map_err(|error| {
                tracing::error!(%error, %contact, "webhook suppression not stored");
                unavailable()
            })?;
    }
    let answers = state.recorder.record_all(pending).await.map_err(|error| {
        tracing::error!(%error, "webhook events not stored");
        unavailable()
    })?;
    let recorded = answers
        .iter()
        .filter(|a| matches!(a, Recorded::Stored(_)))
        .count();
    let duplicates = answers.len() - recorded;
    if let Some(token) = &replay_token {
        let forget_before = now - MAILGUN_MAX_SIGNATURE_AGE - MAX_CLOCK_SKEW;
        lookup::remember_token(&state.db, vendor, token, now, forget_before)
            .await
            .map_err(|error| {
                tracing::error!(%error, "webhook signature token not stored");
                unavailable()
            })?;
    }
    tracing::info!(org = %org_id, recorded, duplicates, ignored, "webhook events");
    Ok((
        StatusCode::OK,
        Json(json!({"recorded": recorded, "duplicates": duplicates, "ignored": ignored})),
    )
        .into_response())
}

/// The org of the first connection whose secret verifies the request. With one candidate its
/// own refusal is told; with several, none of them is singled out.
fn signed_for(
    received: &Received,
    candidates: &[lookup::Candidate],
    now: chrono::DateTime<Utc>,
) -> std::result::Result<String, WebhookError> {
    let mut refusals = Vec::new();
    for candidate in candidates {
        match received.verify(&candidate.credentials, now) {
            Ok(()) => return Ok(candidate.org_id.clone()),
            Err(error) => refusals.push(error),
        }
    }
    match refusals.pop() {
        Some(only) if refusals.is_empty() => Err(only),
        Some(_) => Err(WebhookError::BadSignature(NO_SIGNATURE_MATCH.into())),
        None => Err(WebhookError::BadSignature(
            "no connection has this id".into(),
        )),
    }
}

/// The one answer to every refused signature, whether the connection id exists or not (the
/// reason is logged).
const NO_SIGNATURE_MATCH: &str = "the signature matches no connection with this id";

/// `503`: the vendor retries, and what was stored before the failure is not recorded twice.
fn unavailable() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "the events could not all be stored; retry later",
    )
}
