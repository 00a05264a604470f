//! An org's marketing settings (`api.md` section 12): its default time zone, frequency caps and
//! quiet hours. Parsing and validation of a settings body, and the event that replaces them.

use chrono::{DateTime, Datelike, NaiveTime, Utc};
pub use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::drip::next_local;
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

impl OrgSettings {
    /// The counters a send on `channel` takes: `(cap channel, per, max)` for each cap on that
    /// channel or on `*`, the lowest `max` where two caps share a channel and period.
    pub fn caps_for(&self, channel: &str) -> Vec<(&str, Per, u32)> {
        let mut out: Vec<(&str, Per, u32)> = Vec::new();
        for cap in &self.frequency_caps {
            if cap.channel != channel && cap.channel != "*" {
                continue;
            }
            match out
                .iter_mut()
                .find(|(c, per, _)| *c == cap.channel && *per == cap.per)
            {
                Some(found) => found.2 = found.2.min(cap.max),
                None => out.push((&cap.channel, cap.per, cap.max)),
            }
        }
        out
    }

    /// The org's default zone (UTC if it cannot be read).
    pub fn default_zone(&self) -> Tz {
        parse_timezone(&self.default_timezone).unwrap_or(Tz::UTC)
    }

    /// When a send on `channel` due at `now` may go, if the quiet hours hold it: the end of the
    /// window `now` falls in, in `tz`. `None` when it may go now.
    pub fn quiet_until(&self, channel: &str, now: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        self.quiet_hours.as_ref()?.until(channel, now, tz)
    }
}

impl Per {
    /// The period `at` falls in, in `tz`: `day:2026-12-06` or the ISO week `week:2026-W49`.
    pub fn period(self, at: DateTime<Utc>, tz: Tz) -> String {
        let local = at.with_timezone(&tz).date_naive();
        match self {
            Per::Day => format!("day:{}", local.format("%Y-%m-%d")),
            Per::Week => {
                let week = local.iso_week();
                format!("week:{}-W{:02}", week.year(), week.week())
            }
        }
    }
}

impl QuietHours {
    /// The end of the window `now` falls in, in `tz`, for a send on `channel`; `None` outside
    /// the window or for a channel it does not hold.
    pub fn until(&self, channel: &str, now: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        if !self.channels.iter().any(|c| c == channel) {
            return None;
        }
        let clock = |text: &str| NaiveTime::parse_from_str(text, "%H:%M").ok();
        let (start, end) = (clock(&self.start)?, clock(&self.end)?);
        let local = now.with_timezone(&tz).time();
        let inside = if start < end {
            start <= local && local < end
        } else {
            local >= start || local < end
        };
        inside.then(|| next_local(now, end, tz))
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

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn night() -> QuietHours {
        QuietHours {
            start: "21:00".into(),
            end: "08:00".into(),
            channels: vec!["sms".into()],
        }
    }

    #[test]
    fn a_window_that_wraps_midnight_holds_a_send_until_its_end_in_the_contacts_zone() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        // 22:30 in Berlin (21:30 UTC): held until 08:00 Berlin the next morning.
        assert_eq!(
            night().until("sms", at("2026-12-06T21:30:00Z"), berlin),
            Some(at("2026-12-07T07:00:00Z"))
        );
        // 03:00 in Berlin: held until 08:00 the same morning.
        assert_eq!(
            night().until("sms", at("2026-12-07T02:00:00Z"), berlin),
            Some(at("2026-12-07T07:00:00Z"))
        );
        // 08:00 sharp and 20:59 are outside; email is not held by an sms window.
        assert_eq!(
            night().until("sms", at("2026-12-07T07:00:00Z"), berlin),
            None
        );
        assert_eq!(
            night().until("sms", at("2026-12-07T19:59:00Z"), berlin),
            None
        );
        assert_eq!(
            night().until("email", at("2026-12-06T21:30:00Z"), berlin),
            None
        );
    }

    #[test]
    fn a_window_within_one_day_holds_only_inside_it() {
        let lunch = QuietHours {
            start: "12:00".into(),
            end: "13:30".into(),
            channels: vec!["email".into()],
        };
        assert_eq!(
            lunch.until("email", at("2026-12-06T12:10:00Z"), Tz::UTC),
            Some(at("2026-12-06T13:30:00Z"))
        );
        assert_eq!(
            lunch.until("email", at("2026-12-06T13:30:00Z"), Tz::UTC),
            None
        );
        assert_eq!(
            lunch.until("email", at("2026-12-06T11:59:59Z"), Tz::UTC),
            None
        );
    }

    #[test]
    fn caps_count_in_the_local_day_and_iso_week() {
        let tokyo: Tz = "Asia/Tokyo".parse().unwrap();
        // 2026-12-06T20:00Z is Monday 7 December in Tokyo, ISO week 50.
        assert_eq!(
            Per::Day.period(at("2026-12-06T20:00:00Z"), tokyo),
            "day:2026-12-07"
        );
        assert_eq!(
            Per::Week.period(at("2026-12-06T20:00:00Z"), tokyo),
            "week:2026-W50"
        );
        assert_eq!(
            Per::Week.period(at("2026-12-06T20:00:00Z"), Tz::UTC),
            "week:2026-W49"
        );
        // 1 January 2027 is in ISO week 53 of 2026.
        assert_eq!(
            Per::Week.period(at("2027-01-01T12:00:00Z"), Tz::UTC),
            "week:2026-W53"
        );
    }

    #[test]
    fn a_send_takes_its_channels_caps_and_the_star_caps_the_lowest_max_winning() {
        let settings = parse_settings(&json!({"frequencyCaps": [
            {"channel": "email", "max": 3, "per": "day"},
            {"channel": "email", "max": 2, "per": "day"},
            {"channel": "*", "max": 5, "per": "week"},
            {"channel": "sms", "max": 1, "per": "day"}]}))
        .unwrap();
        assert_eq!(
            settings.caps_for("email"),
            vec![("email", Per::Day, 2), ("*", Per::Week, 5)]
        );
        assert_eq!(
            settings.caps_for("sms"),
            vec![("*", Per::Week, 5), ("sms", Per::Day, 1)]
        );
    }
}
