//! Herald's domain: the campaign aggregate, its commands and events, and the value types they
//! are made of. No IO: time and ids arrive inside commands, so everything here is deterministic.
//!
//! - [`spec`]: the campaign body (types, channels, statuses, schedule) and its validation.
//! - [`drip`]: drip and milestone steps, enrollment and triggers, and each contact's progression.
//! - [`schedule`]: cron patterns in an IANA zone, with the daylight-saving policy.
//! - [`campaign`]: the `Campaign` aggregate (cqrs-es), its lifecycle rules, commands and events.
//! - [`template`]: message templates per channel, their save-time checks and rendering.
//! - [`query`]: DynamicQuery, the MongoDB-style audience filter over contacts, and its limits.
//! - [`engagement`]: `EngagementRecorded` data, machine/human classification, exact money.
//! - [`tracking`]: signed tracking tokens and the email rewriting (open pixel, click links).
//! - [`settings`]: an org's default time zone, frequency caps and quiet hours.
//! - [`suppression`]: the addresses an org must not message, and the events that change them.
//! - [`ids`]: the id syntax shared by every resource.
//! - [`error`]: field errors and the reasons a command is refused.

pub mod audience;
pub mod campaign;
pub mod connection;
pub mod contact;
pub mod document;
pub mod drip;
pub mod engagement;
pub mod error;
pub mod ids;
pub mod query;
pub mod schedule;
pub mod settings;
pub mod spec;
pub mod suppression;
pub mod template;
pub mod tracking;

#[cfg(test)]
mod fuzz;

pub use campaign::{Blocker, Campaign, CampaignCommand, CampaignEvent, LaunchContext, RunInfo};
pub use error::{CampaignError, FieldError};
pub use ids::is_valid_id;
pub use query::{parse_filter, parse_where, Filter};
pub use schedule::CronSchedule;
pub use spec::{
    parse_campaign, CampaignInput, CampaignSpec, CampaignType, Channel, Recurring, Schedule, Status,
};
pub use template::{
    parse_template, CompiledTemplate, RenderContext, RenderError, RenderedMessage, TemplateContent,
    TemplateInput,
};
