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

/// A campaign type id (`GET /crm/marketing/campaign-types`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum CampaignType {
    OneShot,
    Drip,
    Recurring,
    Milestone,
    MultiChannel,
}

/// A platform (channel) id (`GET /crm/marketing/platforms`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Platform {
    Email,
    Sms,
    Facebook,
    Instagram,
    Linkedin,
    X,
    GoogleAds,
    MetaAds,
}

/// A campaign's status.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CampaignStatus {
    Draft,
    Scheduled,
    Running,
    Paused,
    Completed,
}

/// When a campaign runs: RFC 3339 times, `endAt` after `startAt`, an IANA zone (UTC when absent).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Schedule {
    pub start_at: Option<String>,
    pub end_at: Option<String>,
    pub timezone: Option<String>,
    /// A one-shot reaches each contact at `startAt`'s wall-clock time in their own zone
    /// (`docs/consent.md`).
    pub local_time: Option<bool>,
}

/// A recurring campaign's occurrences.
#[derive(Serialize, ToSchema)]
pub struct Recurring {
    /// Five fields, or six with leading seconds (`0 9 * * 1`).
    pub cron: String,
}

/// What a client sends to create or replace a campaign (`api.md` section 2). Server-owned
/// fields sent back are ignored.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CampaignInput {
    /// On create only; else the server makes `camp-<uuidv7>`.
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
    pub id: Option<String>,
    /// 1 to 200 characters.
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    #[serde(rename = "type")]
    pub kind: CampaignType,
    /// Non-empty, no duplicates.
    #[schema(min_items = 1)]
    pub channels: Vec<Platform>,
    /// A saved audience; not with `audience`.
    pub audience_id: Option<String>,
    /// An inline `{"type": "dynamic", "filter": {...}}` audience (`docs/dynamic-query.md`).
    pub audience: Option<serde_json::Value>,
    pub template_id: Option<String>,
    pub schedule: Option<Schedule>,
    pub recurring: Option<Recurring>,
    /// Platform id to the profile that posts.
    pub social_profiles: Option<std::collections::BTreeMap<String, String>>,
    /// Any object, kept as given.
    pub channel_settings: Option<serde_json::Value>,
    /// A drip or milestone campaign's steps (`api.md` section 11).
    pub steps: Option<Vec<serde_json::Value>>,
    pub exit: Option<serde_json::Value>,
    pub enrollment: Option<serde_json::Value>,
    pub trigger: Option<serde_json::Value>,
    /// The org's frequency caps neither hold back nor count this campaign's sends.
    pub ignore_frequency_caps: Option<bool>,
    /// A requested transition.
    pub status: Option<CampaignStatus>,
}

/// Why a campaign, or one of its channels, cannot launch.
#[derive(Serialize, ToSchema)]
pub struct Blocker {
    /// `channel_not_connected`, `template_missing`, `audience_missing`, …
    pub code: String,
    /// The channel it blocks; absent when it blocks the whole campaign.
    pub channel: Option<String>,
}

/// The latest run of a campaign.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastRun {
    pub run_id: String,
    pub at: String,
    pub reach: u64,
    pub channels: Vec<String>,
    pub skipped: Vec<Blocker>,
    /// Sends the org's frequency caps held back (set once the run is sent).
    pub capped: u64,
    /// Contacts a local-time run sent in a fallback zone, having none of their own.
    pub zone_fallbacks: u64,
}

/// A campaign as the API answers it: its spec and the server-owned fields.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Campaign {
    pub id: String,
    pub org_id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: CampaignType,
    pub channels: Vec<Platform>,
    pub audience_id: Option<String>,
    pub audience: Option<serde_json::Value>,
    pub template_id: Option<String>,
    pub schedule: Option<Schedule>,
    pub recurring: Option<Recurring>,
    pub social_profiles: Option<std::collections::BTreeMap<String, String>>,
    pub channel_settings: Option<serde_json::Value>,
    pub steps: Option<Vec<serde_json::Value>>,
    pub exit: Option<serde_json::Value>,
    pub enrollment: Option<serde_json::Value>,
    pub trigger: Option<serde_json::Value>,
    pub ignore_frequency_caps: Option<bool>,
    pub status: CampaignStatus,
    /// `active`, or `deleted` (soft-deleted: its analytics stay).
    #[schema(pattern = "^(active|deleted)$")]
    pub state: String,
    /// Grows with every change; the `ETag` is this number in quotes.
    pub version: i64,
    /// The next launch or occurrence.
    #[schema(required = true)]
    pub next_run_at: Option<String>,
    pub blockers: Vec<Blocker>,
    #[schema(required = true)]
    pub last_run: Option<LastRun>,
    #[schema(required = true)]
    pub launched_at: Option<String>,
    #[schema(required = true)]
    pub completed_at: Option<String>,
    #[schema(required = true)]
    pub deleted_at: Option<String>,
    pub created_at: String,
    pub created_by: String,
    pub updated_at: String,
    pub updated_by: String,
}

/// A page of campaigns.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CampaignList {
    pub items: Vec<Campaign>,
    /// The next page's `cursor`; `null` on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// What a client sends to create or replace a contact. All optional.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContactInput {
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
    pub id: Option<String>,
    /// Unique per org, case-insensitively.
    pub email: Option<String>,
    /// E.164 (`+14155550100`).
    pub phone: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub tags: Option<Vec<String>>,
    /// Any object: custom fields.
    pub attributes: Option<serde_json::Map<String, serde_json::Value>>,
    /// An IANA zone.
    pub timezone: Option<String>,
    /// Channel to `true` to opt out (adds a suppression).
    pub unsubscribed: Option<std::collections::BTreeMap<String, bool>>,
}

/// A contact as the API answers it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Contact {
    pub id: String,
    pub org_id: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub tags: Vec<String>,
    pub attributes: serde_json::Map<String, serde_json::Value>,
    pub timezone: Option<String>,
    /// Derived from the suppression list: `{"email": true}` when the email is listed.
    pub unsubscribed: std::collections::BTreeMap<String, bool>,
    pub version: i64,
    pub created_at: String,
    pub updated_at: String,
}

/// A page of contacts, in creation order.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContactList {
    pub items: Vec<Contact>,
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// Metrics of a campaign, a channel, a day or a range (`docs/analytics.md`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Metrics {
    pub sends: u64,
    pub failures: u64,
    pub deliveries: u64,
    pub opens: u64,
    pub clicks: u64,
    pub unique_opens: u64,
    pub unique_clicks: u64,
    pub machine_opens: u64,
    pub machine_clicks: u64,
    pub replies: u64,
    pub bounces: u64,
    pub complaints: u64,
    pub unsubscribes: u64,
    pub conversions: u64,
    pub impressions: u64,
    pub interactions: u64,
    /// Sends the org's frequency caps held back (`docs/consent.md`).
    pub capped: u64,
    /// Money, summed exactly.
    pub revenue: f64,
    /// 0 to 1.
    pub open_rate: f64,
    /// 0 to 1.
    pub click_rate: f64,
}

/// The range of an analytics read, as dates; either end may be open.
#[derive(Serialize, ToSchema)]
pub struct DateRange {
    #[schema(required = true)]
    pub from: Option<String>,
    #[schema(required = true)]
    pub to: Option<String>,
}

/// `GET /crm/marketing/campaigns/{id}/analytics`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CampaignAnalytics {
    pub campaign_id: String,
    /// `null` for all-time numbers.
    #[schema(required = true)]
    pub range: Option<DateRange>,
    pub totals: Metrics,
    /// Per channel id.
    pub channels: std::collections::BTreeMap<String, Metrics>,
    /// When the projection last changed these numbers; `null` when there are none.
    #[schema(required = true)]
    pub updated_at: Option<String>,
}

/// A page of anything the schema of its items does not pin down further.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ItemList {
    pub items: Vec<serde_json::Map<String, serde_json::Value>>,
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// What a client sends to create or replace an audience.
#[derive(Serialize, ToSchema)]
pub struct AudienceInput {
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
    pub id: Option<String>,
    /// 1 to 200 characters.
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// Always `dynamic`; may be omitted.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// A DynamicQuery: `{"datatype": "contact", "where": {...}}` (`docs/dynamic-query.md`).
    pub filter: serde_json::Map<String, serde_json::Value>,
}

/// An audience as the API answers it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Audience {
    pub id: String,
    pub org_id: String,
    pub name: String,
    pub filter: serde_json::Map<String, serde_json::Value>,
    pub version: i64,
    pub created_at: String,
    pub created_by: String,
    pub updated_at: String,
    pub updated_by: String,
}

/// A page of audiences.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AudienceList {
    pub items: Vec<Audience>,
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// An email template part.
#[derive(Serialize, ToSchema)]
pub struct EmailContent {
    pub subject: String,
    pub html: Option<String>,
    pub text: Option<String>,
}

/// An SMS template part.
#[derive(Serialize, ToSchema)]
pub struct SmsContent {
    pub body: String,
}

/// A social post template part.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SocialContent {
    pub text: String,
    pub link: Option<String>,
    pub image_url: Option<String>,
}

/// What a client sends to create or replace a template: at least one of `email`, `sms`,
/// `social`; every string a MiniJinja template (`docs/templates.md`).
#[derive(Serialize, ToSchema)]
pub struct TemplateInput {
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
    pub id: Option<String>,
    pub name: String,
    pub email: Option<EmailContent>,
    pub sms: Option<SmsContent>,
    pub social: Option<SocialContent>,
}

/// A template as the API answers it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Template {
    pub id: String,
    pub org_id: String,
    pub name: String,
    pub email: Option<EmailContent>,
    pub sms: Option<SmsContent>,
    pub social: Option<SocialContent>,
    pub version: i64,
    pub created_at: String,
    pub created_by: String,
    pub updated_at: String,
    pub updated_by: String,
}

/// A page of templates.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateList {
    pub items: Vec<Template>,
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// What a client sends to create a connection (`api.md` section 4). Credentials are
/// write-only.
#[derive(Serialize, ToSchema)]
pub struct ConnectionInput {
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
    pub id: Option<String>,
    pub platform: Platform,
    /// `sandbox`, `sendgrid`, `mailgun`, `smtp`, `twilio`, `meta-graph`, `linkedin`, `x`,
    /// `google-ads`, `meta-ads`.
    pub vendor: String,
    pub label: Option<String>,
    pub credentials: Option<serde_json::Map<String, serde_json::Value>>,
    pub settings: Option<serde_json::Map<String, serde_json::Value>>,
    pub profiles: Option<Vec<serde_json::Map<String, serde_json::Value>>>,
}

/// A connection as the API answers it: never its credentials.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Connection {
    pub id: String,
    pub org_id: String,
    pub platform: Platform,
    pub vendor: String,
    pub label: Option<String>,
    pub settings: Option<serde_json::Map<String, serde_json::Value>>,
    pub profiles: Option<Vec<serde_json::Map<String, serde_json::Value>>>,
    pub version: i64,
    pub created_at: String,
    pub created_by: String,
    pub updated_at: String,
    pub updated_by: String,
}

/// A page of connections.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionList {
    pub items: Vec<Connection>,
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// An entry of the suppression list.
#[derive(Serialize, ToSchema)]
pub struct Suppression {
    /// `email` or `sms`.
    pub channel: String,
    /// Normalised.
    pub address: String,
    pub reason: String,
    pub source: String,
    pub at: String,
}

/// What a client sends to suppress an address.
#[derive(Serialize, ToSchema)]
pub struct SuppressionInput {
    /// `email` or `sms`.
    pub channel: String,
    pub address: String,
    pub reason: Option<String>,
}

/// A page of the suppression list.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SuppressionList {
    pub items: Vec<Suppression>,
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// One stored event (`docs/events.md`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub event_id: String,
    pub stream_id: String,
    pub revision: i64,
    pub position: i64,
    pub event_type: String,
    pub event_version: String,
    pub data: serde_json::Value,
    pub metadata: serde_json::Map<String, serde_json::Value>,
    pub created: String,
}

/// A page of events.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventList {
    pub items: Vec<Event>,
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// `POST /crm/marketing/campaigns/aggregated-metrics`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AggregateRequest {
    /// Up to 1 000 campaign ids.
    pub campaign_ids: Vec<String>,
    /// Default: the last 30 days ending today (UTC).
    pub range: Option<StartEnd>,
}

/// A range as `start` and `end` dates (`YYYY-MM-DD` or RFC 3339).
#[derive(Serialize, ToSchema)]
pub struct StartEnd {
    pub start: String,
    pub end: String,
}

/// The answer of `aggregated-metrics`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AggregateMetrics {
    pub range: StartEnd,
    pub totals: Metrics,
    pub channels: std::collections::BTreeMap<String, Metrics>,
    pub campaigns: std::collections::BTreeMap<String, Metrics>,
    /// One entry per day of the range: `date` and the metrics.
    pub series: Vec<serde_json::Map<String, serde_json::Value>>,
    /// Requested ids that are not campaigns of this org.
    pub missing: Vec<String>,
    #[schema(required = true)]
    pub updated_at: Option<String>,
}

/// The org's marketing settings (`api.md` section 12).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    /// An IANA zone; default `UTC`.
    pub default_timezone: String,
    pub frequency_caps: Vec<serde_json::Map<String, serde_json::Value>>,
    pub quiet_hours: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A count of matching contacts and the ten oldest of them.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Reach {
    /// `GET …/reach` only.
    pub audience_id: Option<String>,
    pub count: u64,
    pub sample: Vec<Contact>,
}

/// What `POST /crm/contacts/import` did.
#[derive(Serialize, ToSchema)]
pub struct ImportResult {
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    /// One per bad row, with its 1-based line.
    pub errors: Vec<serde_json::Map<String, serde_json::Value>>,
}

/// A platform, its vendors and this org's connections to it.
#[derive(Serialize, ToSchema)]
pub struct PlatformInfo {
    pub id: Platform,
    pub name: String,
    /// `email`, `sms`, `social` or `ads`.
    pub category: String,
    pub vendors: Vec<String>,
    pub connected: bool,
    /// `{id, vendor, label}` of each connection.
    pub connections: Vec<serde_json::Map<String, serde_json::Value>>,
}

/// A campaign type.
#[derive(Serialize, ToSchema)]
pub struct CampaignTypeInfo {
    pub id: CampaignType,
    pub name: String,
    pub description: String,
}

/// A social account a connection posts as.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SocialProfile {
    pub id: serde_json::Value,
    pub platform: String,
    pub name: serde_json::Value,
    pub handle: serde_json::Value,
    pub connection_id: serde_json::Value,
}

/// The org purge job.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PurgeJob {
    pub job_id: String,
    pub status: String,
    pub requested_by: String,
    pub requested_at: String,
    #[schema(required = true)]
    pub finished_at: Option<String>,
    pub campaign_ids: Vec<String>,
    pub events_removed: u64,
    #[schema(required = true)]
    pub error: Option<String>,
}

/// `{"status": "ok"}` or `{"status": "ready"}`.
#[derive(Serialize, ToSchema)]
pub struct Status {
    pub status: String,
}

/// The dashboard's one-time sign-in code.
#[derive(Serialize, ToSchema)]
pub struct SignInRequest {
    pub code: String,
}

/// An admin token for the dashboard's org.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignInToken {
    pub token: String,
    pub org_id: String,
    pub expires_at: String,
}
