//! Erasure of one contact (GDPR article 17; `api.md` section 12; ADR 15): the contact is
//! deleted, its personal fields are rewritten out of every event and row that holds them, its
//! addresses stay on the suppression list as keyed hashes, and an `Erased` tombstone goes into
//! the org's audit stream. Events keep their position, id and type.
//!
//! Jobs are rows of the `jobs` table (kind `erase`): `POST /crm/contacts/:id/erase` inserts one
//! and runs it at once; a process that stops before the end leaves it `scheduled` or `running`
//! and the next start runs it again. Every step is idempotent, so a second run (or a second
//! request) changes nothing more.
//!
//! The contact's rows are found by index only: its own stream and its suppression streams by
//! stream id, its engagement events by `events_engagement_contact`, its activities, outbox
//! messages and idempotency records by their org and contact.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::Utc;
use herald_domain::document::{DocumentCommand, DocumentError, DocumentKind};
use herald_domain::spec::Channel;
use herald_domain::suppression::{AddressKey, SUPPRESSIBLE};
use herald_projections::record::Metadata;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::Row;

use crate::analytics;
use crate::commands::{self, CommandMeta};
use crate::db::{Backend, Db, Tx};
use crate::documents::{self, DocError, Extras};
use crate::erased::{blank_free_text, ERASED};
use crate::projector::{self, Projection};
use crate::purge::audit_stream;
use crate::sending::{drip, ledger};
use crate::store::{self, format_time, NewEvent};
use crate::suppressions;
use crate::webhooks::lookup::forget_soft_bounces;

/// The `kind` of erasure jobs in the `jobs` table.
pub const JOB_KIND: &str = "erase";

/// The tombstone's event type.
pub const ERASED_EVENT_TYPE: &str = "Erased";

/// The body every `ContactCreated`/`ContactUpdated` of an erased contact is left with.
fn erased_body() -> Value {
    json!({"attributes": {}, "tags": [], "erased": true})
}

/// How long the second pass waits for the transactions that were open when the first one
/// committed (PostgreSQL): sends are short transactions, this bounds a stuck one.
const RACE_WAIT: Duration = Duration::from_secs(30);

/// A job's payload: which contact, who asked, when, and when it ended.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Payload {
    contact_id: String,
    requested_by: String,
    requested_at: String,
    #[serde(default)]
    finished_at: Option<String>,
}

/// A job as `GET /crm/contacts/erasures/:jobId` shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ErasureJob {
    pub job_id: String,
    /// `pending`, `running`, `done` or `failed`.
    pub status: String,
    pub contact_id: String,
    pub requested_at: String,
    pub finished_at: Option<String>,
}

/// Records a job erasing `contact_id`; `None` when the org never had that contact (no stream).
pub async fn enqueue(
    db: &Db,
    org_id: &str,
    contact_id: &str,
    actor: &str,
) -> Result<Option<String>, sqlx::Error> {
    let stream = documents::stream_id(DocumentKind::Contact, org_id, contact_id);
    let known: Option<i64> =
        sqlx::query_scalar("select revision from events where stream_id = $1 and revision = 0")
            .bind(&stream)
            .fetch_optional(&db.read)
            .await?;
    if known.is_none() {
        return Ok(None);
    }
    let id = format!("erase-{}", uuid::Uuid::now_v7());
    let now = format_time(Utc::now());
    let payload = Payload {
        contact_id: contact_id.to_string(),
        requested_by: actor.to_string(),
        requested_at: now.clone(),
        finished_at: None,
    };
    sqlx::query(
        "insert into jobs (id, org_id, campaign_id, kind, run_at, state, payload, created_at, updated_at)
         values ($1, $2, '', $3, $4, 'scheduled', $5, $4, $4)",
    )
    .bind(&id)
    .bind(org_id)
    .bind(JOB_KIND)
    .bind(&now)
    .bind(serde_json::to_string(&payload).expect("a payload serializes"))
    .execute(&db.write)
    .await?;
    Ok(Some(id))
}

/// A job of `org_id`, if there is one with that id.
pub async fn status(
    db: &Db,
    org_id: &str,
    job_id: &str,
) -> Result<Option<ErasureJob>, sqlx::Error> {
    let row =
        sqlx::query("select state, payload from jobs where id = $1 and org_id = $2 and kind = $3")
            .bind(job_id)
            .bind(org_id)
            .bind(JOB_KIND)
            .fetch_optional(&db.read)
            .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let state: String = row.try_get("state")?;
    let payload: String = row.try_get("payload")?;
    let Ok(payload) = serde_json::from_str::<Payload>(&payload) else {
        return Ok(None);
    };
    let status = match state.as_str() {
        "scheduled" => "pending",
        "running" => "running",
        "done" => "done",
        _ => "failed",
    };
    Ok(Some(ErasureJob {
        job_id: job_id.to_string(),
        status: status.to_string(),
        contact_id: payload.contact_id,
        requested_at: payload.requested_at,
        finished_at: payload.finished_at,
    }))
}

/// Runs every erasure a stopped process left unfinished.
pub async fn resume(db: &Db) -> Result<(), sqlx::Error> {
    let ids: Vec<String> = sqlx::query_scalar(
        "select id from jobs where kind = $1 and state in ('scheduled', 'running') order by id",
    )
    .bind(JOB_KIND)
    .fetch_all(&db.read)
    .await?;
    for id in ids {
        let db = db.clone();
        tokio::spawn(async move { run(&db, &id).await });
    }
    Ok(())
}

/// Runs a job to the end and records its outcome; a failure is logged without its detail
/// (a database error can quote the values being erased) and leaves the job `failed`.
#[tracing::instrument(skip_all, fields(job = %job_id))]
pub async fn run(db: &Db, job_id: &str) {
    if let Err(error) = run_here(db, job_id).await {
        tracing::error!(kind = %describe(&error), "erasure failed");
        let failed = sqlx::query(
            "update jobs set state = 'failed', last_error = $2, updated_at = $3 where id = $1",
        )
        .bind(job_id)
        .bind("the erasure failed; see the server log")
        .bind(format_time(Utc::now()))
        .execute(&db.write)
        .await;
        if let Err(error) = failed {
            tracing::error!(kind = %describe(&error.into()), "could not record a failed erasure");
        }
    }
}

async fn run_here(db: &Db, job_id: &str) -> anyhow::Result<()> {
    let claimed = sqlx::query(
        "update jobs set state = 'running', attempts = attempts + 1, updated_at = $2
         where id = $1 and kind = 'erase' and state in ('scheduled', 'running')
         returning org_id, payload",
    )
    .bind(job_id)
    .bind(format_time(Utc::now()))
    .fetch_optional(&db.write)
    .await?;
    let Some(row) = claimed else {
        return Ok(());
    };
    let org_id: String = row.try_get("org_id")?;
    let mut payload: Payload = serde_json::from_str(&row.try_get::<String, _>("payload")?)?;
    let Some(key) = db.erasure_key.clone() else {
        anyhow::bail!("no erasure key: erasure runs in the server only");
    };
    let erasure = Erasure {
        db,
        key: &key,
        org_id: &org_id,
        contact_id: &payload.contact_id,
        metadata: Metadata {
            actor: payload.requested_by.clone(),
            org_id: org_id.clone(),
            request_id: job_id.to_string(),
            correlation_id: job_id.to_string(),
            causation_id: job_id.to_string(),
        },
        job_id,
    };
    let rewritten = erasure.run().await?;
    payload.finished_at = Some(format_time(Utc::now()));
    sqlx::query(
        "update jobs set state = 'done', payload = $2, last_error = null, updated_at = $3 where id = $1",
    )
    .bind(job_id)
    .bind(serde_json::to_string(&payload)?)
    .bind(format_time(Utc::now()))
    .execute(&db.write)
    .await?;
    tracing::info!(org = %org_id, contact = %payload.contact_id, rewritten, "contact erased");
    Ok(())
}

/// What to log of a failure: the kind of error, never a database's message or detail.
fn describe(error: &anyhow::Error) -> String {
    match error.downcast_ref::<sqlx::Error>() {
        Some(sqlx::Error::Database(e)) => format!(
            "database error {} {}",
            e.code().unwrap_or_default(),
            e.constraint().unwrap_or_default()
        ),
        Some(sqlx::Error::PoolTimedOut) => "database pool timed out".into(),
        Some(_) => "database error".into(),
        None => error.to_string(),
    }
}

/// One contact's erasure.
struct Erasure<'a> {
    db: &'a Db,
    key: &'a AddressKey,
    org_id: &'a str,
    contact_id: &'a str,
    /// The requester's, on the events the erasure writes.
    metadata: Metadata,
    job_id: &'a str,
}

/// What the contact's own events held.
#[derive(Default)]
struct Personal {
    /// Normalised addresses, per channel, every one the contact ever had.
    addresses: BTreeSet<(Channel, String)>,
    /// Verbatim values (emails as typed, names, attribute values) to find in free text.
    values: BTreeSet<String>,
}

impl Erasure<'_> {
    /// Deletes the contact, then rewrites in one transaction; on PostgreSQL, once every
    /// transaction open at that commit has ended, rewrites again what a send racing the
    /// erasure may have written meanwhile. Returns how many events were rewritten.
    async fn run(&self) -> anyhow::Result<u64> {
        let started = std::time::Instant::now();
        self.delete_contact().await?;
        let deleted = started.elapsed();
        let mut tx = self.db.begin().await?;
        // The job's row first: a second process running the same job (it found it `running`)
        // waits here until this transaction ends, and then finds the work and the tombstone done.
        sqlx::query("update jobs set updated_at = $2 where id = $1")
            .bind(self.job_id)
            .bind(format_time(Utc::now()))
            .execute(&mut *tx)
            .await?;
        // Then the analytics projection's lock: a batch read before this commit is applied
        // before it, or after it with the contact found erased (`analytics::apply`).
        projector::lock_projection(&mut tx, self.db.backend, Projection::Analytics).await?;
        let (personal, mut rewritten) = self.rewrite_contact_events(&mut tx).await?;
        rewritten += self.hash_suppressions(&mut tx, &personal).await?;
        rewritten += self.rewrite_by_contact(&mut tx, &personal).await?;
        self.remember(&mut tx).await?;
        self.tombstone(&mut tx, rewritten).await?;
        tx.commit().await?;
        let first_pass = started.elapsed();
        if self.db.backend == Backend::Postgres {
            // A send whose page transaction read the suppression list before the commit above
            // may still write an outbox row after it (SQLite's one writer rules that out).
            let committed = self.db_clock().await?;
            self.wait_for_transactions_before(&committed).await?;
            let mut tx = self.db.begin().await?;
            projector::lock_projection(&mut tx, self.db.backend, Projection::Analytics).await?;
            rewritten += self.rewrite_by_contact(&mut tx, &personal).await?;
            tx.commit().await?;
        }
        tracing::info!(
            delete_ms = deleted.as_millis() as u64,
            first_pass_ms = first_pass.as_millis() as u64,
            total_ms = started.elapsed().as_millis() as u64,
            "erasure timings"
        );
        Ok(rewritten)
    }

    /// Deletes the contact through the document command (a `ContactDeleted` event with the
    /// requester as actor); a contact already deleted is left as it is.
    async fn delete_contact(&self) -> anyhow::Result<()> {
        let meta = CommandMeta {
            org_id: self.org_id.to_string(),
            actor: self.metadata.actor.clone(),
            request_id: self.job_id.to_string(),
            correlation_id: self.job_id.to_string(),
        };
        match documents::execute(
            self.db,
            &meta,
            DocumentKind::Contact,
            self.contact_id,
            None,
            DocumentCommand::Delete,
            Extras::default(),
        )
        .await
        {
            Ok(_) | Err(DocError::Domain(DocumentError::NotFound(_))) => Ok(()),
            Err(DocError::Db(e)) => Err(e.into()),
            Err(other) => anyhow::bail!("deleting the contact: {other}"),
        }
    }

    /// The database's clock, as the second pass compares it with transaction starts.
    async fn db_clock(&self) -> Result<String, sqlx::Error> {
        match self.db.backend {
            Backend::Postgres => {
                sqlx::query_scalar("select cast(clock_timestamp() as text)")
                    .fetch_one(&self.db.read)
                    .await
            }
            Backend::Sqlite => Ok(String::new()),
        }
    }

    /// Waits (at most [`RACE_WAIT`]) until no session of this database is still in a
    /// transaction that began before `committed` (read after the first pass committed: a
    /// transaction begun later reads the list with the hashed addresses on it).
    async fn wait_for_transactions_before(&self, committed: &str) -> Result<(), sqlx::Error> {
        let deadline = tokio::time::Instant::now() + RACE_WAIT;
        loop {
            let open: i64 = sqlx::query_scalar(
                "select count(*) from pg_stat_activity
                 where datname = current_database() and pid <> pg_backend_pid()
                   and backend_type = 'client backend' and xact_start < cast($1 as timestamptz)",
            )
            .bind(committed)
            .fetch_one(&self.db.read)
            .await?;
            if open == 0 || tokio::time::Instant::now() >= deadline {
                if open > 0 {
                    tracing::warn!(
                        open,
                        "transactions older than the erasure still open; rewriting again anyway"
                    );
                }
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Replaces the body of every event of the contact's stream, collecting what it held.
    async fn rewrite_contact_events(&self, tx: &mut Tx) -> anyhow::Result<(Personal, u64)> {
        let stream = documents::stream_id(DocumentKind::Contact, self.org_id, self.contact_id);
        let mut personal = Personal::default();
        let mut changed = Vec::new();
        for (position, mut data) in store::stream_data(tx, &stream).await? {
            let Some(body) = data.get_mut("body") else {
                continue;
            };
            if *body == erased_body() {
                continue;
            }
            personal.collect(body);
            *body = erased_body();
            changed.push((position, data));
        }
        store::replace_data(tx, self.db.backend, &changed).await?;
        Ok((personal, changed.len() as u64))
    }

    /// Keeps each of the contact's addresses on the suppression list as a hash only, and
    /// forgets its soft bounces.
    async fn hash_suppressions(&self, tx: &mut Tx, personal: &Personal) -> anyhow::Result<u64> {
        let mut moved = 0;
        for (channel, address) in &personal.addresses {
            moved += suppressions::hide(tx, self.db, self.key, *channel, address, &self.metadata)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            forget_soft_bounces(tx, self.org_id, *channel, address).await?;
        }
        Ok(moved)
    }

    /// The rows found by the contact's id: engagement events and activities (free text
    /// replaced), enrollment rows and events (milestone dates and zones replaced,
    /// `drip::forget_contact`), outbox messages and short links (`ledger::forget_contact`) and
    /// stored idempotent answers (deleted). Run in both passes.
    async fn rewrite_by_contact(&self, tx: &mut Tx, personal: &Personal) -> anyhow::Result<u64> {
        let backend = self.db.backend;
        let mut changed = store::engagement_data(tx, backend, self.org_id, self.contact_id).await?;
        changed.retain_mut(|(_, data)| blank_free_text(data));
        store::replace_data(tx, backend, &changed).await?;
        let mut rewritten = changed.len() as u64;
        analytics::edit_activities(tx, self.org_id, self.contact_id, blank_free_text).await?;
        rewritten +=
            drip::forget_contact(tx, backend, self.org_id, self.contact_id, ERASED).await?;
        ledger::forget_contact(tx, self.org_id, self.contact_id, ERASED).await?;
        // A contact create's stored answer holds the contact; values shorter than four
        // characters would match too much else.
        let id = format!("\"id\":{}", json!(self.contact_id));
        let values = personal.values.iter().filter(|v| v.chars().count() >= 4);
        for needle in std::iter::once(&id).chain(values) {
            commands::forget_answers(tx, backend, self.org_id, needle).await?;
        }
        Ok(rewritten)
    }

    /// Lists the contact's id in `erased_contacts`, so that engagements recorded later lose
    /// their free text ([`erased_among`]).
    async fn remember(&self, tx: &mut Tx) -> Result<(), sqlx::Error> {
        sqlx::query(
            "insert into erased_contacts (org_id, contact_id, erased_at) values ($1, $2, $3)
             on conflict (org_id, contact_id) do nothing",
        )
        .bind(self.org_id)
        .bind(self.contact_id)
        .bind(format_time(Utc::now()))
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// The `Erased` tombstone in the org's audit stream.
    /// Written once per job: a job run again (by a second process, or after a crash past the
    /// commit) finds its tombstone there and writes none.
    async fn tombstone(&self, tx: &mut Tx, rewritten: u64) -> anyhow::Result<()> {
        let written = store::stream_data(tx, &audit_stream(self.org_id))
            .await?
            .iter()
            .any(|(_, data)| data["jobId"] == self.job_id);
        if written {
            return Ok(());
        }
        let now = Utc::now();
        let event = NewEvent {
            event_type: ERASED_EVENT_TYPE.to_string(),
            event_version: "1".to_string(),
            data: json!({
                "jobId": self.job_id,
                "contactId": self.contact_id,
                "eventsRewritten": rewritten,
                "at": format_time(now),
            }),
        };
        store::append_at_head(
            tx,
            self.db.backend,
            &audit_stream(self.org_id),
            &event,
            &self.metadata,
            now,
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(())
    }
}

impl Personal {
    /// Takes the addresses and values of one stored contact body.
    fn collect(&mut self, body: &Value) {
        for channel in SUPPRESSIBLE {
            if let Some(address) = suppressions::contact_address(body, channel) {
                self.addresses.insert((channel, address));
            }
        }
        for field in ["email", "phone", "firstName", "lastName"] {
            if let Some(text) = body.get(field).and_then(Value::as_str) {
                self.values.insert(text.to_string());
            }
        }
        if let Some(attributes) = body.get("attributes") {
            leaves(attributes, &mut self.values);
        }
    }
}

/// Every string and number inside `value`.
fn leaves(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::String(text) => {
            out.insert(text.clone());
        }
        Value::Number(n) => {
            out.insert(n.to_string());
        }
        Value::Array(items) => items.iter().for_each(|v| leaves(v, out)),
        Value::Object(map) => map.values().for_each(|v| leaves(v, out)),
        Value::Bool(_) | Value::Null => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_contact_body_gives_its_addresses_and_values() {
        let mut personal = Personal::default();
        personal.collect(&json!({"email": "Ann@Acme.test", "phone": "+14155550100",
            "firstName": "Ann", "attributes": {"plan": "pro", "score": 81, "kids": ["Bo"]}}));
        assert!(personal
            .addresses
            .contains(&(Channel::Email, "ann@acme.test".to_string())));
        assert!(personal
            .addresses
            .contains(&(Channel::Sms, "+14155550100".to_string())));
        for value in ["Ann@Acme.test", "+14155550100", "Ann", "pro", "81", "Bo"] {
            assert!(personal.values.contains(value), "{value}");
        }
    }

    #[test]
    fn free_text_is_replaced_once() {
        let mut data =
            json!({"type": "click", "link": "https://a.test/?e=ann", "source": "tracking"});
        assert!(blank_free_text(&mut data));
        assert_eq!(data["link"], ERASED);
        assert_eq!(data["source"], "tracking");
        assert!(!blank_free_text(&mut data));
        assert!(!blank_free_text(&mut json!({"type": "open"})));
    }
}
