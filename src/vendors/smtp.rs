//! SMTP submission through lettre: `settings.host`, `port`, `fromEmail`, `tls`
//! (`none` | `starttls` | `tls`, default `starttls`), optional `credentials.username`/`password`.
//!
//! One connection per message: lettre's pool spawns tokio tasks when built and dropped, which
//! would panic wherever an adapter is built or dropped outside a runtime.

use std::time::Duration;

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::{
    check_email, permanent, Adapter, ConnectionConfig, OutboundMessage, RateLimiter, Receipt,
    Secrets, SendError,
};

const VENDOR: &str = "smtp";
/// Per SMTP command; a server slower than this is treated as unavailable.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

pub(super) struct Smtp {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    secrets: Secrets,
    limiter: Option<RateLimiter>,
}

impl Smtp {
    pub(super) fn from_config(config: &ConnectionConfig) -> Result<Self, String> {
        let host = config.required_setting("host")?;
        let port = config
            .settings
            .get("port")
            .and_then(|p| p.as_u64())
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p > 0)
            .ok_or("smtp connection needs settings.port (1 to 65535)")?;
        let from_address: Address = config
            .required_setting("fromEmail")?
            .parse()
            .map_err(|_| "smtp settings.fromEmail is not an email address")?;
        let from = Mailbox::new(config.setting("fromName").map(str::to_owned), from_address);
        let builder = match config.setting("tls").unwrap_or("starttls") {
            "none" => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&host),
            "starttls" => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&host)
                .map_err(|_| "smtp settings.host is not a valid TLS server name")?,
            "tls" => AsyncSmtpTransport::<Tokio1Executor>::relay(&host)
                .map_err(|_| "smtp settings.host is not a valid TLS server name")?,
            _ => return Err("smtp settings.tls must be none, starttls or tls".into()),
        };
        let mut builder = builder.port(port).timeout(Some(COMMAND_TIMEOUT));
        match (
            config.optional_credential("username"),
            config.optional_credential("password"),
        ) {
            (Some(username), Some(password)) => {
                builder = builder.credentials(Credentials::new(username, password));
            }
            (None, None) => {}
            _ => {
                return Err("smtp needs both credentials.username and password, or neither".into())
            }
        }
        Ok(Smtp {
            transport: builder.build(),
            from,
            secrets: config.secrets(),
            limiter: config.rate_limiter()?,
        })
    }

    /// The message as lettre builds it, with a Message-ID Herald chose so it can be reported.
    fn build(&self, message: &OutboundMessage) -> Result<(Message, String), SendError> {
        let to: Mailbox = message
            .to
            .parse()
            .map_err(|_| permanent(VENDOR, "the recipient is not a valid email address"))?;
        let message_id = format!("<{}@{}>", uuid::Uuid::now_v7(), self.from.email.domain());
        let mut builder = Message::builder()
            .from(self.from.clone())
            .to(to)
            .message_id(Some(message_id.clone()));
        if let Some(subject) = &message.subject {
            builder = builder.subject(subject);
        }
        for (name, value) in &message.headers {
            let name = HeaderName::new_from_ascii(name.clone()).map_err(|_| {
                permanent(
                    VENDOR,
                    format!("header {name:?} is not a valid email header"),
                )
            })?;
            builder = builder.raw_header(HeaderValue::new(name, value.clone()));
        }
        let built = match (&message.text, &message.html) {
            (Some(text), Some(html)) => builder.multipart(MultiPart::alternative_plain_html(
                text.clone(),
                html.clone(),
            )),
            (Some(text), None) => builder.singlepart(SinglePart::plain(text.clone())),
            (None, Some(html)) => builder.singlepart(SinglePart::html(html.clone())),
            (None, None) => return Err(permanent(VENDOR, "an email needs html or text content")),
        };
        let email = built.map_err(|e| permanent(VENDOR, format!("invalid message: {e}")))?;
        Ok((email, message_id))
    }

    fn error(&self, error: &lettre::transport::smtp::Error) -> SendError {
        let detail = self.secrets.snippet(&error.to_string());
        if error.is_permanent() {
            permanent(VENDOR, detail)
        } else {
            // 4xx replies, connection and TLS failures: the server may accept it later.
            let reason = if error.is_timeout() {
                "timed out".to_owned()
            } else {
                detail
            };
            SendError::Retryable {
                vendor: VENDOR.to_owned(),
                reason,
                retry_after: None,
            }
        }
    }
}

#[async_trait::async_trait]
impl Adapter for Smtp {
    fn vendor(&self) -> &'static str {
        VENDOR
    }

    async fn send(&self, message: &OutboundMessage) -> Result<Receipt, SendError> {
        check_email(VENDOR, message)?;
        let (email, message_id) = self.build(message)?;
        if let Some(limiter) = &self.limiter {
            limiter.acquire().await;
        }
        self.transport
            .send(email)
            .await
            .map_err(|e| self.error(&e))?;
        Ok(Receipt {
            provider_message_id: Some(message_id),
        })
    }
}
