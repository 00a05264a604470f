use serde_json::json;
use wiremock::matchers::{basic_auth, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{adapter, connection, form_fields, sms};

#[tokio::test]
async fn an_sms_is_posted_to_the_account_messages_and_comes_back_with_the_sid() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/2010-04-01/Accounts/AC0123/Messages.json"))
        .and(basic_auth("AC0123", "twilio-token-secret"))
        .and(form_fields(&[
            ("To", "+14155550100"),
            ("From", "+15005550006"),
            ("Body", "Sale today: acme.test/s"),
            (
                "StatusCallback",
                "https://herald.test/connect/webhooks/twilio/conn-1",
            ),
        ]))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "sid": "SM0123456789abcdef0123456789abcdef",
            "status": "queued",
        })))
        .expect(1)
        .mount(&server)
        .await;
    let config = connection(
        "twilio",
        json!({"baseUrl": server.uri(), "fromNumber": "+15005550006"}),
        json!({"accountSid": "AC0123", "authToken": "twilio-token-secret"}),
    );
    let mut message = sms("+14155550100", "Sale today: acme.test/s");
    message.status_callback = Some("https://herald.test/connect/webhooks/twilio/conn-1".to_owned());

    let receipt = adapter(&config).send(&message).await.unwrap();

    assert_eq!(
        receipt.provider_message_id.as_deref(),
        Some("SM0123456789abcdef0123456789abcdef")
    );
}
