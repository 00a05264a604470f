//! An org's marketing settings (`api.md` section 12): its default time zone, frequency caps and
//! quiet hours. Parsing and validation of a settings body, and the event that replaces them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::FieldError;
use crate::schedule::parse_timezone;

/// Type name of the event that replaces an org's settings.
pub const UPDATED_EVENT_TYPE: &str = "SettingsUpdated";

/// The channels a cap or a quiet-hours window may name (`*` in a cap: every channel).
const CHANNELS: [&str; 2] = ["email", "sms"];

/// The period a frequency cap counts over: the contact's local calendar day or ISO week.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Per {
    Day,
    Week,
}

/// At most `max` marketing sends on `channel` (`email`, `sms` or `*`) per `per`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FrequencyCap {
    pub channel: String,
    pub max: u32,
    pub per: Per,
}

/// A daily window, in the contact's local time, in which sends on `channels` wait. `start`
/// after `end` wraps midnight (`21:00`–`08:00`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QuietHours {
    pub start: String,
    pub end: String,
    pub channels: Vec<String>,
}

/// An org's settings as stored in `SettingsUpdated` and answered by the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrgSettings {
    pub default_timezone: String,
    pub frequency_caps: Vec<FrequencyCap>,
    pub quiet_hours: Option<QuietHours>,
}

impl Default for OrgSettings {
    /// What an org that never set anything has: UTC, no caps, no quiet hours.
    fn default() -> Self {
        OrgSettings {
            default_timezone: "UTC".into(),
            frequency_caps: Vec::new(),
            quiet_hours: None,
        }
    }
}

/// `HH:MM`, 00:00 to 23:59, two digits each.
pub fn is_clock_time(text: &str) -> bool {
    let bytes = text.as_bytes();
    if bytes.len() != 5 || bytes[2] != b':' {
        return false;
    }
    let number = |range: std::ops::Range<usize>| {
        text.get(range)
            .filter(|part| part.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|part| part.parse::<u32>().ok())
    };
    matches!((number(0..2), number(3..5)), (Some(h), Some(m)) if h < 24 && m < 60)
}

/// Checks a whole settings body (a `PUT` replaces them all), reporting every invalid field.
/// Omitted fields take their defaults.
pub fn parse_settings(value: &Value) -> Result<OrgSettings, Vec<FieldError>> {
    let Some(object) = value.as_object() else {
        return Err(vec![FieldError::new("body", "must be a JSON object")]);
    };
    let mut errors = Vec::new();
    let mut settings = OrgSettings::default();
    match object.get("defaultTimezone") {
        None | Some(Value::Null) => {}
        Some(Value::String(zone)) if parse_timezone(zone).is_some() => {
            settings.default_timezone = zone.clone();
        }
        Some(_) => errors.push(FieldError::new(
            "defaultTimezone",
            "must be an IANA time zone, e.g. Europe/Berlin",
        )),
    }
    match object.get("frequencyCaps") {
        None | Some(Value::Null) => {}
        Some(Value::Array(caps)) => {
            for (i, cap) in caps.iter().enumerate() {
                if let Some(cap) = parse_cap(cap, &format!("frequencyCaps[{i}]"), &mut errors) {
                    settings.frequency_caps.push(cap);
                }
            }
        }
        Some(_) => errors.push(FieldError::new("frequencyCaps", "must be an array")),
    }
    match object.get("quietHours") {
        None | Some(Value::Null) => {}
        Some(hours) => settings.quiet_hours = parse_quiet_hours(hours, &mut errors),
    }
    if errors.is_empty() {
        Ok(settings)
    } else {
        Err(errors)
    }
}

fn parse_cap(value: &Value, path: &str, errors: &mut Vec<FieldError>) -> Option<FrequencyCap> {
    let Some(object) = value.as_object() else {
        errors.push(FieldError::new(path, "must be an object"));
        return None;
    };
    let before = errors.len();
    let channel = object.get("channel").and_then(Value::as_str);
    if !channel.is_some_and(|c| c == "*" || CHANNELS.contains(&c)) {
        errors.push(FieldError::new(
            format!("{path}.channel"),
            "must be \"email\", \"sms\" or \"*\"",
        ));
    }
    let max = object
        .get("max")
        .and_then(Value::as_u64)
        .filter(|m| (1..=u64::from(u32::MAX)).contains(m));
    if max.is_none() {
        errors.push(FieldError::new(
            format!("{path}.max"),
            "must be a whole number of at least 1",
        ));
    }
    let per = match object.get("per").and_then(Value::as_str) {
        Some("day") => Some(Per::Day),
        Some("week") => Some(Per::Week),
        _ => None,
    };
    if per.is_none() {
        errors.push(FieldError::new(
            format!("{path}.per"),
            "must be \"day\" or \"week\"",
        ));
    }
    match (channel, max, per) {
        (Some(channel), Some(max), Some(per)) if errors.len() == before => Some(FrequencyCap {
            channel: channel.to_string(),
            max: max as u32,
            per,
        }),
        _ => None,
    }
}

fn parse_quiet_hours(value: &Value, errors: &mut Vec<FieldError>) -> Option<QuietHours> {
    let Some(object) = value.as_object() else {
        errors.push(FieldError::new("quietHours", "must be an object"));
        return None;
    };
    let before = errors.len();
    let mut time = |key: &str| {
        let text = object
            .get(key)
            .and_then(Value::as_str)
            .filter(|t| is_clock_time(t));
        if text.is_none() {
            errors.push(FieldError::new(
                format!("quietHours.{key}"),
                "must be a time of day as HH:MM, e.g. 21:00",
            ));
        }
        text.map(str::to_string)
    };
    let (start, end) = (time("start"), time("end"));
    if let (Some(start), Some(end)) = (&start, &end) {
        if start == end {
            errors.push(FieldError::new(
                "quietHours.end",
                "must differ from quietHours.start",
            ));
        }
    }
    let channels: Option<Vec<String>> = match object.get("channels") {
        Some(Value::Array(list)) if !list.is_empty() => list
            .iter()
            .map(|c| {
                c.as_str()
                    .filter(|c| CHANNELS.contains(c))
                    .map(str::to_string)
            })
            .collect(),
        _ => None,
    };
    if channels.is_none() {
        errors.push(FieldError::new(
            "quietHours.channels",
            "must be a non-empty array of \"email\" and \"sms\"",
        ));
    }
    match (start, end, channels) {
        (Some(start), Some(end), Some(channels)) if errors.len() == before => Some(QuietHours {
            start,
            end,
            channels,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn the_spec_example_is_kept_as_given() {
        let body = json!({"defaultTimezone": "Europe/Berlin",
            "frequencyCaps": [{"channel": "email", "max": 2, "per": "day"}, {"channel": "*", "max": 5, "per": "week"}],
            "quietHours": {"start": "21:00", "end": "08:00", "channels": ["sms"]}});
        let settings = parse_settings(&body).unwrap();
        assert_eq!(serde_json::to_value(&settings).unwrap(), body);
    }

    #[test]
    fn an_empty_body_is_the_defaults() {
        assert_eq!(parse_settings(&json!({})).unwrap(), OrgSettings::default());
    }

    #[test]
    fn every_bad_field_is_reported() {
        let errors = parse_settings(&json!({"defaultTimezone": "Mars/Base",
            "frequencyCaps": [{"channel": "email", "max": 0, "per": "day"}, {"channel": "fax", "max": 1, "per": "month"}],
            "quietHours": {"start": "9pm", "end": "24:00", "channels": []}}))
        .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "defaultTimezone",
                "frequencyCaps[0].max",
                "frequencyCaps[1].channel",
                "frequencyCaps[1].per",
                "quietHours.start",
                "quietHours.end",
                "quietHours.channels"
            ]
        );
    }

    proptest! {
        #[test]
        fn clock_times_are_exactly_the_valid_hh_mm(text in "\\PC{0,6}") {
            let valid = is_clock_time(&text);
            let parsed = chrono::NaiveTime::parse_from_str(&text, "%H:%M").is_ok()
                && text.len() == 5;
            prop_assert_eq!(valid, parsed);
        }

        #[test]
        fn every_hh_mm_of_the_day_is_accepted(h in 0u32..24, m in 0u32..60) {
            let text = format!("{h:02}:{m:02}");
            prop_assert!(is_clock_time(&text));
        }
    }
}
