//! Types that only describe the API for the OpenAPI document (`openapi.rs`): query parameters
//! the handlers read through [`super::extract::Params`], and bodies the handlers build or read as
//! raw JSON because the domain validates them field by field. The API tests validate real
//! responses against these schemas, so they cannot quietly drift from what the server sends.
// Never constructed: they exist for their `ToSchema`/`IntoParams` derives.
#![allow(dead_code)]

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// An RFC 9457 problem: every error the API answers, as `application/problem+json`.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"type": "about:blank", "title": "Unprocessable Entity", "status": 422,
    "detail": "schedule.endAt: must be after schedule.startAt",
    "errors": [{"field": "schedule.endAt", "message": "must be after schedule.startAt"}]}))]
pub struct Problem {
    /// Always `about:blank`: the status code says what the problem is.
    #[serde(rename = "type")]
    pub kind: String,
    /// The status code's reason phrase.
    pub title: String,
    pub status: u16,
    /// What went wrong, for a person.
    pub detail: String,
    /// One entry per invalid field (a `422`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<ProblemField>>,
    /// A refused launch (`409`): what stands in its way.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blockers: Option<Vec<serde_json::Value>>,
}

/// One invalid field of a request body.
#[derive(Serialize, ToSchema)]
pub struct ProblemField {
    /// The field's path, such as `schedule.endAt` or `channels[0].connectionId`; empty for the
    /// body as a whole.
    pub field: String,
    pub message: String,
}

/// `?limit=&cursor=` of a resource list (`api.md` section 0).
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// Items per page, 1 to 500 (more is read as 500); default 50.
    #[param(minimum = 1)]
    pub limit: Option<i64>,
    /// The `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

/// `GET /crm/marketing/campaigns` filters and order.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CampaignFilter {
    /// Only campaigns in this state.
    #[param(inline, value_type = Option<String>, pattern = "^(draft|scheduled|running|paused|completed)$")]
    pub status: Option<String>,
    /// Only campaigns of this type (an id of `GET /crm/marketing/campaign-types`).
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Only campaigns with this channel (a platform id).
    pub channel: Option<String>,
    /// Only campaigns whose name contains this text.
    pub q: Option<String>,
    /// Include deleted campaigns.
    #[serde(rename = "includeDeleted")]
    pub include_deleted: Option<bool>,
    /// `createdAt`, `name` or `updatedAt`, with `-` for descending; default `-createdAt`.
    #[param(pattern = "^-?(createdAt|name|updatedAt)$")]
    pub sort: Option<String>,
}

/// A campaign's enrollments, by status.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EnrollmentFilter {
    #[param(pattern = "^(active|completed|exited)$")]
    pub status: Option<String>,
}

/// `?from=&to=` of an analytics read: dates (`YYYY-MM-DD`) or RFC 3339 timestamps, UTC days.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DayRange {
    /// First day; default: the campaign's first day with data.
    pub from: Option<String>,
    /// Last day; default: today.
    pub to: Option<String>,
}

/// The marketing dashboard's range: `days` back from `to`, or `from` to `to`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DashboardRange {
    /// How many days, ending with `to`; default 30. Not with `from`.
    #[param(minimum = 1)]
    pub days: Option<i64>,
    /// First day (`YYYY-MM-DD` or RFC 3339).
    pub from: Option<String>,
    /// Last day; default today (UTC).
    pub to: Option<String>,
}

/// The org's event log: by type, after a position.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventFilter {
    /// Only events of this type (`CampaignCreated`, …).
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Only events after this log position (as `cursor`).
    #[param(minimum = 0)]
    pub after: Option<i64>,
}

/// A contact's activities, by engagement type.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ActivityFilter {
    /// Comma-separated engagement types (`open,click`).
    #[serde(rename = "type")]
    pub kind: Option<String>,
}

/// `GET /crm/integrations/sandbox/messages` filters.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SandboxFilter {
    #[serde(rename = "campaignId")]
    pub campaign_id: Option<String>,
    pub channel: Option<String>,
    #[serde(rename = "contactId")]
    pub contact_id: Option<String>,
}

/// `GET /crm/suppressions` filter.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SuppressionFilter {
    /// Only this channel's entries.
    pub channel: Option<String>,
}

/// The `t` token of a tracking link.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TrackingToken {
    /// The signed token the link carries.
    pub t: Option<String>,
}

/// What `POST /crm/marketing/campaigns/{id}/{action}` does.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CampaignAction {
    Launch,
    Pause,
    Resume,
    Complete,
}
