//! Campaign counts per org and status: the dashboard's active and scheduled tiles.

use crate::record::EventRecord;

/// What one campaign event means for the per-status counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusChange {
    /// The campaign now has this status (first time seen or moved).
    Status(&'static str),
    /// The campaign was soft-deleted and no longer counts.
    Deleted,
}

/// Maps a stored event to its effect on the counts, or `None` when it has none. The effect
/// follows from the event's type alone, so the data is not decoded.
pub fn status_change(record: &EventRecord) -> Option<StatusChange> {
    if !record.stream_id.starts_with("campaign-") {
        return None;
    }
    match record.event_type.as_str() {
        "Created" | "Unscheduled" => Some(StatusChange::Status("draft")),
        "Scheduled" => Some(StatusChange::Status("scheduled")),
        "Launched" | "Resumed" => Some(StatusChange::Status("running")),
        "Paused" => Some(StatusChange::Status("paused")),
        "Completed" => Some(StatusChange::Status("completed")),
        "SoftDeleted" => Some(StatusChange::Deleted),
        _ => None,
    }
}
