//! Suppressions: the addresses an org must not message on a channel, keyed by the normalised
//! address (lower-cased email, E.164 phone). Parsing of a suppression body and the events that
//! add and remove one.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::contact::{is_e164, is_email};
use crate::error::FieldError;
use crate::spec::Channel;

/// Type name of the event that puts an address on the list.
pub const ADDED_EVENT_TYPE: &str = "SuppressionAdded";
/// Type name of the event that takes an address off the list.
pub const REMOVED_EVENT_TYPE: &str = "SuppressionRemoved";

/// The channels that reach one person at one address, and so can be suppressed.
pub const SUPPRESSIBLE: [Channel; 2] = [Channel::Email, Channel::Sms];

/// Why an address is suppressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reason {
    /// The person asked: one-click unsubscribe, a vendor's unsubscribe event.
    Unsubscribe,
    /// A hard bounce, or the third soft bounce within 30 days.
    Bounce,
    /// A spam report.
    Complaint,
    /// An admin's entry, or an imported `unsubscribed: {"email": true}`.
    Manual,
}

impl Reason {
    pub fn id(self) -> &'static str {
        match self {
            Reason::Unsubscribe => "unsubscribe",
            Reason::Bounce => "bounce",
            Reason::Complaint => "complaint",
            Reason::Manual => "manual",
        }
    }

    pub fn parse(text: &str) -> Option<Reason> {
        [
            Reason::Unsubscribe,
            Reason::Bounce,
            Reason::Complaint,
            Reason::Manual,
        ]
        .into_iter()
        .find(|r| r.id() == text)
    }
}

/// A suppressible channel from its id (`email`, `sms`).
pub fn parse_channel(text: &str) -> Option<Channel> {
    SUPPRESSIBLE.into_iter().find(|c| c.id() == text)
}

/// The key an address is suppressed under on `channel`: a trimmed, lower-cased email, or an
/// E.164 number. `None` when it is not an address of that channel.
pub fn normalise(channel: Channel, address: &str) -> Option<String> {
    let address = address.trim();
    match channel {
        Channel::Email if is_email(address) => Some(address.to_lowercase()),
        Channel::Sms if is_e164(address) => Some(address.to_string()),
        _ => None,
    }
}

/// What an erased address is suppressed under: `hmac:` and the hex HMAC-SHA256 of org, channel
/// and normalised address under a server secret (`HERALD_ERASURE_KEY`). The list keeps
/// refusing the address without holding it, and without the secret nobody can confirm a
/// guessed address against it.
#[derive(Clone)]
pub struct AddressKey(Vec<u8>);

/// The prefix of a hashed (erased) address.
pub const HASHED_PREFIX: &str = "hmac:";

impl AddressKey {
    pub fn new(secret: &[u8]) -> AddressKey {
        AddressKey(secret.to_vec())
    }

    /// The hashed form of a normalised `address` of `org_id` on `channel`.
    pub fn hashed(&self, org_id: &str, channel: Channel, address: &str) -> String {
        use hmac::{Hmac, Mac};
        let mut mac =
            Hmac::<sha2::Sha256>::new_from_slice(&self.0).expect("HMAC takes a key of any length");
        // Lengths first, so no two (org, channel, address) triples feed the same bytes.
        for part in [org_id, channel.id(), address] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part.as_bytes());
        }
        let digest = mac.finalize().into_bytes();
        let mut out = String::with_capacity(HASHED_PREFIX.len() + 64);
        out.push_str(HASHED_PREFIX);
        for byte in digest {
            out.push_str(&format!("{byte:02x}"));
        }
        out
    }
}

impl std::fmt::Debug for AddressKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AddressKey(..)")
    }
}

/// A validated `POST /crm/suppressions` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuppressionInput {
    pub channel: Channel,
    pub address: String,
    pub reason: Reason,
}

/// Checks a suppression body, reporting every invalid field. `reason` defaults to `manual`.
pub fn parse_suppression(value: &Value) -> Result<SuppressionInput, Vec<FieldError>> {
    let Some(object) = value.as_object() else {
        return Err(vec![FieldError::new("body", "must be a JSON object")]);
    };
    let mut errors = Vec::new();
    let channel = match object.get("channel").and_then(Value::as_str) {
        Some(text) => parse_channel(text),
        None => None,
    };
    if channel.is_none() {
        errors.push(FieldError::new("channel", "must be \"email\" or \"sms\""));
    }
    let address = match (channel, object.get("address").and_then(Value::as_str)) {
        (_, None) => {
            errors.push(FieldError::new("address", "must be a string"));
            None
        }
        (None, Some(_)) => None,
        (Some(channel), Some(text)) => {
            let normalised = normalise(channel, text);
            if normalised.is_none() {
                errors.push(FieldError::new(
                    "address",
                    match channel {
                        Channel::Sms => "must be an E.164 number like +14155550100",
                        _ => "must be an email address like name@example.com",
                    },
                ));
            }
            normalised
        }
    };
    let reason = match object.get("reason") {
        None | Some(Value::Null) => Some(Reason::Manual),
        Some(Value::String(text)) => Reason::parse(text),
        Some(_) => None,
    };
    if reason.is_none() {
        errors.push(FieldError::new(
            "reason",
            "must be one of unsubscribe, bounce, complaint, manual",
        ));
    }
    match (channel, address, reason) {
        (Some(channel), Some(address), Some(reason)) if errors.is_empty() => Ok(SuppressionInput {
            channel,
            address,
            reason,
        }),
        _ => Err(errors),
    }
}

/// `SuppressionAdded` data: who is suppressed, why, and what put them there (`source`: the
/// route or the vendor, e.g. `api`, `contact`, `one-click`, `sendgrid`, `sandbox`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SuppressionAdded {
    pub channel: Channel,
    pub address: String,
    pub reason: Reason,
    pub source: String,
    pub at: DateTime<Utc>,
}

/// `SuppressionRemoved` data: the entry taken off the list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SuppressionRemoved {
    pub channel: Channel,
    pub address: String,
    pub at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn a_hashed_address_depends_on_the_key_the_org_and_the_channel() {
        let key = AddressKey::new(b"one secret of at least thirty-two bytes");
        let hashed = key.hashed("acme", Channel::Email, "ann@acme.test");
        assert!(hashed.starts_with(HASHED_PREFIX) && hashed.len() == HASHED_PREFIX.len() + 64);
        assert!(!hashed.contains("ann"));
        assert_eq!(hashed, key.hashed("acme", Channel::Email, "ann@acme.test"));
        let other = AddressKey::new(b"another secret of at least thirty-two");
        assert_ne!(
            hashed,
            other.hashed("acme", Channel::Email, "ann@acme.test")
        );
        assert_ne!(
            hashed,
            key.hashed("globex", Channel::Email, "ann@acme.test")
        );
        assert_ne!(hashed, key.hashed("acme", Channel::Sms, "ann@acme.test"));
    }

    #[test]
    fn emails_are_lower_cased_and_trimmed() {
        let input = parse_suppression(
            &json!({"channel": "email", "address": " Ann@Example.COM ", "reason": "manual"}),
        )
        .unwrap();
        assert_eq!(input.address, "ann@example.com");
        assert_eq!(input.reason, Reason::Manual);
    }

    #[test]
    fn the_reason_defaults_to_manual() {
        let input = parse_suppression(&json!({"channel": "sms", "address": "+14155550100"}));
        assert_eq!(input.unwrap().reason, Reason::Manual);
    }

    #[test]
    fn every_bad_field_is_reported() {
        let errors =
            parse_suppression(&json!({"channel": "fax", "address": 7, "reason": "dislike"}))
                .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["channel", "address", "reason"]);
        let errors =
            parse_suppression(&json!({"channel": "sms", "address": "555-0100"})).unwrap_err();
        assert_eq!(errors[0].field, "address");
        let errors = parse_suppression(&json!({"channel": "email", "address": "nobody"}));
        assert_eq!(errors.unwrap_err()[0].field, "address");
    }

    proptest! {
        #[test]
        fn normalising_is_idempotent_and_never_panics(address in "\\PC{0,40}") {
            for channel in SUPPRESSIBLE {
                if let Some(once) = normalise(channel, &address) {
                    prop_assert_eq!(normalise(channel, &once), Some(once.clone()));
                }
            }
        }

        #[test]
        fn an_email_in_any_letter_case_has_one_key(local in "[a-zA-Z0-9]{1,20}", domain in "[a-zA-Z]{1,10}") {
            let address = format!("{local}@{domain}.Example");
            prop_assert_eq!(
                normalise(Channel::Email, &address),
                normalise(Channel::Email, &address.to_uppercase())
            );
        }
    }
}
