//! The OpenAPI document (`api.md` section 13): it lists exactly the routes the router serves,
//! the server answers every route it lists, and it is served without a token at
//! `/openapi.json` and `/api/openapi.json`.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::Value;

use crate::db_test;
use crate::helpers::{seed_campaign, Reply, TestApp};
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
