//! Mailgun Messages: `POST /v3/{domain}/messages`, Basic auth `api:KEY`, form fields; the id is
//! the JSON `id` of the answer.

use super::{
    check_email, Adapter, ConnectionConfig, Endpoint, OutboundMessage, Receipt, SendError,
    MESSAGE_KEY_ARG,
};

const VENDOR: &str = "mailgun";
/// The US region; EU domains set `settings.baseUrl` to `https://api.eu.mailgun.net`.
const DEFAULT_BASE: &str = "https://api.mailgun.net";

pub(super) struct Mailgun {
    endpoint: Endpoint,
    api_key: String,
    domain: String,
    from: String,
}

impl Mailgun {
    pub(super) fn from_config(
        config: &ConnectionConfig,
        http: super::Outbound,
    ) -> Result<Self, String> {
        let from_email = config.required_setting("fromEmail")?;
        let from = match config.setting("fromName") {
            Some(name) => format!("{} <{from_email}>", quote_display_name(name)),
            None => from_email,
        };
        Ok(Mailgun {
            endpoint: Endpoint::new(VENDOR, config, http, DEFAULT_BASE)?,
            api_key: config.credential("apiKey")?,
            domain: config.required_setting("domain")?,
            from,
        })
    }

    fn form(&self, message: &OutboundMessage) -> Vec<(String, String)> {
        let mut form = vec![
            ("from".to_owned(), self.from.clone()),
            ("to".to_owned(), message.to.clone()),
        ];
        let optional = [
            ("subject", &message.subject),
            ("text", &message.text),
            ("html", &message.html),
        ];
        for (key, value) in optional {
            if let Some(value) = value {
                form.push((key.to_owned(), value.clone()));
            }
        }
        for (name, value) in &message.headers {
            form.push((format!("h:{name}"), value.clone()));
        }
        form.push((
            format!("v:{MESSAGE_KEY_ARG}"),
            message.idempotency_key.clone(),
        ));
        // Herald adds its own open pixel and click URLs; Mailgun's would wrap them again.
        form.push(("o:tracking".to_owned(), "no".to_owned()));
        form
    }
}

/// A display name as an RFC 5322 quoted string, so commas or angle brackets in it stay inside
/// and line breaks cannot start a header.
fn quote_display_name(name: &str) -> String {
    let escaped: String = name
        .chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .replace('\\', "\\\\")
        .replace('"', "\\\"");
    format!("\"{escaped}\"")
}

#[async_trait::async_trait]
impl Adapter for Mailgun {
    fn vendor(&self) -> &'static str {
        VENDOR
    }

    async fn send(&self, message: &OutboundMessage) -> Result<Receipt, SendError> {
        check_email(VENDOR, message)?;
        let url = self.endpoint.url(&["v3", &self.domain, "messages"])?;
        let request = self
            .endpoint
            .http
            .post(url)
            .basic_auth("api", Some(&self.api_key))
            .form(&self.form(message));
        let reply = self.endpoint.call(request).await?;
        Ok(Receipt {
            provider_message_id: reply.json_id("/id"),
        })
    }
}
