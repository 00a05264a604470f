//! Audience reach: how many of an org's contacts a filter matches, and the oldest few of them.
//!
//! One engine for `GET /crm/audiences/:id/reach`, `POST /crm/audiences/preview`, a campaign's
//! reach and the count a launch records; [`contacts_predicate`] puts the same filter into the
//! send pages. Memory stays flat whatever the org's size.
//!
//! On PostgreSQL the filter runs as one SQL predicate over the contact's `jsonb` column `body`
//! ([`Filter::to_postgres`]); when part of it cannot be compiled exactly, SQL narrows the rows
//! and the evaluator, which stays the oracle, decides. SQLite streams every contact through the
//! evaluator.

use std::sync::Arc;

use futures::TryStreamExt;
use herald_domain::query::{Filter, SqlPredicate};
use serde_json::Value;
use sqlx::Row;

use crate::db::{Backend, Db};
use crate::store::AnyQuery;

/// Contacts a reach answer shows as its sample.
pub const SAMPLE: usize = 10;

/// Counts the org's contacts matching `filter` and keeps the `sample` oldest matches (creation
/// order: `createdAt`, then `id`, by code point).
pub async fn evaluate(
    db: &Db,
    org_id: &str,
    filter: &Filter,
    sample: usize,
) -> Result<(u64, Vec<Value>), sqlx::Error> {
    if db.backend == Backend::Sqlite {
        return stream(db, org_id, filter, sample, None).await;
    }
    let predicate = filter.to_postgres("body", 2);
    if !predicate.exact {
        return stream(db, org_id, filter, sample, Some(&predicate)).await;
    }
    let mut tx = without_jit(db).await?;
    // Contacts PostgreSQL could not hold as jsonb (an escaped NUL), found by a partial index:
    // rare enough that the evaluator may take the whole org.
    let unknown: i64 = sqlx::query(
        "select count(*) as unknown from documents
         where org_id = $1 and kind = 'contact' and body is null",
    )
    .bind(org_id)
    .fetch_one(&mut *tx)
    .await?
    .try_get("unknown")?;
    if unknown > 0 {
        tx.commit().await?;
        return stream(db, org_id, filter, sample, Some(&predicate)).await;
    }
    // The count is one scan, run in parallel by PostgreSQL (the predicate has no subquery for
    // common filters) with the filter's tests as separate conditions, cheapest first.
    let sql = format!(
        "select count(*) as matched from documents
         where org_id = $1 and kind = 'contact' and body is not null and {}",
        predicate.sql
    );
    let matched: i64 = bind(sqlx::query(&sql).bind(org_id), &predicate)
        .persistent(false)
        .fetch_one(&mut *tx)
        .await?
        .try_get("matched")?;
    tx.commit().await?;
    // The sample comes after the count, which tells how far a walk of
    // documents_contacts_oldest from the oldest contact must go for ten matches: about
    // `contacts / matched * 10` rows. PostgreSQL cannot know it (it guesses a filter's
    // selectivity), and guessing low it sorted every match in a second full scan.
    let oldest = if sample == 0 || matched == 0 {
        Vec::new()
    } else {
        let sql = format!(
            "select doc from documents
             where org_id = $1 and kind = 'contact' and body is not null and {}
             order by created_at collate \"C\", id collate \"C\" limit {sample}",
            predicate.sql
        );
        let mut tx = without_jit(db).await?;
        // The table's row count bounds the org's: when one row in 1 000 or more matches, the
        // walk reads at most ~10 000 rows, so it is taken over any sort.
        let table_rows: f64 = sqlx::query(
            "select reltuples::float8 as n from pg_class where oid = 'documents'::regclass",
        )
        .fetch_one(&mut *tx)
        .await?
        .try_get("n")?;
        if (matched as f64) * 1000.0 >= table_rows {
            sqlx::query(
                "select set_config('enable_sort', 'off', true),
                        set_config('enable_bitmapscan', 'off', true),
                        set_config('enable_seqscan', 'off', true)",
            )
            .execute(&mut *tx)
            .await?;
        }
        let rows = bind(sqlx::query(&sql).bind(org_id), &predicate)
            .persistent(false)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        rows.iter()
            .map(|row| row.try_get::<String, _>("doc"))
            .collect::<Result<Vec<_>, _>>()?
    };
    let documents = oldest
        .iter()
        .filter_map(|doc| serde_json::from_str(doc).ok())
        .collect();
    Ok((u64::try_from(matched).unwrap_or_default(), documents))
}

/// A read transaction on PostgreSQL with JIT compilation off. The planner prices every
/// `jsonb_array_elements` at 100 rows, so a compiled filter with nested arrays looks costly
/// enough to be JIT-compiled, which took 0.8 s for a filter over eight contacts.
pub async fn without_jit(db: &Db) -> Result<crate::db::Tx, sqlx::Error> {
    let mut tx = db.read.begin().await?;
    sqlx::query("set local jit = off").execute(&mut *tx).await?;
    Ok(tx)
}

/// The SQL that narrows the org's contacts to `filter`'s audience, for a query whose `where`
/// it is appended to with `and`, and the parameters to bind after the query's own
/// `first_param - 1`: on PostgreSQL the compiled predicate (a superset when inexact, rows
/// without a `jsonb` body always kept), on SQLite nothing. Rows must still go through
/// [`Filter::matches`] unless the predicate is exact.
pub fn contacts_predicate(db: &Db, filter: &Filter, first_param: usize) -> SqlPredicate {
    match db.backend {
        Backend::Sqlite => SqlPredicate {
            sql: "true".into(),
            params: Vec::new(),
            exact: false,
        },
        Backend::Postgres => {
            let mut predicate = filter.to_postgres("body", first_param);
            predicate.sql = format!("(body is null or {})", predicate.sql);
            predicate.exact = false;
            predicate
        }
    }
}

/// Binds a predicate's parameters after the query's own.
pub fn bind<'q>(mut query: AnyQuery<'q>, predicate: &SqlPredicate) -> AnyQuery<'q> {
    for param in &predicate.params {
        query = query.bind(param.clone());
    }
    query
}

/// Reach by the evaluator: rows stream in whatever order the database reads them fastest (a
/// sequential scan, not an index walk in creation order), narrowed by `narrow` when given;
/// batches are matched on the blocking pool (both cores), each parsing only the fields the
/// filter reads, with a few batches in memory at once.
async fn stream(
    db: &Db,
    org_id: &str,
    filter: &Filter,
    sample: usize,
    narrow: Option<&SqlPredicate>,
) -> Result<(u64, Vec<Value>), sqlx::Error> {
    const BATCH: usize = 2000;
    const IN_FLIGHT: usize = 3;
    let sql = match narrow {
        Some(predicate) => format!(
            "select doc from documents where org_id = $1 and kind = 'contact'
             and (body is null or {})",
            predicate.sql
        ),
        None => "select doc from documents where org_id = $1 and kind = 'contact'".to_string(),
    };
    let mut query = sqlx::query(&sql).bind(org_id);
    if let Some(predicate) = narrow {
        query = bind(query, predicate).persistent(false);
    }
    // A read-only transaction, ended by dropping it.
    let mut tx = match narrow {
        Some(_) => Some(without_jit(db).await?),
        None => None,
    };
    let mut rows = match tx.as_mut() {
        Some(tx) => query.fetch(&mut **tx),
        None => query.fetch(&db.read),
    };
    let filter = Arc::new(filter.clone());
    let mut pending = std::collections::VecDeque::new();
    let mut batch = Vec::with_capacity(BATCH);
    let mut count = 0u64;
    let mut oldest = Oldest::default();
    loop {
        let row = rows.try_next().await?;
        let done = row.is_none();
        if let Some(row) = row {
            batch.push(row.try_get::<String, _>("doc")?);
        }
        if batch.len() == BATCH || (done && !batch.is_empty()) {
            let rows = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
            let filter = filter.clone();
            pending.push_back(tokio::task::spawn_blocking(move || {
                match_batch(&filter, rows, sample)
            }));
        }
        while pending.len() >= IN_FLIGHT || (done && !pending.is_empty()) {
            let handle = pending.pop_front().expect("a pending batch");
            let (matched, kept) = handle
                .await
                .map_err(|e| sqlx::Error::Protocol(format!("a reach batch failed: {e}")))?;
            count += matched;
            oldest.merge(kept, sample);
        }
        if done {
            return Ok((count, oldest.into_documents()));
        }
    }
}

/// A matching contact with its place in creation order (`createdAt`, then `id`, as the
/// document carries them).
#[derive(serde::Deserialize)]
struct ContactRow {
    #[serde(rename = "createdAt", default)]
    created_at: String,
    #[serde(default)]
    id: String,
    #[serde(skip)]
    doc: String,
}

/// The oldest rows seen, by (creation time, id), at most as many as asked for.
#[derive(Default)]
struct Oldest(Vec<ContactRow>);

impl Oldest {
    fn offer(&mut self, row: ContactRow, keep: usize) {
        if keep == 0 {
            return;
        }
        if self.0.len() == keep {
            let newest = self.0.last().expect("full");
            if (&row.created_at, &row.id) >= (&newest.created_at, &newest.id) {
                return;
            }
            self.0.pop();
        }
        let at = self
            .0
            .partition_point(|kept| (&kept.created_at, &kept.id) < (&row.created_at, &row.id));
        self.0.insert(at, row);
    }

    fn merge(&mut self, other: Oldest, keep: usize) {
        other.0.into_iter().for_each(|row| self.offer(row, keep));
    }

    fn into_documents(self) -> Vec<Value> {
        self.0
            .into_iter()
            .filter_map(|row| serde_json::from_str(&row.doc).ok())
            .collect()
    }
}

/// Counts the contacts of one batch that match, and keeps the `keep` oldest.
fn match_batch(filter: &Filter, docs: Vec<String>, keep: usize) -> (u64, Oldest) {
    let mut count = 0u64;
    let mut oldest = Oldest::default();
    for doc in docs {
        if filter.matches_json(&doc) == Some(true) {
            count += 1;
            if keep == 0 {
                continue;
            }
            if let Ok(mut row) = serde_json::from_str::<ContactRow>(&doc) {
                row.doc = doc;
                oldest.offer(row, keep);
            }
        }
    }
    (count, oldest)
}
