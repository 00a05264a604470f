//! Mailgun webhooks: one JSON event per post, `{"signature": {timestamp, token, signature},
//! "event-data": {...}}`, where `signature` is the hex HMAC-SHA256 of `timestamp + token` with
//! the domain's HTTP webhook signing key.

use chrono::{DateTime, Utc};
use herald_domain::engagement::EngagementType;
use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;

use super::{
    bad_signature, check_timestamp, classification, flag, link, malformed, reason, text, unix_time,
    Incoming, MessageKey, Parsed, Target, VendorEvent, WebhookError, MESSAGE_KEY_ARG,
};

/// The credential holding Mailgun's HTTP webhook signing key (not the API key).
pub const SECRET_FIELD: &str = "webhookSigningKey";

/// A Mailgun post, parsed: its signature lives in the body.
#[derive(Debug)]
pub struct Request {
    body: Map<String, Value>,
}

impl Request {
    pub(super) fn read(incoming: Incoming<'_>) -> Result<Request, WebhookError> {
        let value: Value = serde_json::from_slice(incoming.body)
            .map_err(|e| malformed(format!("the body is not valid JSON: {e}")))?;
        match value {
            Value::Object(body) => Ok(Request { body }),
            _ => Err(malformed(
                "the body must be a JSON object with signature and event-data",
            )),
        }
    }

    pub(super) fn verify(&self, signing_key: &str, now: DateTime<Utc>) -> Result<(), WebhookError> {
        let Some(signature) = self.body.get("signature").and_then(Value::as_object) else {
            return Err(bad_signature("the body has no signature object"));
        };
        let timestamp = match signature.get("timestamp") {
            Some(Value::String(s)) => s.trim().to_string(),
            Some(Value::Number(n)) => n.to_string(),
            _ => return Err(bad_signature("the signature has no timestamp")),
        };
        let token =
            text(signature, "token").ok_or_else(|| bad_signature("the signature has no token"))?;
        let seconds: i64 = timestamp
            .parse()
            .map_err(|_| bad_signature("the signature timestamp is not a number"))?;
        check_timestamp(seconds, now, super::MAILGUN_MAX_SIGNATURE_AGE)?;
        // A subaccount's events also carry the primary account's signature.
        let matches = ["signature", "parent-signature"]
            .iter()
            .filter_map(|field| text(signature, field))
            .any(|hex_signature| signs(signing_key, &timestamp, token, hex_signature));
        if matches {
            Ok(())
        } else {
            Err(bad_signature("the signature does not match"))
        }
    }

    /// The signature's token, Mailgun's defence against replay: one use per token.
    pub(super) fn token(&self) -> Option<&str> {
        self.body
            .get("signature")
            .and_then(Value::as_object)
            .and_then(|signature| text(signature, "token"))
    }

    pub(super) fn events(&self) -> Result<Parsed, WebhookError> {
        let data = self
            .body
            .get("event-data")
            .and_then(Value::as_object)
            .ok_or_else(|| malformed("the body has no event-data object"))?;
        if let Some(soft) = soft_bounce(data) {
            return Ok(Parsed {
                soft_bounces: vec![soft],
                ..Parsed::default()
            });
        }
        Ok(match event(data) {
            Some(event) => Parsed {
                events: vec![event],
                ..Parsed::default()
            },
            None => Parsed {
                ignored: 1,
                ..Parsed::default()
            },
        })
    }
}

/// Whether `hex_signature` is the HMAC-SHA256 of `timestamp + token` (compared in constant time).
fn signs(key: &str, timestamp: &str, token: &str, hex_signature: &str) -> bool {
    let Ok(expected) = hex::decode(hex_signature) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes any key");
    mac.update(timestamp.as_bytes());
    mac.update(token.as_bytes());
    mac.verify_slice(&expected).is_ok()
}

/// A temporary failure (`failed` with `severity: temporary`), read like a bounce: a soft bounce.
fn soft_bounce(data: &Map<String, Value>) -> Option<VendorEvent> {
    if text(data, "event") != Some("failed") || text(data, "severity") != Some("temporary") {
        return None;
    }
    let mut permanent = data.clone();
    permanent.insert("severity".into(), Value::String("permanent".into()));
    event(&permanent).filter(|e| e.kind == EngagementType::Bounce)
}

/// One event, or `None` for types Herald ignores (`accepted`, `stored`, temporary failures...)
/// and events without an `id`.
fn event(data: &Map<String, Value>) -> Option<VendorEvent> {
    let name = text(data, "event")?;
    let failure_reason = text(data, "reason");
    let kind = match name {
        "delivered" => EngagementType::Delivery,
        "failed" if text(data, "severity") == Some("permanent") => {
            // `suppress-*`: Mailgun did not even try, because the address is on a list.
            if failure_reason.is_some_and(|r| r.starts_with("suppress-")) {
                EngagementType::Dropped
            } else {
                EngagementType::Bounce
            }
        }
        "opened" => EngagementType::Open,
        "clicked" => EngagementType::Click,
        "unsubscribed" => EngagementType::Unsubscribe,
        "complained" => EngagementType::Complaint,
        _ => return None,
    };
    let event_id = text(data, "id")?;
    let status = data.get("delivery-status").and_then(Value::as_object);
    let bounce_reason = match kind {
        EngagementType::Bounce => status
            .and_then(|s| s.get("code"))
            .and_then(|code| match code {
                Value::Number(n) => Some(n.to_string()),
                Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
                _ => None,
            })
            .map(|code| match failure_reason {
                Some(r) => format!("{r} {code}"),
                None => code,
            })
            .or_else(|| failure_reason.map(str::to_string)),
        EngagementType::Dropped => failure_reason.map(str::to_string),
        _ => None,
    };
    let client = data.get("client-info").and_then(Value::as_object);
    let is_click_or_open = matches!(kind, EngagementType::Open | EngagementType::Click);
    let mut provider_ids = Vec::new();
    let message_id = data
        .get("message")
        .and_then(|m| m.get("headers"))
        .and_then(|h| h.get("message-id"))
        .and_then(Value::as_str)
        .map(|id| id.trim().trim_start_matches('<').trim_end_matches('>'))
        .filter(|id| !id.is_empty());
    if let Some(id) = message_id {
        // The send's answer gives the id in angle brackets; the event's header has none.
        provider_ids.push(format!("<{id}>"));
        provider_ids.push(id.to_string());
    }
    let message_key = data
        .get("user-variables")
        .and_then(Value::as_object)
        .and_then(|vars| text(vars, MESSAGE_KEY_ARG))
        .and_then(MessageKey::parse);
    Some(VendorEvent {
        event_id: event_id.to_string(),
        kind,
        classification: classification(
            is_click_or_open && flag(client.and_then(|c| c.get("bot"))),
            is_click_or_open
                .then(|| client.and_then(|c| text(c, "user-agent")))
                .flatten(),
        ),
        occurred_at: unix_time(data.get("timestamp")),
        link: (kind == EngagementType::Click)
            .then(|| link(text(data, "url")))
            .flatten(),
        reason: reason(bounce_reason.as_deref()),
        target: Target {
            message_key,
            provider_ids,
            phone: None,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_domain::engagement::Classification;
    use serde_json::json;

    fn sign(key: &str, timestamp: &str, token: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
        mac.update(timestamp.as_bytes());
        mac.update(token.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    fn request(body: Value) -> Request {
        Request {
            body: body.as_object().unwrap().clone(),
        }
    }

    #[test]
    fn the_signature_is_an_hmac_of_timestamp_and_token() {
        let now = Utc::now();
        let timestamp = now.timestamp().to_string();
        let token = "e0b5477167110d68991efc6b9f89f0a11066af27834600e123";
        let good = sign("signing-key", &timestamp, token);
        let body = |signature: &str| {
            json!({"signature": {"timestamp": timestamp, "token": token, "signature": signature},
                   "event-data": {"event": "delivered", "id": "x"}})
        };
        assert_eq!(request(body(&good)).verify("signing-key", now), Ok(()));
        assert!(request(body(&good)).verify("another-key", now).is_err());
        assert!(request(body("zz")).verify("signing-key", now).is_err());
        assert!(request(json!({"event-data": {}}))
            .verify("signing-key", now)
            .is_err());
        let later = now + chrono::Duration::days(2);
        assert!(request(body(&good)).verify("signing-key", later).is_err());
        let parent = json!({"signature": {"timestamp": timestamp, "token": token,
            "signature": "00", "parent-signature": good}});
        assert_eq!(request(parent).verify("signing-key", now), Ok(()));
    }

    #[test]
    fn failures_are_bounces_or_drops_by_severity_and_reason() {
        let failed = |severity: &str, reason: &str| {
            request(
                json!({"event-data": {"event": "failed", "id": "f", "severity": severity,
                "reason": reason, "delivery-status": {"code": 550}}}),
            )
            .events()
            .unwrap()
        };
        let bounce = failed("permanent", "bounce");
        assert_eq!(bounce.events[0].kind, EngagementType::Bounce);
        assert_eq!(bounce.events[0].reason.as_deref(), Some("bounce 550"));
        let drop = failed("permanent", "suppress-bounce");
        assert_eq!(drop.events[0].kind, EngagementType::Dropped);
        let soft = failed("temporary", "generic");
        assert!(soft.events.is_empty());
        assert_eq!(soft.ignored, 0);
        assert_eq!(soft.soft_bounces[0].kind, EngagementType::Bounce);
        assert_eq!(soft.soft_bounces[0].reason.as_deref(), Some("generic 550"));
    }

    #[test]
    fn opens_flagged_as_bots_are_machines_and_message_ids_are_tried_both_ways() {
        let parsed = request(
            json!({"event-data": {"event": "opened", "id": "o", "timestamp": 1521243339.873676,
            "client-info": {"bot": "apple", "user-agent": "Mozilla/5.0"},
            "message": {"headers": {"message-id": "20130503182626.18666.16540@acme.test"}},
            "user-variables": {"herald_message_key": "run-1:ct-1:email"}}}),
        )
        .events()
        .unwrap();
        let open = &parsed.events[0];
        assert_eq!(open.classification, Classification::Machine);
        assert_eq!(
            open.target.provider_ids,
            [
                "<20130503182626.18666.16540@acme.test>",
                "20130503182626.18666.16540@acme.test"
            ]
        );
        assert_eq!(open.target.message_key.as_ref().unwrap().run_id, "run-1");
        assert!(matches!(
            request(json!({"signature": {}})).events(),
            Err(WebhookError::Malformed(_))
        ));
    }
}
