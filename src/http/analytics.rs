//! Analytics reads (`api.md` section 7) and the contact activity log, answered from the
//! `analytics_daily`, `campaign_status_counts` and `contact_activities` read models, never from
//! the event log: their cost follows the rollup rows of the range asked for, not the events.
//!
//! Longer than the ~800 lines a module here should keep to: the four analytics answers share one
//! metrics wrapper, one day-range parser and the exact caches of their sums (ADR 7). The contact
//! activity log at the end is the piece to move out first.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::LazyLock;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, NaiveDate, Utc};
use herald_domain::document::DocumentKind;
use herald_domain::engagement::{format_micros, EngagementType};
use herald_domain::error::FieldError;
use herald_domain::ids::is_valid_id;
use herald_domain::spec::{CampaignSpec, CampaignType, Channel};
use herald_projections::analytics::{Counters, COUNTERS};
use serde::Deserialize;
use serde_json::{json, Map, Number, Value};
use sqlx::any::AnyRow;
use sqlx::Row;

use super::error::{ApiError, Result};
use super::extract::{decode_cursor, encode_cursor, Auth, JsonBody, Params};
use super::routes::Routes;
use super::{schemas, AppState};
use crate::campaigns;
use crate::db::Backend;
use crate::documents;
use crate::sending::drip;

/// Most campaign ids one `aggregated-metrics` request may name.
pub const MAX_CAMPAIGN_IDS: usize = 1000;

/// Longest range, in days, of `aggregated-metrics` and the dashboard (a leap year).
pub const MAX_RANGE_DAYS: i64 = 366;

/// Campaigns the dashboard ranks.
const TOP_CAMPAIGNS: usize = 5;

pub fn router() -> Routes {
    Routes::new()
        .get(
            "/crm/marketing/campaigns/{id}/analytics",
            campaign_analytics,
        )
        .post(
            "/crm/marketing/campaigns/aggregated-metrics",
            aggregated_metrics,
        )
        .get("/crm/marketing/dashboard", dashboard)
        .get("/crm/contacts/{id}/activities", contact_activities)
}

/// The counters of `analytics_daily` (the projection's [`Counters`]), summed over any set of its
/// rows, as the API answers them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Metrics(Counters);

impl std::ops::Deref for Metrics {
    type Target = Counters;

    fn deref(&self) -> &Counters {
        &self.0
    }
}

/// The summed columns, in the order [`Metrics::from_row`] reads them: the rollup's counters.
const COLUMNS: &[&str] = Counters::COLUMNS;

/// `cast(coalesce(sum(c), 0) as bigint) as c` for every column: PostgreSQL sums bigints as
/// `numeric`, which the `Any` driver cannot read as an integer.
static SUMS: LazyLock<String> = LazyLock::new(|| {
    COLUMNS
        .iter()
        .map(|c| format!("cast(coalesce(sum({c}), 0) as bigint) as {c}"))
        .collect::<Vec<_>>()
        .join(", ")
});

/// `channel in ('email', …)` over every channel id: with the campaign ids it bounds the primary
/// key `(org_id, campaign_id, channel, day)` on all four columns, so an index scan reads only the
/// days asked for instead of every day of each campaign.
static EVERY_CHANNEL: LazyLock<String> = LazyLock::new(|| {
    let ids: Vec<String> = Channel::all()
        .iter()
        .map(|c| format!("'{}'", c.id()))
        .collect();
    format!("channel in ({})", ids.join(", "))
});

impl Metrics {
    fn from_row(row: &AnyRow) -> std::result::Result<Metrics, sqlx::Error> {
        let mut values = [0i64; COUNTERS];
        for (value, column) in values.iter_mut().zip(COLUMNS) {
            *value = row.try_get::<i64, _>(*column)?;
        }
        Ok(Metrics(Counters::from_values(&values)))
    }

    /// The metrics object of the API. Rates divide unique human opens and clicks by deliveries,
    /// or by sends on channels that report no deliveries; they are 0 with nothing to divide by
    /// and at most 1 (a range can hold first opens of messages delivered before it).
    fn to_json(self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        }
    }
}

/// A metrics object as the API shows it. Serialized straight to the response, without building
/// a map per object (the analytics answers hold hundreds of them).
impl serde::Serialize for Metrics {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let base = if self.deliveries > 0 {
            self.deliveries
        } else {
            self.sends
        };
        let mut map = serializer.serialize_map(Some(COLUMNS.len() + 2))?;
        for (name, value) in Counters::API_NAMES.iter().zip(self.values()) {
            if *name == "revenue" {
                map.serialize_entry(name, &money(value))?;
            } else {
                map.serialize_entry(name, &value)?;
            }
        }
        map.serialize_entry("openRate", &rate(self.unique_opens, base))?;
        map.serialize_entry("clickRate", &rate(self.unique_clicks, base))?;
        map.end()
    }
}

/// One day of a `series`: its date and its metrics.
#[derive(Debug, serde::Serialize)]
struct DayMetrics {
    date: String,
    #[serde(flatten)]
    metrics: Metrics,
}

impl std::ops::AddAssign for Metrics {
    fn add_assign(&mut self, other: Metrics) {
        self.0 += other.0;
    }
}

fn rate(part: i64, whole: i64) -> f64 {
    if whole <= 0 {
        0.0
    } else {
        (part as f64 / whole as f64).clamp(0.0, 1.0)
    }
}

/// Money summed in integer micro-units, as a JSON number. The exact decimal text
/// ([`format_micros`]) is parsed to the nearest `f64`, and serde_json prints the shortest text
/// that reads back as that `f64`: for any decimal of at most 15 significant digits that is the
/// decimal itself, so `0.1 + 0.2` is answered `0.3`, never `0.30000000000000004`. Whole amounts
/// are integers (`20`, not `20.0`).
fn money(micros: i64) -> Value {
    if micros % 1_000_000 == 0 {
        return Value::from(micros / 1_000_000);
    }
    decimal_number(&format_micros(micros)).unwrap_or(Value::Null)
}

/// Plain decimal text (`"19.99"`) as a JSON number.
fn decimal_number(text: &str) -> Option<Value> {
    let plain = !text.is_empty()
        && text
            .trim_start_matches('-')
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'.');
    if !plain {
        return None;
    }
    if let Ok(n) = text.parse::<i64>() {
        return Some(Value::from(n));
    }
    text.parse::<f64>()
        .ok()
        .and_then(Number::from_f64)
        .map(Value::Number)
}

/// An inclusive range of UTC days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DayRange {
    start: NaiveDate,
    end: NaiveDate,
}

impl DayRange {
    fn days(&self) -> i64 {
        (self.end - self.start).num_days() + 1
    }

    fn each_day(&self) -> impl Iterator<Item = NaiveDate> {
        self.start.iter_days().take(self.days().max(0) as usize)
    }
}

/// `YYYY-MM-DD`, or an RFC 3339 timestamp standing for its UTC day.
fn parse_day(text: &str) -> Option<NaiveDate> {
    let text = text.trim();
    let bytes = text.as_bytes();
    if bytes.len() == 10 && bytes[4] == b'-' && bytes[7] == b'-' {
        return NaiveDate::parse_from_str(text, "%Y-%m-%d").ok();
    }
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|at| at.with_timezone(&Utc).date_naive())
}

fn day_text(day: NaiveDate) -> String {
    day.format("%Y-%m-%d").to_string()
}

fn today() -> NaiveDate {
    Utc::now().date_naive()
}

/// `?from=&to=` of a GET: either may be absent; malformed or inverted is `400` (a bad query
/// parameter, as everywhere else in the API).
fn query_day(params: &Params, key: &str) -> Result<Option<NaiveDate>> {
    match params.get(key) {
        None => Ok(None),
        Some(raw) => parse_day(raw).map(Some).ok_or_else(|| {
            ApiError::bad_request(format!(
                "{key} must be a date (YYYY-MM-DD) or an RFC 3339 timestamp"
            ))
        }),
    }
}

/// Adds `$n` placeholders for `values` (numbered after `binds.len()`) and returns them joined.
fn placeholders(values: &[String], binds: &mut Vec<String>) -> String {
    let mut out = Vec::with_capacity(values.len());
    for value in values {
        binds.push(value.clone());
        out.push(format!("${}", binds.len()));
    }
    out.join(", ")
}

async fn fetch_rows(
    state: &AppState,
    sql: &str,
    binds: &[String],
) -> std::result::Result<Vec<AnyRow>, sqlx::Error> {
    let mut query = sqlx::query(sql);
    for bind in binds {
        query = query.bind(bind.as_str());
    }
    query.fetch_all(&state.db.read).await
}

/// One `(campaign, channel)` sum over a range's rollup rows.
#[derive(Debug)]
struct CampaignChannelSum {
    campaign_id: String,
    channel: String,
    metrics: Metrics,
    updated_at: Option<String>,
}

/// A range's rollup rows summed per `(campaign, channel)` and per day.
#[derive(Debug, Default)]
struct RollupSums {
    by_campaign: Vec<CampaignChannelSum>,
    by_day: HashMap<String, Metrics>,
}

/// Values this process computed, by org and query, each under the version of its inputs when it
/// was read: a hit is exactly what the queries would return now.
#[derive(Debug)]
struct VersionedCache<V> {
    entries: std::sync::Mutex<HashMap<CacheKey, (i64, std::sync::Arc<V>)>>,
}

/// `(org, query and its parameters)`.
type CacheKey = (String, String);

/// Entries a [`VersionedCache`] keeps before it starts over.
const CACHE_ENTRIES: usize = 4096;

impl<V> Default for VersionedCache<V> {
    fn default() -> Self {
        VersionedCache {
            entries: std::sync::Mutex::new(HashMap::new()),
        }
    }
}

impl<V> VersionedCache<V> {
    fn get(&self, key: &CacheKey, version: i64) -> Option<std::sync::Arc<V>> {
        let entries = self.entries.lock().expect("analytics cache lock");
        entries
            .get(key)
            .filter(|(at, _)| *at == version)
            .map(|(_, value)| value.clone())
    }

    fn put(&self, key: CacheKey, version: i64, value: std::sync::Arc<V>) {
        let mut entries = self.entries.lock().expect("analytics cache lock");
        if entries.len() >= CACHE_ENTRIES {
            entries.clear();
        }
        entries.insert(key, (version, value));
    }
}

/// The analytics endpoints' per-process caches.
#[derive(Debug, Default)]
pub struct AnalyticsCaches {
    /// Rollup sums under the org's analytics version (`analytics_versions`, moved with every
    /// change to the org's rollups, on any node).
    sums: VersionedCache<RollupSums>,
    /// Which of a list of ids are the org's campaigns (with their channels), under the campaign
    /// cache's epoch (`crate::cache`: moved by every campaign change this process makes or hears
    /// of); not kept while that cache is unusable.
    known: VersionedCache<BTreeMap<String, String>>,
}

/// Sums the rollup rows `filter` (`from analytics_daily where …`, `$1` the org) selects twice
/// over: per `(campaign_id, channel)` (with `updated_at`) and per `day`. PostgreSQL does both
/// in one scan with grouping sets; SQLite, in process, runs the two groupings side by side.
/// Answers from [`AnalyticsCaches`] while the org's analytics version has not moved.
async fn rollup_sums(
    state: &AppState,
    filter: &str,
    binds: &[String],
) -> std::result::Result<std::sync::Arc<RollupSums>, sqlx::Error> {
    let org_id = binds.first().cloned().unwrap_or_default();
    let version = crate::analytics::version(&state.db, &org_id).await?;
    let key = (org_id, format!("{filter}\u{1}{}", binds.join("\u{1}")));
    if let Some(sums) = state.analytics.sums.get(&key, version) {
        return Ok(sums);
    }
    let (by_campaign, by_day) = match state.db.backend {
        Backend::Postgres => {
            let sql = format!(
                "select campaign_id, channel, day, max(updated_at) as updated_at, {} {filter}
                 group by grouping sets ((campaign_id, channel), (day))",
                *SUMS
            );
            let mut by_campaign = Vec::new();
            let mut by_day = Vec::new();
            for row in fetch_rows(state, &sql, binds).await? {
                if row.try_get::<Option<String>, _>("day")?.is_some() {
                    by_day.push(row);
                } else {
                    by_campaign.push(row);
                }
            }
            (by_campaign, by_day)
        }
        Backend::Sqlite => {
            let by_campaign_sql = format!(
                "select campaign_id, channel, max(updated_at) as updated_at, {} {filter}
                 group by campaign_id, channel",
                *SUMS
            );
            let by_day_sql = format!("select day, {} {filter} group by day", *SUMS);
            tokio::try_join!(
                fetch_rows(state, &by_campaign_sql, binds),
                fetch_rows(state, &by_day_sql, binds),
            )?
        }
    };
    let mut sums = RollupSums::default();
    for row in &by_campaign {
        sums.by_campaign.push(CampaignChannelSum {
            campaign_id: row.try_get("campaign_id")?,
            channel: row.try_get("channel")?,
            metrics: Metrics::from_row(row)?,
            updated_at: row.try_get("updated_at")?,
        });
    }
    for row in &by_day {
        sums.by_day
            .insert(row.try_get("day")?, Metrics::from_row(row)?);
    }
    let sums = std::sync::Arc::new(sums);
    state.analytics.sums.put(key, version, sums.clone());
    Ok(sums)
}

/// The channel ids of a `campaigns.channels` cell (`,email,sms,`).
fn channel_ids(cell: &str) -> impl Iterator<Item = &str> {
    cell.split(',').filter(|c| !c.is_empty())
}

fn channels_json(channels: &BTreeMap<String, Metrics>) -> Value {
    Value::Object(
        channels
            .iter()
            .map(|(channel, m)| (channel.clone(), Value::Object(m.to_json())))
            .collect(),
    )
}

#[utoipa::path(get, path = "/crm/marketing/campaigns/{id}/analytics", tag = "analytics",
    summary = "A campaign's metrics: totals, per channel, per day and per step",
    params(("id" = String, Path, description = "The campaign's id"), schemas::DayRange),
    responses((status = 200, description = "The campaign's analytics", body = schemas::CampaignAnalytics)))]
#[tracing::instrument(skip_all, fields(org = %auth.0.org_id, campaign = %id))]
async fn campaign_analytics(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    params: Params,
) -> Result<Response> {
    let org_id = &auth.0.org_id;
    let from = query_day(&params, "from")?;
    let to = query_day(&params, "to")?;
    if let (Some(from), Some(to)) = (from, to) {
        if from > to {
            return Err(ApiError::bad_request("from must not be after to"));
        }
    }
    // Soft-deleted campaigns keep their analytics (seed: "so historical analytics still work").
    let campaign = campaigns::get_shared(&state.db, org_id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such campaign"))?;
    let mut binds = vec![org_id.clone(), id.clone()];
    let mut days = String::new();
    if let Some(from) = from {
        binds.push(day_text(from));
        days.push_str(&format!(" and day >= ${}", binds.len()));
    }
    if let Some(to) = to {
        binds.push(day_text(to));
        days.push_str(&format!(" and day <= ${}", binds.len()));
    }
    let sql = format!(
        "select channel, max(updated_at) as updated_at, {} from analytics_daily
         where org_id = $1 and campaign_id = $2{days} group by channel",
        *SUMS
    );
    let rows = fetch_rows(&state, &sql, &binds).await?;

    // The campaign's own channels always appear, zero until something happens on them.
    let mut channels: BTreeMap<String, Metrics> = campaign
        .get("channels")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|c| (c.to_string(), Metrics::default()))
        .collect();
    let mut totals = Metrics::default();
    let mut updated_at: Option<String> = None;
    for row in &rows {
        let metrics = Metrics::from_row(row)?;
        totals += metrics;
        *channels.entry(row.try_get("channel")?).or_default() += metrics;
        let at: Option<String> = row.try_get("updated_at")?;
        updated_at = updated_at.max(at);
    }
    let range = (from.is_some() || to.is_some())
        .then(|| json!({"from": from.map(day_text), "to": to.map(day_text)}));
    let mut answer = json!({
        "campaignId": id,
        "range": range,
        "totals": totals.to_json(),
        "channels": channels_json(&channels),
        "updatedAt": updated_at,
    });
    if let Ok(spec) = CampaignSpec::deserialize(campaign.as_ref()) {
        if spec.has_steps() {
            answer["steps"] = step_metrics(&state, org_id, &id, &spec, &binds, &days).await?;
            answer["enrollments"] = drip::counts(&state.db, org_id, &id).await?;
        }
    }
    Ok(Json(answer).into_response())
}

/// The metrics of each step of a drip or milestone campaign, over the same days as the
/// campaign's (`binds`: org, campaign and the range's days, which `days` compares). Each
/// step's ledger runs (one per milestone date) are summed; unique opens and clicks, and the
/// rates made of them, are counted per campaign only, so a step's metrics leave them out.
async fn step_metrics(
    state: &AppState,
    org_id: &str,
    campaign_id: &str,
    spec: &CampaignSpec,
    binds: &[String],
    days: &str,
) -> Result<Value> {
    let milestones: Vec<String> = if spec.campaign_type == CampaignType::Milestone {
        sqlx::query_scalar(
            "select distinct milestone from enrollments where org_id = $1 and campaign_id = $2",
        )
        .bind(org_id)
        .bind(campaign_id)
        .fetch_all(&state.db.read)
        .await?
    } else {
        vec![String::new()]
    };
    let mut runs: HashMap<String, &str> = HashMap::new();
    for milestone in &milestones {
        for step in &spec.steps {
            runs.insert(
                drip::step_run_id(campaign_id, &step.id, milestone),
                step.id.as_str(),
            );
        }
    }
    let sql = format!(
        "select run_id, {} from analytics_step_days where org_id = $1 and campaign_id = $2{days} group by run_id",
        *SUMS
    );
    let mut by_step: BTreeMap<&str, Metrics> = spec
        .steps
        .iter()
        .map(|s| (s.id.as_str(), Metrics::default()))
        .collect();
    for row in fetch_rows(state, &sql, binds).await? {
        let run: String = row.try_get("run_id")?;
        if let Some(step) = runs.get(&run) {
            *by_step.entry(step).or_default() += Metrics::from_row(&row)?;
        }
    }
    let mut out = Map::new();
    for (step, metrics) in by_step {
        let mut metrics = metrics.to_json();
        for per_campaign in ["uniqueOpens", "uniqueClicks", "openRate", "clickRate"] {
            metrics.remove(per_campaign);
        }
        out.insert(step.to_string(), Value::Object(metrics));
    }
    Ok(Value::Object(out))
}

/// A validated `aggregated-metrics` body.
#[derive(Debug)]
struct AggregateRequest {
    campaign_ids: Vec<String>,
    range: DayRange,
}

/// Validates the body, collecting every field error: `campaignIds` an array of at most
/// [`MAX_CAMPAIGN_IDS`] id strings (duplicates count once), `range.start` and `range.end` days
/// or timestamps, in order, at most [`MAX_RANGE_DAYS`] days apart. No range means the last 30
/// days.
fn parse_aggregate(body: &Value) -> std::result::Result<AggregateRequest, Vec<FieldError>> {
    let mut errors = Vec::new();
    let Some(body) = body.as_object() else {
        return Err(vec![FieldError::new("", "the body must be a JSON object")]);
    };
    let mut campaign_ids = Vec::new();
    match body.get("campaignIds") {
        None | Some(Value::Null) => errors.push(FieldError::new("campaignIds", "is required")),
        Some(Value::Array(ids)) if ids.len() > MAX_CAMPAIGN_IDS => errors.push(FieldError::new(
            "campaignIds",
            format!(
                "must list at most {MAX_CAMPAIGN_IDS} campaigns (got {}); split the request",
                ids.len()
            ),
        )),
        Some(Value::Array(ids)) => {
            let mut seen = HashSet::new();
            for (i, id) in ids.iter().enumerate() {
                match id.as_str() {
                    Some(id) if is_valid_id(id) => {
                        if seen.insert(id) {
                            campaign_ids.push(id.to_string());
                        }
                    }
                    Some(_) => errors.push(FieldError::new(
                        format!("campaignIds[{i}]"),
                        "is not a valid id (1 to 64 letters, digits, '_', '.' or '-')",
                    )),
                    None => errors.push(FieldError::new(
                        format!("campaignIds[{i}]"),
                        "must be a string",
                    )),
                }
            }
        }
        Some(_) => errors.push(FieldError::new(
            "campaignIds",
            "must be an array of campaign ids",
        )),
    }
    let range = match body.get("range") {
        None | Some(Value::Null) => {
            let end = today();
            Some(DayRange {
                start: end - chrono::Duration::days(29),
                end,
            })
        }
        Some(Value::Object(range)) => {
            let mut bound = |key: &str| match range.get(key) {
                None | Some(Value::Null) => {
                    errors.push(FieldError::new(format!("range.{key}"), "is required"));
                    None
                }
                Some(Value::String(text)) => parse_day(text).or_else(|| {
                    errors.push(FieldError::new(
                        format!("range.{key}"),
                        "must be a date (YYYY-MM-DD) or an RFC 3339 timestamp",
                    ));
                    None
                }),
                Some(_) => {
                    errors.push(FieldError::new(
                        format!("range.{key}"),
                        "must be a string (YYYY-MM-DD or an RFC 3339 timestamp)",
                    ));
                    None
                }
            };
            let (start, end) = (bound("start"), bound("end"));
            match (start, end) {
                (Some(start), Some(end)) => {
                    let range = DayRange { start, end };
                    if end < start {
                        errors.push(FieldError::new(
                            "range.end",
                            "must not be before range.start",
                        ));
                        None
                    } else if range.days() > MAX_RANGE_DAYS {
                        errors.push(FieldError::new(
                            "range",
                            format!("must span at most {MAX_RANGE_DAYS} days (got {}); split longer periods", range.days()),
                        ));
                        None
                    } else {
                        Some(range)
                    }
                }
                _ => None,
            }
        }
        Some(_) => {
            errors.push(FieldError::new(
                "range",
                "must be an object with start and end",
            ));
            None
        }
    };
    match range {
        Some(range) if errors.is_empty() => Ok(AggregateRequest {
            campaign_ids,
            range,
        }),
        _ => Err(errors),
    }
}

/// A day-by-day series over `range`, zero-filled, from `(day, metrics)` rows.
fn series(range: DayRange, by_day: &HashMap<String, Metrics>) -> Vec<DayMetrics> {
    range
        .each_day()
        .map(|day| {
            let date = day_text(day);
            let metrics = by_day.get(&date).copied().unwrap_or_default();
            DayMetrics { date, metrics }
        })
        .collect()
}

#[utoipa::path(post, path = "/crm/marketing/campaigns/aggregated-metrics", tag = "analytics",
    summary = "Metrics of several campaigns over a range",
    request_body(content = schemas::AggregateRequest, content_type = "application/json"),
    responses((status = 200, description = "Per campaign and in total", body = schemas::AggregateMetrics)))]
#[tracing::instrument(skip_all, fields(org = %auth.0.org_id))]
async fn aggregated_metrics(
    State(state): State<AppState>,
    auth: Auth,
    body: JsonBody,
) -> Result<Response> {
    let org_id = &auth.0.org_id;
    let request = parse_aggregate(&body.value).map_err(ApiError::unprocessable)?;
    let range = request.range;

    // Which ids are this org's campaigns, deleted ones included. Ids of other orgs are
    // reported missing like ids that never existed: nothing tells them apart.
    let known = known_campaigns(&state, org_id, &request.campaign_ids).await?;
    let missing: Vec<&String> = request
        .campaign_ids
        .iter()
        .filter(|id| !known.contains_key(*id))
        .collect();

    let mut per_campaign: BTreeMap<String, Metrics> = known
        .keys()
        .map(|id| (id.clone(), Metrics::default()))
        .collect();
    let mut channels: BTreeMap<String, Metrics> = known
        .values()
        .flat_map(|cell| channel_ids(cell))
        .map(|c| (c.to_string(), Metrics::default()))
        .collect();
    let mut totals = Metrics::default();
    let mut updated_at: Option<String> = None;
    let daily = if known.is_empty() {
        series(range, &HashMap::new())
    } else {
        let ids: Vec<String> = known.keys().cloned().collect();
        let mut binds = vec![org_id.clone(), day_text(range.start), day_text(range.end)];
        let list = placeholders(&ids, &mut binds);
        let filter = format!(
            "from analytics_daily where org_id = $1 and campaign_id in ({list}) and {} and day >= $2 and day <= $3",
            *EVERY_CHANNEL
        );
        let sums = rollup_sums(&state, &filter, &binds).await?;
        for sum in &sums.by_campaign {
            totals += sum.metrics;
            *per_campaign.entry(sum.campaign_id.clone()).or_default() += sum.metrics;
            *channels.entry(sum.channel.clone()).or_default() += sum.metrics;
            updated_at = updated_at.max(sum.updated_at.clone());
        }
        series(range, &sums.by_day)
    };
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Aggregate<'a> {
        range: Value,
        totals: Metrics,
        channels: &'a BTreeMap<String, Metrics>,
        campaigns: &'a BTreeMap<String, Metrics>,
        series: Vec<DayMetrics>,
        missing: Vec<&'a String>,
        updated_at: Option<String>,
    }
    Ok(Json(Aggregate {
        range: json!({"start": day_text(range.start), "end": day_text(range.end)}),
        totals,
        channels: &channels,
        campaigns: &per_campaign,
        series: daily,
        missing,
        updated_at,
    })
    .into_response())
}

/// Which of `ids` are the org's campaigns (deleted ones included), with their `channels` cells.
async fn known_campaigns(
    state: &AppState,
    org_id: &str,
    ids: &[String],
) -> Result<std::sync::Arc<BTreeMap<String, String>>> {
    let key = (org_id.to_string(), ids.join("\n"));
    let epoch = state.db.cache.epoch() as i64;
    if let Some(known) = state.analytics.known.get(&key, epoch) {
        return Ok(known);
    }
    let mut known = BTreeMap::new();
    if !ids.is_empty() {
        let mut binds = vec![org_id.to_string()];
        let list = placeholders(ids, &mut binds);
        let sql =
            format!("select id, channels from campaigns where org_id = $1 and id in ({list})");
        for row in fetch_rows(state, &sql, &binds).await? {
            known.insert(row.try_get("id")?, row.try_get("channels")?);
        }
    }
    let known = std::sync::Arc::new(known);
    if state.db.cache.usable() {
        state.analytics.known.put(key, epoch, known.clone());
    }
    Ok(known)
}

/// The dashboard's range: `to` (default today) and `from` (default `days` − 1 before `to`,
/// `days` defaulting to 30), at most [`MAX_RANGE_DAYS`] days. All problems are `400`.
fn dashboard_range(params: &Params) -> Result<DayRange> {
    let days = match params.get("days") {
        None => None,
        Some(raw) => match raw.parse::<i64>() {
            Ok(n) if (1..=MAX_RANGE_DAYS).contains(&n) => Some(n),
            _ => {
                return Err(ApiError::bad_request(format!(
                    "days must be an integer from 1 to {MAX_RANGE_DAYS}"
                )))
            }
        },
    };
    let from = query_day(params, "from")?;
    let to = query_day(params, "to")?;
    if days.is_some() && from.is_some() {
        return Err(ApiError::bad_request("give either days or from, not both"));
    }
    let end = to.unwrap_or_else(today);
    let start = match from {
        Some(from) => from,
        None => end - chrono::Duration::days(days.unwrap_or(30) - 1),
    };
    let range = DayRange { start, end };
    if start > end {
        return Err(ApiError::bad_request("from must not be after to"));
    }
    if range.days() > MAX_RANGE_DAYS {
        return Err(ApiError::bad_request(format!(
            "the range must span at most {MAX_RANGE_DAYS} days"
        )));
    }
    Ok(range)
}

#[utoipa::path(get, path = "/crm/marketing/dashboard", tag = "analytics",
    summary = "The org's last days: totals, channels, top campaigns, daily series",
    params(schemas::DashboardRange),
    responses((status = 200, description = "The dashboard", body = schemas::Dashboard)))]
#[tracing::instrument(skip_all, fields(org = %auth.0.org_id))]
async fn dashboard(State(state): State<AppState>, auth: Auth, params: Params) -> Result<Response> {
    let org_id = &auth.0.org_id;
    let range = dashboard_range(&params)?;
    // Per campaign and channel (totals, channels and the ranking derive from it) and per day,
    // over the range's rollup rows (the `(org_id, day)` index).
    let binds = vec![org_id.clone(), day_text(range.start), day_text(range.end)];
    let filter = "from analytics_daily where org_id = $1 and day >= $2 and day <= $3";
    let counts_sql = "select status, count from campaign_status_counts
         where org_id = $1 and status in ('running', 'scheduled')";
    let org_only = [org_id.clone()];
    let (sums, counts) = tokio::try_join!(
        rollup_sums(&state, filter, &binds),
        fetch_rows(&state, counts_sql, &org_only),
    )?;

    let mut totals = Metrics::default();
    let mut channels: BTreeMap<String, Metrics> = BTreeMap::new();
    let mut per_campaign: HashMap<String, Metrics> = HashMap::new();
    let mut updated_at: Option<String> = None;
    for sum in &sums.by_campaign {
        totals += sum.metrics;
        *channels.entry(sum.channel.clone()).or_default() += sum.metrics;
        *per_campaign.entry(sum.campaign_id.clone()).or_default() += sum.metrics;
        updated_at = updated_at.max(sum.updated_at.clone());
    }
    let mut status_counts = HashMap::new();
    for row in &counts {
        status_counts.insert(
            row.try_get::<String, _>("status")?,
            row.try_get::<i64, _>("count")?,
        );
    }
    let mut tiles = totals.to_json();
    for (tile, status) in [
        ("activeCampaigns", "running"),
        ("scheduledCampaigns", "scheduled"),
    ] {
        let count = status_counts.get(status).copied().unwrap_or(0).max(0);
        tiles.insert(tile.into(), Value::from(count));
    }

    // Top campaigns: most revenue, then most human clicks, then id.
    let mut ranked: Vec<(String, Metrics)> = per_campaign.into_iter().collect();
    ranked.sort_by(|(a_id, a), (b_id, b)| {
        b.revenue_micros
            .cmp(&a.revenue_micros)
            .then(b.clicks.cmp(&a.clicks))
            .then(a_id.cmp(b_id))
    });
    ranked.truncate(TOP_CAMPAIGNS);
    let mut names: HashMap<String, (String, String, String)> = HashMap::new();
    if !ranked.is_empty() {
        let ids: Vec<String> = ranked.iter().map(|(id, _)| id.clone()).collect();
        let mut binds = vec![org_id.clone()];
        let list = placeholders(&ids, &mut binds);
        let sql = format!(
            "select id, name, status, state from campaigns where org_id = $1 and id in ({list})"
        );
        for row in fetch_rows(&state, &sql, &binds).await? {
            names.insert(
                row.try_get("id")?,
                (
                    row.try_get("name")?,
                    row.try_get("status")?,
                    row.try_get("state")?,
                ),
            );
        }
    }
    let top_campaigns: Vec<Value> = ranked
        .into_iter()
        .map(|(id, metrics)| {
            let mut entry = metrics.to_json();
            let (name, status, campaign_state) = names.remove(&id).unwrap_or_default();
            entry.insert("campaignId".into(), Value::String(id));
            entry.insert("name".into(), Value::String(name));
            entry.insert("status".into(), Value::String(status));
            entry.insert("deleted".into(), Value::Bool(campaign_state == "deleted"));
            Value::Object(entry)
        })
        .collect();

    Ok(Json(json!({
        "range": {"from": day_text(range.start), "to": day_text(range.end), "days": range.days()},
        "tiles": tiles,
        "channels": channels_json(&channels),
        "series": series(range, &sums.by_day),
        "topCampaigns": top_campaigns,
        "updatedAt": updated_at,
    }))
    .into_response())
}

/// Activity types a contact's log holds: sends, and every engagement type.
fn activity_type(name: &str) -> bool {
    name == "send" || EngagementType::parse(name).is_some()
}

#[utoipa::path(get, path = "/crm/contacts/{id}/activities", tag = "analytics",
    summary = "A contact's sends and engagements, newest first",
    params(("id" = String, Path, description = "The contact's id"), schemas::ActivityFilter, schemas::Page),
    responses((status = 200, description = "A page of activities", body = schemas::ActivityList)))]
#[tracing::instrument(skip_all, fields(org = %auth.0.org_id, contact = %id))]
async fn contact_activities(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    params: Params,
) -> Result<Response> {
    let org_id = &auth.0.org_id;
    let limit = params.limit()?;
    let types: BTreeSet<String> = match params.get("type") {
        None => BTreeSet::new(),
        Some(raw) => {
            let types: BTreeSet<String> = raw.split(',').map(|t| t.trim().to_string()).collect();
            if let Some(bad) = types.iter().find(|t| !activity_type(t)) {
                return Err(ApiError::bad_request(format!(
                    "type {bad:?} is not an activity type (send, delivery, open, click, reply, bounce, dropped, complaint, unsubscribe, conversion, revenue, impression, interaction)"
                )));
            }
            types
        }
    };
    let after = match params.get("cursor") {
        Some(cursor) => Some(ActivityCursor::decode(cursor)?),
        None => None,
    };
    // A deleted contact is gone from the API, its activity log with it (its engagements still
    // count in campaign analytics).
    if !documents::exists(&state.db, org_id, DocumentKind::Contact, &id).await? {
        return Err(ApiError::not_found("no such contact"));
    }
    let mut sql = String::from(
        "select position, seq, type, campaign_id, channel, at, detail from contact_activities
         where org_id = $1 and contact_id = $2",
    );
    let mut next = 3;
    if after.is_some() {
        sql.push_str(
            " and (at < $3 or (at = $3 and (position < $4 or (position = $4 and seq < $5))))",
        );
        next = 6;
    }
    if !types.is_empty() {
        sql.push_str(&format!(
            " and type in ({})",
            crate::store::params(next, types.len())
        ));
    }
    // Newest first by when it happened; `at` is fixed-width UTC, so text order is time order.
    sql.push_str(&format!(
        " order by at desc, position desc, seq desc limit {}",
        limit + 1
    ));
    let mut query = sqlx::query(&sql).bind(org_id.as_str()).bind(id.as_str());
    if let Some(cursor) = &after {
        query = query
            .bind(cursor.at.as_str())
            .bind(cursor.position)
            .bind(cursor.seq);
    }
    for t in &types {
        query = query.bind(t.as_str());
    }
    let rows = query.fetch_all(&state.db.read).await?;

    let more = rows.len() as i64 > limit;
    let mut items = Vec::with_capacity(rows.len().min(limit as usize));
    let mut last = None;
    for row in rows.iter().take(limit as usize) {
        last = Some(ActivityCursor {
            at: row.try_get("at")?,
            position: row.try_get("position")?,
            seq: row.try_get("seq")?,
        });
        items.push(activity_item(row)?);
    }
    let next_cursor = match (more, last) {
        (true, Some(cursor)) => Some(cursor.encode()),
        _ => None,
    };
    Ok(Json(json!({ "items": items, "nextCursor": next_cursor })).into_response())
}

/// Where a page of a contact's activities ended: the last item's time, then its log position
/// and sequence, which order activities of the same instant.
struct ActivityCursor {
    at: String,
    position: i64,
    seq: i64,
}

impl ActivityCursor {
    fn encode(&self) -> String {
        encode_cursor(&self.at, &format!("{}.{}", self.position, self.seq))
    }

    fn decode(cursor: &str) -> Result<ActivityCursor> {
        let bad = || ApiError::bad_request("cursor is not one this server issued");
        let (at, key) = decode_cursor(cursor)?;
        let (position, seq) = key.split_once('.').ok_or_else(bad)?;
        Ok(ActivityCursor {
            at,
            position: position.parse().map_err(|_| bad())?,
            seq: seq.parse().map_err(|_| bad())?,
        })
    }
}

/// One activity: its type, campaign, channel and time, then the extras of its `detail`
/// (`runId`, `link`, `value` as a number, `currency`, `classification`, `reason`, `source`).
fn activity_item(row: &AnyRow) -> std::result::Result<Value, sqlx::Error> {
    let mut item = Map::new();
    item.insert("type".into(), Value::String(row.try_get("type")?));
    item.insert(
        "campaignId".into(),
        Value::String(row.try_get("campaign_id")?),
    );
    item.insert("channel".into(), Value::String(row.try_get("channel")?));
    item.insert("at".into(), Value::String(row.try_get("at")?));
    let detail: String = row.try_get("detail")?;
    if let Ok(Value::Object(extras)) = serde_json::from_str::<Value>(&detail) {
        for (key, value) in extras {
            let value = match (key.as_str(), &value) {
                ("value", Value::String(text)) => decimal_number(text).unwrap_or(value),
                _ => value,
            };
            item.entry(key).or_insert(value);
        }
    }
    Ok(Value::Object(item))
}
