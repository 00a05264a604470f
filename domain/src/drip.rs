//! Drip and milestone sequences (`api.md` section 11): the body's `steps`, `exit`, `enrollment`
//! and milestone `trigger`, their validation, and each contact's progression through the steps.
//!
//! Everything here is pure. The sending wing keeps one row per enrollment (`src/sending/drip.rs`)
//! and asks this module when the next step falls due ([`due_after`]) and whether it sends
//! ([`When::holds`]).

use std::collections::HashSet;

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::FieldError;
use crate::ids::{is_valid_id, INVALID_ID_MESSAGE};
use crate::query::Filter;
use crate::schedule::{parse_timezone, resolve_local};
use crate::spec::{CampaignType, Channel};

/// The most steps one campaign may have.
pub const MAX_STEPS: usize = 20;
/// The longest delay or milestone offset, in days.
pub const MAX_DELAY_DAYS: i64 = 366;

/// An ISO 8601 duration of days, hours, minutes and seconds (`P3DT4H`), kept as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Delay {
    text: String,
    seconds: i64,
}

impl Delay {
    /// Parses `PnDTnHnMnS`, with an optional leading `-` when `signed`.
    pub fn parse(text: &str, signed: bool) -> Result<Delay, String> {
        let seconds = parse_duration(text, signed)?;
        if seconds.abs() > MAX_DELAY_DAYS * 86_400 {
            return Err(format!("must be at most P{MAX_DELAY_DAYS}D"));
        }
        Ok(Delay {
            text: text.to_string(),
            seconds,
        })
    }

    pub fn seconds(&self) -> i64 {
        self.seconds
    }

    pub fn duration(&self) -> Duration {
        Duration::seconds(self.seconds)
    }
}

impl TryFrom<String> for Delay {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        Delay::parse(&text, true)
    }
}

impl From<Delay> for String {
    fn from(delay: Delay) -> String {
        delay.text
    }
}

const DURATION_FORMAT: &str =
    "must be an ISO 8601 duration of days, hours, minutes and seconds, e.g. P3DT4H (no years or months)";

/// Seconds of `PnDTnHnMnS` (any part may be left out, at least one given).
fn parse_duration(text: &str, signed: bool) -> Result<i64, String> {
    let (negative, rest) = match text.strip_prefix('-') {
        Some(rest) if signed => (true, rest),
        Some(_) => return Err("must not be negative".to_string()),
        None => (false, text),
    };
    let rest = rest.strip_prefix('P').ok_or(DURATION_FORMAT)?;
    let (date, time) = match rest.split_once('T') {
        Some((date, time)) if !time.is_empty() => (date, Some(time)),
        Some(_) => return Err(DURATION_FORMAT.to_string()),
        None => (rest, None),
    };
    let mut total: i64 = 0;
    let mut parts = 0;
    let mut take = |section: &str, units: &[(char, i64)]| -> Result<(), String> {
        let mut number = String::new();
        let mut allowed = units.iter();
        for c in section.chars() {
            if c.is_ascii_digit() {
                number.push(c);
                continue;
            }
            if matches!(c, 'Y') || (c == 'M' && units[0].0 == 'D') {
                return Err(DURATION_FORMAT.to_string());
            }
            // Units in order, each at most once.
            let factor = allowed
                .by_ref()
                .find(|(unit, _)| *unit == c)
                .map(|(_, factor)| *factor)
                .ok_or(DURATION_FORMAT)?;
            let value: i64 = number.parse().map_err(|_| DURATION_FORMAT.to_string())?;
            number.clear();
            total = value
                .checked_mul(factor)
                .and_then(|v| total.checked_add(v))
                .ok_or_else(|| format!("must be at most P{MAX_DELAY_DAYS}D"))?;
            parts += 1;
        }
        if number.is_empty() {
            Ok(())
        } else {
            Err(DURATION_FORMAT.to_string())
        }
    };
    take(date, &[('D', 86_400)])?;
    if let Some(time) = time {
        take(time, &[('H', 3_600), ('M', 60), ('S', 1)])?;
    }
    if parts == 0 {
        return Err(DURATION_FORMAT.to_string());
    }
    Ok(if negative { -total } else { total })
}

/// A local wall-clock time, `HH:MM` from `00:00` to `23:59`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ClockTime(NaiveTime);

impl ClockTime {
    pub fn parse(text: &str) -> Result<ClockTime, String> {
        const MESSAGE: &str = "must be a local time HH:MM from 00:00 to 23:59";
        let bytes = text.as_bytes();
        if bytes.len() != 5 || bytes[2] != b':' {
            return Err(MESSAGE.to_string());
        }
        let number = |s: &str| {
            s.parse::<u32>()
                .ok()
                .filter(|_| s.bytes().all(|b| b.is_ascii_digit()))
        };
        match (number(&text[..2]), number(&text[3..])) {
            (Some(h), Some(m)) if h < 24 && m < 60 => NaiveTime::from_hms_opt(h, m, 0)
                .map(ClockTime)
                .ok_or_else(|| MESSAGE.to_string()),
            _ => Err(MESSAGE.to_string()),
        }
    }

    pub fn time(self) -> NaiveTime {
        self.0
    }
}

impl TryFrom<String> for ClockTime {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        ClockTime::parse(&text)
    }
}

impl From<ClockTime> for String {
    fn from(at: ClockTime) -> String {
        at.0.format("%H:%M").to_string()
    }
}

/// A step's condition, checked for the contact when the step falls due.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum When {
    Opened(String),
    NotOpened(String),
    Clicked(String),
    NotClicked(String),
    /// A DynamicQuery `where`, kept as given.
    Filter(Value),
}

/// What a contact did with the earlier steps' messages: human opens and clicks only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepEngagement {
    pub opened: HashSet<String>,
    pub clicked: HashSet<String>,
}

impl When {
    /// The earlier step this condition names, if any.
    pub fn step(&self) -> Option<&str> {
        match self {
            When::Opened(s) | When::NotOpened(s) | When::Clicked(s) | When::NotClicked(s) => {
                Some(s)
            }
            When::Filter(_) => None,
        }
    }

    /// The condition ready to check many contacts: a `filter` is parsed once, here.
    pub fn compile(&self) -> CompiledWhen<'_> {
        let filter = match self {
            When::Filter(where_) => crate::query::parse_where(where_, "when.filter").ok(),
            _ => None,
        };
        CompiledWhen { when: self, filter }
    }
}

/// A [`When`] with its filter parsed ([`When::compile`]).
pub struct CompiledWhen<'a> {
    when: &'a When,
    filter: Option<Filter>,
}

impl CompiledWhen<'_> {
    /// Whether the step sends, given the contact's engagement with earlier steps and the
    /// contact's document. A filter that does not parse (it was checked when saved) is false.
    pub fn holds(&self, engagement: &StepEngagement, contact: &Value) -> bool {
        match self.when {
            When::Opened(step) => engagement.opened.contains(step),
            When::NotOpened(step) => !engagement.opened.contains(step),
            When::Clicked(step) => engagement.clicked.contains(step),
            When::NotClicked(step) => !engagement.clicked.contains(step),
            When::Filter(_) => self.filter.as_ref().is_some_and(|f| f.matches(contact)),
        }
    }
}

/// One message of a sequence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_id: Option<String>,
    /// A subset of the campaign's channels; all of them when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<Vec<Channel>>,
    pub delay: Delay,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<ClockTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<When>,
}

impl Step {
    /// The channels this step sends on, of the campaign's `channels`.
    pub fn channels_of(&self, campaign: &[Channel]) -> Vec<Channel> {
        match &self.channels {
            Some(own) => own
                .iter()
                .copied()
                .filter(|c| campaign.contains(c))
                .collect(),
            None => campaign.to_vec(),
        }
    }
}

/// An engagement on this campaign that makes a contact leave the sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExitOn {
    Conversion,
    Reply,
    Click,
}

impl ExitOn {
    pub fn as_str(self) -> &'static str {
        match self {
            ExitOn::Conversion => "conversion",
            ExitOn::Reply => "reply",
            ExitOn::Click => "click",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exit {
    pub on: Vec<ExitOn>,
}

/// The engagement recorded on another campaign that enrolls a contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TriggerEvent {
    Click,
    Open,
    Conversion,
    Reply,
}

/// Who enters a drip campaign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Enrollment {
    /// `"launch"` or `"continuous"`.
    Mode(EnrollmentMode),
    /// A contact enters when `event` is recorded for them on `campaign_id`.
    Event {
        event: TriggerEvent,
        #[serde(rename = "campaignId")]
        campaign_id: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EnrollmentMode {
    Launch,
    Continuous,
}

impl Enrollment {
    /// Whether the audience at launch is enrolled (`launch`, the default, or `continuous`).
    pub fn at_launch(enrollment: Option<&Enrollment>) -> bool {
        !matches!(enrollment, Some(Enrollment::Event { .. }))
    }
}

/// How often a milestone repeats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Repeat {
    #[default]
    None,
    Yearly,
}

/// A milestone campaign's trigger: each contact enters at their `field` + `offset`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Trigger {
    pub field: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<Delay>,
    #[serde(default)]
    pub repeat: Repeat,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<ClockTime>,
}

/// Whether a campaign type sends steps.
pub fn has_steps(kind: CampaignType) -> bool {
    matches!(kind, CampaignType::Drip | CampaignType::Milestone)
}

/// Whether `path` is a dot path of names (`attributes.renewalAt`).
pub fn is_dot_path(path: &str) -> bool {
    !path.is_empty()
        && path.len() <= 200
        && path.split('.').all(|name| {
            let mut chars = name.chars();
            chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        })
}

// ---- Parsing, with a field error for every rule ----

/// The sequence fields of a campaign body, parsed. Syntax errors go to `errors`; the rules that
/// relate fields to each other are [`check`]'s.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SequenceInput {
    pub steps: Vec<Step>,
    pub exit: Option<Exit>,
    pub enrollment: Option<Enrollment>,
    pub trigger: Option<Trigger>,
    /// Whether the body had a `steps` field (an empty one is an error, not an absence).
    pub steps_given: bool,
}

fn present<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

/// Reads `steps`, `exit`, `enrollment` and `trigger` from a campaign body.
pub fn parse(obj: &Map<String, Value>, errors: &mut Vec<FieldError>) -> SequenceInput {
    let mut input = SequenceInput::default();
    match present(obj, "steps") {
        None => {}
        Some(Value::Array(items)) => {
            input.steps_given = true;
            if items.len() > MAX_STEPS {
                errors.push(FieldError::new(
                    "steps",
                    format!("must have at most {MAX_STEPS} steps"),
                ));
            }
            for (i, item) in items.iter().enumerate().take(MAX_STEPS) {
                if let Some(step) = parse_step(&format!("steps[{i}]"), item, errors) {
                    input.steps.push(step);
                }
            }
        }
        Some(_) => errors.push(FieldError::new("steps", "must be an array of steps")),
    }
    input.exit = present(obj, "exit").and_then(|v| parse_exit(v, errors));
    input.enrollment = present(obj, "enrollment").and_then(|v| parse_enrollment(v, errors));
    input.trigger = present(obj, "trigger").and_then(|v| parse_trigger(v, errors));
    input
}

fn parse_step(path: &str, value: &Value, errors: &mut Vec<FieldError>) -> Option<Step> {
    let Some(obj) = value.as_object() else {
        errors.push(FieldError::new(path, "must be an object"));
        return None;
    };
    let before = errors.len();
    let id = match present(obj, "id") {
        None => {
            errors.push(FieldError::new(format!("{path}.id"), "is required"));
            None
        }
        Some(Value::String(id)) if is_valid_id(id) => Some(id.clone()),
        Some(_) => {
            errors.push(FieldError::new(format!("{path}.id"), INVALID_ID_MESSAGE));
            None
        }
    };
    let template_id = match present(obj, "templateId") {
        None => None,
        Some(Value::String(id)) if is_valid_id(id) => Some(id.clone()),
        Some(_) => {
            errors.push(FieldError::new(
                format!("{path}.templateId"),
                INVALID_ID_MESSAGE,
            ));
            None
        }
    };
    let channels = match present(obj, "channels") {
        None => None,
        Some(Value::Array(items)) if !items.is_empty() => {
            let mut channels = Vec::new();
            for (j, item) in items.iter().enumerate() {
                let field = format!("{path}.channels[{j}]");
                match item.as_str().and_then(Channel::parse) {
                    None => errors.push(FieldError::new(field, "must be a platform id")),
                    Some(c) if channels.contains(&c) => {
                        errors.push(FieldError::new(field, "is listed more than once"))
                    }
                    Some(c) => channels.push(c),
                }
            }
            Some(channels)
        }
        Some(_) => {
            errors.push(FieldError::new(
                format!("{path}.channels"),
                "must be a non-empty array of the campaign's channels",
            ));
            None
        }
    };
    let delay = match present(obj, "delay") {
        None => {
            errors.push(FieldError::new(
                format!("{path}.delay"),
                "is required, e.g. PT0S for at once",
            ));
            None
        }
        Some(Value::String(text)) => match Delay::parse(text, false) {
            Ok(delay) => Some(delay),
            Err(message) => {
                errors.push(FieldError::new(format!("{path}.delay"), message));
                None
            }
        },
        Some(_) => {
            errors.push(FieldError::new(format!("{path}.delay"), DURATION_FORMAT));
            None
        }
    };
    let at = parse_clock(obj, path, errors);
    let when = present(obj, "when").and_then(|v| parse_when(&format!("{path}.when"), v, errors));
    if errors.len() != before {
        return None;
    }
    Some(Step {
        id: id?,
        template_id,
        channels,
        delay: delay?,
        at,
        when,
    })
}

fn parse_clock(
    obj: &Map<String, Value>,
    path: &str,
    errors: &mut Vec<FieldError>,
) -> Option<ClockTime> {
    let value = present(obj, "at")?;
    match value.as_str().map(ClockTime::parse) {
        Some(Ok(at)) => Some(at),
        Some(Err(message)) => {
            errors.push(FieldError::new(format!("{path}.at"), message));
            None
        }
        None => {
            errors.push(FieldError::new(
                format!("{path}.at"),
                "must be a local time HH:MM from 00:00 to 23:59",
            ));
            None
        }
    }
}

fn parse_when(path: &str, value: &Value, errors: &mut Vec<FieldError>) -> Option<When> {
    const SHAPE: &str = "must be one of {\"opened\"|\"notOpened\"|\"clicked\"|\"notClicked\": \"<earlier step id>\"} or {\"filter\": {...}}";
    let Some((key, inner)) = value
        .as_object()
        .filter(|obj| obj.len() == 1)
        .and_then(|obj| obj.iter().next())
    else {
        errors.push(FieldError::new(path, SHAPE));
        return None;
    };
    let field = format!("{path}.{key}");
    let step = || -> Result<String, FieldError> {
        match inner.as_str() {
            Some(id) if is_valid_id(id) => Ok(id.to_string()),
            _ => Err(FieldError::new(
                field.clone(),
                "must be an earlier step's id",
            )),
        }
    };
    let parsed = match key.as_str() {
        "opened" => step().map(When::Opened),
        "notOpened" => step().map(When::NotOpened),
        "clicked" => step().map(When::Clicked),
        "notClicked" => step().map(When::NotClicked),
        "filter" => match crate::query::parse_where(inner, &field) {
            Ok(_) => Ok(When::Filter(inner.clone())),
            Err(found) => {
                errors.extend(found);
                return None;
            }
        },
        _ => Err(FieldError::new(path, SHAPE)),
    };
    parsed.map_err(|e| errors.push(e)).ok()
}

fn parse_exit(value: &Value, errors: &mut Vec<FieldError>) -> Option<Exit> {
    let Some(on) = value.as_object().and_then(|obj| present(obj, "on")) else {
        errors.push(FieldError::new(
            "exit",
            "must be an object like {\"on\": [\"conversion\"]}",
        ));
        return None;
    };
    let Some(items) = on.as_array() else {
        errors.push(FieldError::new(
            "exit.on",
            "must be an array of conversion, reply, click",
        ));
        return None;
    };
    let mut exit = Exit::default();
    for (i, item) in items.iter().enumerate() {
        match serde_json::from_value::<ExitOn>(item.clone()) {
            Ok(on) if !exit.on.contains(&on) => exit.on.push(on),
            Ok(_) => errors.push(FieldError::new(
                format!("exit.on[{i}]"),
                "is listed more than once",
            )),
            Err(_) => errors.push(FieldError::new(
                format!("exit.on[{i}]"),
                "must be one of: conversion, reply, click",
            )),
        }
    }
    Some(exit)
}

fn parse_enrollment(value: &Value, errors: &mut Vec<FieldError>) -> Option<Enrollment> {
    if let Some(obj) = value.as_object() {
        let before = errors.len();
        let event = match present(obj, "event").map(|v| serde_json::from_value(v.clone())) {
            Some(Ok(event)) => Some(event),
            _ => {
                errors.push(FieldError::new(
                    "enrollment.event",
                    "must be one of: click, open, conversion, reply",
                ));
                None
            }
        };
        let campaign_id = match present(obj, "campaignId") {
            Some(Value::String(id)) if is_valid_id(id) => Some(id.clone()),
            None => {
                errors.push(FieldError::new("enrollment.campaignId", "is required"));
                None
            }
            Some(_) => {
                errors.push(FieldError::new("enrollment.campaignId", INVALID_ID_MESSAGE));
                None
            }
        };
        return match (event, campaign_id) {
            (Some(event), Some(campaign_id)) if errors.len() == before => {
                Some(Enrollment::Event { event, campaign_id })
            }
            _ => None,
        };
    }
    match value.as_str() {
        Some("launch") => Some(Enrollment::Mode(EnrollmentMode::Launch)),
        Some("continuous") => Some(Enrollment::Mode(EnrollmentMode::Continuous)),
        _ => {
            errors.push(FieldError::new(
                "enrollment",
                "must be \"launch\", \"continuous\" or {\"event\": \"click\", \"campaignId\": \"...\"}",
            ));
            None
        }
    }
}

fn parse_trigger(value: &Value, errors: &mut Vec<FieldError>) -> Option<Trigger> {
    let Some(obj) = value.as_object() else {
        errors.push(FieldError::new(
            "trigger",
            "must be an object like {\"field\": \"attributes.renewalAt\", \"offset\": \"-P7D\"}",
        ));
        return None;
    };
    let before = errors.len();
    let field = match present(obj, "field") {
        Some(Value::String(path)) if is_dot_path(path) => Some(path.clone()),
        None => {
            errors.push(FieldError::new("trigger.field", "is required"));
            None
        }
        Some(_) => {
            errors.push(FieldError::new(
                "trigger.field",
                "must be a dot path to a date field, e.g. attributes.renewalAt",
            ));
            None
        }
    };
    let offset = match present(obj, "offset") {
        None => None,
        Some(Value::String(text)) => match Delay::parse(text, true) {
            Ok(offset) => Some(offset),
            Err(message) => {
                errors.push(FieldError::new("trigger.offset", message));
                None
            }
        },
        Some(_) => {
            errors.push(FieldError::new("trigger.offset", DURATION_FORMAT));
            None
        }
    };
    let repeat = match present(obj, "repeat") {
        None => Repeat::None,
        Some(v) => match serde_json::from_value(v.clone()) {
            Ok(repeat) => repeat,
            Err(_) => {
                errors.push(FieldError::new(
                    "trigger.repeat",
                    "must be one of: none, yearly",
                ));
                Repeat::None
            }
        },
    };
    let at = parse_clock(obj, "trigger", errors);
    (errors.len() == before).then(|| Trigger {
        field: field.unwrap_or_default(),
        offset,
        repeat,
        at,
    })
}

/// The rules between the sequence fields and the rest of the campaign, on typed values: which
/// types take steps, enrollment and a trigger; unique step ids; `when` naming an earlier step;
/// step channels among the campaign's.
pub fn check(
    kind: CampaignType,
    channels: &[Channel],
    steps: &[Step],
    steps_given: bool,
    enrollment: Option<&Enrollment>,
    trigger: Option<&Trigger>,
    exit: Option<&Exit>,
) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if has_steps(kind) {
        if steps.is_empty() && !steps_given {
            errors.push(FieldError::new(
                "steps",
                format!(
                    "is required for a {} campaign (1 to {MAX_STEPS} steps)",
                    kind.id()
                ),
            ));
        } else if steps.is_empty() {
            errors.push(FieldError::new(
                "steps",
                format!("must have 1 to {MAX_STEPS} steps"),
            ));
        } else if steps.len() > MAX_STEPS {
            errors.push(FieldError::new(
                "steps",
                format!("must have at most {MAX_STEPS} steps"),
            ));
        }
    } else if steps_given || !steps.is_empty() {
        errors.push(FieldError::new(
            "steps",
            "is only for drip and milestone campaigns",
        ));
    }
    if exit.is_some() && !has_steps(kind) {
        errors.push(FieldError::new(
            "exit",
            "is only for drip and milestone campaigns",
        ));
    }
    if enrollment.is_some() && kind != CampaignType::Drip {
        errors.push(FieldError::new("enrollment", "is only for drip campaigns"));
    }
    match (kind, trigger) {
        (CampaignType::Milestone, None) => errors.push(FieldError::new(
            "trigger",
            "is required for a milestone campaign, e.g. {\"field\": \"attributes.renewalAt\"}",
        )),
        (CampaignType::Milestone, Some(trigger)) if !is_dot_path(&trigger.field) => {
            errors.push(FieldError::new(
                "trigger.field",
                "must be a dot path to a date field, e.g. attributes.renewalAt",
            ))
        }
        (CampaignType::Milestone, Some(_)) | (_, None) => {}
        (_, Some(_)) => errors.push(FieldError::new(
            "trigger",
            "is only for milestone campaigns",
        )),
    }
    let mut seen: Vec<&str> = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        if seen.contains(&step.id.as_str()) {
            errors.push(FieldError::new(
                format!("steps[{i}].id"),
                "is used by an earlier step; step ids must be unique",
            ));
        }
        if let Some(named) = step.when.as_ref().and_then(When::step) {
            if !seen.contains(&named) {
                let key = match step.when {
                    Some(When::Opened(_)) => "opened",
                    Some(When::NotOpened(_)) => "notOpened",
                    Some(When::Clicked(_)) => "clicked",
                    _ => "notClicked",
                };
                errors.push(FieldError::new(
                    format!("steps[{i}].when.{key}"),
                    "must name an earlier step of this campaign",
                ));
            }
        }
        seen.push(&step.id);
        if let Some(own) = &step.channels {
            for (j, channel) in own.iter().enumerate() {
                if !channels.contains(channel) {
                    errors.push(FieldError::new(
                        format!("steps[{i}].channels[{j}]"),
                        "is not one of the campaign's channels",
                    ));
                }
            }
        }
        if step.delay.seconds() < 0 {
            errors.push(FieldError::new(
                format!("steps[{i}].delay"),
                "must not be negative",
            ));
        }
    }
    errors
}

/// Whether `new` only adds steps at the end of `old` (what a running campaign may do).
pub fn only_appends(old: &[Step], new: &[Step]) -> bool {
    new.len() >= old.len() && new[..old.len()] == *old
}

// ---- Progression ----

/// The zone a contact's local times are read in: the contact's `timezone` when it is a valid
/// IANA zone, else the campaign's, else UTC.
pub fn zone(contact_timezone: Option<&str>, campaign_timezone: Option<&str>) -> Tz {
    contact_timezone
        .and_then(parse_timezone)
        .or_else(|| campaign_timezone.and_then(parse_timezone))
        .unwrap_or(Tz::UTC)
}

/// When `step` falls due, counted from `from` (the enrollment for the first step, the previous
/// step's due time for the others): its delay, then the first `at` local time at or after that
/// in `tz`, by the daylight-saving policy of `api.md` section 2 (a time in a gap fires at the
/// end of the gap; a time that occurs twice fires at the first).
pub fn due_after(from: DateTime<Utc>, step: &Step, tz: Tz) -> DateTime<Utc> {
    let ready = from + step.delay.duration();
    match step.at {
        None => ready,
        Some(at) => next_local(ready, at.time(), tz),
    }
}

/// The first instant at or after `ready` whose local time in `tz` is `at`.
pub fn next_local(ready: DateTime<Utc>, at: NaiveTime, tz: Tz) -> DateTime<Utc> {
    let day = tz.from_utc_datetime(&ready.naive_utc()).date_naive();
    // The local day of `ready` or the next: a gap moves an instant forward by at most a day.
    for offset in 0..3 {
        let Some(date) = day.checked_add_signed(Duration::days(offset)) else {
            break;
        };
        if let Some(instant) = resolve_local(tz, date.and_time(at)) {
            if instant >= ready {
                return instant;
            }
        }
    }
    ready
}

/// A milestone instant: the contact's field value (an RFC 3339 timestamp, or a date at `at`
/// local time, default 09:00) plus the offset. `None` when the value is not a date.
pub fn milestone_at(value: &Value, trigger: &Trigger, tz: Tz) -> Option<DateTime<Utc>> {
    let text = value.as_str()?;
    let base = if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        t.with_timezone(&Utc)
    } else {
        let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
        milestone_on(date, trigger, tz)?
    };
    Some(
        base + trigger
            .offset
            .as_ref()
            .map(Delay::duration)
            .unwrap_or_default(),
    )
}

/// The milestone's time on `date` (`at` local time, default 09:00).
fn milestone_on(date: NaiveDate, trigger: &Trigger, tz: Tz) -> Option<DateTime<Utc>> {
    let at = trigger
        .at
        .map(ClockTime::time)
        .unwrap_or_else(|| NaiveTime::from_hms_opt(9, 0, 0).expect("09:00"));
    resolve_local(tz, date.and_time(at))
}

/// The date of a milestone value in year `year`: 29 February falls on 28 February in a year
/// that has none.
pub fn anniversary(date: NaiveDate, year: i32) -> Option<NaiveDate> {
    use chrono::Datelike;
    NaiveDate::from_ymd_opt(year, date.month(), date.day())
        .or_else(|| NaiveDate::from_ymd_opt(year, date.month(), date.day().saturating_sub(1)))
}

/// The next milestone of a contact's value at or after `after`: the value itself (plus offset)
/// when it is still ahead, or with `yearly`, the first anniversary that is. `None` when the value
/// is not a date or (without `repeat`) it has passed. Returns the milestone date (the key of the
/// enrollment) and its instant.
pub fn next_milestone(
    value: &Value,
    trigger: &Trigger,
    tz: Tz,
    after: DateTime<Utc>,
) -> Option<(NaiveDate, DateTime<Utc>)> {
    use chrono::Datelike;
    let text = value.as_str()?;
    let (date, time) = match DateTime::parse_from_rfc3339(text) {
        Ok(t) => {
            let local = t.with_timezone(&tz);
            (local.date_naive(), Some(local.time()))
        }
        Err(_) => (NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?, None),
    };
    let offset = trigger
        .offset
        .as_ref()
        .map(Delay::duration)
        .unwrap_or_default();
    let at_date = |d: NaiveDate| -> Option<DateTime<Utc>> {
        let base = match time {
            Some(time) => resolve_local(tz, d.and_time(time))?,
            None => milestone_on(d, trigger, tz)?,
        };
        Some(base + offset)
    };
    match trigger.repeat {
        Repeat::None => {
            let at = at_date(date)?;
            (at >= after).then_some((date, at))
        }
        Repeat::Yearly => {
            let first = tz.from_utc_datetime(&(after - offset).naive_utc()).year() - 1;
            (first..first + 3).find_map(|year| {
                let d = anniversary(date, year)?;
                let at = at_date(d)?;
                (at >= after).then_some((d, at))
            })
        }
    }
}

/// The data of an enrollment event: one batch of a campaign's contacts (a launch page, a batch
/// of the log, a yearly renewal), written with their enrollment rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnrollmentBatch<C> {
    pub campaign_id: String,
    pub contacts: Vec<C>,
    pub at: DateTime<Utc>,
}

/// The data of a `ContactsEnrolled` event: contacts that entered a drip or milestone campaign.
/// `milestone` is the milestone date (`YYYY-MM-DD`) of a milestone campaign.
pub type ContactsEnrolled = EnrollmentBatch<EnrolledContact>;

/// One contact of [`ContactsEnrolled`]: when its sequence starts (the enrollment, or the
/// milestone's moment), in which zone its steps are timed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnrolledContact {
    pub contact_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub milestone: String,
    pub starts_at: DateTime<Utc>,
    pub zone: String,
}

/// The data of an `EnrollmentsExited` event: enrollments that left their sequence before its
/// end, each with its reason (`converted`, `unsubscribed`, `contact-deleted`,
/// `milestone-moved`, `milestone-not-a-date`, ...). Exits that follow a campaign event
/// (`Completed`, `SoftDeleted`) are not repeated here: that event is their record.
pub type EnrollmentsExited = EnrollmentBatch<ExitedContact>;

/// One contact of [`EnrollmentsExited`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExitedContact {
    pub contact_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub milestone: String,
    pub reason: String,
}

/// The event type name of [`ContactsEnrolled`].
pub const ENROLLED_EVENT_TYPE: &str = "ContactsEnrolled";
/// The event type name of [`EnrollmentsExited`].
pub const EXITED_EVENT_TYPE: &str = "EnrollmentsExited";

/// The stream of one batch of a campaign's enrollment changes:
/// `enrollment-<org>:<campaign>:<batch>`. A stream per batch lets the launch, the log follower
/// and the step sender write at once without contending for one stream's revisions.
pub fn enrollment_stream(org_id: &str, campaign_id: &str, batch: &str) -> String {
    format!("enrollment-{org_id}:{campaign_id}:{batch}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn step(delay: &str, at: Option<&str>) -> Step {
        Step {
            id: "s".into(),
            template_id: None,
            channels: None,
            delay: Delay::parse(delay, false).unwrap(),
            at: at.map(|a| ClockTime::parse(a).unwrap()),
            when: None,
        }
    }

    fn parsed(body: Value) -> (SequenceInput, Vec<FieldError>) {
        let mut errors = Vec::new();
        let input = parse(body.as_object().unwrap(), &mut errors);
        (input, errors)
    }

    fn fields(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn durations_take_days_hours_minutes_and_seconds_only() {
        assert_eq!(parse_duration("PT0S", false), Ok(0));
        assert_eq!(parse_duration("P3D", false), Ok(3 * 86_400));
        assert_eq!(parse_duration("P1DT2H3M4S", false), Ok(93_784));
        assert_eq!(parse_duration("PT90M", false), Ok(5_400));
        assert_eq!(parse_duration("-P7D", true), Ok(-7 * 86_400));
        for bad in [
            "", "P", "PT", "3D", "P1M", "P1Y", "P1W", "PT1D", "P1DT", "PT1H1H", "PT1M1H", "P-1D",
            "P1.5D", "-P1D",
        ] {
            assert!(
                parse_duration(bad, false).is_err(),
                "{bad} should be refused"
            );
        }
        assert!(Delay::parse("P367D", false).is_err());
        assert!(Delay::parse("P366D", false).is_ok());
        assert!(Delay::parse("PT999999999999999999H", false).is_err());
    }

    #[test]
    fn clock_times_run_from_00_00_to_23_59() {
        assert!(ClockTime::parse("00:00").is_ok());
        assert!(ClockTime::parse("23:59").is_ok());
        for bad in ["24:00", "9:00", "09:60", "09-00", "0900", "+9:00", "ab:cd"] {
            assert!(ClockTime::parse(bad).is_err(), "{bad} should be refused");
        }
        assert_eq!(String::from(ClockTime::parse("09:05").unwrap()), "09:05");
    }

    #[test]
    fn the_contract_example_parses_and_passes_every_rule() {
        let (input, errors) = parsed(json!({
            "enrollment": "continuous",
            "steps": [
                {"id": "welcome", "delay": "PT0S"},
                {"id": "nudge", "templateId": "tpl-nudge", "delay": "P3D", "at": "09:00", "when": {"notOpened": "welcome"}},
                {"id": "offer", "templateId": "tpl-offer", "channels": ["sms"], "delay": "P2D", "when": {"clicked": "welcome"}}
            ],
            "exit": {"on": ["conversion"]}
        }));
        assert_eq!(errors, []);
        assert_eq!(input.steps.len(), 3);
        assert_eq!(input.steps[1].when, Some(When::NotOpened("welcome".into())));
        assert_eq!(
            input.enrollment,
            Some(Enrollment::Mode(EnrollmentMode::Continuous))
        );
        let rules = check(
            CampaignType::Drip,
            &[Channel::Email, Channel::Sms],
            &input.steps,
            true,
            input.enrollment.as_ref(),
            None,
            input.exit.as_ref(),
        );
        assert_eq!(rules, []);
        // Stored and read back unchanged.
        let stored = serde_json::to_value(&input.steps).unwrap();
        assert_eq!(stored[1]["delay"], "P3D");
        assert_eq!(stored[1]["at"], "09:00");
        assert_eq!(stored[1]["when"], json!({"notOpened": "welcome"}));
        let back: Vec<Step> = serde_json::from_value(stored).unwrap();
        assert_eq!(back, input.steps);
    }

    #[test]
    fn every_malformed_step_names_its_field() {
        let (_, errors) = parsed(json!({"steps": [
            {"id": "a"},
            {"id": "b", "delay": "P1M"},
            {"id": "c", "delay": "P400D"},
            {"id": "d", "delay": "-PT1S"},
            {"id": "e", "delay": "PT0S", "at": "24:00"},
            {"id": "bad id", "delay": "PT0S"},
            {"id": "f", "delay": "PT0S", "when": {"sometimes": "a"}},
            {"id": "g", "delay": "PT0S", "channels": []},
            "step"
        ]}));
        assert_eq!(
            fields(&errors),
            [
                "steps[0].delay",
                "steps[1].delay",
                "steps[2].delay",
                "steps[3].delay",
                "steps[4].at",
                "steps[5].id",
                "steps[6].when",
                "steps[7].channels",
                "steps[8]"
            ]
        );
    }

    #[test]
    fn more_than_twenty_steps_are_refused() {
        let steps: Vec<Value> = (0..21)
            .map(|i| json!({"id": format!("s{i}"), "delay": "PT0S"}))
            .collect();
        let (_, errors) = parsed(json!({ "steps": steps }));
        assert_eq!(fields(&errors), ["steps"]);
    }

    #[test]
    fn rules_between_fields_name_the_field() {
        let steps: Vec<Step> = serde_json::from_value(json!([
            {"id": "a", "delay": "PT0S", "when": {"opened": "b"}},
            {"id": "b", "delay": "PT0S", "channels": ["sms"]},
            {"id": "a", "delay": "PT0S", "when": {"clicked": "zz"}}
        ]))
        .unwrap();
        let errors = check(
            CampaignType::Drip,
            &[Channel::Email],
            &steps,
            true,
            None,
            None,
            None,
        );
        assert_eq!(
            fields(&errors),
            [
                "steps[0].when.opened",
                "steps[1].channels[0]",
                "steps[2].id",
                "steps[2].when.clicked"
            ]
        );
    }

    #[test]
    fn steps_belong_to_drip_and_milestone_only() {
        let one: Vec<Step> = vec![step("PT0S", None)];
        let email = [Channel::Email];
        assert_eq!(
            fields(&check(
                CampaignType::Drip,
                &email,
                &[],
                false,
                None,
                None,
                None
            )),
            ["steps"]
        );
        assert_eq!(
            fields(&check(
                CampaignType::Drip,
                &email,
                &[],
                true,
                None,
                None,
                None
            )),
            ["steps"]
        );
        assert_eq!(
            fields(&check(
                CampaignType::OneShot,
                &email,
                &one,
                true,
                None,
                None,
                None
            )),
            ["steps"]
        );
        let trigger = Trigger {
            field: "attributes.renewalAt".into(),
            offset: None,
            repeat: Repeat::None,
            at: None,
        };
        assert_eq!(
            fields(&check(
                CampaignType::Milestone,
                &email,
                &one,
                true,
                None,
                None,
                None
            )),
            ["trigger"]
        );
        assert_eq!(
            check(
                CampaignType::Milestone,
                &email,
                &one,
                true,
                None,
                Some(&trigger),
                None
            ),
            []
        );
        assert_eq!(
            fields(&check(
                CampaignType::Drip,
                &email,
                &one,
                true,
                None,
                Some(&trigger),
                None
            )),
            ["trigger"]
        );
    }

    #[test]
    fn a_milestone_field_must_be_a_dot_path() {
        for good in ["attributes.renewalAt", "birthday", "a.b_c.d-e"] {
            assert!(is_dot_path(good), "{good}");
        }
        for bad in ["", "a..b", ".a", "a.", "attributes[0]", "a b", "1a"] {
            assert!(!is_dot_path(bad), "{bad}");
        }
        let (_, errors) = parsed(json!({"trigger": {"field": "attributes[renewal]"}}));
        assert_eq!(fields(&errors), ["trigger.field"]);
        let (input, errors) = parsed(
            json!({"trigger": {"field": "attributes.renewalAt", "offset": "-P7D", "repeat": "yearly", "at": "08:30"}}),
        );
        assert_eq!(errors, []);
        let trigger = input.trigger.unwrap();
        assert_eq!(trigger.offset.unwrap().seconds(), -7 * 86_400);
        assert_eq!(trigger.repeat, Repeat::Yearly);
    }

    #[test]
    fn enrollment_is_launch_continuous_or_an_event_on_a_campaign() {
        let (input, errors) =
            parsed(json!({"enrollment": {"event": "click", "campaignId": "camp-news"}}));
        assert_eq!(errors, []);
        assert_eq!(
            input.enrollment,
            Some(Enrollment::Event {
                event: TriggerEvent::Click,
                campaign_id: "camp-news".into()
            })
        );
        let (_, errors) = parsed(json!({"enrollment": "sometimes"}));
        assert_eq!(fields(&errors), ["enrollment"]);
        let (_, errors) = parsed(json!({"enrollment": {"event": "bounce"}}));
        assert_eq!(
            fields(&errors),
            ["enrollment.event", "enrollment.campaignId"]
        );
        let (_, errors) = parsed(json!({"exit": {"on": ["conversion", "open"]}}));
        assert_eq!(fields(&errors), ["exit.on[1]"]);
    }

    #[test]
    fn steps_may_only_grow_at_the_end() {
        let a = step("PT0S", None);
        let mut b = step("P1D", None);
        b.id = "b".into();
        let (one, two) = (vec![a.clone()], vec![a.clone(), b.clone()]);
        assert!(only_appends(&one, &two));
        assert!(only_appends(&one, &one));
        assert!(!only_appends(&two, &one));
        assert!(!only_appends(&two, &[b.clone(), a.clone()]));
        let mut changed = a.clone();
        changed.delay = Delay::parse("PT1S", false).unwrap();
        assert!(!only_appends(&[a], &[changed]));
    }

    // Given a step, when it falls due, then ...

    #[test]
    fn a_delay_counts_from_the_previous_due_time() {
        let from = utc("2026-03-01T10:00:00Z");
        assert_eq!(due_after(from, &step("PT0S", None), Tz::UTC), from);
        assert_eq!(
            due_after(from, &step("P3DT2H", None), Tz::UTC),
            utc("2026-03-04T12:00:00Z")
        );
    }

    #[test]
    fn at_waits_for_the_first_such_local_time_after_the_delay() {
        let ny: Tz = "America/New_York".parse().unwrap();
        // 10:00 UTC is 05:00 in New York: 09:00 the same day.
        let from = utc("2026-03-02T10:00:00Z");
        assert_eq!(
            due_after(from, &step("PT0S", Some("09:00")), ny),
            utc("2026-03-02T14:00:00Z")
        );
        // 15:00 UTC is 10:00 there: 09:00 has passed, so the next day.
        assert_eq!(
            due_after(
                utc("2026-03-02T15:00:00Z"),
                &step("PT0S", Some("09:00")),
                ny
            ),
            utc("2026-03-03T14:00:00Z")
        );
        // Exactly 09:00 is due then.
        assert_eq!(
            due_after(
                utc("2026-03-02T14:00:00Z"),
                &step("PT0S", Some("09:00")),
                ny
            ),
            utc("2026-03-02T14:00:00Z")
        );
    }

    #[test]
    fn the_contact_zone_comes_first_then_the_campaign_zone_then_utc() {
        assert_eq!(
            zone(Some("Asia/Tokyo"), Some("Europe/Paris")),
            Tz::Asia__Tokyo
        );
        assert_eq!(
            zone(Some("Mars/Olympus"), Some("Europe/Paris")),
            Tz::Europe__Paris
        );
        assert_eq!(zone(None, None), Tz::UTC);
        assert_eq!(zone(Some("nope"), Some("nope")), Tz::UTC);
    }

    #[test]
    fn a_local_time_in_a_dst_gap_fires_at_the_end_of_the_gap() {
        let ny: Tz = "America/New_York".parse().unwrap();
        // 2026-03-08: 02:00 → 03:00 in New York. 02:30 does not exist; 03:00 EDT = 07:00 UTC.
        let from = utc("2026-03-08T05:00:00Z"); // 00:00 EST
        assert_eq!(
            due_after(from, &step("PT0S", Some("02:30")), ny),
            utc("2026-03-08T07:00:00Z")
        );
    }

    #[test]
    fn a_local_time_that_occurs_twice_fires_once_at_the_first() {
        let ny: Tz = "America/New_York".parse().unwrap();
        // 2026-11-01: 02:00 EDT → 01:00 EST; 01:30 happens at 05:30 and 06:30 UTC.
        let from = utc("2026-11-01T04:00:00Z"); // 00:00 EDT
        assert_eq!(
            due_after(from, &step("PT0S", Some("01:30")), ny),
            utc("2026-11-01T05:30:00Z")
        );
        // Once the first has passed, the next is the following day, not the second occurrence.
        assert_eq!(
            due_after(
                utc("2026-11-01T05:31:00Z"),
                &step("PT0S", Some("01:30")),
                ny
            ),
            utc("2026-11-02T06:30:00Z")
        );
    }

    #[test]
    fn when_conditions_read_human_engagement_with_earlier_steps() {
        let mut engagement = StepEngagement::default();
        engagement.opened.insert("welcome".into());
        let contact = json!({"tags": ["vip"]});
        assert!(When::Opened("welcome".into())
            .compile()
            .holds(&engagement, &contact));
        assert!(!When::NotOpened("welcome".into())
            .compile()
            .holds(&engagement, &contact));
        assert!(!When::Clicked("welcome".into())
            .compile()
            .holds(&engagement, &contact));
        assert!(When::NotClicked("welcome".into())
            .compile()
            .holds(&engagement, &contact));
        assert!(When::Filter(json!({"tags": {"$in": ["vip"]}}))
            .compile()
            .holds(&engagement, &contact));
        assert!(!When::Filter(json!({"tags": {"$in": ["new"]}}))
            .compile()
            .holds(&engagement, &contact));
    }

    #[test]
    fn milestones_fall_at_the_field_plus_offset_and_repeat_yearly() {
        let trigger = Trigger {
            field: "attributes.renewalAt".into(),
            offset: Some(Delay::parse("-P7D", true).unwrap()),
            repeat: Repeat::None,
            at: None,
        };
        let now = utc("2026-06-01T00:00:00Z");
        let (date, at) = next_milestone(&json!("2026-07-10"), &trigger, Tz::UTC, now).unwrap();
        assert_eq!(date, NaiveDate::from_ymd_opt(2026, 7, 10).unwrap());
        assert_eq!(at, utc("2026-07-03T09:00:00Z"));
        // Passed before launch, no repeat: not sent.
        assert_eq!(
            next_milestone(&json!("2026-06-05"), &trigger, Tz::UTC, now),
            None
        );
        // Not a date: skipped.
        assert_eq!(next_milestone(&json!("soon"), &trigger, Tz::UTC, now), None);
        assert_eq!(
            next_milestone(&json!(20260710), &trigger, Tz::UTC, now),
            None
        );
        let yearly = Trigger {
            repeat: Repeat::Yearly,
            offset: None,
            ..trigger
        };
        let (date, at) = next_milestone(&json!("2000-02-29"), &yearly, Tz::UTC, now).unwrap();
        assert_eq!(date, NaiveDate::from_ymd_opt(2027, 2, 28).unwrap());
        assert_eq!(at, utc("2027-02-28T09:00:00Z"));
        let leap = utc("2028-01-01T00:00:00Z");
        let (date, _) = next_milestone(&json!("2000-02-29"), &yearly, Tz::UTC, leap).unwrap();
        assert_eq!(date, NaiveDate::from_ymd_opt(2028, 2, 29).unwrap());
        let (date, _) =
            next_milestone(&json!("1990-08-15T12:00:00Z"), &yearly, Tz::UTC, now).unwrap();
        assert_eq!(date, NaiveDate::from_ymd_opt(2026, 8, 15).unwrap());
    }
}
