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
    pub blockers: Option<Vec<Blocker>>,
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
    /// An inline audience (`docs/dynamic-query.md`).
    pub audience: Option<InlineAudience>,
    pub template_id: Option<String>,
    pub schedule: Option<Schedule>,
    pub recurring: Option<Recurring>,
    /// Platform id to the profile that posts.
    pub social_profiles: Option<std::collections::BTreeMap<String, String>>,
    /// Per-channel extras: any object, kept as given.
    pub channel_settings: Option<serde_json::Map<String, serde_json::Value>>,
    /// A drip or milestone campaign's steps, 1 to 20 (`api.md` section 11).
    #[schema(min_items = 1, max_items = 20)]
    pub steps: Option<Vec<Step>>,
    pub exit: Option<Exit>,
    /// A drip's enrollment; default `launch`.
    pub enrollment: Option<Enrollment>,
    /// A milestone campaign's trigger.
    pub trigger: Option<Trigger>,
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
    pub audience: Option<InlineAudience>,
    pub template_id: Option<String>,
    pub schedule: Option<Schedule>,
    pub recurring: Option<Recurring>,
    pub social_profiles: Option<std::collections::BTreeMap<String, String>>,
    pub channel_settings: Option<serde_json::Map<String, serde_json::Value>>,
    pub steps: Option<Vec<Step>>,
    pub exit: Option<Exit>,
    pub enrollment: Option<Enrollment>,
    pub trigger: Option<Trigger>,
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
    pub filter: DynamicQuery,
}

/// An audience as the API answers it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Audience {
    pub id: String,
    pub org_id: String,
    pub name: String,
    pub filter: DynamicQuery,
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
    pub profiles: Option<Vec<Profile>>,
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
    pub profiles: Option<Vec<Profile>>,
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
    pub metadata: EventMetadata,
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
    /// One entry per day of the range.
    pub series: Vec<DayMetrics>,
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
    pub frequency_caps: Vec<FrequencyCap>,
    /// `null` (or absent) for none.
    pub quiet_hours: Option<QuietHours>,
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
    pub errors: Vec<ImportError>,
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
    pub connections: Vec<ConnectionSummary>,
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
    pub id: String,
    pub platform: String,
    pub name: String,
    #[schema(required = true)]
    pub handle: Option<String>,
    pub connection_id: String,
}

/// A contact's erasure job.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErasureJob {
    pub job_id: String,
    /// `pending`, `running`, `done` or `failed`.
    pub status: String,
    pub contact_id: String,
    pub requested_at: String,
    /// When the job ended (`null` until then).
    #[schema(required = true)]
    pub finished_at: Option<String>,
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

/// A DynamicQuery (`docs/dynamic-query.md`).
#[derive(Serialize, ToSchema)]
pub struct DynamicQuery {
    /// Always `contact`; may be omitted.
    #[schema(pattern = "^contact$")]
    pub datatype: Option<String>,
    /// MongoDB query semantics over the contact document (`{"attributes.plan": "pro"}`).
    #[serde(rename = "where")]
    pub filter: serde_json::Map<String, serde_json::Value>,
}

/// A campaign's inline audience.
#[derive(Serialize, ToSchema)]
pub struct InlineAudience {
    /// Always `dynamic`; may be omitted.
    #[serde(rename = "type")]
    #[schema(pattern = "^dynamic$")]
    pub kind: Option<String>,
    pub filter: DynamicQuery,
}

/// A step of a drip or milestone campaign (`api.md` section 11).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    /// Unique in the campaign; the `stepId` of its tracking links.
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
    pub id: String,
    /// Default: the campaign's.
    pub template_id: Option<String>,
    /// A non-empty subset of the campaign's; default all of them.
    pub channels: Option<Vec<Platform>>,
    /// ISO 8601 duration `PnDTnHnMnS` (no years or months), counted from enrollment for the
    /// first step and from the previous step's due time for the others.
    pub delay: String,
    /// `HH:MM`: wait for the first such local time at or after the delay ran out.
    pub at: Option<String>,
    pub when: Option<When>,
}

/// When a step is sent; false skips it for the contact. Exactly one of the fields.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct When {
    /// An earlier step's id.
    pub opened: Option<String>,
    pub not_opened: Option<String>,
    pub clicked: Option<String>,
    pub not_clicked: Option<String>,
    /// A DynamicQuery `where`, evaluated on the contact when the step is due.
    pub filter: Option<serde_json::Map<String, serde_json::Value>>,
}

/// What ends a contact's enrollment.
#[derive(Serialize, ToSchema)]
pub struct Exit {
    pub on: Vec<ExitOn>,
}

/// An engagement with this campaign that makes a contact leave it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExitOn {
    Conversion,
    Reply,
    Click,
}

/// How contacts enter a drip: a mode, or an engagement on another campaign.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum Enrollment {
    Mode(EnrollmentMode),
    Event(EnrollmentEvent),
}

/// `launch`: the audience at launch; `continuous`: also whoever comes to match it later.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EnrollmentMode {
    Launch,
    Continuous,
}

/// A contact enters when this engagement is recorded for them on that campaign.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnrollmentEvent {
    #[schema(pattern = "^(click|open|conversion|reply)$")]
    pub event: String,
    pub campaign_id: String,
}

/// A milestone campaign's trigger: a date field of the contact.
#[derive(Serialize, ToSchema)]
pub struct Trigger {
    /// A dot path holding an RFC 3339 date or timestamp (`attributes.renewalAt`).
    pub field: String,
    /// An ISO 8601 duration, possibly negative (`-P7D`).
    pub offset: Option<String>,
    #[schema(pattern = "^(none|yearly)$")]
    pub repeat: Option<String>,
    /// `HH:MM` for a date-only field; default `09:00`.
    pub at: Option<String>,
}

/// A social account of a connection.
#[derive(Serialize, ToSchema)]
pub struct Profile {
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
    pub id: String,
    pub name: Option<String>,
    pub handle: Option<String>,
}

/// A connection as the platform list shows it.
#[derive(Serialize, ToSchema)]
pub struct ConnectionSummary {
    pub id: String,
    pub vendor: String,
    #[schema(required = true)]
    pub label: Option<String>,
}

/// Who and what caused an event.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventMetadata {
    /// The token's `sub`, or `system:…`/`webhook:…` for the server's own work.
    pub actor: String,
    pub org_id: String,
    pub request_id: String,
    pub correlation_id: String,
    pub causation_id: String,
}

/// One day's metrics.
#[derive(Serialize, ToSchema)]
pub struct DayMetrics {
    /// `YYYY-MM-DD`, UTC.
    pub date: String,
    #[serde(flatten)]
    pub metrics: Metrics,
}

/// A frequency cap: at most `max` marketing sends per contact per local day or ISO week.
#[derive(Serialize, ToSchema)]
pub struct FrequencyCap {
    /// `email`, `sms` or `*` (every channel).
    #[schema(pattern = "^(email|sms|\\*)$")]
    pub channel: String,
    #[schema(minimum = 1, maximum = 4294967295_u64)]
    pub max: u64,
    #[schema(pattern = "^(day|week)$")]
    pub per: String,
}

/// Hours in which sends wait, in the contact's local time; the window may wrap midnight.
#[derive(Serialize, ToSchema)]
pub struct QuietHours {
    /// `HH:MM`.
    #[schema(pattern = "^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    pub start: String,
    /// `HH:MM`, not equal to `start`.
    #[schema(pattern = "^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    pub end: String,
    /// `email` and/or `sms`.
    #[schema(min_items = 1)]
    pub channels: Vec<String>,
}

/// A bad row of an import.
#[derive(Serialize, ToSchema)]
pub struct ImportError {
    /// 1-based.
    pub line: u64,
    pub message: String,
}

/// One engagement the client reports (`api.md` section 6).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EngagementInput {
    #[serde(rename = "type")]
    #[schema(
        pattern = "^(conversion|revenue|reply|impression|interaction|delivery|bounce|complaint)$"
    )]
    pub kind: String,
    pub channel: Platform,
    pub contact_id: Option<String>,
    /// The run it belongs to (`lastRun.runId`).
    pub run_id: Option<String>,
    /// Money for `conversion`/`revenue` (with `currency`), a count for `impression` and
    /// `interaction`.
    pub value: Option<Amount>,
    /// ISO 4217 (`EUR`).
    pub currency: Option<String>,
    /// RFC 3339; default now; at most a day ahead.
    pub occurred_at: Option<String>,
    /// Makes the item idempotent per campaign: 1 to 256 characters.
    #[schema(min_length = 1, max_length = 256)]
    pub external_id: Option<String>,
}

/// A number, or a decimal as text (`"19.99"`).
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum Amount {
    Number(f64),
    Text(String),
}

/// What `POST …/engagements` recorded.
#[derive(Serialize, ToSchema)]
pub struct EngagementsRecorded {
    pub recorded: u64,
    pub duplicates: u64,
    /// One per item of the request, in order.
    pub items: Vec<EngagementOutcome>,
}

/// What became of one reported engagement.
#[derive(Serialize, ToSchema)]
pub struct EngagementOutcome {
    pub index: u64,
    /// `recorded`, or `duplicate` (its `externalId` was recorded before).
    #[schema(pattern = "^(recorded|duplicate)$")]
    pub status: String,
    /// The event's log position (`recorded` only).
    pub position: Option<i64>,
}

/// `POST …/preview`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PreviewRequest {
    pub contact_id: String,
}

/// A campaign's messages for one contact.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CampaignPreview {
    pub campaign_id: String,
    pub contact_id: String,
    /// The campaign's template, when it has one.
    pub template_id: Option<String>,
    /// One per channel, rendered with the campaign's template.
    pub messages: Option<Vec<PreviewMessage>>,
    /// A drip or milestone campaign's steps.
    pub steps: Option<Vec<StepPreview>>,
}

/// One step of a preview.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepPreview {
    pub id: String,
    pub template_id: Option<String>,
    pub messages: Option<Vec<PreviewMessage>>,
    /// Why the step cannot be rendered.
    pub error: Option<String>,
}

/// One channel's rendered message (or why there is none).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PreviewMessage {
    pub channel: Platform,
    /// The address, number or social profile it goes to; `null` when the contact has none.
    pub to: Option<String>,
    pub subject: Option<String>,
    pub html: Option<String>,
    pub text: Option<String>,
    pub body: Option<String>,
    pub link: Option<String>,
    pub image_url: Option<String>,
    /// `List-Unsubscribe` and the like.
    pub headers: Option<std::collections::BTreeMap<String, String>>,
    /// Email and SMS only.
    pub tracking: Option<TrackingUrls>,
    /// The contact's address on this channel is suppressed (email and SMS).
    pub unsubscribed: Option<bool>,
    /// Why this channel has no message for the contact.
    pub error: Option<String>,
}

/// The tracking links of a message.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrackingUrls {
    #[schema(required = true)]
    pub open: Option<String>,
    pub clicks: Vec<String>,
    #[schema(required = true)]
    pub unsubscribe: Option<String>,
    /// An SMS's short links and where each leads.
    pub short_links: Option<Vec<ShortLink>>,
}

/// A short link of an SMS.
#[derive(Serialize, ToSchema)]
pub struct ShortLink {
    pub url: String,
    pub target: String,
}

/// `POST …/test-send`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TestSendRequest {
    #[schema(pattern = "^(email|sms)$")]
    pub channel: String,
    /// An email address, or an E.164 number.
    pub to: String,
    /// Render for this contact (with `to` as its address); default a stand-in contact.
    pub contact_id: Option<String>,
}

/// The `[Test]` message that was sent.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TestSent {
    pub channel: Platform,
    pub to: String,
    pub subject: Option<String>,
    pub html: Option<String>,
    pub text: Option<String>,
    pub body: Option<String>,
    pub headers: Option<std::collections::BTreeMap<String, String>>,
    pub tracking: Option<TrackingUrls>,
    pub connection_id: String,
    /// Sent through a `sandbox` connection (see the sandbox outbox).
    pub sandbox: bool,
    #[schema(required = true)]
    pub provider_message_id: Option<String>,
    /// The `TestSent` event's log position.
    pub event_position: i64,
}

/// `POST /crm/audiences/preview`.
#[derive(Serialize, ToSchema)]
pub struct AudiencePreviewRequest {
    pub filter: DynamicQuery,
}

/// `POST /crm/marketing/templates/{id}/render`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RenderRequest {
    pub contact_id: String,
    /// Gives `{{ campaign.* }}` their values.
    pub campaign_id: Option<String>,
}

/// A template rendered for a contact.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RenderedTemplate {
    pub template_id: String,
    pub contact_id: String,
    pub rendered: Rendered,
}

/// The parts the template has, rendered.
#[derive(Serialize, ToSchema)]
pub struct Rendered {
    pub email: Option<RenderedEmail>,
    pub sms: Option<SmsContent>,
    pub social: Option<SocialContent>,
}

/// A rendered email.
#[derive(Serialize, ToSchema)]
pub struct RenderedEmail {
    pub subject: String,
    pub html: Option<String>,
    pub text: Option<String>,
}

/// What a vendor callback recorded.
#[derive(Serialize, ToSchema)]
pub struct WebhookResult {
    pub recorded: u64,
    /// Events recorded before (vendors retry).
    pub duplicates: u64,
    /// Events Herald does not record, or whose message it does not know.
    pub ignored: u64,
}

/// A page of a drip or milestone campaign's enrollments.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnrollmentList {
    pub items: Vec<EnrollmentItem>,
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// A contact's enrollment.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnrollmentItem {
    pub contact_id: String,
    pub enrolled_at: String,
    #[schema(pattern = "^(active|completed|exited)$")]
    pub status: String,
    #[schema(required = true)]
    pub exit_reason: Option<String>,
    #[schema(required = true)]
    pub next_step_id: Option<String>,
    #[schema(required = true)]
    pub next_step_at: Option<String>,
    pub steps: Vec<EnrollmentStep>,
    /// A milestone enrollment's date.
    pub milestone: Option<String>,
}

/// A step of an enrollment.
#[derive(Serialize, ToSchema)]
pub struct EnrollmentStep {
    pub id: String,
    #[schema(pattern = "^(sent|skipped|pending)$")]
    pub status: String,
    /// When it was or is due.
    #[schema(required = true)]
    pub at: Option<String>,
}

/// A page of a contact's activities, newest first.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActivityList {
    pub items: Vec<Activity>,
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// A send or an engagement of a contact.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Activity {
    /// `send`, or an engagement type (`open`, `click`, `conversion`, …).
    #[serde(rename = "type")]
    pub kind: String,
    pub campaign_id: String,
    pub channel: String,
    pub at: String,
    pub run_id: Option<String>,
    /// A click's link.
    pub link: Option<String>,
    /// Money, exact to the cent (a number; text if it has more digits than a number keeps).
    pub value: Option<Amount>,
    pub currency: Option<String>,
    /// An impression's or interaction's count.
    pub count: Option<u64>,
    /// A bounce's or drop's reason.
    pub reason: Option<String>,
    pub external_id: Option<String>,
    /// Where it came from: `tracking`, `api`, a vendor.
    pub source: Option<String>,
    /// An open's or click's `human` or `machine`.
    pub classification: Option<String>,
    /// A send: whether the vendor reported it delivered.
    pub delivered: Option<bool>,
}

/// A page of the sandbox outbox.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SandboxMessageList {
    pub items: Vec<SandboxMessage>,
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// A message a sandbox connection would have sent.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SandboxMessage {
    pub id: String,
    pub campaign_id: String,
    pub run_id: String,
    pub channel: Platform,
    #[schema(required = true)]
    pub contact_id: Option<String>,
    pub to: String,
    #[schema(required = true)]
    pub subject: Option<String>,
    #[schema(required = true)]
    pub html: Option<String>,
    #[schema(required = true)]
    pub text: Option<String>,
    #[schema(required = true)]
    pub body: Option<String>,
    pub headers: std::collections::BTreeMap<String, String>,
    pub tracking_urls: TrackingUrls,
    pub sent_at: String,
}

/// The marketing dashboard (`api.md` section 7).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Dashboard {
    pub range: DashboardRangeOut,
    pub tiles: Tiles,
    pub channels: std::collections::BTreeMap<String, Metrics>,
    pub series: Vec<DayMetrics>,
    /// Most revenue first, then most human clicks.
    pub top_campaigns: Vec<TopCampaign>,
    #[schema(required = true)]
    pub updated_at: Option<String>,
}

/// The dashboard's days.
#[derive(Serialize, ToSchema)]
pub struct DashboardRangeOut {
    pub from: String,
    pub to: String,
    pub days: u64,
}

/// The dashboard's tiles: the range's totals and the campaigns by status now.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Tiles {
    pub active_campaigns: u64,
    pub scheduled_campaigns: u64,
    #[serde(flatten)]
    pub metrics: Metrics,
}

/// A campaign of the dashboard's ranking.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TopCampaign {
    pub campaign_id: String,
    pub name: String,
    pub status: String,
    pub deleted: bool,
    #[serde(flatten)]
    pub metrics: Metrics,
}

/// `GET /crm/marketing/health` (`api.md` section 8).
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `degraded` when no scheduler heartbeat is fresh while workers run, or a channel's
    /// last 20 sends all failed.
    #[schema(pattern = "^(ok|degraded)$")]
    pub status: String,
    pub scheduler: SchedulerHealth,
    pub queue: Queue,
    /// Per channel.
    pub channels: std::collections::BTreeMap<String, ChannelHealth>,
    /// Per projection (and the scheduler's follower).
    pub projections: std::collections::BTreeMap<String, ProjectionHealth>,
}

/// The scheduler processes.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SchedulerHealth {
    /// The newest heartbeat of any process.
    #[schema(required = true)]
    pub heartbeat_at: Option<String>,
    /// Send slots of the processes with a fresh heartbeat.
    pub workers: u64,
    /// Processes with a fresh heartbeat.
    pub nodes: u64,
    pub live_nodes: Vec<Node>,
}

/// A process that runs workers.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    pub node_id: String,
    pub started_at: String,
    pub heartbeat_at: String,
    pub workers: u64,
    /// The org's jobs it holds now.
    pub jobs: Vec<HeldJob>,
}

/// A job a process holds.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeldJob {
    pub id: String,
    pub kind: String,
    pub campaign_id: String,
    #[schema(required = true)]
    pub run_id: Option<String>,
    #[schema(required = true)]
    pub lease_until: Option<String>,
    pub lease_generation: i64,
}

/// The org's jobs by state.
#[derive(Serialize, ToSchema)]
pub struct Queue {
    /// Scheduled and running jobs, and pending drip steps.
    pub depth: u64,
    pub scheduled: u64,
    pub running: u64,
    pub failed: u64,
    /// Pending drip and milestone steps.
    pub steps: u64,
}

/// A channel's latest send outcomes.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChannelHealth {
    #[schema(required = true)]
    pub last_success_at: Option<String>,
    #[schema(required = true)]
    pub last_failure_at: Option<String>,
    pub consecutive_failures: u64,
    /// 20 or more failures in a row.
    pub failing: bool,
}

/// How far a projection has read the log.
#[derive(Serialize, ToSchema)]
pub struct ProjectionHealth {
    pub position: i64,
    /// Events it has yet to read.
    pub lag: i64,
    /// `inline` for the campaign view, which commands update in their own transaction.
    pub mode: Option<String>,
}
