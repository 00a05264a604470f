//! The org's marketing settings (`api.md` section 12): `GET/PUT /crm/marketing/settings`;
//! `PUT` needs the admin role and replaces them whole.

use axum::extract::State;
use axum::Json;
use herald_domain::settings::{parse_settings, OrgSettings};

use super::error::{ApiError, Result};
use super::extract::{Auth, JsonBody, RequestMeta};
use super::routes::Routes;
use super::schemas;
use super::AppState;
use crate::settings;

pub fn router() -> Routes {
    Routes::new()
        .get("/crm/marketing/settings", show)
        .put("/crm/marketing/settings", replace)
}

#[utoipa::path(get, operation_id = "get_settings", path = "/crm/marketing/settings", tag = "settings",
    summary = "The org's marketing settings",
    responses((status = 200, description = "The settings", body = schemas::Settings)))]
async fn show(State(state): State<AppState>, auth: Auth) -> Result<Json<OrgSettings>> {
    Ok(Json(settings::get(&state.db, &auth.0.org_id).await?))
}

#[utoipa::path(put, operation_id = "replace_settings", path = "/crm/marketing/settings", tag = "settings",
    summary = "Replace the org's marketing settings (admin)",
    request_body(content = schemas::Settings, content_type = "application/json"),
    responses((status = 200, description = "The settings", body = schemas::Settings)))]
#[tracing::instrument(skip_all, fields(org = %auth.0.org_id))]
async fn replace(
    State(state): State<AppState>,
    auth: Auth,
    request: RequestMeta,
    body: JsonBody,
) -> Result<Json<OrgSettings>> {
    if !auth.0.is_admin() {
        return Err(ApiError::forbidden(
            "changing settings needs the admin role",
        ));
    }
    let wanted = parse_settings(&body.value).map_err(ApiError::unprocessable)?;
    settings::put(&state.db, &wanted, &request.of(&auth.0).metadata()).await?;
    Ok(Json(wanted))
}
