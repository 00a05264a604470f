//! Drip and milestone sequences (`api.md` section 11): enrolling contacts, and sending each
//! contact's steps on that contact's own clock.
//!
//! One `enrollments` row per (campaign, contact, milestone date) is the contact's durable timer:
//! `poll_at` says when the scheduler next looks at it (its next step's due time, or a claim's
//! lease), through a partial index on active, unheld rows, so a poll costs the same with ten or
//! a million steps waiting. A claim moves `poll_at` a lease ahead; a node that dies holding rows
//! leaves them to come due again when the lease runs out. A step's sends go through the ledger
//! under the step's own run ([`step_run_id`]), so each (enrollment, step, channel) is sent at
//! most once however often a row is claimed. The progression itself (due times, `when`) is the
//! domain's (`herald_domain::drip`).

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use herald_domain::document::DocumentKind;
use herald_domain::drip::{self, Enrollment, EnrollmentMode, ExitOn, StepEngagement, When};
use herald_domain::spec::{CampaignSpec, CampaignType, Category, Channel};
use herald_domain::template::CompiledTemplate;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use sqlx::Row;

use super::audience;
use super::jobs::{db_time, Lease, RunPlan};
use super::message::RunCtx;
use super::report::{RunReport, SendRunError};
use super::run::{self, RunOutcome, Sender};
use crate::campaigns::{self, CommandMeta};
use crate::db::{Backend, Db, Tx};
use crate::documents;
use crate::store::{self, format_time};

/// Enrollments claimed by one poll.
pub const STEP_BATCH: i64 = 1000;
/// How long a claimed enrollment stays this node's before another may take it.
const STEP_LEASE: chrono::Duration = chrono::Duration::seconds(30);
/// Rows per multi-row statement.
const CHUNK: usize = 500;

/// The ledger run of one step of one campaign (and milestone date): a valid id (the send key
/// `<runId>:<contactId>:<channel>` vendors echo back must parse), so a hash of the three.
pub fn step_run_id(campaign_id: &str, step_id: &str, milestone: &str) -> String {
    let mut hash = Sha256::new();
    for part in [campaign_id, step_id, milestone] {
        hash.update(part.as_bytes());
        hash.update([0u8]);
    }
    let digest = hash.finalize();
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("step-{hex}")
}

/// One enrollment row as the step sender reads it.
#[derive(Debug, Clone)]
pub struct DueStep {
    pub org_id: String,
    pub campaign_id: String,
    pub contact_id: String,
    pub milestone: String,
    pub next_step: usize,
    pub step_due_at: DateTime<Utc>,
    pub enrolled_at: DateTime<Utc>,
    pub skipped: i64,
}

/// Claims up to `limit` enrollments whose next step is due, for `node_id`: their `poll_at`
/// moves a lease ahead, so a crashed node's rows come due again by themselves. Due and lease
/// times are read on the database's clock, as the jobs' are, so nodes whose clocks disagree
/// neither take a step early nor steal a live lease.
pub async fn claim_due(db: &Db, node_id: &str, limit: i64) -> Result<Vec<DueStep>, sqlx::Error> {
    let now = Utc::now();
    let db_now = db_time(db.backend, 0);
    let due = format!(
        "select {{id}} from enrollments where status = 'active' and held = 0 and poll_at <= {db_now}
         order by poll_at limit $2"
    );
    // The claimed rows by their physical ids, so the update reads exactly them: a join on the
    // key was planned through the per-campaign index and read every active row per claim.
    let rows = match db.backend {
        Backend::Postgres => format!(
            "ctid = any(array({} for update skip locked))",
            due.replace("{id}", "ctid")
        ),
        Backend::Sqlite => format!("rowid in ({})", due.replace("{id}", "rowid")),
    };
    let lease_until = db_time(db.backend, STEP_LEASE.num_milliseconds());
    let sql = format!(
        "update enrollments set poll_at = {lease_until}, locked_by = $1, updated_at = {db_now}
         where {rows}
         returning org_id, campaign_id, contact_id, milestone, next_step, step_due_at, enrolled_at, skipped"
    );
    let rows = sqlx::query(&sql)
        .bind(node_id)
        .bind(limit)
        .fetch_all(&db.write)
        .await?;
    rows.iter()
        .map(|row| {
            Ok(DueStep {
                org_id: row.try_get("org_id")?,
                campaign_id: row.try_get("campaign_id")?,
                contact_id: row.try_get("contact_id")?,
                milestone: row.try_get("milestone")?,
                next_step: row.try_get::<i64, _>("next_step")?.max(0) as usize,
                step_due_at: parse_time(
                    row.try_get::<Option<String>, _>("step_due_at")?.as_deref(),
                )
                .unwrap_or(now),
                enrolled_at: parse_time(Some(&row.try_get::<String, _>("enrolled_at")?))
                    .unwrap_or(now),
                skipped: row.try_get("skipped")?,
            })
        })
        .collect()
}

fn parse_time(text: Option<&str>) -> Option<DateTime<Utc>> {
    text.and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// A new enrollment row.
pub(super) struct NewEnrollment {
    contact_id: String,
    pub(super) milestone: String,
    pub(super) status: &'static str,
    exit_reason: Option<&'static str>,
    starts_at: DateTime<Utc>,
    step_due_at: Option<DateTime<Utc>>,
    zone: String,
}

/// Inserts enrollments that do not exist yet (a contact is enrolled once per campaign and
/// milestone date). A milestone let go of because the contact's date moved away
/// ([`release_moved`]) comes back when it moves back, and a pending milestone whose time moved
/// within its day takes the new time. Returns how many rows changed.
pub(super) async fn insert_enrollments(
    tx: &mut Tx,
    backend: Backend,
    org_id: &str,
    campaign_id: &str,
    enrolled_at: DateTime<Utc>,
    rows: &[NewEnrollment],
) -> Result<u64, sqlx::Error> {
    let mut entered = Vec::new();
    let mut exited = Vec::new();
    let now = format_time(Utc::now());
    let enrolled = format_time(enrolled_at);
    // One row per key in a statement: an upsert may not touch a row twice.
    let mut seen = HashSet::new();
    let rows: Vec<&NewEnrollment> = rows
        .iter()
        .filter(|r| seen.insert((&r.contact_id, &r.milestone)))
        .collect();
    for chunk in rows.chunks(CHUNK) {
        let sql = format!(
            "insert into enrollments (org_id, campaign_id, enrolled_at, updated_at, contact_id, milestone, status, exit_reason, starts_at, step_due_at, poll_at, zone)
             values {}
             on conflict (org_id, campaign_id, contact_id, milestone) do update set
               status = excluded.status, exit_reason = excluded.exit_reason, next_step = 0, skipped = 0,
               enrolled_at = excluded.enrolled_at, starts_at = excluded.starts_at,
               step_due_at = excluded.step_due_at, poll_at = excluded.poll_at, zone = excluded.zone,
               updated_at = excluded.updated_at
             where (enrollments.status = 'exited' and enrollments.exit_reason = 'milestone-moved')
                or (enrollments.milestone <> '' and enrollments.status = 'active' and enrollments.next_step = 0
                    and enrollments.locked_by is null and enrollments.starts_at <> excluded.starts_at)
             returning contact_id, milestone, status, exit_reason, starts_at, zone",
            store::param_rows("$1, $2, $3, $4, ", 5, 8, chunk.len())
        );
        let mut query = sqlx::query(&sql)
            .bind(org_id)
            .bind(campaign_id)
            .bind(&enrolled)
            .bind(&now);
        for row in chunk {
            let due = row.step_due_at.map(format_time);
            query = query
                .bind(&row.contact_id)
                .bind(&row.milestone)
                .bind(row.status)
                .bind(row.exit_reason)
                .bind(format_time(row.starts_at))
                .bind(due.clone())
                .bind(due)
                .bind(&row.zone);
        }
        for row in query.fetch_all(&mut **tx).await? {
            let contact_id: String = row.try_get("contact_id")?;
            let milestone: String = row.try_get("milestone")?;
            if row.try_get::<String, _>("status")? == "active" {
                entered.push(drip::EnrolledContact {
                    contact_id,
                    milestone,
                    starts_at: parse_time(Some(&row.try_get::<String, _>("starts_at")?))
                        .unwrap_or(enrolled_at),
                    zone: row.try_get("zone")?,
                });
            } else {
                exited.push(drip::ExitedContact {
                    contact_id,
                    milestone,
                    reason: row
                        .try_get::<Option<String>, _>("exit_reason")?
                        .unwrap_or_default(),
                });
            }
        }
    }
    let added = (entered.len() + exited.len()) as u64;
    log_batch(
        tx,
        backend,
        org_id,
        campaign_id,
        drip::ENROLLED_EVENT_TYPE,
        entered,
    )
    .await?;
    log_batch(
        tx,
        backend,
        org_id,
        campaign_id,
        drip::EXITED_EVENT_TYPE,
        exited,
    )
    .await?;
    Ok(added)
}

/// Appends one enrollment event of `event_type` for `contacts` (none: nothing) in the
/// transaction that wrote their rows, on a stream of its own.
async fn log_batch<C: serde::Serialize>(
    tx: &mut Tx,
    backend: Backend,
    org_id: &str,
    campaign_id: &str,
    event_type: &str,
    contacts: Vec<C>,
) -> Result<(), sqlx::Error> {
    if contacts.is_empty() {
        return Ok(());
    }
    let at = Utc::now();
    let data = drip::EnrollmentBatch {
        campaign_id: campaign_id.to_string(),
        contacts,
        at,
    };
    let batch = uuid::Uuid::now_v7().to_string();
    let event = store::NewEvent {
        event_type: event_type.to_string(),
        event_version: "1".to_string(),
        data: serde_json::to_value(&data).unwrap_or_default(),
    };
    let metadata = herald_projections::record::Metadata {
        actor: "herald:sequencer".to_string(),
        org_id: org_id.to_string(),
        request_id: String::new(),
        correlation_id: campaign_id.to_string(),
        causation_id: batch.clone(),
    };
    let stream = drip::enrollment_stream(org_id, campaign_id, &batch);
    store::append(tx, backend, &stream, 0, &[event], &metadata, at)
        .await
        .map_err(|e| match e {
            store::AppendError::Db(e) => e,
            // A new stream per batch: no other writer can hold its first revision.
            store::AppendError::Conflict => sqlx::Error::Protocol(format!("{stream} was taken")),
        })?;
    Ok(())
}

/// The enrollment of one contact at `at`: the first step due, or for a milestone campaign, the
/// contact's next milestone (`None` when it has passed and does not repeat, or the field is
/// absent).
pub(super) fn enrollment_for(
    spec: &CampaignSpec,
    contact_id: &str,
    contact: &Value,
    at: DateTime<Utc>,
) -> Option<NewEnrollment> {
    let first = spec.steps.first()?;
    let tz = drip::zone(contact["timezone"].as_str(), spec.timezone());
    let zone = tz.name().to_string();
    let (milestone, starts_at) = match &spec.trigger {
        Some(trigger) if spec.campaign_type == CampaignType::Milestone => {
            let value = path_value(contact, &trigger.field)?;
            if value.is_null() {
                return None;
            }
            match drip::next_milestone(value, trigger, tz, at) {
                Some((date, instant)) => (date.format("%Y-%m-%d").to_string(), instant),
                None if drip::milestone_at(value, trigger, tz).is_none() => {
                    // Not a date: skipped, and the skip shows on the contact's enrollment.
                    return Some(NewEnrollment {
                        contact_id: contact_id.to_string(),
                        milestone: String::new(),
                        status: "exited",
                        exit_reason: Some("milestone-not-a-date"),
                        starts_at: at,
                        step_due_at: None,
                        zone,
                    });
                }
                None => return None,
            }
        }
        _ => (String::new(), at),
    };
    Some(NewEnrollment {
        contact_id: contact_id.to_string(),
        milestone,
        status: "active",
        exit_reason: None,
        starts_at,
        step_due_at: Some(drip::due_after(starts_at, first, tz)),
        zone,
    })
}

/// Lets go of the pending milestones (first step not run, not claimed) that the contacts' data
/// no longer gives: each `(contact, milestone)` is a contact's milestone now ('' for none).
/// Those enrollments exit as `milestone-moved`.
pub(super) async fn release_moved(
    tx: &mut Tx,
    backend: Backend,
    org_id: &str,
    campaign_id: &str,
    current: &[(&str, String)],
    now: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    let mut released = Vec::new();
    let now = format_time(now);
    for chunk in current.chunks(CHUNK) {
        let ids = store::params(4, chunk.len());
        let first = 4 + chunk.len();
        let pairs = store::param_rows("", first, 2, chunk.len());
        let sql = format!(
            "update enrollments set status = 'exited', exit_reason = 'milestone-moved', step_due_at = null, poll_at = null, updated_at = $1
             where org_id = $2 and campaign_id = $3 and status = 'active' and next_step = 0 and locked_by is null
               and contact_id in ({ids}) and (contact_id, milestone) not in (values {pairs})
             returning contact_id, milestone"
        );
        let mut query = sqlx::query(&sql).bind(&now).bind(org_id).bind(campaign_id);
        for (contact, _) in chunk {
            query = query.bind(*contact);
        }
        for (contact, milestone) in chunk {
            query = query.bind(*contact).bind(milestone);
        }
        for row in query.fetch_all(&mut **tx).await? {
            released.push(drip::ExitedContact {
                contact_id: row.try_get("contact_id")?,
                milestone: row.try_get("milestone")?,
                reason: "milestone-moved".to_string(),
            });
        }
    }
    let count = released.len() as u64;
    log_batch(
        tx,
        backend,
        org_id,
        campaign_id,
        drip::EXITED_EVENT_TYPE,
        released,
    )
    .await?;
    Ok(count)
}

/// Erasure of one contact's enrollments (ADR 15): its rows and the enrollment events that list
/// it lose the milestone date (read from one of its date attributes), the milestone's moment
/// (which gives the date away) and the zone. A milestone becomes `"<erased> <n>"`, numbered
/// within the campaign so the rows keep their keys apart; a milestone row's `starts_at` becomes
/// its enrollment time and an event's `startsAt` its batch's `at`; zones become `erased`.
/// Enrollments still active exit as `contact-deleted`, with an `EnrollmentsExited` event, as
/// the step sender would on finding the contact gone, so nothing is timed by what was erased.
/// Returns how many events were rewritten; a second call rewrites none.
pub async fn forget_contact(
    tx: &mut Tx,
    backend: Backend,
    org_id: &str,
    contact_id: &str,
    erased: &str,
) -> Result<u64, sqlx::Error> {
    let rows = sqlx::query(
        "select campaign_id, milestone, status, zone from enrollments
         where org_id = $1 and contact_id = $2 order by campaign_id, milestone",
    )
    .bind(org_id)
    .bind(contact_id)
    .fetch_all(&mut **tx)
    .await?;
    let is_erased = |milestone: &str| milestone.starts_with(erased);
    let mut by_campaign: BTreeMap<String, Vec<(String, String, String)>> = BTreeMap::new();
    for row in &rows {
        by_campaign
            .entry(row.try_get("campaign_id")?)
            .or_default()
            .push((
                row.try_get("milestone")?,
                row.try_get("status")?,
                row.try_get("zone")?,
            ));
    }
    let now = format_time(Utc::now());
    let mut changed = Vec::new();
    for (campaign, rows) in &by_campaign {
        // Original milestone → its replacement.
        let mut renamed: HashMap<&str, String> = HashMap::new();
        let mut numbered = rows.iter().filter(|(m, ..)| is_erased(m)).count();
        let mut exited = Vec::new();
        for (milestone, status, zone) in rows {
            let personal = !milestone.is_empty() && !is_erased(milestone);
            if !personal && zone == erased && status != "active" {
                continue;
            }
            let new_milestone = if personal {
                numbered += 1;
                let name = format!("{erased} {numbered}");
                renamed.insert(milestone, name.clone());
                name
            } else {
                milestone.clone()
            };
            sqlx::query(
                "update enrollments set milestone = $5, zone = $6,
                   starts_at = case when milestone = '' then starts_at else enrolled_at end,
                   status = case when status = 'active' then 'exited' else status end,
                   exit_reason = case when status = 'active' then 'contact-deleted' else exit_reason end,
                   step_due_at = null, poll_at = null, locked_by = null, updated_at = $7
                 where org_id = $1 and campaign_id = $2 and contact_id = $3 and milestone = $4",
            )
            .bind(org_id)
            .bind(campaign)
            .bind(contact_id)
            .bind(milestone)
            .bind(&new_milestone)
            .bind(erased)
            .bind(&now)
            .execute(&mut **tx)
            .await?;
            if status == "active" {
                exited.push(drip::ExitedContact {
                    contact_id: contact_id.to_string(),
                    milestone: new_milestone,
                    reason: "contact-deleted".to_string(),
                });
            }
        }
        for (position, mut data) in
            store::enrollment_data(tx, backend, org_id, campaign, contact_id).await?
        {
            let at = data["at"].clone();
            let Some(contacts) = data.get_mut("contacts").and_then(Value::as_array_mut) else {
                continue;
            };
            let mut edited = false;
            for entry in contacts.iter_mut().filter(|c| c["contactId"] == contact_id) {
                let Some(entry) = entry.as_object_mut() else {
                    continue;
                };
                if let Some(Value::String(milestone)) = entry.get_mut("milestone") {
                    if !milestone.is_empty() && !is_erased(milestone) {
                        // No row of that name: an event written after its row was renamed (a
                        // step sender that claimed the row before the erasure).
                        *milestone = renamed
                            .get(milestone.as_str())
                            .cloned()
                            .unwrap_or_else(|| erased.to_string());
                        if entry.contains_key("startsAt") {
                            entry.insert("startsAt".to_string(), at.clone());
                        }
                        edited = true;
                    }
                }
                if let Some(zone) = entry.get_mut("zone").filter(|z| *z != erased) {
                    *zone = Value::String(erased.to_string());
                    edited = true;
                }
            }
            if edited {
                changed.push((position, data));
            }
        }
        log_batch(
            tx,
            backend,
            org_id,
            campaign,
            drip::EXITED_EVENT_TYPE,
            exited,
        )
        .await?;
    }
    store::replace_data(tx, backend, &changed).await?;
    Ok(changed.len() as u64)
}

/// The value at a dot path of a contact (`attributes.renewalAt`).
fn path_value<'a>(contact: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(contact, |value, name| value.get(name))
}

/// What happened to one claimed enrollment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Outcome {
    /// The step ran (sent, or skipped by its `when`), and the next is due at this time, or the
    /// sequence is finished (`None`).
    Advanced {
        next: usize,
        skipped_bit: i64,
        due: Option<String>,
    },
    /// The contact leaves the sequence.
    Exited(&'static str),
    /// The campaign is paused: held until it resumes.
    Held,
    /// Some of the step's sends fell inside the org's quiet hours: the same step is due again
    /// at the window's end (the ledger keeps what already went from going twice).
    Deferred(String),
}

impl Sender {
    /// Enrolls a launched drip or milestone run's audience: a contact at a time, a page at a
    /// time, each with its first step's due time. Safe to run again: a contact is enrolled once.
    #[tracing::instrument(skip_all, fields(org = %org_id, campaign = %campaign_id, run = %run_id))]
    pub async fn enroll_run(
        &self,
        org_id: &str,
        campaign_id: &str,
        run_id: &str,
        plan: &RunPlan,
        lease: &Lease,
    ) -> Result<RunOutcome, SendRunError> {
        let spec = match self.running_campaign(org_id, campaign_id).await? {
            Ok((_, spec)) => spec,
            Err(stop) => return Ok(stop),
        };
        if !drip::Enrollment::at_launch(spec.enrollment.as_ref()) {
            // Engagement-triggered: nobody enters at launch.
            return Ok(RunOutcome::Finished(RunReport::default()));
        }
        let at = parse_time(Some(&plan.launched_at)).unwrap_or_else(Utc::now);
        let filter = audience::filter(self.db(), org_id, &spec).await?;
        let mut after = String::new();
        let mut enrolled = 0u64;
        loop {
            if !lease.renew().await? {
                return Ok(RunOutcome::Interrupted);
            }
            let page = audience::page(
                self.db(),
                org_id,
                &filter,
                &after,
                &plan.launched_at,
                audience::PAGE,
            )
            .await?;
            let Some((last, _)) = page.last() else { break };
            after = last.clone();
            let full = page.len() as i64 == audience::PAGE;
            let rows: Vec<NewEnrollment> = page
                .iter()
                .filter(|(_, contact)| filter.matches(contact))
                .filter_map(|(id, contact)| enrollment_for(&spec, id, contact, at))
                .collect();
            if !rows.is_empty() {
                let mut tx = self.db().begin().await?;
                enrolled +=
                    insert_enrollments(&mut tx, self.db().backend, org_id, campaign_id, at, &rows)
                        .await?;
                tx.commit().await?;
            }
            if !full {
                break;
            }
        }
        tracing::info!(enrolled, "audience enrolled");
        Ok(RunOutcome::Finished(RunReport::default()))
    }

    /// Sends the steps of a claimed batch: per campaign, checks it still runs, reads the
    /// contacts and their engagement, sends each due step whose `when` holds through the
    /// ledger, and moves each enrollment on. Returns the campaigns whose enrollments moved.
    pub async fn send_due_steps(
        &self,
        node_id: &str,
        batch: Vec<DueStep>,
    ) -> Result<Vec<(String, String)>, SendRunError> {
        let mut by_campaign: BTreeMap<(String, String), Vec<DueStep>> = BTreeMap::new();
        for row in batch {
            by_campaign
                .entry((row.org_id.clone(), row.campaign_id.clone()))
                .or_default()
                .push(row);
        }
        let mut touched = Vec::new();
        for ((org_id, campaign_id), rows) in by_campaign {
            self.send_campaign_steps(node_id, &org_id, &campaign_id, rows)
                .await?;
            touched.push((org_id, campaign_id));
        }
        Ok(touched)
    }

    async fn send_campaign_steps(
        &self,
        node_id: &str,
        org_id: &str,
        campaign_id: &str,
        rows: Vec<DueStep>,
    ) -> Result<(), SendRunError> {
        let campaign = campaigns::get(self.db(), org_id, campaign_id).await?;
        let stop = match &campaign {
            None => Some(Outcome::Exited("campaign-deleted")),
            Some(doc) => match run::stop_reason(doc) {
                None => None,
                Some(RunOutcome::Paused) => Some(Outcome::Held),
                Some(_) if doc["state"] == "deleted" => Some(Outcome::Exited("campaign-deleted")),
                Some(_) => Some(Outcome::Exited("campaign-completed")),
            },
        };
        if let Some(outcome) = stop {
            let outcomes = rows.iter().map(|r| (r, outcome.clone())).collect();
            return Ok(self
                .record(node_id, org_id, campaign_id, outcomes, &[])
                .await?);
        }
        let campaign = campaign.unwrap_or_default();
        let spec: CampaignSpec = serde_json::from_value(campaign.clone())
            .map_err(|e| SendRunError::Setup(format!("the campaign cannot be read: {e}")))?;
        let ids: Vec<String> = rows.iter().map(|r| r.contact_id.clone()).collect();
        let mut contacts =
            documents::get_many(self.db(), org_id, DocumentKind::Contact, &ids).await?;
        // `unsubscribed` as the suppression list has it, for the exit below (the sends check
        // the list again in their own transaction).
        crate::suppressions::overlay(self.db(), org_id, contacts.values_mut()).await?;
        let activity = if needs_activity(&spec) {
            engagement_by_contact(self.db(), org_id, campaign_id, &ids).await?
        } else {
            HashMap::new()
        };
        let conditions: Vec<_> = spec
            .steps
            .iter()
            .map(|s| s.when.as_ref().map(When::compile))
            .collect();
        // Each milestone's step runs, hashed once per batch rather than per contact.
        let mut step_runs: HashMap<String, HashMap<String, &str>> = HashMap::new();
        let mut outcomes: Vec<(&DueStep, Outcome)> = Vec::new();
        let yearly = spec.campaign_type == CampaignType::Milestone
            && spec
                .trigger
                .as_ref()
                .is_some_and(|t| t.repeat == drip::Repeat::Yearly);
        let mut renewals: Vec<NewEnrollment> = Vec::new();
        // Rows whose step sends, by (step, milestone): one ledger run each.
        let mut sends: BTreeMap<(usize, String), Vec<(&DueStep, &Value)>> = BTreeMap::new();
        for row in &rows {
            if row.next_step >= spec.steps.len() {
                // Its last step was recorded by an earlier attempt: finished.
                let done = Outcome::Advanced {
                    next: row.next_step,
                    skipped_bit: 0,
                    due: None,
                };
                outcomes.push((row, done));
                continue;
            }
            let Some(contact) = contacts.get(&row.contact_id) else {
                outcomes.push((row, Outcome::Exited("contact-deleted")));
                continue;
            };
            let seen = activity.get(&row.contact_id);
            if let Some(reason) = exit_reason(&spec, seen, row) {
                outcomes.push((row, Outcome::Exited(reason)));
                continue;
            }
            if unsubscribed_everywhere(&spec, contact) {
                outcomes.push((row, Outcome::Exited("unsubscribed")));
                continue;
            }
            let engagement = match seen {
                Some(seen) => {
                    let runs = step_runs
                        .entry(row.milestone.clone())
                        .or_insert_with(|| step_runs_of(&spec, campaign_id, &row.milestone));
                    seen.by_step(runs, row.enrolled_at)
                }
                None => StepEngagement::default(),
            };
            let holds = conditions[row.next_step]
                .as_ref()
                .is_none_or(|when| when.holds(&engagement, contact));
            if holds {
                sends
                    .entry((row.next_step, row.milestone.clone()))
                    .or_default()
                    .push((row, contact));
            }
            let skipped_bit = if holds { 0 } else { 1i64 << row.next_step };
            let tz = drip::zone(contact["timezone"].as_str(), spec.timezone());
            let next = row.next_step + 1;
            let due = spec
                .steps
                .get(next)
                .map(|s| format_time(drip::due_after(row.step_due_at, s, tz)));
            if due.is_none() && yearly {
                // The last step of this year's milestone: the next anniversary enrolls anew.
                renewals.extend(
                    enrollment_for(&spec, &row.contact_id, contact, Utc::now())
                        .filter(|r| r.status == "active" && r.milestone != row.milestone),
                );
            }
            outcomes.push((
                row,
                Outcome::Advanced {
                    next,
                    skipped_bit,
                    due,
                },
            ));
        }
        let mut templates: HashMap<String, CompiledTemplate> = HashMap::new();
        let mut deferred: HashMap<(String, String), DateTime<Utc>> = HashMap::new();
        for ((index, milestone), members) in sends {
            let step = &spec.steps[index];
            let Some(template_id) = step.template_id.as_ref().or(spec.template_id.as_ref()) else {
                continue;
            };
            if !templates.contains_key(template_id) {
                match self.template_by_id(org_id, template_id).await {
                    Ok(template) => {
                        templates.insert(template_id.clone(), template);
                    }
                    Err(SendRunError::Setup(reason)) => {
                        tracing::warn!(step = %step.id, %reason, "a step's template cannot be used; the step sends nothing");
                        continue;
                    }
                    Err(error) => return Err(error),
                }
            }
            let mut step_routes = Vec::new();
            for channel in step.channels_of(&spec.channels) {
                if !matches!(channel.kind(), Category::Email | Category::Sms) {
                    // Social posts and ads are per run, not per contact.
                    continue;
                }
                if let Some(route) = self.routing().route(org_id, channel, &spec).await? {
                    step_routes.push(route);
                }
            }
            let run_id = step_run_id(campaign_id, &step.id, &milestone);
            let ctx = RunCtx {
                org_id,
                campaign_id,
                run_id: &run_id,
                step_id: Some(&step.id),
                lease: None,
                campaign: &campaign,
                template: &templates[template_id],
            };
            let members: Vec<(String, Value)> = members
                .iter()
                .map(|(row, contact)| (row.contact_id.clone(), (*contact).clone()))
                .collect();
            let mut report = RunReport::default();
            self.send_page(&ctx, &step_routes, &members, true, &mut report)
                .await?;
            for (contact_id, until) in report.deferred_until {
                deferred.insert((contact_id, milestone.clone()), until);
            }
        }
        for (row, outcome) in &mut outcomes {
            if let Some(until) = deferred.get(&(row.contact_id.clone(), row.milestone.clone())) {
                *outcome = Outcome::Deferred(format_time(*until));
            }
        }
        if !deferred.is_empty() {
            // A deferred yearly milestone renews when its last step is sent, not before.
            renewals.retain(|r| !deferred.keys().any(|(contact, _)| *contact == r.contact_id));
        }
        Ok(self
            .record(node_id, org_id, campaign_id, outcomes, &renewals)
            .await?)
    }

    /// Writes what happened to each claimed enrollment, grouped into one statement per outcome
    /// and milestone, and the next year's enrollments of yearly milestones that finished. Only
    /// rows this node still holds change.
    async fn record(
        &self,
        node_id: &str,
        org_id: &str,
        campaign_id: &str,
        outcomes: Vec<(&DueStep, Outcome)>,
        renewals: &[NewEnrollment],
    ) -> Result<(), sqlx::Error> {
        let mut groups: BTreeMap<(Outcome, String), Vec<&str>> = BTreeMap::new();
        for (row, outcome) in &outcomes {
            groups
                .entry((outcome.clone(), row.milestone.clone()))
                .or_default()
                .push(&row.contact_id);
        }
        let now = format_time(Utc::now());
        let mut tx = self.db().begin().await?;
        for ((outcome, milestone), contacts) in groups {
            for chunk in contacts.chunks(CHUNK) {
                let list = store::params(6, chunk.len());
                let n = 6 + chunk.len();
                let set = match &outcome {
                    Outcome::Advanced { due: Some(_), .. } => format!(
                        "next_step = ${n}, skipped = skipped + ${}, step_due_at = ${}, poll_at = ${}",
                        n + 1,
                        n + 2,
                        n + 2
                    ),
                    Outcome::Advanced { due: None, .. } => format!(
                        "status = 'completed', next_step = ${n}, skipped = skipped + ${}, step_due_at = null, poll_at = null",
                        n + 1
                    ),
                    Outcome::Exited(_) => format!(
                        "status = 'exited', exit_reason = ${n}, step_due_at = null, poll_at = null"
                    ),
                    Outcome::Held => "held = 1, poll_at = step_due_at".to_string(),
                    Outcome::Deferred(_) => format!("poll_at = ${n}"),
                };
                let sql = format!(
                    "update enrollments set {set}, locked_by = null, updated_at = $1
                     where org_id = $2 and campaign_id = $3 and milestone = $4 and locked_by = $5
                       and status = 'active' and contact_id in ({list})"
                );
                let mut query = sqlx::query(&sql)
                    .bind(&now)
                    .bind(org_id)
                    .bind(campaign_id)
                    .bind(&milestone)
                    .bind(node_id);
                for contact in chunk {
                    query = query.bind(*contact);
                }
                query = match &outcome {
                    Outcome::Advanced {
                        next,
                        skipped_bit,
                        due,
                    } => {
                        let query = query.bind(*next as i64).bind(*skipped_bit);
                        match due {
                            Some(due) => query.bind(due.clone()),
                            None => query,
                        }
                    }
                    Outcome::Exited(reason) => query.bind(*reason),
                    Outcome::Held => query,
                    Outcome::Deferred(until) => query.bind(until.clone()),
                };
                query.execute(&mut *tx).await?;
            }
        }
        let backend = self.db().backend;
        let exited = outcomes
            .iter()
            .filter_map(|(row, outcome)| match outcome {
                Outcome::Exited(reason) => Some(drip::ExitedContact {
                    contact_id: row.contact_id.clone(),
                    milestone: row.milestone.clone(),
                    reason: reason.to_string(),
                }),
                _ => None,
            })
            .collect();
        log_batch(
            &mut tx,
            backend,
            org_id,
            campaign_id,
            drip::EXITED_EVENT_TYPE,
            exited,
        )
        .await?;
        if !renewals.is_empty() {
            insert_enrollments(&mut tx, backend, org_id, campaign_id, Utc::now(), renewals).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

fn needs_activity(spec: &CampaignSpec) -> bool {
    spec.exit.as_ref().is_some_and(|e| !e.on.is_empty())
        || spec
            .steps
            .iter()
            .any(|s| s.when.as_ref().is_some_and(|w| w.step().is_some()))
}

fn unsubscribed_everywhere(spec: &CampaignSpec, contact: &Value) -> bool {
    let personal: Vec<Channel> = spec
        .channels
        .iter()
        .copied()
        .filter(|c| matches!(c.kind(), Category::Email | Category::Sms))
        .collect();
    !personal.is_empty()
        && personal
            .iter()
            .all(|c| contact["unsubscribed"][c.id()] == Value::Bool(true))
}

/// Each step's ledger run, to the step's id, for one milestone date ('' for a drip).
fn step_runs_of<'s>(
    spec: &'s CampaignSpec,
    campaign_id: &str,
    milestone: &str,
) -> HashMap<String, &'s str> {
    spec.steps
        .iter()
        .map(|s| (step_run_id(campaign_id, &s.id, milestone), s.id.as_str()))
        .collect()
}

/// A contact's recorded engagement on one campaign (the `contact_activities` read model).
#[derive(Debug, Default)]
struct Seen {
    /// `(type, runId, human, at)`.
    events: Vec<(String, String, bool, String)>,
}

impl Seen {
    /// Human opens and clicks of each step's messages (`runs`: step run to step id) since this
    /// enrollment began.
    fn by_step(&self, runs: &HashMap<String, &str>, since: DateTime<Utc>) -> StepEngagement {
        let since = format_time(since);
        let mut engagement = StepEngagement::default();
        for (kind, run, human, at) in &self.events {
            let (Some(step), true, true) = (runs.get(run), *human, *at >= since) else {
                continue;
            };
            match kind.as_str() {
                "open" => engagement.opened.insert(step.to_string()),
                "click" => engagement.clicked.insert(step.to_string()),
                _ => false,
            };
        }
        engagement
    }
}

fn exit_reason(spec: &CampaignSpec, seen: Option<&Seen>, row: &DueStep) -> Option<&'static str> {
    let exit = spec.exit.as_ref()?;
    let seen = seen?;
    let since = format_time(row.enrolled_at);
    exit.on.iter().copied().find_map(|on| {
        let hit = seen.events.iter().any(|(kind, _, human, at)| {
            *at >= since
                && match on {
                    ExitOn::Conversion => kind == "conversion",
                    ExitOn::Reply => kind == "reply",
                    ExitOn::Click => kind == "click" && *human,
                }
        });
        hit.then_some(on.as_str())
    })
}

async fn engagement_by_contact(
    db: &Db,
    org_id: &str,
    campaign_id: &str,
    ids: &[String],
) -> Result<HashMap<String, Seen>, sqlx::Error> {
    let mut out: HashMap<String, Seen> = HashMap::new();
    for chunk in ids.chunks(CHUNK) {
        let sql = format!(
            "select contact_id, type, at, detail from contact_activities
             where org_id = $1 and campaign_id = $2 and type in ('open', 'click', 'conversion', 'reply')
               and contact_id in ({})",
            store::params(3, chunk.len())
        );
        let mut query = sqlx::query(&sql).bind(org_id).bind(campaign_id);
        for id in chunk {
            query = query.bind(id);
        }
        for row in query.fetch_all(&db.read).await? {
            let detail: String = row.try_get("detail")?;
            let detail: Value = serde_json::from_str(&detail).unwrap_or(Value::Null);
            let human = detail["classification"]
                .as_str()
                .is_none_or(|c| c == "human");
            out.entry(row.try_get("contact_id")?)
                .or_default()
                .events
                .push((
                    row.try_get("type")?,
                    detail["runId"].as_str().unwrap_or_default().to_string(),
                    human,
                    row.try_get("at")?,
                ));
        }
    }
    Ok(out)
}

/// Makes the enrollments of the campaigns a batch of the log touched follow their campaigns:
/// held while paused, released when running, exited when completed or deleted. Reads the
/// campaigns' rows, so applying an old batch again cannot undo a newer change.
pub async fn sync_enrollments(
    tx: &mut Tx,
    campaigns: &HashSet<(String, String)>,
) -> Result<(), sqlx::Error> {
    let now = format_time(Utc::now());
    for (org_id, campaign_id) in campaigns {
        let row = sqlx::query("select state, status from campaigns where org_id = $1 and id = $2")
            .bind(org_id)
            .bind(campaign_id)
            .fetch_optional(&mut **tx)
            .await?;
        let Some(row) = row else { continue };
        let state: String = row.try_get("state")?;
        let status: String = row.try_get("status")?;
        let (sql, reason) = match (state.as_str(), status.as_str()) {
            ("deleted", _) => (EXIT_ALL, Some("campaign-deleted")),
            (_, "completed") => (EXIT_ALL, Some("campaign-completed")),
            (_, "paused") => (
                "update enrollments set held = 1, updated_at = $1
                 where org_id = $2 and campaign_id = $3 and status = 'active' and held = 0",
                None,
            ),
            _ => (
                "update enrollments set held = 0, updated_at = $1
                 where org_id = $2 and campaign_id = $3 and status = 'active' and held = 1",
                None,
            ),
        };
        let mut query = sqlx::query(sql).bind(&now).bind(org_id).bind(campaign_id);
        if let Some(reason) = reason {
            query = query.bind(reason);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

const EXIT_ALL: &str = "update enrollments set status = 'exited', exit_reason = $4, step_due_at = null, poll_at = null, locked_by = null, updated_at = $1
     where org_id = $2 and campaign_id = $3 and status = 'active'";

/// Completes a `launch`-enrolled drip once its audience is enrolled and every enrollment has
/// finished or exited (`api.md` section 11). Continuous, triggered and milestone campaigns keep
/// running. Returns whether the campaign changed.
pub async fn complete_if_done(
    db: &Db,
    meta: &CommandMeta,
    campaign_id: &str,
) -> anyhow::Result<bool> {
    let org_id = meta.org_id.as_str();
    let Some(doc) = campaigns::get(db, org_id, campaign_id).await? else {
        return Ok(false);
    };
    let Ok(spec) = serde_json::from_value::<CampaignSpec>(doc.clone()) else {
        return Ok(false);
    };
    let launch_only = spec.campaign_type == CampaignType::Drip
        && matches!(
            spec.enrollment,
            None | Some(Enrollment::Mode(EnrollmentMode::Launch))
        );
    if !launch_only || doc["status"] != "running" || doc["state"] == "deleted" {
        return Ok(false);
    }
    let busy: Option<i64> = sqlx::query_scalar(
        "select cast(1 as bigint) as one from jobs where org_id = $1 and campaign_id = $2 and kind = 'send' and state in ('scheduled', 'running')
         union all
         select cast(1 as bigint) as one from enrollments where org_id = $1 and campaign_id = $2 and status = 'active'
         limit 1",
    )
    .bind(org_id)
    .bind(campaign_id)
    .fetch_optional(&db.read)
    .await?;
    if busy.is_some() {
        return Ok(false);
    }
    let outcome = campaigns::execute(db, meta, campaign_id, false, None, None, |campaign, now| {
        let to = if campaign.status() == herald_domain::spec::Status::Running {
            herald_domain::spec::Status::Completed
        } else {
            campaign.status()
        };
        herald_domain::campaign::CampaignCommand::ChangeStatus {
            to,
            ctx: herald_domain::campaign::LaunchContext::new(now, String::new()),
        }
    })
    .await;
    Ok(outcome.is_ok_and(|o| o.changed))
}

/// The org's pending steps: active enrollments, for the health view's queue.
pub async fn pending_steps(db: &Db, org_id: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("select count(*) from enrollments where org_id = $1 and status = 'active'")
        .bind(org_id)
        .fetch_one(&db.read)
        .await
}

/// One page of a campaign's enrollments, as `GET …/enrollments` lists them: by contact id
/// (then milestone) after `after`, optionally of one status.
pub async fn list(
    db: &Db,
    org_id: &str,
    spec: &CampaignSpec,
    campaign_id: &str,
    status: Option<&str>,
    after: (&str, &str),
    limit: i64,
) -> Result<Vec<Value>, sqlx::Error> {
    let rows = sqlx::query(
        "select contact_id, milestone, enrolled_at, status, exit_reason, next_step, step_due_at, starts_at, skipped, zone
         from enrollments
         where org_id = $1 and campaign_id = $2 and ($3 = '' or status = $3) and (contact_id, milestone) > ($4, $5)
         order by contact_id, milestone limit $6",
    )
    .bind(org_id)
    .bind(campaign_id)
    .bind(status.unwrap_or(""))
    .bind(after.0)
    .bind(after.1)
    .bind(limit)
    .fetch_all(&db.read)
    .await?;
    let mut items = Vec::with_capacity(rows.len());
    for row in rows {
        let status: String = row.try_get("status")?;
        let next_step = row.try_get::<i64, _>("next_step")?.max(0) as usize;
        let skipped: i64 = row.try_get("skipped")?;
        let zone: String = row.try_get("zone")?;
        let tz = drip::zone(Some(&zone), None);
        let starts_at = parse_time(row.try_get::<Option<String>, _>("starts_at")?.as_deref());
        let active = status == "active";
        let mut due = starts_at;
        let mut steps = Vec::new();
        for (i, step) in spec.steps.iter().enumerate() {
            due = due.map(|from| drip::due_after(from, step, tz));
            let state = if i < next_step {
                if skipped & (1i64 << i) != 0 {
                    "skipped"
                } else {
                    "sent"
                }
            } else if active {
                "pending"
            } else {
                break;
            };
            steps.push(json!({"id": step.id, "status": state, "at": due.map(format_time)}));
        }
        let milestone: String = row.try_get("milestone")?;
        let mut item = json!({
            "contactId": row.try_get::<String, _>("contact_id")?,
            "enrolledAt": row.try_get::<String, _>("enrolled_at")?,
            "status": status,
            "exitReason": row.try_get::<Option<String>, _>("exit_reason")?,
            "nextStepId": if active { spec.steps.get(next_step).map(|s| s.id.clone()) } else { None },
            "nextStepAt": if active { row.try_get::<Option<String>, _>("step_due_at")? } else { None },
            "steps": steps,
        });
        if !milestone.is_empty() {
            item["milestone"] = json!(milestone);
        }
        items.push(item);
    }
    Ok(items)
}

/// The campaign's enrollments by status: `{active, completed, exited}`.
pub async fn counts(db: &Db, org_id: &str, campaign_id: &str) -> Result<Value, sqlx::Error> {
    let rows = sqlx::query(
        "select status, count(*) as n from enrollments where org_id = $1 and campaign_id = $2 group by status",
    )
    .bind(org_id)
    .bind(campaign_id)
    .fetch_all(&db.read)
    .await?;
    let mut out = json!({"active": 0, "completed": 0, "exited": 0});
    for row in rows {
        let status: String = row.try_get("status")?;
        out[status] = json!(row.try_get::<i64, _>("n")?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_run_is_a_valid_id_and_differs_per_campaign_step_and_milestone() {
        let a = step_run_id("camp-1", "welcome", "");
        assert!(herald_domain::is_valid_id(&a), "{a}");
        assert_eq!(a, step_run_id("camp-1", "welcome", ""));
        assert_ne!(a, step_run_id("camp-1", "nudge", ""));
        assert_ne!(a, step_run_id("camp-2", "welcome", ""));
        assert_ne!(a, step_run_id("camp-1", "welcome", "2026-07-10"));
        // The separator keeps ("a.b", "c") and ("a", "b.c") apart.
        assert_ne!(step_run_id("a.b", "c", ""), step_run_id("a", "b.c", ""));
    }
}
