//! SendGrid Event Webhook: a JSON array of events, signed with ECDSA P-256 over
//! `timestamp + raw body` (headers `X-Twilio-Email-Event-Webhook-Signature`, base64 DER, and
//! `X-Twilio-Email-Event-Webhook-Timestamp`).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, Utc};
use herald_domain::engagement::EngagementType;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;
use serde_json::{Map, Value};

use super::{
    bad_signature, check_timestamp, classification, flag, link, malformed, reason, text, unix_time,
    Incoming, MessageKey, Parsed, Target, VendorEvent, WebhookError, MESSAGE_KEY_ARG,
};

/// The credential holding the Signed Event Webhook's public key (base64 DER, as SendGrid shows
/// it, or PEM).
pub const SECRET_FIELD: &str = "webhookVerificationKey";

pub const SIGNATURE_HEADER: &str = "x-twilio-email-event-webhook-signature";
pub const TIMESTAMP_HEADER: &str = "x-twilio-email-event-webhook-timestamp";

/// A SendGrid post: verified over the raw bytes before anything is parsed.
#[derive(Debug)]
pub struct Request {
    body: Vec<u8>,
    signature: Option<String>,
    timestamp: Option<String>,
}

impl Request {
    pub(super) fn read(incoming: Incoming<'_>) -> Request {
        let header = |name: &str| {
            incoming
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.trim().to_string())
        };
        Request {
            body: incoming.body.to_vec(),
            signature: header(SIGNATURE_HEADER),
            timestamp: header(TIMESTAMP_HEADER),
        }
    }

    pub(super) fn verify(&self, public_key: &str, now: DateTime<Utc>) -> Result<(), WebhookError> {
        let (Some(signature), Some(timestamp)) = (&self.signature, &self.timestamp) else {
            return Err(bad_signature(
                "the request is not signed (X-Twilio-Email-Event-Webhook-Signature and -Timestamp)",
            ));
        };
        let seconds: i64 = timestamp
            .parse()
            .map_err(|_| bad_signature("the signature timestamp is not a number"))?;
        check_timestamp(seconds, now, super::MAX_SIGNATURE_AGE)?;
        let key = verifying_key(public_key).ok_or_else(|| {
            bad_signature("the connection's webhookVerificationKey is not a P-256 public key")
        })?;
        let signature = STANDARD
            .decode(signature)
            .ok()
            .and_then(|der| {
                Signature::from_der(&der)
                    .or_else(|_| Signature::from_slice(&der))
                    .ok()
            })
            .ok_or_else(|| bad_signature("the signature is not a base64 ECDSA signature"))?;
        let mut signed = Vec::with_capacity(timestamp.len() + self.body.len());
        signed.extend_from_slice(timestamp.as_bytes());
        signed.extend_from_slice(&self.body);
        key.verify(&signed, &signature)
            .map_err(|_| bad_signature("the signature does not match"))
    }

    pub(super) fn events(&self) -> Result<Parsed, WebhookError> {
        let value: Value = serde_json::from_slice(&self.body)
            .map_err(|e| malformed(format!("the body is not valid JSON: {e}")))?;
        let Value::Array(items) = value else {
            return Err(malformed("the body must be a JSON array of events"));
        };
        let mut parsed = Parsed::default();
        for item in &items {
            match item.as_object().and_then(event) {
                Some(event) if item.as_object().is_some_and(is_soft) => {
                    parsed.soft_bounces.push(event)
                }
                Some(event) => parsed.events.push(event),
                None => parsed.ignored += 1,
            }
        }
        Ok(parsed)
    }
}

/// Reads the key as PEM, or as base64 DER (SubjectPublicKeyInfo, what SendGrid's settings
/// page and API hand out; a bare SEC1 point is accepted too).
pub fn verifying_key(text: &str) -> Option<VerifyingKey> {
    let text = text.trim();
    if text.starts_with("-----BEGIN") {
        return VerifyingKey::from_public_key_pem(text).ok();
    }
    let compact: String = text.split_whitespace().collect();
    let der = STANDARD.decode(compact).ok()?;
    VerifyingKey::from_public_key_der(&der)
        .or_else(|_| VerifyingKey::from_sec1_bytes(&der))
        .ok()
}

/// Whether an event is a soft bounce: a `deferred` delivery (the receiving server asked
/// SendGrid to try again later) or a `bounce` of `type: "blocked"` (refused for now, not an
/// invalid address).
fn is_soft(object: &Map<String, Value>) -> bool {
    match text(object, "event") {
        Some("deferred") => true,
        Some("bounce") => text(object, "type") == Some("blocked"),
        _ => false,
    }
}

/// One event, or `None` for the types Herald ignores (`processed`, `group_resubscribe`,
/// account events) and events without an `sg_event_id`. A soft bounce ([`is_soft`]) reads as a
/// bounce.
fn event(object: &Map<String, Value>) -> Option<VendorEvent> {
    let kind = match text(object, "event")? {
        "delivered" => EngagementType::Delivery,
        "bounce" | "deferred" => EngagementType::Bounce,
        "dropped" => EngagementType::Dropped,
        "spamreport" => EngagementType::Complaint,
        "unsubscribe" | "group_unsubscribe" => EngagementType::Unsubscribe,
        "open" => EngagementType::Open,
        "click" => EngagementType::Click,
        _ => return None,
    };
    let event_id = text(object, "sg_event_id")?;
    let engagement_reason = match kind {
        EngagementType::Bounce => {
            text(object, "bounce_classification").or_else(|| text(object, "type"))
        }
        EngagementType::Dropped => text(object, "reason"),
        _ => None,
    };
    let is_click_or_open = matches!(kind, EngagementType::Open | EngagementType::Click);
    let mut provider_ids = Vec::new();
    if let Some(id) = text(object, "sg_message_id") {
        provider_ids.push(id.to_string());
        // The send's `X-Message-Id` is the part before the first dot.
        if let Some((prefix, _)) = id.split_once('.') {
            provider_ids.push(prefix.to_string());
        }
    }
    Some(VendorEvent {
        event_id: event_id.to_string(),
        kind,
        classification: classification(
            is_click_or_open && flag(object.get("sg_machine_open")),
            is_click_or_open
                .then(|| text(object, "useragent"))
                .flatten(),
        ),
        occurred_at: unix_time(object.get("timestamp")),
        link: (kind == EngagementType::Click)
            .then(|| link(text(object, "url")))
            .flatten(),
        reason: reason(engagement_reason),
        target: Target {
            message_key: text(object, MESSAGE_KEY_ARG).and_then(MessageKey::parse),
            provider_ids,
            phone: None,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_domain::engagement::Classification;
    use p256::ecdsa::signature::Signer;
    use p256::ecdsa::SigningKey;
    use p256::pkcs8::{EncodePublicKey, LineEnding};

    fn key() -> SigningKey {
        SigningKey::from_slice(&[7u8; 32]).unwrap()
    }

    fn request(body: &[u8], timestamp: &str, signature: &str) -> Request {
        Request {
            body: body.to_vec(),
            signature: Some(signature.to_string()),
            timestamp: Some(timestamp.to_string()),
        }
    }

    fn sign(key: &SigningKey, timestamp: &str, body: &[u8]) -> String {
        let mut signed = timestamp.as_bytes().to_vec();
        signed.extend_from_slice(body);
        let signature: Signature = key.sign(&signed);
        STANDARD.encode(signature.to_der().as_bytes())
    }

    #[test]
    fn a_signature_over_timestamp_and_body_verifies_with_der_or_pem_keys() {
        let now = Utc::now();
        let timestamp = now.timestamp().to_string();
        let body = br#"[{"event":"delivered","sg_event_id":"e1"}]"#;
        let signature = sign(&key(), &timestamp, body);
        let public = key().verifying_key().to_public_key_der().unwrap();
        let der = STANDARD.encode(public.as_bytes());
        let pem = key()
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap();
        assert_eq!(
            request(body, &timestamp, &signature).verify(&der, now),
            Ok(())
        );
        assert_eq!(
            request(body, &timestamp, &signature).verify(&pem, now),
            Ok(())
        );

        let tampered = br#"[{"event":"delivered","sg_event_id":"e2"}]"#;
        assert!(request(tampered, &timestamp, &signature)
            .verify(&der, now)
            .is_err());
        let other = SigningKey::from_slice(&[9u8; 32]).unwrap();
        let forged = sign(&other, &timestamp, body);
        assert!(request(body, &timestamp, &forged)
            .verify(&der, now)
            .is_err());
        assert!(request(body, &timestamp, "not base64!")
            .verify(&der, now)
            .is_err());
        assert!(request(body, &timestamp, &signature)
            .verify("garbage", now)
            .is_err());
        let old = (now - chrono::Duration::days(2)).timestamp().to_string();
        let stale = sign(&key(), &old, body);
        assert!(request(body, &old, &stale).verify(&der, now).is_err());
    }

    #[test]
    fn events_map_to_engagements_and_unknown_types_are_ignored() {
        let body = serde_json::json!([
            {"event": "processed", "sg_event_id": "p1", "email": "a@x.test"},
            {"event": "delivered", "sg_event_id": "d1", "timestamp": 1513299569,
             "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
             "herald_message_key": "run-1:ct-1:email"},
            {"event": "open", "sg_event_id": "o1", "sg_machine_open": true, "useragent": "Mozilla/5.0 (iPhone)"},
            {"event": "click", "sg_event_id": "c1", "url": "https://acme.test/x", "useragent": "Mozilla/5.0 (Windows NT 10.0) Chrome/120"},
            {"event": "bounce", "sg_event_id": "b1", "type": "bounce", "bounce_classification": "Invalid Address"},
            {"event": "delivered"},
            "not an object"
        ]);
        let request = Request {
            body: serde_json::to_vec(&body).unwrap(),
            signature: None,
            timestamp: None,
        };
        let parsed = request.events().unwrap();
        assert_eq!(parsed.ignored, 3);
        let kinds: Vec<EngagementType> = parsed.events.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            [
                EngagementType::Delivery,
                EngagementType::Open,
                EngagementType::Click,
                EngagementType::Bounce
            ]
        );
        let delivered = &parsed.events[0];
        assert_eq!(delivered.target.provider_ids[1], "14c5d75ce93");
        assert_eq!(
            delivered.target.message_key.as_ref().unwrap().contact_id,
            "ct-1"
        );
        assert_eq!(delivered.occurred_at.unwrap().timestamp(), 1513299569);
        assert_eq!(parsed.events[1].classification, Classification::Machine);
        assert_eq!(parsed.events[2].classification, Classification::Human);
        assert_eq!(
            parsed.events[2].link.as_deref(),
            Some("https://acme.test/x")
        );
        assert_eq!(parsed.events[3].reason.as_deref(), Some("Invalid Address"));

        for bad in [&b"{\"event\": \"open\"}"[..], b"[1,", b""] {
            let request = Request {
                body: bad.to_vec(),
                signature: None,
                timestamp: None,
            };
            assert!(matches!(request.events(), Err(WebhookError::Malformed(_))));
        }
    }

    #[test]
    fn deferrals_and_blocked_bounces_are_soft_bounces() {
        let body = serde_json::json!([
            {"event": "deferred", "sg_event_id": "s1", "attempt": "2", "response": "400 try again later"},
            {"event": "bounce", "sg_event_id": "s2", "type": "blocked"},
            {"event": "bounce", "sg_event_id": "h1", "type": "bounce"}
        ]);
        let request = Request {
            body: serde_json::to_vec(&body).unwrap(),
            timestamp: None,
            signature: None,
        };
        let parsed = request.events().unwrap();
        let ids = |events: &[VendorEvent]| -> Vec<String> {
            events.iter().map(|e| e.event_id.clone()).collect()
        };
        assert_eq!(ids(&parsed.soft_bounces), ["s1", "s2"]);
        assert_eq!(ids(&parsed.events), ["h1"]);
        assert_eq!(parsed.events[0].kind, EngagementType::Bounce);
    }
}
