//! SendGrid v3 Mail Send: `POST /v3/mail/send`, Bearer API key, JSON body; the id is the
//! `X-Message-Id` response header.

use serde_json::{json, Map, Value};

use super::{
    check_email, Adapter, ConnectionConfig, Endpoint, OutboundMessage, Receipt, SendError,
    MESSAGE_KEY_ARG,
};

const VENDOR: &str = "sendgrid";
const DEFAULT_BASE: &str = "https://api.sendgrid.com";

pub(super) struct SendGrid {
    endpoint: Endpoint,
    api_key: String,
    from_email: String,
    from_name: Option<String>,
}

impl SendGrid {
    pub(super) fn from_config(
        config: &ConnectionConfig,
        http: super::Outbound,
    ) -> Result<Self, String> {
        Ok(SendGrid {
            endpoint: Endpoint::new(VENDOR, config, http, DEFAULT_BASE)?,
            api_key: config.credential("apiKey")?,
            from_email: config.required_setting("fromEmail")?,
            from_name: config.setting("fromName").map(str::to_owned),
        })
    }

    fn body(&self, message: &OutboundMessage) -> Value {
        let mut from = Map::new();
        from.insert("email".into(), json!(self.from_email));
        if let Some(name) = &self.from_name {
            from.insert("name".into(), json!(name));
        }
        // SendGrid wants text/plain before text/html.
        let mut content = Vec::new();
        if let Some(text) = &message.text {
            content.push(json!({"type": "text/plain", "value": text}));
        }
        if let Some(html) = &message.html {
            content.push(json!({"type": "text/html", "value": html}));
        }
        let mut body = json!({
            "personalizations": [{"to": [{"email": message.to}]}],
            "from": from,
            "content": content,
            "custom_args": {MESSAGE_KEY_ARG: message.idempotency_key},
            // Herald adds its own open pixel and click URLs; SendGrid's would wrap them again.
            "tracking_settings": {
                "click_tracking": {"enable": false, "enable_text": false},
                "open_tracking": {"enable": false},
            },
        });
        if let Some(subject) = &message.subject {
            body["subject"] = json!(subject);
        }
        if !message.headers.is_empty() {
            body["headers"] = json!(message.headers);
        }
        body
    }
}

#[async_trait::async_trait]
impl Adapter for SendGrid {
    fn vendor(&self) -> &'static str {
        VENDOR
    }

    async fn send(&self, message: &OutboundMessage) -> Result<Receipt, SendError> {
        check_email(VENDOR, message)?;
        let url = self.endpoint.url(&["v3", "mail", "send"])?;
        let request = self
            .endpoint
            .http
            .post(url)
            .bearer_auth(&self.api_key)
            .json(&self.body(message));
        let reply = self.endpoint.call(request).await?;
        Ok(Receipt {
            provider_message_id: reply.header("x-message-id"),
        })
    }
}
