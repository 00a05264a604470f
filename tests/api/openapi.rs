//! The OpenAPI document (`api.md` section 13): it lists exactly the routes the router serves,
//! the server answers every route it lists, and it is served without a token at
//! `/openapi.json` and `/api/openapi.json`.

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use crate::db_test;
use crate::helpers::{eventually, sandbox, seed_campaign, Reply, TestApp};
use crate::venv::venv_tool;

const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

/// `:id` (older axum) and `{id}` (axum 0.8 and OpenAPI) both as `{id}`.
fn normalise(path: &str) -> String {
    path.split('/')
        .map(|segment| match segment.strip_prefix(':') {
            Some(name) => format!("{{{name}}}"),
            None => segment.to_string(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Every (METHOD, path) the document describes: each path under each of its servers (the
/// path's own `servers`, else the document's).
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let global = doc["servers"].as_array().cloned().unwrap_or_default();
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        let servers = item["servers"]
            .as_array()
            .cloned()
            .unwrap_or(global.clone());
        assert!(!servers.is_empty(), "{path} has no server");
        for method in METHODS {
            if item.get(method).is_none() {
                continue;
            }
            for server in &servers {
                let prefix = server["url"].as_str().expect("server url");
                let prefix = prefix.trim_end_matches('/');
                out.insert((
                    method.to_uppercase(),
                    format!("{prefix}{}", normalise(path)),
                ));
            }
        }
    }
    out
}

#[test]
fn the_document_lists_exactly_the_routes_of_the_router() {
    let table = herald::http::route_table();
    let doc = herald::http::openapi::document();
    let served: BTreeSet<(String, String)> = table
        .iter()
        .filter(|route| route.documented)
        .map(|route| (route.method.clone(), normalise(&route.path)))
        .collect();
    let described = documented(doc);
    let missing: Vec<_> = served.difference(&described).collect();
    let extra: Vec<_> = described.difference(&served).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "served but not in the document: {missing:#?}\nin the document but not served: {extra:#?}"
    );
    // The API is mounted twice, the probes once.
    assert!(served.contains(&("GET".into(), "/api/crm/marketing/campaigns".into())));
    assert!(served.contains(&("GET".into(), "/healthz".into())));
    assert!(!served.contains(&("GET".into(), "/api/healthz".into())));
    // A route left out on purpose is still served, and not described.
    for route in table.iter().filter(|route| !route.documented) {
        let key = (route.method.clone(), normalise(&route.path));
        assert!(
            !described.contains(&key),
            "{key:?} is undocumented but described"
        );
    }
    // Each operation is described once (operation ids are unique).
    let mut ids = BTreeSet::new();
    for item in doc["paths"].as_object().unwrap().values() {
        for method in METHODS {
            if let Some(id) = item.get(method).and_then(|op| op["operationId"].as_str()) {
                assert!(ids.insert(id.to_string()), "operationId {id} twice");
            }
        }
    }
}

#[test]
fn every_crm_operation_needs_the_bearer_token_and_orgid_and_answers_problems() {
    let doc = herald::http::openapi::document();
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["orgid"]["in"], "header");
    assert_eq!(schemes["orgid"]["name"], "orgid");
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in METHODS {
            let Some(op) = item.get(method) else { continue };
            let security = &op["security"];
            if path.starts_with("/crm/") {
                assert_eq!(
                    security,
                    &serde_json::json!([{"bearer": [], "orgid": []}]),
                    "{method} {path}"
                );
                for code in ["400", "401", "403", "404", "429"] {
                    assert_eq!(
                        op["responses"][code]["content"]["application/problem+json"]["schema"]
                            ["$ref"],
                        "#/components/schemas/Problem",
                        "{method} {path} {code}"
                    );
                }
            } else {
                // Public routes; `/metrics` may take the operator's metrics token.
                assert!(
                    !security.to_string().contains("orgid"),
                    "{method} {path} needs no token"
                );
            }
            assert!(
                op["responses"]["default"].is_object(),
                "{method} {path} has no problem response"
            );
            // Every path parameter is declared.
            for name in path.split('/').filter_map(|s| s.strip_prefix('{')) {
                let name = name.trim_end_matches('}');
                let declared = op["parameters"].as_array().is_some_and(|params| {
                    params
                        .iter()
                        .any(|p| p["in"] == "path" && p["name"] == name && p["required"] == true)
                });
                assert!(declared, "{method} {path} does not declare {name}");
            }
        }
    }
}

/// A request to `path` with each `{name}` filled in (with a real value where the route takes
/// only some, like a campaign action).
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|segment| match segment {
            "{action}" => "pause".to_string(),
            s if s.starts_with('{') => format!("probe-{}", s.trim_matches(['{', '}'])),
            s => s.to_string(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Whether the path template matches a concrete path.
fn matches(template: &str, path: &str) -> bool {
    let (a, b): (Vec<_>, Vec<_>) = (template.split('/').collect(), path.split('/').collect());
    a.len() == b.len()
        && a.iter()
            .zip(&b)
            .all(|(t, p)| t == p || (t.starts_with('{') && !p.is_empty()))
}

/// Whether the router answered from a route (not its "no such route" or `405` fallbacks).
async fn routed(app: &TestApp, method: &str, path: &str) -> (bool, String) {
    let method = Method::from_bytes(method.as_bytes()).unwrap();
    let mut call = app.admin(method.clone(), path);
    if method == Method::POST || method == Method::PUT || method == Method::PATCH {
        call = call.json(&serde_json::json!({}));
    }
    let reply = call.send().await;
    let fallback =
        reply.status == 405 || (reply.status == 404 && reply.body["detail"] == "no such route");
    (!fallback, format!("{} {}", reply.status, reply.text))
}

db_test!(
    the_server_answers_every_route_of_the_table_and_no_other_method,
    |app: TestApp| async move {
        let table = herald::http::route_table();
        for route in &table {
            let path = concrete(&route.path);
            let (ok, reply) = routed(&app, &route.method, &path).await;
            assert!(
                ok,
                "{} {} is in the route table but the router does not serve it: {reply}",
                route.method, route.path
            );
        }
        // A method the table does not give a path is not served there (unless another route's
        // template takes the same request).
        for route in &table {
            let path = concrete(&route.path);
            for method in METHODS.map(str::to_uppercase) {
                let taken = table
                    .iter()
                    .any(|other| other.method == method && matches(&other.path, &path));
                if taken {
                    continue;
                }
                let (ok, reply) = routed(&app, &method, &path).await;
                assert!(
                    !ok,
                    "{method} {path} is served but not in the route table: {reply}"
                );
            }
        }
    }
);

db_test!(
    the_document_is_served_without_a_token_at_the_root_and_under_api,
    |app: TestApp| async move {
        let root = app.anonymous(Method::GET, "/openapi.json").send().await;
        assert_eq!(root.status, 200, "{}", root.text);
        assert_eq!(root.header("content-type"), Some("application/json"));
        assert_eq!(root.body["openapi"], "3.1.0");
        assert_eq!(&root.body, herald::http::openapi::document());
        let api = app.anonymous(Method::GET, "/api/openapi.json").send().await;
        assert_eq!(api.status, 200, "{}", api.text);
        assert_eq!(api.text, root.text);
        // A token that does not verify changes nothing: the document is public.
        let with_junk = app
            .anonymous(Method::GET, "/openapi.json")
            .header("authorization", "Bearer junk")
            .send()
            .await;
        assert_eq!(with_junk.status, 200);
    }
);

/// The official OpenAPI 3.1 meta-schema, as the `openapi-spec-validator` package ships it.
fn oas31_meta_schema() -> Value {
    let python = venv_tool("python");
    let out = std::process::Command::new(python)
        .args([
            "-c",
            "import os, openapi_spec_validator as v; print(os.path.join(os.path.dirname(v.__file__), \
             'resources', 'schemas', 'v3.1', 'schema.json'))",
        ])
        .output()
        .expect("run the venv's python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = String::from_utf8(out.stdout).unwrap();
    let text = std::fs::read_to_string(path.trim()).expect("the OpenAPI 3.1 meta-schema");
    serde_json::from_str(&text).unwrap()
}

#[test]
fn the_document_validates_against_the_openapi_3_1_meta_schema() {
    let doc = herald::http::openapi::document();
    assert_eq!(doc["openapi"], "3.1.0");
    let meta = oas31_meta_schema();
    assert_eq!(
        meta["$id"],
        "https://spec.openapis.org/oas/3.1/schema/2022-10-07"
    );
    let validator = jsonschema::draft202012::new(&meta).expect("the meta-schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    // And the reference validator of the OpenAPI ecosystem, which also checks each schema
    // object against the 3.1 dialect and every `$ref`.
    let file = std::env::temp_dir().join(format!("herald-openapi-{}.json", std::process::id()));
    std::fs::write(&file, serde_json::to_vec(doc).unwrap()).unwrap();
    let out = std::process::Command::new(venv_tool("openapi-spec-validator"))
        .arg(&file)
        .output()
        .expect("run openapi-spec-validator");
    let _ = std::fs::remove_file(&file);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Its messages quote the whole document after the finding.
    assert!(
        out.status.success(),
        "{}",
        said.chars().take(600).collect::<String>()
    );
}

/// Asserts that a reply matches what the document says `method path` answers with its status
/// (or `default`) and content type.
#[track_caller]
pub fn assert_documented(reply: &Reply, method: &str, path: &str) {
    let doc = herald::http::openapi::document();
    let op = &doc["paths"][path][method.to_lowercase()];
    assert!(op.is_object(), "{method} {path} is not in the document");
    let responses = &op["responses"];
    let status = reply.status.as_u16().to_string();
    let mut response = responses
        .get(&status)
        .or_else(|| responses.get("default"))
        .unwrap_or_else(|| panic!("{method} {path} documents no {status}"));
    if let Some(name) = response["$ref"]
        .as_str()
        .and_then(|r| r.strip_prefix("#/components/responses/"))
    {
        response = &doc["components"]["responses"][name];
    }
    let content_type = reply
        .header("content-type")
        .map(|v| v.split(';').next().unwrap().trim().to_string())
        .unwrap_or_default();
    let schema = &response["content"][&content_type]["schema"];
    assert!(
        schema.is_object(),
        "{method} {path} {status}: {content_type} is not documented: {response}"
    );
    let root = serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": doc["components"],
        "allOf": [schema],
    });
    let validator = jsonschema::draft202012::new(&root).expect("a valid schema");
    let errors: Vec<String> = validator
        .iter_errors(&reply.body)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{method} {path} {status} does not match its schema: {errors:#?}\n{}",
        reply.text
    );
}

db_test!(
    campaign_contact_list_and_analytics_responses_match_their_schemas,
    |app: TestApp| async move {
        let created = app.post_campaign(&seed_campaign()).await;
        assert_eq!(created.status, 201, "{}", created.text);
        assert_documented(&created, "POST", "/crm/marketing/campaigns");
        let id = created.body["id"].as_str().unwrap().to_string();
        let got = app.get_campaign(&id).await;
        assert_eq!(got.status, 200);
        assert_documented(&got, "GET", "/crm/marketing/campaigns/{id}");
        let list = app
            .admin(Method::GET, "/crm/marketing/campaigns")
            .send()
            .await;
        assert_eq!(list.status, 200);
        assert_documented(&list, "GET", "/crm/marketing/campaigns");

        let contact = app
            .admin(Method::POST, "/crm/contacts")
            .json(
                &serde_json::json!({"email": "ann@acme.test", "firstName": "Ann", "tags": ["vip"],
            "attributes": {"plan": "pro"}, "unsubscribed": {"sms": true}}),
            )
            .send()
            .await;
        assert_eq!(contact.status, 201, "{}", contact.text);
        assert_documented(&contact, "POST", "/crm/contacts");
        let contacts = app.admin(Method::GET, "/crm/contacts?limit=1").send().await;
        assert_eq!(contacts.status, 200);
        assert_documented(&contacts, "GET", "/crm/contacts");

        let analytics = app
            .admin(
                Method::GET,
                &format!("/crm/marketing/campaigns/{id}/analytics"),
            )
            .send()
            .await;
        assert_eq!(analytics.status, 200, "{}", analytics.text);
        assert_documented(&analytics, "GET", "/crm/marketing/campaigns/{id}/analytics");
        let ranged = app
            .admin(
                Method::GET,
                &format!("/crm/marketing/campaigns/{id}/analytics?from=2026-01-01&to=2026-01-31"),
            )
            .send()
            .await;
        assert_documented(&ranged, "GET", "/crm/marketing/campaigns/{id}/analytics");
        let aggregated = app
        .admin(Method::POST, "/crm/marketing/campaigns/aggregated-metrics")
        .json(&serde_json::json!({"campaignIds": [id, "camp-none"], "range": {"start": "2026-01-01", "end": "2026-01-03"}}))
        .send()
        .await;
        assert_eq!(aggregated.status, 200, "{}", aggregated.text);
        assert_documented(
            &aggregated,
            "POST",
            "/crm/marketing/campaigns/aggregated-metrics",
        );
    }
);

db_test!(
    problem_responses_match_the_problem_schema,
    |app: TestApp| async move {
        let missing = app.get_campaign("camp-none").await;
        missing.assert_problem(404);
        assert_documented(&missing, "GET", "/crm/marketing/campaigns/{id}");
        let invalid = app
            .post_campaign(&serde_json::json!({"name": "", "type": "one-shot", "channels": []}))
            .await;
        invalid.assert_problem(422);
        assert!(invalid.body["errors"]
            .as_array()
            .is_some_and(|e| !e.is_empty()));
        assert_documented(&invalid, "POST", "/crm/marketing/campaigns");
        let anonymous = app
            .anonymous(Method::GET, "/crm/marketing/campaigns")
            .send()
            .await;
        anonymous.assert_problem(401);
        assert_documented(&anonymous, "GET", "/crm/marketing/campaigns");
        let bad_query = app.admin(Method::GET, "/crm/contacts?limit=0").send().await;
        bad_query.assert_problem(400);
        assert_documented(&bad_query, "GET", "/crm/contacts");
    }
);

db_test!(
    discovery_settings_events_and_probe_responses_match_their_schemas,
    |app: TestApp| async move {
        let created = app.post_campaign(&seed_campaign()).await;
        let id = created.body["id"].as_str().unwrap().to_string();
        for path in [
            "/crm/marketing/platforms",
            "/crm/marketing/campaign-types",
            "/crm/marketing/social-profiles",
            "/crm/marketing/settings",
            "/crm/suppressions",
            "/crm/marketing/events",
            "/crm/audiences",
            "/crm/marketing/templates",
            "/crm/integrations/connections",
        ] {
            let reply = app.admin(Method::GET, path).send().await;
            assert_eq!(reply.status, 200, "{path}: {}", reply.text);
            assert_documented(&reply, "GET", path);
        }
        let events = app
            .admin(
                Method::GET,
                &format!("/crm/marketing/campaigns/{id}/events"),
            )
            .send()
            .await;
        assert_eq!(events.status, 200);
        assert_documented(&events, "GET", "/crm/marketing/campaigns/{id}/events");
        for path in ["/healthz", "/readyz"] {
            let reply = app.anonymous(Method::GET, path).send().await;
            assert_eq!(reply.status, 200);
            assert_documented(&reply, "GET", path);
        }
    }
);

/// Request and response bodies that are free-form on purpose, by where they are in the
/// document (`Schema.property`, `[]` for an array's items, `{}` for a map's values, or
/// `METHOD path request|status` for an operation's own body), each with the reason.
const FREE_FORM: &[(&str, &str)] = &[
    (
        "POST /connect/webhooks/{vendor}/{connection_id} request",
        "each vendor posts its own format (SendGrid's JSON array, Mailgun's JSON, Twilio's form \
         fields); the signature check and the vendor's parser read it, docs/webhooks.md",
    ),
    (
        "GET /openapi.json 200",
        "the OpenAPI document itself; the OpenAPI 3.1 meta-schema describes it, and \
         the_document_validates_against_the_openapi_3_1_meta_schema checks it against that",
    ),
    (
        "Contact.attributes",
        "the org's own custom fields, any JSON values under keys it chooses",
    ),
    ("ContactInput.attributes", "as Contact.attributes"),
    (
        "Campaign.channelSettings",
        "per-channel extras the server keeps as given and does not interpret (api.md section 2)",
    ),
    (
        "CampaignInput.channelSettings",
        "as Campaign.channelSettings",
    ),
    (
        "DynamicQuery.where",
        "a MongoDB-style query keyed by the contact's own field paths (attributes included); \
         docs/dynamic-query.md, and the server answers 422 naming the path of a bad one",
    ),
    (
        "When.filter",
        "a DynamicQuery `where`, as DynamicQuery.where",
    ),
    (
        "Connection.settings",
        "the keys depend on the vendor (fromEmail, domain, host, baseUrl, failRate, …); \
         the server checks each vendor's required ones",
    ),
    ("ConnectionInput.settings", "as Connection.settings"),
    (
        "ConnectionInput.credentials",
        "write-only secrets whose keys depend on the vendor (apiKey, accountSid, …)",
    ),
    (
        "Event.data",
        "each event type has its own payload (docs/events.md), and stored types never change \
         shape; one schema per type would be a union of every version",
    ),
];

/// Where `schema` (at `at`) or anything inside it says nothing about its value: `{}`, an
/// object with neither properties nor a schema for its values, an array without items.
fn loose_schemas(
    doc: &Value,
    schema: &Value,
    at: &str,
    seen: &mut BTreeSet<String>,
) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(name) = schema["$ref"]
        .as_str()
        .and_then(|r| r.strip_prefix("#/components/schemas/"))
    {
        if seen.insert(name.to_string()) {
            let target = &doc["components"]["schemas"][name];
            out.extend(loose_schemas(doc, target, name, seen));
        }
        return out;
    }
    let mut combined = false;
    for key in ["oneOf", "anyOf", "allOf"] {
        for part in schema[key].as_array().into_iter().flatten() {
            combined = true;
            out.extend(loose_schemas(doc, part, at, seen));
        }
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let pinned = schema.get("enum").is_some() || schema.get("const").is_some();
    if types.is_empty() && !combined && !pinned {
        out.push(at.to_string());
        return out;
    }
    if types.contains(&"object") {
        let properties = schema["properties"].as_object();
        for (name, property) in properties.into_iter().flatten() {
            out.extend(loose_schemas(doc, property, &format!("{at}.{name}"), seen));
        }
        match &schema["additionalProperties"] {
            Value::Object(values) if !values.is_empty() => {
                out.extend(loose_schemas(
                    doc,
                    &schema["additionalProperties"],
                    &format!("{at}{{}}"),
                    seen,
                ));
            }
            _ if properties.is_none_or(|p| p.is_empty()) && !combined => out.push(at.to_string()),
            _ => {}
        }
    }
    if types.contains(&"array") {
        match schema.get("items") {
            Some(items) => out.extend(loose_schemas(doc, items, &format!("{at}[]"), seen)),
            None => out.push(at.to_string()),
        }
    }
    out
}

#[test]
fn no_request_or_response_body_is_a_loose_schema_unless_it_is_free_form_on_purpose() {
    let doc = herald::http::openapi::document();
    let mut loose = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in METHODS {
            let Some(op) = item.get(method) else { continue };
            let name = format!("{} {path}", method.to_uppercase());
            let mut bodies = Vec::new();
            for (_, media) in op["requestBody"]["content"]
                .as_object()
                .into_iter()
                .flatten()
            {
                bodies.push((format!("{name} request"), &media["schema"]));
            }
            for (status, response) in op["responses"].as_object().unwrap() {
                if !status.starts_with('2') {
                    continue;
                }
                for (content_type, media) in response["content"].as_object().into_iter().flatten() {
                    // Text, HTML and images are described by their content type.
                    if content_type.contains("json") {
                        bodies.push((format!("{name} {status}"), &media["schema"]));
                    }
                }
            }
            for (at, schema) in bodies {
                // Each body is walked on its own, so a shared schema is reported wherever used.
                loose.extend(loose_schemas(doc, schema, &at, &mut BTreeSet::new()));
            }
        }
    }
    // Problems are bodies of every operation too.
    loose.extend(loose_schemas(
        doc,
        &serde_json::json!({"$ref": "#/components/schemas/Problem"}),
        "Problem",
        &mut BTreeSet::new(),
    ));
    let allowed: BTreeSet<String> = FREE_FORM.iter().map(|(at, _)| at.to_string()).collect();
    let unexplained: Vec<_> = loose.difference(&allowed).collect();
    assert!(
        unexplained.is_empty(),
        "schemas that say nothing of their value (give them one, or add them to FREE_FORM with \
         the reason): {unexplained:#?}"
    );
    let stale: Vec<_> = allowed.difference(&loose).collect();
    assert!(
        stale.is_empty(),
        "FREE_FORM entries that are no longer loose (remove them): {stale:#?}"
    );
    for (at, reason) in FREE_FORM {
        assert!(reason.len() > 20, "{at} needs a reason");
    }
}

db_test!(
    sending_preview_engagement_and_operations_responses_match_their_schemas,
    |app: TestApp| async move {
        app.make_ready().await;
        let ann = app
            .admin(Method::POST, "/crm/contacts")
            .json(
                &serde_json::json!({"id": "ct-ann", "email": "ann@acme.test",
                "phone": "+14155550100", "firstName": "Ann", "tags": ["prospect"],
                "timezone": "Europe/Berlin"}),
            )
            .send()
            .await;
        assert_eq!(ann.status, 201, "{}", ann.text);
        let mut body = seed_campaign();
        body["id"] = "camp-schemas".into();
        body["channels"] = serde_json::json!(["email", "sms", "facebook", "google-ads"]);
        body["status"] = "running".into();
        body.as_object_mut().unwrap().remove("schedule");
        let created = app.post_campaign(&body).await;
        assert_eq!(created.status, 201, "{}", created.text);
        let sent = eventually(Duration::from_secs(20), || async {
            sandbox(&app, "campaignId=camp-schemas").await.len() >= 2
        })
        .await;
        assert!(sent, "the campaign sent nothing");
        let outbox = app
            .admin(
                Method::GET,
                "/crm/integrations/sandbox/messages?campaignId=camp-schemas",
            )
            .send()
            .await;
        assert_documented(&outbox, "GET", "/crm/integrations/sandbox/messages");

        let post = |path: &'static str, body: Value| {
            let app = &app;
            async move { app.admin(Method::POST, path).json(&body).send().await }
        };
        let preview = post(
            "/crm/marketing/campaigns/camp-schemas/preview",
            serde_json::json!({"contactId": "ct-ann"}),
        )
        .await;
        assert_eq!(preview.status, 200, "{}", preview.text);
        assert_eq!(preview.body["messages"].as_array().unwrap().len(), 4);
        assert_documented(&preview, "POST", "/crm/marketing/campaigns/{id}/preview");
        for test in [
            serde_json::json!({"channel": "email", "to": "me@acme.test"}),
            serde_json::json!({"channel": "sms", "to": "+14155550199", "contactId": "ct-ann"}),
        ] {
            let reply = post("/crm/marketing/campaigns/camp-schemas/test-send", test).await;
            assert_eq!(reply.status, 200, "{}", reply.text);
            assert_documented(&reply, "POST", "/crm/marketing/campaigns/{id}/test-send");
        }
        let reported = serde_json::json!([
            {"type": "conversion", "channel": "email", "contactId": "ct-ann", "value": 19.99,
             "currency": "EUR", "externalId": "order-1"},
            {"type": "impression", "channel": "facebook", "value": 120}
        ]);
        for _ in 0..2 {
            let reply = post(
                "/crm/marketing/campaigns/camp-schemas/engagements",
                reported.clone(),
            )
            .await;
            assert_eq!(reply.status, 200, "{}", reply.text);
            assert_documented(&reply, "POST", "/crm/marketing/campaigns/{id}/engagements");
        }
        let converted = eventually(Duration::from_secs(20), || async {
            let reply = app
                .admin(Method::GET, "/crm/contacts/ct-ann/activities")
                .send()
                .await;
            reply.text.contains("conversion") && reply.text.contains("\"send\"")
        })
        .await;
        assert!(converted, "the conversion never reached the activity log");
        let activities = app
            .admin(Method::GET, "/crm/contacts/ct-ann/activities")
            .send()
            .await;
        assert_documented(&activities, "GET", "/crm/contacts/{id}/activities");

        let rendered = post(
            "/crm/marketing/templates/tpl-spring-launch/render",
            serde_json::json!({"contactId": "ct-ann", "campaignId": "camp-schemas"}),
        )
        .await;
        assert_eq!(rendered.status, 200, "{}", rendered.text);
        assert_documented(&rendered, "POST", "/crm/marketing/templates/{id}/render");
        let reach = post(
            "/crm/audiences/preview",
            serde_json::json!({"filter": {"datatype": "contact", "where": {"tags": "prospect"}}}),
        )
        .await;
        assert_eq!(reach.status, 200, "{}", reach.text);
        assert_documented(&reach, "POST", "/crm/audiences/preview");
        let imported = post(
            "/crm/contacts/import",
            serde_json::json!([{"email": "not an address"}, {"email": "bob@acme.test"}]),
        )
        .await;
        assert_eq!(imported.status, 200, "{}", imported.text);
        assert_eq!(imported.body["errors"].as_array().unwrap().len(), 1);
        assert_documented(&imported, "POST", "/crm/contacts/import");
        let settings = app
            .admin(Method::PUT, "/crm/marketing/settings")
            .json(&serde_json::json!({"defaultTimezone": "Europe/Berlin",
                "frequencyCaps": [{"channel": "*", "max": 5, "per": "week"}],
                "quietHours": {"start": "21:00", "end": "08:00", "channels": ["sms"]}}))
            .send()
            .await;
        assert_eq!(settings.status, 200, "{}", settings.text);
        assert_documented(&settings, "PUT", "/crm/marketing/settings");

        // A drip with every kind of step condition, and a milestone with its trigger.
        let drip = app
            .post_campaign(&serde_json::json!({"id": "camp-drip", "name": "Welcome",
                "type": "drip", "channels": ["email"], "audienceId": "aud-spring-prospects",
                "templateId": "tpl-spring-launch", "enrollment": "continuous",
                "steps": [{"id": "welcome", "delay": "PT0S"},
                    {"id": "nudge", "delay": "P3D", "at": "09:00", "when": {"notOpened": "welcome"}},
                    {"id": "vip", "delay": "P1D", "when": {"filter": {"tags": "vip"}}}],
                "exit": {"on": ["conversion"]}, "status": "running"}))
            .await;
        assert_eq!(drip.status, 201, "{}", drip.text);
        assert_documented(&drip, "POST", "/crm/marketing/campaigns");
        let milestone = app
            .post_campaign(&serde_json::json!({"name": "Renewal", "type": "milestone",
                "channels": ["email"], "audienceId": "aud-spring-prospects",
                "templateId": "tpl-spring-launch",
                "steps": [{"id": "remind", "delay": "PT0S"}],
                "trigger": {"field": "attributes.renewalAt", "offset": "-P7D", "repeat": "yearly", "at": "09:00"}}))
            .await;
        assert_eq!(milestone.status, 201, "{}", milestone.text);
        assert_documented(&milestone, "POST", "/crm/marketing/campaigns");
        let enrolled = eventually(Duration::from_secs(20), || async {
            let reply = app
                .admin(
                    Method::GET,
                    "/crm/marketing/campaigns/camp-drip/enrollments",
                )
                .send()
                .await;
            reply.text.contains("ct-ann") && reply.text.contains("\"sent\"")
        })
        .await;
        assert!(enrolled, "ct-ann was not enrolled");
        let enrollments = app
            .admin(
                Method::GET,
                "/crm/marketing/campaigns/camp-drip/enrollments",
            )
            .send()
            .await;
        assert_documented(
            &enrollments,
            "GET",
            "/crm/marketing/campaigns/{id}/enrollments",
        );
        let drip_preview = post(
            "/crm/marketing/campaigns/camp-drip/preview",
            serde_json::json!({"contactId": "ct-ann"}),
        )
        .await;
        assert_eq!(drip_preview.status, 200, "{}", drip_preview.text);
        assert_documented(
            &drip_preview,
            "POST",
            "/crm/marketing/campaigns/{id}/preview",
        );

        // A launch that nothing can carry: a problem with its blockers.
        let blocked = app
            .post_campaign(&serde_json::json!({"id": "camp-blocked", "name": "Blocked",
                "type": "one-shot", "channels": ["email"], "templateId": "tpl-none",
                "audienceId": "aud-spring-prospects"}))
            .await;
        assert_eq!(blocked.status, 201, "{}", blocked.text);
        let refused = app
            .admin(Method::POST, "/crm/marketing/campaigns/camp-blocked/launch")
            .send()
            .await;
        refused.assert_problem(409);
        assert!(refused.body["blockers"].is_array(), "{}", refused.text);
        assert_documented(&refused, "POST", "/crm/marketing/campaigns/{id}/{action}");

        for path in [
            "/crm/marketing/dashboard",
            "/crm/marketing/health",
            "/crm/marketing/platforms",
            "/crm/marketing/social-profiles",
            "/crm/marketing/events?limit=20",
            "/crm/audiences/aud-spring-prospects/reach",
            "/crm/marketing/campaigns/camp-schemas/analytics",
        ] {
            let reply = app.admin(Method::GET, path).send().await;
            assert_eq!(reply.status, 200, "{path}: {}", reply.text);
            let template = match path.split('?').next().unwrap() {
                "/crm/audiences/aud-spring-prospects/reach" => "/crm/audiences/{id}/reach",
                "/crm/marketing/campaigns/camp-schemas/analytics" => {
                    "/crm/marketing/campaigns/{id}/analytics"
                }
                other => other,
            };
            assert_documented(&reply, "GET", template);
        }
    }
);
