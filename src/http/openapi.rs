//! The OpenAPI 3.1 document, `GET /openapi.json` (and `/api/openapi.json`), no token needed
//! (`api.md` section 13). `utoipa` builds it from the `#[utoipa::path]` of every handler and the
//! `ToSchema` types they name; [`document`] then adds what holds for whole groups of routes:
//! the bearer + `orgid` security of `/crm`, the problem responses, and where each path is
//! mounted (`/` and `/api`, or `/` only), read from the router's own route table. The drift
//! test (`tests/api/openapi.rs`) proves that the document and [`super::route_table`] list the
//! same (method, path) pairs.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};
use utoipa::OpenApi;

use super::routes::Routes;
use super::{
    analytics, campaigns, dashboard, discovery, engagements, erasure, events, health, preview,
    purge, resources, sandbox, schemas, settings, shortlinks, suppressions, tracking, webhooks,
};

/// The prefix the API is also mounted under (`api.md` section 0).
pub const API_PREFIX: &str = "/api";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Herald",
        description = "Marketing campaigns over email, SMS, push and social channels: \
            campaigns and their lifecycle, contacts, audiences, templates, connections, \
            sending, engagement tracking and analytics. Every `/crm` route needs a bearer JWT \
            and an `orgid` header; errors are RFC 9457 problem details."
    ),
    paths(
        openapi_json,
        analytics::campaign_analytics,
        analytics::aggregated_metrics,
        analytics::dashboard,
        analytics::contact_activities,
        campaigns::list,
        campaigns::create,
        campaigns::fetch,
        campaigns::replace,
        campaigns::remove,
        campaigns::action,
        campaigns::enrollments,
        dashboard::signin,
        discovery::platforms,
        discovery::campaign_types,
        discovery::all_social_profiles,
        discovery::social_profiles,
        engagements::record,
        erasure::start,
        erasure::show,
        events::campaign_events,
        events::org_events,
        health::healthz,
        health::readyz,
        health::metrics,
        health::marketing_health,
        preview::preview,
        preview::test_send,
        purge::start,
        purge::show,
        resources::list_contacts,
        resources::create_contact,
        resources::get_contact,
        resources::replace_contact,
        resources::delete_contact,
        resources::import_contacts,
        resources::list_audiences,
        resources::create_audience,
        resources::get_audience,
        resources::replace_audience,
        resources::delete_audience,
        resources::preview,
        resources::reach,
        resources::list_templates,
        resources::create_template,
        resources::get_template,
        resources::replace_template,
        resources::delete_template,
        resources::render_template,
        resources::list_connections,
        resources::create_connection,
        resources::get_connection,
        resources::delete_connection,
        sandbox::list,
        settings::show,
        settings::replace,
        shortlinks::follow,
        suppressions::index,
        suppressions::create,
        suppressions::remove,
        tracking::open,
        tracking::click,
        tracking::unsubscribe_page,
        tracking::unsubscribe,
        webhooks::receive,
    ),
    components(schemas(schemas::Problem, schemas::ProblemField, schemas::CampaignAction)),
    tags(
        (name = "campaigns", description = "Campaigns and their lifecycle (`api.md` section 2)"),
        (name = "discovery", description = "Platforms, campaign types, social profiles (section 3)"),
        (name = "integrations", description = "Connections and the sandbox outbox (section 4)"),
        (name = "contacts", description = "Contacts and imports (section 5)"),
        (name = "audiences", description = "Audiences: saved contact filters (section 5)"),
        (name = "templates", description = "Message templates (section 5)"),
        (name = "engagements", description = "Engagements the client reports (section 6)"),
        (name = "tracking", description = "Public links: opens, clicks, unsubscribes, short links, vendor webhooks (section 6)"),
        (name = "analytics", description = "Metrics (section 7)"),
        (name = "events", description = "The event log and audit trail (section 8)"),
        (name = "operations", description = "Health, metrics, purge, this document (sections 8 and 13)"),
        (name = "settings", description = "Org settings (section 12)"),
        (name = "consent", description = "The suppression list (section 12)"),
    )
)]
struct ApiDoc;

/// This document's own route, served at `/` and `/api` like the rest of the API.
pub fn router() -> Routes {
    Routes::new().get("/openapi.json", openapi_json)
}

/// The OpenAPI 3.1 document of every route.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    summary = "This document (OpenAPI 3.1)",
    responses((status = 200, description = "The OpenAPI document", body = serde_json::Value)))]
async fn openapi_json() -> Response {
    static BODY: LazyLock<Vec<u8>> =
        LazyLock::new(|| serde_json::to_vec(document()).unwrap_or_default());
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        BODY.as_slice(),
    )
        .into_response()
}

/// The whole document, built once.
pub fn document() -> &'static Value {
    static DOCUMENT: LazyLock<Value> = LazyLock::new(build);
    &DOCUMENT
}

fn build() -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_else(|_| json!({}));
    let table = super::route_table();
    let under_api: BTreeSet<&str> = table
        .iter()
        .filter_map(|route| route.path.strip_prefix(API_PREFIX))
        .collect();
    doc["servers"] = json!([
        {"url": "/", "description": "The API at the root"},
        {"url": API_PREFIX, "description": "The same API under /api (the seed's fetch example)"},
    ]);
    let components = doc["components"].as_object_mut().map(std::mem::take);
    let mut components = components.unwrap_or_default();
    add_components(&mut components);
    doc["components"] = Value::Object(components);
    if let Some(paths) = doc["paths"].as_object_mut() {
        for (path, item) in paths.iter_mut() {
            if !under_api.contains(path.as_str()) {
                // Liveness, readiness and metrics: where probes and scrapers look, only.
                item["servers"] = json!([{"url": "/", "description": "The root only"}]);
            }
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            for (method, operation) in item.iter_mut() {
                if !matches!(method.as_str(), "get" | "put" | "post" | "delete" | "patch") {
                    continue;
                }
                decorate(path, method, operation);
            }
        }
    }
    doc
}

/// The security schemes and the problem response every operation refers to.
fn add_components(components: &mut Map<String, Value>) {
    components.insert(
        "securitySchemes".into(),
        json!({
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "JWT",
                "description": "A JWT (HS256, or RS256/ES256 with a configured public key) with \
                    `sub`, `orgs`, `roles` and `exp` (`api.md` section 1)."
            },
            "orgid": {
                "type": "apiKey",
                "in": "header",
                "name": "orgid",
                "description": "The org the request acts for; one of the token's `orgs`."
            },
            "metrics": {
                "type": "http",
                "scheme": "bearer",
                "description": "`HERALD_METRICS_TOKEN`, when the operator set one."
            }
        }),
    );
    let responses = components.entry("responses").or_insert_with(|| json!({}));
    responses["Problem"] = json!({
        "description": "An RFC 9457 problem",
        "content": {
            "application/problem+json": {
                "schema": {"$ref": "#/components/schemas/Problem"}
            }
        }
    });
}

/// What holds for an operation by where it lives: `/crm` needs the bearer token and `orgid`,
/// and every operation answers problems.
fn decorate(path: &str, method: &str, operation: &mut Value) {
    let crm = path.starts_with("/crm/");
    if crm {
        operation["security"] = json!([{"bearer": [], "orgid": []}]);
    }
    let write = matches!(method, "post" | "put" | "delete" | "patch");
    let mut codes: Vec<(&str, &str)> = Vec::new();
    if crm {
        codes.extend([
            (
                "400",
                "Malformed JSON, header or query parameter, or no `orgid`",
            ),
            ("401", "No token, or not a valid one"),
            (
                "403",
                "The token may not act for this org, or lacks the role",
            ),
            ("404", "No such resource in this org"),
            (
                "429",
                "The org's request rate is over its limit (`Retry-After`)",
            ),
        ]);
        if write {
            codes.extend([
                (
                    "409",
                    "Not allowed in the resource's state, or a duplicate id",
                ),
                ("412", "`If-Match` does not match the current `ETag`"),
                ("413", "The body is over its limit"),
                ("415", "The body is not JSON"),
                ("422", "Well-formed but invalid; `errors` lists each field"),
            ]);
        }
    } else if path.starts_with("/connect/") {
        codes.extend([
            ("400", "A malformed request"),
            ("404", "No such link, or a token that does not verify"),
        ]);
    }
    let Some(responses) = operation["responses"].as_object_mut() else {
        return;
    };
    for (code, description) in codes {
        responses.entry(code).or_insert_with(|| {
            json!({
                "description": description,
                "content": {
                    "application/problem+json": {
                        "schema": {"$ref": "#/components/schemas/Problem"}
                    }
                }
            })
        });
    }
    responses
        .entry("default")
        .or_insert_with(|| json!({"$ref": "#/components/responses/Problem"}));
}
