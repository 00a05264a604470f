//! The org purge job: the one thing allowed to rewrite history. It permanently removes an org's
//! soft-deleted campaigns — their streams (campaign, runs, deliveries), read rows, engagement
//! data, ledger, outbox and jobs — and appends a `Purged` tombstone (who, when, which ids) to
//! the org's audit stream `audit-<org>`, all in one transaction.
//!
//! Jobs are rows in `purge_jobs`: `POST /crm/marketing/purge` inserts one and runs it in the
//! background; a process that stops before the end leaves it `pending` and the next start runs
//! it again (a purge is idempotent). `herald purge --org ORG` runs one in the foreground.

use chrono::Utc;
use herald_projections::record::Metadata;
use serde_json::{json, Value};
use sqlx::Row;

use crate::db::Db;
use crate::store::{self, format_time, NewEvent};

/// The audit stream of an org: `audit-<org>`.
pub fn audit_stream(org_id: &str) -> String {
    format!("audit-{org_id}")
}

/// Tables holding a campaign's rows, by `(org_id, campaign_id)`.
const CAMPAIGN_TABLES: [&str; 10] = [
    "analytics_daily",
    "analytics_step_days",
    "enrollments",
    "analytics_uniques",
    "contact_activities",
    "send_ledger",
    "sandbox_messages",
    "short_links",
    "jobs",
    "campaign_status_index",
];

/// Records a new pending job; returns its id.
pub async fn enqueue(db: &Db, org_id: &str, actor: &str) -> Result<String, sqlx::Error> {
    let id = format!("purge-{}", uuid::Uuid::now_v7());
    sqlx::query(
        "insert into purge_jobs (id, org_id, state, requested_by, requested_at) values ($1, $2, 'pending', $3, $4)",
    )
    .bind(&id)
    .bind(org_id)
    .bind(actor)
    .bind(format_time(Utc::now()))
    .execute(&db.write)
    .await?;
    Ok(id)
}

/// A job as `GET /crm/marketing/purge/:jobId` shows it, if it belongs to `org_id`.
pub async fn status(db: &Db, org_id: &str, job_id: &str) -> Result<Option<Value>, sqlx::Error> {
    let row = sqlx::query(
        "select id, state, requested_by, requested_at, finished_at, result, error from purge_jobs
         where org_id = $1 and id = $2",
    )
    .bind(org_id)
    .bind(job_id)
    .fetch_optional(&db.read)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let result: Option<String> = row.try_get("result")?;
    let result: Value = result
        .and_then(|r| serde_json::from_str(&r).ok())
        .unwrap_or(Value::Null);
    Ok(Some(json!({
        "jobId": row.try_get::<String, _>("id")?,
        "status": row.try_get::<String, _>("state")?,
        "requestedBy": row.try_get::<String, _>("requested_by")?,
        "requestedAt": row.try_get::<String, _>("requested_at")?,
        "finishedAt": row.try_get::<Option<String>, _>("finished_at")?,
        "campaignIds": result.get("campaignIds").cloned().unwrap_or(json!([])),
        "eventsRemoved": result.get("eventsRemoved").cloned().unwrap_or(json!(0)),
        "error": row.try_get::<Option<String>, _>("error")?,
    })))
}

/// Runs a job to the end and records its outcome; errors are recorded on the job too.
pub async fn run(db: &Db, job_id: &str) -> anyhow::Result<Value> {
    let row = sqlx::query("select org_id, requested_by from purge_jobs where id = $1")
        .bind(job_id)
        .fetch_one(&db.read)
        .await?;
    let org_id: String = row.try_get("org_id")?;
    let actor: String = row.try_get("requested_by")?;
    sqlx::query("update purge_jobs set state = 'running' where id = $1 and state = 'pending'")
        .bind(job_id)
        .execute(&db.write)
        .await?;
    match purge(db, &org_id, &actor, job_id).await {
        Ok(result) => {
            sqlx::query(
                "update purge_jobs set state = 'completed', finished_at = $2, result = $3 where id = $1",
            )
            .bind(job_id)
            .bind(format_time(Utc::now()))
            .bind(result.to_string())
            .execute(&db.write)
            .await?;
            Ok(result)
        }
        Err(error) => {
            tracing::error!(job_id, %error, "purge failed");
            sqlx::query(
                "update purge_jobs set state = 'failed', finished_at = $2, error = $3 where id = $1",
            )
            .bind(job_id)
            .bind(format_time(Utc::now()))
            .bind("the purge failed; see the server log")
            .execute(&db.write)
            .await?;
            Err(error)
        }
    }
}

/// Runs every job a stopped process left unfinished.
pub async fn resume(db: &Db) -> Result<(), sqlx::Error> {
    let ids: Vec<String> =
        sqlx::query_scalar("select id from purge_jobs where state in ('pending', 'running')")
            .fetch_all(&db.read)
            .await?;
    for id in ids {
        let db = db.clone();
        tokio::spawn(async move {
            let _ = run(&db, &id).await;
        });
    }
    Ok(())
}

/// The purge itself, in one transaction.
async fn purge(db: &Db, org_id: &str, actor: &str, job_id: &str) -> anyhow::Result<Value> {
    let mut tx = db.begin().await?;
    let ids: Vec<String> = sqlx::query_scalar(
        "select id from campaigns where org_id = $1 and state = 'deleted' order by id",
    )
    .bind(org_id)
    .fetch_all(&mut *tx)
    .await?;
    let mut removed = 0u64;
    for id in &ids {
        // Prefixes compared exactly: `like` would read `_` in an id as any character (and, on
        // SQLite, ignore case), so purging `spring_1` would also erase `spring-1`'s runs.
        let result = sqlx::query(
            "delete from events where org_id = $1 and (stream_id = $2
               or substr(stream_id, 1, length($3)) = $3 or substr(stream_id, 1, length($4)) = $4
               or substr(stream_id, 1, length($5)) = $5 or substr(stream_id, 1, length($6)) = $6)",
        )
        .bind(org_id)
        .bind(format!("campaign-{org_id}:{id}"))
        .bind(format!("run-{org_id}:{id}:"))
        .bind(format!("delivery-{org_id}:{id}:"))
        .bind(format!("enrollment-{org_id}:{id}:"))
        .bind(format!("testsend-{org_id}:{id}:"))
        .execute(&mut *tx)
        .await?;
        removed += result.rows_affected();
        for table in CAMPAIGN_TABLES {
            sqlx::query(&format!(
                "delete from {table} where org_id = $1 and campaign_id = $2"
            ))
            .bind(org_id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "delete from engagement_keys where org_id = $1
               and (substr(key, 1, length($2)) = $2 or substr(key, 1, length($3)) = $3)",
        )
        .bind(org_id)
        .bind(format!("api:{id}:"))
        .bind(format!("unsubscribe:{id}:"))
        .execute(&mut *tx)
        .await?;
        sqlx::query("delete from campaigns where org_id = $1 and id = $2")
            .bind(org_id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        crate::analytics::bump_versions(&mut tx, [org_id]).await?;
    }
    let now = Utc::now();
    let result = json!({"campaignIds": ids, "eventsRemoved": removed});
    let event = NewEvent {
        event_type: "Purged".to_string(),
        event_version: "1".to_string(),
        data: json!({"jobId": job_id, "campaignIds": ids, "eventsRemoved": removed, "at": format_time(now)}),
    };
    let stream = audit_stream(org_id);
    let metadata = Metadata {
        actor: actor.to_string(),
        org_id: org_id.to_string(),
        request_id: job_id.to_string(),
        correlation_id: job_id.to_string(),
        causation_id: job_id.to_string(),
    };
    store::append_at_head(&mut tx, db.backend, &stream, &event, &metadata, now)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    tx.commit().await?;
    for id in &ids {
        db.cache.evict(org_id, id);
        db.cache.announce(org_id, id);
    }
    tracing::info!(
        org_id,
        job_id,
        campaigns = ids.len(),
        events = removed,
        "purged deleted campaigns"
    );
    Ok(result)
}
