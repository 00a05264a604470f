use serde_json::json;
use wiremock::matchers::{basic_auth, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{adapter, connection, email, form_fields, IDEMPOTENCY_KEY, UNSUBSCRIBE_URL};

#[tokio::test]
async fn an_email_is_posted_as_a_form_to_the_domain_and_comes_back_with_the_mailgun_id() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v3/mg.acme.test/messages"))
        .and(basic_auth("api", "key-mailgun-secret"))
        .and(form_fields(&[
            ("from", "\"Acme, Inc.\" <news@acme.test>"),
            ("to", "ada@example.test"),
            ("subject", "Spring sale"),
            ("text", "Hello Ada, the sale starts today."),
            ("html", "<p>Hello Ada, the sale starts today.</p>"),
            ("h:List-Unsubscribe", UNSUBSCRIBE_URL),
            ("h:List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
            ("v:herald_message_key", IDEMPOTENCY_KEY),
            ("o:tracking", "no"),
        ]))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "<20240101.1@mg.acme.test>",
            "message": "Queued. Thank you.",
        })))
        .expect(1)
        .mount(&server)
        .await;
    let config = connection(
        "mailgun",
        json!({
            "baseUrl": server.uri(), "domain": "mg.acme.test",
            "fromEmail": "news@acme.test", "fromName": "Acme, Inc.",
        }),
        json!({"apiKey": "key-mailgun-secret"}),
    );

    let receipt = adapter(&config)
        .send(&email("ada@example.test"))
        .await
        .unwrap();

    assert_eq!(
        receipt.provider_message_id.as_deref(),
        Some("<20240101.1@mg.acme.test>")
    );
}
