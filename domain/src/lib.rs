//! Herald's domain: the campaign aggregate, its commands and events, and the value types they
//! are made of. No IO: time and ids arrive inside commands, so everything here is deterministic.
//!
//! - [`spec`]: the campaign body (types, channels, statuses, schedule) and its validation.
//! - [`schedule`]: cron patterns in an IANA zone, with the daylight-saving policy.
//! - [`campaign`]: the `Campaign` aggregate (cqrs-es), its lifecycle rules, commands and events.
//! - [`ids`]: the id syntax shared by every resource.
//! - [`error`]: field errors and the reasons a command is refused.

pub mod campaign;
pub mod error;
pub mod ids;
pub mod schedule;
pub mod spec;

pub use campaign::{Blocker, Campaign, CampaignCommand, CampaignEvent, LaunchContext, RunInfo};
pub use error::{CampaignError, FieldError};
pub use ids::is_valid_id;
pub use schedule::CronSchedule;
pub use spec::{
    parse_campaign, CampaignInput, CampaignSpec, CampaignType, Channel, Recurring, Schedule, Status,
};
