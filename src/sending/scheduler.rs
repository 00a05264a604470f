//! The scheduler of one process: follows the log to derive jobs, reconciles them, counts the
//! audiences of launches about to fall due, claims due jobs and runs them (launches through
//! `launch`, fan-outs through `run`), and beats the heartbeat the health view reads.
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
use herald_domain::spec::CampaignSpec;
use serde_json::{json, Value};
use sqlx::Row;
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;

use super::audience;
use super::drip;
use super::jobs::{self, Job, Jobs, Lease, LeaseSettings, RunPlan};
use super::launch::{self, LaunchClock, Woken};
use super::ledger;
use super::run::{RunOutcome, Sender};
use crate::campaigns::{self, CommandMeta};
use crate::db::{Backend, Db, Tx};
use crate::frequency;
use crate::projector::Wakeup;
use crate::store::{self, format_time, Checkpoint};

/// Send jobs one process runs at once.
pub const SEND_SLOTS: usize = 2;
/// Batches of due drip and milestone steps one process sends at once.
const STEP_SLOTS: usize = 2;
/// The actor recorded on the events the scheduler causes.
pub const ACTOR: &str = "herald-scheduler";
/// The checkpoint name of the scheduler's catch-up reader.
pub const CHECKPOINT: &str = "scheduler";
/// A heartbeat older than this makes the health view `degraded`.
pub const STALE_AFTER: Duration = Duration::from_secs(10);
/// How often the loop looks for due jobs when nothing wakes it.
const POLL: Duration = Duration::from_millis(200);
const HEARTBEAT: Duration = Duration::from_secs(1);
const RECONCILE_EVERY: Duration = Duration::from_secs(60);
/// Events read per catch-up batch.
const BATCH: i64 = 500;

/// The scheduler follows campaigns only; the rest of the log is skipped without being decoded.
const CAMPAIGNS: store::Interest = store::Interest::StreamsPrefixed(&["campaign-"]);
/// Launches due within this long have their audience counted ahead (a million contacts take
/// over a second), so the launch at `startAt` does not wait for the count.
const COUNT_AHEAD: chrono::Duration = chrono::Duration::seconds(3);

/// Audience counts taken ahead of launches, by (org, campaign): the `nextRunAt` each was taken
/// for and the count (`None` while it is being taken).
type Counted = Arc<std::sync::Mutex<HashMap<(String, String), (String, Option<u64>)>>>;

/// The scheduler of one process.
pub struct Scheduler {
    db: Db,
    sender: Arc<Sender>,
    jobs: Jobs,
    wakeup: Wakeup,
    wake: Arc<Notify>,
    node_id: String,
    started_at: String,
    counted: Counted,
    clock: LaunchClock,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

impl Scheduler {
    pub fn new(
        db: Db,
        sender: Sender,
        wakeup: Wakeup,
        clock: LaunchClock,
        leases: LeaseSettings,
    ) -> Scheduler {
        let node_id = format!("node-{}", uuid::Uuid::now_v7());
        Scheduler {
            jobs: Jobs::new(db.clone(), node_id.clone(), leases),
            db,
            sender: Arc::new(sender),
            wake: wakeup.scheduler(),
            wakeup,
            node_id,
            started_at: format_time(Utc::now()),
            counted: Counted::default(),
            clock,
        }
    }

    /// Starts counting the audience of every launch due within [`COUNT_AHEAD`] that has no
    /// count yet, each in its own task. The jobs stay as they are (scheduled, cancellable);
    /// [`Scheduler::launch`] uses a count taken for the same `nextRunAt`.
    async fn count_ahead(&self) -> Result<(), sqlx::Error> {
        let now = Utc::now();
        let due = self
            .jobs
            .launches_due_between(now, now + COUNT_AHEAD, 16)
            .await?;
        for key in due {
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
                let count = audience::reach(sender.db(), &key.0, &spec).await.ok();
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
        super::enroll::prepare(&self.db, CHECKPOINT).await?;
        self.jobs.release_abandoned().await?;
        Ok(())
    }

    /// Runs until `shutdown` flips: heartbeat, catch-up, reconcile, launches and fan-outs. On
    /// shutdown, running fan-outs stop after their current page and hand their job back.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let heartbeat = tokio::spawn(self.clone().beat(shutdown.clone()));
        let mut sends: JoinSet<()> = JoinSet::new();
        let mut steps: JoinSet<()> = JoinSet::new();
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
            while steps.try_join_next().is_some() {}
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
            // Bounded per turn, so a long backlog does not hold launches and steps back.
            for _ in 0..20 {
                match super::enroll::catch_up(&self.db).await {
                    Ok(0) => break,
                    Ok(_) => continue,
                    Err(error) => {
                        tracing::warn!(%error, "enrolling from the log failed");
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
            match self.jobs.claim("launch", 16).await {
                Ok(jobs) => {
                    for job in jobs {
                        self.run_launch(job, shutdown.clone()).await;
                    }
                }
                Err(error) => tracing::warn!(%error, "claiming launch jobs failed"),
            }
            let free = SEND_SLOTS.saturating_sub(sends.len());
            if free > 0 {
                match self.jobs.claim("send", free as i64).await {
                    Ok(jobs) => {
                        for job in jobs {
                            sends.spawn(self.clone().run_send(job, shutdown.clone()));
                        }
                    }
                    Err(error) => tracing::warn!(%error, "claiming send jobs failed"),
                }
            }
            // Every free slot at once: a full batch means more are due, and waiting for the
            // next turn would leave a slot idle while a million steps fall due together.
            while steps.len() < STEP_SLOTS {
                match drip::claim_due(&self.db, &self.node_id, drip::STEP_BATCH).await {
                    Ok(batch) if !batch.is_empty() => {
                        let full = batch.len() as i64 == drip::STEP_BATCH;
                        steps.spawn(self.clone().run_steps(batch, shutdown.clone()));
                        if !full {
                            break;
                        }
                    }
                    Ok(_) => break,
                    Err(error) => {
                        tracing::warn!(%error, "claiming due steps failed");
                        break;
                    }
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
        while steps.join_next().await.is_some() {}
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

    /// Beats this node's heartbeat, on the database's clock like the leases.
    async fn heartbeat(&self) -> Result<(), sqlx::Error> {
        let backend = self.db.backend;
        sqlx::query(&format!(
            "insert into scheduler_nodes (node_id, workers, started_at, heartbeat_at) values ($1, $2, $3, {})
             on conflict (node_id) do update set heartbeat_at = excluded.heartbeat_at, workers = excluded.workers",
            jobs::db_time(backend, 0)
        ))
        .bind(&self.node_id)
        .bind(SEND_SLOTS as i64)
        .bind(&self.started_at)
        .execute(&self.db.write)
        .await?;
        sqlx::query(&format!(
            "delete from scheduler_nodes where heartbeat_at < {}",
            jobs::db_time(backend, -3_600_000)
        ))
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
        store::save_checkpoint(&mut *tx, CHECKPOINT, last, now).await?;
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
    /// Also deletes finished jobs older than a week, frequency counters of periods long past and
    /// soft bounces older than 30 days.
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
            jobs::sync_rows(&mut tx, &rows, "id", now).await?;
            tx.commit().await?;
        }
        self.jobs.delete_finished(now).await?;
        let pending = self.jobs.pending_launches().await?;
        for chunk in pending.chunks(500) {
            let mut tx = self.db.begin().await?;
            jobs::sync_rows(&mut tx, chunk, "campaign_id", now).await?;
            tx.commit().await?;
        }
        self.prune_consent_bookkeeping(now).await;
        Ok(())
    }

    /// Deletes frequency counters of periods long past and soft bounces older than the 30 days
    /// they count in (`docs/consent.md`), a batch at a time. A failure is logged and tried
    /// again on the next pass: it costs space, never a launch.
    async fn prune_consent_bookkeeping(&self, now: DateTime<Utc>) {
        let pruned = async {
            let counts = frequency::prune(&self.db, now).await?;
            let bounces =
                crate::webhooks::lookup::prune_soft_bounces(&self.db, now, frequency::PRUNE_BATCH)
                    .await?;
            Ok::<_, sqlx::Error>((counts, bounces))
        };
        match pruned.await {
            Ok((0, 0)) => {}
            Ok((counts, bounces)) => {
                tracing::info!(
                    counts,
                    bounces,
                    "pruned old frequency counters and soft bounces"
                )
            }
            Err(error) => {
                tracing::warn!(%error, "pruning frequency counters and soft bounces failed")
            }
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
    async fn run_launch(&self, job: Job, shutdown: watch::Receiver<bool>) {
        // Renewed while the launch runs (counting a large audience takes a while).
        let _lease = Lease::new(&self.jobs, &job, shutdown);
        match self.launch(&job).await {
            Ok(None) => self.jobs.finish(&job, "done", None).await,
            Ok(Some(again)) => self.jobs.release(&job, again, None).await,
            Err(error) => {
                tracing::warn!(%error, "launch job failed; will retry");
                let at = Utc::now() + jobs::backoff(job.attempts);
                self.jobs.release(&job, at, Some(error.to_string())).await;
            }
        }
    }

    /// Runs the wake-up; `Some` when the job must run again at that time.
    async fn launch(&self, job: &Job) -> anyhow::Result<Option<DateTime<Utc>>> {
        let woken = launch::run_due(
            &self.db,
            &self.meta(job),
            &job.campaign_id,
            self.clock,
            |at| self.counted_ahead(&job.org_id, &job.campaign_id, at),
        )
        .await?;
        match woken {
            Woken::Changed { run_id, status } => {
                tracing::info!(run = %run_id, status = status.as_str(), "campaign woken");
                self.wakeup.wake();
                Ok(None)
            }
            Woken::Unchanged => Ok(None),
            Woken::Again(at) => Ok(Some(at)),
        }
    }

    #[tracing::instrument(skip_all, fields(job = %job.id, org = %job.org_id, campaign = %job.campaign_id))]
    async fn run_send(self: Arc<Self>, job: Job, shutdown: watch::Receiver<bool>) {
        let plan: RunPlan = serde_json::from_str(&job.payload).unwrap_or_default();
        let Some(run_id) = job.run_id.clone() else {
            return self
                .jobs
                .finish(&job, "failed", Some("a send job without a run".into()))
                .await;
        };
        let lease = Lease::new(&self.jobs, &job, shutdown);
        let sequence = match campaigns::get(&self.db, &job.org_id, &job.campaign_id).await {
            Ok(doc) => doc.is_some_and(|doc| {
                serde_json::from_value::<CampaignSpec>(doc).is_ok_and(|spec| spec.has_steps())
            }),
            Err(_) => false,
        };
        let outcome = if sequence {
            // A drip or milestone run enrolls its audience; the steps send on their own clocks.
            self.sender
                .enroll_run(&job.org_id, &job.campaign_id, &run_id, &plan, &lease)
                .await
        } else {
            self.sender
                .send_run(&job.org_id, &job.campaign_id, &run_id, &plan, &lease)
                .await
        };
        match outcome {
            Ok(RunOutcome::Finished(mut report)) => {
                if !sequence {
                    // Over every pass of the run, whichever node sent it (`ledger::run_counts`).
                    report.zone_fallbacks = self.report_run(&job, &run_id).await;
                }
                tracing::info!(run = %run_id, ?report, "run sent");
                let note = serde_json::to_string(&report).ok();
                self.complete_one_shot(&job, &run_id).await;
                self.jobs.finish(&job, "done", note).await;
                if sequence {
                    self.complete_sequence(&job.org_id, &job.campaign_id).await;
                }
            }
            Ok(RunOutcome::Deferred(at, report)) => {
                // Sends held by quiet hours: the run goes again, from its first page, when the
                // earliest window ends; the ledger keeps what went out from going twice.
                tracing::info!(run = %run_id, ?report, %at, "run sent but for held sends");
                self.jobs.defer(&job, at, &plan).await;
            }
            Ok(RunOutcome::Interrupted) => {
                // Resume at once, here after a restart or on another node.
                self.jobs.release(&job, Utc::now(), None).await;
            }
            Ok(RunOutcome::Paused) => {
                self.jobs
                    .release(&job, Utc::now() + chrono::Duration::seconds(5), None)
                    .await;
            }
            Ok(RunOutcome::Cancelled(reason)) => {
                self.jobs.finish(&job, "cancelled", Some(reason)).await
            }
            Err(error) => {
                tracing::warn!(%error, run = %run_id, "run could not be sent; will retry");
                let at = Utc::now() + jobs::backoff(job.attempts);
                self.jobs.release(&job, at, Some(error.to_string())).await;
            }
        }
    }

    /// Sends a claimed batch of due steps, then completes the `launch`-enrolled drips whose
    /// last contact is done; while batches come back full, claims the next one itself, so a
    /// slot never waits for the scheduler's turn when a million steps fall due together. A
    /// batch that fails stays claimed until its lease runs out, and is tried again then.
    async fn run_steps(
        self: Arc<Self>,
        mut batch: Vec<drip::DueStep>,
        shutdown: watch::Receiver<bool>,
    ) {
        loop {
            let full = batch.len() as i64 == drip::STEP_BATCH;
            match self.sender.send_due_steps(&self.node_id, batch).await {
                Ok(campaigns) => {
                    for (org_id, campaign_id) in campaigns {
                        self.complete_sequence(&org_id, &campaign_id).await;
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "due steps could not be sent; will retry");
                    return;
                }
            }
            if !full || *shutdown.borrow() {
                return;
            }
            batch = match drip::claim_due(&self.db, &self.node_id, drip::STEP_BATCH).await {
                Ok(next) if !next.is_empty() => next,
                Ok(_) => return,
                Err(error) => {
                    tracing::warn!(%error, "claiming due steps failed");
                    return;
                }
            };
        }
    }

    /// Completes a `launch`-enrolled drip whose every contact finished or exited.
    async fn complete_sequence(&self, org_id: &str, campaign_id: &str) {
        let meta = CommandMeta {
            org_id: org_id.to_string(),
            actor: ACTOR.to_string(),
            request_id: format!("steps:{campaign_id}"),
            correlation_id: campaign_id.to_string(),
        };
        match drip::complete_if_done(&self.db, &meta, campaign_id).await {
            Ok(true) => self.wakeup.wake(),
            Ok(false) => {}
            Err(error) => {
                tracing::warn!(%error, campaign = %campaign_id, "could not complete the drip")
            }
        }
    }

    /// Puts what the sent run reports on the campaign (`lastRun.capped` and
    /// `lastRun.zoneFallbacks`, `launch::report_run`), counted from the ledger so a run resumed
    /// after a crash, or sent over several passes, reports all of it once. Returns the
    /// fallbacks counted (0 when they could not be read).
    async fn report_run(&self, job: &Job, run_id: &str) -> u64 {
        let counts = match ledger::run_counts(&self.db, &job.org_id, run_id).await {
            Ok(counts) => counts,
            Err(error) => {
                tracing::warn!(%error, run = %run_id, "could not count the run's capped sends and fallbacks");
                return 0;
            }
        };
        if counts == ledger::RunCounts::default() {
            return 0;
        }
        if let Err(error) = launch::report_run(
            &self.db,
            &self.meta(job),
            &job.campaign_id,
            run_id,
            counts.capped,
            counts.zone_fallbacks,
        )
        .await
        {
            tracing::warn!(%error, run = %run_id, "could not report the run");
        }
        counts.zone_fallbacks
    }

    /// Completes a one-shot campaign whose run is sent (`launch::complete_one_shot`).
    async fn complete_one_shot(&self, job: &Job, run_id: &str) {
        match launch::complete_one_shot(&self.db, &self.meta(job), &job.campaign_id, run_id).await {
            Ok(true) => self.wakeup.wake(),
            Ok(false) => {}
            Err(error) => tracing::warn!(%error, run = %run_id, "could not complete the campaign"),
        }
    }
}

/// Derives jobs from a batch of the log: the send job of every `Launched` run, and the launch job
/// of every campaign the batch touches. Returns whether it added a job (one may be due now).
async fn apply_events(
    tx: &mut Tx,
    events: &[store::LoggedEvent],
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let mut touched: HashSet<(String, String)> = HashSet::new();
    // Campaigns whose status may have moved: their enrollments follow (`drip::sync_enrollments`).
    let mut lifecycle: HashSet<(String, String)> = HashSet::new();
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
                jobs::add_send_job(tx, &event.org_id, &campaign_id, run_id, &plan, now).await?;
                changed = true;
            }
        }
        if record.event_type == "Created" {
            // A campaign's first event: a new campaign has no launch job, and one created
            // scheduled or running has its `Scheduled` or `Launched` event in this batch too.
            continue;
        }
        if matches!(
            record.event_type.as_str(),
            "Paused" | "Resumed" | "Completed" | "SoftDeleted"
        ) {
            lifecycle.insert((event.org_id.clone(), campaign_id.clone()));
        }
        touched.insert((event.org_id.clone(), campaign_id));
    }
    drip::sync_enrollments(tx, &lifecycle).await?;
    changed |= jobs::sync_campaigns(tx, touched, now).await?;
    Ok(changed)
}

/// Reads the scheduler's checkpoint; `lock` takes the row lock (PostgreSQL).
async fn checkpoint<'e, E>(executor: E, lock: bool) -> Result<Checkpoint, sqlx::Error>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    store::checkpoint(executor, CHECKPOINT, lock).await
}

/// What the health view shows of the scheduler.
#[derive(Debug, Clone)]
pub struct SchedulerHealth {
    /// `{heartbeatAt, workers, nodes, liveNodes}`: the newest heartbeat, the send slots and
    /// number of processes with a fresh one, and those processes with the org's jobs each holds.
    pub scheduler: Value,
    /// The org's jobs: `{depth, scheduled, running, failed}` (depth = scheduled + running).
    pub queue: Value,
    /// Some process has run workers on this database.
    pub registered: bool,
    /// No heartbeat in the last [`STALE_AFTER`].
    pub stale: bool,
}

/// Reads the scheduler's health: heartbeats of every node (fresh by the database's clock, which
/// also stamps them), jobs of one org.
pub async fn health(db: &Db, org_id: &str) -> Result<SchedulerHealth, sqlx::Error> {
    let fresh = jobs::db_time(db.backend, -(STALE_AFTER.as_millis() as i64));
    let row = sqlx::query(&format!(
        "select max(heartbeat_at) as heartbeat_at, count(*) as nodes,
           cast(coalesce(sum(case when heartbeat_at >= {fresh} then workers else 0 end), 0) as bigint) as workers,
           cast(coalesce(sum(case when heartbeat_at >= {fresh} then 1 else 0 end), 0) as bigint) as live
         from scheduler_nodes"
    ))
    .fetch_one(&db.read)
    .await?;
    let heartbeat: Option<String> = row.try_get("heartbeat_at")?;
    let nodes: i64 = row.try_get("nodes")?;
    let workers: i64 = row.try_get("workers")?;
    let live: i64 = row.try_get("live")?;
    let mut held = jobs::held(db, org_id).await?;
    let live_nodes = sqlx::query(&format!(
        "select node_id, workers, started_at, heartbeat_at from scheduler_nodes
         where heartbeat_at >= {fresh} order by started_at, node_id"
    ))
    .fetch_all(&db.read)
    .await?
    .iter()
    .map(|row| {
        let node_id: String = row.try_get("node_id")?;
        Ok(json!({
            "nodeId": node_id,
            "startedAt": row.try_get::<String, _>("started_at")?,
            "heartbeatAt": row.try_get::<String, _>("heartbeat_at")?,
            "workers": row.try_get::<i64, _>("workers")?,
            "jobs": held.remove(&node_id).unwrap_or_default(),
        }))
    })
    .collect::<Result<Vec<Value>, sqlx::Error>>()?;
    Ok(SchedulerHealth {
        scheduler: json!({
            "heartbeatAt": heartbeat,
            "workers": workers,
            "nodes": live,
            "liveNodes": live_nodes,
        }),
        queue: with_steps(
            jobs::queue(db, org_id).await?,
            drip::pending_steps(db, org_id).await?,
        ),
        registered: nodes > 0,
        stale: live == 0,
    })
}

/// The job queue with the org's pending drip and milestone steps counted in its depth.
fn with_steps(mut queue: Value, steps: i64) -> Value {
    let depth = queue["depth"].as_i64().unwrap_or(0) + steps;
    queue["depth"] = json!(depth);
    queue["steps"] = json!(steps);
    queue
}
