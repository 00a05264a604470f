//! The command runner every aggregate's commands go through (campaigns and documents): who asks
//! ([`CommandMeta`], and the metadata its events carry), a task of its own so a client hanging up
//! cannot cancel a transaction half-way, re-runs on the newest state after a lost race, and the
//! `Idempotency-Key` record written in the command's transaction. What a command decides is its
//! aggregate's business; how it is run is this module's.

use std::future::Future;

use herald_projections::record::Metadata;

use crate::db::{Db, Tx};
use crate::store;

/// How many times a command is run on the newest state after losing a race.
pub const ATTEMPTS: usize = 40;

/// Who is asking, and the request that carries the command.
#[derive(Debug, Clone)]
pub struct CommandMeta {
    pub org_id: String,
    pub actor: String,
    pub request_id: String,
    pub correlation_id: String,
}

impl CommandMeta {
    /// The metadata every event this request causes carries.
    pub fn metadata(&self) -> Metadata {
        Metadata {
            actor: self.actor.clone(),
            org_id: self.org_id.clone(),
            request_id: self.request_id.clone(),
            correlation_id: self.correlation_id.clone(),
            causation_id: self.request_id.clone(),
        }
    }
}

/// A create request's idempotency record, written in the command's transaction.
#[derive(Debug, Clone)]
pub struct IdempotencyClaim {
    pub key: String,
    pub request_hash: String,
}

/// What one run of a command came to.
pub enum Attempt<T> {
    /// Done (committed, or nothing to write): the command's answer.
    Done(T),
    /// Lost a race for the stream (its transaction rolled back): run it again on the new state.
    Retry,
}

/// Runs `work` in a task of its own: dropping the caller (a client hanging up) does not cancel
/// it, so an answered command is complete and an unanswered one is complete or absent.
pub async fn in_own_task<T, E>(
    work: impl Future<Output = Result<T, E>> + Send + 'static,
    failed: impl FnOnce(String) -> E,
) -> Result<T, E>
where
    T: Send + 'static,
    E: Send + 'static,
{
    match tokio::spawn(work).await {
        Ok(result) => result,
        Err(error) => Err(failed(format!("command task failed: {error}"))),
    }
}

/// Runs `attempt` in a fresh transaction until it is done, up to [`ATTEMPTS`] times with a short
/// jittered pause between runs; `contention` is the error once every run lost its race.
pub async fn with_retries<T, E, F, Fut>(
    db: &Db,
    mut attempt: F,
    contention: impl FnOnce() -> E,
) -> Result<T, E>
where
    F: FnMut(Tx) -> Fut,
    Fut: Future<Output = Result<Attempt<T>, E>>,
    E: From<sqlx::Error>,
{
    for n in 0..ATTEMPTS {
        if n > 0 {
            backoff(n).await;
        }
        let tx = db.begin().await?;
        if let Attempt::Done(answer) = attempt(tx).await? {
            return Ok(answer);
        }
    }
    Err(contention())
}

/// Stores the answer of a create under its `Idempotency-Key`, in the command's transaction.
/// `false` when a concurrent request with the same key stored one first (the caller rolls back).
pub async fn record_idempotent_answer(
    tx: &mut Tx,
    org_id: &str,
    claim: &IdempotencyClaim,
    body: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "insert into idempotency_keys (org_id, key, request_hash, status, body, created_at)
         values ($1, $2, $3, 201, $4, $5) on conflict (org_id, key) do nothing",
    )
    .bind(org_id)
    .bind(&claim.key)
    .bind(&claim.request_hash)
    .bind(body)
    .bind(store::format_time(now))
    .execute(&mut **tx)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// A short, jittered pause before re-running a command that lost a race.
pub async fn backoff(attempt: usize) {
    let jitter = uuid::Uuid::now_v7().as_u128() as u64 % 1000;
    let micros = (attempt as u64).min(10) * 500 + jitter;
    tokio::time::sleep(std::time::Duration::from_micros(micros)).await;
}

/// Deletes the org's stored `Idempotency-Key` answers whose body contains `needle` (erasure,
/// ADR 15: a contact create's answer holds the contact). Reads the org's records, which the
/// key's primary index bounds; answers older than a day are no longer replayed anyway.
pub async fn forget_answers(
    tx: &mut Tx,
    backend: crate::db::Backend,
    org_id: &str,
    needle: &str,
) -> Result<(), sqlx::Error> {
    let contains = match backend {
        crate::db::Backend::Postgres => "strpos(body, $2) > 0",
        crate::db::Backend::Sqlite => "instr(body, $2) > 0",
    };
    sqlx::query(&format!(
        "delete from idempotency_keys where org_id = $1 and {contains}"
    ))
    .bind(org_id)
    .bind(needle)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
