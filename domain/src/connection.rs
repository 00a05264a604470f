//! Integrations: which vendor an org sends each platform through, and what each vendor needs.

use serde_json::{Map, Value};

use crate::contact::is_e164;
use crate::error::FieldError;
use crate::ids::{is_valid_id, optional_id};
use crate::spec::Channel;

/// What a vendor needs: required credential keys and required setting keys.
struct VendorRules {
    credentials: &'static [&'static str],
    settings: &'static [&'static str],
    needs_profiles: bool,
}

/// Who carries a channel's messages: a connection's `vendor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Vendor {
    /// Sends nothing out: records each message in the org's outbox.
    Sandbox,
    SendGrid,
    Mailgun,
    Smtp,
    Twilio,
    MetaGraph,
    Linkedin,
    X,
    GoogleAds,
    MetaAds,
}

impl Vendor {
    pub const ALL: [Vendor; 10] = [
        Vendor::Sandbox,
        Vendor::SendGrid,
        Vendor::Mailgun,
        Vendor::Smtp,
        Vendor::Twilio,
        Vendor::MetaGraph,
        Vendor::Linkedin,
        Vendor::X,
        Vendor::GoogleAds,
        Vendor::MetaAds,
    ];

    /// The id stored in a connection's `vendor` field.
    pub fn id(self) -> &'static str {
        match self {
            Vendor::Sandbox => "sandbox",
            Vendor::SendGrid => "sendgrid",
            Vendor::Mailgun => "mailgun",
            Vendor::Smtp => "smtp",
            Vendor::Twilio => "twilio",
            Vendor::MetaGraph => "meta-graph",
            Vendor::Linkedin => "linkedin",
            Vendor::X => "x",
            Vendor::GoogleAds => "google-ads",
            Vendor::MetaAds => "meta-ads",
        }
    }

    /// The vendor with this id.
    pub fn parse(id: &str) -> Option<Vendor> {
        Vendor::ALL.into_iter().find(|v| v.id() == id)
    }
}

impl std::fmt::Display for Vendor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.id())
    }
}

/// Vendors each platform can send through (`sandbox` works everywhere and sends nothing out).
pub fn vendors(channel: Channel) -> &'static [Vendor] {
    use Vendor::*;
    match channel {
        Channel::Email => &[SendGrid, Mailgun, Smtp, Sandbox],
        Channel::Sms => &[Twilio, Sandbox],
        Channel::Facebook | Channel::Instagram => &[MetaGraph, Sandbox],
        Channel::Linkedin => &[Linkedin, Sandbox],
        Channel::X => &[X, Sandbox],
        Channel::GoogleAds => &[GoogleAds, Sandbox],
        Channel::MetaAds => &[MetaAds, Sandbox],
    }
}

fn rules(vendor: Option<Vendor>) -> VendorRules {
    use Vendor::*;
    let (credentials, settings, needs_profiles): (&[&str], &[&str], bool) = match vendor {
        Some(SendGrid) => (&["apiKey"], &["fromEmail"], false),
        Some(Mailgun) => (&["apiKey"], &["domain", "fromEmail"], false),
        Some(Smtp) => (&[], &["host", "port", "fromEmail"], false),
        Some(Twilio) => (&["accountSid", "authToken"], &["fromNumber"], false),
        Some(MetaGraph | Linkedin | X) => (&["accessToken"], &[], true),
        Some(GoogleAds) => (&["developerToken", "refreshToken"], &["customerId"], false),
        Some(MetaAds) => (&["accessToken"], &["adAccountId"], false),
        Some(Sandbox) | None => (&[], &[], false),
    };
    VendorRules {
        credentials,
        settings,
        needs_profiles,
    }
}

/// A validated connection: the body to store (no secrets) and the credentials to encrypt.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionInput {
    pub id: Option<String>,
    pub body: Value,
    pub credentials: Map<String, Value>,
}

/// Checks a connection body against its vendor's requirements, reporting every problem.
pub fn parse_connection(value: &Value) -> Result<ConnectionInput, Vec<FieldError>> {
    let Some(object) = value.as_object() else {
        return Err(vec![FieldError::new("body", "must be a JSON object")]);
    };
    let mut errors = Vec::new();
    let id = optional_id(object, &mut errors);
    let platform = match object.get("platform").and_then(Value::as_str) {
        Some(p) => match Channel::parse(p) {
            Some(channel) => Some(channel),
            None => {
                errors.push(FieldError::new(
                    "platform",
                    "is not a supported platform id",
                ));
                None
            }
        },
        None => {
            errors.push(FieldError::new("platform", "is required"));
            None
        }
    };
    let vendor = object.get("vendor").and_then(Value::as_str).unwrap_or("");
    if vendor.is_empty() {
        errors.push(FieldError::new("vendor", "is required"));
    } else if let Some(channel) = platform {
        if !Vendor::parse(vendor).is_some_and(|v| vendors(channel).contains(&v)) {
            let names: Vec<&str> = vendors(channel).iter().map(|v| v.id()).collect();
            errors.push(FieldError::new(
                "vendor",
                format!(
                    "{vendor} does not serve {}; use one of {}",
                    channel.id(),
                    names.join(", ")
                ),
            ));
        }
    }
    let label = match object.get("label") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.chars().count() <= 200 => Some(s.clone()),
        Some(_) => {
            errors.push(FieldError::new(
                "label",
                "must be a string of at most 200 characters",
            ));
            None
        }
    };
    let empty = Map::new();
    let settings = object_field(object, "settings", &mut errors).unwrap_or(&empty);
    let credentials = object_field(object, "credentials", &mut errors).unwrap_or(&empty);
    let rules = rules(Vendor::parse(vendor));
    for key in rules.credentials {
        let given = credentials.get(*key).and_then(Value::as_str).unwrap_or("");
        if given.is_empty() {
            errors.push(FieldError::new(
                format!("credentials.{key}"),
                format!("is required by {vendor}"),
            ));
        }
    }
    for (key, value) in credentials {
        if !value.is_string() {
            errors.push(FieldError::new(
                format!("credentials.{key}"),
                "must be a string",
            ));
        }
    }
    for key in rules.settings {
        if settings.get(*key).is_none_or(Value::is_null) {
            errors.push(FieldError::new(
                format!("settings.{key}"),
                format!("is required by {vendor}"),
            ));
        }
    }
    check_settings(settings, &mut errors);
    let profiles = check_profiles(object.get("profiles"), &mut errors);
    if rules.needs_profiles && profiles.is_empty() {
        errors.push(FieldError::new(
            "profiles",
            format!("{vendor} needs at least one profile to post from"),
        ));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut body = Map::new();
    body.insert(
        "platform".into(),
        Value::String(platform.map(|p| p.id()).unwrap_or_default().into()),
    );
    body.insert("vendor".into(), Value::String(vendor.into()));
    body.insert(
        "label".into(),
        label.map(Value::String).unwrap_or(Value::Null),
    );
    body.insert("settings".into(), Value::Object(settings.clone()));
    body.insert("profiles".into(), Value::Array(profiles));
    Ok(ConnectionInput {
        id,
        body: Value::Object(body),
        credentials: credentials.clone(),
    })
}

fn object_field<'a>(
    object: &'a Map<String, Value>,
    key: &str,
    errors: &mut Vec<FieldError>,
) -> Option<&'a Map<String, Value>> {
    match object.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::Object(map)) => Some(map),
        Some(_) => {
            errors.push(FieldError::new(key, "must be an object"));
            None
        }
    }
}

fn check_settings(settings: &Map<String, Value>, errors: &mut Vec<FieldError>) {
    for (key, value) in settings {
        let problem = match key.as_str() {
            "fromEmail" => (!value
                .as_str()
                .is_some_and(|s| s.contains('@') && !s.contains(' ')))
            .then_some("must be an email address"),
            "fromNumber" => {
                (!value.as_str().is_some_and(is_e164)).then_some("must be an E.164 number")
            }
            "port" => (!value.as_u64().is_some_and(|p| (1..=65535).contains(&p)))
                .then_some("must be a port number from 1 to 65535"),
            "failRate" => (!value.as_f64().is_some_and(|r| (0.0..=1.0).contains(&r)))
                .then_some("must be a number from 0 to 1"),
            "bounce" => (!value
                .as_array()
                .is_some_and(|list| list.iter().all(Value::is_string)))
            .then_some("must be a list of addresses"),
            "baseUrl" => (!value
                .as_str()
                .is_some_and(|u| u.starts_with("http://") || u.starts_with("https://")))
            .then_some("must be an http(s) URL"),
            "rateLimitPerSecond" => {
                (!value.as_f64().is_some_and(|r| r > 0.0)).then_some("must be a positive number")
            }
            _ => None,
        };
        if let Some(message) = problem {
            errors.push(FieldError::new(format!("settings.{key}"), message));
        }
    }
}

fn check_profiles(value: Option<&Value>, errors: &mut Vec<FieldError>) -> Vec<Value> {
    let list = match value {
        None | Some(Value::Null) => return Vec::new(),
        Some(Value::Array(list)) => list,
        Some(_) => {
            errors.push(FieldError::new("profiles", "must be an array"));
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for (i, profile) in list.iter().enumerate() {
        let id = profile.get("id").and_then(Value::as_str);
        let name = profile.get("name").and_then(Value::as_str);
        if !id.is_some_and(is_valid_id) {
            errors.push(FieldError::new(
                format!("profiles[{i}].id"),
                "is required and must be a valid id",
            ));
            continue;
        }
        let handle = profile.get("handle").and_then(Value::as_str);
        out.push(serde_json::json!({
            "id": id,
            "name": name.unwrap_or_default(),
            "handle": handle,
        }));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_sendgrid_connection_keeps_credentials_out_of_the_body() {
        let input = parse_connection(&json!({
            "platform": "email", "vendor": "sendgrid", "label": "Main",
            "credentials": {"apiKey": "SG.secret"},
            "settings": {"fromEmail": "news@acme.test", "fromName": "Acme"}
        }))
        .unwrap();
        assert!(!input.body.to_string().contains("SG.secret"));
        assert_eq!(input.credentials["apiKey"], "SG.secret");
    }

    #[test]
    fn missing_credentials_and_unknown_vendors_are_named() {
        let errors =
            parse_connection(&json!({"platform": "email", "vendor": "sendgrid"})).unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["credentials.apiKey", "settings.fromEmail"]);
        let errors =
            parse_connection(&json!({"platform": "email", "vendor": "pigeon"})).unwrap_err();
        assert_eq!(errors[0].field, "vendor");
        let errors =
            parse_connection(&json!({"platform": "fax", "vendor": "sandbox"})).unwrap_err();
        assert_eq!(errors[0].field, "platform");
    }

    #[test]
    fn sandbox_needs_nothing_on_any_platform() {
        for channel in Channel::all() {
            assert!(
                parse_connection(&json!({"platform": channel.id(), "vendor": "sandbox"})).is_ok()
            );
        }
    }

    #[test]
    fn social_vendors_need_a_profile() {
        let errors = parse_connection(&json!({
            "platform": "facebook", "vendor": "meta-graph", "credentials": {"accessToken": "t"}
        }))
        .unwrap_err();
        assert_eq!(errors[0].field, "profiles");
    }
}
