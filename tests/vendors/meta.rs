use herald_domain::spec::Channel;
use serde_json::json;
use wiremock::matchers::{method, path, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{adapter, connection, form_fields, post};

fn graph(server: &MockServer) -> herald::vendors::ConnectionConfig {
    connection(
        "meta-graph",
        json!({"baseUrl": server.uri()}),
        json!({"accessToken": "meta-token-secret"}),
    )
}

#[tokio::test]
async fn a_facebook_post_goes_to_the_page_feed_with_its_link() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/104000000000001/feed"))
        .and(query_param_is_missing("access_token"))
        .and(form_fields(&[
            ("message", "Spring sale"),
            ("link", "https://acme.test/sale"),
            ("access_token", "meta-token-secret"),
        ]))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"id": "104000000000001_555"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let mut message = post(Channel::Facebook, "104000000000001", "Spring sale");
    message.link = Some("https://acme.test/sale".to_owned());

    let receipt = adapter(&graph(&server)).send(&message).await.unwrap();

    assert_eq!(
        receipt.provider_message_id.as_deref(),
        Some("104000000000001_555")
    );
}

#[tokio::test]
async fn a_facebook_post_with_an_image_and_no_link_is_a_page_photo() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/104000000000001/photos"))
        .and(form_fields(&[
            ("url", "https://cdn.acme.test/sale.jpg"),
            ("caption", "Spring sale"),
            ("access_token", "meta-token-secret"),
        ]))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "777", "post_id": "104000000000001_777",
        })))
        .expect(1)
        .mount(&server)
        .await;
    let mut message = post(Channel::Facebook, "104000000000001", "Spring sale");
    message.image_url = Some("https://cdn.acme.test/sale.jpg".to_owned());

    let receipt = adapter(&graph(&server)).send(&message).await.unwrap();

    assert_eq!(
        receipt.provider_message_id.as_deref(),
        Some("104000000000001_777")
    );
}

#[tokio::test]
async fn an_instagram_post_creates_a_media_container_then_publishes_it() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/17841400000000001/media"))
        .and(query_param_is_missing("access_token"))
        .and(form_fields(&[
            ("image_url", "https://cdn.acme.test/sale.jpg"),
            ("caption", "Spring sale\n\nhttps://acme.test/sale"),
            ("access_token", "meta-token-secret"),
        ]))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "container-9"})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/17841400000000001/media_publish"))
        .and(form_fields(&[
            ("creation_id", "container-9"),
            ("access_token", "meta-token-secret"),
        ]))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "17900000000000042"})))
        .expect(1)
        .mount(&server)
        .await;
    let mut message = post(Channel::Instagram, "17841400000000001", "Spring sale");
    message.image_url = Some("https://cdn.acme.test/sale.jpg".to_owned());
    message.link = Some("https://acme.test/sale".to_owned());

    let receipt = adapter(&graph(&server)).send(&message).await.unwrap();

    assert_eq!(
        receipt.provider_message_id.as_deref(),
        Some("17900000000000042")
    );
}

#[tokio::test]
async fn an_instagram_post_without_an_image_is_refused_before_calling_graph() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;

    let error = adapter(&graph(&server))
        .send(&post(Channel::Instagram, "17841400000000001", "Text only"))
        .await
        .unwrap_err();

    assert!(!error.is_retryable());
    assert!(error.to_string().contains("image_url"), "{error}");
}

#[tokio::test]
async fn graph_throttling_codes_are_retryable_although_the_status_is_400() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": {"message": "(#32) Page request limit reached", "type": "OAuthException", "code": 32},
        })))
        .mount(&server)
        .await;

    let error = adapter(&graph(&server))
        .send(&post(Channel::Facebook, "104000000000001", "Spring sale"))
        .await
        .unwrap_err();

    assert!(error.is_retryable(), "{error}");
}

#[tokio::test]
async fn a_graph_2xx_without_a_container_id_is_retried_rather_than_published_blind() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/17841400000000001/media"))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>proxy</html>"))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/17841400000000001/media_publish"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    let mut message = post(Channel::Instagram, "17841400000000001", "Spring sale");
    message.image_url = Some("https://cdn.acme.test/sale.jpg".to_owned());

    let error = adapter(&graph(&server)).send(&message).await.unwrap_err();

    assert!(error.is_retryable(), "{error}");
}
