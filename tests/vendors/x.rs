use herald_domain::spec::Channel;
use serde_json::json;
use wiremock::matchers::{bearer_token, body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{adapter, connection, post};

#[tokio::test]
async fn a_post_becomes_a_tweet_with_the_link_appended_and_comes_back_with_its_id() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/2/tweets"))
        .and(bearer_token("x-token-secret"))
        .and(header("content-type", "application/json"))
        .and(body_json(json!({"text": "Spring sale starts today https://acme.test/sale"})))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "data": {"id": "1445880548472328192", "text": "Spring sale starts today https://t.co/x"},
        })))
        .expect(1)
        .mount(&server)
        .await;
    let config = connection(
        "x",
        json!({"baseUrl": server.uri()}),
        json!({"accessToken": "x-token-secret"}),
    );
    let mut message = post(Channel::X, "acme", "Spring sale starts today");
    message.link = Some("https://acme.test/sale".to_owned());

    let receipt = adapter(&config).send(&message).await.unwrap();

    assert_eq!(
        receipt.provider_message_id.as_deref(),
        Some("1445880548472328192")
    );
}
