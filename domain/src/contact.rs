//! Contacts: the people campaigns reach. Parsing and validation of a contact body.

use serde_json::{Map, Value};

use crate::error::FieldError;
use crate::ids::optional_id;
use crate::schedule::parse_timezone;

/// Fields a client may set on a contact; everything else is ignored.
const EDITABLE: [&str; 8] = [
    "email",
    "phone",
    "firstName",
    "lastName",
    "tags",
    "attributes",
    "timezone",
    "unsubscribed",
];

/// A validated contact: its optional client-chosen id and the body to store.
#[derive(Debug, Clone, PartialEq)]
pub struct ContactInput {
    pub id: Option<String>,
    pub body: Value,
    /// The channels the body's `unsubscribed` sets to `true`. Not stored in the body: a
    /// contact's `unsubscribed` is derived from the org's suppressions, and each of these adds
    /// one (`false` or an omitted channel removes nothing).
    pub opt_outs: Vec<String>,
}

impl ContactInput {
    /// The lower-cased email, used to match re-imported rows to existing contacts.
    pub fn email_key(&self) -> Option<String> {
        self.body
            .get("email")
            .and_then(Value::as_str)
            .map(str::to_lowercase)
    }
}

/// Checks a contact body, reporting every invalid field.
pub fn parse_contact(value: &Value) -> Result<ContactInput, Vec<FieldError>> {
    let Some(object) = value.as_object() else {
        return Err(vec![FieldError::new("body", "must be a JSON object")]);
    };
    let mut errors = Vec::new();
    let mut body = Map::new();
    let mut opt_outs = Vec::new();
    let id = optional_id(object, &mut errors);
    for key in EDITABLE {
        let Some(field) = object.get(key) else {
            continue;
        };
        if field.is_null() {
            continue;
        }
        let ok = match key {
            "email" => check_email(field),
            "phone" => check_phone(field),
            "firstName" | "lastName" => check_text(field, 200),
            "tags" => check_tags(field),
            "attributes" => field
                .is_object()
                .then_some(())
                .ok_or("must be an object".to_string()),
            "timezone" => match field.as_str() {
                Some(tz) if parse_timezone(tz).is_some() => Ok(()),
                _ => Err("must be an IANA time zone, e.g. Europe/Paris".to_string()),
            },
            "unsubscribed" => match field.as_object() {
                Some(map) if map.values().all(Value::is_boolean) => Ok(()),
                _ => Err("must be an object of channel → true/false".to_string()),
            },
            _ => Ok(()),
        };
        match ok {
            Ok(()) if key == "unsubscribed" => {
                opt_outs = field
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter(|(_, v)| **v == Value::Bool(true))
                    .map(|(k, _)| k.clone())
                    .collect();
            }
            Ok(()) => {
                let stored = if key == "email" {
                    Value::String(field.as_str().unwrap_or_default().trim().to_string())
                } else {
                    field.clone()
                };
                body.insert(key.to_string(), stored);
            }
            Err(message) => errors.push(FieldError::new(key, message)),
        }
    }
    // Always present, so a stored body equals what a client gets back (and re-imports match).
    body.entry("tags").or_insert_with(|| Value::Array(vec![]));
    body.entry("attributes")
        .or_insert_with(|| Value::Object(Map::new()));
    if errors.is_empty() {
        Ok(ContactInput {
            id,
            body: Value::Object(body),
            opt_outs,
        })
    } else {
        Err(errors)
    }
}

fn check_text(value: &Value, max: usize) -> Result<(), String> {
    match value.as_str() {
        Some(s) if s.chars().count() <= max => Ok(()),
        Some(_) => Err(format!("must be at most {max} characters")),
        None => Err("must be a string".into()),
    }
}

fn check_email(value: &Value) -> Result<(), String> {
    let Some(email) = value.as_str().map(str::trim) else {
        return Err("must be a string".into());
    };
    if is_email(email) {
        Ok(())
    } else {
        Err("must be an email address like name@example.com".into())
    }
}

/// An address of the shape `local@domain.tld`, at most 254 characters, without spaces.
pub fn is_email(email: &str) -> bool {
    email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && match email.rsplit_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && local.len() <= 64
                    && !local.contains('@')
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && !domain.contains("..")
                    && domain
                        .chars()
                        .all(|c| c.is_alphanumeric() || c == '.' || c == '-')
            }
            None => false,
        }
}

/// E.164: a plus sign, then 2 to 15 digits, the first not zero.
pub fn is_e164(phone: &str) -> bool {
    let Some(digits) = phone.strip_prefix('+') else {
        return false;
    };
    (2..=15).contains(&digits.len())
        && digits.chars().all(|c| c.is_ascii_digit())
        && !digits.starts_with('0')
}

fn check_phone(value: &Value) -> Result<(), String> {
    match value.as_str() {
        Some(p) if is_e164(p) => Ok(()),
        Some(_) => Err("must be an E.164 number like +14155550100".into()),
        None => Err("must be a string".into()),
    }
}

fn check_tags(value: &Value) -> Result<(), String> {
    let Some(tags) = value.as_array() else {
        return Err("must be an array of strings".into());
    };
    if tags.len() > 1000 {
        return Err("must have at most 1000 tags".into());
    }
    if tags
        .iter()
        .all(|t| t.as_str().is_some_and(|s| !s.is_empty() && s.len() <= 200))
    {
        Ok(())
    } else {
        Err("must be an array of non-empty strings of at most 200 characters".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_full_contact_is_kept_as_given() {
        let input = parse_contact(&json!({
            "id": "ct-1", "email": " Ann@Example.com ", "phone": "+14155550100",
            "firstName": "Ann", "tags": ["vip"], "attributes": {"plan": "pro", "score": 7},
            "timezone": "Europe/Paris", "unsubscribed": {"sms": true}, "createdAt": "ignored"
        }))
        .unwrap();
        assert_eq!(input.id.as_deref(), Some("ct-1"));
        assert_eq!(input.body["email"], "Ann@Example.com");
        assert_eq!(input.email_key().as_deref(), Some("ann@example.com"));
        assert_eq!(input.body["attributes"]["score"], 7);
        assert!(input.body.get("createdAt").is_none());
        assert_eq!(input.opt_outs, ["sms"]);
        assert!(input.body.get("unsubscribed").is_none());
    }

    #[test]
    fn every_bad_field_is_reported() {
        let errors = parse_contact(&json!({
            "email": "not-an-email", "phone": "555-0100", "tags": "vip",
            "attributes": [1], "timezone": "Mars/Base", "firstName": 7, "unsubscribed": {"email": "yes"}
        }))
        .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        for f in [
            "email",
            "phone",
            "tags",
            "attributes",
            "timezone",
            "firstName",
            "unsubscribed",
        ] {
            assert!(fields.contains(&f), "{f} in {fields:?}");
        }
    }

    #[test]
    fn e164_numbers() {
        assert!(is_e164("+447911123456"));
        assert!(!is_e164("+0123"));
        assert!(!is_e164("447911123456"));
        assert!(!is_e164("+1234567890123456"));
    }
}
