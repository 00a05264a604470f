//! LinkedIn Posts API: `POST /rest/posts`, Bearer token, `LinkedIn-Version` and
//! `X-Restli-Protocol-Version: 2.0.0` headers; the id is the `x-restli-id` response header.
//!
//! The message's `to` is the author: a full URN (`urn:li:organization:123`) is used as is; a bare
//! id becomes `urn:li:{settings.authorType}:{id}`, `authorType` being `organization` (default)
//! or `person`. A link becomes an article card; images need LinkedIn's upload flow and are not
//! sent.

use herald_domain::spec::Channel;
use serde_json::json;

use super::{
    expect_channel, post_text, Adapter, ConnectionConfig, Endpoint, OutboundMessage, Receipt,
    SendError,
};

const VENDOR: &str = "linkedin";
const DEFAULT_BASE: &str = "https://api.linkedin.com";
/// LinkedIn sunsets each monthly version after about a year; `settings.linkedinVersion` overrides.
const DEFAULT_VERSION: &str = "202505";

pub(super) struct LinkedIn {
    endpoint: Endpoint,
    access_token: String,
    version: String,
    author_type: &'static str,
}

impl LinkedIn {
    pub(super) fn from_config(
        config: &ConnectionConfig,
        http: super::Outbound,
    ) -> Result<Self, String> {
        let version = config.setting("linkedinVersion").unwrap_or(DEFAULT_VERSION);
        if !version.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            return Err("linkedin settings.linkedinVersion must look like 202505".into());
        }
        let author_type = match config.setting("authorType").unwrap_or("organization") {
            "organization" => "organization",
            "person" => "person",
            _ => return Err("linkedin settings.authorType must be organization or person".into()),
        };
        Ok(LinkedIn {
            endpoint: Endpoint::new(VENDOR, config, http, DEFAULT_BASE)?,
            access_token: config.credential("accessToken")?,
            version: version.to_owned(),
            author_type,
        })
    }

    fn author(&self, to: &str) -> String {
        if to.starts_with("urn:li:") {
            to.to_owned()
        } else {
            format!("urn:li:{}:{to}", self.author_type)
        }
    }
}

/// Commentary is in LinkedIn's "little text" format, where these characters are markup; left
/// unescaped they can cut the post short or fail it.
fn escape_little_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(
            c,
            '\\' | '|'
                | '{'
                | '}'
                | '@'
                | '['
                | ']'
                | '('
                | ')'
                | '<'
                | '>'
                | '#'
                | '*'
                | '_'
                | '~'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[async_trait::async_trait]
impl Adapter for LinkedIn {
    fn vendor(&self) -> &'static str {
        VENDOR
    }

    async fn send(&self, message: &OutboundMessage) -> Result<Receipt, SendError> {
        expect_channel(VENDOR, message, &[Channel::Linkedin])?;
        let text = post_text(VENDOR, message)?;
        let mut body = json!({
            "author": self.author(&message.to),
            "commentary": escape_little_text(text),
            "visibility": "PUBLIC",
            "distribution": {
                "feedDistribution": "MAIN_FEED",
                "targetEntities": [],
                "thirdPartyDistributionChannels": [],
            },
            "lifecycleState": "PUBLISHED",
            "isReshareDisabledByAuthor": false,
        });
        if let Some(link) = &message.link {
            let title = message.subject.as_deref().unwrap_or(link);
            body["content"] = json!({"article": {"source": link, "title": title}});
        }
        let url = self.endpoint.url(&["rest", "posts"])?;
        let request = self
            .endpoint
            .http
            .post(url)
            .bearer_auth(&self.access_token)
            .header("LinkedIn-Version", &self.version)
            .header("X-Restli-Protocol-Version", "2.0.0")
            .json(&body);
        let reply = self.endpoint.call(request).await?;
        Ok(Receipt {
            provider_message_id: reply.header("x-restli-id"),
        })
    }
}
