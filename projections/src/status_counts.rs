//! Campaign counts per org and status: the dashboard's active and scheduled tiles.

use herald_domain::campaign::CampaignEvent;

use crate::record::EventRecord;

/// What one campaign event means for the per-status counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusChange {
    /// The campaign now has this status (first time seen or moved).
    Status(&'static str),
    /// The campaign was soft-deleted and no longer counts.
    Deleted,
}

/// Maps a stored event to its effect on the counts, or `None` when it has none.
pub fn status_change(record: &EventRecord) -> Option<StatusChange> {
    let event = CampaignEvent::from_stored(
        &record.event_type,
        &record.event_version,
        record.data.clone(),
    )
    .ok()?;
    match event {
        CampaignEvent::Created { .. } | CampaignEvent::Unscheduled { .. } => {
            Some(StatusChange::Status("draft"))
        }
        CampaignEvent::Scheduled { .. } => Some(StatusChange::Status("scheduled")),
        CampaignEvent::Launched { .. } | CampaignEvent::Resumed { .. } => {
            Some(StatusChange::Status("running"))
        }
        CampaignEvent::Paused { .. } => Some(StatusChange::Status("paused")),
        CampaignEvent::Completed { .. } => Some(StatusChange::Status("completed")),
        CampaignEvent::SoftDeleted { .. } => Some(StatusChange::Deleted),
        _ => None,
    }
}
