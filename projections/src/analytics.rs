//! The `analytics` projection: daily rollups per (org, campaign, channel, day), the first human
//! open and click per contact (what makes one unique) and the contact activity log, from
//! `SendsRecorded` and `EngagementRecorded` events.
//!
//! [`fold`] is pure: it turns a batch of events into row changes. The runner applies them in the
//! transaction that moves the projection's checkpoint, so replaying the log from position 0
//! gives the same rows.

use std::collections::BTreeMap;

use herald_domain::engagement::{
    Classification, Engagement, EngagementType, SendsRecorded, EVENT_TYPE, SENDS_EVENT_TYPE,
};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::record::EventRecord;

/// Declares [`Counters`], the one metrics model: each line is a counter, its `analytics_daily`
/// column (the field's name) and its name in the API's metrics objects. Adding a metric is one
/// line here plus its migration column; the projection, the sums and the answers follow.
macro_rules! counters {
    ($($field:ident => $api:literal),* $(,)?) => {
        /// How many counters there are.
        pub const COUNTERS: usize = [$(stringify!($field)),*].len();

        /// The counters of one rollup row (or of a sum of rows).
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct Counters {
            $(pub $field: i64,)*
        }

        impl Counters {
            /// Column names, in the order of [`Counters::values`].
            pub const COLUMNS: &'static [&'static str] = &[$(stringify!($field)),*];
            /// Names in the API's metrics objects, in the same order.
            pub const API_NAMES: &'static [&'static str] = &[$($api),*];

            /// The values, in [`Counters::COLUMNS`] order.
            pub fn values(&self) -> [i64; COUNTERS] {
                [$(self.$field),*]
            }

            /// Builds counters from values in [`Counters::COLUMNS`] order (missing ones are 0).
            pub fn from_values(values: &[i64]) -> Counters {
                let mut values = values.iter().copied();
                Counters {
                    $($field: values.next().unwrap_or_default(),)*
                }
            }

            pub fn add(&mut self, other: &Counters) {
                $(self.$field += other.$field;)*
            }
        }
    };
}

counters! {
    sends => "sends",
    failures => "failures",
    deliveries => "deliveries",
    opens => "opens",
    unique_opens => "uniqueOpens",
    machine_opens => "machineOpens",
    clicks => "clicks",
    unique_clicks => "uniqueClicks",
    machine_clicks => "machineClicks",
    replies => "replies",
    bounces => "bounces",
    complaints => "complaints",
    unsubscribes => "unsubscribes",
    conversions => "conversions",
    revenue_micros => "revenue",
    impressions => "impressions",
    interactions => "interactions",
    capped => "capped",
}

impl std::ops::AddAssign for Counters {
    fn add_assign(&mut self, other: Counters) {
        self.add(&other);
    }
}

/// The key of one rollup row.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DayKey {
    pub org_id: String,
    pub campaign_id: String,
    pub channel: String,
    /// `YYYY-MM-DD`, UTC.
    pub day: String,
}

/// A human open or click by a known contact: unique if it is the contact's first for the
/// campaign and channel. The runner claims it in `analytics_uniques` and, when the claim is new,
/// counts it on `key`'s day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UniqueCandidate {
    pub key: DayKey,
    pub contact_id: String,
    /// `open` or `click`.
    pub kind: &'static str,
}

/// One row of the contact activity log.
#[derive(Debug, Clone, PartialEq)]
pub struct Activity {
    pub org_id: String,
    pub contact_id: String,
    pub position: i64,
    pub seq: i64,
    pub kind: String,
    pub campaign_id: String,
    pub channel: String,
    pub at: String,
    pub detail: Value,
}

/// The key of one per-step rollup row: a drip or milestone step's ledger run on a day.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StepDayKey {
    pub day: DayKey,
    pub run_id: String,
}

/// Ledger runs of drip and milestone steps start with this (`src/sending/drip.rs`).
pub const STEP_RUN_PREFIX: &str = "step-";

/// What a batch of events changes.
#[derive(Debug, Default)]
pub struct Changes {
    pub days: BTreeMap<DayKey, Counters>,
    /// The same counters per step run, for the sends and engagement of drip and milestone steps
    /// (unique opens and clicks are counted per campaign only).
    pub step_days: BTreeMap<StepDayKey, Counters>,
    /// In log order, so the first claim of a contact is the earliest event.
    pub uniques: Vec<UniqueCandidate>,
    pub activities: Vec<Activity>,
}

impl Changes {
    /// Adds `counted` to the day row, and to the step run's row when `run_id` is a step's.
    fn count(&mut self, day: DayKey, run_id: Option<&str>, counted: Counters) {
        if let Some(run_id) = run_id.filter(|r| r.starts_with(STEP_RUN_PREFIX)) {
            let key = StepDayKey {
                day: day.clone(),
                run_id: run_id.to_string(),
            };
            *self.step_days.entry(key).or_default() += counted;
        }
        *self.days.entry(day).or_default() += counted;
    }
}

/// Folds events (with their orgs) into row changes. Other event types are ignored; an event
/// whose data cannot be read is skipped (it cannot have been written by this version).
pub fn fold<'a>(events: impl IntoIterator<Item = (&'a str, &'a EventRecord)>) -> Changes {
    let mut changes = Changes::default();
    for (org_id, record) in events {
        if record.event_type == SENDS_EVENT_TYPE {
            if let Ok(sends) = SendsRecorded::deserialize(&record.data) {
                fold_sends(&mut changes, org_id, record.position, &sends);
            }
        } else if record.event_type == EVENT_TYPE {
            if let Ok(engagement) = Engagement::deserialize(&record.data) {
                fold_engagement(&mut changes, org_id, record.position, &engagement);
            }
        }
    }
    changes
}

fn fold_sends(changes: &mut Changes, org_id: &str, position: i64, sends: &SendsRecorded) {
    let key = DayKey {
        org_id: org_id.to_string(),
        campaign_id: sends.campaign_id.clone(),
        channel: sends.channel.id().to_string(),
        day: sends.at.format("%Y-%m-%d").to_string(),
    };
    let mut row = Counters::default();
    let sent = sends.sent.len() as i64;
    row.sends += sent + sends.bounced.len() as i64;
    row.failures += sends.failed.len() as i64;
    row.bounces += sends.bounced.len() as i64;
    row.capped += sends.capped.len() as i64;
    if sends.delivered {
        row.deliveries += sent;
    }
    changes.count(key, Some(&sends.run_id), row);
    let at = herald_time(&sends.at);
    let mut seq = 0;
    let mut push = |contact: &str, kind: &str, extra: Value| {
        // Social posts are recorded under `profile:<id>`, not a contact.
        if contact.contains(':') {
            return;
        }
        let mut detail = json!({"runId": sends.run_id});
        if let (Some(d), Value::Object(extra)) = (detail.as_object_mut(), extra) {
            d.extend(extra);
        }
        changes.activities.push(Activity {
            org_id: org_id.to_string(),
            contact_id: contact.to_string(),
            position,
            seq,
            kind: kind.to_string(),
            campaign_id: sends.campaign_id.clone(),
            channel: sends.channel.id().to_string(),
            at: at.clone(),
            detail,
        });
        seq += 1;
    };
    for contact in &sends.sent {
        push(contact, "send", json!({"delivered": sends.delivered}));
    }
    for contact in &sends.bounced {
        push(contact, "bounce", json!({}));
    }
}

fn fold_engagement(changes: &mut Changes, org_id: &str, position: i64, e: &Engagement) {
    let key = DayKey {
        org_id: org_id.to_string(),
        campaign_id: e.campaign_id.clone(),
        channel: e.channel.id().to_string(),
        day: e.occurred_at.format("%Y-%m-%d").to_string(),
    };
    let human = e.classification == Classification::Human;
    let weight = e.weight() as i64;
    let mut counted = Counters::default();
    let row = &mut counted;
    match e.kind {
        EngagementType::Delivery => row.deliveries += 1,
        EngagementType::Open if human => row.opens += 1,
        EngagementType::Open => row.machine_opens += 1,
        EngagementType::Click if human => row.clicks += 1,
        EngagementType::Click => row.machine_clicks += 1,
        EngagementType::Reply => row.replies += 1,
        EngagementType::Bounce => row.bounces += 1,
        EngagementType::Dropped => row.failures += 1,
        EngagementType::Complaint => row.complaints += 1,
        EngagementType::Unsubscribe => row.unsubscribes += 1,
        EngagementType::Conversion => {
            row.conversions += 1;
            row.revenue_micros += e.value_micros();
        }
        EngagementType::Revenue => row.revenue_micros += e.value_micros(),
        EngagementType::Impression => row.impressions += weight,
        EngagementType::Interaction => row.interactions += weight,
    }
    changes.count(key.clone(), e.run_id.as_deref(), counted);
    let Some(contact) = e.contact_id.as_deref() else {
        return;
    };
    if human && matches!(e.kind, EngagementType::Open | EngagementType::Click) {
        changes.uniques.push(UniqueCandidate {
            key,
            contact_id: contact.to_string(),
            kind: e.kind.as_str(),
        });
    }
    let mut detail = Map::new();
    let mut put = |name: &str, value: Option<Value>| {
        if let Some(value) = value {
            detail.insert(name.to_string(), value);
        }
    };
    put("runId", e.run_id.clone().map(Value::String));
    put("link", e.link.clone().map(Value::String));
    put("value", e.value.clone().map(Value::String));
    put("currency", e.currency.clone().map(Value::String));
    put("count", e.kind.carries_count().then(|| json!(e.weight())));
    put("reason", e.reason.clone().map(Value::String));
    put("externalId", e.external_id.clone().map(Value::String));
    put("source", Some(Value::String(e.source.clone())));
    if matches!(e.kind, EngagementType::Open | EngagementType::Click) {
        put("classification", Some(json!(e.classification)));
    }
    changes.activities.push(Activity {
        org_id: org_id.to_string(),
        contact_id: contact.to_string(),
        position,
        seq: 0,
        kind: e.kind.as_str().to_string(),
        campaign_id: e.campaign_id.clone(),
        channel: e.channel.id().to_string(),
        at: herald_time(&e.occurred_at),
        detail: Value::Object(detail),
    });
}

/// Times in the activity log: RFC 3339 UTC with `Z`, to the millisecond.
fn herald_time(at: &chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Metadata;

    fn record(position: i64, event_type: &str, data: Value) -> EventRecord {
        EventRecord {
            event_id: format!("e{position}"),
            stream_id: "s".into(),
            revision: 0,
            position,
            event_type: event_type.into(),
            event_version: "1".into(),
            created: "2026-05-01T00:00:00.000000Z".into(),
            data,
            metadata: Metadata::default(),
        }
    }

    fn engagement(kind: &str, contact: &str, extra: Value) -> Value {
        let mut data = json!({"campaignId": "camp-1", "runId": "run-1", "contactId": contact,
            "channel": "email", "type": kind, "occurredAt": "2026-05-02T10:00:00Z", "source": "tracking"});
        data.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        data
    }

    #[test]
    fn sends_and_engagements_fold_into_a_day_row_and_activities() {
        let events = [
            record(
                1,
                SENDS_EVENT_TYPE,
                json!({"campaignId": "camp-1", "runId": "run-1", "channel": "email",
                       "sent": ["ct-1", "ct-2", "profile:p"], "failed": ["ct-3"], "bounced": ["ct-4"],
                       "delivered": true, "at": "2026-05-02T09:00:00Z"}),
            ),
            record(2, EVENT_TYPE, engagement("open", "ct-1", json!({}))),
            record(
                3,
                EVENT_TYPE,
                engagement("open", "ct-1", json!({"classification": "machine"})),
            ),
            record(
                4,
                EVENT_TYPE,
                engagement("click", "ct-2", json!({"link": "https://a.test"})),
            ),
            record(
                5,
                EVENT_TYPE,
                engagement(
                    "conversion",
                    "ct-2",
                    json!({"value": "19.99", "currency": "USD"}),
                ),
            ),
            record(
                6,
                EVENT_TYPE,
                engagement(
                    "conversion",
                    "ct-1",
                    json!({"value": "0.01", "currency": "USD"}),
                ),
            ),
            record(7, "Created", json!({})),
        ];
        let changes = fold(events.iter().map(|r| ("acme", r)));
        assert_eq!(changes.days.len(), 1);
        let row = changes.days.values().next().unwrap();
        assert_eq!(
            (row.sends, row.failures, row.bounces, row.deliveries),
            (4, 1, 1, 3)
        );
        assert_eq!((row.opens, row.machine_opens, row.clicks), (1, 1, 1));
        assert_eq!((row.conversions, row.revenue_micros), (2, 20_000_000));
        assert_eq!(changes.uniques.len(), 2, "one human open, one human click");
        let kinds: Vec<&str> = changes.activities.iter().map(|a| a.kind.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "send",
                "send",
                "bounce",
                "open",
                "open",
                "click",
                "conversion",
                "conversion"
            ]
        );
        assert_eq!(changes.activities[5].detail["link"], "https://a.test");
        assert_eq!(changes.activities[6].detail["value"], "19.99");
    }
}
