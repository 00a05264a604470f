//! Enrollment after launch (`api.md` section 11): a log follower that enrolls contacts in the
//! running sequences that want them.
//!
//! - a `continuous` drip enrolls each contact a create, import or update makes match its
//!   audience;
//! - an engagement-triggered drip enrolls the contact of each click, human open, conversion or
//!   reply recorded on its trigger campaign;
//! - a milestone campaign enrolls contacts created or updated into its audience at their next
//!   milestone, and a changed field moves a milestone whose first step has not run yet.
//!
//! The follower reads the log gap-safe after its own checkpoint (`enroller`) and moves it in the
//! transaction that writes the enrollments, so a batch is applied once, and applying one again
//! (a crash between) adds nothing: a contact is enrolled once per (campaign, milestone date).
//! Only what happened after a campaign's launch enrolls, so a new follower reading old history
//! enrolls nobody for it. With no running sequence that follows the log, events are skipped
//! without being decoded; engagement events are decoded only while a triggered drip runs.

use std::collections::{BTreeMap, HashMap};

use chrono::Utc;
use herald_domain::document::DocumentKind;
use herald_domain::drip::{Enrollment, EnrollmentMode, TriggerEvent};
use herald_domain::spec::{CampaignSpec, CampaignType};
use serde_json::Value;
use sqlx::Row;

use super::audience;
use super::drip::{self, NewEnrollment};
use crate::db::{Backend, Db, Tx};
use crate::documents;
use crate::store::{self, format_time, Interest, LoggedEvent};

/// The follower's checkpoint name.
pub const CHECKPOINT: &str = "enroller";
/// Events read per batch.
const BATCH: i64 = 500;

const NOTHING: Interest = Interest::StreamsPrefixed(&[]);
const CONTACTS: Interest = Interest::StreamsPrefixed(&["contact-"]);
const CONTACTS_AND_ENGAGEMENT: Interest = Interest::StreamsPrefixed(&["contact-", "delivery-"]);

/// A running sequence that enrolls after its launch.
struct Live {
    org_id: String,
    campaign_id: String,
    spec: CampaignSpec,
    /// When it was launched: only later events enroll.
    launched_at: String,
    /// What enrolls: contact changes, or an engagement on another campaign.
    source: Source,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    /// A continuous drip or a milestone campaign: contacts created or updated into the audience.
    Contacts,
    /// A triggered drip: this engagement on this campaign.
    Engagement(TriggerEvent, String),
}

/// The running drip and milestone campaigns that enroll from the log.
async fn live_sequences(db: &Db) -> Result<Vec<Live>, sqlx::Error> {
    let rows = sqlx::query(
        "select org_id, id, doc from campaigns
         where type in ('drip', 'milestone') and status = 'running' and state = 'active'",
    )
    .fetch_all(&db.read)
    .await?;
    let mut live = Vec::new();
    for row in rows {
        let doc: String = row.try_get("doc")?;
        let Ok(doc) = serde_json::from_str::<Value>(&doc) else {
            continue;
        };
        let Ok(spec) = serde_json::from_value::<CampaignSpec>(doc.clone()) else {
            continue;
        };
        let source = match (&spec.campaign_type, &spec.enrollment) {
            (CampaignType::Milestone, _) => Source::Contacts,
            (_, Some(Enrollment::Mode(EnrollmentMode::Continuous))) => Source::Contacts,
            (_, Some(Enrollment::Event { event, campaign_id })) => {
                Source::Engagement(*event, campaign_id.clone())
            }
            _ => continue,
        };
        live.push(Live {
            org_id: row.try_get("org_id")?,
            campaign_id: row.try_get("id")?,
            launched_at: doc["launchedAt"].as_str().unwrap_or_default().to_string(),
            spec,
            source,
        });
    }
    Ok(live)
}

/// Applies the next batch of the log after the follower's checkpoint. Returns how many events
/// it read (0: caught up).
pub async fn catch_up(db: &Db) -> Result<usize, sqlx::Error> {
    let from = store::checkpoint(&db.read, CHECKPOINT, false).await?;
    // Cheap when nothing is new: a read of positions only.
    let probe = store::read_page(db, from, 1, NOTHING).await?;
    if probe.rows == 0 {
        return Ok(0);
    }
    let live = live_sequences(db).await?;
    let interest = if live
        .iter()
        .any(|l| matches!(l.source, Source::Engagement(..)))
    {
        CONTACTS_AND_ENGAGEMENT
    } else if live.is_empty() {
        NOTHING
    } else {
        CONTACTS
    };
    // Positions only go faster in bigger steps.
    let limit = if interest == NOTHING {
        10 * BATCH
    } else {
        BATCH
    };
    let page = store::read_page(db, from, limit, interest).await?;
    let Some(last) = page.last else {
        return Ok(0);
    };
    let mut tx = db.begin().await?;
    let current = store::checkpoint(&mut *tx, CHECKPOINT, db.backend == Backend::Postgres).await?;
    if current != from {
        // Another node applied this batch.
        tx.rollback().await?;
        return Ok(page.rows);
    }
    if !page.events.is_empty() {
        apply(db, &mut tx, &live, &page.events).await?;
    }
    store::save_checkpoint(&mut *tx, CHECKPOINT, last, Utc::now()).await?;
    tx.commit().await?;
    Ok(page.rows)
}

/// Creates the follower's checkpoint row where the scheduler's stands: on a database that
/// already has history, what happened before is not for enrolling (every campaign running then
/// enrolled its audience at launch), and the log is not read again from the start.
/// `scheduler` is the scheduler's checkpoint name.
pub async fn prepare(db: &Db, scheduler: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into projection_checkpoints (name, tx_id, position, updated_at)
         select $1, tx_id, position, $2 from projection_checkpoints where name = $3
         on conflict (name) do nothing",
    )
    .bind(CHECKPOINT)
    .bind(format_time(Utc::now()))
    .bind(scheduler)
    .execute(&db.write)
    .await?;
    Ok(())
}

/// What one batch asks of one org: contacts changed, and engagements that may trigger.
#[derive(Default)]
struct OrgBatch {
    /// Contact id → the `created` of its latest change in the batch.
    changed: BTreeMap<String, String>,
    /// `(campaign engaged with, event, contact, created)`.
    engaged: Vec<(String, TriggerEvent, String, String)>,
}

fn read_batch(events: &[LoggedEvent]) -> BTreeMap<String, OrgBatch> {
    let mut orgs: BTreeMap<String, OrgBatch> = BTreeMap::new();
    for event in events {
        let record = &event.record;
        match record.event_type.as_str() {
            "ContactCreated" | "ContactUpdated" => {
                let Some(id) = record
                    .stream_id
                    .strip_prefix("contact-")
                    .and_then(|rest| rest.split_once(':'))
                    .map(|(_, id)| id.to_string())
                else {
                    continue;
                };
                orgs.entry(event.org_id.clone())
                    .or_default()
                    .changed
                    .insert(id, record.created.clone());
            }
            herald_domain::engagement::EVENT_TYPE => {
                let data = &record.data;
                let kind = match data["type"].as_str() {
                    Some("click") => TriggerEvent::Click,
                    Some("open") => TriggerEvent::Open,
                    Some("conversion") => TriggerEvent::Conversion,
                    Some("reply") => TriggerEvent::Reply,
                    _ => continue,
                };
                // Machine opens and clicks (privacy proxies, scanners) never trigger.
                if data["classification"].as_str() == Some("machine") {
                    continue;
                }
                let (Some(campaign), Some(contact)) =
                    (data["campaignId"].as_str(), data["contactId"].as_str())
                else {
                    continue;
                };
                orgs.entry(event.org_id.clone()).or_default().engaged.push((
                    campaign.to_string(),
                    kind,
                    contact.to_string(),
                    record.created.clone(),
                ));
            }
            _ => {}
        }
    }
    orgs
}

/// Enrolls what one batch asks for, org by org, in the follower's transaction.
async fn apply(
    db: &Db,
    tx: &mut Tx,
    live: &[Live],
    events: &[LoggedEvent],
) -> Result<(), sqlx::Error> {
    let now = Utc::now();
    for (org_id, batch) in read_batch(events) {
        let sequences: Vec<&Live> = live.iter().filter(|l| l.org_id == org_id).collect();
        if sequences.is_empty() {
            continue;
        }
        // Each sequence's candidates: contact id → whether it is an update of a known contact
        // (only those can move a milestone).
        let mut wanted: Vec<(&Live, Vec<&str>)> = Vec::new();
        for sequence in &sequences {
            let after = sequence.launched_at.as_str();
            let mut candidates: Vec<&str> = match &sequence.source {
                Source::Contacts => batch
                    .changed
                    .iter()
                    .filter(|(_, at)| at.as_str() >= after)
                    .map(|(id, _)| id.as_str())
                    .collect(),
                Source::Engagement(kind, source) => batch
                    .engaged
                    .iter()
                    .filter(|(campaign, event, _, at)| {
                        campaign == source && event == kind && at.as_str() >= after
                    })
                    .map(|(_, _, contact, _)| contact.as_str())
                    .collect(),
            };
            // A contact who clicked twice is one candidate.
            candidates.sort_unstable();
            candidates.dedup();
            if !candidates.is_empty() {
                wanted.push((sequence, candidates));
            }
        }
        if wanted.is_empty() {
            continue;
        }
        let mut ids: Vec<String> = wanted
            .iter()
            .flat_map(|(_, c)| c.iter().map(|id| id.to_string()))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let contacts = documents::get_many(db, &org_id, DocumentKind::Contact, &ids).await?;
        for (sequence, candidates) in wanted {
            let Ok(filter) = audience::filter(db, &org_id, &sequence.spec).await else {
                // No usable audience: the campaign's blockers say why; nobody enters.
                continue;
            };
            // The audience's compiled predicate narrows the candidates in SQL, as a launch's
            // pages and reach do; the evaluator decides what it cannot.
            let narrowed = audience::narrowed_among(db, &org_id, &filter, &candidates).await?;
            let in_audience = |id: &str, contact: &Value| {
                narrowed.as_ref().is_none_or(|kept| kept.contains(id)) && filter.matches(contact)
            };
            enroll(
                tx,
                db.backend,
                sequence,
                &in_audience,
                &contacts,
                &candidates,
                now,
            )
            .await?;
        }
    }
    Ok(())
}

/// Enrolls the candidates of one sequence who are `in_audience`; for a milestone campaign,
/// first lets go of pending milestones the contact's data no longer gives.
async fn enroll(
    tx: &mut Tx,
    backend: Backend,
    sequence: &Live,
    in_audience: &(dyn Fn(&str, &Value) -> bool + Sync),
    contacts: &HashMap<String, Value>,
    candidates: &[&str],
    now: chrono::DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let spec = &sequence.spec;
    let mut rows: Vec<NewEnrollment> = Vec::new();
    // For a milestone campaign: each candidate's milestone now ('' for none).
    let mut milestones: Vec<(&str, String)> = Vec::new();
    for id in candidates {
        let Some(contact) = contacts.get(*id) else {
            continue;
        };
        let row = in_audience(id, contact)
            .then(|| drip::enrollment_for(spec, id, contact, now))
            .flatten();
        if spec.campaign_type == CampaignType::Milestone {
            let milestone = row
                .as_ref()
                .filter(|r| r.status == "active")
                .map(|r| r.milestone.clone())
                .unwrap_or_default();
            milestones.push((id, milestone));
        }
        rows.extend(row);
    }
    if !milestones.is_empty() {
        drip::release_moved(
            tx,
            backend,
            &sequence.org_id,
            &sequence.campaign_id,
            &milestones,
            now,
        )
        .await?;
    }
    if !rows.is_empty() {
        let added = drip::insert_enrollments(
            tx,
            backend,
            &sequence.org_id,
            &sequence.campaign_id,
            now,
            &rows,
        )
        .await?;
        if added > 0 {
            tracing::debug!(campaign = %sequence.campaign_id, added, "contacts enrolled");
        }
    }
    Ok(())
}
