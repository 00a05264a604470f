//! Vendor webhooks (SendGrid Event Webhook, Mailgun, Twilio status and inbound SMS): reading
//! each vendor's request, checking its signature with the connection's secret, and turning its
//! events into engagements (docs/webhooks.md).
//!
//! The vendor modules are pure: [`Received::read`] parses what must be parsed before a
//! signature can be checked, [`Received::verify`] checks it against one connection's
//! credentials, and [`Received::events`] reads the vendor's events into [`VendorEvent`]s.
//! [`lookup`] holds the database side: finding the connection, matching an event to the send it
//! reports on, and unsubscribing contacts.

pub mod lookup;
pub mod mailgun;
pub mod sendgrid;
pub mod twilio;

use chrono::{DateTime, TimeZone, Utc};
use herald_domain::connection;
use herald_domain::engagement::{classify, Classification, EngagementType};
use herald_domain::ids::is_valid_id;
use herald_domain::spec::Channel;
use serde_json::{Map, Value};

/// The custom argument every send carries (SendGrid `custom_args`, Mailgun `v:` variable,
/// Twilio `StatusCallback` query): `<runId>:<contactId>:<channel>`.
pub use crate::vendors::MESSAGE_KEY_ARG;

/// How old a signed SendGrid timestamp may be. SendGrid retries failed posts for up to a day
/// and signs each retry with its original timestamp; its signature covers the payload, so a
/// replay inside the window can only repeat events, which are keyed by the vendor's event id.
pub const MAX_SIGNATURE_AGE: chrono::Duration = chrono::Duration::hours(24);

/// How old a signed Mailgun timestamp may be: Mailgun retries a failed post for 8 hours
/// ("Automatic Retries" in its webhook documentation), and its signature covers only the
/// timestamp and token, so the token of each accepted post is remembered for this long and a
/// second use is refused ([`Received::replay_token`]).
pub const MAILGUN_MAX_SIGNATURE_AGE: chrono::Duration = chrono::Duration::hours(8);

/// How far in the future a signed timestamp may be (clock skew).
pub const MAX_CLOCK_SKEW: chrono::Duration = chrono::Duration::minutes(5);

/// Longest click link and reason kept on an engagement.
const MAX_LINK: usize = 2048;
const MAX_REASON: usize = 200;

/// A vendor whose callbacks Herald reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vendor {
    SendGrid,
    Mailgun,
    Twilio,
}

impl Vendor {
    /// The vendor named in the URL, as stored on connections (`sendgrid`).
    pub fn parse(id: &str) -> Option<Vendor> {
        match connection::Vendor::parse(id)? {
            connection::Vendor::SendGrid => Some(Vendor::SendGrid),
            connection::Vendor::Mailgun => Some(Vendor::Mailgun),
            connection::Vendor::Twilio => Some(Vendor::Twilio),
            _ => None,
        }
    }

    /// The connection vendor this is.
    pub fn vendor(self) -> connection::Vendor {
        match self {
            Vendor::SendGrid => connection::Vendor::SendGrid,
            Vendor::Mailgun => connection::Vendor::Mailgun,
            Vendor::Twilio => connection::Vendor::Twilio,
        }
    }

    pub fn id(self) -> &'static str {
        self.vendor().id()
    }
}

/// Why a webhook request was refused. Nothing of it is recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// The body is not what the vendor sends (`400`).
    #[error("{0}")]
    Malformed(String),
    /// The signature is missing, stale or does not match (`403`).
    #[error("{0}")]
    BadSignature(String),
}

fn malformed(message: impl Into<String>) -> WebhookError {
    WebhookError::Malformed(message.into())
}

fn bad_signature(message: impl Into<String>) -> WebhookError {
    WebhookError::BadSignature(message.into())
}

/// The send key `<runId>:<contactId>:<channel>` a message carried.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MessageKey {
    pub run_id: String,
    pub contact_id: String,
    pub channel: Channel,
}

impl MessageKey {
    /// Reads a key; `None` for anything that is not three valid parts.
    pub fn parse(text: &str) -> Option<MessageKey> {
        let mut parts = text.split(':');
        let (run_id, contact_id, channel) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || !is_valid_id(run_id) || !is_valid_id(contact_id) {
            return None;
        }
        Some(MessageKey {
            run_id: run_id.to_string(),
            contact_id: contact_id.to_string(),
            channel: Channel::parse(channel)?,
        })
    }
}

/// What an event tells about the send it reports on; [`lookup::resolve`] tries them in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Target {
    /// The send key the message carried as a custom argument.
    pub message_key: Option<MessageKey>,
    /// Vendor message ids, one of which the send ledger may hold as `provider_message_id`.
    pub provider_ids: Vec<String>,
    /// The sender of an inbound SMS, matched to contacts by phone.
    pub phone: Option<String>,
}

/// One vendor event Herald records.
#[derive(Debug, Clone, PartialEq)]
pub struct VendorEvent {
    /// The vendor's id for the event, unique per vendor: the idempotency key is
    /// `<vendor>:<event_id>`.
    pub event_id: String,
    pub kind: EngagementType,
    pub classification: Classification,
    /// When the vendor says it happened; `None` means now.
    pub occurred_at: Option<DateTime<Utc>>,
    pub link: Option<String>,
    pub reason: Option<String>,
    pub target: Target,
}

/// A request's events: the ones to record, and how many were of types Herald ignores.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parsed {
    pub events: Vec<VendorEvent>,
    pub ignored: usize,
    /// Temporary delivery failures (soft bounces): not engagements, but the third of them
    /// within 30 days suppresses the address (`lookup::soft_bounce`).
    pub soft_bounces: Vec<VendorEvent>,
}

/// A webhook request, read as far as its signature check needs.
#[derive(Debug)]
pub enum Received {
    SendGrid(sendgrid::Request),
    Mailgun(mailgun::Request),
    Twilio(twilio::Request),
}

/// What the HTTP layer hands over: the raw body, the signature headers, and (for Twilio, which
/// signs the URL) the URL the vendor called.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    pub body: &'a [u8],
    pub headers: &'a axum::http::HeaderMap,
    pub url: &'a str,
    /// The URL's query, where a Twilio `StatusCallback` may carry the send key.
    pub query: Option<&'a str>,
}

impl Received {
    /// Reads the request: `Malformed` when a body that carries its own signature (Mailgun) or
    /// is signed as parameters (Twilio) cannot be parsed.
    pub fn read(vendor: Vendor, incoming: Incoming<'_>) -> Result<Received, WebhookError> {
        Ok(match vendor {
            Vendor::SendGrid => Received::SendGrid(sendgrid::Request::read(incoming)),
            Vendor::Mailgun => Received::Mailgun(mailgun::Request::read(incoming)?),
            Vendor::Twilio => Received::Twilio(twilio::Request::read(incoming)?),
        })
    }

    /// Checks the signature with one connection's credentials.
    pub fn verify(
        &self,
        credentials: &Map<String, Value>,
        now: DateTime<Utc>,
    ) -> Result<(), WebhookError> {
        let field = match self {
            Received::SendGrid(_) => sendgrid::SECRET_FIELD,
            Received::Mailgun(_) => mailgun::SECRET_FIELD,
            Received::Twilio(_) => twilio::SECRET_FIELD,
        };
        let secret = credentials
            .get(field)
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| bad_signature(format!("the connection has no credentials.{field}")))?;
        match self {
            Received::SendGrid(request) => request.verify(secret, now),
            Received::Mailgun(request) => request.verify(secret, now),
            Received::Twilio(request) => request.verify(secret),
        }
    }

    /// The one-use token a signature carries, where the signature does not cover the events
    /// (Mailgun): a second post with the same token is a replay, refused for as long as the
    /// signature's timestamp is accepted.
    pub fn replay_token(&self) -> Option<&str> {
        match self {
            Received::Mailgun(request) => request.token(),
            Received::SendGrid(_) | Received::Twilio(_) => None,
        }
    }

    /// The vendor's events (call after [`Received::verify`]).
    pub fn events(&self) -> Result<Parsed, WebhookError> {
        match self {
            Received::SendGrid(request) => request.events(),
            Received::Mailgun(request) => request.events(),
            Received::Twilio(request) => request.events(),
        }
    }
}

/// Checks a signed Unix timestamp against the accepted window.
fn check_timestamp(
    seconds: i64,
    now: DateTime<Utc>,
    max_age: chrono::Duration,
) -> Result<(), WebhookError> {
    let Some(at) = Utc.timestamp_opt(seconds, 0).single() else {
        return Err(bad_signature("the signature timestamp is not a time"));
    };
    if at < now - max_age {
        return Err(bad_signature("the signature timestamp is too old"));
    }
    if at > now + MAX_CLOCK_SKEW {
        return Err(bad_signature("the signature timestamp is in the future"));
    }
    Ok(())
}

/// A Unix time in seconds, as a JSON number (possibly fractional) or numeric string.
fn unix_time(value: Option<&Value>) -> Option<DateTime<Utc>> {
    let seconds = match value? {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    if !seconds.is_finite() || !(0.0..=1e11).contains(&seconds) {
        return None;
    }
    let millis = (seconds * 1000.0).round() as i64;
    Utc.timestamp_millis_opt(millis).single()
}

/// A non-empty string field.
fn text<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    object
        .get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// Cuts text to `max` characters.
fn clip(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

fn reason(text: Option<&str>) -> Option<String> {
    text.map(|t| clip(t, MAX_REASON))
}

fn link(text: Option<&str>) -> Option<String> {
    text.map(|t| clip(t, MAX_LINK))
}

/// Human or machine: the vendor's own flag wins; otherwise the user agent the vendor saw is
/// classified like the tracking routes do. No user agent means the vendor did not say, which is
/// no evidence of a machine.
fn classification(vendor_says_machine: bool, user_agent: Option<&str>) -> Classification {
    if vendor_says_machine {
        return Classification::Machine;
    }
    match user_agent {
        Some(agent) => classify(false, Some(agent)),
        None => Classification::Human,
    }
}

/// A JSON flag that may come as a boolean, `"true"`, or a non-empty label (Mailgun's `bot`).
fn flag(value: Option<&Value>) -> bool {
    match value {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => {
            let s = s.trim();
            !s.is_empty() && !s.eq_ignore_ascii_case("false") && s != "0"
        }
        Some(Value::Number(n)) => n.as_f64().is_some_and(|n| n != 0.0),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_keys_have_three_valid_parts() {
        let key = MessageKey::parse("run-1:ct-9:email").unwrap();
        assert_eq!(key.run_id, "run-1");
        assert_eq!(key.contact_id, "ct-9");
        assert_eq!(key.channel, Channel::Email);
        for bad in [
            "",
            "run-1:ct-9",
            "run-1:ct-9:email:x",
            "run-1:ct-9:fax",
            "run 1:ct-9:sms",
            ":ct-9:sms",
        ] {
            assert_eq!(MessageKey::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn timestamps_outside_the_window_are_refused() {
        let now = Utc.timestamp_opt(1_800_000_000, 0).unwrap();
        let day = MAX_SIGNATURE_AGE;
        assert!(check_timestamp(1_800_000_000, now, day).is_ok());
        assert!(check_timestamp(1_800_000_000 - 23 * 3600, now, day).is_ok());
        assert!(check_timestamp(1_800_000_000 - 25 * 3600, now, day).is_err());
        assert!(check_timestamp(1_800_000_000 + 3600, now, day).is_err());
        assert!(check_timestamp(i64::MAX, now, day).is_err());
        let mailgun = MAILGUN_MAX_SIGNATURE_AGE;
        assert!(check_timestamp(1_800_000_000 - 7 * 3600, now, mailgun).is_ok());
        assert!(check_timestamp(1_800_000_000 - 9 * 3600, now, mailgun).is_err());
    }

    #[test]
    fn unix_times_read_numbers_and_strings() {
        let at = |v: Value| unix_time(Some(&v));
        assert_eq!(
            at(serde_json::json!(1521472262.908181))
                .unwrap()
                .timestamp_millis(),
            1_521_472_262_908
        );
        assert_eq!(
            at(serde_json::json!("1513299569")).unwrap().timestamp(),
            1_513_299_569
        );
        assert_eq!(at(serde_json::json!(-1)), None);
        assert_eq!(at(serde_json::json!("soon")), None);
        assert_eq!(at(serde_json::json!(1e300)), None);
    }

    mod fuzz {
        //! Any body and signature headers, for each vendor: read, verified and parsed into
        //! events or refused, never a panic (issue 15, "Bad input").
        use super::*;
        use proptest::prelude::*;

        fn body() -> impl Strategy<Value = Vec<u8>> {
            prop_oneof![
                prop::collection::vec(any::<u8>(), 0..300),
                "\\PC{0,200}".prop_map(String::into_bytes),
                // JSON of the vendors' shapes with arbitrary values.
                (".{0,20}", any::<i64>(), ".{0,20}").prop_map(|(event, n, text)| {
                    serde_json::to_vec(&serde_json::json!([{
                        "event": event, "sg_event_id": text, "timestamp": n,
                        "email": text, "url": text, "custom_args": {"herald_message_key": text}
                    }]))
                    .unwrap()
                }),
                (".{0,20}", any::<f64>(), ".{0,20}").prop_map(|(event, t, text)| {
                    serde_json::to_vec(&serde_json::json!({
                        "signature": {"timestamp": t.to_string(), "token": text, "signature": text},
                        "event-data": {"event": event, "id": text, "timestamp": t,
                            "severity": text, "recipient": text,
                            "user-variables": {"herald_message_key": text}}
                    }))
                    .unwrap()
                }),
                (".{0,20}", ".{0,30}").prop_map(|(status, text)| {
                    format!("MessageSid={text}&MessageStatus={status}&From={text}&Body={text}&ErrorCode={status}")
                        .into_bytes()
                }),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn any_request_is_read_verified_and_parsed_or_refused(
                vendor in prop::sample::select(vec![Vendor::SendGrid, Vendor::Mailgun, Vendor::Twilio]),
                body in body(),
                signature in ".{0,120}",
                timestamp in ".{0,20}",
                query in proptest::option::of(".{0,60}"),
            ) {
                let mut headers = axum::http::HeaderMap::new();
                for (name, value) in [
                    ("x-twilio-email-event-webhook-signature", &signature),
                    ("x-twilio-email-event-webhook-timestamp", &timestamp),
                    ("x-twilio-signature", &signature),
                    ("content-type", &"application/x-www-form-urlencoded".to_string()),
                ] {
                    if let Ok(value) = axum::http::HeaderValue::from_str(value) {
                        headers.insert(name, value);
                    }
                }
                let incoming = Incoming {
                    body: &body,
                    headers: &headers,
                    url: "https://herald.test/connect/webhooks/x/conn-1",
                    query: query.as_deref(),
                };
                if let Ok(received) = Received::read(vendor, incoming) {
                    let mut credentials = Map::new();
                    for field in [sendgrid::SECRET_FIELD, mailgun::SECRET_FIELD, twilio::SECRET_FIELD] {
                        credentials.insert(field.into(), Value::from(signature.clone()));
                    }
                    let _ = received.verify(&credentials, Utc::now());
                    let _ = received.replay_token();
                    let _ = received.events();
                }
            }
        }
    }
}
