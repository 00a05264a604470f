//! Discovery: platforms, campaign types and social profiles (`api.md` section 3).

use axum::extract::{Path, State};
use axum::Json;
use herald_domain::connection::vendors;
use herald_domain::spec::{CampaignType, Category, Channel};
use serde_json::{json, Value};

use super::error::{ApiError, Result};
use super::extract::Auth;
use super::routes::Routes;
use super::schemas;
use super::{resources, AppState};

pub fn router() -> Routes {
    Routes::new()
        .get("/crm/marketing/platforms", platforms)
        .get("/crm/marketing/campaign-types", campaign_types)
        .get("/crm/marketing/social-profiles", all_social_profiles)
        .get("/crm/marketing/social-profiles/{platform}", social_profiles)
}

#[utoipa::path(get, path = "/crm/marketing/platforms", tag = "discovery",
    summary = "Platforms (channels) and this org's connections for each",
    responses((status = 200, description = "Every platform", body = Vec<schemas::PlatformInfo>)))]
async fn platforms(State(state): State<AppState>, auth: Auth) -> Result<Json<Value>> {
    let connections = resources::connections_by_platform(&state, &auth.0.org_id).await?;
    let list: Vec<Value> = Channel::all()
        .iter()
        .map(|c| {
            let mine: Vec<Value> = connections
                .iter()
                .filter(|conn| conn["platform"] == c.id())
                .map(|conn| json!({ "id": conn["id"], "vendor": conn["vendor"], "label": conn["label"] }))
                .collect();
            json!({
                "id": c.id(),
                "name": c.name(),
                "category": c.category(),
                "vendors": vendors(*c).iter().map(|v| v.id()).collect::<Vec<_>>(),
                "connected": !mine.is_empty(),
                "connections": mine,
            })
        })
        .collect();
    Ok(Json(Value::Array(list)))
}

/// The social accounts of the org's connections, optionally of one platform.
async fn profiles(state: &AppState, org_id: &str, platform: Option<Channel>) -> Result<Value> {
    let connections = resources::connections_by_platform(state, org_id).await?;
    let mut out = Vec::new();
    for conn in &connections {
        let conn_platform = conn["platform"].as_str().unwrap_or_default();
        let social = Channel::parse(conn_platform).is_some_and(|c| c.kind() == Category::Social);
        if !social || platform.is_some_and(|p| p.id() != conn_platform) {
            continue;
        }
        for profile in conn["profiles"].as_array().into_iter().flatten() {
            out.push(json!({
                "id": profile["id"],
                "platform": conn_platform,
                "name": profile["name"],
                "handle": profile["handle"],
                "connectionId": conn["id"],
            }));
        }
    }
    Ok(Value::Array(out))
}

#[utoipa::path(get, path = "/crm/marketing/campaign-types", tag = "discovery",
    summary = "Campaign types",
    responses((status = 200, description = "Every campaign type", body = Vec<schemas::CampaignTypeInfo>)))]
async fn campaign_types(_auth: Auth) -> Json<Value> {
    let list: Vec<Value> = CampaignType::all()
        .iter()
        .map(|t| json!({ "id": t.id(), "name": t.name(), "description": t.description() }))
        .collect();
    Json(Value::Array(list))
}

#[utoipa::path(get, path = "/crm/marketing/social-profiles", tag = "discovery",
    summary = "Social profiles of every platform",
    responses((status = 200, description = "Profiles", body = Vec<schemas::SocialProfile>)))]
async fn all_social_profiles(State(state): State<AppState>, auth: Auth) -> Result<Json<Value>> {
    Ok(Json(profiles(&state, &auth.0.org_id, None).await?))
}

#[utoipa::path(get, path = "/crm/marketing/social-profiles/{platform}", tag = "discovery",
    summary = "Social profiles of one platform",
    params(("platform" = String, Path, description = "A platform id")),
    responses((status = 200, description = "Profiles", body = Vec<schemas::SocialProfile>)))]
async fn social_profiles(
    State(state): State<AppState>,
    auth: Auth,
    Path(platform): Path<String>,
) -> Result<Json<Value>> {
    let channel = Channel::parse(&platform)
        .ok_or_else(|| ApiError::not_found(format!("unknown platform {platform}")))?;
    Ok(Json(profiles(&state, &auth.0.org_id, Some(channel)).await?))
}
