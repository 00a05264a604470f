//! The campaign body a client sends: its value types, validation, and parsing from raw JSON.
//!
//! Parsing works on a `serde_json::Value` rather than through `Deserialize` so that one request
//! gets every field error at once, each with its path (`channels[1]`, `schedule.endAt`). The same
//! rules run again in [`CampaignSpec::validate`] so the aggregate never trusts its caller.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::drip::{self, Enrollment, Exit, Step, Trigger};
use crate::error::FieldError;
use crate::ids::{is_valid_id, INVALID_ID_MESSAGE};
use crate::schedule::{parse_timezone, CronSchedule};

/// The longest campaign name, in characters.
pub const MAX_NAME_CHARS: usize = 200;

/// A campaign strategy, as listed by `GET /crm/marketing/campaign-types`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum CampaignType {
    /// One send to the whole audience.
    #[default]
    OneShot,
    /// A sequence of sends spaced over time.
    Drip,
    /// Repeats on a cron schedule.
    Recurring,
    /// Sent when a contact reaches a milestone.
    Milestone,
    /// A one-shot fan-out over several channels (the seed's example body).
    MultiChannel,
}

impl CampaignType {
    /// Every type, in the order the discovery endpoint lists them.
    pub fn all() -> &'static [CampaignType] {
        &[
            CampaignType::OneShot,
            CampaignType::Drip,
            CampaignType::Recurring,
            CampaignType::Milestone,
            CampaignType::MultiChannel,
        ]
    }

    /// The id used in bodies and URLs (`one-shot`).
    pub fn id(self) -> &'static str {
        match self {
            CampaignType::OneShot => "one-shot",
            CampaignType::Drip => "drip",
            CampaignType::Recurring => "recurring",
            CampaignType::Milestone => "milestone",
            CampaignType::MultiChannel => "multi-channel",
        }
    }

    /// The display name.
    pub fn name(self) -> &'static str {
        match self {
            CampaignType::OneShot => "One-shot blast",
            CampaignType::Drip => "Drip",
            CampaignType::Recurring => "Recurring",
            CampaignType::Milestone => "Milestone",
            CampaignType::MultiChannel => "Multi-channel",
        }
    }

    /// One sentence for pickers and docs.
    pub fn description(self) -> &'static str {
        match self {
            CampaignType::OneShot => "A single send to the whole audience, now or at schedule.startAt.",
            CampaignType::Drip => "A sequence of messages to the audience, spaced out over time.",
            CampaignType::Recurring => {
                "Repeats on recurring.cron in schedule.timezone, from schedule.startAt until schedule.endAt."
            }
            CampaignType::Milestone => {
                "Sent to each contact when they reach a milestone, such as a signup anniversary."
            }
            CampaignType::MultiChannel => {
                "A one-shot campaign fanned out over several channels at once, reported as one record."
            }
        }
    }

    /// The type with this id.
    pub fn parse(id: &str) -> Option<CampaignType> {
        Self::all().iter().copied().find(|t| t.id() == id)
    }
}

/// A platform a campaign can send or post on, as listed by `GET /crm/marketing/platforms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Channel {
    Email,
    Sms,
    Facebook,
    Instagram,
    Linkedin,
    X,
    GoogleAds,
    MetaAds,
}

impl Channel {
    /// Every channel, in the order the discovery endpoint lists them.
    pub fn all() -> &'static [Channel] {
        &[
            Channel::Email,
            Channel::Sms,
            Channel::Facebook,
            Channel::Instagram,
            Channel::Linkedin,
            Channel::X,
            Channel::GoogleAds,
            Channel::MetaAds,
        ]
    }

    /// The id used in bodies and URLs (`google-ads`).
    pub fn id(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
            Channel::Facebook => "facebook",
            Channel::Instagram => "instagram",
            Channel::Linkedin => "linkedin",
            Channel::X => "x",
            Channel::GoogleAds => "google-ads",
            Channel::MetaAds => "meta-ads",
        }
    }

    /// The display name (`Google Ads`).
    pub fn name(self) -> &'static str {
        match self {
            Channel::Email => "Email",
            Channel::Sms => "SMS",
            Channel::Facebook => "Facebook",
            Channel::Instagram => "Instagram",
            Channel::Linkedin => "LinkedIn",
            Channel::X => "X",
            Channel::GoogleAds => "Google Ads",
            Channel::MetaAds => "Meta Ads",
        }
    }

    /// The platform category: `email`, `sms`, `social` or `ads`.
    pub fn category(self) -> &'static str {
        self.kind().id()
    }

    /// The channel's category: how a run sends on it.
    pub fn kind(self) -> Category {
        match self {
            Channel::Email => Category::Email,
            Channel::Sms => Category::Sms,
            Channel::Facebook | Channel::Instagram | Channel::Linkedin | Channel::X => {
                Category::Social
            }
            Channel::GoogleAds | Channel::MetaAds => Category::Ads,
        }
    }

    /// The channel with this id.
    pub fn parse(id: &str) -> Option<Channel> {
        Self::all().iter().copied().find(|c| c.id() == id)
    }
}

/// A channel's category: email and SMS go to each contact, social channels get one post per run
/// from a profile, ads run inside the ads platform and send nothing per contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Category {
    Email,
    Sms,
    Social,
    Ads,
}

impl Category {
    /// The id the discovery endpoint shows.
    pub fn id(self) -> &'static str {
        match self {
            Category::Email => "email",
            Category::Sms => "sms",
            Category::Social => "social",
            Category::Ads => "ads",
        }
    }
}

impl std::fmt::Display for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.id())
    }
}

/// Where a campaign is in its lifecycle (`api.md` section 2).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Saved; never sends.
    #[default]
    Draft,
    /// Waiting for its start time (or, recurring, for its first occurrence).
    Scheduled,
    /// Launched; a recurring campaign stays here between runs.
    Running,
    /// Stopped by a user; can be resumed.
    Paused,
    /// Finished; final.
    Completed,
}

impl Status {
    /// Every status, in lifecycle order.
    pub fn all() -> &'static [Status] {
        &[
            Status::Draft,
            Status::Scheduled,
            Status::Running,
            Status::Paused,
            Status::Completed,
        ]
    }

    /// The wire name (`scheduled`).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Draft => "draft",
            Status::Scheduled => "scheduled",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Completed => "completed",
        }
    }

    /// The status with this wire name.
    pub fn parse(s: &str) -> Option<Status> {
        Self::all().iter().copied().find(|st| st.as_str() == s)
    }

    /// Whether the lifecycle allows moving from this status to `to` (`api.md` section 2).
    /// Staying in the same status is not a move.
    pub fn can_move_to(self, to: Status) -> bool {
        use Status::*;
        matches!(
            (self, to),
            (Draft, Scheduled | Running)
                | (Scheduled, Draft | Running)
                | (Running, Paused | Completed)
                | (Paused, Running | Completed)
        )
    }
}

/// A lifecycle action: `POST /campaigns/:id/{launch|pause|resume|complete}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Launch,
    Pause,
    Resume,
    Complete,
}

impl Action {
    /// The action named in a route.
    pub fn parse(name: &str) -> Option<Action> {
        match name {
            "launch" => Some(Action::Launch),
            "pause" => Some(Action::Pause),
            "resume" => Some(Action::Resume),
            "complete" => Some(Action::Complete),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Launch => "launch",
            Action::Pause => "pause",
            Action::Resume => "resume",
            Action::Complete => "complete",
        }
    }

    /// The status the action moves a campaign to.
    pub fn target(self) -> Status {
        match self {
            Action::Launch | Action::Resume => Status::Running,
            Action::Pause => Status::Paused,
            Action::Complete => Status::Completed,
        }
    }

    /// Whether the action applies to a campaign in `status`: `launch` starts a draft or
    /// scheduled one, `resume` only a paused one, so neither stands for the other.
    pub fn starts_from(self, status: Status) -> bool {
        use Status::*;
        match self {
            Action::Launch => matches!(status, Draft | Scheduled),
            Action::Pause => status == Running,
            Action::Resume => status == Paused,
            Action::Complete => matches!(status, Running | Paused),
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The easternmost UTC offset any zone uses (`Pacific/Kiritimati`, UTC+14): where a wall-clock
/// time comes first.
pub const EARLIEST_UTC_OFFSET_HOURS: i64 = 14;

/// When a campaign starts and ends, and the zone its cron is read in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Schedule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_at: Option<DateTime<Utc>>,
    /// An IANA zone name; UTC when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// A one-shot reaches each contact at `startAt`'s wall-clock time (in `timezone`) in the
    /// contact's own zone (`api.md` section 12).
    #[serde(default, skip_serializing_if = "is_false")]
    pub local_time: bool,
}

impl Schedule {
    fn is_empty(&self) -> bool {
        self.start_at.is_none()
            && self.end_at.is_none()
            && self.timezone.is_none()
            && !self.local_time
    }
}

/// How a recurring campaign repeats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recurring {
    /// 5 fields, or 6 with leading seconds; whitespace collapsed to single spaces.
    pub cron: String,
}

/// The editable part of a campaign: what `POST` creates and `PUT` replaces, and what the
/// `Created` and `Updated` events store. Serialization is camelCase and leaves out absent
/// optional fields, so the stored shape only changes when a value does.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CampaignSpec {
    /// Trimmed, 1 to 200 characters.
    pub name: String,
    #[serde(rename = "type")]
    pub campaign_type: CampaignType,
    /// Non-empty, no duplicates, in the client's order.
    pub channels: Vec<Channel>,
    /// A saved audience; exclusive with `audience`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience_id: Option<String>,
    /// An inline `{"type": "dynamic", "filter": {...}}` audience, kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_id: Option<String>,
    /// `None` rather than an empty schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Schedule>,
    /// Accepted at the top level or inside `schedule`; always stored here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recurring: Option<Recurring>,
    /// Channel id to the profile that posts (`{"facebook": "fb-page-1"}`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub social_profiles: BTreeMap<String, String>,
    /// Per-channel extras, an object kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_settings: Option<Value>,
    /// A drip or milestone campaign's sequence (`api.md` section 11), 1 to 20 steps.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<Step>,
    /// The engagements on this campaign that end a contact's sequence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<Exit>,
    /// Who enters a drip campaign; `launch` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrollment: Option<Enrollment>,
    /// When each contact enters a milestone campaign.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<Trigger>,
    /// The org's frequency caps neither hold back this campaign's sends nor count them
    /// (`api.md` section 12).
    #[serde(default, skip_serializing_if = "is_false")]
    pub ignore_frequency_caps: bool,
}

fn is_false(value: &bool) -> bool {
    !*value
}

impl CampaignSpec {
    /// Checks every rule `parse_campaign` checks, on typed values.
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        if let Err(message) = check_name(&self.name) {
            errors.push(FieldError::new("name", message));
        }
        errors.extend(check_channels(&self.channels));
        if let Some(id) = &self.audience_id {
            errors.extend(check_id("audienceId", id));
        }
        if let Some(audience) = &self.audience {
            errors.extend(check_audience(audience));
        }
        if self.audience_id.is_some() && self.audience.is_some() {
            errors.push(both_audiences());
        }
        if let Some(id) = &self.template_id {
            errors.extend(check_id("templateId", id));
        }
        if let Some(schedule) = &self.schedule {
            if let Some(tz) = &schedule.timezone {
                if parse_timezone(tz).is_none() {
                    errors.push(FieldError::new("schedule.timezone", INVALID_TIMEZONE));
                }
            }
            if let (Some(start), Some(end)) = (schedule.start_at, schedule.end_at) {
                errors.extend(check_window(start, end));
            }
        }
        if let Some(recurring) = &self.recurring {
            if let Err(message) = CronSchedule::parse(&recurring.cron, None) {
                errors.push(FieldError::new("recurring.cron", message));
            }
        }
        errors.extend(check_type_and_cron(
            self.campaign_type,
            self.recurring.is_some(),
        ));
        errors.extend(check_local_time(
            self.campaign_type,
            self.schedule.as_ref().is_some_and(|s| s.local_time),
            self.recurring.is_some(),
        ));
        for (channel, profile) in &self.social_profiles {
            errors.extend(check_social_profile(channel, Some(profile)));
        }
        if let Some(settings) = &self.channel_settings {
            if !settings.is_object() {
                errors.push(FieldError::new("channelSettings", MUST_BE_OBJECT));
            }
        }
        errors.extend(self.check_sequence(!self.steps.is_empty()));
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// The rules between the sequence fields (`steps`, `exit`, `enrollment`, `trigger`) and the
    /// rest of the campaign (`drip::check`).
    fn check_sequence(&self, steps_given: bool) -> Vec<FieldError> {
        drip::check(
            self.campaign_type,
            &self.channels,
            &self.steps,
            steps_given,
            self.enrollment.as_ref(),
            self.trigger.as_ref(),
            self.exit.as_ref(),
        )
    }

    /// Whether the campaign sends a sequence of steps to each contact (drip and milestone).
    pub fn has_steps(&self) -> bool {
        drip::has_steps(self.campaign_type)
    }

    /// The step with this id.
    pub fn step(&self, id: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.id == id)
    }

    /// `schedule.startAt`, if set.
    pub fn start_at(&self) -> Option<DateTime<Utc>> {
        self.schedule.as_ref().and_then(|s| s.start_at)
    }

    /// When a one-shot's run starts: `startAt`, or, with `schedule.localTime`, the first moment
    /// any zone reaches `startAt`'s wall time (read in the campaign's zone): that wall time at
    /// [`EARLIEST_UTC_OFFSET_HOURS`], so contacts east of the campaign's zone get the message at
    /// their own wall time rather than at `startAt`.
    pub fn first_moment(&self) -> Option<DateTime<Utc>> {
        let schedule = self.schedule.as_ref()?;
        let start = schedule.start_at?;
        if !schedule.local_time {
            return Some(start);
        }
        let zone = self
            .timezone()
            .and_then(parse_timezone)
            .unwrap_or(chrono_tz::Tz::UTC);
        let wall = start.with_timezone(&zone).naive_local();
        let earliest = (wall - chrono::Duration::hours(EARLIEST_UTC_OFFSET_HOURS)).and_utc();
        Some(earliest.min(start))
    }

    /// `schedule.endAt`, if set.
    pub fn end_at(&self) -> Option<DateTime<Utc>> {
        self.schedule.as_ref().and_then(|s| s.end_at)
    }

    /// `schedule.timezone`, if set.
    pub fn timezone(&self) -> Option<&str> {
        self.schedule.as_ref().and_then(|s| s.timezone.as_deref())
    }

    /// The cron pattern in the campaign's zone, when the campaign repeats and both are valid.
    pub fn cron_schedule(&self) -> Option<CronSchedule> {
        let recurring = self.recurring.as_ref()?;
        CronSchedule::parse(&recurring.cron, self.timezone()).ok()
    }
}

/// A parsed campaign body: the spec, plus the requested status and client-chosen id if present.
#[derive(Debug, Clone, PartialEq)]
pub struct CampaignInput {
    pub spec: CampaignSpec,
    pub status: Option<Status>,
    pub id: Option<String>,
}

/// Parses and validates a campaign body (`POST` or `PUT`), reporting every invalid field.
///
/// `null` counts as absent. Fields the server owns (`orgId`, `version`, `state`, `createdAt`,
/// `nextRunAt`, `blockers`, `lastRun`, metrics, ...) and unknown fields are ignored, so a client
/// can send back what it read. `recurring` may sit at the top level or inside `schedule`.
/// A campaign id the API's own routes take: `/crm/marketing/campaigns/aggregated-metrics`.
pub const RESERVED_CAMPAIGN_ID: &str = "aggregated-metrics";

pub fn parse_campaign(body: &Value) -> Result<CampaignInput, Vec<FieldError>> {
    let Some(obj) = body.as_object() else {
        return Err(vec![FieldError::new("body", MUST_BE_OBJECT)]);
    };
    let mut errors = Vec::new();

    let name = match present(obj, "name") {
        None => required(&mut errors, "name"),
        Some(Value::String(s)) => collect(&mut errors, "name", check_name(s)),
        Some(_) => wrong(&mut errors, "name", MUST_BE_STRING),
    };

    let campaign_type = match present(obj, "type") {
        None => required(&mut errors, "type"),
        Some(Value::String(s)) => {
            let found = CampaignType::parse(s);
            if found.is_none() {
                errors.push(FieldError::new(
                    "type",
                    one_of(CampaignType::all().iter().map(|t| t.id())),
                ));
            }
            found
        }
        Some(_) => wrong(&mut errors, "type", MUST_BE_STRING),
    };

    let channels = match present(obj, "channels") {
        None => required(&mut errors, "channels"),
        Some(Value::Array(items)) => parse_channels(&mut errors, items),
        Some(_) => wrong(&mut errors, "channels", "must be an array of platform ids"),
    };

    let audience_id = optional_id(&mut errors, obj, "audienceId");
    let audience = present(obj, "audience").cloned();
    if let Some(audience) = &audience {
        errors.extend(check_audience(audience));
    }
    if present(obj, "audienceId").is_some() && audience.is_some() {
        errors.push(both_audiences());
    }
    let template_id = optional_id(&mut errors, obj, "templateId");

    let (schedule, nested_recurring) = match present(obj, "schedule") {
        None => (None, None),
        Some(Value::Object(s)) => parse_schedule(&mut errors, s),
        Some(_) => {
            errors.push(FieldError::new("schedule", MUST_BE_OBJECT));
            (None, None)
        }
    };
    // Outer `Some`: given; inner `None`: given but invalid, with its error already reported.
    let top_recurring =
        present(obj, "recurring").map(|v| parse_recurring(&mut errors, "recurring", v));
    if let (Some(Some(top)), Some(Some(nested))) = (&top_recurring, &nested_recurring) {
        if top != nested {
            errors.push(FieldError::new(
                "schedule.recurring",
                "must match recurring when both are given",
            ));
        }
    }
    let recurring_given = top_recurring.is_some() || nested_recurring.is_some();
    let recurring = top_recurring.flatten().or(nested_recurring.flatten());
    if let Some(kind) = campaign_type {
        errors.extend(check_type_and_cron(kind, recurring_given));
    }

    let status = match present(obj, "status") {
        None => None,
        Some(Value::String(s)) => {
            let found = Status::parse(s);
            if found.is_none() {
                errors.push(FieldError::new(
                    "status",
                    one_of(Status::all().iter().map(|s| s.as_str())),
                ));
            }
            found
        }
        Some(_) => wrong(&mut errors, "status", MUST_BE_STRING),
    };

    let social_profiles = match present(obj, "socialProfiles") {
        None => Some(BTreeMap::new()),
        Some(Value::Object(map)) => {
            let mut profiles = BTreeMap::new();
            for (channel, profile) in map {
                let problems = check_social_profile(channel, profile.as_str());
                if problems.is_empty() {
                    if let Some(profile) = profile.as_str() {
                        profiles.insert(channel.clone(), profile.to_string());
                    }
                }
                errors.extend(problems);
            }
            Some(profiles)
        }
        Some(_) => wrong(&mut errors, "socialProfiles", MUST_BE_OBJECT),
    };

    let channel_settings = match present(obj, "channelSettings") {
        None => None,
        Some(v @ Value::Object(_)) => Some(v.clone()),
        Some(_) => wrong(&mut errors, "channelSettings", MUST_BE_OBJECT),
    };

    let sequence = drip::parse(obj, &mut errors);

    let ignore_frequency_caps = match present(obj, "ignoreFrequencyCaps") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            errors.push(FieldError::new("ignoreFrequencyCaps", "must be a boolean"));
            false
        }
    };

    let id = optional_id(&mut errors, obj, "id");
    if id.as_deref() == Some(RESERVED_CAMPAIGN_ID) {
        errors.push(FieldError::new(
            "id",
            "aggregated-metrics is reserved (POST /crm/marketing/campaigns/aggregated-metrics)",
        ));
    }

    let local_time = schedule.as_ref().is_some_and(|s| s.local_time);
    if let Some(problem) =
        campaign_type.and_then(|kind| check_local_time(kind, local_time, recurring_given))
    {
        errors.push(problem);
    }

    match (name, campaign_type, channels, social_profiles) {
        (Some(name), Some(campaign_type), Some(channels), Some(social_profiles)) => {
            let spec = CampaignSpec {
                name,
                campaign_type,
                channels,
                audience_id,
                audience,
                template_id,
                schedule,
                recurring,
                social_profiles,
                channel_settings,
                steps: sequence.steps,
                exit: sequence.exit,
                enrollment: sequence.enrollment,
                trigger: sequence.trigger,
                ignore_frequency_caps,
            };
            // Steps that failed to parse are reported already; the rules between fields are
            // checked on what parsed, once every step did.
            if errors.is_empty() {
                errors.extend(spec.check_sequence(sequence.steps_given));
            }
            if errors.is_empty() {
                Ok(CampaignInput { spec, status, id })
            } else {
                Err(errors)
            }
        }
        _ => Err(errors),
    }
}

const MUST_BE_STRING: &str = "must be a string";
const MUST_BE_OBJECT: &str = "must be an object";
const INVALID_TIMESTAMP: &str = "must be an RFC 3339 timestamp, e.g. 2026-05-01T09:00:00Z";
const INVALID_TIMEZONE: &str = "must be an IANA time zone, e.g. America/New_York";

/// The field's value, treating `null` as absent.
fn present<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

fn required<T>(errors: &mut Vec<FieldError>, field: &str) -> Option<T> {
    errors.push(FieldError::new(field, "is required"));
    None
}

fn wrong<T>(errors: &mut Vec<FieldError>, field: &str, message: &str) -> Option<T> {
    errors.push(FieldError::new(field, message));
    None
}

fn collect<T>(errors: &mut Vec<FieldError>, field: &str, result: Result<T, String>) -> Option<T> {
    result
        .map_err(|message| errors.push(FieldError::new(field, message)))
        .ok()
}

fn one_of<'a>(ids: impl Iterator<Item = &'a str>) -> String {
    format!("must be one of: {}", ids.collect::<Vec<_>>().join(", "))
}

fn both_audiences() -> FieldError {
    FieldError::new(
        "audience",
        "cannot be set together with audienceId; choose one",
    )
}

/// The trimmed name, or why it is not acceptable.
fn check_name(name: &str) -> Result<String, String> {
    let trimmed = name.trim();
    if trimmed.is_empty() {
        Err("must not be empty".to_string())
    } else if trimmed.chars().count() > MAX_NAME_CHARS {
        Err(format!("must be at most {MAX_NAME_CHARS} characters"))
    } else {
        Ok(trimmed.to_string())
    }
}

fn check_channels(channels: &[Channel]) -> Vec<FieldError> {
    if channels.is_empty() {
        return vec![FieldError::new("channels", "must not be empty")];
    }
    channels
        .iter()
        .enumerate()
        .filter(|(i, c)| channels[..*i].contains(c))
        .map(|(i, _)| FieldError::new(format!("channels[{i}]"), "is listed more than once"))
        .collect()
}

fn parse_channels(errors: &mut Vec<FieldError>, items: &[Value]) -> Option<Vec<Channel>> {
    if items.is_empty() {
        return wrong(errors, "channels", "must not be empty");
    }
    let mut channels = Vec::with_capacity(items.len());
    let before = errors.len();
    for (i, item) in items.iter().enumerate() {
        let field = format!("channels[{i}]");
        match item.as_str().map(Channel::parse) {
            None => errors.push(FieldError::new(field, MUST_BE_STRING)),
            Some(None) => errors.push(FieldError::new(
                field,
                one_of(Channel::all().iter().map(|c| c.id())),
            )),
            Some(Some(channel)) if channels.contains(&channel) => {
                errors.push(FieldError::new(field, "is listed more than once"));
            }
            Some(Some(channel)) => channels.push(channel),
        }
    }
    (errors.len() == before).then_some(channels)
}

fn check_id(field: &str, id: &str) -> Option<FieldError> {
    (!is_valid_id(id)).then(|| FieldError::new(field, INVALID_ID_MESSAGE))
}

fn optional_id(
    errors: &mut Vec<FieldError>,
    obj: &Map<String, Value>,
    field: &str,
) -> Option<String> {
    match present(obj, field) {
        None => None,
        Some(Value::String(s)) if is_valid_id(s) => Some(s.clone()),
        Some(Value::String(_)) => wrong(errors, field, INVALID_ID_MESSAGE),
        Some(_) => wrong(errors, field, MUST_BE_STRING),
    }
}

/// Checks the shape of an inline audience: `{"type": "dynamic", "filter": {"datatype":
/// "contact", "where": {...}}}`.
fn check_audience(audience: &Value) -> Vec<FieldError> {
    let Some(obj) = audience.as_object() else {
        return vec![FieldError::new("audience", MUST_BE_OBJECT)];
    };
    let mut errors = Vec::new();
    if present(obj, "type").and_then(Value::as_str) != Some("dynamic") {
        errors.push(FieldError::new("audience.type", "must be \"dynamic\""));
    }
    match present(obj, "filter") {
        None => errors.push(FieldError::new("audience.filter", "is required")),
        Some(Value::Object(filter)) => {
            if present(filter, "datatype").and_then(Value::as_str) != Some("contact") {
                errors.push(FieldError::new(
                    "audience.filter.datatype",
                    "must be \"contact\"",
                ));
            }
            match present(filter, "where") {
                None => errors.push(FieldError::new("audience.filter.where", "is required")),
                Some(where_) => {
                    if let Err(found) = crate::query::parse_where(where_, "audience.filter.where") {
                        errors.extend(found);
                    }
                }
            }
        }
        Some(_) => errors.push(FieldError::new("audience.filter", MUST_BE_OBJECT)),
    }
    errors
}

fn check_window(start: DateTime<Utc>, end: DateTime<Utc>) -> Option<FieldError> {
    (end <= start).then(|| FieldError::new("schedule.endAt", "must be after schedule.startAt"))
}

/// The schedule (or `None` when it is empty) and a `recurring` found inside it: `None` when
/// absent, `Some(None)` when present but invalid.
fn parse_schedule(
    errors: &mut Vec<FieldError>,
    obj: &Map<String, Value>,
) -> (Option<Schedule>, Option<Option<Recurring>>) {
    let timestamp = |errors: &mut Vec<FieldError>, key: &str| -> Option<DateTime<Utc>> {
        let value = present(obj, key)?;
        let parsed = value
            .as_str()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.with_timezone(&Utc));
        if parsed.is_none() {
            errors.push(FieldError::new(
                format!("schedule.{key}"),
                INVALID_TIMESTAMP,
            ));
        }
        parsed
    };
    let start_at = timestamp(errors, "startAt");
    let end_at = timestamp(errors, "endAt");
    let timezone = match present(obj, "timezone") {
        None => None,
        Some(Value::String(tz)) if parse_timezone(tz).is_some() => Some(tz.clone()),
        Some(_) => wrong(errors, "schedule.timezone", INVALID_TIMEZONE),
    };
    if let (Some(start), Some(end)) = (start_at, end_at) {
        errors.extend(check_window(start, end));
    }
    let local_time = match present(obj, "localTime") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            errors.push(FieldError::new("schedule.localTime", "must be a boolean"));
            false
        }
    };
    if local_time && start_at.is_none() && present(obj, "startAt").is_none() {
        errors.push(FieldError::new(
            "schedule.localTime",
            "needs schedule.startAt: its wall-clock time is what each contact gets",
        ));
    }
    let recurring =
        present(obj, "recurring").map(|v| parse_recurring(errors, "schedule.recurring", v));
    let schedule = Schedule {
        start_at,
        end_at,
        timezone,
        local_time,
    };
    ((!schedule.is_empty()).then_some(schedule), recurring)
}

fn parse_recurring(errors: &mut Vec<FieldError>, path: &str, value: &Value) -> Option<Recurring> {
    let Some(obj) = value.as_object() else {
        return wrong(
            errors,
            path,
            "must be an object like {\"cron\": \"0 9 * * 1\"}",
        );
    };
    let field = format!("{path}.cron");
    match present(obj, "cron") {
        None => required(errors, &field),
        Some(Value::String(cron)) => {
            let schedule = collect(errors, &field, CronSchedule::parse(cron, None))?;
            Some(Recurring {
                cron: schedule.as_str().to_string(),
            })
        }
        Some(_) => wrong(errors, &field, MUST_BE_STRING),
    }
}

/// `schedule.localTime` is for campaigns that make one run: not with a cron, nor for drip and
/// milestone campaigns, whose steps already keep each contact's clock.
fn check_local_time(kind: CampaignType, local_time: bool, has_cron: bool) -> Option<FieldError> {
    (local_time && (has_cron || drip::has_steps(kind))).then(|| {
        FieldError::new(
            "schedule.localTime",
            "only a campaign that runs once (no recurring cron, no steps) can send at local time",
        )
    })
}

fn check_type_and_cron(kind: CampaignType, has_cron: bool) -> Option<FieldError> {
    match (kind, has_cron) {
        (CampaignType::Recurring, false) => Some(FieldError::new(
            "recurring",
            "is required for a recurring campaign, e.g. {\"cron\": \"0 9 * * 1\"}",
        )),
        (CampaignType::OneShot, true) => Some(FieldError::new(
            "recurring",
            "must not be set on a one-shot campaign",
        )),
        (CampaignType::Drip | CampaignType::Milestone, true) => Some(FieldError::new(
            "recurring",
            format!(
                "must not be set on a {} campaign; its steps' delays set the timing",
                kind.id()
            ),
        )),
        _ => None,
    }
}

fn check_social_profile(channel: &str, profile: Option<&str>) -> Vec<FieldError> {
    let field = format!("socialProfiles.{channel}");
    let mut errors = Vec::new();
    if Channel::parse(channel).is_none() {
        errors.push(FieldError::new(
            field.clone(),
            format!(
                "is not a platform; keys {}",
                one_of(Channel::all().iter().map(|c| c.id()))
            ),
        ));
    }
    match profile {
        None => errors.push(FieldError::new(field, "must be a profile id string")),
        Some(id) if !is_valid_id(id) => errors.push(FieldError::new(field, INVALID_ID_MESSAGE)),
        Some(_) => {}
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn seed_body() -> Value {
        json!({
            "name": "Spring 2026 Launch",
            "type": "multi-channel",
            "channels": ["email", "facebook", "linkedin"],
            "audienceId": "aud-spring-prospects",
            "templateId": "tpl-spring-launch",
            "schedule": {
                "startAt": "2026-05-01T09:00:00Z",
                "endAt": "2026-05-15T23:59:59Z",
                "timezone": "America/New_York"
            },
            "status": "draft"
        })
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    /// The seed body with `changes` merged in at the top level (`null` values are kept).
    fn seed_with(changes: Value) -> Value {
        let mut body = seed_body();
        if let (Some(body), Some(changes)) = (body.as_object_mut(), changes.as_object()) {
            for (k, v) in changes {
                body.insert(k.clone(), v.clone());
            }
        }
        body
    }

    fn errors(body: Value) -> Vec<FieldError> {
        parse_campaign(&body).expect_err("body should be refused")
    }

    fn error(field: &str, message: &str) -> FieldError {
        FieldError::new(field, message)
    }

    #[test]
    fn the_seed_example_body_parses_exactly_as_written() {
        let input = parse_campaign(&seed_body()).expect("the seed body is valid");
        assert_eq!(
            input,
            CampaignInput {
                spec: CampaignSpec {
                    name: "Spring 2026 Launch".into(),
                    campaign_type: CampaignType::MultiChannel,
                    channels: vec![Channel::Email, Channel::Facebook, Channel::Linkedin],
                    audience_id: Some("aud-spring-prospects".into()),
                    audience: None,
                    template_id: Some("tpl-spring-launch".into()),
                    schedule: Some(Schedule {
                        start_at: Some(utc("2026-05-01T09:00:00Z")),
                        end_at: Some(utc("2026-05-15T23:59:59Z")),
                        timezone: Some("America/New_York".into()),
                        local_time: false,
                    }),
                    recurring: None,
                    social_profiles: BTreeMap::new(),
                    channel_settings: None,
                    steps: Vec::new(),
                    exit: None,
                    enrollment: None,
                    trigger: None,
                    ignore_frequency_caps: false,
                },
                status: Some(Status::Draft),
                id: None,
            }
        );
    }

    #[test]
    fn the_seed_spec_is_stored_as_camel_case_without_absent_fields() {
        let spec = parse_campaign(&seed_body()).unwrap().spec;
        assert_eq!(
            serde_json::to_value(&spec).unwrap(),
            json!({
                "name": "Spring 2026 Launch",
                "type": "multi-channel",
                "channels": ["email", "facebook", "linkedin"],
                "audienceId": "aud-spring-prospects",
                "templateId": "tpl-spring-launch",
                "schedule": {
                    "startAt": "2026-05-01T09:00:00Z",
                    "endAt": "2026-05-15T23:59:59Z",
                    "timezone": "America/New_York"
                }
            })
        );
    }

    #[test]
    fn the_seed_inline_audience_is_accepted_and_kept_as_given() {
        let audience = json!({
            "type": "dynamic",
            "filter": {"datatype": "contact", "where": {"tags": {"$in": ["prospect", "vip"]}}}
        });
        let body = json!({
            "name": "Inline", "type": "one-shot", "channels": ["email"], "audience": audience
        });
        assert_eq!(parse_campaign(&body).unwrap().spec.audience, Some(audience));
    }

    #[test]
    fn the_seed_recurring_example_is_accepted_at_the_top_level_and_inside_schedule() {
        let top = json!({
            "name": "Weekly", "type": "recurring", "channels": ["email"],
            "recurring": {"cron": "0 9 * * 1"}
        });
        let nested = json!({
            "name": "Weekly", "type": "recurring", "channels": ["email"],
            "schedule": {"recurring": {"cron": "0 9 * * 1"}}
        });
        let both = json!({
            "name": "Weekly", "type": "recurring", "channels": ["email"],
            "recurring": {"cron": "0 9 * * 1"},
            "schedule": {"recurring": {"cron": "0  9 * * 1"}}
        });
        let expected = Some(Recurring {
            cron: "0 9 * * 1".into(),
        });
        for body in [top, nested, both] {
            let spec = parse_campaign(&body).unwrap().spec;
            assert_eq!(spec.recurring, expected);
            assert_eq!(spec.schedule, None, "an empty schedule is not stored");
        }
    }

    #[test]
    fn a_body_that_is_not_an_object_is_refused_as_a_whole() {
        for body in [json!([]), json!("campaign"), json!(null), json!(3)] {
            assert_eq!(errors(body), [error("body", "must be an object")]);
        }
    }

    #[test]
    fn every_field_error_is_reported_at_once_with_its_path() {
        let body = json!({
            "name": 123,
            "type": "blast",
            "channels": ["email", "fax", "email", 7],
            "schedule": {"startAt": "2026-05-02T00:00:00Z", "endAt": "2026-05-01T00:00:00Z"},
            "status": "live"
        });
        assert_eq!(
            errors(body),
            [
                error("name", "must be a string"),
                error(
                    "type",
                    "must be one of: one-shot, drip, recurring, milestone, multi-channel"
                ),
                error(
                    "channels[1]",
                    "must be one of: email, sms, facebook, instagram, linkedin, x, google-ads, meta-ads"
                ),
                error("channels[2]", "is listed more than once"),
                error("channels[3]", "must be a string"),
                error("schedule.endAt", "must be after schedule.startAt"),
                error(
                    "status",
                    "must be one of: draft, scheduled, running, paused, completed"
                ),
            ]
        );
    }

    #[test]
    fn name_is_required_trimmed_and_at_most_200_characters() {
        assert_eq!(
            errors(seed_with(json!({"name": null}))),
            [error("name", "is required")]
        );
        assert_eq!(
            errors(seed_with(json!({"name": ["x"]}))),
            [error("name", "must be a string")]
        );
        assert_eq!(
            errors(seed_with(json!({"name": "  \t "}))),
            [error("name", "must not be empty")]
        );
        assert_eq!(
            errors(seed_with(json!({"name": "a".repeat(201)}))),
            [error("name", "must be at most 200 characters")]
        );
        // Characters, not bytes: 200 two-byte characters fit.
        let long = "é".repeat(200);
        let parsed = parse_campaign(&seed_with(json!({"name": format!("  {long}  ")}))).unwrap();
        assert_eq!(parsed.spec.name, long);
    }

    #[test]
    fn type_is_required_and_must_be_a_listed_id() {
        assert_eq!(
            errors(seed_with(json!({"type": null}))),
            [error("type", "is required")]
        );
        assert_eq!(
            errors(seed_with(json!({"type": 1}))),
            [error("type", "must be a string")]
        );
        assert_eq!(errors(seed_with(json!({"type": "One-Shot"}))).len(), 1);
    }

    #[test]
    fn channels_must_be_a_non_empty_array_of_platform_ids() {
        assert_eq!(
            errors(seed_with(json!({"channels": null}))),
            [error("channels", "is required")]
        );
        assert_eq!(
            errors(seed_with(json!({"channels": "email"}))),
            [error("channels", "must be an array of platform ids")]
        );
        assert_eq!(
            errors(seed_with(json!({"channels": []}))),
            [error("channels", "must not be empty")]
        );
    }

    #[test]
    fn ids_must_have_the_id_syntax() {
        for field in ["audienceId", "templateId", "id"] {
            assert_eq!(
                errors(seed_with(json!({field: "bad id"}))),
                [error(field, INVALID_ID_MESSAGE)]
            );
            assert_eq!(
                errors(seed_with(json!({field: 5}))),
                [error(field, "must be a string")]
            );
        }
        let parsed = parse_campaign(&seed_with(json!({"id": "camp-spring"}))).unwrap();
        assert_eq!(parsed.id.as_deref(), Some("camp-spring"));
    }

    #[test]
    fn audience_id_and_inline_audience_are_exclusive() {
        let audience = json!({"type": "dynamic", "filter": {"datatype": "contact", "where": {}}});
        assert_eq!(
            errors(seed_with(json!({"audience": audience}))),
            [error(
                "audience",
                "cannot be set together with audienceId; choose one"
            )]
        );
    }

    #[test]
    fn inline_audience_must_be_a_dynamic_contact_filter() {
        let with =
            |audience: Value| errors(seed_with(json!({"audienceId": null, "audience": audience})));
        assert_eq!(with(json!("vip")), [error("audience", "must be an object")]);
        assert_eq!(
            with(json!({"type": "static", "filter": {"datatype": "contact", "where": {}}})),
            [error("audience.type", "must be \"dynamic\"")]
        );
        assert_eq!(
            with(json!({"type": "dynamic"})),
            [error("audience.filter", "is required")]
        );
        assert_eq!(
            with(json!({"type": "dynamic", "filter": []})),
            [error("audience.filter", "must be an object")]
        );
        assert_eq!(
            with(json!({"type": "dynamic", "filter": {"datatype": "deal", "where": {}}})),
            [error("audience.filter.datatype", "must be \"contact\"")]
        );
        assert_eq!(
            with(json!({"type": "dynamic", "filter": {"datatype": "contact"}})),
            [error("audience.filter.where", "is required")]
        );
        assert_eq!(
            with(json!({"type": "dynamic", "filter": {"datatype": "contact", "where": [1]}})),
            [error("audience.filter.where", "must be an object")]
        );
    }

    #[test]
    fn schedule_fields_are_checked_one_by_one() {
        let with = |schedule: Value| errors(seed_with(json!({"schedule": schedule})));
        assert_eq!(
            with(json!("tomorrow")),
            [error("schedule", "must be an object")]
        );
        assert_eq!(
            with(json!({"startAt": "tomorrow", "endAt": 5})),
            [
                error("schedule.startAt", INVALID_TIMESTAMP),
                error("schedule.endAt", INVALID_TIMESTAMP),
            ]
        );
        assert_eq!(
            with(json!({"timezone": "Mars/Olympus_Mons"})),
            [error("schedule.timezone", INVALID_TIMEZONE)]
        );
        assert_eq!(
            with(json!({"startAt": "2026-05-01T09:00:00Z", "endAt": "2026-05-01T09:00:00Z"})),
            [error("schedule.endAt", "must be after schedule.startAt")]
        );
    }

    #[test]
    fn timestamps_with_an_offset_are_stored_in_utc() {
        let body = seed_with(json!({"schedule": {"startAt": "2026-05-01T05:00:00-04:00"}}));
        let spec = parse_campaign(&body).unwrap().spec;
        assert_eq!(spec.start_at(), Some(utc("2026-05-01T09:00:00Z")));
    }

    #[test]
    fn recurring_must_carry_a_valid_cron() {
        let with = |changes: Value| {
            let mut body = seed_with(json!({"type": "recurring"}));
            for (key, value) in changes.as_object().unwrap() {
                body[key] = value.clone();
            }
            errors(body)
        };
        assert_eq!(
            with(json!({"recurring": "0 9 * * 1"})),
            [error(
                "recurring",
                "must be an object like {\"cron\": \"0 9 * * 1\"}"
            )]
        );
        assert_eq!(
            with(json!({"recurring": {}})),
            [error("recurring.cron", "is required")]
        );
        assert_eq!(
            with(json!({"recurring": {"cron": 9}})),
            [error("recurring.cron", "must be a string")]
        );
        assert_eq!(
            with(json!({"recurring": {"cron": "0 9 * *"}})),
            [error(
                "recurring.cron",
                "must have 5 fields (minute hour day-of-month month day-of-week), or 6 with leading seconds"
            )]
        );
        assert_eq!(
            with(json!({"recurring": {"cron": "0 0 30 2 *"}})),
            [error(
                "recurring.cron",
                "never fires: no date matches it (for example 30 February)"
            )]
        );
        assert_eq!(
            with(json!({"schedule": {"recurring": {"cron": "0 99 * * *"}}})),
            [error(
                "schedule.recurring.cron",
                "is not a valid cron expression: number out of bounds"
            )]
        );
        assert_eq!(
            with(json!({
                "recurring": {"cron": "0 9 * * 1"},
                "schedule": {"recurring": {"cron": "0 10 * * 1"}}
            })),
            [error(
                "schedule.recurring",
                "must match recurring when both are given"
            )]
        );
    }

    #[test]
    fn a_recurring_type_needs_a_cron_and_a_one_shot_must_not_have_one() {
        assert_eq!(
            errors(seed_with(json!({"type": "recurring"}))),
            [error(
                "recurring",
                "is required for a recurring campaign, e.g. {\"cron\": \"0 9 * * 1\"}"
            )]
        );
        assert_eq!(
            errors(seed_with(
                json!({"type": "one-shot", "recurring": {"cron": "0 9 * * 1"}})
            )),
            [error("recurring", "must not be set on a one-shot campaign")]
        );
        // A multi-channel campaign may repeat; drip and milestone steps keep their own time.
        assert!(parse_campaign(&seed_with(
            json!({"type": "multi-channel", "recurring": {"cron": "0 9 * * 1"}})
        ))
        .is_ok());
        assert_eq!(
            errors(seed_with(json!({
                "type": "drip", "recurring": {"cron": "0 9 * * 1"},
                "steps": [{"id": "welcome", "delay": "PT0S"}]
            }))),
            [error(
                "recurring",
                "must not be set on a drip campaign; its steps' delays set the timing"
            )]
        );
    }

    #[test]
    fn social_profiles_map_platform_ids_to_profile_ids() {
        let parsed = parse_campaign(&seed_with(
            json!({"socialProfiles": {"facebook": "fb-page-1"}}),
        ))
        .unwrap();
        assert_eq!(
            parsed.spec.social_profiles,
            BTreeMap::from([("facebook".to_string(), "fb-page-1".to_string())])
        );
        assert_eq!(
            errors(seed_with(json!({"socialProfiles": ["fb-page-1"]}))),
            [error("socialProfiles", "must be an object")]
        );
        let problems = errors(seed_with(
            json!({"socialProfiles": {"myspace": "p1", "x": 5}}),
        ));
        assert_eq!(
            problems
                .iter()
                .map(|e| e.field.as_str())
                .collect::<Vec<_>>(),
            ["socialProfiles.myspace", "socialProfiles.x"]
        );
    }

    #[test]
    fn channel_settings_must_be_an_object_and_are_kept_as_given() {
        let settings = json!({"email": {"replyTo": "hi@acme.test"}});
        let parsed = parse_campaign(&seed_with(json!({"channelSettings": settings}))).unwrap();
        assert_eq!(parsed.spec.channel_settings, Some(settings));
        assert_eq!(
            errors(seed_with(json!({"channelSettings": "fast"}))),
            [error("channelSettings", "must be an object")]
        );
    }

    #[test]
    fn null_means_absent_for_optional_fields() {
        let body = seed_with(json!({
            "audienceId": null, "templateId": null, "schedule": null, "recurring": null,
            "status": null, "socialProfiles": null, "channelSettings": null, "id": null,
            "audience": null
        }));
        let parsed = parse_campaign(&body).unwrap();
        assert_eq!(parsed.status, None);
        assert_eq!(parsed.spec.schedule, None);
        assert_eq!(parsed.spec.audience_id, None);
    }

    #[test]
    fn server_owned_and_unknown_fields_are_ignored() {
        let echoed = seed_with(json!({
            "orgId": "org-other", "version": 7, "state": "deleted", "createdAt": "yesterday",
            "createdBy": 5, "updatedAt": null, "updatedBy": "mallory", "launchedAt": "x",
            "completedAt": [], "deletedAt": {}, "nextRunAt": "soon", "blockers": "none",
            "lastRun": {"reach": -1}, "sends": 100, "revenue": "lots", "colour": "blue"
        }));
        assert_eq!(parse_campaign(&echoed), parse_campaign(&seed_body()));
    }

    #[test]
    fn validate_applies_the_same_rules_to_a_typed_spec() {
        let mut spec = parse_campaign(&seed_body()).unwrap().spec;
        assert_eq!(spec.validate(), Ok(()));
        spec.name = " ".into();
        spec.channels = vec![Channel::Sms, Channel::Sms];
        spec.audience = Some(json!({"type": "dynamic"}));
        spec.recurring = Some(Recurring {
            cron: "0 9 * * 1".into(),
        });
        spec.campaign_type = CampaignType::OneShot;
        spec.schedule = Some(Schedule {
            start_at: Some(utc("2026-05-02T00:00:00Z")),
            end_at: Some(utc("2026-05-01T00:00:00Z")),
            timezone: Some("Nowhere/Land".into()),
            local_time: false,
        });
        let fields: Vec<String> = spec
            .validate()
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(
            fields,
            [
                "name",
                "channels[1]",
                "audience.filter",
                "audience",
                "schedule.timezone",
                "schedule.endAt",
                "recurring",
            ]
        );
    }

    #[test]
    fn discovery_lists_match_the_wire_names() {
        for t in CampaignType::all() {
            assert_eq!(serde_json::to_value(t).unwrap(), json!(t.id()));
            assert_eq!(CampaignType::parse(t.id()), Some(*t));
            assert!(!t.name().is_empty() && !t.description().is_empty());
        }
        for c in Channel::all() {
            assert_eq!(serde_json::to_value(c).unwrap(), json!(c.id()));
            assert_eq!(Channel::parse(c.id()), Some(*c));
            assert!(["email", "sms", "social", "ads"].contains(&c.category()));
        }
        for s in Status::all() {
            assert_eq!(serde_json::to_value(s).unwrap(), json!(s.as_str()));
            assert_eq!(Status::parse(s.as_str()), Some(*s));
        }
        assert_eq!(Channel::GoogleAds.name(), "Google Ads");
        assert_eq!(Channel::Sms.name(), "SMS");
        assert_eq!(Channel::Linkedin.category(), "social");
        assert_eq!(Channel::MetaAds.category(), "ads");
    }

    const KEYS: [&str; 16] = [
        "name",
        "type",
        "channels",
        "audienceId",
        "audience",
        "templateId",
        "schedule",
        "startAt",
        "endAt",
        "timezone",
        "recurring",
        "cron",
        "status",
        "socialProfiles",
        "channelSettings",
        "id",
    ];

    fn any_json() -> impl Strategy<Value = Value> {
        crate::fuzz::json_like(
            &[
                "email",
                "one-shot",
                "recurring",
                "0 9 * * 1",
                "dynamic",
                "contact",
                "2026-05-01T09:00:00Z",
                "UTC",
            ],
            &KEYS,
        )
    }

    fn valid_body() -> impl Strategy<Value = Value> {
        let types = proptest::sample::select(CampaignType::all());
        let channels = proptest::sample::subsequence(Channel::all().to_vec(), 1..=8).prop_shuffle();
        let cron = proptest::sample::select(
            &[
                "0 9 * * 1",
                "*/15 * * * *",
                "30 0 9 * * MON-FRI",
                "0 0 L * *",
            ][..],
        );
        let zone = proptest::option::of(proptest::sample::select(
            &["UTC", "America/New_York", "Australia/Lord_Howe"][..],
        ));
        (
            "[A-Za-z][A-Za-z0-9 ]{0,40}",
            types,
            channels,
            proptest::option::of("[a-z][a-z0-9-]{0,20}"),
            proptest::option::of(0i64..2_000_000_000),
            proptest::option::of(1i64..100_000_000),
            zone,
            cron,
            any::<bool>(),
        )
            .prop_map(
                |(name, kind, channels, template, start, length, zone, cron, nested)| {
                    let mut body = json!({"name": name, "type": kind.id(), "channels": channels});
                    let mut schedule = Map::new();
                    if let Some(start) = start {
                        schedule.insert(
                            "startAt".into(),
                            json!(DateTime::from_timestamp(start, 0).unwrap()),
                        );
                        if let Some(length) = length {
                            schedule.insert(
                                "endAt".into(),
                                json!(DateTime::from_timestamp(start + length, 0).unwrap()),
                            );
                        }
                    }
                    if let Some(zone) = zone {
                        schedule.insert("timezone".into(), json!(zone));
                    }
                    if drip::has_steps(kind) {
                        body["steps"] = json!([
                            {"id": "s1", "delay": "PT0S"},
                            {"id": "s2", "delay": "P1DT2H", "at": "09:30", "when": {"notOpened": "s1"}}
                        ]);
                        body["exit"] = json!({"on": ["conversion"]});
                        if kind == CampaignType::Milestone {
                            body["trigger"] = json!({"field": "attributes.renewalAt", "offset": "-P7D", "repeat": "yearly"});
                        }
                    } else if kind != CampaignType::OneShot {
                        if nested {
                            schedule.insert("recurring".into(), json!({"cron": cron}));
                        } else {
                            body["recurring"] = json!({"cron": cron});
                        }
                    }
                    body["schedule"] = Value::Object(schedule);
                    if let Some(template) = template {
                        body["templateId"] = json!(template);
                    }
                    body
                },
            )
    }

    proptest! {
        #[test]
        fn any_json_is_parsed_or_refused_with_field_errors_never_a_panic(body in any_json()) {
            match parse_campaign(&body) {
                Ok(input) => prop_assert_eq!(input.spec.validate(), Ok(())),
                Err(errors) => prop_assert!(!errors.is_empty()),
            }
        }

        #[test]
        fn bodies_near_the_seed_are_parsed_or_refused_never_a_panic(
            key in proptest::sample::select(&KEYS[..]),
            value in any_json(),
        ) {
            let body = seed_with(json!({key: value}));
            match parse_campaign(&body) {
                Ok(input) => prop_assert_eq!(input.spec.validate(), Ok(())),
                Err(errors) => prop_assert!(!errors.is_empty()),
            }
        }

        #[test]
        fn a_stored_spec_parses_back_to_itself(body in valid_body()) {
            let spec = parse_campaign(&body).expect("generated bodies are valid").spec;
            prop_assert_eq!(spec.validate(), Ok(()));
            let stored = serde_json::to_value(&spec).unwrap();
            let reparsed = parse_campaign(&stored).expect("a stored spec is a valid body").spec;
            prop_assert_eq!(&reparsed, &spec);
            let deserialized: CampaignSpec = serde_json::from_value(stored).unwrap();
            prop_assert_eq!(deserialized, spec);
        }
    }

    #[test]
    fn the_aggregated_metrics_path_is_not_a_campaign_id() {
        let errors = parse_campaign(&seed_with(json!({"id": "aggregated-metrics"}))).unwrap_err();
        assert_eq!(errors[0].field, "id");
    }
}
