//! X API v2: `POST /2/tweets` with an OAuth 2.0 user-context Bearer token and `{"text": ...}`;
//! the id is `data.id` of the answer.
//!
//! X has no link field, so the link is appended to the text (X shortens it); images need the
//! media upload flow and are not sent. X has no idempotency key.

use herald_domain::spec::Channel;
use serde_json::json;

use super::{
    expect_channel, post_text, Adapter, ConnectionConfig, Endpoint, OutboundMessage, Receipt,
    SendError,
};

const VENDOR: &str = "x";
const DEFAULT_BASE: &str = "https://api.x.com";

pub(super) struct X {
    endpoint: Endpoint,
    access_token: String,
}

impl X {
    pub(super) fn from_config(
        config: &ConnectionConfig,
        http: super::Outbound,
    ) -> Result<Self, String> {
        Ok(X {
            endpoint: Endpoint::new(VENDOR, config, http, DEFAULT_BASE)?,
            access_token: config.credential("accessToken")?,
        })
    }
}

#[async_trait::async_trait]
impl Adapter for X {
    fn vendor(&self) -> &'static str {
        VENDOR
    }

    async fn send(&self, message: &OutboundMessage) -> Result<Receipt, SendError> {
        expect_channel(VENDOR, message, &[Channel::X])?;
        let text = post_text(VENDOR, message)?;
        let text = match &message.link {
            Some(link) if !text.contains(link.as_str()) => format!("{text} {link}"),
            _ => text.to_owned(),
        };
        let url = self.endpoint.url(&["2", "tweets"])?;
        let request = self
            .endpoint
            .http
            .post(url)
            .bearer_auth(&self.access_token)
            .json(&json!({"text": text}));
        let reply = self.endpoint.call(request).await?;
        Ok(Receipt {
            provider_message_id: reply.json_id("/data/id"),
        })
    }
}
