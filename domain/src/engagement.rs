//! Engagement: what recipients did with a message (opened, clicked, replied, bought...), as the
//! `EngagementRecorded` event carries it, and the rules that classify and validate it.
//!
//! - [`Engagement`] is the event's data, whoever reported it: the tracking routes, a vendor
//!   webhook or `POST /crm/marketing/campaigns/:id/engagements`.
//! - [`classify`] tells machine opens and clicks (privacy proxies, link scanners) from human ones.
//! - [`parse_money`] turns a conversion's `value` and `currency` into exact micro-units.
//! - [`parse_inputs`] validates the engagements API's body.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::FieldError;
use crate::ids::is_valid_id;
use crate::spec::Channel;

/// The event type name in the log.
pub const EVENT_TYPE: &str = "EngagementRecorded";

/// Most engagements one API request may carry.
pub const MAX_INPUTS: usize = 1000;

/// Longest `externalId` accepted.
pub const MAX_EXTERNAL_ID: usize = 256;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngagementType {
    /// The vendor handed the message to the recipient's server or phone.
    Delivery,
    Open,
    Click,
    Reply,
    Bounce,
    /// The vendor refused to send (suppressed address, invalid number).
    Dropped,
    /// A spam report.
    Complaint,
    Unsubscribe,
    /// A conversion, with an optional money value.
    Conversion,
    /// Revenue without a new conversion (e.g. a later order of a converted contact).
    Revenue,
    /// Social and ads reach: `count` impressions.
    Impression,
    /// Social interactions (likes, shares, comments): `count` of them.
    Interaction,
}

impl EngagementType {
    pub const ALL: [EngagementType; 12] = [
        EngagementType::Delivery,
        EngagementType::Open,
        EngagementType::Click,
        EngagementType::Reply,
        EngagementType::Bounce,
        EngagementType::Dropped,
        EngagementType::Complaint,
        EngagementType::Unsubscribe,
        EngagementType::Conversion,
        EngagementType::Revenue,
        EngagementType::Impression,
        EngagementType::Interaction,
    ];

    /// The name used in bodies and in the activity log.
    pub fn as_str(self) -> &'static str {
        match self {
            EngagementType::Delivery => "delivery",
            EngagementType::Open => "open",
            EngagementType::Click => "click",
            EngagementType::Reply => "reply",
            EngagementType::Bounce => "bounce",
            EngagementType::Dropped => "dropped",
            EngagementType::Complaint => "complaint",
            EngagementType::Unsubscribe => "unsubscribe",
            EngagementType::Conversion => "conversion",
            EngagementType::Revenue => "revenue",
            EngagementType::Impression => "impression",
            EngagementType::Interaction => "interaction",
        }
    }

    pub fn parse(name: &str) -> Option<EngagementType> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// Whether `value` is money (a conversion or revenue) rather than a count.
    pub fn carries_money(self) -> bool {
        matches!(self, EngagementType::Conversion | EngagementType::Revenue)
    }

    /// Whether `value` is a count (impressions, interactions).
    pub fn carries_count(self) -> bool {
        matches!(
            self,
            EngagementType::Impression | EngagementType::Interaction
        )
    }
}

/// Who made an open or a click: a person, or a machine acting on the message (a privacy proxy
/// prefetching images, a security scanner following links).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Classification {
    #[default]
    Human,
    Machine,
}

/// The data of an `EngagementRecorded` event (version 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Engagement {
    pub campaign_id: String,
    /// The run (`Launched.runId`) the message belonged to, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_id: Option<String>,
    pub channel: Channel,
    #[serde(rename = "type")]
    pub kind: EngagementType,
    #[serde(default)]
    pub classification: Classification,
    pub occurred_at: DateTime<Utc>,
    /// The reporter's id for this engagement; a second report with it records nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// A click's target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// Money of a conversion or revenue, as exact decimal text (`"19.99"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// How many impressions or interactions this one record stands for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// Who reported it: `tracking`, `api`, or the vendor of a webhook (`sendgrid`, `mailgun`,
    /// `twilio`).
    pub source: String,
    /// A short reason (a bounce's or drop's), never message content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Engagement {
    /// The stream of the recipient's delivery this engagement belongs to:
    /// `delivery-<org>:<campaign>:<run or ->:<contact or ->:<channel>`. One stream per
    /// recipient keeps a burst on one campaign free of any shared revision.
    pub fn stream_id(&self, org_id: &str) -> String {
        format!(
            "delivery-{org_id}:{}:{}:{}:{}",
            self.campaign_id,
            self.run_id.as_deref().unwrap_or("-"),
            self.contact_id.as_deref().unwrap_or("-"),
            self.channel.id()
        )
    }

    /// The money value in micro-units (`19.99` → `19_990_000`), zero when there is none.
    pub fn value_micros(&self) -> i64 {
        self.value
            .as_deref()
            .and_then(|v| decimal_micros(v, 6))
            .unwrap_or(0)
    }

    /// The count this record stands for (impressions, interactions); 1 for everything else.
    pub fn weight(&self) -> u64 {
        if self.kind.carries_count() {
            self.count.unwrap_or(1)
        } else {
            1
        }
    }
}

/// The data of a `SendsRecorded` event: one page of a run's sends on one channel, written with
/// the send ledger rows. `delivered` is true for the sandbox, which delivers as it sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendsRecorded {
    pub campaign_id: String,
    pub run_id: String,
    pub channel: Channel,
    pub sent: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bounced: Vec<String>,
    /// Not sent: the org's frequency caps held them back (`api.md` section 12).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capped: Vec<String>,
    #[serde(default)]
    pub delivered: bool,
    pub at: DateTime<Utc>,
}

/// The event type name of [`SendsRecorded`].
pub const SENDS_EVENT_TYPE: &str = "SendsRecorded";

/// The stream of a run's sends: `run-<org>:<campaign>:<run>`.
pub fn run_stream(org_id: &str, campaign_id: &str, run_id: &str) -> String {
    format!("run-{org_id}:{campaign_id}:{run_id}")
}

/// User-agent fragments (lower case) of machines that fetch images or follow links without a
/// person: privacy proxies that prefetch every image, mail security scanners, crawlers and HTTP
/// libraries. Documented in `docs/analytics.md`.
const MACHINE_AGENTS: [&str; 27] = [
    "bot",
    "crawler",
    "spider",
    "slurp",
    "preview",
    "scanner",
    "yahoomailproxy",
    "barracuda",
    "mimecast",
    "proofpoint",
    "symantec",
    "messagelabs",
    "forcepoint",
    "trendmicro",
    "fireeye",
    "safelinks",
    "curl/",
    "wget/",
    "python-requests",
    "python-urllib",
    "go-http-client",
    "java/",
    "okhttp",
    "libwww",
    "httpclient",
    "headlesschrome",
    "phantomjs",
];

/// Classifies an open or a click from its request: `HEAD` requests, requests without a
/// user agent, Apple Mail Privacy Protection's bare `Mozilla/5.0`, and user agents of known
/// proxies, scanners and HTTP libraries are machines; everything else is a person.
pub fn classify(method_is_head: bool, user_agent: Option<&str>) -> Classification {
    let agent = user_agent.map(str::trim).unwrap_or("");
    if method_is_head || agent.is_empty() || agent == "Mozilla/5.0" {
        return Classification::Machine;
    }
    let lower = agent.to_ascii_lowercase();
    if MACHINE_AGENTS.iter().any(|m| lower.contains(m)) {
        Classification::Machine
    } else {
        Classification::Human
    }
}

/// ISO 4217 codes with a minor unit other than two decimals.
const MINOR_UNITS: [(&str, u32); 26] = [
    ("BIF", 0),
    ("CLP", 0),
    ("DJF", 0),
    ("GNF", 0),
    ("ISK", 0),
    ("JPY", 0),
    ("KMF", 0),
    ("KRW", 0),
    ("PYG", 0),
    ("RWF", 0),
    ("UGX", 0),
    ("UYI", 0),
    ("VND", 0),
    ("VUV", 0),
    ("XAF", 0),
    ("XOF", 0),
    ("XPF", 0),
    ("BHD", 3),
    ("IQD", 3),
    ("JOD", 3),
    ("KWD", 3),
    ("LYD", 3),
    ("OMR", 3),
    ("TND", 3),
    ("CLF", 4),
    ("UYW", 4),
];

/// ISO 4217 active codes with two decimals.
const TWO_DECIMALS: &str = "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BRL \
BSD BTN BWP BYN BZD CAD CDF CHF CNY COP CRC CUC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP \
GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK LBP LKR LRD \
LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP \
PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT \
TOP TRY TTD TWD TZS UAH USD UYU UZS VES VED WST XCD YER ZAR ZMW ZWL ZWG";

/// The number of decimals a currency allows, or `None` for a code that is not ISO 4217.
pub fn minor_units(currency: &str) -> Option<u32> {
    if let Some((_, units)) = MINOR_UNITS.iter().find(|(code, _)| *code == currency) {
        return Some(*units);
    }
    (currency.len() == 3 && TWO_DECIMALS.split_whitespace().any(|c| c == currency)).then_some(2)
}

/// Parses plain decimal text (`"19.99"`, `"7"`) with at most `max_decimals` decimals into
/// micro-units. No sign, exponent or spaces.
fn decimal_micros(text: &str, max_decimals: u32) -> Option<i64> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
        || (text.contains('.') && fraction.is_empty())
        || fraction.len() > max_decimals as usize
        || whole.len() > 12
    {
        return None;
    }
    let whole: i64 = whole.parse().ok()?;
    let mut micros: i64 = 0;
    for (i, digit) in fraction.bytes().enumerate() {
        micros += i64::from(digit - b'0') * 10_i64.pow(5 - i as u32);
    }
    whole.checked_mul(1_000_000)?.checked_add(micros)
}

/// Validates a money `value` in `currency`: a non-negative JSON number or decimal string with
/// no more decimals than the currency has (so `0.30000000000000004`, what `0.1 + 0.2` gives in
/// JavaScript, is refused rather than rounded). Returns the normalised decimal text.
pub fn parse_money(value: &Value, currency: &str) -> Result<String, String> {
    let Some(decimals) = minor_units(currency) else {
        return Err(format!("{currency} is not an ISO 4217 currency code"));
    };
    let text = match value {
        // Rust prints the shortest text that reads back as the same float: what the client wrote.
        Value::Number(n) => match (n.as_u64(), n.as_f64()) {
            (Some(u), _) => u.to_string(),
            (None, Some(f)) if f < 0.0 => return Err("must not be negative".into()),
            (None, Some(f)) => format!("{f}"),
            (None, None) => return Err("must be a number".into()),
        },
        Value::String(s) => s.trim().to_string(),
        _ => return Err("must be a number or a decimal string".into()),
    };
    if text.starts_with('-') {
        return Err("must not be negative".into());
    }
    if text.contains(['e', 'E']) {
        return Err("must be written without an exponent".into());
    }
    let Some(micros) = decimal_micros(&text, decimals) else {
        return Err(format!(
            "must be a decimal with at most {decimals} decimals for {currency} (and under 10^12)"
        ));
    };
    Ok(format_micros(micros))
}

/// Formats micro-units as the shortest exact decimal text (`19990000` → `"19.99"`).
pub fn format_micros(micros: i64) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let abs = micros.unsigned_abs();
    let whole = abs / 1_000_000;
    let fraction = abs % 1_000_000;
    if fraction == 0 {
        return format!("{sign}{whole}");
    }
    let digits = format!("{fraction:06}");
    format!("{sign}{whole}.{}", digits.trim_end_matches('0'))
}

/// One engagement of the API's body, validated (the campaign comes from the URL).
#[derive(Debug, Clone, PartialEq)]
pub struct EngagementInput {
    pub kind: EngagementType,
    pub channel: Channel,
    pub contact_id: Option<String>,
    pub run_id: Option<String>,
    pub value: Option<String>,
    pub currency: Option<String>,
    pub count: Option<u64>,
    pub occurred_at: Option<DateTime<Utc>>,
    pub external_id: Option<String>,
}

impl EngagementInput {
    /// The event data, with `now` for a missing `occurredAt`.
    pub fn into_engagement(self, campaign_id: &str, now: DateTime<Utc>) -> Engagement {
        Engagement {
            campaign_id: campaign_id.to_string(),
            run_id: self.run_id,
            contact_id: self.contact_id,
            channel: self.channel,
            kind: self.kind,
            classification: Classification::Human,
            occurred_at: self.occurred_at.unwrap_or(now),
            external_id: self.external_id,
            link: None,
            value: self.value,
            currency: self.currency,
            count: self.count,
            source: "api".to_string(),
            reason: None,
        }
    }
}

/// Types the engagements API takes. Opens, clicks and unsubscribes come through the tracking
/// routes (unsubscribing changes the contact); deliveries and bounces through vendor webhooks.
const API_TYPES: [EngagementType; 8] = [
    EngagementType::Conversion,
    EngagementType::Revenue,
    EngagementType::Reply,
    EngagementType::Impression,
    EngagementType::Interaction,
    EngagementType::Delivery,
    EngagementType::Bounce,
    EngagementType::Complaint,
];

/// Validates the body of `POST /crm/marketing/campaigns/:id/engagements`: a JSON array of
/// `{"type", "channel", "contactId", "value", "currency", "occurredAt", "externalId", "runId"}`.
/// `occurredAt` may not be more than a day after `now`. Every error names its path
/// (`[3].currency`).
pub fn parse_inputs(
    body: &Value,
    now: DateTime<Utc>,
) -> Result<Vec<EngagementInput>, Vec<FieldError>> {
    let Some(items) = body.as_array() else {
        return Err(vec![FieldError::new(
            "",
            "must be a JSON array of engagements",
        )]);
    };
    if items.is_empty() {
        return Err(vec![FieldError::new(
            "",
            "must hold at least one engagement",
        )]);
    }
    if items.len() > MAX_INPUTS {
        return Err(vec![FieldError::new(
            "",
            format!(
                "holds {} engagements; at most {MAX_INPUTS} per request",
                items.len()
            ),
        )]);
    }
    let mut errors = Vec::new();
    let mut inputs = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match parse_input(item, now, &format!("[{i}]")) {
            Ok(input) => inputs.push(input),
            Err(mut e) => errors.append(&mut e),
        }
    }
    if errors.is_empty() {
        Ok(inputs)
    } else {
        Err(errors)
    }
}

const INPUT_FIELDS: [&str; 8] = [
    "type",
    "channel",
    "contactId",
    "runId",
    "value",
    "currency",
    "occurredAt",
    "externalId",
];

fn parse_input(
    item: &Value,
    now: DateTime<Utc>,
    at: &str,
) -> Result<EngagementInput, Vec<FieldError>> {
    let Some(object) = item.as_object() else {
        return Err(vec![FieldError::new(at, "must be an object")]);
    };
    let mut errors = Vec::new();
    let field = |name: &str| format!("{at}.{name}");
    for key in object.keys() {
        if !INPUT_FIELDS.contains(&key.as_str()) {
            errors.push(FieldError::new(field(key), "is not a known field"));
        }
    }
    let kind = match object.get("type") {
        None | Some(Value::Null) => {
            errors.push(FieldError::new(field("type"), "is required"));
            None
        }
        Some(Value::String(name)) => match EngagementType::parse(name) {
            Some(kind) if API_TYPES.contains(&kind) => Some(kind),
            Some(kind) => {
                errors.push(FieldError::new(
                    field("type"),
                    format!("{} engagements come from tracking links or vendor webhooks, not this endpoint", kind.as_str()),
                ));
                None
            }
            None => {
                let names: Vec<&str> = API_TYPES.iter().map(|t| t.as_str()).collect();
                errors.push(FieldError::new(
                    field("type"),
                    format!("must be one of {}", names.join(", ")),
                ));
                None
            }
        },
        Some(_) => {
            errors.push(FieldError::new(field("type"), "must be a string"));
            None
        }
    };
    let channel = match object.get("channel") {
        None | Some(Value::Null) => {
            errors.push(FieldError::new(field("channel"), "is required"));
            None
        }
        Some(Value::String(id)) => {
            let channel = Channel::parse(id);
            if channel.is_none() {
                errors.push(FieldError::new(
                    field("channel"),
                    format!("{id} is not a channel"),
                ));
            }
            channel
        }
        Some(_) => {
            errors.push(FieldError::new(field("channel"), "must be a string"));
            None
        }
    };
    let mut id_field = |name: &str| match object.get(name) {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) if is_valid_id(id) => Some(id.clone()),
        Some(_) => {
            errors.push(FieldError::new(
                field(name),
                "must be an id (letters, digits, _ . -; up to 64)",
            ));
            None
        }
    };
    let contact_id = id_field("contactId");
    let run_id = id_field("runId");
    let external_id = match object.get("externalId") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_EXTERNAL_ID => Some(s.clone()),
        Some(_) => {
            errors.push(FieldError::new(
                field("externalId"),
                format!("must be a string of 1 to {MAX_EXTERNAL_ID} characters"),
            ));
            None
        }
    };
    let occurred_at = match object.get("occurredAt") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => match DateTime::parse_from_rfc3339(s) {
            Ok(t) if t.with_timezone(&Utc) > now + chrono::Duration::days(1) => {
                errors.push(FieldError::new(
                    field("occurredAt"),
                    "must not be in the future",
                ));
                None
            }
            Ok(t) => Some(t.with_timezone(&Utc)),
            Err(_) => {
                errors.push(FieldError::new(
                    field("occurredAt"),
                    "must be an RFC 3339 timestamp",
                ));
                None
            }
        },
        Some(_) => {
            errors.push(FieldError::new(
                field("occurredAt"),
                "must be an RFC 3339 timestamp",
            ));
            None
        }
    };
    let currency = match object.get("currency") {
        None | Some(Value::Null) => None,
        Some(Value::String(code)) => {
            let upper = code.to_ascii_uppercase();
            if minor_units(&upper).is_none() {
                errors.push(FieldError::new(
                    field("currency"),
                    format!("{code} is not an ISO 4217 currency code"),
                ));
            }
            Some(upper)
        }
        Some(_) => {
            errors.push(FieldError::new(
                field("currency"),
                "must be an ISO 4217 code like \"EUR\"",
            ));
            None
        }
    };
    let raw_value = object.get("value").filter(|v| !v.is_null());
    let mut value = None;
    let mut count = None;
    match (kind, raw_value) {
        (Some(k), Some(raw)) if k.carries_money() => match currency.as_deref() {
            None => {
                if !object.contains_key("currency") {
                    errors.push(FieldError::new(
                        field("currency"),
                        "is required with a value",
                    ));
                }
            }
            Some(code) if minor_units(code).is_some() => match parse_money(raw, code) {
                Ok(text) => value = Some(text),
                Err(message) => errors.push(FieldError::new(field("value"), message)),
            },
            Some(_) => {}
        },
        (Some(EngagementType::Revenue), None) => {
            errors.push(FieldError::new(field("value"), "is required for revenue"));
        }
        (Some(k), Some(raw)) if k.carries_count() => match raw.as_u64() {
            Some(n) if (1..=1_000_000_000).contains(&n) => count = Some(n),
            _ => errors.push(FieldError::new(
                field("value"),
                "must be a whole count from 1 to 1 000 000 000",
            )),
        },
        (Some(k), Some(_)) => {
            errors.push(FieldError::new(
                field("value"),
                format!("is not taken by {} engagements", k.as_str()),
            ));
        }
        _ => {}
    }
    if currency.is_some() && !kind.is_some_and(EngagementType::carries_money) && kind.is_some() {
        errors.push(FieldError::new(
            field("currency"),
            "is only taken by conversion and revenue engagements",
        ));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(EngagementInput {
        kind: kind.expect("checked"),
        channel: channel.expect("checked"),
        contact_id,
        run_id,
        value,
        currency,
        count,
        occurred_at,
        external_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        "2026-05-01T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn money_is_exact_and_refuses_float_noise() {
        assert_eq!(parse_money(&json!(19.99), "USD").unwrap(), "19.99");
        assert_eq!(parse_money(&json!("0.10"), "EUR").unwrap(), "0.1");
        assert_eq!(parse_money(&json!(7), "JPY").unwrap(), "7");
        assert_eq!(parse_money(&json!("1.234"), "KWD").unwrap(), "1.234");
        assert!(parse_money(&json!(0.1 + 0.2), "USD").is_err());
        assert!(parse_money(&json!(-1), "USD").is_err());
        assert!(parse_money(&json!("-1"), "USD").is_err());
        assert!(parse_money(&json!("1e3"), "USD").is_err());
        assert!(parse_money(&json!(1.5), "JPY").is_err());
        assert!(parse_money(&json!(1), "XXX").is_err());
        assert!(parse_money(&json!("1."), "USD").is_err());
        assert!(parse_money(&json!(true), "USD").is_err());
    }

    #[test]
    fn micros_format_round_trips() {
        for text in ["0", "0.01", "19.99", "1000000", "0.000001", "123.4"] {
            assert_eq!(format_micros(decimal_micros(text, 6).unwrap()), text);
        }
        assert_eq!(format_micros(-1_500_000), "-1.5");
    }

    #[test]
    fn machines_are_told_from_people() {
        let iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15";
        assert_eq!(classify(false, Some(iphone)), Classification::Human);
        assert_eq!(classify(true, Some(iphone)), Classification::Machine);
        assert_eq!(
            classify(false, Some("Mozilla/5.0")),
            Classification::Machine
        );
        assert_eq!(classify(false, None), Classification::Machine);
        assert_eq!(
            classify(false, Some("Barracuda Sentinel (EE)")),
            Classification::Machine
        );
        assert_eq!(
            classify(false, Some("python-requests/2.31")),
            Classification::Machine
        );
        assert_eq!(
            classify(false, Some("Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)")),
            Classification::Human
        );
    }

    #[test]
    fn api_inputs_are_validated_with_paths() {
        let ok = parse_inputs(
            &json!([{"type": "conversion", "channel": "email", "contactId": "ct-1", "value": 19.99,
                     "currency": "usd", "externalId": "order-1", "occurredAt": "2026-05-01T10:00:00Z"},
                    {"type": "impression", "channel": "facebook", "value": 1200}]),
            now(),
        )
        .unwrap();
        assert_eq!(ok[0].value.as_deref(), Some("19.99"));
        assert_eq!(ok[0].currency.as_deref(), Some("USD"));
        assert_eq!(ok[1].count, Some(1200));
        let errors = parse_inputs(
            &json!([{"type": "conversion", "channel": "email", "value": -5, "currency": "USD"},
                    {"type": "conversion", "channel": "pigeon", "value": 1, "currency": "ABC"},
                    {"type": "open", "channel": "email"},
                    {"type": "conversion", "channel": "email", "value": 1},
                    {"type": "conversion", "channel": "email", "occurredAt": "2030-01-01T00:00:00Z", "extra": 1}]),
            now(),
        )
        .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "[0].value",
                "[1].channel",
                "[1].currency",
                "[2].type",
                "[3].currency",
                "[4].extra",
                "[4].occurredAt"
            ]
        );
        assert!(parse_inputs(&json!({}), now()).is_err());
        assert!(parse_inputs(&json!([]), now()).is_err());
    }

    #[test]
    fn the_event_data_round_trips_and_names_its_stream() {
        let engagement = parse_inputs(
            &json!([{"type": "reply", "channel": "sms", "contactId": "ct-9"}]),
            now(),
        )
        .unwrap()
        .remove(0)
        .into_engagement("camp-1", now());
        let data = serde_json::to_value(&engagement).unwrap();
        assert_eq!(data["type"], "reply");
        assert_eq!(data["classification"], "human");
        assert_eq!(
            serde_json::from_value::<Engagement>(data).unwrap(),
            engagement
        );
        assert_eq!(
            engagement.stream_id("acme"),
            "delivery-acme:camp-1:-:ct-9:sms"
        );
    }
}
