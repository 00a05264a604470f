//! The `Campaign` aggregate: its lifecycle rules, the commands that drive it, the events it records.
//!
//! `decide` checks a command against the current state and returns the events it causes (or
//! why it is refused); `apply` folds an event into the state and cannot fail. Everything the
//! domain cannot know by itself (the time, the run id, the audience's reach, which channels are
//! connected) arrives in a [`LaunchContext`].

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::drip;
use crate::error::{CampaignError, FieldError};
use crate::ids::{is_valid_id, INVALID_ID_MESSAGE};
use crate::schedule::CronSchedule;
use crate::spec::{Action, CampaignSpec, Channel, Status};

/// Why a campaign (or one of its channels) cannot launch, e.g.
/// `{"code": "channel_not_connected", "channel": "email"}` or `{"code": "template_missing"}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Blocker {
    pub code: String,
    /// The channel it blocks; `None` blocks the whole campaign.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<Channel>,
}

impl Blocker {
    /// No connection for the channel's platform.
    pub const CHANNEL_NOT_CONNECTED: &'static str = "channel_not_connected";
    /// The campaign's template does not exist.
    pub const TEMPLATE_MISSING: &'static str = "template_missing";
    /// The campaign's saved audience does not exist.
    pub const AUDIENCE_MISSING: &'static str = "audience_missing";

    /// A blocker for the whole campaign.
    pub fn new(code: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            channel: None,
        }
    }

    /// A blocker for one channel.
    pub fn for_channel(code: impl Into<String>, channel: Channel) -> Self {
        Self {
            code: code.into(),
            channel: Some(channel),
        }
    }

    /// `channel_not_connected` for `channel`.
    pub fn channel_not_connected(channel: Channel) -> Self {
        Self::for_channel(Self::CHANNEL_NOT_CONNECTED, channel)
    }
}

/// What a command needs from outside the domain to decide on a launch or a schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct LaunchContext {
    /// The time the command is handled.
    pub now: DateTime<Utc>,
    /// The id a launch in this command gets.
    pub run_id: String,
    /// How many contacts the audience matches now (evaluated at launch, not at save).
    pub reach: u64,
    /// Channels that can send (connected). A requested channel missing here is skipped with
    /// `channel_not_connected` unless `blockers` already says why.
    pub launchable: Vec<Channel>,
    /// Reasons found by the app: with a channel they skip that channel, without one they block
    /// the whole launch.
    pub blockers: Vec<Blocker>,
}

impl LaunchContext {
    /// A context at `now` with every channel launchable, no blockers and a reach of 0.
    pub fn new(now: DateTime<Utc>, run_id: impl Into<String>) -> Self {
        Self {
            now,
            run_id: run_id.into(),
            reach: 0,
            launchable: Channel::all().to_vec(),
            blockers: Vec::new(),
        }
    }

    /// The same context with the audience's reach.
    pub fn with_reach(mut self, reach: u64) -> Self {
        self.reach = reach;
        self
    }

    /// The same context with only these channels launchable.
    pub fn with_launchable(mut self, launchable: Vec<Channel>) -> Self {
        self.launchable = launchable;
        self
    }

    /// The same context with these blockers.
    pub fn with_blockers(mut self, blockers: Vec<Blocker>) -> Self {
        self.blockers = blockers;
        self
    }
}

/// The last run of a launched campaign, as `lastRun` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunInfo {
    pub run_id: String,
    /// The run's time: the launch time, or the occurrence it was scheduled for.
    pub at: DateTime<Utc>,
    pub reach: u64,
    /// Channels it went out on.
    pub channels: Vec<Channel>,
    /// Requested channels it did not go out on, and why.
    pub skipped: Vec<Blocker>,
    /// Sends the org's frequency caps held back, once the run is sent (`RunReported`).
    #[serde(default)]
    pub capped: u64,
    /// Contacts of a local-time run sent in a fallback zone, having none of their own.
    #[serde(default)]
    pub zone_fallbacks: u64,
}

/// What a client, the scheduler or the app asks of a campaign.
#[derive(Debug, Clone, PartialEq)]
pub enum CampaignCommand {
    /// `POST /campaigns`: create with `id`, in `status` (draft when `None`).
    Create {
        id: String,
        input: CampaignSpec,
        status: Option<Status>,
        ctx: LaunchContext,
    },
    /// `PUT /campaigns/:id`: replace the spec; `status` `None` keeps the current one.
    Update {
        spec: CampaignSpec,
        status: Option<Status>,
        ctx: LaunchContext,
    },
    /// A status change alone (the scheduler completing a sent one-shot).
    ChangeStatus { to: Status, ctx: LaunchContext },
    /// `POST .../launch|pause|resume|complete`: refused unless the campaign's status is one the
    /// action starts from ([`Action::starts_from`]).
    Act { action: Action, ctx: LaunchContext },
    /// The scheduler's wake-up: launch the run due at `nextRunAt` if `ctx.now` has reached it.
    /// Repeats are harmless (nothing due, no events), which makes each run happen once however
    /// often the job is delivered.
    RunDue { ctx: LaunchContext },
    /// `DELETE /campaigns/:id`: soft delete.
    Delete,
    /// The sender finished run `run_id`: what it reports about it (`RunReported`). Only the
    /// last run's report is kept; an unchanged report writes nothing.
    ReportRun {
        run_id: String,
        capped: u64,
        zone_fallbacks: u64,
    },
}

/// What happened to a campaign. Stored data is the variant's fields in camelCase
/// ([`CampaignEvent::data`]); every type is at version `1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all_fields = "camelCase")]
pub enum CampaignEvent {
    /// The campaign exists, in draft.
    Created {
        id: String,
        spec: CampaignSpec,
    },
    /// The spec was replaced (`PUT`).
    Updated {
        spec: CampaignSpec,
    },
    /// Waiting for `next_run_at`: the start of a one-shot, the first occurrence of a recurring
    /// campaign. `start_at` is `schedule.startAt`, or the time of the request when absent.
    Scheduled {
        start_at: DateTime<Utc>,
        next_run_at: DateTime<Utc>,
    },
    /// Back to draft; the pending launch is cancelled.
    Unscheduled {},
    /// A run went out. `at` is the run's time (the launch, or the occurrence it was due at);
    /// `next_run_at` is a recurring campaign's following occurrence.
    Launched {
        run_id: String,
        at: DateTime<Utc>,
        reach: u64,
        channels: Vec<Channel>,
        skipped: Vec<Blocker>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next_run_at: Option<DateTime<Utc>>,
    },
    /// A launch or schedule was asked for but no requested channel could go out; the status did
    /// not change.
    LaunchBlocked {
        blockers: Vec<Blocker>,
    },
    /// The recurring occurrences from `from` to `to` did not run: the scheduler was down
    /// (`blockers` empty) or nothing could launch (`blockers` says why).
    RunSkipped {
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next_run_at: Option<DateTime<Utc>>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        blockers: Vec<Blocker>,
    },
    /// A running recurring campaign's next occurrence moved (its cron, zone or end changed).
    Rescheduled {
        next_run_at: Option<DateTime<Utc>>,
    },
    Paused {},
    /// Running again; a recurring campaign continues at `next_run_at`.
    Resumed {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next_run_at: Option<DateTime<Utc>>,
    },
    Completed {},
    /// Soft delete: the record stays, commands are refused.
    SoftDeleted {},
    /// The last run is sent; `capped` of its sends were held back by the org's frequency caps,
    /// and a local-time run sent `zone_fallbacks` contacts in a zone not their own.
    RunReported {
        run_id: String,
        capped: u64,
        #[serde(default, skip_serializing_if = "is_zero")]
        zone_fallbacks: u64,
    },
}

/// Every event type name, as stored.
const EVENT_TYPES: [&str; 13] = [
    "Created",
    "Updated",
    "Scheduled",
    "Unscheduled",
    "Launched",
    "LaunchBlocked",
    "RunSkipped",
    "Rescheduled",
    "Paused",
    "Resumed",
    "Completed",
    "SoftDeleted",
    "RunReported",
];

impl CampaignEvent {
    /// The current version of every campaign event type.
    pub const VERSION: &'static str = "1";

    /// The stored type name (`Created`, `Launched`, `SoftDeleted`, ...).
    pub fn event_type(&self) -> &'static str {
        match self {
            CampaignEvent::Created { .. } => "Created",
            CampaignEvent::Updated { .. } => "Updated",
            CampaignEvent::Scheduled { .. } => "Scheduled",
            CampaignEvent::Unscheduled { .. } => "Unscheduled",
            CampaignEvent::Launched { .. } => "Launched",
            CampaignEvent::LaunchBlocked { .. } => "LaunchBlocked",
            CampaignEvent::RunSkipped { .. } => "RunSkipped",
            CampaignEvent::Rescheduled { .. } => "Rescheduled",
            CampaignEvent::Paused { .. } => "Paused",
            CampaignEvent::Resumed { .. } => "Resumed",
            CampaignEvent::Completed { .. } => "Completed",
            CampaignEvent::SoftDeleted { .. } => "SoftDeleted",
            CampaignEvent::RunReported { .. } => "RunReported",
        }
    }

    /// The payload as stored: the variant's fields, camelCase, without the type name.
    pub fn data(&self) -> Value {
        match serde_json::to_value(self) {
            Ok(Value::Object(mut tagged)) => tagged.remove(self.event_type()).unwrap_or_default(),
            // Every field is plain data with string keys, so serialization cannot fail.
            _ => Value::Null,
        }
    }

    /// Reads a stored event. This is where an older version of a type will be upcast when a
    /// type's shape changes (a new version, never an edit of version 1).
    pub fn from_stored(event_type: &str, version: &str, data: Value) -> Result<Self, String> {
        if !EVENT_TYPES.contains(&event_type) {
            return Err(format!("unknown campaign event type {event_type:?}"));
        }
        if version != Self::VERSION {
            return Err(format!(
                "unsupported version {version:?} of campaign event {event_type}"
            ));
        }
        let data = if data.is_null() {
            Value::Object(Map::new())
        } else {
            data
        };
        let tagged = Value::Object(Map::from_iter([(event_type.to_string(), data)]));
        serde_json::from_value(tagged).map_err(|err| format!("campaign event {event_type}: {err}"))
    }
}

impl DomainEvent for CampaignEvent {
    fn event_type(&self) -> String {
        CampaignEvent::event_type(self).to_string()
    }

    fn event_version(&self) -> String {
        Self::VERSION.to_string()
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A marketing campaign, folded from its events.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Campaign {
    id: String,
    spec: CampaignSpec,
    status: Status,
    deleted: bool,
    version: u64,
    run_count: u64,
    last_run: Option<RunInfo>,
    next_run_at: Option<DateTime<Utc>>,
    blockers: Vec<Blocker>,
}

impl Campaign {
    /// The campaign's id (empty before `Created`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The current spec.
    pub fn spec(&self) -> &CampaignSpec {
        &self.spec
    }

    /// The lifecycle status.
    pub fn status(&self) -> Status {
        self.status
    }

    /// Whether it was soft-deleted.
    pub fn is_deleted(&self) -> bool {
        self.deleted
    }

    /// How many events have been applied.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// When the next launch or occurrence fires, if one is pending.
    pub fn next_run_at(&self) -> Option<DateTime<Utc>> {
        self.next_run_at
    }

    /// When the scheduler must wake the campaign with `RunDue` ([`wake_at`]).
    pub fn wake_at(&self) -> Option<DateTime<Utc>> {
        wake_at(&self.spec, self.status, self.next_run_at)
    }

    /// Why the last launch or schedule request could not go out (empty once one does).
    pub fn blockers(&self) -> &[Blocker] {
        &self.blockers
    }

    /// The most recent run.
    pub fn last_run(&self) -> Option<&RunInfo> {
        self.last_run.as_ref()
    }

    /// How many runs have gone out.
    pub fn run_count(&self) -> u64 {
        self.run_count
    }

    fn exists(&self) -> bool {
        !self.id.is_empty()
    }

    /// The events `command` causes, or why it is refused. Pure; `handle` records the result.
    pub fn decide(&self, command: CampaignCommand) -> Result<Vec<CampaignEvent>, CampaignError> {
        match command {
            CampaignCommand::Create {
                id,
                input,
                status,
                ctx,
            } => self.create(id, input, status, &ctx),
            _ if !self.exists() => Err(CampaignError::NotFound),
            _ if self.deleted => Err(CampaignError::Deleted),
            CampaignCommand::Update { spec, status, ctx } => self.update(spec, status, &ctx),
            CampaignCommand::ChangeStatus { to, ctx } => self.change_to(to, &ctx),
            CampaignCommand::Act { action, .. } if !action.starts_from(self.status) => {
                Err(CampaignError::ActionRefused {
                    action,
                    from: self.status,
                })
            }
            CampaignCommand::Act { action, ctx } => self.act(action, &ctx),
            CampaignCommand::RunDue { ctx } => Ok(self.run_due(&ctx)),
            CampaignCommand::Delete => Ok(vec![CampaignEvent::SoftDeleted {}]),
            CampaignCommand::ReportRun {
                run_id,
                capped,
                zone_fallbacks,
            } => Ok(self
                .last_run
                .as_ref()
                .filter(|run| {
                    run.run_id == run_id
                        && (run.capped, run.zone_fallbacks) != (capped, zone_fallbacks)
                })
                .map(|_| CampaignEvent::RunReported {
                    run_id,
                    capped,
                    zone_fallbacks,
                })
                .into_iter()
                .collect()),
        }
    }

    fn create(
        &self,
        id: String,
        spec: CampaignSpec,
        status: Option<Status>,
        ctx: &LaunchContext,
    ) -> Result<Vec<CampaignEvent>, CampaignError> {
        if self.exists() {
            return Err(CampaignError::AlreadyExists);
        }
        if !is_valid_id(&id) {
            return Err(CampaignError::invalid("id", INVALID_ID_MESSAGE));
        }
        spec.validate().map_err(CampaignError::Invalid)?;
        let created = CampaignEvent::Created { id, spec };
        let mut draft = Campaign::default();
        draft.apply(created.clone());
        let mut events = vec![created];
        events.extend(draft.change_to(status.unwrap_or(Status::Draft), ctx)?);
        Ok(events)
    }

    fn update(
        &self,
        spec: CampaignSpec,
        status: Option<Status>,
        ctx: &LaunchContext,
    ) -> Result<Vec<CampaignEvent>, CampaignError> {
        spec.validate().map_err(CampaignError::Invalid)?;
        if matches!(self.status, Status::Running | Status::Paused)
            && (self.spec.has_steps() || spec.has_steps())
            && !(self.spec.campaign_type == spec.campaign_type
                && drip::only_appends(&self.spec.steps, &spec.steps))
        {
            return Err(CampaignError::StepsLocked {
                status: self.status,
            });
        }
        let to = status.unwrap_or(self.status);
        let mut updated = self.clone();
        let mut events = Vec::new();
        if spec != self.spec {
            let event = CampaignEvent::Updated { spec };
            updated.apply(event.clone());
            events.push(event);
        }
        if to != self.status {
            events.extend(updated.change_to(to, ctx)?);
        } else if self.spec.schedule != updated.spec.schedule
            || self.spec.recurring != updated.spec.recurring
        {
            events.extend(updated.reschedule(ctx)?);
        }
        Ok(events)
    }

    /// The events that move the campaign to `to` now, with its current spec.
    /// `POST …/{action}`. Unlike a `PUT`, a launch or resume that cannot go out on any channel
    /// is refused with its blockers and changes nothing, and so is a launch after `endAt`.
    fn act(
        &self,
        action: Action,
        ctx: &LaunchContext,
    ) -> Result<Vec<CampaignEvent>, CampaignError> {
        if matches!(action, Action::Launch | Action::Resume) {
            if action == Action::Launch && self.ended(ctx) {
                return Err(CampaignError::Ended);
            }
            if let Err(blockers) = plan_launch(&self.spec, ctx) {
                return Err(CampaignError::CannotLaunch { blockers });
            }
        }
        self.change_to(action.target(), ctx)
    }

    /// Whether the campaign's `schedule.endAt` has passed.
    fn ended(&self, ctx: &LaunchContext) -> bool {
        self.spec.end_at().is_some_and(|end| end <= ctx.now)
    }

    fn change_to(
        &self,
        to: Status,
        ctx: &LaunchContext,
    ) -> Result<Vec<CampaignEvent>, CampaignError> {
        use Status::*;
        let from = self.status;
        match (from, to) {
            _ if from == to => Ok(Vec::new()),
            (Draft | Scheduled, Scheduled | Running) if self.ended(ctx) => {
                // A schedule that also starts in the past says so first.
                let mut errors = match (to, self.future_start(ctx)) {
                    (Scheduled, Err(CampaignError::Invalid(errors))) => errors,
                    _ => Vec::new(),
                };
                errors.push(FieldError::new(
                    "schedule.endAt",
                    "has passed; a campaign whose end has passed cannot be launched or scheduled",
                ));
                Err(CampaignError::Invalid(errors))
            }
            (Draft, Scheduled) => self.schedule(ctx),
            (Draft | Scheduled, Running) => self.launch_now(ctx),
            (Scheduled, Draft) => Ok(vec![CampaignEvent::Unscheduled {}]),
            (Running, Paused) => Ok(vec![CampaignEvent::Paused {}]),
            (Running | Paused, Completed) => Ok(vec![CampaignEvent::Completed {}]),
            (Paused, Running) => Ok(self.resume(ctx)),
            _ => Err(CampaignError::InvalidTransition { from, to }),
        }
    }

    /// `draft → scheduled`: needs a future `startAt`; waits for it, or for a recurring
    /// campaign's first occurrence at or after it.
    fn schedule(&self, ctx: &LaunchContext) -> Result<Vec<CampaignEvent>, CampaignError> {
        let start = self.future_start(ctx)?;
        let next_run_at = match self.spec.cron_schedule() {
            Some(cron) => self.first_occurrence(&cron, Some(start), ctx)?,
            None => self.one_shot_due(start, ctx),
        };
        Ok(match plan_launch(&self.spec, ctx) {
            Ok(_) => vec![CampaignEvent::Scheduled {
                start_at: start,
                next_run_at,
            }],
            Err(blockers) => self.blocked(blockers),
        })
    }

    /// `→ running` from draft or scheduled. A one-shot launches now. A recurring campaign is
    /// scheduled until its first occurrence (`api.md` section 2): at or after a future
    /// `startAt`, otherwise after now.
    fn launch_now(&self, ctx: &LaunchContext) -> Result<Vec<CampaignEvent>, CampaignError> {
        let plan = plan_launch(&self.spec, ctx);
        let Some(cron) = self.spec.cron_schedule() else {
            return Ok(match plan {
                Ok((channels, skipped)) => vec![launched(ctx, ctx.now, channels, skipped, None)],
                Err(blockers) => self.blocked(blockers),
            });
        };
        let start = self.spec.start_at().filter(|start| *start > ctx.now);
        let next_run_at = self.first_occurrence(&cron, start, ctx)?;
        if self.status == Status::Scheduled && self.next_run_at == Some(next_run_at) {
            return Ok(Vec::new());
        }
        Ok(match plan {
            Ok(_) => vec![CampaignEvent::Scheduled {
                start_at: start.unwrap_or(ctx.now),
                next_run_at,
            }],
            Err(blockers) => self.blocked(blockers),
        })
    }

    /// `paused → running`. A recurring campaign continues with the next occurrence after now:
    /// occurrences during the pause are not made up.
    fn resume(&self, ctx: &LaunchContext) -> Vec<CampaignEvent> {
        let Some(cron) = self.spec.cron_schedule() else {
            let mut events = vec![CampaignEvent::Resumed { next_run_at: None }];
            if self.spec.has_steps() && self.ended(ctx) {
                // A sequence whose end passed while paused: its pending steps are cancelled.
                events.push(CampaignEvent::Completed {});
            }
            return events;
        };
        let next_run_at = self.before_end(cron.next_after(ctx.now));
        let mut events = vec![CampaignEvent::Resumed { next_run_at }];
        if next_run_at.is_none() {
            // Its end has passed while paused: no occurrence is left to wait for.
            events.push(CampaignEvent::Completed {});
        }
        events
    }

    /// A `PUT` that keeps the status but changes `schedule` or `recurring`.
    fn reschedule(&self, ctx: &LaunchContext) -> Result<Vec<CampaignEvent>, CampaignError> {
        let cron = self.spec.cron_schedule();
        match (self.status, cron) {
            (Status::Scheduled, None) => {
                let start = self.future_start(ctx)?;
                Ok(self.scheduled_if_moved(start, self.one_shot_due(start, ctx)))
            }
            (Status::Scheduled, Some(cron)) => {
                let start = self.spec.start_at().filter(|start| *start > ctx.now);
                let next_run_at = self.first_occurrence(&cron, start, ctx)?;
                Ok(self.scheduled_if_moved(start.unwrap_or(ctx.now), next_run_at))
            }
            (Status::Running, Some(cron)) => {
                let next_run_at = self.before_end(cron.next_after(ctx.now));
                Ok(if next_run_at == self.next_run_at {
                    Vec::new()
                } else {
                    vec![CampaignEvent::Rescheduled { next_run_at }]
                })
            }
            _ => Ok(Vec::new()),
        }
    }

    fn scheduled_if_moved(
        &self,
        start_at: DateTime<Utc>,
        next_run_at: DateTime<Utc>,
    ) -> Vec<CampaignEvent> {
        if self.next_run_at == Some(next_run_at) {
            Vec::new()
        } else {
            vec![CampaignEvent::Scheduled {
                start_at,
                next_run_at,
            }]
        }
    }

    /// The scheduler's wake-up. Nothing is due unless the campaign is scheduled or running and
    /// `nextRunAt` has been reached.
    fn run_due(&self, ctx: &LaunchContext) -> Vec<CampaignEvent> {
        if !matches!(self.status, Status::Scheduled | Status::Running) {
            return Vec::new();
        }
        let cron = self.spec.cron_schedule();
        let Some(due) = self.next_run_at else {
            let ended = self.spec.end_at().is_some_and(|end| end <= ctx.now);
            let ends = cron.is_some() || self.spec.has_steps();
            return if self.status == Status::Running && ends && ended {
                vec![CampaignEvent::Completed {}]
            } else {
                Vec::new()
            };
        };
        if due > ctx.now {
            return Vec::new();
        }
        let Some(cron) = cron else {
            // A one-shot launches at its start, however late the scheduler is: a missed launch
            // fires once on restart (`api.md` section 2).
            return match plan_launch(&self.spec, ctx) {
                Ok((channels, skipped)) => vec![launched(ctx, due, channels, skipped, None)],
                Err(blockers) => {
                    // Its moment has passed and it cannot go out: back to draft, so it does not
                    // fire at some arbitrary later time once a channel is connected.
                    let mut events = vec![CampaignEvent::Unscheduled {}];
                    events.extend(self.blocked(blockers));
                    events
                }
            };
        };
        let following = cron.next_after(due);
        if following.is_some_and(|following| following <= ctx.now) {
            // The scheduler slept through at least one whole period: missed occurrences are not
            // replayed, only the next future one is scheduled (`api.md` section 2).
            let next_run_at = self.before_end(cron.next_after(ctx.now));
            return self.skipped(due, ctx.now, next_run_at, Vec::new());
        }
        let next_run_at = self.before_end(following);
        match plan_launch(&self.spec, ctx) {
            Ok((channels, skipped)) => vec![launched(ctx, due, channels, skipped, next_run_at)],
            Err(blockers) => self.skipped(due, due, next_run_at, blockers),
        }
    }

    fn skipped(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        next_run_at: Option<DateTime<Utc>>,
        blockers: Vec<Blocker>,
    ) -> Vec<CampaignEvent> {
        let mut events = vec![CampaignEvent::RunSkipped {
            from,
            to,
            next_run_at,
            blockers,
        }];
        if next_run_at.is_none() {
            // No occurrence is left before `endAt`.
            events.push(if self.status == Status::Running {
                CampaignEvent::Completed {}
            } else {
                CampaignEvent::Unscheduled {}
            });
        }
        events
    }

    /// Records blockers, unless the same ones are already recorded (a retry changes nothing).
    fn blocked(&self, blockers: Vec<Blocker>) -> Vec<CampaignEvent> {
        if blockers == self.blockers {
            Vec::new()
        } else {
            vec![CampaignEvent::LaunchBlocked { blockers }]
        }
    }

    fn future_start(&self, ctx: &LaunchContext) -> Result<DateTime<Utc>, CampaignError> {
        match self.spec.start_at() {
            Some(start) if start > ctx.now => Ok(start),
            Some(_) => Err(CampaignError::invalid(
                "schedule.startAt",
                "must be in the future; to launch now, set status running",
            )),
            None => Err(CampaignError::invalid(
                "schedule.startAt",
                "is required to schedule a campaign; to launch now, set status running",
            )),
        }
    }

    /// When a scheduled one-shot (future `startAt` = `start`) launches: at `start`, or, with
    /// `schedule.localTime`, at the first zone's moment ([`CampaignSpec::first_moment`]), or now
    /// if that moment has passed already.
    fn one_shot_due(&self, start: DateTime<Utc>, ctx: &LaunchContext) -> DateTime<Utc> {
        self.spec
            .first_moment()
            .unwrap_or(start)
            .min(start)
            .max(ctx.now)
    }

    /// A recurring campaign's first occurrence: at or after `start`, or after now without one.
    fn first_occurrence(
        &self,
        cron: &CronSchedule,
        start: Option<DateTime<Utc>>,
        ctx: &LaunchContext,
    ) -> Result<DateTime<Utc>, CampaignError> {
        let next = match start {
            Some(start) => cron.next_at_or_after(start),
            None => cron.next_after(ctx.now),
        };
        self.before_end(next).ok_or_else(|| {
            CampaignError::invalid(
                "recurring.cron",
                "has no occurrence between the start and schedule.endAt",
            )
        })
    }

    /// `next`, unless it is after `schedule.endAt`.
    fn before_end(&self, next: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
        next.filter(|next| self.spec.end_at().is_none_or(|end| *next <= end))
    }
}

/// When the scheduler must wake a campaign with `RunDue`, or `None` when nothing will happen to
/// it by itself: at `next_run_at` while it is scheduled or running, and, for a running recurring
/// campaign past its last occurrence or a running drip or milestone campaign, at
/// `schedule.endAt`, when it completes (`api.md` sections 2 and 11: a sequence's `endAt` cancels
/// its pending steps). Without that wake-up nothing would ever complete it.
pub fn wake_at(
    spec: &CampaignSpec,
    status: Status,
    next_run_at: Option<DateTime<Utc>>,
) -> Option<DateTime<Utc>> {
    match status {
        Status::Scheduled | Status::Running if next_run_at.is_some() => next_run_at,
        Status::Running if spec.recurring.is_some() || spec.has_steps() => spec.end_at(),
        _ => None,
    }
}

/// The requested channels that can go out and the skipped ones with their reasons, or, when
/// nothing can go out, every reason.
fn plan_launch(
    spec: &CampaignSpec,
    ctx: &LaunchContext,
) -> Result<(Vec<Channel>, Vec<Blocker>), Vec<Blocker>> {
    let mut channels = Vec::new();
    let mut skipped = Vec::new();
    for &channel in &spec.channels {
        let mut reasons: Vec<Blocker> = ctx
            .blockers
            .iter()
            .filter(|b| b.channel == Some(channel))
            .cloned()
            .collect();
        if reasons.is_empty() && !ctx.launchable.contains(&channel) {
            reasons.push(Blocker::channel_not_connected(channel));
        }
        if reasons.is_empty() {
            channels.push(channel);
        } else {
            skipped.extend(reasons);
        }
    }
    let general: Vec<Blocker> = ctx
        .blockers
        .iter()
        .filter(|b| b.channel.is_none())
        .cloned()
        .collect();
    if general.is_empty() && !channels.is_empty() {
        Ok((channels, skipped))
    } else {
        Err(general.into_iter().chain(skipped).collect())
    }
}

fn launched(
    ctx: &LaunchContext,
    at: DateTime<Utc>,
    channels: Vec<Channel>,
    skipped: Vec<Blocker>,
    next_run_at: Option<DateTime<Utc>>,
) -> CampaignEvent {
    CampaignEvent::Launched {
        run_id: ctx.run_id.clone(),
        at,
        reach: ctx.reach,
        channels,
        skipped,
        next_run_at,
    }
}

impl Aggregate for Campaign {
    const TYPE: &'static str = "campaign";
    type Command = CampaignCommand;
    type Event = CampaignEvent;
    type Error = CampaignError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        self.version += 1;
        match event {
            CampaignEvent::Created { id, spec } => {
                self.id = id;
                self.spec = spec;
                self.status = Status::Draft;
            }
            CampaignEvent::Updated { spec } => self.spec = spec,
            CampaignEvent::Scheduled { next_run_at, .. } => {
                self.status = Status::Scheduled;
                self.next_run_at = Some(next_run_at);
                self.blockers.clear();
            }
            CampaignEvent::Unscheduled {} => {
                self.status = Status::Draft;
                self.next_run_at = None;
            }
            CampaignEvent::Launched {
                run_id,
                at,
                reach,
                channels,
                skipped,
                next_run_at,
            } => {
                self.status = Status::Running;
                self.run_count += 1;
                self.last_run = Some(RunInfo {
                    run_id,
                    at,
                    reach,
                    channels,
                    skipped,
                    capped: 0,
                    zone_fallbacks: 0,
                });
                self.next_run_at = next_run_at;
                self.blockers.clear();
            }
            CampaignEvent::LaunchBlocked { blockers } => self.blockers = blockers,
            CampaignEvent::RunSkipped {
                next_run_at,
                blockers,
                ..
            } => {
                self.next_run_at = next_run_at;
                self.blockers = blockers;
            }
            CampaignEvent::Rescheduled { next_run_at } => self.next_run_at = next_run_at,
            CampaignEvent::Paused {} => {
                self.status = Status::Paused;
                self.next_run_at = None;
            }
            CampaignEvent::Resumed { next_run_at } => {
                self.status = Status::Running;
                self.next_run_at = next_run_at;
            }
            CampaignEvent::Completed {} => {
                self.status = Status::Completed;
                self.next_run_at = None;
            }
            CampaignEvent::SoftDeleted {} => {
                self.deleted = true;
                self.next_run_at = None;
            }
            CampaignEvent::RunReported {
                run_id,
                capped,
                zone_fallbacks,
            } => {
                if let Some(run) = self.last_run.as_mut().filter(|r| r.run_id == run_id) {
                    run.capped = capped;
                    run.zone_fallbacks = zone_fallbacks;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{parse_campaign, Recurring, Schedule};
    use cqrs_es::test::TestFramework;
    use serde_json::json;
    use Status::*;

    fn campaign() -> TestFramework<Campaign> {
        TestFramework::with(())
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    /// Monday 2026-04-20, 08:00 in New York.
    fn now() -> DateTime<Utc> {
        at("2026-04-20T12:00:00Z")
    }

    fn ctx() -> LaunchContext {
        LaunchContext::new(now(), "run-1").with_reach(1200)
    }

    fn ctx_at(s: &str) -> LaunchContext {
        LaunchContext::new(at(s), "run-2").with_reach(1300)
    }

    fn spec_from(body: Value) -> CampaignSpec {
        parse_campaign(&body).expect("test body is valid").spec
    }

    /// The seed's example: a one-shot fan-out starting 2026-05-01T09:00Z.
    fn seed() -> CampaignSpec {
        spec_from(json!({
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
        }))
    }

    fn seed_start() -> DateTime<Utc> {
        at("2026-05-01T09:00:00Z")
    }

    fn seed_with_schedule(schedule: Option<Schedule>) -> CampaignSpec {
        CampaignSpec { schedule, ..seed() }
    }

    /// Mondays at 09:00 New York time, from the launch on.
    fn weekly() -> CampaignSpec {
        spec_from(json!({
            "name": "Weekly digest",
            "type": "recurring",
            "channels": ["email"],
            "recurring": {"cron": "0 9 * * 1"},
            "schedule": {"timezone": "America/New_York"}
        }))
    }

    fn weekly_with(start: Option<&str>, end: Option<&str>) -> CampaignSpec {
        let mut spec = weekly();
        spec.schedule = Some(Schedule {
            start_at: start.map(at),
            end_at: end.map(at),
            timezone: Some("America/New_York".into()),
            local_time: false,
        });
        spec
    }

    fn created(spec: CampaignSpec) -> CampaignEvent {
        CampaignEvent::Created {
            id: "camp-1".into(),
            spec,
        }
    }

    fn create(spec: CampaignSpec, status: Option<Status>) -> CampaignCommand {
        CampaignCommand::Create {
            id: "camp-1".into(),
            input: spec,
            status,
            ctx: ctx(),
        }
    }

    fn change(to: Status) -> CampaignCommand {
        CampaignCommand::ChangeStatus { to, ctx: ctx() }
    }

    fn update(spec: CampaignSpec, status: Option<Status>) -> CampaignCommand {
        CampaignCommand::Update {
            spec,
            status,
            ctx: ctx(),
        }
    }

    fn run_due(ctx: LaunchContext) -> CampaignCommand {
        CampaignCommand::RunDue { ctx }
    }

    fn scheduled_at(start: DateTime<Utc>, next: DateTime<Utc>) -> CampaignEvent {
        CampaignEvent::Scheduled {
            start_at: start,
            next_run_at: next,
        }
    }

    fn launched(
        run_id: &str,
        at: DateTime<Utc>,
        reach: u64,
        channels: &[Channel],
        skipped: Vec<Blocker>,
        next_run_at: Option<DateTime<Utc>>,
    ) -> CampaignEvent {
        CampaignEvent::Launched {
            run_id: run_id.into(),
            at,
            reach,
            channels: channels.to_vec(),
            skipped,
            next_run_at,
        }
    }

    const SEED_CHANNELS: [Channel; 3] = [Channel::Email, Channel::Facebook, Channel::Linkedin];

    /// The seed campaign launched now, by `ctx()`.
    fn launched_now() -> CampaignEvent {
        launched("run-1", now(), 1200, &SEED_CHANNELS, vec![], None)
    }

    /// Events that leave the seed campaign in `status`.
    fn history(status: Status) -> Vec<CampaignEvent> {
        let earlier_launch = launched("run-0", now(), 10, &SEED_CHANNELS, vec![], None);
        let mut events = vec![created(seed())];
        match status {
            Draft => {}
            Scheduled => events.push(scheduled_at(seed_start(), seed_start())),
            Running => events.push(earlier_launch),
            Paused => events.extend([earlier_launch, CampaignEvent::Paused {}]),
            Completed => events.extend([earlier_launch, CampaignEvent::Completed {}]),
        }
        events
    }

    fn invalid(field: &str, message: &str) -> CampaignError {
        CampaignError::Invalid(vec![FieldError::new(field, message)])
    }

    fn fold(events: Vec<CampaignEvent>) -> Campaign {
        let mut campaign = Campaign::default();
        for event in events {
            campaign.apply(event);
        }
        campaign
    }

    // Create

    #[test]
    fn creating_without_a_status_records_a_draft() {
        campaign()
            .given_no_previous_events()
            .when(create(seed(), None))
            .then_expect_events(vec![created(seed())]);
    }

    #[test]
    fn creating_as_draft_records_only_created() {
        campaign()
            .given_no_previous_events()
            .when(create(seed(), Some(Draft)))
            .then_expect_events(vec![created(seed())]);
    }

    #[test]
    fn creating_as_scheduled_waits_for_start_at() {
        campaign()
            .given_no_previous_events()
            .when(create(seed(), Some(Scheduled)))
            .then_expect_events(vec![
                created(seed()),
                scheduled_at(seed_start(), seed_start()),
            ]);
    }

    #[test]
    fn creating_as_scheduled_with_a_past_start_is_refused() {
        let past = seed_with_schedule(Some(Schedule {
            start_at: Some(at("2026-04-20T11:59:59Z")),
            ..Schedule::default()
        }));
        campaign()
            .given_no_previous_events()
            .when(create(past, Some(Scheduled)))
            .then_expect_error(invalid(
                "schedule.startAt",
                "must be in the future; to launch now, set status running",
            ));
    }

    #[test]
    fn creating_as_scheduled_without_a_start_is_refused() {
        campaign()
            .given_no_previous_events()
            .when(create(seed_with_schedule(None), Some(Scheduled)))
            .then_expect_error(invalid(
                "schedule.startAt",
                "is required to schedule a campaign; to launch now, set status running",
            ));
    }

    #[test]
    fn creating_as_running_without_a_schedule_launches_now() {
        let spec = seed_with_schedule(None);
        campaign()
            .given_no_previous_events()
            .when(create(spec.clone(), Some(Running)))
            .then_expect_events(vec![created(spec), launched_now()]);
    }

    #[test]
    fn creating_as_paused_or_completed_is_not_a_move_from_draft() {
        for to in [Paused, Completed] {
            campaign()
                .given_no_previous_events()
                .when(create(seed(), Some(to)))
                .then_expect_error(CampaignError::InvalidTransition { from: Draft, to });
        }
    }

    #[test]
    fn creating_an_existing_campaign_is_refused() {
        campaign()
            .given(history(Draft))
            .when(create(seed(), None))
            .then_expect_error(CampaignError::AlreadyExists);
    }

    #[test]
    fn creating_over_a_deleted_campaign_is_refused_because_the_id_is_taken() {
        campaign()
            .given(vec![created(seed()), CampaignEvent::SoftDeleted {}])
            .when(create(seed(), None))
            .then_expect_error(CampaignError::AlreadyExists);
    }

    #[test]
    fn creating_with_a_malformed_id_is_refused() {
        campaign()
            .given_no_previous_events()
            .when(CampaignCommand::Create {
                id: "camp 1".into(),
                input: seed(),
                status: None,
                ctx: ctx(),
            })
            .then_expect_error(invalid("id", INVALID_ID_MESSAGE));
    }

    #[test]
    fn creating_with_an_invalid_spec_is_refused_with_its_field_errors() {
        let spec = CampaignSpec {
            channels: vec![],
            ..seed()
        };
        campaign()
            .given_no_previous_events()
            .when(create(spec, None))
            .then_expect_error(invalid("channels", "must not be empty"));
    }

    // The status table

    fn expected_for(from: Status, to: Status) -> Option<Vec<CampaignEvent>> {
        let events = match (from, to) {
            (Draft, Scheduled) => vec![scheduled_at(seed_start(), seed_start())],
            (Draft | Scheduled, Running) => vec![launched_now()],
            (Scheduled, Draft) => vec![CampaignEvent::Unscheduled {}],
            (Running, Paused) => vec![CampaignEvent::Paused {}],
            (Running | Paused, Completed) => vec![CampaignEvent::Completed {}],
            (Paused, Running) => vec![CampaignEvent::Resumed { next_run_at: None }],
            _ => return None,
        };
        Some(events)
    }

    #[test]
    fn every_allowed_move_records_its_event_and_every_other_is_refused() {
        let mut allowed = 0;
        for &from in Status::all() {
            for &to in Status::all() {
                let then = campaign().given(history(from)).when(change(to));
                if from == to {
                    then.then_expect_events(vec![]);
                } else if let Some(events) = expected_for(from, to) {
                    assert!(from.can_move_to(to), "{from} -> {to}");
                    then.then_expect_events(events);
                    allowed += 1;
                } else {
                    assert!(!from.can_move_to(to), "{from} -> {to}");
                    then.then_expect_error(CampaignError::InvalidTransition { from, to });
                }
            }
        }
        assert_eq!(allowed, 8, "the lifecycle table has eight moves");
    }

    #[test]
    fn a_completed_campaign_cannot_be_relaunched() {
        campaign()
            .given(history(Completed))
            .when(change(Running))
            .then_expect_error_message("cannot move a completed campaign to running");
    }

    #[test]
    fn launching_a_running_campaign_again_records_nothing() {
        campaign()
            .given(history(Running))
            .when(change(Running))
            .then_expect_events(vec![]);
    }

    // Not found and deleted

    fn every_command() -> Vec<CampaignCommand> {
        vec![
            update(seed(), None),
            change(Running),
            run_due(ctx()),
            CampaignCommand::Delete,
        ]
    }

    #[test]
    fn commands_before_create_are_not_found() {
        for command in every_command() {
            campaign()
                .given_no_previous_events()
                .when(command)
                .then_expect_error(CampaignError::NotFound);
        }
    }

    #[test]
    fn deleting_is_allowed_from_every_status() {
        for &status in Status::all() {
            campaign()
                .given(history(status))
                .when(CampaignCommand::Delete)
                .then_expect_events(vec![CampaignEvent::SoftDeleted {}]);
        }
    }

    #[test]
    fn every_command_on_a_deleted_campaign_is_refused() {
        for command in every_command() {
            let mut events = history(Scheduled);
            events.push(CampaignEvent::SoftDeleted {});
            campaign()
                .given(events)
                .when(command)
                .then_expect_error(CampaignError::Deleted);
        }
    }

    // Blockers

    #[test]
    fn launching_with_no_launchable_channel_saves_and_stays_draft() {
        let spec = seed_with_schedule(None);
        campaign()
            .given_no_previous_events()
            .when(CampaignCommand::Create {
                id: "camp-1".into(),
                input: spec.clone(),
                status: Some(Running),
                ctx: ctx().with_launchable(vec![Channel::Sms]),
            })
            .then_expect_events(vec![
                created(spec),
                CampaignEvent::LaunchBlocked {
                    blockers: SEED_CHANNELS
                        .iter()
                        .map(|c| Blocker::channel_not_connected(*c))
                        .collect(),
                },
            ]);
    }

    #[test]
    fn launching_with_some_channels_launchable_goes_out_on_those_and_records_the_rest() {
        let template_gone = Blocker::for_channel("profile_missing", Channel::Facebook);
        campaign()
            .given(history(Draft))
            .when(CampaignCommand::ChangeStatus {
                to: Running,
                ctx: ctx()
                    .with_launchable(vec![Channel::Email, Channel::Facebook])
                    .with_blockers(vec![template_gone.clone()]),
            })
            .then_expect_events(vec![launched(
                "run-1",
                now(),
                1200,
                &[Channel::Email],
                vec![
                    template_gone,
                    Blocker::channel_not_connected(Channel::Linkedin),
                ],
                None,
            )]);
    }

    #[test]
    fn a_campaign_wide_blocker_stops_the_launch() {
        campaign()
            .given(history(Draft))
            .when(CampaignCommand::ChangeStatus {
                to: Running,
                ctx: ctx().with_blockers(vec![Blocker::new(Blocker::TEMPLATE_MISSING)]),
            })
            .then_expect_events(vec![CampaignEvent::LaunchBlocked {
                blockers: vec![Blocker::new(Blocker::TEMPLATE_MISSING)],
            }]);
    }

    #[test]
    fn blockers_on_channels_the_campaign_does_not_use_are_ignored() {
        campaign()
            .given(vec![created(seed_with_schedule(None))])
            .when(CampaignCommand::ChangeStatus {
                to: Running,
                ctx: ctx().with_blockers(vec![Blocker::channel_not_connected(Channel::Sms)]),
            })
            .then_expect_events(vec![launched_now()]);
    }

    #[test]
    fn retrying_a_blocked_launch_with_the_same_blockers_records_nothing() {
        let blockers = vec![Blocker::new(Blocker::AUDIENCE_MISSING)];
        campaign()
            .given(vec![
                created(seed()),
                CampaignEvent::LaunchBlocked {
                    blockers: blockers.clone(),
                },
            ])
            .when(CampaignCommand::ChangeStatus {
                to: Running,
                ctx: ctx().with_blockers(blockers),
            })
            .then_expect_events(vec![]);
    }

    #[test]
    fn scheduling_with_no_launchable_channel_saves_and_stays_draft() {
        campaign()
            .given(history(Draft))
            .when(CampaignCommand::ChangeStatus {
                to: Scheduled,
                ctx: ctx().with_launchable(vec![]),
            })
            .then_expect_events(vec![CampaignEvent::LaunchBlocked {
                blockers: SEED_CHANNELS
                    .iter()
                    .map(|c| Blocker::channel_not_connected(*c))
                    .collect(),
            }]);
    }

    #[test]
    fn blockers_are_shown_until_a_launch_goes_out() {
        let blockers = vec![Blocker::channel_not_connected(Channel::Email)];
        let mut events = vec![
            created(seed()),
            CampaignEvent::LaunchBlocked {
                blockers: blockers.clone(),
            },
        ];
        let blocked = fold(events.clone());
        assert_eq!(blocked.status(), Draft);
        assert_eq!(blocked.blockers(), blockers.as_slice());
        assert_eq!(
            serde_json::to_value(blocked.blockers()).unwrap(),
            json!([{"code": "channel_not_connected", "channel": "email"}])
        );
        events.push(launched_now());
        assert!(fold(events).blockers().is_empty());
    }

    // Recurring campaigns

    #[test]
    fn launching_a_recurring_campaign_schedules_its_first_occurrence() {
        // 09:00 in New York on Monday 2026-04-20 is 13:00Z, an hour after now.
        campaign()
            .given_no_previous_events()
            .when(create(weekly(), Some(Running)))
            .then_expect_events(vec![
                created(weekly()),
                scheduled_at(now(), at("2026-04-20T13:00:00Z")),
            ]);
    }

    #[test]
    fn a_recurring_campaign_waits_for_the_first_occurrence_at_or_after_its_start() {
        // 2026-05-01 is a Friday: the first run is Monday 2026-05-04.
        let spec = weekly_with(Some("2026-05-01T09:00:00Z"), None);
        campaign()
            .given(vec![created(spec)])
            .when(change(Scheduled))
            .then_expect_events(vec![scheduled_at(
                at("2026-05-01T09:00:00Z"),
                at("2026-05-04T13:00:00Z"),
            )]);
        // A start that is itself an occurrence is the first run.
        let spec = weekly_with(Some("2026-05-04T13:00:00Z"), None);
        campaign()
            .given(vec![created(spec)])
            .when(change(Running))
            .then_expect_events(vec![scheduled_at(
                at("2026-05-04T13:00:00Z"),
                at("2026-05-04T13:00:00Z"),
            )]);
    }

    #[test]
    fn scheduling_a_recurring_campaign_needs_a_future_start() {
        campaign()
            .given(vec![created(weekly())])
            .when(change(Scheduled))
            .then_expect_error(invalid(
                "schedule.startAt",
                "is required to schedule a campaign; to launch now, set status running",
            ));
    }

    #[test]
    fn a_recurring_campaign_with_no_occurrence_before_its_end_is_refused() {
        let spec = weekly_with(Some("2026-05-01T09:00:00Z"), Some("2026-05-03T00:00:00Z"));
        campaign()
            .given(vec![created(spec)])
            .when(change(Scheduled))
            .then_expect_error(invalid(
                "recurring.cron",
                "has no occurrence between the start and schedule.endAt",
            ));
    }

    #[test]
    fn launching_an_already_scheduled_recurring_campaign_changes_nothing() {
        campaign()
            .given(vec![
                created(weekly()),
                scheduled_at(now(), at("2026-04-20T13:00:00Z")),
            ])
            .when(change(Running))
            .then_expect_events(vec![]);
    }

    // Update (PUT)

    #[test]
    fn a_put_with_the_same_spec_and_status_records_nothing() {
        for status in [None, Some(Scheduled)] {
            campaign()
                .given(history(Scheduled))
                .when(update(seed(), status))
                .then_expect_events(vec![]);
        }
    }

    #[test]
    fn a_put_with_a_new_name_records_updated() {
        let renamed = CampaignSpec {
            name: "Spring 2026 Relaunch".into(),
            ..seed()
        };
        campaign()
            .given(history(Running))
            .when(update(renamed.clone(), None))
            .then_expect_events(vec![CampaignEvent::Updated { spec: renamed }]);
    }

    #[test]
    fn moving_the_start_of_a_scheduled_campaign_reschedules_it() {
        let later = at("2026-05-02T09:00:00Z");
        let moved = seed_with_schedule(Some(Schedule {
            start_at: Some(later),
            ..Schedule::default()
        }));
        campaign()
            .given(history(Scheduled))
            .when(update(moved.clone(), None))
            .then_expect_events(vec![
                CampaignEvent::Updated { spec: moved },
                scheduled_at(later, later),
            ]);
    }

    #[test]
    fn moving_the_start_of_a_scheduled_campaign_into_the_past_is_refused() {
        let past = seed_with_schedule(Some(Schedule {
            start_at: Some(at("2026-04-01T00:00:00Z")),
            ..Schedule::default()
        }));
        campaign()
            .given(history(Scheduled))
            .when(update(past, None))
            .then_expect_error(invalid(
                "schedule.startAt",
                "must be in the future; to launch now, set status running",
            ));
    }

    #[test]
    fn a_put_can_replace_the_spec_and_launch_with_the_new_channels() {
        let email_only = CampaignSpec {
            channels: vec![Channel::Email],
            schedule: None,
            ..seed()
        };
        campaign()
            .given(history(Draft))
            .when(update(email_only.clone(), Some(Running)))
            .then_expect_events(vec![
                CampaignEvent::Updated { spec: email_only },
                launched("run-1", now(), 1200, &[Channel::Email], vec![], None),
            ]);
    }

    #[test]
    fn a_put_with_a_forbidden_status_changes_nothing() {
        let renamed = CampaignSpec {
            name: "Renamed".into(),
            ..seed()
        };
        campaign()
            .given(history(Completed))
            .when(update(renamed, Some(Draft)))
            .then_expect_error(CampaignError::InvalidTransition {
                from: Completed,
                to: Draft,
            });
    }

    #[test]
    fn a_put_with_an_invalid_spec_is_refused() {
        let unnamed = CampaignSpec {
            name: String::new(),
            ..seed()
        };
        campaign()
            .given(history(Draft))
            .when(update(unnamed, None))
            .then_expect_error(invalid("name", "must not be empty"));
    }

    #[test]
    fn a_put_back_to_draft_unschedules() {
        campaign()
            .given(history(Scheduled))
            .when(update(seed(), Some(Draft)))
            .then_expect_events(vec![CampaignEvent::Unscheduled {}]);
    }

    #[test]
    fn changing_the_cron_of_a_running_recurring_campaign_moves_its_next_run() {
        let mut ten = weekly();
        ten.recurring = Some(Recurring {
            cron: "0 10 * * 1".into(),
        });
        campaign()
            .given(vec![
                created(weekly()),
                scheduled_at(now(), at("2026-04-20T13:00:00Z")),
                launched(
                    "run-1",
                    at("2026-04-20T13:00:00Z"),
                    5,
                    &[Channel::Email],
                    vec![],
                    Some(at("2026-04-27T13:00:00Z")),
                ),
            ])
            .when(CampaignCommand::Update {
                spec: ten.clone(),
                status: None,
                ctx: ctx_at("2026-04-21T00:00:00Z"),
            })
            .then_expect_events(vec![
                CampaignEvent::Updated { spec: ten },
                CampaignEvent::Rescheduled {
                    next_run_at: Some(at("2026-04-27T14:00:00Z")),
                },
            ]);
    }

    #[test]
    fn a_put_echoing_a_scheduled_recurring_campaign_changes_nothing() {
        campaign()
            .given(vec![
                created(weekly()),
                scheduled_at(now(), at("2026-04-20T13:00:00Z")),
            ])
            .when(CampaignCommand::Update {
                spec: weekly(),
                status: Some(Scheduled),
                ctx: ctx_at("2026-04-20T12:30:00Z"),
            })
            .then_expect_events(vec![]);
    }

    /// The seed campaign with `schedule.localTime`: 09:00 in New York (13:00 UTC) on 1 May.
    fn local_time_seed() -> CampaignSpec {
        seed_with_schedule(Some(Schedule {
            start_at: Some(at("2026-05-01T13:00:00Z")),
            end_at: None,
            timezone: Some("America/New_York".into()),
            local_time: true,
        }))
    }

    #[test]
    fn a_scheduled_local_time_one_shot_starts_its_run_at_the_first_zones_moment() {
        // 09:00 on 1 May comes first in UTC+14: 19:00 UTC on 30 April.
        let first = at("2026-04-30T19:00:00Z");
        campaign()
            .given(vec![created(local_time_seed())])
            .when(change(Scheduled))
            .then_expect_events(vec![scheduled_at(at("2026-05-01T13:00:00Z"), first)]);
        campaign()
            .given(vec![
                created(local_time_seed()),
                scheduled_at(at("2026-05-01T13:00:00Z"), first),
            ])
            .when(run_due(ctx_at("2026-04-30T19:00:01Z")))
            .then_expect_events(vec![launched(
                "run-2",
                first,
                1300,
                &SEED_CHANNELS,
                vec![],
                None,
            )]);
    }

    #[test]
    fn a_local_time_one_shot_whose_first_moment_has_passed_launches_now() {
        // startAt 13:00 UTC, 09:00 New York; asked for at 08:00 UTC, when 09:00 has come in
        // every zone from UTC+1 to UTC+14.
        let now = "2026-05-01T08:00:00Z";
        campaign()
            .given(vec![created(local_time_seed())])
            .when(CampaignCommand::ChangeStatus {
                to: Scheduled,
                ctx: ctx_at(now),
            })
            .then_expect_events(vec![scheduled_at(at("2026-05-01T13:00:00Z"), at(now))]);
    }

    // The scheduler (RunDue)

    #[test]
    fn a_scheduled_one_shot_launches_when_due_with_its_start_as_the_run_time() {
        campaign()
            .given(history(Scheduled))
            .when(run_due(ctx_at("2026-05-01T09:00:02Z")))
            .then_expect_events(vec![launched(
                "run-2",
                seed_start(),
                1300,
                &SEED_CHANNELS,
                vec![],
                None,
            )]);
    }

    #[test]
    fn nothing_runs_before_it_is_due() {
        campaign()
            .given(history(Scheduled))
            .when(run_due(ctx_at("2026-05-01T08:59:59Z")))
            .then_expect_events(vec![]);
    }

    #[test]
    fn a_run_is_launched_once_however_often_the_job_fires() {
        let mut events = history(Scheduled);
        events.push(launched(
            "run-2",
            seed_start(),
            1300,
            &SEED_CHANNELS,
            vec![],
            None,
        ));
        campaign()
            .given(events)
            .when(run_due(ctx_at("2026-05-01T09:00:05Z")))
            .then_expect_events(vec![]);
    }

    #[test]
    fn a_one_shot_missed_during_downtime_fires_once_on_restart() {
        campaign()
            .given(history(Scheduled))
            .when(run_due(ctx_at("2026-05-03T00:00:00Z")))
            .then_expect_events(vec![launched(
                "run-2",
                seed_start(),
                1300,
                &SEED_CHANNELS,
                vec![],
                None,
            )]);
    }

    #[test]
    fn a_due_one_shot_that_cannot_launch_goes_back_to_draft_with_its_blockers() {
        campaign()
            .given(history(Scheduled))
            .when(run_due(
                ctx_at("2026-05-01T09:00:00Z")
                    .with_blockers(vec![Blocker::new(Blocker::TEMPLATE_MISSING)]),
            ))
            .then_expect_events(vec![
                CampaignEvent::Unscheduled {},
                CampaignEvent::LaunchBlocked {
                    blockers: vec![Blocker::new(Blocker::TEMPLATE_MISSING)],
                },
            ]);
    }

    fn weekly_scheduled() -> Vec<CampaignEvent> {
        vec![
            created(weekly()),
            scheduled_at(now(), at("2026-04-20T13:00:00Z")),
        ]
    }

    #[test]
    fn a_recurring_campaign_runs_its_occurrence_and_waits_for_the_next() {
        campaign()
            .given(weekly_scheduled())
            .when(run_due(ctx_at("2026-04-20T13:00:03Z")))
            .then_expect_events(vec![launched(
                "run-2",
                at("2026-04-20T13:00:00Z"),
                1300,
                &[Channel::Email],
                vec![],
                Some(at("2026-04-27T13:00:00Z")),
            )]);
    }

    #[test]
    fn missed_recurring_occurrences_are_skipped_not_replayed() {
        // Down from before the 20 April run until after the 4 May one.
        campaign()
            .given(weekly_scheduled())
            .when(run_due(ctx_at("2026-05-05T00:00:00Z")))
            .then_expect_events(vec![CampaignEvent::RunSkipped {
                from: at("2026-04-20T13:00:00Z"),
                to: at("2026-05-05T00:00:00Z"),
                next_run_at: Some(at("2026-05-11T13:00:00Z")),
                blockers: vec![],
            }]);
    }

    #[test]
    fn a_recurring_occurrence_with_nothing_launchable_is_skipped_with_its_blockers() {
        campaign()
            .given(weekly_scheduled())
            .when(run_due(
                ctx_at("2026-04-20T13:00:03Z").with_launchable(vec![]),
            ))
            .then_expect_events(vec![CampaignEvent::RunSkipped {
                from: at("2026-04-20T13:00:00Z"),
                to: at("2026-04-20T13:00:00Z"),
                next_run_at: Some(at("2026-04-27T13:00:00Z")),
                blockers: vec![Blocker::channel_not_connected(Channel::Email)],
            }]);
    }

    #[test]
    fn the_last_occurrence_before_the_end_leaves_no_next_run_and_then_completes() {
        let spec = weekly_with(None, Some("2026-04-25T00:00:00Z"));
        let last_run = launched(
            "run-2",
            at("2026-04-20T13:00:00Z"),
            1300,
            &[Channel::Email],
            vec![],
            None,
        );
        let history = vec![
            created(spec.clone()),
            scheduled_at(now(), at("2026-04-20T13:00:00Z")),
        ];
        campaign()
            .given(history.clone())
            .when(run_due(ctx_at("2026-04-20T13:00:03Z")))
            .then_expect_events(vec![last_run.clone()]);
        assert_eq!(
            fold(history.clone()).wake_at(),
            Some(at("2026-04-20T13:00:00Z"))
        );
        let ran: Vec<CampaignEvent> = history.into_iter().chain([last_run]).collect();
        assert_eq!(
            fold(ran.clone()).wake_at(),
            Some(at("2026-04-25T00:00:00Z")),
            "with no occurrence left, the scheduler wakes it at its end"
        );
        campaign()
            .given(ran.clone())
            .when(run_due(ctx_at("2026-04-25T00:00:00Z")))
            .then_expect_events(vec![CampaignEvent::Completed {}]);
        let completed: Vec<CampaignEvent> = ran
            .into_iter()
            .chain([CampaignEvent::Completed {}])
            .collect();
        assert_eq!(fold(completed).wake_at(), None);
    }

    #[test]
    fn a_running_campaign_without_an_end_or_a_recurrence_is_never_woken() {
        let mut ran = weekly_scheduled();
        ran.push(launched(
            "run-1",
            at("2026-04-20T13:00:00Z"),
            1300,
            &[Channel::Email],
            vec![],
            None,
        ));
        assert_eq!(fold(ran).wake_at(), None, "no end: it runs until completed");
        assert_eq!(fold(history(Running)).wake_at(), None, "a one-shot's run");
        assert_eq!(fold(history(Paused)).wake_at(), None);
    }

    #[test]
    fn draft_paused_and_completed_campaigns_never_run() {
        for status in [Draft, Paused, Completed] {
            campaign()
                .given(history(status))
                .when(run_due(ctx_at("2026-06-01T00:00:00Z")))
                .then_expect_events(vec![]);
        }
    }

    #[test]
    fn resuming_a_recurring_campaign_continues_after_now_without_making_up_runs() {
        let mut events = weekly_scheduled();
        events.extend([
            launched(
                "run-1",
                at("2026-04-20T13:00:00Z"),
                5,
                &[Channel::Email],
                vec![],
                Some(at("2026-04-27T13:00:00Z")),
            ),
            CampaignEvent::Paused {},
        ]);
        campaign()
            .given(events)
            .when(CampaignCommand::ChangeStatus {
                to: Running,
                ctx: ctx_at("2026-05-05T00:00:00Z"),
            })
            .then_expect_events(vec![CampaignEvent::Resumed {
                next_run_at: Some(at("2026-05-11T13:00:00Z")),
            }]);
    }

    #[test]
    fn resuming_a_recurring_campaign_after_its_end_completes_it() {
        let spec = weekly_with(None, Some("2026-04-25T00:00:00Z"));
        campaign()
            .given(vec![
                created(spec),
                scheduled_at(now(), at("2026-04-20T13:00:00Z")),
                launched(
                    "run-1",
                    at("2026-04-20T13:00:00Z"),
                    5,
                    &[Channel::Email],
                    vec![],
                    None,
                ),
                CampaignEvent::Paused {},
            ])
            .when(CampaignCommand::ChangeStatus {
                to: Running,
                ctx: ctx_at("2026-04-26T00:00:00Z"),
            })
            .then_expect_events(vec![
                CampaignEvent::Resumed { next_run_at: None },
                CampaignEvent::Completed {},
            ]);
    }

    /// A welcome drip that ends on 2026-05-01.
    fn drip_ending() -> CampaignSpec {
        spec_from(json!({
            "name": "Welcome",
            "type": "drip",
            "channels": ["email"],
            "audienceId": "aud-new",
            "templateId": "tpl-welcome",
            "schedule": {"endAt": "2026-05-01T00:00:00Z"},
            "steps": [{"id": "welcome", "delay": "PT0S"}, {"id": "nudge", "delay": "P3D"}]
        }))
    }

    #[test]
    fn a_running_drip_is_woken_at_its_end_and_completes_then() {
        let history = vec![
            created(drip_ending()),
            launched("run-1", now(), 5, &[Channel::Email], vec![], None),
        ];
        let mut running = Campaign::default();
        for event in history.clone() {
            running.apply(event);
        }
        assert_eq!(running.wake_at(), Some(at("2026-05-01T00:00:00Z")));
        campaign()
            .given(history.clone())
            .when(run_due(ctx_at("2026-04-30T23:59:59Z")))
            .then_expect_events(vec![]);
        campaign()
            .given(history)
            .when(run_due(ctx_at("2026-05-01T00:00:00Z")))
            .then_expect_events(vec![CampaignEvent::Completed {}]);
    }

    #[test]
    fn resuming_a_drip_after_its_end_completes_it() {
        let history = vec![
            created(drip_ending()),
            launched("run-1", now(), 5, &[Channel::Email], vec![], None),
            CampaignEvent::Paused {},
        ];
        campaign()
            .given(history.clone())
            .when(CampaignCommand::ChangeStatus {
                to: Running,
                ctx: ctx_at("2026-04-25T00:00:00Z"),
            })
            .then_expect_events(vec![CampaignEvent::Resumed { next_run_at: None }]);
        campaign()
            .given(history)
            .when(CampaignCommand::ChangeStatus {
                to: Running,
                ctx: ctx_at("2026-05-02T00:00:00Z"),
            })
            .then_expect_events(vec![
                CampaignEvent::Resumed { next_run_at: None },
                CampaignEvent::Completed {},
            ]);
    }

    // Events as stored

    fn one_of_each() -> Vec<CampaignEvent> {
        vec![
            created(seed()),
            CampaignEvent::Updated { spec: weekly() },
            scheduled_at(seed_start(), seed_start()),
            CampaignEvent::Unscheduled {},
            launched(
                "run-1",
                now(),
                1200,
                &[Channel::Email],
                vec![Blocker::channel_not_connected(Channel::Sms)],
                Some(seed_start()),
            ),
            CampaignEvent::LaunchBlocked {
                blockers: vec![Blocker::new(Blocker::TEMPLATE_MISSING)],
            },
            CampaignEvent::RunSkipped {
                from: now(),
                to: seed_start(),
                next_run_at: None,
                blockers: vec![],
            },
            CampaignEvent::Rescheduled { next_run_at: None },
            CampaignEvent::Paused {},
            CampaignEvent::Resumed {
                next_run_at: Some(seed_start()),
            },
            CampaignEvent::Completed {},
            CampaignEvent::SoftDeleted {},
            CampaignEvent::RunReported {
                run_id: "run-1".into(),
                capped: 3,
                zone_fallbacks: 2,
            },
        ]
    }

    #[test]
    fn event_types_are_the_catalogue_names() {
        let names: Vec<&str> = one_of_each()
            .iter()
            .map(CampaignEvent::event_type)
            .collect();
        assert_eq!(names, EVENT_TYPES);
        for event in one_of_each() {
            assert_eq!(DomainEvent::event_version(&event), "1");
            assert_eq!(DomainEvent::event_type(&event), event.event_type());
        }
    }

    #[test]
    fn stored_data_is_the_camel_case_payload_alone() {
        let launch = launched(
            "run-1",
            now(),
            1200,
            &[Channel::Email],
            vec![Blocker::channel_not_connected(Channel::Sms)],
            None,
        );
        assert_eq!(
            launch.data(),
            json!({
                "runId": "run-1",
                "at": "2026-04-20T12:00:00Z",
                "reach": 1200,
                "channels": ["email"],
                "skipped": [{"code": "channel_not_connected", "channel": "sms"}]
            })
        );
        assert_eq!(
            scheduled_at(seed_start(), seed_start()).data(),
            json!({"startAt": "2026-05-01T09:00:00Z", "nextRunAt": "2026-05-01T09:00:00Z"})
        );
        assert_eq!(CampaignEvent::SoftDeleted {}.data(), json!({}));
        assert_eq!(
            created(seed_with_schedule(None)).data(),
            json!({
                "id": "camp-1",
                "spec": {
                    "name": "Spring 2026 Launch",
                    "type": "multi-channel",
                    "channels": ["email", "facebook", "linkedin"],
                    "audienceId": "aud-spring-prospects",
                    "templateId": "tpl-spring-launch"
                }
            })
        );
    }

    #[test]
    fn stored_events_read_back_unchanged() {
        for event in one_of_each() {
            let read = CampaignEvent::from_stored(
                event.event_type(),
                CampaignEvent::VERSION,
                event.data(),
            );
            assert_eq!(read, Ok(event));
        }
    }

    #[test]
    fn unknown_types_versions_and_shapes_are_refused_when_read() {
        assert!(CampaignEvent::from_stored("Exploded", "1", json!({})).is_err());
        assert!(CampaignEvent::from_stored("Paused", "2", json!({})).is_err());
        assert!(CampaignEvent::from_stored("Scheduled", "1", json!({"startAt": 5})).is_err());
        assert_eq!(
            CampaignEvent::from_stored("Paused", "1", Value::Null),
            Ok(CampaignEvent::Paused {})
        );
    }

    // State the app reads

    #[test]
    fn the_aggregate_exposes_what_the_response_needs() {
        let mut events = weekly_scheduled();
        events.push(launched(
            "run-2",
            at("2026-04-20T13:00:00Z"),
            1300,
            &[Channel::Email],
            vec![],
            Some(at("2026-04-27T13:00:00Z")),
        ));
        let state = fold(events);
        assert_eq!(state.id(), "camp-1");
        assert_eq!(state.spec(), &weekly());
        assert_eq!(state.status(), Running);
        assert!(!state.is_deleted());
        assert_eq!(state.version(), 3);
        assert_eq!(state.run_count(), 1);
        assert_eq!(state.next_run_at(), Some(at("2026-04-27T13:00:00Z")));
        assert_eq!(
            state.last_run(),
            Some(&RunInfo {
                run_id: "run-2".into(),
                at: at("2026-04-20T13:00:00Z"),
                reach: 1300,
                channels: vec![Channel::Email],
                skipped: vec![],
                capped: 0,
                zone_fallbacks: 0,
            })
        );

        // The sender's report of that run lands on lastRun; another run's does not.
        let reported = state
            .decide(CampaignCommand::ReportRun {
                run_id: "run-2".into(),
                capped: 7,
                zone_fallbacks: 0,
            })
            .unwrap();
        assert_eq!(
            reported,
            vec![CampaignEvent::RunReported {
                run_id: "run-2".into(),
                capped: 7,
                zone_fallbacks: 0,
            }]
        );
        let mut with_report = state.clone();
        with_report.apply(reported[0].clone());
        assert_eq!(with_report.last_run().unwrap().capped, 7);
        for (run_id, capped) in [("run-1", 3), ("run-2", 7)] {
            let again = with_report.decide(CampaignCommand::ReportRun {
                run_id: run_id.into(),
                capped,
                zone_fallbacks: 0,
            });
            assert_eq!(again, Ok(vec![]), "{run_id}: stale or unchanged");
        }

        let mut deleted = state.clone();
        deleted.apply(CampaignEvent::SoftDeleted {});
        assert!(deleted.is_deleted());
        assert_eq!(deleted.next_run_at(), None);
        assert_eq!(deleted.status(), Running, "delete is separate from status");
    }

    #[test]
    fn a_snapshot_of_the_state_reads_back_unchanged() {
        let state = fold(one_of_each());
        let snapshot = serde_json::to_value(&state).unwrap();
        assert_eq!(serde_json::from_value::<Campaign>(snapshot).unwrap(), state);
    }

    #[test]
    fn an_action_is_refused_unless_the_campaign_is_in_a_status_it_starts_from() {
        for (status, action) in [
            (Paused, Action::Launch),
            (Running, Action::Launch),
            (Paused, Action::Pause),
            (Draft, Action::Pause),
            (Running, Action::Resume),
            (Draft, Action::Complete),
            (Completed, Action::Complete),
        ] {
            campaign()
                .given(history(status))
                .when(CampaignCommand::Act { action, ctx: ctx() })
                .then_expect_error(CampaignError::ActionRefused {
                    action,
                    from: status,
                });
        }
    }

    #[test]
    fn resume_moves_a_paused_campaign_back_to_running_and_launch_launches_a_draft() {
        campaign()
            .given(history(Paused))
            .when(CampaignCommand::Act {
                action: Action::Resume,
                ctx: ctx(),
            })
            .then_expect_events(vec![CampaignEvent::Resumed { next_run_at: None }]);
        campaign()
            .given(vec![created(seed_with_schedule(None))])
            .when(CampaignCommand::Act {
                action: Action::Launch,
                ctx: ctx(),
            })
            .then_expect_events(vec![launched_now()]);
    }

    #[test]
    fn a_launch_action_that_no_channel_can_take_is_refused_with_its_blockers_and_writes_nothing() {
        let blockers = vec![Blocker::new(Blocker::TEMPLATE_MISSING)];
        campaign()
            .given(history(Draft))
            .when(CampaignCommand::Act {
                action: Action::Launch,
                ctx: ctx().with_blockers(blockers.clone()),
            })
            .then_expect_error(CampaignError::CannotLaunch { blockers });
        let none_connected: Vec<Blocker> = SEED_CHANNELS
            .iter()
            .map(|c| Blocker::channel_not_connected(*c))
            .collect();
        campaign()
            .given(history(Paused))
            .when(CampaignCommand::Act {
                action: Action::Resume,
                ctx: ctx().with_launchable(vec![]),
            })
            .then_expect_error(CampaignError::CannotLaunch {
                blockers: none_connected,
            });
    }

    #[test]
    fn a_campaign_whose_end_has_passed_cannot_be_launched_or_scheduled() {
        let after_end = || ctx_at("2026-05-16T00:00:00Z");
        campaign()
            .given(history(Draft))
            .when(CampaignCommand::Act {
                action: Action::Launch,
                ctx: after_end(),
            })
            .then_expect_error(CampaignError::Ended);
        campaign()
            .given(history(Draft))
            .when(CampaignCommand::ChangeStatus {
                to: Running,
                ctx: after_end(),
            })
            .then_expect_error(invalid(
                "schedule.endAt",
                "has passed; a campaign whose end has passed cannot be launched or scheduled",
            ));
        campaign()
            .given(history(Draft))
            .when(CampaignCommand::ChangeStatus {
                to: Scheduled,
                ctx: after_end(),
            })
            .then_expect_error(CampaignError::Invalid(vec![
                FieldError::new(
                    "schedule.startAt",
                    "must be in the future; to launch now, set status running",
                ),
                FieldError::new(
                    "schedule.endAt",
                    "has passed; a campaign whose end has passed cannot be launched or scheduled",
                ),
            ]));
    }
}
