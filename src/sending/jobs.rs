//! The `jobs` table: durable `launch` and `send` jobs, their claim and lease, their end and
//! hand-back, and the launch jobs derived from campaign read rows. Jobs are at least once;
//! effects are exactly once because the aggregate refuses a second launch of one occurrence and
//! the send ledger a second send of one (run, contact, channel).
//!
//! Leases are short and renewed by heartbeat; their deadlines are the database's clock, never a
//! node's, and every claim moves the job's lease generation on, so a node that lost a lease
//! (it stalled past it) finds out at its next write and stops instead of sending again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use herald_domain::campaign;
use herald_domain::spec::{CampaignSpec, Channel, Status};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::Row;
use tokio::sync::watch;

use crate::db::{Backend, Db, Tx};
use crate::store::{self, format_time};

/// How often a running job renews its lease.
pub const RENEW_EVERY: Duration = Duration::from_secs(1);
/// The default lease (`HERALD_JOB_LEASE`): a job whose renewals stop is taken over by another
/// node within this plus one poll, under 5 s however the crash falls between two renewals.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(4);
/// The shortest lease allowed: three renewal intervals, so one late or failed renewal does not
/// hand a healthy job to another node.
pub const MIN_LEASE: Duration = Duration::from_secs(3);
/// Attempts of a job before it is dead-lettered (`failed`).
const MAX_JOB_ATTEMPTS: i64 = 5;
/// How long finished jobs are kept (for operators) before the reconcile pass deletes them;
/// failed ones stay until someone looks.
const KEEP_FINISHED_JOBS: chrono::Duration = chrono::Duration::days(7);

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunPlan {
    /// Channels the run went out on.
    pub channels: Vec<Channel>,
    /// When the `Launched` event was written: the audience is the contacts that existed then.
    pub launched_at: String,
}

/// One claimed job.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: String,
    pub org_id: String,
    pub campaign_id: String,
    pub kind: String,
    pub run_id: Option<String>,
    pub attempts: i64,
    pub payload: String,
    /// The lease generation this claim holds: only writes made under it count.
    pub generation: i64,
    /// A send job's progress: the last contact of the last page a fan-out finished.
    pub resume_after: Option<String>,
    /// When the claim was sent, on this process's monotonic clock: the lease runs from here.
    pub claimed_at: Instant,
}

/// How this node leases jobs: the lease length, and its own clock for what the node decides
/// (when a job is due); lease deadlines are the database's.
#[derive(Debug, Clone, Copy)]
pub struct LeaseSettings {
    pub length: Duration,
    pub clock: NodeClock,
}

impl Default for LeaseSettings {
    fn default() -> LeaseSettings {
        LeaseSettings {
            length: DEFAULT_LEASE,
            clock: NodeClock::default(),
        }
    }
}

/// This node's wall clock, as the job table sees it: it decides when a scheduled job is due
/// (the same clock the launch decides by) and stamps `updated_at`, and never a lease. Tests
/// skew it (`HERALD_TEST_CLOCK_SKEW`) to show that a node whose clock is off neither steals a
/// live lease nor waits for a dead one.
#[derive(Debug, Clone, Copy, Default)]
pub struct NodeClock {
    skew: chrono::Duration,
}

impl NodeClock {
    /// The wall clock moved by `by` (none: the wall clock).
    pub fn skewed(by: Option<chrono::Duration>) -> NodeClock {
        NodeClock {
            skew: by.unwrap_or_default(),
        }
    }

    pub fn now(self) -> DateTime<Utc> {
        Utc::now() + self.skew
    }
}

/// SQL for the database's clock moved by `offset_ms`, in the jobs table's time format
/// (`store::format_time`: RFC 3339, UTC, microseconds), so it compares as text with stored times.
/// On PostgreSQL the statement's start, not the transaction's (`now()`): a lease extended at
/// the end of a long page transaction must run from then.
pub fn db_time(backend: Backend, offset_ms: i64) -> String {
    match backend {
        Backend::Postgres => format!(
            "to_char((statement_timestamp() at time zone 'utc') + interval '{offset_ms} milliseconds', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
        ),
        Backend::Sqlite => format!(
            "(strftime('%Y-%m-%dT%H:%M:%f', 'now', '{:+.3} seconds') || '000Z')",
            offset_ms as f64 / 1000.0
        ),
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// The claim on a running job, renewed every [`RENEW_EVERY`] by its own task while it lives.
///
/// Writes made for the job are fenced with it: [`Lease::fence`] inside the transaction, or
/// [`Lease::still_ours`] before a vendor call. Once another node has claimed the job (a higher
/// lease generation), this one logs that it lost the lease, once, and every check fails.
pub struct Lease {
    db: Db,
    job_id: String,
    generation: i64,
    length: Duration,
    shutdown: watch::Receiver<bool>,
    held: Arc<Held>,
    renewer: tokio::task::JoinHandle<()>,
    resume_after: Option<String>,
}

/// What a lease and its renewal task share.
struct Held {
    /// By this process's monotonic clock, until when the lease is surely still ours: the start
    /// of the last successful renewal plus the lease length (the database's deadline is later).
    until: Mutex<Instant>,
    lost: AtomicBool,
    job_id: String,
    campaign_id: String,
    node_id: String,
    generation: i64,
}

impl Held {
    fn renewed(&self, started: Instant, length: Duration) {
        let mut until = self.until.lock().expect("lease lock");
        *until = (*until).max(started + length);
    }

    fn fresh(&self) -> bool {
        !self.lost.load(Ordering::Acquire)
            && Instant::now() < *self.until.lock().expect("lease lock")
    }
}

impl Lease {
    /// The lease on `job`, held by this node until shutdown; renewed until it is dropped.
    pub fn new(jobs: &Jobs, job: &Job, shutdown: watch::Receiver<bool>) -> Lease {
        let length = jobs.settings.length;
        let held = Arc::new(Held {
            until: Mutex::new(job.claimed_at + length),
            lost: AtomicBool::new(false),
            job_id: job.id.clone(),
            campaign_id: job.campaign_id.clone(),
            node_id: jobs.node_id.clone(),
            generation: job.generation,
        });
        let renewer = tokio::spawn(keep_renewing(jobs.db.clone(), held.clone(), length));
        Lease {
            db: jobs.db.clone(),
            job_id: job.id.clone(),
            generation: job.generation,
            length,
            shutdown,
            held,
            renewer,
            resume_after: job.resume_after.clone(),
        }
    }

    /// Extends the lease; `false` when the process is stopping or the job is no longer ours.
    pub async fn renew(&self) -> Result<bool, sqlx::Error> {
        if *self.shutdown.borrow() {
            return Ok(false);
        }
        self.extend_in(&self.db.write).await
    }

    /// Whether this node may still act for the job: at once while the last renewal is fresh,
    /// otherwise after renewing it. Checked before each vendor call.
    pub async fn still_ours(&self) -> Result<bool, sqlx::Error> {
        if self.held.fresh() {
            return Ok(true);
        }
        self.extend_in(&self.db.write).await
    }

    /// The fence of a page's writes, run last in their transaction: extends the lease if the
    /// job is still ours at this generation, and row-locks it until the commit, so no other
    /// node can claim it in between. `false` (roll back, write nothing) once another node holds it.
    ///
    /// The extension counts only once the transaction commits, so it does not move this
    /// process's own view of the deadline (which gates vendor calls).
    pub async fn fence(&self, tx: &mut Tx) -> Result<bool, sqlx::Error> {
        if self.held.lost.load(Ordering::Acquire) {
            return Ok(false);
        }
        let backend = self.db.backend;
        if extend(
            &mut **tx,
            backend,
            &self.job_id,
            self.generation,
            self.length,
        )
        .await?
        {
            return Ok(true);
        }
        lost_to_another(&self.db, &self.held).await?;
        Ok(false)
    }

    /// Where a fan-out taken over or handed back continues: after this contact.
    pub fn resume_after(&self) -> Option<&str> {
        self.resume_after.as_deref()
    }

    /// Records that the fan-out finished every page up to `contact_id`, if the job is still
    /// this node's (`false` otherwise: stop).
    pub async fn record_progress(&self, contact_id: &str) -> Result<bool, sqlx::Error> {
        let updated = sqlx::query(
            "update jobs set resume_after = $1 where id = $2 and lease_generation = $3 and state = 'running'",
        )
        .bind(contact_id)
        .bind(&self.job_id)
        .bind(self.generation)
        .execute(&self.db.write)
        .await?;
        if updated.rows_affected() == 1 {
            return Ok(true);
        }
        lost_to_another(&self.db, &self.held).await?;
        Ok(false)
    }

    async fn extend_in<'e, E>(&self, executor: E) -> Result<bool, sqlx::Error>
    where
        E: sqlx::Executor<'e, Database = sqlx::Any>,
    {
        if self.held.lost.load(Ordering::Acquire) {
            return Ok(false);
        }
        let started = Instant::now();
        if extend(
            executor,
            self.db.backend,
            &self.job_id,
            self.generation,
            self.length,
        )
        .await?
        {
            self.held.renewed(started, self.length);
            return Ok(true);
        }
        // Not this generation's any more, or not running: either way nothing more is written.
        lost_to_another(&self.db, &self.held).await?;
        Ok(false)
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

/// Moves the job's deadline to the database's now plus `length`, if `generation` still holds it.
async fn extend<'e, E>(
    executor: E,
    backend: Backend,
    job_id: &str,
    generation: i64,
    length: Duration,
) -> Result<bool, sqlx::Error>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let sql = format!(
        "update jobs set locked_until = {} where id = $1 and lease_generation = $2 and state = 'running'",
        db_time(backend, millis(length))
    );
    let updated = sqlx::query(&sql)
        .bind(job_id)
        .bind(generation)
        .execute(executor)
        .await?;
    Ok(updated.rows_affected() == 1)
}

/// After a renewal matched nothing: whether another node has claimed the job since (then the
/// lease is lost, logged once and counted), rather than this node having ended it. Reads and
/// counts off the write connection: a fence may be holding it (SQLite has one).
async fn lost_to_another(db: &Db, held: &Held) -> Result<bool, sqlx::Error> {
    if held.lost.load(Ordering::Acquire) {
        return Ok(true);
    }
    let row = sqlx::query("select lease_generation, locked_by from jobs where id = $1")
        .bind(&held.job_id)
        .fetch_optional(&db.read)
        .await?;
    let holder = match row {
        Some(row) => {
            let generation: i64 = row.try_get("lease_generation")?;
            if generation == held.generation {
                // Ended or handed back by this node (or dead-lettered): not taken over.
                return Ok(false);
            }
            row.try_get::<Option<String>, _>("locked_by")?
        }
        None => None,
    };
    if !held.lost.swap(true, Ordering::AcqRel) {
        tracing::warn!(
            job = %held.job_id,
            campaign = %held.campaign_id,
            node = %held.node_id,
            generation = held.generation,
            taken_by = %holder.as_deref().unwrap_or("nobody"),
            "lost the lease on a job another node took over; stopping it without sending more"
        );
        let db = db.clone();
        tokio::spawn(async move {
            if let Err(error) = count(&db, "lease_renewals_failed", 1).await {
                tracing::warn!(%error, "could not count a lost lease");
            }
        });
    }
    Ok(true)
}

/// Renews a lease every [`RENEW_EVERY`] until it is dropped or lost. A renewal that fails (the
/// database did not answer, or the job was taken over) is counted once the database answers.
async fn keep_renewing(db: Db, held: Arc<Held>, length: Duration) {
    let mut unrecorded = 0;
    loop {
        tokio::time::sleep(RENEW_EVERY).await;
        if held.lost.load(Ordering::Acquire) {
            return;
        }
        let started = Instant::now();
        match extend(&db.write, db.backend, &held.job_id, held.generation, length).await {
            Ok(true) => held.renewed(started, length),
            // Lost (logged and counted) or ended by this node: either way, nothing to renew.
            Ok(false) => match lost_to_another(&db, &held).await {
                Ok(_) => return,
                Err(error) => {
                    unrecorded += 1;
                    tracing::warn!(%error, job = %held.job_id, "could not renew a job's lease");
                }
            },
            Err(error) => {
                unrecorded += 1;
                tracing::warn!(%error, job = %held.job_id, "could not renew a job's lease");
            }
        }
        if unrecorded > 0
            && count(&db, "lease_renewals_failed", unrecorded)
                .await
                .is_ok()
        {
            unrecorded = 0;
        }
    }
}

/// Adds `by` to one of the `job_counters`.
async fn count(db: &Db, name: &str, by: i64) -> Result<(), sqlx::Error> {
    sqlx::query("update job_counters set n = n + $1 where name = $2")
        .bind(by)
        .bind(name)
        .execute(&db.write)
        .await?;
    Ok(())
}

/// The counters behind `/metrics`: jobs taken over after their lease ran out, and lease
/// renewals that failed, on every node.
pub async fn lease_counters(db: &Db) -> Result<(i64, i64), sqlx::Error> {
    let rows = sqlx::query("select name, n from job_counters")
        .fetch_all(&db.read)
        .await?;
    let mut takeovers = 0;
    let mut failed = 0;
    for row in rows {
        match row.try_get::<String, _>("name")?.as_str() {
            "takeovers" => takeovers = row.try_get("n")?,
            "lease_renewals_failed" => failed = row.try_get("n")?,
            _ => {}
        }
    }
    Ok((takeovers, failed))
}

/// The org's running jobs, by the node holding each: `{id, kind, campaignId, runId,
/// leaseUntil, leaseGeneration}` (the health view).
pub async fn held(db: &Db, org_id: &str) -> Result<HashMap<String, Vec<Value>>, sqlx::Error> {
    let rows = sqlx::query(
        "select id, kind, campaign_id, run_id, locked_by, locked_until, lease_generation from jobs
         where org_id = $1 and state = 'running' and locked_by is not null order by id",
    )
    .bind(org_id)
    .fetch_all(&db.read)
    .await?;
    let mut by_node: HashMap<String, Vec<Value>> = HashMap::new();
    for row in rows {
        by_node
            .entry(row.try_get("locked_by")?)
            .or_default()
            .push(json!({
                "id": row.try_get::<String, _>("id")?,
                "kind": row.try_get::<String, _>("kind")?,
                "campaignId": row.try_get::<String, _>("campaign_id")?,
                "runId": row.try_get::<Option<String>, _>("run_id")?,
                "leaseUntil": row.try_get::<Option<String>, _>("locked_until")?,
                "leaseGeneration": row.try_get::<i64, _>("lease_generation")?,
            }));
    }
    Ok(by_node)
}

/// The jobs of one node: claims, ends and hand-backs in its name.
#[derive(Debug, Clone)]
pub struct Jobs {
    db: Db,
    node_id: String,
    settings: LeaseSettings,
}

impl Jobs {
    pub fn new(db: Db, node_id: String, settings: LeaseSettings) -> Jobs {
        Jobs {
            db,
            node_id,
            settings,
        }
    }

    /// On SQLite (one process by design) the jobs a crashed process left claimed are this
    /// process's to take over at once: their leases are ended, so [`Jobs::claim`] counts them
    /// as abandoned.
    pub async fn release_abandoned(&self) -> Result<(), sqlx::Error> {
        if self.db.backend == Backend::Sqlite {
            sqlx::query(
                "update jobs set locked_by = null, locked_until = $1 where state = 'running'",
            )
            .bind(format_time(DateTime::<Utc>::UNIX_EPOCH))
            .execute(&self.db.write)
            .await?;
        }
        Ok(())
    }

    /// Claims up to `limit` due jobs of `kind` (or ones whose lease ran out) for this node, each
    /// under a new lease generation. A job is due by this node's clock (the one its launch is
    /// decided by); a lease has run out by the database's.
    ///
    /// A job whose lease ran out [`MAX_JOB_ATTEMPTS`] times was abandoned by every process that
    /// ran it (each crashed or was killed while it ran): it is dead-lettered instead of taken,
    /// so one job cannot crash-loop every node. Taking over a job whose lease ran out is logged
    /// at `warn` and counted (`herald_job_takeovers_total`).
    pub async fn claim(&self, kind: &str, limit: i64) -> Result<Vec<Job>, sqlx::Error> {
        let claimed_at = Instant::now();
        let now = format_time(self.settings.clock.now());
        let db_now = db_time(self.db.backend, 0);
        let abandoned = sqlx::query(&format!(
            "update jobs set state = 'failed', last_error = $1, locked_by = null, locked_until = null, updated_at = $2
             where kind = $3 and state = 'running' and locked_until < {db_now} and attempts >= $4"
        ))
        .bind(format!(
            "abandoned {MAX_JOB_ATTEMPTS} times: the process running it stopped without handing it back"
        ))
        .bind(&now)
        .bind(kind)
        .bind(MAX_JOB_ATTEMPTS)
        .execute(&self.db.write)
        .await?;
        if abandoned.rows_affected() > 0 {
            tracing::error!(
                kind,
                jobs = abandoned.rows_affected(),
                "jobs failed for good: every process that ran them stopped while running them"
            );
        }
        let lock = match self.db.backend {
            Backend::Postgres => "for update skip locked",
            // One writer: the transaction runs alone.
            Backend::Sqlite => "",
        };
        let mut tx = self.db.begin().await?;
        let candidates = sqlx::query(&format!(
            "select id, state, locked_by from jobs
             where kind = $1 and ((state = 'scheduled' and run_at <= $2) or (state = 'running' and locked_until < {db_now}))
             order by run_at limit $3 {lock}"
        ))
        .bind(kind)
        .bind(&now)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        if candidates.is_empty() {
            tx.commit().await?;
            return Ok(Vec::new());
        }
        let mut previous: HashMap<String, Option<String>> = HashMap::new();
        let mut ids = Vec::with_capacity(candidates.len());
        for row in &candidates {
            let id: String = row.try_get("id")?;
            if row.try_get::<String, _>("state")? == "running" {
                previous.insert(id.clone(), row.try_get("locked_by")?);
            }
            ids.push(id);
        }
        let sql = format!(
            "update jobs set state = 'running', attempts = attempts + 1, lease_generation = lease_generation + 1,
               locked_by = $1, locked_until = {}, updated_at = $2
             where id in ({})
             returning id, org_id, campaign_id, kind, run_id, attempts, payload, lease_generation, resume_after",
            db_time(self.db.backend, millis(self.settings.length)),
            store::params(3, ids.len())
        );
        let mut query = sqlx::query(&sql).bind(&self.node_id).bind(&now);
        for id in &ids {
            query = query.bind(id);
        }
        let rows = query.fetch_all(&mut *tx).await?;
        if !previous.is_empty() {
            sqlx::query("update job_counters set n = n + $1 where name = 'takeovers'")
                .bind(previous.len() as i64)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        let jobs = rows
            .iter()
            .map(|row| {
                Ok(Job {
                    id: row.try_get("id")?,
                    org_id: row.try_get("org_id")?,
                    campaign_id: row.try_get("campaign_id")?,
                    kind: row.try_get("kind")?,
                    run_id: row.try_get("run_id")?,
                    attempts: row.try_get("attempts")?,
                    payload: row.try_get("payload")?,
                    resume_after: row.try_get("resume_after")?,
                    generation: row.try_get("lease_generation")?,
                    claimed_at,
                })
            })
            .collect::<Result<Vec<Job>, sqlx::Error>>()?;
        for job in &jobs {
            if let Some(lost_by) = previous.get(&job.id) {
                tracing::warn!(
                    job = %job.id,
                    campaign = %job.campaign_id,
                    org = %job.org_id,
                    lost_by = %lost_by.as_deref().unwrap_or("unknown"),
                    taken_by = %self.node_id,
                    generation = job.generation,
                    "took over a job whose lease ran out"
                );
            }
        }
        Ok(jobs)
    }

    /// Ends a job this node holds: `state` is `done`, `failed` or `cancelled`.
    pub async fn finish(&self, job: &Job, state: &str, note: Option<String>) {
        let result = sqlx::query(
            "update jobs set state = $1, last_error = $2, locked_by = null, locked_until = null, resume_after = null, updated_at = $3
             where id = $4 and locked_by = $5 and lease_generation = $6",
        )
        .bind(state)
        .bind(note)
        .bind(format_time(self.settings.clock.now()))
        .bind(&job.id)
        .bind(&self.node_id)
        .bind(job.generation)
        .execute(&self.db.write)
        .await;
        if let Err(error) = result {
            tracing::warn!(%error, job = %job.id, "could not record the end of a job");
        }
    }

    /// Hands a sent run's job back to run again, from its first page, at `at` (the end of the
    /// quiet hours that held some of its sends). Nothing happens when another node has claimed
    /// the job since.
    pub async fn defer(&self, job: &Job, at: DateTime<Utc>, plan: &RunPlan) {
        let result = sqlx::query(
            "update jobs set state = 'scheduled', run_at = $1, last_error = null, attempts = 0, resume_after = null,
               locked_by = null, locked_until = null, updated_at = $2, payload = $6
             where id = $3 and locked_by = $4 and lease_generation = $5",
        )
        .bind(format_time(at))
        .bind(format_time(self.settings.clock.now()))
        .bind(&job.id)
        .bind(&self.node_id)
        .bind(job.generation)
        .bind(serde_json::to_string(plan).expect("a plan serializes"))
        .execute(&self.db.write)
        .await;
        if let Err(error) = result {
            tracing::warn!(%error, job = %job.id, "could not defer a job");
        }
    }

    /// Hands a job back to run again at `at` (a retry, a pause, or a stop before the end);
    /// a failing job is dead-lettered after [`MAX_JOB_ATTEMPTS`]. Nothing happens when another
    /// node has claimed the job since.
    ///
    /// A job handed back to run at once (`at` not after now) keeps its `run_at`, which was due
    /// when it was claimed: a node whose clock is behind this one's takes it at once too.
    pub async fn release(&self, job: &Job, at: DateTime<Utc>, error: Option<String>) {
        if error.is_some() && job.attempts >= MAX_JOB_ATTEMPTS {
            tracing::error!(job = %job.id, error = error.as_deref().unwrap_or(""), "job failed for good");
            return self.finish(job, "failed", error).await;
        }
        // Only failures count towards the dead letter; a pause or a stop starts afresh.
        let sql = if error.is_some() {
            "update jobs set state = 'scheduled', run_at = coalesce($1, run_at), last_error = $2, locked_by = null, locked_until = null, updated_at = $3
             where id = $4 and locked_by = $5 and lease_generation = $6"
        } else {
            "update jobs set state = 'scheduled', run_at = coalesce($1, run_at), last_error = $2, attempts = 0, locked_by = null, locked_until = null, updated_at = $3
             where id = $4 and locked_by = $5 and lease_generation = $6"
        };
        let at = (at > Utc::now()).then(|| format_time(at));
        let result = sqlx::query(sql)
            .bind(at)
            .bind(error)
            .bind(format_time(self.settings.clock.now()))
            .bind(&job.id)
            .bind(&self.node_id)
            .bind(job.generation)
            .execute(&self.db.write)
            .await;
        if let Err(error) = result {
            tracing::warn!(%error, job = %job.id, "could not hand a job back");
        }
    }

    /// Deletes jobs finished more than a week ago.
    pub async fn delete_finished(&self, now: DateTime<Utc>) -> Result<(), sqlx::Error> {
        sqlx::query("delete from jobs where state in ('done', 'cancelled') and updated_at < $1")
            .bind(format_time(now - KEEP_FINISHED_JOBS))
            .execute(&self.db.write)
            .await?;
        Ok(())
    }

    /// Every campaign with a pending launch job, as `(org_id, campaign_id)` rows.
    pub async fn pending_launches(&self) -> Result<Vec<sqlx::any::AnyRow>, sqlx::Error> {
        sqlx::query(
            "select distinct org_id, campaign_id from jobs where kind = 'launch' and state = 'scheduled'",
        )
        .fetch_all(&self.db.read)
        .await
    }

    /// Launch jobs due after `from` and by `to`: `(org_id, campaign_id)`, soonest first.
    pub async fn launches_due_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<(String, String)>, sqlx::Error> {
        let rows = sqlx::query(
            "select org_id, campaign_id from jobs
             where kind = 'launch' and state = 'scheduled' and run_at > $1 and run_at <= $2
             order by run_at limit $3",
        )
        .bind(format_time(from))
        .bind(format_time(to))
        .bind(limit)
        .fetch_all(&self.db.read)
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("org_id")?, row.try_get("campaign_id")?)))
            .collect()
    }
}

/// 1 s, 2 s, 4 s… up to 5 minutes, with jitter.
pub fn backoff(attempts: i64) -> chrono::Duration {
    let seconds = 1i64 << attempts.clamp(0, 8);
    let jitter = rand::random::<f64>() * 0.5 + 0.75;
    chrono::Duration::milliseconds(((seconds.min(300) * 1000) as f64 * jitter) as i64)
}

/// The `send` job of a launched run, once: its id is the run's.
pub async fn add_send_job(
    tx: &mut Tx,
    org_id: &str,
    campaign_id: &str,
    run_id: &str,
    plan: &RunPlan,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let now = format_time(now);
    sqlx::query(
        "insert into jobs (id, org_id, campaign_id, kind, run_id, run_at, state, payload, created_at, updated_at)
         values ($1, $2, $3, 'send', $4, $5, 'scheduled', $6, $5, $5) on conflict (id) do nothing",
    )
    .bind(format!("send:{org_id}:{run_id}"))
    .bind(org_id)
    .bind(campaign_id)
    .bind(run_id)
    .bind(&now)
    .bind(serde_json::to_string(plan).unwrap_or_else(|_| "{}".into()))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Whether the run's `send` job is still waiting or running: its sends are not all dispatched or
/// failed yet. A run without a send job (none derived yet, or deleted a week after it
/// finished) is not sending.
pub async fn run_sending(db: &Db, org_id: &str, run_id: &str) -> Result<bool, sqlx::Error> {
    let state: Option<String> = sqlx::query_scalar("select state from jobs where id = $1")
        .bind(format!("send:{org_id}:{run_id}"))
        .fetch_optional(&db.read)
        .await?;
    Ok(matches!(state.as_deref(), Some("scheduled" | "running")))
}

/// Makes the pending launch jobs of one org's campaigns match their read rows: exactly one at
/// the time to wake it ([`wake_at`]: `nextRunAt`, or a finished recurring campaign's end) while
/// a campaign is active and scheduled or running, none otherwise.
///
/// Reads the rows and the jobs of a whole chunk of campaigns in two queries and writes only
/// what differs, so following a log full of draft edits costs two reads per batch.
pub async fn sync_launch_jobs(
    tx: &mut Tx,
    org_id: &str,
    campaign_ids: &[String],
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let now = format_time(now);
    let mut added = false;
    for chunk in campaign_ids.chunks(500) {
        let list = store::params(2, chunk.len());
        let rows_sql =
            format!("select id, state, status, case when state = 'active' and status in ('scheduled', 'running') then doc end as doc
                 from campaigns where org_id = $1 and id in ({list})");
        let jobs_sql = format!(
            "select id, campaign_id from jobs
             where org_id = $1 and kind = 'launch' and state in ('scheduled', 'running') and campaign_id in ({list})"
        );
        let mut rows = sqlx::query(&rows_sql).bind(org_id);
        let mut jobs = sqlx::query(&jobs_sql).bind(org_id);
        for id in chunk {
            rows = rows.bind(id);
            jobs = jobs.bind(id);
        }
        // Campaign id to its launch job's id suffix and due time.
        let mut wanted: HashMap<String, (&str, String)> = HashMap::new();
        for row in rows.fetch_all(&mut **tx).await? {
            let state: String = row.try_get("state")?;
            let status: String = row.try_get("status")?;
            if state != "active" || !matches!(status.as_str(), "scheduled" | "running") {
                continue;
            }
            let doc: Option<String> = row.try_get("doc")?;
            let wake = doc
                .and_then(|doc| serde_json::from_str::<Value>(&doc).ok())
                .and_then(|doc| wake_at(&doc));
            if let Some((suffix, at)) = wake {
                wanted.insert(row.try_get("id")?, (suffix, format_time(at)));
            }
        }
        let mut pending: HashMap<String, Vec<String>> = HashMap::new();
        for row in jobs.fetch_all(&mut **tx).await? {
            pending
                .entry(row.try_get("campaign_id")?)
                .or_default()
                .push(row.try_get("id")?);
        }
        for campaign_id in chunk {
            let keep = wanted
                .get(campaign_id)
                .map(|(suffix, due)| format!("launch:{org_id}:{campaign_id}:{due}{suffix}"));
            let jobs = pending.get(campaign_id).map(Vec::as_slice).unwrap_or(&[]);
            if let (Some(id), Some((_, due))) = (&keep, wanted.get(campaign_id)) {
                if !jobs.contains(id) {
                    // New, or cancelled earlier and wanted again (a finished one stays finished).
                    sqlx::query(
                        "insert into jobs (id, org_id, campaign_id, kind, run_at, state, payload, created_at, updated_at)
                         values ($1, $2, $3, 'launch', $4, 'scheduled', $5, $6, $6)
                         on conflict (id) do update set state = 'scheduled', attempts = 0, last_error = null,
                           run_at = excluded.run_at, updated_at = excluded.updated_at
                         where jobs.state = 'cancelled'",
                    )
                    .bind(id)
                    .bind(org_id)
                    .bind(campaign_id)
                    .bind(due)
                    .bind(json!({ "due": due }).to_string())
                    .bind(&now)
                    .execute(&mut **tx)
                    .await?;
                    added = true;
                }
            }
            if jobs.iter().any(|job| Some(job) != keep.as_ref()) {
                sqlx::query(
                    "update jobs set state = 'cancelled', updated_at = $1
                     where org_id = $2 and campaign_id = $3 and kind = 'launch' and state = 'scheduled' and id <> $4",
                )
                .bind(&now)
                .bind(org_id)
                .bind(campaign_id)
                .bind(keep.as_deref().unwrap_or(""))
                .execute(&mut **tx)
                .await?;
            }
        }
    }
    Ok(added)
}

/// When a scheduled or running campaign's read row says it must be woken
/// ([`campaign::wake_at`]), with the suffix of that launch job's id: at `nextRunAt` (no
/// suffix), or at the end of a recurring campaign past its last occurrence (`:end`, because an
/// end that falls on the last occurrence has that occurrence's time, and its job is finished
/// by then and stays finished). The spec is only read for a row without `nextRunAt`.
fn wake_at(doc: &Value) -> Option<(&'static str, DateTime<Utc>)> {
    let next_run_at = doc["nextRunAt"]
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|at| at.with_timezone(&Utc));
    if let Some(at) = next_run_at {
        return Some(("", at));
    }
    let status = doc["status"].as_str().and_then(Status::parse)?;
    let spec = CampaignSpec::deserialize(doc).ok()?;
    campaign::wake_at(&spec, status, None).map(|at| (":end", at))
}

/// [`sync_launch_jobs`] for `(org_id, campaign_id)` pairs of any orgs, one org at a time.
/// Returns whether it added a job.
pub async fn sync_campaigns(
    tx: &mut Tx,
    campaigns: impl IntoIterator<Item = (String, String)>,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let mut by_org: HashMap<String, Vec<String>> = HashMap::new();
    for (org_id, campaign_id) in campaigns {
        by_org.entry(org_id).or_default().push(campaign_id);
    }
    let mut added = false;
    for (org_id, ids) in by_org {
        added |= sync_launch_jobs(tx, &org_id, &ids, now).await?;
    }
    Ok(added)
}

/// [`sync_campaigns`] for rows of `(org_id, <id_column>)`.
pub async fn sync_rows(
    tx: &mut Tx,
    rows: &[sqlx::any::AnyRow],
    id_column: &str,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let campaigns = rows
        .iter()
        .map(|row| Ok((row.try_get("org_id")?, row.try_get(id_column)?)))
        .collect::<Result<Vec<(String, String)>, sqlx::Error>>()?;
    sync_campaigns(tx, campaigns, now).await?;
    Ok(())
}

/// The org's jobs as the health view shows them: `{depth, scheduled, running, failed}` (depth =
/// scheduled + running).
pub async fn queue(db: &Db, org_id: &str) -> Result<Value, sqlx::Error> {
    let rows = sqlx::query(
        "select state, count(*) as n from jobs where org_id = $1 and state in ('scheduled', 'running', 'failed') group by state",
    )
    .bind(org_id)
    .fetch_all(&db.read)
    .await?;
    let mut counts = HashMap::new();
    for row in rows {
        counts.insert(
            row.try_get::<String, _>("state")?,
            row.try_get::<i64, _>("n")?,
        );
    }
    let count = |state: &str| counts.get(state).copied().unwrap_or(0);
    Ok(json!({
        "depth": count("scheduled") + count("running"),
        "scheduled": count("scheduled"),
        "running": count("running"),
        "failed": count("failed"),
    }))
}
