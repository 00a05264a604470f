//! The OpenAPI document (`api.md` section 13): it lists exactly the routes the router serves,
//! the server answers every route it lists, and it is served without a token at
//! `/openapi.json` and `/api/openapi.json`.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::Value;

use crate::db_test;
use crate::helpers::TestApp;

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
