use herald_domain::spec::Channel;
use serde_json::json;
use wiremock::matchers::{bearer_token, body_partial_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{adapter, connection, post};

#[tokio::test]
async fn a_post_is_published_as_the_organization_and_comes_back_with_the_restli_id() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/rest/posts"))
        .and(bearer_token("linkedin-token-secret"))
        .and(header("linkedin-version", "202505"))
        .and(header("x-restli-protocol-version", "2.0.0"))
        .and(header("content-type", "application/json"))
        .and(body_partial_json(json!({
            "author": "urn:li:organization:2414183",
            // Little-text markup characters are escaped so LinkedIn shows them as typed.
            "commentary": "Spring sale \\(today only\\) \\#deals",
            "visibility": "PUBLIC",
            "distribution": {"feedDistribution": "MAIN_FEED"},
            "lifecycleState": "PUBLISHED",
            "content": {"article": {"source": "https://acme.test/sale", "title": "Spring sale"}},
        })))
        .respond_with(
            ResponseTemplate::new(201)
                .insert_header("x-restli-id", "urn:li:share:6844785523593134080"),
        )
        .expect(1)
        .mount(&server)
        .await;
    let config = connection(
        "linkedin",
        json!({"baseUrl": server.uri()}),
        json!({"accessToken": "linkedin-token-secret"}),
    );
    let mut message = post(
        Channel::Linkedin,
        "2414183",
        "Spring sale (today only) #deals",
    );
    message.link = Some("https://acme.test/sale".to_owned());
    message.subject = Some("Spring sale".to_owned());

    let receipt = adapter(&config).send(&message).await.unwrap();

    assert_eq!(
        receipt.provider_message_id.as_deref(),
        Some("urn:li:share:6844785523593134080")
    );
}

#[tokio::test]
async fn a_person_author_and_a_pinned_api_version_come_from_the_settings() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/rest/posts"))
        .and(header("linkedin-version", "202601"))
        .and(body_partial_json(json!({"author": "urn:li:person:abc123"})))
        .respond_with(ResponseTemplate::new(201).insert_header("x-restli-id", "urn:li:share:1"))
        .expect(1)
        .mount(&server)
        .await;
    let config = connection(
        "linkedin",
        json!({"baseUrl": server.uri(), "authorType": "person", "linkedinVersion": "202601"}),
        json!({"accessToken": "linkedin-token-secret"}),
    );

    let receipt = adapter(&config)
        .send(&post(Channel::Linkedin, "abc123", "Hello"))
        .await
        .unwrap();

    assert_eq!(
        receipt.provider_message_id.as_deref(),
        Some("urn:li:share:1")
    );
}
