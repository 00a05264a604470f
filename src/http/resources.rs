//! Contacts, audiences, templates and connections (`api.md` sections 4 and 5): the document
//! resources, with their kind-specific routes (import, reach, preview, render).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Json;
use herald_domain::audience::parse_audience;
use herald_domain::connection::parse_connection;
use herald_domain::contact::parse_contact;
use herald_domain::document::{DocumentCommand, DocumentError, DocumentKind};
use herald_domain::error::FieldError;
use herald_domain::query::{parse_filter, Filter};
use herald_domain::template::{parse_template, render, RenderContext, TemplateContent};
use serde_json::{json, Value};

use super::error::{ApiError, Result};
use super::extract::{
    decode_cursor, encode_cursor, holds_nul, if_match, Auth, JsonBody, Params, RequestMeta,
};
use super::routes::Routes;
use super::{idempotency, schemas, AppState};
use crate::documents::{self, BulkRow, DocError, Extras};
use crate::secrets::Sealed;
use crate::suppressions::{self, Suppress};

/// Largest import body.
pub const IMPORT_LIMIT: usize = 32 * 1024 * 1024;
/// Most rows one import may carry.
pub const IMPORT_ROWS: usize = 100_000;

pub fn router() -> Routes {
    Routes::new()
        .get("/crm/contacts", list_contacts)
        .post("/crm/contacts", create_contact)
        .get("/crm/contacts/{id}", get_contact)
        .put("/crm/contacts/{id}", replace_contact)
        .delete("/crm/contacts/{id}", delete_contact)
        .layered(
            Method::POST,
            "/crm/contacts/import",
            post(import_contacts).layer(axum::extract::DefaultBodyLimit::max(IMPORT_LIMIT)),
        )
        .get("/crm/audiences", list_audiences)
        .post("/crm/audiences", create_audience)
        .get("/crm/audiences/{id}", get_audience)
        .put("/crm/audiences/{id}", replace_audience)
        .delete("/crm/audiences/{id}", delete_audience)
        .post("/crm/audiences/preview", preview)
        .get("/crm/audiences/{id}/reach", reach)
        .get("/crm/marketing/templates", list_templates)
        .post("/crm/marketing/templates", create_template)
        .get("/crm/marketing/templates/{id}", get_template)
        .put("/crm/marketing/templates/{id}", replace_template)
        .delete("/crm/marketing/templates/{id}", delete_template)
        .post("/crm/marketing/templates/{id}/render", render_template)
        .get("/crm/integrations/connections", list_connections)
        .post("/crm/integrations/connections", create_connection)
        .get("/crm/integrations/connections/{id}", get_connection)
        .delete("/crm/integrations/connections/{id}", delete_connection)
}

/// The routes of each kind: thin handlers that name their kind, each described for the
/// OpenAPI document.
#[utoipa::path(get, path = "/crm/contacts", tag = "contacts", summary = "List contacts",
    params(schemas::Page),
    responses((status = 200, description = "A page of contacts", body = schemas::ContactList)))]
async fn list_contacts(state: State<AppState>, auth: Auth, params: Params) -> Result<Response> {
    list(DocumentKind::Contact, state, auth, params).await
}

#[utoipa::path(post, path = "/crm/contacts", tag = "contacts", summary = "Create a contact",
    params(("Idempotency-Key" = Option<String>, Header, description = "Repeats with the same key and body within 24 h answer the first response")),
    request_body(content = schemas::ContactInput, content_type = "application/json"),
    responses((status = 201, description = "Created", body = schemas::Contact, headers(("ETag" = String), ("Location" = String)))))]
async fn create_contact(
    state: State<AppState>,
    auth: Auth,
    request: RequestMeta,
    headers: HeaderMap,
    body: JsonBody,
) -> Result<Response> {
    create(DocumentKind::Contact, state, auth, request, headers, body).await
}

#[utoipa::path(get, path = "/crm/contacts/{id}", tag = "contacts", summary = "A contact",
    params(("id" = String, Path, description = "The contact's id")),
    responses((status = 200, description = "The contact", body = schemas::Contact, headers(("ETag" = String)))))]
async fn get_contact(
    state: State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Response> {
    fetch(DocumentKind::Contact, state, auth, id).await
}

#[utoipa::path(put, path = "/crm/contacts/{id}", tag = "contacts", summary = "Replace a contact",
    params(("id" = String, Path, description = "The contact's id"), ("If-Match" = Option<String>, Header, description = "The ETag the change is based on")),
    request_body(content = schemas::ContactInput, content_type = "application/json"),
    responses((status = 200, description = "The changed contact", body = schemas::Contact, headers(("ETag" = String)))))]
async fn replace_contact(
    state: State<AppState>,
    auth: Auth,
    request: RequestMeta,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: JsonBody,
) -> Result<Response> {
    replace(
        DocumentKind::Contact,
        state,
        auth,
        request,
        id,
        headers,
        body,
    )
    .await
}

#[utoipa::path(delete, path = "/crm/contacts/{id}", tag = "contacts", summary = "Delete a contact",
    params(("id" = String, Path, description = "The contact's id"), ("If-Match" = Option<String>, Header, description = "The ETag the change is based on")),
    responses((status = 204, description = "Deleted")))]
async fn delete_contact(
    state: State<AppState>,
    auth: Auth,
    request: RequestMeta,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    remove(DocumentKind::Contact, state, auth, request, id, headers).await
}

#[utoipa::path(get, path = "/crm/audiences", tag = "audiences", summary = "List audiences",
    params(schemas::Page),
    responses((status = 200, description = "A page of audiences", body = schemas::AudienceList)))]
async fn list_audiences(state: State<AppState>, auth: Auth, params: Params) -> Result<Response> {
    list(DocumentKind::Audience, state, auth, params).await
}

#[utoipa::path(post, path = "/crm/audiences", tag = "audiences", summary = "Create an audience",
    params(("Idempotency-Key" = Option<String>, Header, description = "Repeats with the same key and body within 24 h answer the first response")),
    request_body(content = schemas::AudienceInput, content_type = "application/json"),
    responses((status = 201, description = "Created", body = schemas::Audience, headers(("ETag" = String), ("Location" = String)))))]
async fn create_audience(
    state: State<AppState>,
    auth: Auth,
    request: RequestMeta,
    headers: HeaderMap,
    body: JsonBody,
) -> Result<Response> {
    create(DocumentKind::Audience, state, auth, request, headers, body).await
}

#[utoipa::path(get, path = "/crm/audiences/{id}", tag = "audiences", summary = "An audience",
    params(("id" = String, Path, description = "The audience's id")),
    responses((status = 200, description = "The audience", body = schemas::Audience, headers(("ETag" = String)))))]
async fn get_audience(
    state: State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Response> {
    fetch(DocumentKind::Audience, state, auth, id).await
}

#[utoipa::path(put, path = "/crm/audiences/{id}", tag = "audiences", summary = "Replace an audience",
    params(("id" = String, Path, description = "The audience's id"), ("If-Match" = Option<String>, Header, description = "The ETag the change is based on")),
    request_body(content = schemas::AudienceInput, content_type = "application/json"),
    responses((status = 200, description = "The changed audience", body = schemas::Audience, headers(("ETag" = String)))))]
async fn replace_audience(
    state: State<AppState>,
    auth: Auth,
    request: RequestMeta,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: JsonBody,
) -> Result<Response> {
    replace(
        DocumentKind::Audience,
        state,
        auth,
        request,
        id,
        headers,
        body,
    )
    .await
}

#[utoipa::path(delete, path = "/crm/audiences/{id}", tag = "audiences", summary = "Delete an audience",
    params(("id" = String, Path, description = "The audience's id"), ("If-Match" = Option<String>, Header, description = "The ETag the change is based on")),
    responses((status = 204, description = "Deleted")))]
async fn delete_audience(
    state: State<AppState>,
    auth: Auth,
    request: RequestMeta,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    remove(DocumentKind::Audience, state, auth, request, id, headers).await
}

#[utoipa::path(get, path = "/crm/marketing/templates", tag = "templates", summary = "List templates",
    params(schemas::Page),
    responses((status = 200, description = "A page of templates", body = schemas::TemplateList)))]
async fn list_templates(state: State<AppState>, auth: Auth, params: Params) -> Result<Response> {
    list(DocumentKind::Template, state, auth, params).await
}

#[utoipa::path(post, path = "/crm/marketing/templates", tag = "templates", summary = "Create a template",
    params(("Idempotency-Key" = Option<String>, Header, description = "Repeats with the same key and body within 24 h answer the first response")),
    request_body(content = schemas::TemplateInput, content_type = "application/json"),
    responses((status = 201, description = "Created", body = schemas::Template, headers(("ETag" = String), ("Location" = String)))))]
async fn create_template(
    state: State<AppState>,
    auth: Auth,
    request: RequestMeta,
    headers: HeaderMap,
    body: JsonBody,
) -> Result<Response> {
    create(DocumentKind::Template, state, auth, request, headers, body).await
}

#[utoipa::path(get, path = "/crm/marketing/templates/{id}", tag = "templates", summary = "A template",
    params(("id" = String, Path, description = "The template's id")),
    responses((status = 200, description = "The template", body = schemas::Template, headers(("ETag" = String)))))]
async fn get_template(
    state: State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Response> {
    fetch(DocumentKind::Template, state, auth, id).await
}

#[utoipa::path(put, path = "/crm/marketing/templates/{id}", tag = "templates", summary = "Replace a template",
    params(("id" = String, Path, description = "The template's id"), ("If-Match" = Option<String>, Header, description = "The ETag the change is based on")),
    request_body(content = schemas::TemplateInput, content_type = "application/json"),
    responses((status = 200, description = "The changed template", body = schemas::Template, headers(("ETag" = String)))))]
async fn replace_template(
    state: State<AppState>,
    auth: Auth,
    request: RequestMeta,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: JsonBody,
) -> Result<Response> {
    replace(
        DocumentKind::Template,
        state,
        auth,
        request,
        id,
        headers,
        body,
    )
    .await
}

#[utoipa::path(delete, path = "/crm/marketing/templates/{id}", tag = "templates", summary = "Delete a template",
    params(("id" = String, Path, description = "The template's id"), ("If-Match" = Option<String>, Header, description = "The ETag the change is based on")),
    responses((status = 204, description = "Deleted")))]
async fn delete_template(
    state: State<AppState>,
    auth: Auth,
    request: RequestMeta,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    remove(DocumentKind::Template, state, auth, request, id, headers).await
}

#[utoipa::path(get, path = "/crm/integrations/connections", tag = "integrations", summary = "List connections (admin)",
    params(schemas::Page),
    responses((status = 200, description = "A page of connections", body = schemas::ConnectionList)))]
async fn list_connections(state: State<AppState>, auth: Auth, params: Params) -> Result<Response> {
    list(DocumentKind::Connection, state, auth, params).await
}

#[utoipa::path(post, path = "/crm/integrations/connections", tag = "integrations", summary = "Create a connection (admin)",
    params(("Idempotency-Key" = Option<String>, Header, description = "Repeats with the same key and body within 24 h answer the first response")),
    request_body(content = schemas::ConnectionInput, content_type = "application/json"),
    responses((status = 201, description = "Created", body = schemas::Connection, headers(("ETag" = String), ("Location" = String)))))]
async fn create_connection(
    state: State<AppState>,
    auth: Auth,
    request: RequestMeta,
    headers: HeaderMap,
    body: JsonBody,
) -> Result<Response> {
    create(
        DocumentKind::Connection,
        state,
        auth,
        request,
        headers,
        body,
    )
    .await
}

#[utoipa::path(get, path = "/crm/integrations/connections/{id}", tag = "integrations", summary = "A connection (admin)",
    params(("id" = String, Path, description = "The connection's id")),
    responses((status = 200, description = "The connection", body = schemas::Connection, headers(("ETag" = String)))))]
async fn get_connection(
    state: State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Response> {
    fetch(DocumentKind::Connection, state, auth, id).await
}

#[utoipa::path(delete, path = "/crm/integrations/connections/{id}", tag = "integrations", summary = "Delete a connection (admin)",
    params(("id" = String, Path, description = "The connection's id"), ("If-Match" = Option<String>, Header, description = "The ETag the change is based on")),
    responses((status = 204, description = "Deleted")))]
async fn delete_connection(
    state: State<AppState>,
    auth: Auth,
    request: RequestMeta,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    remove(DocumentKind::Connection, state, auth, request, id, headers).await
}

/// Who may read and write each kind: connections are admin-only, even to read.
fn authorize(kind: DocumentKind, auth: &Auth, write: bool) -> Result<()> {
    if kind == DocumentKind::Connection {
        if auth.0.is_admin() {
            return Ok(());
        }
        return Err(ApiError::forbidden("integrations need the admin role"));
    }
    if write {
        auth.writer()?;
    }
    Ok(())
}

/// A validated body of any kind: its optional id, what to store and its secrets.
struct Parsed {
    id: Option<String>,
    body: Value,
    credentials: Option<Value>,
    /// A contact's opt-outs, for the suppression list.
    suppress: Vec<Suppress>,
}

fn parse(kind: DocumentKind, value: &Value) -> Result<Parsed, Vec<FieldError>> {
    match kind {
        DocumentKind::Contact => parse_contact(value).map(|c| Parsed {
            suppress: Suppress::from_contact(&c.body, &c.opt_outs),
            id: c.id,
            body: c.body,
            credentials: None,
        }),
        DocumentKind::Audience => parse_audience(value).map(|a| Parsed {
            id: a.id,
            body: a.body,
            credentials: None,
            suppress: Vec::new(),
        }),
        DocumentKind::Template => {
            let input = parse_template(value)?;
            let mut body = serde_json::to_value(&input.content).unwrap_or_else(|_| json!({}));
            body["name"] = Value::String(input.name);
            Ok(Parsed {
                id: input.id,
                body,
                credentials: None,
                suppress: Vec::new(),
            })
        }
        DocumentKind::Connection => parse_connection(value).map(|c| Parsed {
            id: c.id,
            body: c.body,
            credentials: Some(Value::Object(c.credentials)),
            suppress: Vec::new(),
        }),
    }
}

impl From<DocError> for ApiError {
    fn from(error: DocError) -> Self {
        match error {
            DocError::Domain(DocumentError::AlreadyExists(kind)) => {
                ApiError::conflict(format!("a {kind} with this id already exists"))
            }
            DocError::Domain(DocumentError::NotFound(kind)) => {
                ApiError::not_found(format!("no such {kind}"))
            }
            DocError::VersionMismatch { kind, current } => ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                format!("If-Match does not match the {kind}'s current version \"{current}\""),
            ),
            DocError::IdempotencyRace => {
                ApiError::conflict("a request with this Idempotency-Key is still being processed")
            }
            DocError::Conflict(kind) => {
                ApiError::conflict(format!("a concurrent change to the same {kind}; retry"))
            }
            DocError::EmailTaken(holder) => {
                ApiError::conflict(format!("contact {holder} already has this email"))
            }
            DocError::Unreadable(e) => ApiError::internal(e),
            DocError::Db(e) => e.into(),
        }
    }
}

fn with_etag(status: StatusCode, doc: &Value) -> Response {
    let mut response = (status, Json(doc)).into_response();
    if let Some(version) = doc.get("version").and_then(Value::as_i64) {
        if let Ok(etag) = HeaderValue::from_str(&format!("\"{version}\"")) {
            response.headers_mut().insert(header::ETAG, etag);
        }
    }
    response
}

/// A document as answered: a contact's `unsubscribed` comes from the suppression list.
async fn answer(state: &AppState, org_id: &str, kind: DocumentKind, doc: Value) -> Result<Value> {
    let mut doc = doc;
    if kind == DocumentKind::Contact {
        suppressions::overlay(&state.db, org_id, [&mut doc]).await?;
    }
    Ok(doc)
}

/// A connection whose settings point vendor calls at an address they may not reach
/// (`HERALD_OUTBOUND_ALLOW`): `422`, naming the setting. Checked again at every call.
async fn check_outbound(state: &AppState, body: &Value) -> Result<()> {
    let policy = state.sender.outbound_policy();
    let settings = &body["settings"];
    let base_host = settings
        .get("baseUrl")
        .and_then(Value::as_str)
        .and_then(|url| reqwest::Url::parse(url).ok())
        .and_then(|url| url.host_str().map(str::to_owned));
    let smtp_host = settings
        .get("host")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let mut errors = Vec::new();
    for (field, host) in [
        ("settings.baseUrl", base_host),
        ("settings.host", smtp_host),
    ] {
        let Some(host) = host else { continue };
        if let Err(refusal) = policy.check_literal(&host) {
            errors.push(FieldError::new(field, refusal));
            continue;
        }
        // A name that does not resolve now (or not quickly) is checked at every call instead.
        let resolved =
            tokio::time::timeout(std::time::Duration::from_secs(2), policy.resolve(&host, 0)).await;
        if let Ok(Err(error)) = resolved {
            if error.kind() == std::io::ErrorKind::PermissionDenied {
                errors.push(FieldError::new(field, error.to_string()));
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::unprocessable(errors))
    }
}

fn seal(state: &AppState, org_id: &str, id: &str, credentials: &Option<Value>) -> Option<Sealed> {
    credentials
        .as_ref()
        .map(|c| state.sealer.seal_for(org_id, id, c.to_string().as_bytes()))
}

#[tracing::instrument(skip_all, fields(org = %auth.0.org_id, kind = kind.as_str()))]
async fn create(
    kind: DocumentKind,
    State(state): State<AppState>,
    auth: Auth,
    request: RequestMeta,
    headers: HeaderMap,
    body: JsonBody,
) -> Result<Response> {
    authorize(kind, &auth, true)?;
    let org_id = auth.0.org_id.clone();
    let claim = idempotency::claim(&headers, kind.as_str(), &body.raw)?;
    if let Some(claim) = &claim {
        if let Some((status, doc)) = idempotency::replay(&state.db, &org_id, claim).await? {
            let doc = answer(&state, &org_id, kind, doc).await?;
            return Ok(with_etag(status, &doc));
        }
    }
    let parsed = parse(kind, &body.value).map_err(ApiError::unprocessable)?;
    if kind == DocumentKind::Connection {
        check_outbound(&state, &parsed.body).await?;
    }
    let id = parsed
        .id
        .clone()
        .unwrap_or_else(|| format!("{}{}", kind.id_prefix(), uuid::Uuid::now_v7()));
    let sealed = seal(&state, &org_id, &id, &parsed.credentials);
    let outcome = documents::execute(
        &state.db,
        &request.of(&auth.0),
        kind,
        &id,
        None,
        DocumentCommand::Create {
            id: id.clone(),
            body: parsed.body,
        },
        Extras {
            secret: sealed,
            idempotency: claim.clone(),
            suppress: parsed.suppress,
        },
    )
    .await;
    let view = match (outcome, &claim) {
        // A concurrent request with the same key won: answer what it answered.
        (Err(DocError::IdempotencyRace), Some(claim)) => {
            return idempotency::replay(&state.db, &org_id, claim)
                .await?
                .map(|(status, doc)| with_etag(status, &doc))
                .ok_or_else(|| {
                    ApiError::conflict(
                        "a request with this Idempotency-Key is still being processed",
                    )
                });
        }
        (outcome, _) => outcome?.0,
    };
    state.assets.invalidate(&org_id);
    let doc = answer(&state, &org_id, kind, view.to_json(kind)).await?;
    let mut response = with_etag(StatusCode::CREATED, &doc);
    if let Ok(location) = HeaderValue::from_str(&format!("{}/{id}", collection_path(kind))) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

fn collection_path(kind: DocumentKind) -> &'static str {
    match kind {
        DocumentKind::Contact => "/crm/contacts",
        DocumentKind::Audience => "/crm/audiences",
        DocumentKind::Template => "/crm/marketing/templates",
        DocumentKind::Connection => "/crm/integrations/connections",
    }
}

async fn fetch(
    kind: DocumentKind,
    State(state): State<AppState>,
    auth: Auth,
    id: String,
) -> Result<Response> {
    authorize(kind, &auth, false)?;
    let doc = documents::get(&state.db, &auth.0.org_id, kind, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no such {}", kind.noun())))?;
    let doc = answer(&state, &auth.0.org_id, kind, doc).await?;
    Ok(with_etag(StatusCode::OK, &doc))
}

async fn list(
    kind: DocumentKind,
    State(state): State<AppState>,
    auth: Auth,
    params: Params,
) -> Result<Response> {
    authorize(kind, &auth, false)?;
    let after = params.get("cursor").map(decode_cursor).transpose()?;
    let (mut items, last) =
        documents::list(&state.db, &auth.0.org_id, kind, after, params.limit()?).await?;
    if kind == DocumentKind::Contact {
        suppressions::overlay(&state.db, &auth.0.org_id, items.iter_mut()).await?;
    }
    let next = last.map(|(at, id)| encode_cursor(&at, &id));
    Ok(Json(json!({ "items": items, "nextCursor": next })).into_response())
}

#[tracing::instrument(skip_all, fields(org = %auth.0.org_id, kind = kind.as_str(), id = %id))]
async fn replace(
    kind: DocumentKind,
    State(state): State<AppState>,
    auth: Auth,
    request: RequestMeta,
    id: String,
    headers: HeaderMap,
    body: JsonBody,
) -> Result<Response> {
    authorize(kind, &auth, true)?;
    let expected = if_match(&headers)?;
    let parsed = parse(kind, &body.value).map_err(ApiError::unprocessable)?;
    let (view, _) = documents::execute(
        &state.db,
        &request.of(&auth.0),
        kind,
        &id,
        expected,
        DocumentCommand::Replace { body: parsed.body },
        Extras {
            suppress: parsed.suppress,
            ..Extras::default()
        },
    )
    .await?;
    state.assets.invalidate(&auth.0.org_id);
    let doc = answer(&state, &auth.0.org_id, kind, view.to_json(kind)).await?;
    Ok(with_etag(StatusCode::OK, &doc))
}

#[tracing::instrument(skip_all, fields(org = %auth.0.org_id, kind = kind.as_str(), id = %id))]
async fn remove(
    kind: DocumentKind,
    State(state): State<AppState>,
    auth: Auth,
    request: RequestMeta,
    id: String,
    headers: HeaderMap,
) -> Result<Response> {
    authorize(kind, &auth, true)?;
    let expected = if_match(&headers)?;
    documents::execute(
        &state.db,
        &request.of(&auth.0),
        kind,
        &id,
        expected,
        DocumentCommand::Delete,
        Extras::default(),
    )
    .await?;
    state.assets.invalidate(&auth.0.org_id);
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(post, path = "/crm/contacts/import", tag = "contacts",
    summary = "Import contacts: a JSON array, or NDJSON (up to 32 MiB, 100 000 rows)",
    request_body(content((Vec<schemas::ContactInput> = "application/json"), (String = "application/x-ndjson"))),
    responses((status = 200, description = "What was imported and each bad row", body = schemas::ImportResult)))]
/// `POST /crm/contacts/import`: a JSON array, or NDJSON with `application/x-ndjson`. Good rows
/// are kept; each bad one is reported with its 1-based line (array element) number.
#[tracing::instrument(skip_all, fields(org = %auth.0.org_id))]
async fn import_contacts(
    State(state): State<AppState>,
    auth: Auth,
    request: RequestMeta,
    headers: HeaderMap,
    body: std::result::Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response> {
    auth.writer()?;
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "an import is at most 32 MiB")
        } else {
            ApiError::bad_request("the request body could not be read")
        }
    })?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    // Each row is checked as it is parsed and kept as compact JSON, so an import holds about
    // its own size in memory rather than a parsed tree per row.
    let mut import = ImportRows::default();
    match content_type.as_str() {
        "application/x-ndjson" | "application/ndjson" | "application/jsonl" => {
            let blank = |line: &[u8]| line.iter().all(u8::is_ascii_whitespace);
            let count = body.split(|b| *b == b'\n').filter(|l| !blank(l)).count();
            if count > IMPORT_ROWS {
                return Err(too_many_rows(count));
            }
            for (i, line) in body.split(|b| *b == b'\n').enumerate() {
                if blank(line) {
                    continue;
                }
                import.take(
                    i + 1,
                    serde_json::from_slice(line).map_err(|e| format!("not valid JSON: {e}")),
                );
            }
        }
        "" | "application/json" | "text/plain" => read_array(&body, &mut import)?,
        other => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                "Content-Type {other} is not supported; send a JSON array or application/x-ndjson"
            ),
            ))
        }
    }
    drop(body);
    let ImportRows {
        good,
        errors,
        suppress,
    } = import;
    // The opt-outs first: a failure after them leaves no opted-out contact reachable.
    suppressions::add_now(&state.db, &suppress, &request.of(&auth.0).metadata()).await?;
    let summary =
        documents::bulk_upsert(&state.db, &request.of(&auth.0), DocumentKind::Contact, good)
            .await?;
    Ok(Json(json!({
        "created": summary.created,
        "updated": summary.updated,
        "unchanged": summary.unchanged,
        "errors": errors,
    }))
    .into_response())
}

/// Reads a JSON array of contacts one element at a time, so what a body costs is one element
/// plus the rows kept, never a parsed tree of the whole array, and stops at the first row over
/// [`IMPORT_ROWS`] without reading further.
fn read_array(body: &[u8], import: &mut ImportRows) -> Result<()> {
    use serde::de::{DeserializeSeed, Error as _, SeqAccess, Visitor};

    struct Rows<'a> {
        import: &'a mut ImportRows,
        over_limit: &'a mut bool,
    }
    impl<'de> Visitor<'de> for Rows<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON array of contacts")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
            let mut line = 0;
            while let Some(item) = seq.next_element::<Value>()? {
                line += 1;
                if line > IMPORT_ROWS {
                    *self.over_limit = true;
                    return Err(A::Error::custom("too many rows"));
                }
                self.import.take(line, Ok(item));
            }
            Ok(())
        }
    }
    impl<'de> DeserializeSeed<'de> for Rows<'_> {
        type Value = ();
        fn deserialize<D: serde::Deserializer<'de>>(
            self,
            deserializer: D,
        ) -> std::result::Result<(), D::Error> {
            deserializer.deserialize_seq(self)
        }
    }

    let starts_as_array = body
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'[');
    if !starts_as_array {
        // Still a JSON syntax error first, if it is one.
        serde_json::from_slice::<serde::de::IgnoredAny>(body)
            .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))?;
        return Err(ApiError::field(
            "body",
            "must be a JSON array of contacts (or NDJSON)",
        ));
    }
    let mut over_limit = false;
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let read = Rows {
        import,
        over_limit: &mut over_limit,
    }
    .deserialize(&mut deserializer)
    .and_then(|()| deserializer.end());
    match read {
        Ok(()) => Ok(()),
        Err(_) if over_limit => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("an import holds at most {IMPORT_ROWS} rows; this one has more"),
        )),
        Err(e) => Err(ApiError::bad_request(format!(
            "the body is not valid JSON: {e}"
        ))),
    }
}

fn too_many_rows(rows: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("an import holds at most {IMPORT_ROWS} rows; this one has {rows}"),
    )
}

/// An import's rows as they are read: the good ones ready to write, the bad ones reported.
#[derive(Default)]
struct ImportRows {
    good: Vec<BulkRow>,
    errors: Vec<Value>,
    /// The good rows' opt-outs.
    suppress: Vec<Suppress>,
}

impl ImportRows {
    /// Checks row `line` (1-based) and keeps it, or its error.
    fn take(&mut self, line: usize, row: std::result::Result<Value, String>) {
        // PostgreSQL stores no NUL in text or jsonb: such a row is refused like any bad row.
        let nul = "the row holds a NUL character (\\u0000), which no field accepts";
        match row
            .map_err(|e| vec![FieldError::new("", e)])
            .and_then(|v| match holds_nul(&v) {
                true => Err(vec![FieldError::new("", nul)]),
                false => Ok(v),
            })
            .and_then(|v| parse_contact(&v))
        {
            Ok(input) => {
                self.suppress
                    .extend(Suppress::from_contact(&input.body, &input.opt_outs));
                self.good.push(BulkRow {
                    lookup: input.email_key(),
                    id: input.id,
                    body: input.body.to_string(),
                })
            }
            Err(found) => {
                let message = found
                    .iter()
                    .map(|e| {
                        if e.field.is_empty() {
                            e.message.clone()
                        } else {
                            format!("{}: {}", e.field, e.message)
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("; ");
                self.errors
                    .push(json!({ "line": line, "message": message }));
            }
        }
    }
}

/// Counts the org's contacts matching `filter` and keeps the ten oldest as a sample.
pub async fn evaluate_reach(
    state: &AppState,
    org_id: &str,
    filter: &Filter,
) -> Result<(u64, Vec<Value>)> {
    let (count, mut sample) =
        crate::reach::evaluate(&state.db, org_id, filter, crate::reach::SAMPLE).await?;
    // The sample shows contacts as `GET /crm/contacts/{id}` does: `unsubscribed` from the list.
    crate::suppressions::overlay(&state.db, org_id, sample.iter_mut()).await?;
    Ok((count, sample))
}

#[utoipa::path(get, path = "/crm/audiences/{id}/reach", tag = "audiences",
    summary = "How many contacts an audience reaches, with a sample",
    params(("id" = String, Path, description = "The audience's id")),
    responses((status = 200, description = "The count and up to ten contacts", body = schemas::Reach)))]
async fn reach(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Response> {
    let audience = documents::get(&state.db, &auth.0.org_id, DocumentKind::Audience, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such audience"))?;
    let filter = parse_filter(&audience["filter"])
        .map_err(|_| ApiError::internal("a stored audience filter no longer parses"))?;
    let (count, sample) = evaluate_reach(&state, &auth.0.org_id, &filter).await?;
    Ok(Json(json!({ "audienceId": id, "count": count, "sample": sample })).into_response())
}

#[utoipa::path(post, operation_id = "preview_audience", path = "/crm/audiences/preview", tag = "audiences",
    summary = "How many contacts a filter reaches, with a sample",
    request_body(content = schemas::AudiencePreviewRequest, content_type = "application/json"),
    responses((status = 200, description = "The count and up to ten contacts", body = schemas::Reach)))]
async fn preview(State(state): State<AppState>, auth: Auth, body: JsonBody) -> Result<Response> {
    let filter_value = body
        .value
        .get("filter")
        .ok_or_else(|| ApiError::field("filter", "is required"))?;
    let filter = parse_filter(filter_value).map_err(|errors| {
        ApiError::unprocessable(
            errors
                .into_iter()
                .map(|e| {
                    FieldError::new(
                        if e.field == "filter" {
                            e.field
                        } else {
                            format!("filter.{}", e.field)
                        },
                        e.message,
                    )
                })
                .collect(),
        )
    })?;
    let (count, sample) = evaluate_reach(&state, &auth.0.org_id, &filter).await?;
    Ok(Json(json!({ "count": count, "sample": sample })).into_response())
}

#[utoipa::path(post, path = "/crm/marketing/templates/{id}/render", tag = "templates",
    summary = "Render a template for a contact",
    params(("id" = String, Path, description = "The template's id")),
    request_body(content = schemas::RenderRequest, content_type = "application/json"),
    responses((status = 200, description = "The rendered template", body = schemas::RenderedTemplate)))]
async fn render_template(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    body: JsonBody,
) -> Result<Response> {
    let template = documents::get(&state.db, &auth.0.org_id, DocumentKind::Template, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such template"))?;
    let contact_id = body
        .value
        .get("contactId")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::field("contactId", "is required"))?;
    let contact = documents::get(&state.db, &auth.0.org_id, DocumentKind::Contact, contact_id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such contact"))?;
    let campaign = match body.value.get("campaignId").and_then(Value::as_str) {
        Some(campaign_id) => crate::campaigns::get(&state.db, &auth.0.org_id, campaign_id)
            .await?
            .ok_or_else(|| ApiError::not_found("no such campaign"))?,
        None => json!({}),
    };
    let content: TemplateContent =
        serde_json::from_value(template.clone()).map_err(ApiError::internal)?;
    let ctx = RenderContext {
        contact,
        campaign,
        unsubscribe_url: format!("{}/connect/unsubscribe-preview", state.public_url),
    };
    let rendered =
        render(&content, &ctx).map_err(|e| ApiError::field("template", e.to_string()))?;
    Ok(
        Json(json!({ "templateId": id, "contactId": contact_id, "rendered": rendered }))
            .into_response(),
    )
}

/// Connected platforms and their connections, for `GET /crm/marketing/platforms`.
pub async fn connections_by_platform(state: &AppState, org_id: &str) -> Result<Vec<Value>> {
    Ok(documents::all(&state.db, org_id, DocumentKind::Connection).await?)
}
