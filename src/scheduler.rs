//! The scheduler: durable jobs derived from the campaign events, claimed by any process that runs
//! workers, and the heartbeat the health view reads.
//!
//! Two kinds of job live in the `jobs` table. A `launch` job wakes a campaign at its `nextRunAt`
//! and runs `CampaignCommand::RunDue`; a `send` job fans one launched run out (`sender`). Jobs are
//! at least once; effects are exactly once because the aggregate refuses a second launch of the
//! same occurrence and the send ledger refuses a second send of the same (run, contact, channel).
//!
//! Jobs are derived, never authoritative: a catch-up reader follows the log (gap-safe, with its
//! own checkpoint) and, for every campaign an event touches, makes its pending launch job match
//! the read model (one job at `nextRunAt`, or none), and for every `Launched` event makes sure
//! the run has its `send` job. A full reconcile runs at start and every minute, so a lost or
//! duplicated job is recovered or absorbed. Why not apalis: `docs/adr/0005-own-job-table.md`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use herald_domain::campaign::{CampaignCommand, LaunchContext};
use herald_domain::error::CampaignError;
use herald_domain::spec::{CampaignSpec, Status};
use serde_json::{json, Value};
use sqlx::Row;
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;

use crate::campaigns::{self, CommandError, CommandMeta, OrgAssets, Readiness};
use crate::db::{Backend, Db, Tx};
use crate::projector::Wakeup;
use crate::sender::{RunOutcome, RunPlan, SendRunError, Sender};
use crate::store::{self, format_time, Checkpoint};

/// Send jobs one process runs at once.
pub const SEND_SLOTS: usize = 2;
/// The actor recorded on the events the scheduler causes.
pub const ACTOR: &str = "herald-scheduler";
/// The checkpoint name of the scheduler's catch-up reader.
pub const CHECKPOINT: &str = "scheduler";
/// A heartbeat older than this makes the health view `degraded`.
pub const STALE_AFTER: Duration = Duration::from_secs(10);

/// How long a claimed job stays ours without a renewal; after that another node may take it.
const LEASE: Duration = Duration::from_secs(30);
/// How often the loop looks for due jobs when nothing wakes it.
const POLL: Duration = Duration::from_millis(200);
const HEARTBEAT: Duration = Duration::from_secs(1);
const RECONCILE_EVERY: Duration = Duration::from_secs(60);
/// Attempts of a job before it is dead-lettered (`failed`).
const MAX_JOB_ATTEMPTS: i64 = 5;
/// How long finished jobs are kept (for operators) before the reconcile pass deletes them;
/// failed ones stay until someone looks.
const KEEP_FINISHED_JOBS: chrono::Duration = chrono::Duration::days(7);
/// Events read per catch-up batch.
const BATCH: i64 = 500;

/// The scheduler follows campaigns only; the rest of the log is skipped without being decoded.
const CAMPAIGNS: store::Interest = store::Interest::StreamsPrefixed(&["campaign-"]);
/// A launch job counts its campaign's audience only when the campaign is due within this
/// margin; the aggregate decides anyway.
const DUE_MARGIN: chrono::Duration = chrono::Duration::seconds(5);
/// Launches due within this long have their audience counted ahead (a million contacts take
/// over a second), so the launch at `startAt` does not wait for the count.
const COUNT_AHEAD: chrono::Duration = chrono::Duration::seconds(3);

/// Audience counts taken ahead of launches, by (org, campaign): the `nextRunAt` each was taken
/// for and the count (`None` while it is being taken).
type Counted = Arc<std::sync::Mutex<HashMap<(String, String), (String, Option<u64>)>>>;

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
}

/// The claim on a running job: renewing it proves the job is still ours and extends it.
pub struct Lease {
    db: Db,
    job_id: String,
    node_id: String,
    shutdown: watch::Receiver<bool>,
}

impl Lease {
    /// Extends the lease; `false` when the process is stopping or the job is no longer ours.
    pub async fn renew(&self) -> Result<bool, sqlx::Error> {
        if *self.shutdown.borrow() {
            return Ok(false);
        }
        let until = format_time(Utc::now() + LEASE);
        let updated = sqlx::query(
            "update jobs set locked_until = $1 where id = $2 and locked_by = $3 and state = 'running'",
        )
        .bind(until)
        .bind(&self.job_id)
        .bind(&self.node_id)
        .execute(&self.db.write)
        .await?;
        Ok(updated.rows_affected() == 1)
    }
}

/// The scheduler of one process.
pub struct Scheduler {
    db: Db,
    sender: Arc<Sender>,
    wakeup: Wakeup,
    wake: Arc<Notify>,
    node_id: String,
    started_at: String,
    counted: Counted,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

impl Scheduler {
    pub fn new(db: Db, sender: Sender, wakeup: Wakeup) -> Scheduler {
        Scheduler {
            db,
            sender: Arc::new(sender),
            wake: wakeup.scheduler(),
            wakeup,
            node_id: format!("node-{}", uuid::Uuid::now_v7()),
            started_at: format_time(Utc::now()),
            counted: Counted::default(),
        }
    }

    /// Starts counting the audience of every launch due within [`COUNT_AHEAD`] that has no
    /// count yet, each in its own task. The jobs stay as they are (scheduled, cancellable);
    /// [`Scheduler::launch`] uses a count taken for the same `nextRunAt`.
    async fn count_ahead(&self) -> Result<(), sqlx::Error> {
        let now = Utc::now();
        let rows = sqlx::query(
            "select org_id, campaign_id from jobs
             where kind = 'launch' and state = 'scheduled' and run_at > $1 and run_at <= $2
             order by run_at limit 16",
        )
        .bind(format_time(now))
        .bind(format_time(now + COUNT_AHEAD))
        .fetch_all(&self.db.read)
        .await?;
        for row in rows {
            let key: (String, String) = (row.try_get("org_id")?, row.try_get("campaign_id")?);
            if self.counted.lock().expect("counts lock").contains_key(&key) {
                // Counted or being counted: the poll comes back every 200 ms and need not read
                // the document again. The launch takes the entry out; one taken for another
                // `nextRunAt` (a schedule moved meanwhile) is not used, and the launch counts.
                continue;
            }
            let Some(doc) = campaigns::get(&self.db, &key.0, &key.1).await? else {
                continue;
            };
            let Some(next) = doc["nextRunAt"].as_str().map(str::to_string) else {
                continue;
            };
            {
                let mut counted = self.counted.lock().expect("counts lock");
                if counted.len() > 10_000 {
                    counted.clear();
                }
                counted.insert(key.clone(), (next.clone(), None));
            }
            let Ok(spec) = serde_json::from_value::<CampaignSpec>(doc) else {
                continue;
            };
            let (sender, counted) = (self.sender.clone(), self.counted.clone());
            tokio::spawn(async move {
                let count = match sender.audience_filter(&key.0, &spec).await {
                    Ok(filter) => sender.count_matching(&key.0, &filter).await.ok(),
                    Err(_) => None,
                };
                let mut counted = counted.lock().expect("counts lock");
                if let Some(entry) = counted.get_mut(&key) {
                    if entry.0 == next {
                        entry.1 = count;
                    }
                }
            });
        }
        Ok(())
    }

    /// A count taken ahead for this campaign's `next_run_at`, if one is ready. Takes the entry
    /// out either way.
    fn counted_ahead(&self, org_id: &str, campaign_id: &str, next_run_at: &str) -> Option<u64> {
        let key = (org_id.to_string(), campaign_id.to_string());
        match self.counted.lock().expect("counts lock").remove(&key) {
            Some((at, Some(count))) if at == next_run_at => Some(count),
            _ => None,
        }
    }

    /// Readies the scheduler before the process serves: first heartbeat, checkpoint row and,
    /// on SQLite (one process by design), the release of jobs a crashed run left claimed.
    pub async fn prepare(&self) -> anyhow::Result<()> {
        self.heartbeat().await?;
        sqlx::query(
            "insert into projection_checkpoints (name, tx_id, position, updated_at) values ($1, 0, 0, $2)
             on conflict (name) do nothing",
        )
        .bind(CHECKPOINT)
        .bind(format_time(Utc::now()))
        .execute(&self.db.write)
        .await?;
        if self.db.backend == Backend::Sqlite {
            sqlx::query(
                "update jobs set state = 'scheduled', locked_by = null, locked_until = null where state = 'running'",
            )
            .execute(&self.db.write)
            .await?;
        }
        Ok(())
    }

    /// Runs until `shutdown` flips: heartbeat, catch-up, reconcile, launches and fan-outs. On
    /// shutdown, running fan-outs stop after their current page and hand their job back.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let heartbeat = tokio::spawn(self.clone().beat(shutdown.clone()));
        let mut sends: JoinSet<()> = JoinSet::new();
        let mut last_reconcile: Option<Instant> = None;
        // The fast path starts where the gap-safe reader stands, so what happened while no
        // process ran (a run launched by an API-only node, say) is picked up at once too.
        let mut cursor = match self.db.backend {
            Backend::Postgres => checkpoint(&self.db.read, false)
                .await
                .ok()
                .map(|at| at.position),
            Backend::Sqlite => None,
        };
        loop {
            if *shutdown.borrow() {
                break;
            }
            while sends.try_join_next().is_some() {}
            if let Some(cursor) = cursor.as_mut() {
                loop {
                    match self.follow(cursor).await {
                        Ok(0) => break,
                        Ok(_) => continue,
                        Err(error) => {
                            tracing::warn!(%error, "scheduler fast path failed");
                            break;
                        }
                    }
                }
            }
            loop {
                match self.catch_up().await {
                    Ok(0) => break,
                    Ok(_) => continue,
                    Err(error) => {
                        tracing::warn!(%error, "scheduler catch-up failed");
                        break;
                    }
                }
            }
            if last_reconcile.is_none_or(|at| at.elapsed() >= RECONCILE_EVERY) {
                match self.reconcile().await {
                    Ok(()) => last_reconcile = Some(Instant::now()),
                    Err(error) => tracing::warn!(%error, "scheduler reconcile failed"),
                }
            }
            if let Err(error) = self.count_ahead().await {
                tracing::warn!(%error, "counting upcoming audiences failed");
            }
            match self.claim("launch", 16).await {
                Ok(jobs) => {
                    for job in jobs {
                        self.run_launch(job).await;
                    }
                }
                Err(error) => tracing::warn!(%error, "claiming launch jobs failed"),
            }
            let free = SEND_SLOTS.saturating_sub(sends.len());
            if free > 0 {
                match self.claim("send", free as i64).await {
                    Ok(jobs) => {
                        for job in jobs {
                            sends.spawn(self.clone().run_send(job, shutdown.clone()));
                        }
                    }
                    Err(error) => tracing::warn!(%error, "claiming send jobs failed"),
                }
            }
            tokio::select! {
                _ = self.wake.notified() => {
                    // Let a burst of appends arrive, to follow them in one batch.
                    tokio::select! {
                        _ = tokio::time::sleep(crate::projector::COALESCE) => {}
                        _ = shutdown.changed() => {}
                    }
                }
                _ = tokio::time::sleep(POLL) => {}
                _ = shutdown.changed() => {}
            }
        }
        while sends.join_next().await.is_some() {}
        let _ = heartbeat.await;
        let _ = sqlx::query("delete from scheduler_nodes where node_id = $1")
            .bind(&self.node_id)
            .execute(&self.db.write)
            .await;
    }

    async fn beat(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        loop {
            if let Err(error) = self.heartbeat().await {
                tracing::warn!(%error, "scheduler heartbeat failed");
            }
            tokio::select! {
                _ = tokio::time::sleep(HEARTBEAT) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    async fn heartbeat(&self) -> Result<(), sqlx::Error> {
        let now = Utc::now();
        sqlx::query(
            "insert into scheduler_nodes (node_id, workers, started_at, heartbeat_at) values ($1, $2, $3, $4)
             on conflict (node_id) do update set heartbeat_at = excluded.heartbeat_at, workers = excluded.workers",
        )
        .bind(&self.node_id)
        .bind(SEND_SLOTS as i64)
        .bind(&self.started_at)
        .bind(format_time(now))
        .execute(&self.db.write)
        .await?;
        sqlx::query("delete from scheduler_nodes where heartbeat_at < $1")
            .bind(format_time(now - chrono::Duration::hours(1)))
            .execute(&self.db.write)
            .await?;
        Ok(())
    }

    /// Applies the next batch of the log after the scheduler's checkpoint: syncs the launch job
    /// of every campaign touched and adds the send job of every `Launched` run, moving the
    /// checkpoint in the same transaction. Returns how many events it read.
    async fn catch_up(&self) -> Result<usize, sqlx::Error> {
        let from = checkpoint(&self.db.read, false).await?;
        let page = store::read_page(&self.db, from, BATCH, CAMPAIGNS).await?;
        let Some(last) = page.last else {
            return Ok(0);
        };
        let mut tx = self.db.begin().await?;
        let current = checkpoint(&mut *tx, self.db.backend == Backend::Postgres).await?;
        if current != from {
            // Another node applied this batch.
            tx.rollback().await?;
            return Ok(page.rows);
        }
        let now = Utc::now();
        let touched = apply_events(&mut tx, &page.events, now).await?;
        sqlx::query(
            "update projection_checkpoints set tx_id = $1, position = $2, updated_at = $3 where name = $4",
        )
        .bind(last.tx_id)
        .bind(last.position)
        .bind(format_time(now))
        .bind(CHECKPOINT)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        if touched {
            self.wake.notify_one();
        }
        Ok(page.rows)
    }

    /// The fast path on PostgreSQL: the same work as [`Scheduler::catch_up`] on the events after
    /// `cursor` in plain position order, committed ones at once. The gap-safe reader waits for
    /// the oldest running transaction of the whole cluster, so one slow transaction anywhere
    /// would hold launches back; this path can skip an event that commits late, which the
    /// gap-safe reader then applies. Both paths are idempotent.
    async fn follow(&self, cursor: &mut i64) -> Result<usize, sqlx::Error> {
        let page = store::read_positions(&self.db, *cursor, BATCH, CAMPAIGNS).await?;
        let Some(last) = page.last else {
            return Ok(0);
        };
        if !page.events.is_empty() {
            let mut tx = self.db.begin().await?;
            let touched = apply_events(&mut tx, &page.events, Utc::now()).await?;
            tx.commit().await?;
            if touched {
                self.wake.notify_one();
            }
        }
        *cursor = last.position;
        Ok(page.rows)
    }

    /// Makes every campaign's launch job match the read model: the active scheduled or running
    /// campaigns with a `nextRunAt`, and every campaign that still has a pending launch job.
    /// Also deletes finished jobs older than a week.
    pub async fn reconcile(&self) -> Result<(), sqlx::Error> {
        let now = Utc::now();
        let mut after = (String::new(), String::new());
        loop {
            let rows = sqlx::query(
                "select org_id, id from campaigns
                 where state = 'active' and status in ('scheduled', 'running') and (org_id, id) > ($1, $2)
                 order by org_id, id limit 500",
            )
            .bind(&after.0)
            .bind(&after.1)
            .fetch_all(&self.db.read)
            .await?;
            let Some(last) = rows.last() else { break };
            after = (last.try_get("org_id")?, last.try_get("id")?);
            let mut tx = self.db.begin().await?;
            sync_rows(&mut tx, &rows, "id", now).await?;
            tx.commit().await?;
        }
        sqlx::query("delete from jobs where state in ('done', 'cancelled') and updated_at < $1")
            .bind(format_time(now - KEEP_FINISHED_JOBS))
            .execute(&self.db.write)
            .await?;
        let pending = sqlx::query(
            "select distinct org_id, campaign_id from jobs where kind = 'launch' and state = 'scheduled'",
        )
        .fetch_all(&self.db.read)
        .await?;
        for chunk in pending.chunks(500) {
            let mut tx = self.db.begin().await?;
            sync_rows(&mut tx, chunk, "campaign_id", now).await?;
            tx.commit().await?;
        }
        Ok(())
    }

    /// Claims up to `limit` due jobs of `kind` (or ones whose lease ran out) for this node.
    async fn claim(&self, kind: &str, limit: i64) -> Result<Vec<Job>, sqlx::Error> {
        let now = Utc::now();
        let lock = match self.db.backend {
            Backend::Postgres => "for update skip locked",
            // One writer: the statement runs alone.
            Backend::Sqlite => "",
        };
        let sql = format!(
            "update jobs set state = 'running', attempts = attempts + 1, locked_by = $1, locked_until = $2, updated_at = $3
             where id in (
               select id from jobs
               where kind = $4 and ((state = 'scheduled' and run_at <= $3) or (state = 'running' and locked_until < $3))
               order by run_at limit $5 {lock})
             returning id, org_id, campaign_id, kind, run_id, attempts, payload"
        );
        let rows = sqlx::query(&sql)
            .bind(&self.node_id)
            .bind(format_time(now + LEASE))
            .bind(format_time(now))
            .bind(kind)
            .bind(limit)
            .fetch_all(&self.db.write)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(Job {
                    id: row.try_get("id")?,
                    org_id: row.try_get("org_id")?,
                    campaign_id: row.try_get("campaign_id")?,
                    kind: row.try_get("kind")?,
                    run_id: row.try_get("run_id")?,
                    attempts: row.try_get("attempts")?,
                    payload: row.try_get("payload")?,
                })
            })
            .collect()
    }

    /// Ends a job this node holds: `state` is `done`, `failed` or `cancelled`.
    async fn finish(&self, job: &Job, state: &str, note: Option<String>) {
        let result = sqlx::query(
            "update jobs set state = $1, last_error = $2, locked_by = null, locked_until = null, updated_at = $3
             where id = $4 and locked_by = $5",
        )
        .bind(state)
        .bind(note)
        .bind(format_time(Utc::now()))
        .bind(&job.id)
        .bind(&self.node_id)
        .execute(&self.db.write)
        .await;
        if let Err(error) = result {
            tracing::warn!(%error, job = %job.id, "could not record the end of a job");
        }
    }

    /// Hands a job back to run again at `at` (a retry, a pause, or a stop before the end);
    /// a failing job is dead-lettered after [`MAX_JOB_ATTEMPTS`].
    async fn release(&self, job: &Job, at: DateTime<Utc>, error: Option<String>) {
        if error.is_some() && job.attempts >= MAX_JOB_ATTEMPTS {
            tracing::error!(job = %job.id, error = error.as_deref().unwrap_or(""), "job failed for good");
            return self.finish(job, "failed", error).await;
        }
        // Only failures count towards the dead letter; a pause or a stop starts afresh.
        let sql = if error.is_some() {
            "update jobs set state = 'scheduled', run_at = $1, last_error = $2, locked_by = null, locked_until = null, updated_at = $3
             where id = $4 and locked_by = $5"
        } else {
            "update jobs set state = 'scheduled', run_at = $1, last_error = $2, attempts = 0, locked_by = null, locked_until = null, updated_at = $3
             where id = $4 and locked_by = $5"
        };
        let result = sqlx::query(sql)
            .bind(format_time(at))
            .bind(error)
            .bind(format_time(Utc::now()))
            .bind(&job.id)
            .bind(&self.node_id)
            .execute(&self.db.write)
            .await;
        if let Err(error) = result {
            tracing::warn!(%error, job = %job.id, "could not hand a job back");
        }
    }

    fn meta(&self, job: &Job) -> CommandMeta {
        CommandMeta {
            org_id: job.org_id.clone(),
            actor: ACTOR.to_string(),
            request_id: job.id.clone(),
            correlation_id: job.run_id.clone().unwrap_or_else(|| job.id.clone()),
        }
    }

    /// Wakes a campaign: `RunDue` with a launch context built like the HTTP path's (readiness
    /// from the org's assets, reach from the audience now). Nothing due means no events.
    #[tracing::instrument(skip_all, fields(job = %job.id, org = %job.org_id, campaign = %job.campaign_id))]
    async fn run_launch(&self, job: Job) {
        match self.launch(&job).await {
            Ok(()) => self.finish(&job, "done", None).await,
            Err(error) => {
                tracing::warn!(%error, "launch job failed; will retry");
                let at = Utc::now() + backoff(job.attempts);
                self.release(&job, at, Some(error.to_string())).await;
            }
        }
    }

    async fn launch(&self, job: &Job) -> anyhow::Result<()> {
        let Some(doc) = campaigns::get(&self.db, &job.org_id, &job.campaign_id).await? else {
            return Ok(());
        };
        let spec: CampaignSpec = serde_json::from_value(doc.clone())?;
        let assets = OrgAssets::load(&self.db, &job.org_id).await?;
        let ready = assets.readiness(&spec);
        // A blocker without a channel (template or audience missing) stops the whole launch;
        // one with a channel only skips that channel, and the rest still go out.
        let blocked = ready.blockers.iter().any(|b| b.channel.is_none());
        let ahead = doc["nextRunAt"]
            .as_str()
            .and_then(|at| self.counted_ahead(&job.org_id, &job.campaign_id, at));
        let reach = if is_due(&doc, Utc::now() + DUE_MARGIN) && !blocked {
            if let Some(count) = ahead {
                count
            } else {
                match self.sender.audience_filter(&job.org_id, &spec).await {
                    Ok(filter) => self.sender.count_matching(&job.org_id, &filter).await?,
                    Err(SendRunError::Setup(_)) => 0,
                    Err(SendRunError::Db(error)) => return Err(error.into()),
                }
            }
        } else {
            0
        };
        let run_id = format!("run-{}", uuid::Uuid::now_v7());
        let ctx = launch_context(run_id.clone(), ready, reach);
        let outcome = campaigns::execute(
            &self.db,
            &self.meta(job),
            &job.campaign_id,
            false,
            None,
            None,
            move |_, now| CampaignCommand::RunDue { ctx: ctx(now) },
        )
        .await;
        match outcome {
            Ok(outcome) => {
                if outcome.changed {
                    tracing::info!(run = %run_id, status = outcome.view.campaign.status().as_str(), "campaign woken");
                    self.wakeup.wake();
                }
                Ok(())
            }
            Err(CommandError::Domain(CampaignError::NotFound | CampaignError::Deleted)) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    #[tracing::instrument(skip_all, fields(job = %job.id, org = %job.org_id, campaign = %job.campaign_id))]
    async fn run_send(self: Arc<Self>, job: Job, shutdown: watch::Receiver<bool>) {
        let plan: RunPlan = serde_json::from_str(&job.payload).unwrap_or_default();
        let Some(run_id) = job.run_id.clone() else {
            return self
                .finish(&job, "failed", Some("a send job without a run".into()))
                .await;
        };
        let lease = Lease {
            db: self.db.clone(),
            job_id: job.id.clone(),
            node_id: self.node_id.clone(),
            shutdown,
        };
        let outcome = self
            .sender
            .send_run(&job.org_id, &job.campaign_id, &run_id, &plan, &lease)
            .await;
        match outcome {
            Ok(RunOutcome::Finished(report)) => {
                tracing::info!(run = %run_id, ?report, "run sent");
                let note = serde_json::to_string(&report).ok();
                self.complete_one_shot(&job, &run_id).await;
                self.finish(&job, "done", note).await;
            }
            Ok(RunOutcome::Interrupted) => {
                // Resume at once, here after a restart or on another node.
                self.release(&job, Utc::now(), None).await;
            }
            Ok(RunOutcome::Paused) => {
                self.release(&job, Utc::now() + chrono::Duration::seconds(5), None)
                    .await;
            }
            Ok(RunOutcome::Cancelled(reason)) => self.finish(&job, "cancelled", Some(reason)).await,
            Err(error) => {
                tracing::warn!(%error, run = %run_id, "run could not be sent; will retry");
                let at = Utc::now() + backoff(job.attempts);
                self.release(&job, at, Some(error.to_string())).await;
            }
        }
    }

    /// A one-shot campaign is completed once every send of its run is dispatched or failed
    /// for good (`api.md` section 2). Recurring campaigns keep running between runs.
    async fn complete_one_shot(&self, job: &Job, run_id: &str) {
        let run = run_id.to_string();
        let outcome = campaigns::execute(
            &self.db,
            &self.meta(job),
            &job.campaign_id,
            false,
            None,
            None,
            move |campaign, now| {
                let this_run = campaign.last_run().is_some_and(|r| r.run_id == run);
                let one_shot = campaign.spec().recurring.is_none();
                let to = if this_run && one_shot && campaign.status() == Status::Running {
                    Status::Completed
                } else {
                    // The same status: no events.
                    campaign.status()
                };
                CampaignCommand::ChangeStatus {
                    to,
                    ctx: LaunchContext::new(now, run.clone()),
                }
            },
        )
        .await;
        match outcome {
            Ok(outcome) if outcome.changed => self.wakeup.wake(),
            Ok(_) | Err(CommandError::Domain(_)) => {}
            Err(error) => tracing::warn!(%error, run = %run_id, "could not complete the campaign"),
        }
    }
}

/// The launch context of a scheduled wake-up, built like the HTTP path's: what can go out now,
/// what blocks the rest, and the audience's reach at this moment.
fn launch_context(
    run_id: String,
    ready: Readiness,
    reach: u64,
) -> impl Fn(DateTime<Utc>) -> LaunchContext + Send + 'static {
    move |now| {
        LaunchContext::new(now, run_id.clone())
            .with_launchable(ready.launchable.clone())
            .with_blockers(ready.blockers.clone())
            .with_reach(reach)
    }
}

/// 1 s, 2 s, 4 s… up to 5 minutes, with jitter.
fn backoff(attempts: i64) -> chrono::Duration {
    let seconds = 1i64 << attempts.clamp(0, 8);
    let jitter = rand::random::<f64>() * 0.5 + 0.75;
    chrono::Duration::milliseconds(((seconds.min(300) * 1000) as f64 * jitter) as i64)
}

/// Whether a campaign read row has a run due by `by`.
fn is_due(doc: &Value, by: DateTime<Utc>) -> bool {
    let active =
        doc["state"] == "active" && matches!(doc["status"].as_str(), Some("scheduled" | "running"));
    active
        && doc["nextRunAt"]
            .as_str()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .is_some_and(|at| at <= by)
}

/// Derives jobs from a batch of the log: the send job of every `Launched` run, and the launch job
/// of every campaign the batch touches. Returns whether it added a job (one may be due now).
async fn apply_events(
    tx: &mut Tx,
    events: &[store::LoggedEvent],
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let mut touched: HashSet<(String, String)> = HashSet::new();
    let mut changed = false;
    for event in events {
        let record = &event.record;
        let Some(campaign_id) = record
            .stream_id
            .strip_prefix("campaign-")
            .and_then(|rest| rest.rsplit_once(':'))
            .map(|(_, id)| id.to_string())
        else {
            continue;
        };
        if record.event_type == "Launched" {
            if let Some(run_id) = record.data["runId"].as_str() {
                let plan = RunPlan {
                    channels: serde_json::from_value(record.data["channels"].clone())
                        .unwrap_or_default(),
                    launched_at: record.created.clone(),
                };
                add_send_job(tx, &event.org_id, &campaign_id, run_id, &plan, now).await?;
                changed = true;
            }
        }
        if record.event_type == "Created" {
            // A campaign's first event: a new campaign has no launch job, and one created
            // scheduled or running has its `Scheduled` or `Launched` event in this batch too.
            continue;
        }
        touched.insert((event.org_id.clone(), campaign_id));
    }
    changed |= sync_campaigns(tx, touched, now).await?;
    Ok(changed)
}

/// Reads the scheduler's checkpoint; `lock` takes the row lock (PostgreSQL) so that two nodes
/// do not apply one batch at the same time.
async fn checkpoint<'e, E>(executor: E, lock: bool) -> Result<Checkpoint, sqlx::Error>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let sql = if lock {
        "select tx_id, position from projection_checkpoints where name = $1 for update"
    } else {
        "select tx_id, position from projection_checkpoints where name = $1"
    };
    let row = sqlx::query(sql)
        .bind(CHECKPOINT)
        .fetch_optional(executor)
        .await?;
    Ok(match row {
        Some(row) => Checkpoint {
            tx_id: row.try_get("tx_id")?,
            position: row.try_get("position")?,
        },
        None => Checkpoint::default(),
    })
}

/// The `send` job of a launched run, once: its id is the run's.
async fn add_send_job(
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

/// Makes the pending launch jobs of one org's campaigns match their read rows: exactly one at
/// `nextRunAt` while a campaign is active and scheduled or running, none otherwise.
///
/// Reads the rows and the jobs of a whole chunk of campaigns in two queries and writes only
/// what differs, so following a log full of draft edits costs two reads per batch.
async fn sync_launch_jobs(
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
        let mut wanted: HashMap<String, String> = HashMap::new();
        for row in rows.fetch_all(&mut **tx).await? {
            let state: String = row.try_get("state")?;
            let status: String = row.try_get("status")?;
            if state != "active" || !matches!(status.as_str(), "scheduled" | "running") {
                continue;
            }
            let doc: Option<String> = row.try_get("doc")?;
            let due = doc
                .and_then(|doc| serde_json::from_str::<Value>(&doc).ok())
                .and_then(|doc| {
                    doc["nextRunAt"]
                        .as_str()
                        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                        .map(|at| format_time(at.with_timezone(&Utc)))
                });
            if let Some(due) = due {
                wanted.insert(row.try_get("id")?, due);
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
                .map(|due| format!("launch:{org_id}:{campaign_id}:{due}"));
            let jobs = pending.get(campaign_id).map(Vec::as_slice).unwrap_or(&[]);
            if let (Some(id), Some(due)) = (&keep, wanted.get(campaign_id)) {
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

/// [`sync_launch_jobs`] for `(org_id, campaign_id)` pairs of any orgs, one org at a time.
/// Returns whether it added a job.
async fn sync_campaigns(
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
async fn sync_rows(
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

/// What the health view shows of the scheduler.
#[derive(Debug, Clone)]
pub struct SchedulerHealth {
    /// `{heartbeatAt, workers, nodes}`: the newest heartbeat, and the send slots and processes
    /// with a fresh one.
    pub scheduler: Value,
    /// The org's jobs: `{depth, scheduled, running, failed}` (depth = scheduled + running).
    pub queue: Value,
    /// Some process has run workers on this database.
    pub registered: bool,
    /// No heartbeat in the last [`STALE_AFTER`].
    pub stale: bool,
}

/// Reads the scheduler's health: heartbeats of every node, jobs of one org.
pub async fn health(db: &Db, org_id: &str) -> Result<SchedulerHealth, sqlx::Error> {
    let fresh =
        format_time(Utc::now() - chrono::Duration::from_std(STALE_AFTER).unwrap_or_default());
    let row = sqlx::query(
        "select max(heartbeat_at) as heartbeat_at, count(*) as nodes,
           cast(coalesce(sum(case when heartbeat_at >= $1 then workers else 0 end), 0) as bigint) as workers,
           cast(coalesce(sum(case when heartbeat_at >= $1 then 1 else 0 end), 0) as bigint) as live
         from scheduler_nodes",
    )
    .bind(&fresh)
    .fetch_one(&db.read)
    .await?;
    let heartbeat: Option<String> = row.try_get("heartbeat_at")?;
    let nodes: i64 = row.try_get("nodes")?;
    let workers: i64 = row.try_get("workers")?;
    let live: i64 = row.try_get("live")?;
    let rows = sqlx::query(
        "select state, count(*) as n from jobs where org_id = $1 and state in ('scheduled', 'running', 'failed') group by state",
    )
    .bind(org_id)
    .fetch_all(&db.read)
    .await?;
    let mut counts = std::collections::HashMap::new();
    for row in rows {
        counts.insert(
            row.try_get::<String, _>("state")?,
            row.try_get::<i64, _>("n")?,
        );
    }
    let count = |state: &str| counts.get(state).copied().unwrap_or(0);
    Ok(SchedulerHealth {
        scheduler: json!({ "heartbeatAt": heartbeat, "workers": workers, "nodes": live }),
        queue: json!({
            "depth": count("scheduled") + count("running"),
            "scheduled": count("scheduled"),
            "running": count("running"),
            "failed": count("failed"),
        }),
        registered: nodes > 0,
        stale: heartbeat.as_deref().is_none_or(|at| at < fresh.as_str()),
    })
}
