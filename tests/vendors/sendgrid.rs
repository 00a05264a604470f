use serde_json::json;
use wiremock::matchers::{bearer_token, body_partial_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{adapter, connection, email, IDEMPOTENCY_KEY, UNSUBSCRIBE_URL};

#[tokio::test]
async fn an_email_goes_to_mail_send_with_the_api_key_and_comes_back_with_the_message_id() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v3/mail/send"))
        .and(bearer_token("SG.sendgrid-secret"))
        .and(header("content-type", "application/json"))
        .and(body_partial_json(json!({
            "personalizations": [{"to": [{"email": "ada@example.test"}]}],
            "from": {"email": "news@acme.test", "name": "Acme"},
            "subject": "Spring sale",
            "content": [
                {"type": "text/plain", "value": "Hello Ada, the sale starts today."},
                {"type": "text/html", "value": "<p>Hello Ada, the sale starts today.</p>"},
            ],
            "headers": {
                "List-Unsubscribe": UNSUBSCRIBE_URL,
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            },
            "custom_args": {"herald_message_key": IDEMPOTENCY_KEY},
            "tracking_settings": {"click_tracking": {"enable": false}, "open_tracking": {"enable": false}},
        })))
        .respond_with(ResponseTemplate::new(202).insert_header("X-Message-Id", "sg-msg-1"))
        .expect(1)
        .mount(&server)
        .await;
    let config = connection(
        "sendgrid",
        json!({"baseUrl": server.uri(), "fromEmail": "news@acme.test", "fromName": "Acme"}),
        json!({"apiKey": "SG.sendgrid-secret"}),
    );

    let receipt = adapter(&config)
        .send(&email("ada@example.test"))
        .await
        .unwrap();

    assert_eq!(receipt.provider_message_id.as_deref(), Some("sg-msg-1"));
}

#[tokio::test]
async fn an_email_without_content_is_refused_before_calling_sendgrid() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(202))
        .expect(0)
        .mount(&server)
        .await;
    let config = connection(
        "sendgrid",
        json!({"baseUrl": server.uri(), "fromEmail": "news@acme.test"}),
        json!({"apiKey": "SG.sendgrid-secret"}),
    );
    let mut message = email("ada@example.test");
    message.html = None;
    message.text = None;

    let error = adapter(&config).send(&message).await.unwrap_err();

    assert!(!error.is_retryable());
    assert!(error.to_string().contains("html or text"), "{error}");
}
