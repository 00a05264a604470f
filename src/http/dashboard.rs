//! Herald's own web dashboard (`api.md` section 14): one HTML page, one script and one style
//! sheet, embedded in the binary and served at `/` and `/assets/…`, plus the one-time sign-in
//! exchange `POST /dashboard/signin`. The page reads the JSON API like any other client; it has
//! no private endpoints (ADR 10, `docs/dashboard.md`).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::error::{ApiError, Result};
use super::extract::JsonBody;
use super::routes::Routes;
use super::AppState;
use crate::auth::{sign_hs256, Claims};

/// The page's policy: only this origin's script and styles, no inline script or style, no
/// plugins, no framing, no form posts elsewhere. SVG charts are built with DOM calls, so they
/// need nothing more.
pub const CSP: &str =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The embedded files: (name under `/assets/`, content type, bytes).
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../web/app.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../../web/app.css"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_bytes!("../../web/favicon.svg"),
    ),
];

const INDEX: &[u8] = include_bytes!("../../web/index.html");

/// How long a sign-in code printed at start-up can be redeemed.
pub const SIGNIN_CODE_TTL: Duration = Duration::from_secs(15 * 60);
/// How long the token a sign-in code buys lasts.
pub const SIGNIN_TOKEN_TTL: chrono::TimeDelta = chrono::TimeDelta::hours(8);
/// The actor recorded on what a signed-in dashboard user does.
pub const SIGNIN_ACTOR: &str = "dashboard";

/// The routes: `GET /`, `GET /assets/{file}` and `POST /dashboard/signin`. Mounted at the root
/// only (not under `/api`); every other path keeps its API meaning or the API's `404`.
/// Served at the root only. The page and its files are for browsers, not API clients, so the
/// OpenAPI document leaves them out; the sign-in is an API call and is described.
pub fn router() -> Routes {
    Routes::new()
        .undocumented(Method::GET, "/", index)
        .undocumented(Method::GET, "/assets/{file}", asset)
        .post("/dashboard/signin", signin)
}

/// Headers every dashboard file carries. The ETag is the content's SHA-256, so a browser
/// revalidates with `If-None-Match` and gets `304` until the binary changes.
fn serve(headers: &HeaderMap, content_type: &'static str, body: &'static [u8]) -> Response {
    let etag = format!("\"{}\"", &hex::encode(Sha256::digest(body))[..32]);
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim() == etag));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, content_type)], body).into_response()
    };
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(value) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, value);
    }
    response
}

async fn index(headers: HeaderMap) -> Response {
    serve(&headers, "text/html; charset=utf-8", INDEX)
}

async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Result<Response> {
    let (_, content_type, body) = ASSETS
        .iter()
        .find(|(name, _, _)| *name == file)
        .ok_or_else(|| ApiError::not_found("no such dashboard asset"))?;
    Ok(serve(&headers, content_type, body))
}

/// The one-time sign-in of a local start (`HERALD_SIGNIN_LINK`): at most one pending code, kept
/// only as its SHA-256, redeemable once before it expires, for an admin token of one org.
pub struct SignIn {
    /// The HS256 secret tokens are signed with; `None` when sign-in links are off.
    secret: Option<String>,
    org: String,
    /// `HERALD_JWT_ISSUER` / `HERALD_JWT_AUDIENCE`, which the verifier then requires.
    issuer: Option<String>,
    audience: Option<String>,
    pending: Mutex<Option<Pending>>,
}

struct Pending {
    hash: [u8; 32],
    expires: Instant,
}

impl std::fmt::Debug for SignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SignIn {{ enabled: {}, org: {} }}",
            self.secret.is_some(),
            self.org
        )
    }
}

impl SignIn {
    /// Sign-in links off: every code is refused.
    pub fn off() -> SignIn {
        SignIn {
            secret: None,
            org: String::new(),
            issuer: None,
            audience: None,
            pending: Mutex::new(None),
        }
    }

    /// Sign-in links on, signing admin tokens for `org` with `secret` (and the `iss` and `aud`
    /// the verifier requires, when configured).
    pub fn new(
        secret: String,
        org: String,
        issuer: Option<String>,
        audience: Option<String>,
    ) -> SignIn {
        SignIn {
            secret: Some(secret),
            org,
            issuer,
            audience,
            pending: Mutex::new(None),
        }
    }

    pub fn enabled(&self) -> bool {
        self.secret.is_some()
    }

    /// The org a redeemed code signs in to.
    pub fn org(&self) -> &str {
        &self.org
    }

    /// A fresh code (32 random bytes, base64url), replacing any pending one. `None` when off.
    pub fn issue(&self) -> Option<String> {
        self.secret.as_ref()?;
        let mut bytes = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
        let code = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        *self.pending.lock().expect("sign-in code") = Some(Pending {
            hash: Sha256::digest(code.as_bytes()).into(),
            expires: Instant::now() + SIGNIN_CODE_TTL,
        });
        Some(code)
    }

    /// Takes the pending code if `code` is it and it has not expired. A wrong code leaves a
    /// pending one in place (it is 256 random bits; guessing is hopeless).
    fn redeem(&self, code: &str) -> bool {
        let hash: [u8; 32] = Sha256::digest(code.as_bytes()).into();
        let mut pending = self.pending.lock().expect("sign-in code");
        let Some(current) = pending.as_ref() else {
            return false;
        };
        if current.expires <= Instant::now() {
            *pending = None;
            return false;
        }
        // Compared as hashes of the inputs: no timing tells a caller how much of a code matched.
        if current.hash != hash {
            return false;
        }
        *pending = None;
        true
    }
}

/// `POST /dashboard/signin` `{"code"}` → `{"token", "orgId", "expiresAt"}`: an admin token for
/// the configured org. A wrong, used or expired code (or sign-in links off) is `401`.
#[utoipa::path(post, operation_id = "dashboard_signin", path = "/dashboard/signin", tag = "operations",
    summary = "Trade the dashboard's one-time sign-in code for an admin token (8 h)",
    request_body(content = super::schemas::SignInRequest, content_type = "application/json"),
    responses((status = 200, description = "The token", body = super::schemas::SignInToken),
        (status = 401, description = "A wrong, used or expired code, or sign-in links off",
            body = super::schemas::Problem, content_type = "application/problem+json")))]
async fn signin(State(state): State<AppState>, body: JsonBody) -> Result<Response> {
    let code = match body.value.get("code") {
        Some(serde_json::Value::String(code)) if !code.is_empty() && code.len() <= 256 => code,
        Some(serde_json::Value::String(_)) => {
            return Err(ApiError::field("code", "must be a sign-in code"))
        }
        Some(_) => return Err(ApiError::field("code", "must be a string")),
        None => return Err(ApiError::field("code", "is required")),
    };
    let signin = &state.signin;
    let Some(secret) = signin.secret.as_deref() else {
        return Err(ApiError::unauthorized(
            "sign-in links are off on this server; paste a token instead",
        ));
    };
    if !signin.redeem(code) {
        return Err(ApiError::unauthorized(
            "this sign-in code is not valid: it is wrong, was used already, or has expired",
        ));
    }
    let expires = chrono::Utc::now() + SIGNIN_TOKEN_TTL;
    let claims = Claims {
        sub: SIGNIN_ACTOR.to_string(),
        exp: expires.timestamp(),
        orgs: vec![signin.org.clone()],
        roles: vec!["admin".to_string()],
        iss: signin.issuer.clone(),
        aud: signin.audience.clone().map(serde_json::Value::String),
    };
    let token = sign_hs256(secret, &claims)?;
    tracing::info!(org = %signin.org, "dashboard sign-in code redeemed");
    let mut response = axum::Json(json!({
        "token": token,
        "orgId": signin.org,
        "expiresAt": expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    }))
    .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_works_once_and_a_wrong_one_never() {
        let signin = SignIn::new("s".repeat(32), "demo".into(), None, None);
        let code = signin.issue().unwrap();
        assert!(!signin.redeem("wrong"));
        assert!(signin.redeem(&code));
        assert!(!signin.redeem(&code));
        assert!(SignIn::off().issue().is_none());
        assert!(!SignIn::off().redeem(""));
    }

    #[test]
    fn an_expired_code_is_refused() {
        let signin = SignIn::new("s".repeat(32), "demo".into(), None, None);
        let code = signin.issue().unwrap();
        signin.pending.lock().unwrap().as_mut().unwrap().expires = Instant::now();
        assert!(!signin.redeem(&code));
    }
}
