//! SMTP submission through lettre: `settings.host`, `port`, `fromEmail`, `tls`
//! (`none` | `starttls` | `tls`, default `starttls`), optional `credentials.username`/`password`.
//!
//! One connection per message: lettre's pool spawns tokio tasks when built and dropped, which
//! would panic wherever an adapter is built or dropped outside a runtime.

use std::sync::Arc;
use std::time::Duration;

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::{
    check_email, permanent, Adapter, ConnectionConfig, OutboundMessage, OutboundPolicy,
    RateLimiter, Receipt, Secrets, SendError,
};

const VENDOR: &str = "smtp";
/// Per SMTP command; a server slower than this is treated as unavailable.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

pub(super) struct Smtp {
    host: String,
    port: u16,
    tls: TlsMode,
    credentials: Option<Credentials>,
    policy: Arc<OutboundPolicy>,
    from: Mailbox,
    secrets: Secrets,
    limiter: Option<RateLimiter>,
}

enum TlsMode {
    None,
    StartTls(TlsParameters),
    Wrapper(TlsParameters),
}

impl Smtp {
    pub(super) fn from_config(
        config: &ConnectionConfig,
        policy: Arc<OutboundPolicy>,
    ) -> Result<Self, String> {
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
        let tls_parameters = || {
            TlsParameters::new(host.clone())
                .map_err(|_| "smtp settings.host is not a valid TLS server name")
        };
        let tls = match config.setting("tls").unwrap_or("starttls") {
            "none" => TlsMode::None,
            "starttls" => TlsMode::StartTls(tls_parameters()?),
            "tls" => TlsMode::Wrapper(tls_parameters()?),
            _ => return Err("smtp settings.tls must be none, starttls or tls".into()),
        };
        policy
            .check_literal(&host)
            .map_err(|refusal| format!("smtp settings.host: {refusal}"))?;
        let credentials = match (
            config.optional_credential("username"),
            config.optional_credential("password"),
        ) {
            (Some(username), Some(password)) => Some(Credentials::new(username, password)),
            (None, None) => None,
            _ => {
                return Err("smtp needs both credentials.username and password, or neither".into())
            }
        };
        Ok(Smtp {
            host,
            port,
            tls,
            credentials,
            policy,
            from,
            secrets: config.secrets(),
            limiter: config.rate_limiter()?,
        })
    }

    /// A transport to an address of the host that the outbound policy permits, resolved now
    /// and connected to as resolved (so the name cannot resolve elsewhere between the check
    /// and the connection); TLS still verifies the certificate against the host name.
    async fn transport(&self) -> Result<AsyncSmtpTransport<Tokio1Executor>, SendError> {
        let addresses = self
            .policy
            .resolve(&self.host, self.port)
            .await
            .map_err(|error| {
                if error.kind() == std::io::ErrorKind::PermissionDenied {
                    permanent(VENDOR, format!("settings.host: {error}"))
                } else {
                    SendError::Retryable {
                        vendor: VENDOR.to_owned(),
                        reason: format!("{} could not be resolved: {error}", self.host),
                        retry_after: None,
                    }
                }
            })?;
        let address = addresses.first().ok_or_else(|| SendError::Retryable {
            vendor: VENDOR.to_owned(),
            reason: format!("{} has no address", self.host),
            retry_after: None,
        })?;
        let mut builder =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(address.ip().to_string())
                .port(self.port)
                .timeout(Some(COMMAND_TIMEOUT))
                .tls(match &self.tls {
                    TlsMode::None => Tls::None,
                    TlsMode::StartTls(parameters) => Tls::Required(parameters.clone()),
                    TlsMode::Wrapper(parameters) => Tls::Wrapper(parameters.clone()),
                });
        if let Some(credentials) = &self.credentials {
            builder = builder.credentials(credentials.clone());
        }
        Ok(builder.build())
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
        self.transport()
            .await?
            .send(email)
            .await
            .map_err(|e| self.error(&e))?;
        Ok(Receipt {
            provider_message_id: Some(message_id),
        })
    }
}
