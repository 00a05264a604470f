//! The `jobs` table: durable `launch` and `send` jobs, their claim and lease, their end and
//! hand-back, and the launch jobs derived from campaign read rows. Jobs are at least once;
//! effects are exactly once because the aggregate refuses a second launch of one occurrence and
//! the send ledger a second send of one (run, contact, channel).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use herald_domain::campaign;
use herald_domain::spec::{CampaignSpec, Channel, Status};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::Row;
use tokio::sync::watch;

use crate::db::{Backend, Db, Tx};
use crate::store::{self, format_time};

/// How long a claimed job stays ours without a renewal; after that another node may take it.
const LEASE: std::time::Duration = std::time::Duration::from_secs(30);
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
}

/// The claim on a running job: renewing it proves the job is still ours and extends it.
pub struct Lease {
    db: Db,
    job_id: String,
    node_id: String,
    shutdown: watch::Receiver<bool>,
}

impl Lease {
    /// The lease on `job`, held by this node until shutdown.
    pub fn new(jobs: &Jobs, job: &Job, shutdown: watch::Receiver<bool>) -> Lease {
        Lease {
            db: jobs.db.clone(),
            job_id: job.id.clone(),
            node_id: jobs.node_id.clone(),
            shutdown,
        }
    }

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

/// The jobs of one node: claims, ends and hand-backs in its name.
#[derive(Debug, Clone)]
pub struct Jobs {
    db: Db,
    node_id: String,
}

impl Jobs {
    pub fn new(db: Db, node_id: String) -> Jobs {
        Jobs { db, node_id }
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

    /// Claims up to `limit` due jobs of `kind` (or ones whose lease ran out) for this node.
    ///
    /// A job whose lease ran out [`MAX_JOB_ATTEMPTS`] times was abandoned by every process that
    /// ran it (each crashed or was killed while it ran): it is dead-lettered instead of taken,
    /// so one job cannot crash-loop every node.
    pub async fn claim(&self, kind: &str, limit: i64) -> Result<Vec<Job>, sqlx::Error> {
        let now = Utc::now();
        let abandoned = sqlx::query(
            "update jobs set state = 'failed', last_error = $1, locked_by = null, locked_until = null, updated_at = $2
             where kind = $3 and state = 'running' and locked_until < $2 and attempts >= $4",
        )
        .bind(format!(
            "abandoned {MAX_JOB_ATTEMPTS} times: the process running it stopped without handing it back"
        ))
        .bind(format_time(now))
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
    pub async fn finish(&self, job: &Job, state: &str, note: Option<String>) {
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
    pub async fn release(&self, job: &Job, at: DateTime<Utc>, error: Option<String>) {
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
