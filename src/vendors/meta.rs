//! Facebook Page and Instagram posts through the Meta Graph API (`meta-graph` vendor); the
//! message's `to` is the Page id or the Instagram professional account (IG user) id.
//!
//! Facebook: `POST /{page-id}/feed` (`message`, `link`), or `POST /{page-id}/photos` (`url`,
//! `caption`) when there is an image and no link. Instagram: `POST /{ig-user-id}/media`
//! (`image_url`, `caption`) creates a container, `POST /{ig-user-id}/media_publish`
//! (`creation_id`) publishes it; Instagram has no text-only posts, so an image is required.
//! The access token travels as the `access_token` form field, never in the URL.

use herald_domain::spec::Channel;
use serde_json::Value;

use super::{
    classify, expect_channel, permanent, post_text, Adapter, ConnectionConfig, Endpoint,
    OutboundMessage, Receipt, Reply, SendError,
};

const VENDOR: &str = "meta-graph";
/// Graph API versions live about two years; `settings.baseUrl` (with the version) overrides it.
const DEFAULT_BASE: &str = "https://graph.facebook.com/v23.0";

/// Graph error codes for throttling (4, 17, 32, 341, 613, 80001) and "temporary, try again" (1,
/// 2), which Graph reports with a 4xx status rather than 429 or 5xx.
const RETRYABLE_GRAPH_CODES: &[i64] = &[1, 2, 4, 17, 32, 341, 613, 80001];

pub(super) struct MetaGraph {
    endpoint: Endpoint,
    access_token: String,
}

impl MetaGraph {
    pub(super) fn from_config(
        config: &ConnectionConfig,
        http: super::Outbound,
    ) -> Result<Self, String> {
        Ok(MetaGraph {
            endpoint: Endpoint::new(VENDOR, config, http, DEFAULT_BASE)?,
            access_token: config.credential("accessToken")?,
        })
    }

    /// One Graph `POST /{node}/{edge}` with form fields plus the access token.
    async fn post(
        &self,
        node: &str,
        edge: &str,
        fields: &[(&str, &str)],
    ) -> Result<Reply, SendError> {
        let url = self.endpoint.url(&[node, edge])?;
        let mut form = fields.to_vec();
        form.push(("access_token", &self.access_token));
        let request = self.endpoint.http.post(url).form(&form);
        let reply = self.endpoint.exchange(request).await?;
        if reply.status.is_success() {
            return Ok(reply);
        }
        if let Some(code) = retryable_graph_code(&reply) {
            return Err(SendError::Retryable {
                vendor: VENDOR.to_owned(),
                reason: format!("HTTP {}, Graph error code {code}", reply.status.as_u16()),
                retry_after: None,
            });
        }
        Err(classify(VENDOR, &reply, &self.endpoint.secrets))
    }

    async fn post_to_page(&self, message: &OutboundMessage) -> Result<Receipt, SendError> {
        let text = message.body.as_deref().or(message.text.as_deref());
        match (&message.image_url, &message.link) {
            (Some(image), None) => {
                let mut fields = vec![("url", image.as_str())];
                if let Some(caption) = text {
                    fields.push(("caption", caption));
                }
                let reply = self.post(&message.to, "photos", &fields).await?;
                Ok(Receipt {
                    provider_message_id: reply.json_id("/post_id").or(reply.json_id("/id")),
                })
            }
            (_, link) => {
                if text.is_none() && link.is_none() {
                    return Err(permanent(
                        VENDOR,
                        "a facebook post needs body text, a link or an image",
                    ));
                }
                let mut fields = Vec::new();
                if let Some(text) = text {
                    fields.push(("message", text));
                }
                if let Some(link) = link {
                    fields.push(("link", link.as_str()));
                }
                let reply = self.post(&message.to, "feed", &fields).await?;
                Ok(Receipt {
                    provider_message_id: reply.json_id("/id"),
                })
            }
        }
    }

    async fn post_to_instagram(&self, message: &OutboundMessage) -> Result<Receipt, SendError> {
        let image = message.image_url.as_deref().ok_or_else(|| {
            permanent(
                VENDOR,
                "an instagram post needs image_url: Instagram publishes media, not text",
            )
        })?;
        let text = post_text(VENDOR, message).ok();
        // Links in captions are not clickable, but dropping the campaign's link would be worse.
        let caption = match (text, &message.link) {
            (Some(text), Some(link)) if !text.contains(link.as_str()) => {
                format!("{text}\n\n{link}")
            }
            (Some(text), _) => text.to_owned(),
            (None, Some(link)) => link.clone(),
            (None, None) => String::new(),
        };
        let mut fields = vec![("image_url", image)];
        if !caption.is_empty() {
            fields.push(("caption", &caption));
        }
        let container = self.post(&message.to, "media", &fields).await?;
        // Without the container id there is nothing to publish; an unreadable 2xx is a glitch.
        let creation_id = container
            .json_id("/id")
            .ok_or_else(|| SendError::Retryable {
                vendor: VENDOR.to_owned(),
                reason: "the media container answer had no id".to_owned(),
                retry_after: None,
            })?;
        let published = self
            .post(
                &message.to,
                "media_publish",
                &[("creation_id", &creation_id)],
            )
            .await?;
        Ok(Receipt {
            provider_message_id: published.json_id("/id"),
        })
    }
}

fn retryable_graph_code(reply: &Reply) -> Option<i64> {
    let body: Value = serde_json::from_str(&reply.body).ok()?;
    let error = body.get("error")?;
    let code = error.get("code").and_then(Value::as_i64).unwrap_or(0);
    let transient = error.get("is_transient").and_then(Value::as_bool) == Some(true);
    (transient || RETRYABLE_GRAPH_CODES.contains(&code)).then_some(code)
}

#[async_trait::async_trait]
impl Adapter for MetaGraph {
    fn vendor(&self) -> &'static str {
        VENDOR
    }

    async fn send(&self, message: &OutboundMessage) -> Result<Receipt, SendError> {
        expect_channel(VENDOR, message, &[Channel::Facebook, Channel::Instagram])?;
        if message.channel == Channel::Instagram {
            self.post_to_instagram(message).await
        } else {
            self.post_to_page(message).await
        }
    }
}
