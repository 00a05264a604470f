//! The HTTP API: one router per resource module, merged here and mounted at `/` and `/api`.

pub mod analytics;
pub mod campaigns;
pub mod dashboard;
pub mod discovery;
pub mod engagements;
pub mod erasure;
pub mod error;
pub mod events;
pub mod extract;
pub mod health;
pub mod idempotency;
pub mod openapi;
pub mod preview;
pub mod purge;
pub mod resources;
pub mod routes;
pub mod sandbox;
pub mod schemas;
pub mod settings;
pub mod shortlinks;
pub mod suppressions;
pub mod tracking;
pub mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, MatchedPath};
use axum::http::{HeaderName, Request, StatusCode};
use axum::middleware::Next;
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::auth::Verifier;
use crate::db::Db;
use crate::projector::Wakeup;
use error::ApiError;
use routes::{Route, Routes};

/// Largest request body outside the import endpoints.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// What every handler can reach, behind one `Arc`: axum clones the state for each request,
/// and a clone of seventeen handles was 1.7 % of the server's time under an open burst (issue 19).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> AppState {
        AppState(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The handles [`AppState`] shares.
pub struct Shared {
    pub db: Db,
    pub verifier: Arc<Verifier>,
    pub wakeup: Wakeup,
    pub started: Arc<chrono::DateTime<chrono::Utc>>,
    pub workers: bool,
    pub metrics_token: Option<Arc<String>>,
    pub sealer: Arc<crate::secrets::Sealer>,
    /// Org assets (connections, templates, audiences) for computing blockers on reads.
    pub assets: Arc<crate::campaigns::AssetsCache>,
    /// Base of links the server hands out (tracking, unsubscribe).
    pub public_url: Arc<str>,
    /// `HERALD_TRACKING_SECRET`: verifies tracking tokens.
    pub tracking_key: Arc<[u8]>,
    /// Group committer of `EngagementRecorded` events.
    pub recorder: crate::engagements::Recorder,
    /// The analytics endpoints' caches (`analytics::AnalyticsCaches`).
    pub analytics: Arc<analytics::AnalyticsCaches>,
    /// The per-org request limit and the per-token tracking cap.
    pub limits: Arc<crate::limits::Limits>,
    /// Renders previews and sends test messages (`POST …/preview`, `…/test-send`).
    pub sender: Arc<crate::sending::run::Sender>,
    /// Set from the stop signal on: `/readyz` answers `503` while requests in flight finish.
    pub stopping: Arc<std::sync::atomic::AtomicBool>,
    /// The dashboard's one-time sign-in code (`POST /dashboard/signin`).
    pub signin: Arc<dashboard::SignIn>,
    /// `/metrics`' database series, read at most once a second however often it is scraped.
    pub metrics_cache: Arc<health::MetricsCache>,
}

/// Every route: the API at `/` and again under `/api`, and the probes at the root only. A new
/// route is registered through its module's `Routes` (documented with `#[utoipa::path]` and
/// listed in `openapi::ApiDoc`, or registered as `undocumented` with a reason); the OpenAPI test
/// fails on any route the document does not list, and on any documented route the server does
/// not answer.
pub fn routes() -> Routes {
    let api = Routes::new()
        .merge(analytics::router())
        .merge(campaigns::router())
        .merge(events::router())
        .merge(discovery::router())
        .merge(health::router())
        .merge(openapi::router())
        .merge(resources::router())
        .merge(sandbox::router())
        .merge(settings::router())
        .merge(preview::router())
        .merge(purge::router())
        .merge(erasure::router())
        .merge(shortlinks::router())
        .merge(suppressions::router())
        .merge(webhooks::router())
        .merge(tracking::router())
        .merge(engagements::router());
    Routes::new()
        .merge(api.clone())
        .nest(openapi::API_PREFIX, api)
        .merge(health::root())
        .merge(dashboard::router())
}

/// Each (method, path) the server answers, sorted (`api` paths once at `/` and once under
/// `/api`).
pub fn route_table() -> Vec<Route> {
    routes().table()
}

/// The whole application router.
pub fn router(state: AppState) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    routes()
        .into_router()
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(refuse_nul))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::internal("a handler panicked").into_response_static()
        }))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request<_>| {
                    tracing::info_span!(
                        "http",
                        method = %request.method(),
                        route = route_of(request),
                        request_id = request_id_of(request)
                    )
                })
                // The request line below says it once, at `info`.
                .on_request(())
                .on_response(()),
        )
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(60),
        ))
        // Outside the timeout, so a request that timed out is logged with its `408` too.
        .layer(axum::middleware::from_fn(log_request))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(state)
}

/// The route template a request matched (`/crm/marketing/campaigns/{id}`), never its path or
/// query: paths carry ids and short-link codes, queries carry tracking tokens. `-` when no
/// route matched.
fn route_of<B>(request: &Request<B>) -> &str {
    request
        .extensions()
        .get::<MatchedPath>()
        .map_or("-", MatchedPath::as_str)
}

fn request_id_of<B>(request: &Request<B>) -> &str {
    request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// A NUL byte (`%00`) in the path or query string is `400`: no id, token or filter holds one, and
/// PostgreSQL cannot take one in a text value (schemathesis found `?type=%00` answering `500`).
async fn refuse_nul(request: Request<Body>, next: Next) -> axum::response::Response {
    let uri = request.uri();
    let raw = uri.path_and_query().map_or("", |p| p.as_str());
    let has_nul = raw
        .as_bytes()
        .windows(3)
        .any(|w| w[0] == b'%' && w[1] == b'0' && w[2] == b'0');
    if has_nul {
        return ApiError::bad_request("the path or query string holds a NUL byte (%00)")
            .into_response_static();
    }
    next.run(request).await
}

/// One `info` line per request: method, route template, status, latency and request id. No
/// query string and no header but the request id (an `Authorization` header is a credential).
async fn log_request(request: Request<Body>, next: Next) -> axum::response::Response {
    let started = std::time::Instant::now();
    let method = request.method().clone();
    let route = route_of(&request).to_string();
    let request_id = request_id_of(&request).to_string();
    let response = next.run(request).await;
    tracing::info!(
        method = %method,
        route,
        status = response.status().as_u16(),
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
        request_id,
        "request"
    );
    response
}

impl ApiError {
    fn into_response_static(self) -> axum::response::Response {
        axum::response::IntoResponse::into_response(self)
    }
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "this method is not allowed on this route",
    )
}
