//! Audience reach: how many of an org's contacts a filter matches, and the oldest few of them.
//!
//! One engine for `GET /crm/audiences/:id/reach`, `POST /crm/audiences/preview`, a campaign's
//! reach and the count a launch records. Memory stays flat whatever the org's size.

use std::sync::Arc;

use futures::TryStreamExt;
use herald_domain::query::Filter;
use serde_json::Value;
use sqlx::Row;

use crate::db::Db;

/// Contacts a reach answer shows as its sample.
pub const SAMPLE: usize = 10;

/// Counts the org's contacts matching `filter`, streaming rows so memory stays flat, and keeps
/// the `sample` oldest matches (creation order).
pub async fn evaluate(
    db: &Db,
    org_id: &str,
    filter: &Filter,
    sample: usize,
) -> Result<(u64, Vec<Value>), sqlx::Error> {
    // Rows stream in whatever order the database reads them fastest (a sequential scan, not an
    // index walk in creation order); batches are matched on the blocking pool (both cores),
    // each parsing only the fields the filter reads, with a few batches in memory at once.
    const BATCH: usize = 2000;
    const IN_FLIGHT: usize = 3;
    let mut rows = sqlx::query("select doc from documents where org_id = $1 and kind = 'contact'")
        .bind(org_id)
        .fetch(&db.read);
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
