//! Authentication and tenancy exactly as `api.md` section 1 says.

use base64::Engine;
use herald::auth::Claims;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::json;

use crate::db_test;
use crate::helpers::*;

fn claims(exp_offset: i64) -> Claims {
    Claims {
        sub: "alice".into(),
        exp: chrono::Utc::now().timestamp() + exp_offset,
        orgs: vec!["acme".into()],
        roles: vec!["admin".into()],
        iss: None,
        aud: None,
    }
}

fn b64(value: &serde_json::Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
}

async fn list_with(app: &TestApp, authorization: Option<&str>, org: Option<&str>) -> Reply {
    let mut call = app.anonymous(Method::GET, "/crm/marketing/campaigns");
    if let Some(a) = authorization {
        call = call.header("authorization", a);
    }
    if let Some(o) = org {
        call = call.header("orgid", o);
    }
    call.send().await
}

db_test!(
    bad_tokens_are_401_with_a_bearer_challenge,
    |app: TestApp| async move {
        let expired = encode(
            &Header::new(Algorithm::HS256),
            &claims(-3600),
            &EncodingKey::from_secret(JWT_SECRET.as_bytes()),
        )
        .unwrap();
        let wrong_key = encode(
            &Header::new(Algorithm::HS256),
            &claims(3600),
            &EncodingKey::from_secret(b"another-secret-that-is-32-bytes-long!!"),
        )
        .unwrap();
        let payload = json!({"sub": "alice", "exp": chrono::Utc::now().timestamp() + 3600, "orgs": ["acme"], "roles": ["admin"]});
        let alg_none = format!(
            "{}.{}.",
            b64(&json!({"alg": "none", "typ": "JWT"})),
            b64(&payload)
        );
        let string_exp = encode(
            &Header::new(Algorithm::HS256),
            &json!({"sub": "alice", "exp": "9999999999", "orgs": ["acme"], "roles": ["admin"]}),
            &EncodingKey::from_secret(JWT_SECRET.as_bytes()),
        )
        .unwrap();
        let no_exp = encode(
            &Header::new(Algorithm::HS256),
            &json!({"sub": "alice", "orgs": ["acme"], "roles": ["admin"]}),
            &EncodingKey::from_secret(JWT_SECRET.as_bytes()),
        )
        .unwrap();
        let cases = [
            ("missing", None),
            ("not bearer", Some("Basic YWxpY2U6c2VjcmV0".to_string())),
            ("malformed", Some("Bearer not-a-jwt".to_string())),
            ("expired", Some(format!("Bearer {expired}"))),
            ("wrong key", Some(format!("Bearer {wrong_key}"))),
            ("alg none", Some(format!("Bearer {alg_none}"))),
            ("string exp", Some(format!("Bearer {string_exp}"))),
            ("no exp", Some(format!("Bearer {no_exp}"))),
        ];
        for (name, header) in cases {
            let reply = list_with(&app, header.as_deref(), Some("acme")).await;
            assert_eq!(reply.status, 401, "{name}: {}", reply.text);
            reply.assert_problem(401);
            assert_eq!(reply.header("www-authenticate"), Some("Bearer"), "{name}");
        }
    }
);

db_test!(
    the_orgid_header_scopes_every_request,
    |app: TestApp| async move {
        let bearer = format!("Bearer {}", app.admin);
        let missing = list_with(&app, Some(&bearer), None).await;
        missing.assert_problem(400);
        let foreign = list_with(&app, Some(&bearer), Some("beta")).await;
        foreign.assert_problem(403);
        let ok = list_with(&app, Some(&bearer), Some("acme")).await;
        assert_eq!(ok.status, 200);
    }
);

db_test!(
    read_only_roles_can_read_but_not_write,
    |app: TestApp| async move {
        let created = app.post_campaign(&seed_campaign()).await;
        let id = created.body["id"].as_str().unwrap().to_string();
        for role in ["analyst", "auditor"] {
            let t = token(&["acme"], &[role], "reader");
            let read = app
                .as_user(
                    &t,
                    "acme",
                    Method::GET,
                    &format!("/crm/marketing/campaigns/{id}"),
                )
                .send()
                .await;
            assert_eq!(read.status, 200, "{role}");
            let write = app
                .as_user(&t, "acme", Method::POST, "/crm/marketing/campaigns")
                .json(&seed_campaign())
                .send()
                .await;
            write.assert_problem(403);
            let delete = app
                .as_user(
                    &t,
                    "acme",
                    Method::DELETE,
                    &format!("/crm/marketing/campaigns/{id}"),
                )
                .send()
                .await;
            delete.assert_problem(403);
        }
        let no_roles = token(&["acme"], &[], "nobody");
        let read = app
            .as_user(&no_roles, "acme", Method::GET, "/crm/marketing/campaigns")
            .send()
            .await;
        assert_eq!(read.status, 200);
        let marketer = token(&["acme"], &["marketer"], "mia");
        let write = app
            .as_user(&marketer, "acme", Method::POST, "/crm/marketing/campaigns")
            .json(&seed_campaign())
            .send()
            .await;
        assert_eq!(write.status, 201);
        assert_eq!(write.body["createdBy"], "mia");
        assert_eq!(app.campaign_events(&id).await.len(), 1);
    }
);

db_test!(
    another_orgs_campaign_is_404_on_every_route_and_unchanged,
    |app: TestApp| async move {
        let created = app.post_campaign(&seed_campaign()).await;
        let id = created.body["id"].as_str().unwrap().to_string();
        let beta = token(&["beta"], &["admin"], "bob");
        let path = format!("/crm/marketing/campaigns/{id}");
        let calls = [
            (Method::GET, path.clone(), None),
            (Method::PUT, path.clone(), Some(seed_campaign())),
            (Method::DELETE, path.clone(), None),
            (Method::GET, format!("{path}/events"), None),
            (Method::POST, format!("{path}/launch"), None),
            (Method::POST, format!("{path}/pause"), None),
            (Method::POST, format!("{path}/resume"), None),
            (Method::POST, format!("{path}/complete"), None),
            (Method::GET, format!("{path}/analytics"), None),
            (
                Method::POST,
                format!("{path}/engagements"),
                Some(json!([{"type": "open", "channel": "email", "contactId": "ct-1"}])),
            ),
        ];
        for (method, p, body) in calls {
            let mut call = app.as_user(&beta, "beta", method.clone(), &p);
            if let Some(b) = &body {
                call = call.json(b);
            }
            let reply = call.send().await;
            assert_eq!(reply.status, 404, "{method} {p}: {}", reply.text);
        }
        let still = app.get_campaign(&id).await;
        assert_eq!(still.body, created.body);
        assert_eq!(
            app.campaign_events(&id).await.len(),
            1,
            "beta wrote no event"
        );
        assert!(
            engagements(&app).await.is_empty(),
            "beta recorded no engagement"
        );
        let beta_log = app
            .as_user(&beta, "beta", Method::GET, "/crm/marketing/events")
            .send()
            .await;
        assert_eq!(beta_log.body["items"], json!([]));
    }
);

fn public_key_config(
    backend_url: String,
    dir: &std::path::Path,
    pem: &str,
) -> herald::config::Config {
    let mut config = test_config(backend_url, dir);
    config.jwt_secret = None;
    config.jwt_public_key = Some(pem.to_string());
    config.jwt_issuer = Some("https://id.acme.test".into());
    config.jwt_audience = Some("herald".into());
    config
}

async fn public_key_app(backend: Backend, public: &str) -> TestApp {
    let (url, dir) = fresh_database(backend).await;
    let pem = std::fs::read_to_string(format!(
        "{}/tests/fixtures/{public}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    spawn_with(backend, public_key_config(url, &dir, &pem)).await
}

fn sign_with(alg: Algorithm, private: &str, iss: &str, aud: &str) -> String {
    let pem = std::fs::read(format!(
        "{}/tests/fixtures/{private}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let key = match alg {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem).unwrap(),
        _ => EncodingKey::from_ec_pem(&pem).unwrap(),
    };
    let mut c = claims(3600);
    c.iss = Some(iss.into());
    c.aud = Some(json!(aud));
    encode(&Header::new(alg), &c, &key).unwrap()
}

async fn public_key_tokens_are_checked(backend: Backend) {
    for (alg, private, public) in [
        (
            Algorithm::RS256,
            "rsa-test-private.pem",
            "rsa-test-public.pem",
        ),
        (
            Algorithm::ES256,
            "ec-test-private.pem",
            "ec-test-public.pem",
        ),
    ] {
        let app = public_key_app(backend, public).await;
        let good = sign_with(alg, private, "https://id.acme.test", "herald");
        let ok = list_with(&app, Some(&format!("Bearer {good}")), Some("acme")).await;
        assert_eq!(ok.status, 200, "{alg:?}: {}", ok.text);
        let wrong_aud = sign_with(alg, private, "https://id.acme.test", "someone-else");
        list_with(&app, Some(&format!("Bearer {wrong_aud}")), Some("acme"))
            .await
            .assert_problem(401);
        let wrong_iss = sign_with(alg, private, "https://evil.test", "herald");
        list_with(&app, Some(&format!("Bearer {wrong_iss}")), Some("acme"))
            .await
            .assert_problem(401);
        // An HS256 token is refused when a public key is configured, even one signed with the
        // public key's bytes (the classic algorithm confusion).
        let pem = std::fs::read(format!(
            "{}/tests/fixtures/{public}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let mut c = claims(3600);
        c.iss = Some("https://id.acme.test".into());
        c.aud = Some(json!("herald"));
        let confused = encode(
            &Header::new(Algorithm::HS256),
            &c,
            &EncodingKey::from_secret(&pem),
        )
        .unwrap();
        list_with(&app, Some(&format!("Bearer {confused}")), Some("acme"))
            .await
            .assert_problem(401);
        let hs = encode(
            &Header::new(Algorithm::HS256),
            &c,
            &EncodingKey::from_secret(JWT_SECRET.as_bytes()),
        )
        .unwrap();
        list_with(&app, Some(&format!("Bearer {hs}")), Some("acme"))
            .await
            .assert_problem(401);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rs256_and_es256_tokens_with_issuer_and_audience_on_sqlite() {
    public_key_tokens_are_checked(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rs256_and_es256_tokens_with_issuer_and_audience_on_postgres() {
    public_key_tokens_are_checked(Backend::Postgres).await;
}

db_test!(
    api_only a_token_not_valid_before_a_later_time_is_refused_until_then,
    |app: TestApp| async move {
        let now = chrono::Utc::now().timestamp();
        let signed = |nbf: i64| {
            let payload = json!({"sub": "alice", "exp": now + 7200, "nbf": nbf, "orgs": ["acme"], "roles": ["admin"]});
            encode(
                &Header::new(Algorithm::HS256),
                &payload,
                &EncodingKey::from_secret(JWT_SECRET.as_bytes()),
            )
            .unwrap()
        };
        let later = list_with(&app, Some(&format!("Bearer {}", signed(now + 3600))), Some("acme")).await;
        later.assert_problem(401);
        let already = list_with(&app, Some(&format!("Bearer {}", signed(now - 60))), Some("acme")).await;
        assert_eq!(already.status, 200, "{}", already.text);
    }
);
