//! Twilio Messages: `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`, Basic auth
//! `AccountSid:AuthToken`, form fields; the id is the JSON `sid` of the answer.

use herald_domain::spec::Channel;

use super::{
    expect_channel, permanent, Adapter, ConnectionConfig, Endpoint, OutboundMessage, Receipt,
    SendError,
};

const VENDOR: &str = "twilio";
const DEFAULT_BASE: &str = "https://api.twilio.com";

pub(super) struct Twilio {
    endpoint: Endpoint,
    account_sid: String,
    auth_token: String,
    from_number: String,
}

impl Twilio {
    pub(super) fn from_config(
        config: &ConnectionConfig,
        http: super::Outbound,
    ) -> Result<Self, String> {
        Ok(Twilio {
            endpoint: Endpoint::new(VENDOR, config, http, DEFAULT_BASE)?,
            account_sid: config.credential("accountSid")?,
            auth_token: config.credential("authToken")?,
            from_number: config.required_setting("fromNumber")?,
        })
    }
}

#[async_trait::async_trait]
impl Adapter for Twilio {
    fn vendor(&self) -> &'static str {
        VENDOR
    }

    async fn send(&self, message: &OutboundMessage) -> Result<Receipt, SendError> {
        expect_channel(VENDOR, message, &[Channel::Sms])?;
        let body = message
            .body
            .as_deref()
            .or(message.text.as_deref())
            .filter(|b| !b.trim().is_empty())
            .ok_or_else(|| permanent(VENDOR, "an SMS needs a body"))?;
        let mut form = vec![
            ("To", message.to.as_str()),
            ("From", self.from_number.as_str()),
            ("Body", body),
        ];
        if let Some(callback) = &message.status_callback {
            form.push(("StatusCallback", callback));
        }
        // An image turns the SMS into an MMS where the destination supports it.
        if let Some(image) = &message.image_url {
            form.push(("MediaUrl", image));
        }
        let url =
            self.endpoint
                .url(&["2010-04-01", "Accounts", &self.account_sid, "Messages.json"])?;
        let request = self
            .endpoint
            .http
            .post(url)
            .basic_auth(&self.account_sid, Some(&self.auth_token))
            .form(&form);
        let reply = self.endpoint.call(request).await?;
        Ok(Receipt {
            provider_message_id: reply.json_id("/sid"),
        })
    }
}
