//! Outbound vendor adapters: turn one [`OutboundMessage`] into one vendor's documented API call.
//!
//! [`adapter_for`] builds the [`Adapter`] for a stored connection (every vendor but `sandbox`,
//! which the caller records itself). Build it once per connection and share it: it holds the
//! connection's [`RateLimiter`]. One file per vendor family; the HTTP plumbing shared by the HTTP
//! vendors ([`classify`] for status codes, the credential scrubbing of error text) lives here.
//!
//! Errors never carry credentials: a failed call is reported by vendor, HTTP status and a short,
//! scrubbed snippet of the vendor's answer, and transport errors never quote the URL (Twilio's
//! URL holds the account SID).

mod ads;
mod linkedin;
mod mailgun;
mod meta;
pub mod outbound;
mod rate_limit;
mod sendgrid;
mod smtp;
mod twilio;
mod x;

use std::collections::BTreeMap;
use std::time::Duration;

use herald_domain::connection::Vendor;
use herald_domain::spec::Channel;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{RequestBuilder, StatusCode, Url};
use serde_json::{Map, Value};

pub use outbound::{Outbound, OutboundPolicy};
pub use rate_limit::RateLimiter;

/// The custom argument (SendGrid `custom_args`, Mailgun `v:` variable) that carries
/// [`OutboundMessage::idempotency_key`], so vendor webhooks can be matched back to the send.
pub const MESSAGE_KEY_ARG: &str = "herald_message_key";

/// The longest `Retry-After` honoured; a vendor asking for more is retried after a day.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

/// How much of a vendor's error body is quoted in a [`SendError`].
const SNIPPET_CHARS: usize = 200;

/// One message to one recipient (email, SMS) or one post from one profile (social).
#[derive(Debug, Clone)]
pub struct OutboundMessage {
    pub channel: Channel,
    /// Email address, E.164 phone number, or the social profile/page id to post from or as.
    pub to: String,
    pub subject: Option<String>,
    pub html: Option<String>,
    pub text: Option<String>,
    /// SMS body or social post text.
    pub body: Option<String>,
    pub link: Option<String>,
    pub image_url: Option<String>,
    /// Extra email headers, e.g. `List-Unsubscribe` and `List-Unsubscribe-Post`.
    pub headers: BTreeMap<String, String>,
    /// `<runId>:<contactId>:<channel>`, passed to vendors that carry custom data.
    pub idempotency_key: String,
    /// Twilio `StatusCallback` URL.
    pub status_callback: Option<String>,
}

/// What the vendor said it accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The vendor's id for the message or post, when its answer carried one.
    pub provider_message_id: Option<String>,
}

/// Why a send failed, and whether trying again later can help.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Throttled (429), vendor-side failure (5xx), timeout or connection error.
    #[error("{vendor} is unavailable ({reason}); will retry")]
    Retryable {
        vendor: String,
        reason: String,
        retry_after: Option<Duration>,
    },
    /// The vendor (or a check before calling it) refused this message; sending it again fails again.
    #[error("{vendor} refused the message: {reason}")]
    Permanent { vendor: String, reason: String },
}

impl SendError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, SendError::Retryable { .. })
    }

    /// The delay the vendor asked for (`Retry-After`), if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            SendError::Retryable { retry_after, .. } => *retry_after,
            SendError::Permanent { .. } => None,
        }
    }
}

/// One vendor connection able to send messages.
#[async_trait::async_trait]
pub trait Adapter: Send + Sync {
    /// The vendor id, as stored on the connection (`sendgrid`).
    fn vendor(&self) -> &'static str;
    async fn send(&self, message: &OutboundMessage) -> Result<Receipt, SendError>;
}

/// A stored connection, with its credentials decrypted.
#[derive(Clone)]
pub struct ConnectionConfig {
    pub vendor: String,
    pub settings: Value,
    pub credentials: Map<String, Value>,
}

impl std::fmt::Debug for ConnectionConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionConfig")
            .field("vendor", &self.vendor)
            .field("settings", &self.settings)
            .field("credentials", &format_args!(".."))
            .finish()
    }
}

/// Builds the adapter for a connection. `Err` names what is wrong (never a secret value): the
/// `sandbox` vendor, an unknown vendor, or a missing credential or setting.
pub fn adapter_for(config: &ConnectionConfig, http: Outbound) -> Result<Box<dyn Adapter>, String> {
    let Some(vendor) = Vendor::parse(&config.vendor) else {
        return Err(format!("no adapter for vendor {:?}", config.vendor));
    };
    Ok(match vendor {
        Vendor::SendGrid => Box::new(sendgrid::SendGrid::from_config(config, http)?),
        Vendor::Mailgun => Box::new(mailgun::Mailgun::from_config(config, http)?),
        Vendor::Smtp => Box::new(smtp::Smtp::from_config(config, http.policy)?),
        Vendor::Twilio => Box::new(twilio::Twilio::from_config(config, http)?),
        Vendor::MetaGraph => Box::new(meta::MetaGraph::from_config(config, http)?),
        Vendor::Linkedin => Box::new(linkedin::LinkedIn::from_config(config, http)?),
        Vendor::X => Box::new(x::X::from_config(config, http)?),
        Vendor::GoogleAds | Vendor::MetaAds => Box::new(ads::Ads::new(vendor.id())),
        Vendor::Sandbox => {
            return Err("the sandbox vendor is recorded by the sender, not sent".into())
        }
    })
}

impl ConnectionConfig {
    fn credential(&self, key: &str) -> Result<String, String> {
        match self.credentials.get(key).and_then(Value::as_str) {
            Some(value) if !value.is_empty() => Ok(value.to_owned()),
            _ => Err(format!(
                "{} connection is missing credentials.{key}",
                self.vendor
            )),
        }
    }

    fn optional_credential(&self, key: &str) -> Option<String> {
        self.credentials
            .get(key)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    }

    fn setting(&self, key: &str) -> Option<&str> {
        self.settings
            .get(key)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
    }

    fn required_setting(&self, key: &str) -> Result<String, String> {
        self.setting(key).map(str::to_owned).ok_or_else(|| {
            format!(
                "{} connection is missing settings.{key} (a string)",
                self.vendor
            )
        })
    }

    /// Every credential value, so error text can be scrubbed of them.
    fn secrets(&self) -> Secrets {
        Secrets(
            self.credentials
                .values()
                .filter_map(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        )
    }

    fn rate_limiter(&self) -> Result<Option<RateLimiter>, String> {
        match self.settings.get("rateLimitPerSecond") {
            None | Some(Value::Null) => Ok(None),
            Some(value) => value
                .as_f64()
                .and_then(RateLimiter::new)
                .map(Some)
                .ok_or_else(|| "settings.rateLimitPerSecond must be a positive number".into()),
        }
    }
}

/// The credential values of one connection, kept to scrub them out of anything quoted back.
#[derive(Clone, Default)]
struct Secrets(Vec<String>);

impl Secrets {
    /// The text with every secret replaced, whitespace collapsed, cut to [`SNIPPET_CHARS`].
    fn snippet(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for secret in &self.0 {
            text = text.replace(secret.as_str(), "[redacted]");
        }
        let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
        let mut out: String = collapsed
            .chars()
            .filter(|c| !c.is_control())
            .take(SNIPPET_CHARS)
            .collect();
        if collapsed.chars().count() > SNIPPET_CHARS {
            out.push('…');
        }
        out
    }
}

/// The vendor's answer to one HTTP call, whatever its status.
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    /// Empty when the body could not be read.
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    }

    /// A string (or number) at a JSON pointer of the body; `None` for a body that is not JSON.
    fn json_id(&self, pointer: &str) -> Option<String> {
        let value: Value = serde_json::from_str(&self.body).ok()?;
        match value.pointer(pointer)? {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }
}

/// One vendor's HTTP endpoint for one connection: client, base URL, pacing and secrets.
struct Endpoint {
    vendor: &'static str,
    http: reqwest::Client,
    base: String,
    secrets: Secrets,
    limiter: Option<RateLimiter>,
}

impl Endpoint {
    /// Base URL from `settings.baseUrl` when present, else the vendor's real one.
    fn new(
        vendor: &'static str,
        config: &ConnectionConfig,
        http: Outbound,
        default_base: &str,
    ) -> Result<Endpoint, String> {
        let base = config.setting("baseUrl").unwrap_or(default_base);
        let parsed =
            Url::parse(base).map_err(|_| format!("{vendor} settings.baseUrl is not a URL"))?;
        if parsed.cannot_be_a_base() || !matches!(parsed.scheme(), "http" | "https") {
            return Err(format!("{vendor} settings.baseUrl must be an http(s) URL"));
        }
        // The resolver checks every name; a literal address is never resolved, so here.
        if let Some(host) = parsed.host_str() {
            http.policy
                .check_literal(host)
                .map_err(|refusal| format!("{vendor} settings.baseUrl: {refusal}"))?;
        }
        Ok(Endpoint {
            vendor,
            http: http.http,
            base: base.trim_end_matches('/').to_owned(),
            secrets: config.secrets(),
            limiter: config.rate_limiter()?,
        })
    }

    /// The base URL with `segments` appended, each percent-encoded (a recipient or page id can
    /// never add path segments or a query).
    fn url(&self, segments: &[&str]) -> Result<Url, SendError> {
        let mut url = Url::parse(&self.base).map_err(|_| self.permanent("invalid base URL"))?;
        url.path_segments_mut()
            .map_err(|_| self.permanent("invalid base URL"))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    fn permanent(&self, reason: impl Into<String>) -> SendError {
        permanent(self.vendor, reason)
    }

    /// Paces, sends and returns the reply whatever its status; only transport failures are `Err`.
    async fn exchange(&self, request: RequestBuilder) -> Result<Reply, SendError> {
        if let Some(limiter) = &self.limiter {
            limiter.acquire().await;
        }
        let response = request
            .send()
            .await
            .map_err(|e| transport_error(self.vendor, &e))?;
        let status = response.status();
        let headers = response.headers().clone();
        // A body that cannot be read after a 2xx still means the vendor accepted the message.
        let body = read_capped(response).await;
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    /// Like [`Endpoint::exchange`], with every non-2xx reply turned into a [`SendError`].
    async fn call(&self, request: RequestBuilder) -> Result<Reply, SendError> {
        let reply = self.exchange(request).await?;
        if reply.status.is_success() {
            Ok(reply)
        } else {
            Err(classify(self.vendor, &reply, &self.secrets))
        }
    }
}

/// Most of a vendor's answer Herald reads: what it needs (an id, an error) is at the start, and
/// a server that streams without end must not grow Herald's memory.
const MAX_VENDOR_BODY: usize = 64 * 1024;

/// The answer's body as text, cut at [`MAX_VENDOR_BODY`] bytes (the rest is not read); empty
/// when it cannot be read.
async fn read_capped(mut response: reqwest::Response) -> String {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = MAX_VENDOR_BODY - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_VENDOR_BODY {
            break;
        }
    }
    String::from_utf8_lossy(&body).into_owned()
}

/// The one mapping from a vendor's non-2xx answer to a [`SendError`]: 408, 429 and 5xx are
/// retryable (honouring `Retry-After`, or X's `x-rate-limit-reset`); everything else, including
/// an unexpected redirect, is permanent.
fn classify(vendor: &str, reply: &Reply, secrets: &Secrets) -> SendError {
    let status = reply.status;
    let label = match status.canonical_reason() {
        Some(reason) => format!("HTTP {} {reason}", status.as_u16()),
        None => format!("HTTP {}", status.as_u16()),
    };
    if status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || status.is_server_error()
    {
        let retry_after = retry_after(&reply.headers);
        let reason = match retry_after {
            Some(delay) => format!("{label}, retry after {}s", delay.as_secs()),
            None => label,
        };
        return SendError::Retryable {
            vendor: vendor.to_owned(),
            reason,
            retry_after,
        };
    }
    let snippet = secrets.snippet(&reply.body);
    let reason = if snippet.is_empty() {
        label
    } else {
        format!("{label}: {snippet}")
    };
    permanent(vendor, reason)
}

/// `Retry-After` as seconds or an HTTP date; failing that, `x-rate-limit-reset` (epoch seconds).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let header = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let now = chrono::Utc::now();
    let delay = if let Some(value) = header(RETRY_AFTER.as_str()) {
        if let Ok(seconds) = value.parse::<f64>() {
            Duration::try_from_secs_f64(seconds).ok()?
        } else {
            let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
            (at.with_timezone(&chrono::Utc) - now)
                .to_std()
                .unwrap_or(Duration::ZERO)
        }
    } else {
        let reset: i64 = header("x-rate-limit-reset")?.parse().ok()?;
        Duration::from_secs(u64::try_from(reset - now.timestamp()).unwrap_or(0))
    };
    Some(delay.min(MAX_RETRY_AFTER))
}

/// A request that got no HTTP answer. The error's own text is not quoted: it carries the URL.
fn transport_error(vendor: &str, error: &reqwest::Error) -> SendError {
    if error.is_builder() {
        return permanent(vendor, "the request could not be built");
    }
    // The outbound policy refused every address of the host: a setting to fix, not a retry.
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::PermissionDenied {
                return permanent(vendor, io.to_string());
            }
        }
        source = cause.source();
    }
    let reason = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "the request failed"
    };
    SendError::Retryable {
        vendor: vendor.to_owned(),
        reason: reason.to_owned(),
        retry_after: None,
    }
}

fn permanent(vendor: &str, reason: impl Into<String>) -> SendError {
    SendError::Permanent {
        vendor: vendor.to_owned(),
        reason: reason.into(),
    }
}

/// Refuses a message on a channel the vendor does not serve (a wiring mistake, never retried).
fn expect_channel(
    vendor: &str,
    message: &OutboundMessage,
    channels: &[Channel],
) -> Result<(), SendError> {
    if channels.contains(&message.channel) {
        Ok(())
    } else {
        Err(permanent(
            vendor,
            format!("{vendor} does not send {} messages", message.channel.id()),
        ))
    }
}

/// The checks every email vendor shares: some content, and headers that cannot inject others.
fn check_email(vendor: &str, message: &OutboundMessage) -> Result<(), SendError> {
    expect_channel(vendor, message, &[Channel::Email])?;
    if message.html.is_none() && message.text.is_none() {
        return Err(permanent(vendor, "an email needs html or text content"));
    }
    for (name, value) in &message.headers {
        let bad_name = name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic() && b != b':');
        if bad_name || value.contains(['\r', '\n']) {
            return Err(permanent(
                vendor,
                format!("header {:?} is not a valid email header", name),
            ));
        }
    }
    Ok(())
}

/// The text of a social post: `body`, else `text`.
fn post_text<'a>(vendor: &str, message: &'a OutboundMessage) -> Result<&'a str, SendError> {
    message
        .body
        .as_deref()
        .or(message.text.as_deref())
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| {
            permanent(
                vendor,
                format!("a {} message needs body text", message.channel.id()),
            )
        })
}
