//! The domain's errors: field-level validation errors and the reasons a command is refused.

use serde::Serialize;

use crate::campaign::Blocker;
use crate::spec::{Action, Status};

/// One invalid field of a request, addressed by its path in the body (`schedule.endAt`,
/// `channels[1]`, `audience.filter.datatype`).
///
/// `message` completes the field name ("must be a string") and is safe to show to users.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    /// A field error at `field` saying `message`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.field, self.message)
    }
}

/// Why a campaign command was refused. Every message is safe to show to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CampaignError {
    /// The command's data breaks a validation rule (`422`).
    #[error("invalid campaign: {}", join(.0))]
    Invalid(Vec<FieldError>),
    /// The lifecycle does not allow this status change (`409`).
    #[error("cannot move a {from} campaign to {to}")]
    InvalidTransition { from: Status, to: Status },
    /// A lifecycle action asked of a campaign in a status it does not start from (`409`).
    #[error("cannot {action} a {from} campaign")]
    ActionRefused { action: Action, from: Status },
    /// A launch or resume asked for when no channel can go out (`409`); nothing changes.
    #[error("cannot launch on any channel: {}", describe(.blockers))]
    CannotLaunch { blockers: Vec<Blocker> },
    /// A launch asked for after the campaign's `schedule.endAt` (`409`).
    #[error("the campaign's schedule.endAt has passed; it cannot be launched")]
    Ended,
    /// The campaign was soft-deleted; nothing but reads is allowed (`409`).
    #[error("the campaign is deleted")]
    Deleted,
    /// A `PUT` that changes a running or paused campaign's existing steps (`409`): contacts are
    /// part way through them, so steps may only be added at the end.
    #[error("the campaign is {status}: its steps may only grow at the end; existing steps cannot change")]
    StepsLocked { status: Status },
    /// A campaign with this id already exists in the org (`409`).
    #[error("a campaign with this id already exists")]
    AlreadyExists,
    /// There is no campaign with this id (`404`).
    #[error("campaign not found")]
    NotFound,
}

impl CampaignError {
    /// A validation error on a single field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldError::new(field, message)])
    }

    /// The HTTP status this error maps to.
    pub fn status_code(&self) -> u16 {
        match self {
            Self::Invalid(_) => 422,
            Self::InvalidTransition { .. }
            | Self::ActionRefused { .. }
            | Self::CannotLaunch { .. }
            | Self::Ended
            | Self::Deleted
            | Self::StepsLocked { .. }
            | Self::AlreadyExists => 409,
            Self::NotFound => 404,
        }
    }
}

/// Blockers as a reader would say them: `email is not connected; the template is missing`.
fn describe(blockers: &[Blocker]) -> String {
    blockers
        .iter()
        .map(|b| match (b.code.as_str(), b.channel) {
            (Blocker::CHANNEL_NOT_CONNECTED, Some(channel)) => {
                format!("{channel} is not connected")
            }
            (Blocker::TEMPLATE_MISSING, _) => "the template is missing".to_string(),
            (Blocker::AUDIENCE_MISSING, _) => "the audience is missing".to_string(),
            (code, Some(channel)) => format!("{channel}: {code}"),
            (code, None) => code.to_string(),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn join(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_statuses_and_fields() {
        let err = CampaignError::InvalidTransition {
            from: Status::Completed,
            to: Status::Running,
        };
        assert_eq!(
            err.to_string(),
            "cannot move a completed campaign to running"
        );
        assert_eq!(err.status_code(), 409);

        let err = CampaignError::Invalid(vec![
            FieldError::new("name", "must be a string"),
            FieldError::new("schedule.endAt", "must be after schedule.startAt"),
        ]);
        assert_eq!(
            err.to_string(),
            "invalid campaign: name must be a string; schedule.endAt must be after schedule.startAt"
        );
        assert_eq!(err.status_code(), 422);
        assert_eq!(CampaignError::Deleted.status_code(), 409);
        assert_eq!(CampaignError::AlreadyExists.status_code(), 409);
        assert_eq!(CampaignError::NotFound.status_code(), 404);
    }
}
