//! Discovery: platforms, campaign types and social profiles (`api.md` section 3).

use axum::extract::Path;
use axum::routing::get;
use axum::{Json, Router};
use herald_domain::spec::{CampaignType, Channel};
use serde_json::{json, Value};

use super::error::{ApiError, Result};
use super::extract::Auth;
use super::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/crm/marketing/platforms", get(platforms))
        .route("/crm/marketing/campaign-types", get(campaign_types))
        .route("/crm/marketing/social-profiles", get(all_social_profiles))
        .route(
            "/crm/marketing/social-profiles/{platform}",
            get(social_profiles),
        )
}

/// Vendors each platform can send through.
pub fn vendors(channel: Channel) -> &'static [&'static str] {
    match channel {
        Channel::Email => &["sendgrid", "mailgun", "smtp", "sandbox"],
        Channel::Sms => &["twilio", "sandbox"],
        Channel::Facebook | Channel::Instagram => &["meta-graph", "sandbox"],
        Channel::Linkedin => &["linkedin", "sandbox"],
        Channel::X => &["x", "sandbox"],
        Channel::GoogleAds => &["google-ads", "sandbox"],
        Channel::MetaAds => &["meta-ads", "sandbox"],
    }
}

// TODO(integrations issue): `connected` and `connections` come from the org's connections,
// which do not exist yet; until then no platform is connected.
async fn platforms(_auth: Auth) -> Json<Value> {
    let list: Vec<Value> = Channel::all()
        .iter()
        .map(|c| {
            json!({
                "id": c.id(),
                "name": c.name(),
                "category": c.category(),
                "vendors": vendors(*c),
                "connected": false,
                "connections": [],
            })
        })
        .collect();
    Json(Value::Array(list))
}

async fn campaign_types(_auth: Auth) -> Json<Value> {
    let list: Vec<Value> = CampaignType::all()
        .iter()
        .map(|t| json!({ "id": t.id(), "name": t.name(), "description": t.description() }))
        .collect();
    Json(Value::Array(list))
}

async fn all_social_profiles(_auth: Auth) -> Json<Value> {
    Json(json!([]))
}

async fn social_profiles(_auth: Auth, Path(platform): Path<String>) -> Result<Json<Value>> {
    if !Channel::all().iter().any(|c| c.id() == platform) {
        return Err(ApiError::not_found(format!("unknown platform {platform}")));
    }
    Ok(Json(json!([])))
}
