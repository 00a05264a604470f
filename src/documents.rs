//! Commands and queries for the document resources (contacts, audiences, templates,
//! connections): each change is an event in the resource's stream, and the `documents` row is
//! written in the same transaction.
//!
//! Longer than the ~800 lines a module here should keep to: the single commands and the bulk
//! import write the same `documents` rows, email lock and streams, and this module owns that
//! table. The import (its lanes and key lookups) is the next piece to move into a room of its
//! own when it grows.

use std::collections::{HashMap, HashSet};

use chrono::Utc;
use herald_domain::document::{
    Document, DocumentCommand, DocumentError, DocumentEvent, DocumentKind,
};
use herald_projections::document::DocumentView;
use serde_json::Value;
use sqlx::Row;

use crate::commands::{self, Attempt, CommandMeta, IdempotencyClaim};
use crate::db::{Db, Tx};
use crate::secrets::Sealed;
use crate::store::{self, AppendError, NewEvent};

/// The stream of one document: `contact-<org>:<id>`.
pub fn stream_id(kind: DocumentKind, org_id: &str, id: &str) -> String {
    format!("{}-{org_id}:{id}", kind.as_str())
}

/// Why a document command changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum DocError {
    #[error(transparent)]
    Domain(#[from] DocumentError),
    #[error("the {kind} has changed (version {current})")]
    VersionMismatch { kind: &'static str, current: i64 },
    /// A concurrent request with the same idempotency key won.
    #[error("a request with this idempotency key is in flight")]
    IdempotencyRace,
    /// Another writer changed one of the documents at the same time.
    #[error("a concurrent change to the same {0}")]
    Conflict(&'static str),
    /// Another contact of the org has this email (its id).
    #[error("contact {0} already has this email")]
    EmailTaken(String),
    #[error("unreadable event: {0}")]
    Unreadable(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Extra rows a command writes in its transaction.
#[derive(Debug, Default)]
pub struct Extras {
    /// Encrypted credentials of a connection.
    pub secret: Option<Sealed>,
    /// A create's `Idempotency-Key` and request hash: the response is stored with the change.
    pub idempotency: Option<IdempotencyClaim>,
    /// A contact body's opt-outs: put on the suppression list with the change.
    pub suppress: Vec<crate::suppressions::Suppress>,
}

/// Runs one command against a document's newest state.
pub async fn execute(
    db: &Db,
    meta: &CommandMeta,
    kind: DocumentKind,
    id: &str,
    expected_version: Option<i64>,
    command: DocumentCommand,
    extras: Extras,
) -> Result<(DocumentView, bool), DocError> {
    let (db, meta, id) = (db.clone(), meta.clone(), id.to_string());
    commands::in_own_task(
        async move { execute_here(&db, &meta, kind, &id, expected_version, command, extras).await },
        DocError::Unreadable,
    )
    .await
}

async fn execute_here(
    db: &Db,
    meta: &CommandMeta,
    kind: DocumentKind,
    id: &str,
    expected_version: Option<i64>,
    command: DocumentCommand,
    extras: Extras,
) -> Result<(DocumentView, bool), DocError> {
    let stream = stream_id(kind, &meta.org_id, id);
    let (stream, command, extras) = (&stream, &command, &extras);
    let attempt = |mut tx: Tx| async move {
        let records: Vec<_> = store::read_stream(&mut *tx, db.backend, stream, 0, i64::MAX)
            .await?
            .into_iter()
            .map(|e| e.record)
            .collect();
        let mut view = DocumentView::from_records(records.iter())
            .map_err(DocError::Unreadable)?
            .unwrap_or_default();
        let current = if view.document.exists {
            view.version()
        } else {
            0
        };
        if let Some(expected) = expected_version {
            if expected != current || view.document.deleted {
                return Err(if view.document.exists && !view.document.deleted {
                    DocError::VersionMismatch {
                        kind: kind.noun(),
                        current,
                    }
                } else {
                    DocError::Domain(DocumentError::NotFound(kind.noun()))
                });
            }
        }
        let events = view.document.decide(kind, command.clone())?;
        if events.is_empty() {
            // An unchanged body may still carry opt-outs the list does not hold yet.
            let metadata = meta.metadata();
            match crate::suppressions::add(&mut tx, db, &extras.suppress, &metadata, Utc::now())
                .await
            {
                Ok(0) => tx.rollback().await?,
                Ok(_) => tx.commit().await?,
                Err(AppendError::Conflict) => {
                    tx.rollback().await.ok();
                    return Ok(Attempt::Retry);
                }
                Err(AppendError::Db(e)) => return Err(e.into()),
            }
            return Ok(Attempt::Done((view, false)));
        }
        let new_events = to_new_events(kind, &events);
        if kind == DocumentKind::Contact {
            let mut next = view.document.clone();
            for event in events {
                next.apply(event);
            }
            // Only a new email is checked: a contact keeps the one it has (even one that another
            // contact also got before this check existed).
            let email = lookup(kind, &next.body).filter(|email| {
                !next.deleted && Some(email) != lookup(kind, &view.document.body).as_ref()
            });
            if let Some(email) = email {
                if let Some(holder) =
                    email_holder(&mut tx, db.backend, &meta.org_id, &email, id).await?
                {
                    tx.rollback().await.ok();
                    return Err(DocError::EmailTaken(holder));
                }
            }
        }
        let now = Utc::now();
        let stored = match store::append(
            &mut tx,
            db.backend,
            stream,
            current,
            &new_events,
            &meta.metadata(),
            now,
        )
        .await
        {
            Ok(stored) => stored,
            Err(AppendError::Conflict) => {
                tx.rollback().await.ok();
                return Ok(Attempt::Retry);
            }
            Err(AppendError::Db(e)) => return Err(e.into()),
        };
        for event in &stored {
            view.apply(&event.record).map_err(DocError::Unreadable)?;
        }
        write_rows(&mut tx, kind, std::slice::from_ref(&view)).await?;
        if !view.document.deleted {
            let metadata = meta.metadata();
            match crate::suppressions::add(&mut tx, db, &extras.suppress, &metadata, now).await {
                Ok(_) => {}
                Err(AppendError::Conflict) => {
                    tx.rollback().await.ok();
                    return Ok(Attempt::Retry);
                }
                Err(AppendError::Db(e)) => return Err(e.into()),
            }
        }
        if let Some(claim) = &extras.idempotency {
            let body = view.to_json(kind).to_string();
            if !commands::record_idempotent_answer(&mut tx, &meta.org_id, claim, &body, now).await?
            {
                tx.rollback().await?;
                return Err(DocError::IdempotencyRace);
            }
        }
        if kind == DocumentKind::Connection {
            if view.document.deleted {
                sqlx::query("delete from connection_secrets where org_id = $1 and id = $2")
                    .bind(&meta.org_id)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            } else if let Some(secret) = &extras.secret {
                sqlx::query(
                    "insert into connection_secrets (org_id, id, nonce, ciphertext) values ($1, $2, $3, $4)
                     on conflict (org_id, id) do update set nonce = excluded.nonce, ciphertext = excluded.ciphertext",
                )
                .bind(&meta.org_id)
                .bind(id)
                .bind(&secret.nonce)
                .bind(&secret.ciphertext)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(Attempt::Done((view, true)))
    };
    commands::with_retries(db, attempt, || {
        DocError::Db(sqlx::Error::Protocol(
            "too many concurrent writers on one resource".into(),
        ))
    })
    .await
}

/// The other contact of the org that has `email`, if any, checked inside the writing
/// transaction: on PostgreSQL under a transaction lock on the (org, email) pair, so two
/// concurrent writers of one email see each other (SQLite has one writer at a time already).
/// Taken before the append, so every writer holds at most this one lock while it waits on rows.
async fn email_holder(
    tx: &mut Tx,
    backend: crate::db::Backend,
    org_id: &str,
    email: &str,
    id: &str,
) -> Result<Option<String>, sqlx::Error> {
    if backend == crate::db::Backend::Postgres {
        sqlx::query("select pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(format!("contact-email {org_id} {email}"))
            .execute(&mut **tx)
            .await?;
    }
    sqlx::query_scalar(
        "select id from documents where org_id = $1 and kind = 'contact' and lookup = $2 and id <> $3 limit 1",
    )
    .bind(org_id)
    .bind(email)
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
}

fn to_new_events(kind: DocumentKind, events: &[DocumentEvent]) -> Vec<NewEvent> {
    events
        .iter()
        .map(|e| NewEvent {
            event_type: kind.event_type(e),
            event_version: "1".into(),
            data: e.data(),
        })
        .collect()
}

/// The row's lookup key, derived from the body: a contact's lower-cased email (re-imports
/// match on it), a connection's platform (readiness reads only that).
pub fn lookup(kind: DocumentKind, body: &Value) -> Option<String> {
    match kind {
        DocumentKind::Contact => body
            .get("email")
            .and_then(Value::as_str)
            .map(str::to_lowercase),
        DocumentKind::Connection => body
            .get("platform")
            .and_then(Value::as_str)
            .map(str::to_string),
        DocumentKind::Audience | DocumentKind::Template => None,
    }
}

/// Writes document rows (removing deleted ones).
pub async fn write_rows(
    tx: &mut Tx,
    kind: DocumentKind,
    views: &[DocumentView],
) -> Result<(), sqlx::Error> {
    let (deleted, live): (Vec<&DocumentView>, Vec<&DocumentView>) =
        views.iter().partition(|v| v.document.deleted);
    // One statement per org and 500 ids, not per document (a rebuild meets every deleted one).
    let mut deleted_by_org: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for view in deleted {
        deleted_by_org
            .entry(&view.org_id)
            .or_default()
            .push(&view.document.id);
    }
    for (org_id, ids) in deleted_by_org {
        for chunk in ids.chunks(500) {
            let sql = format!(
                "delete from documents where org_id = $1 and kind = $2 and id in ({})",
                store::params(3, chunk.len())
            );
            let mut query = sqlx::query(&sql).bind(org_id).bind(kind.as_str());
            for id in chunk {
                query = query.bind(*id);
            }
            query.execute(&mut **tx).await?;
        }
    }
    for chunk in live.chunks(500) {
        let mut sql = String::from(
            "insert into documents (org_id, kind, id, lookup, version, created_at, updated_at, doc) values ",
        );
        sql.push_str(&store::param_rows("", 1, 8, chunk.len()));
        sql.push_str(
            " on conflict (org_id, kind, id) do update set lookup = excluded.lookup, version = excluded.version,
              created_at = excluded.created_at, updated_at = excluded.updated_at, doc = excluded.doc",
        );
        let mut query = sqlx::query(&sql);
        for view in chunk {
            query = query
                .bind(view.org_id.clone())
                .bind(kind.as_str())
                .bind(view.document.id.clone())
                .bind(lookup(kind, &view.document.body))
                .bind(view.version())
                .bind(view.created_at.clone())
                .bind(view.updated_at.clone())
                .bind(view.to_json(kind).to_string());
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

/// One document's resource body.
pub async fn get(
    db: &Db,
    org_id: &str,
    kind: DocumentKind,
    id: &str,
) -> Result<Option<Value>, sqlx::Error> {
    let doc: Option<String> =
        sqlx::query_scalar("select doc from documents where org_id = $1 and kind = $2 and id = $3")
            .bind(org_id)
            .bind(kind.as_str())
            .bind(id)
            .fetch_optional(&db.read)
            .await?;
    Ok(doc.and_then(|d| serde_json::from_str(&d).ok()))
}

/// A page of documents in creation order after the keyset `after` (`createdAt`, `id`).
pub async fn list(
    db: &Db,
    org_id: &str,
    kind: DocumentKind,
    after: Option<(String, String)>,
    limit: i64,
) -> Result<(Vec<Value>, Option<(String, String)>), sqlx::Error> {
    let (after_at, after_id) = after.unwrap_or_default();
    let rows = sqlx::query(
        "select created_at, id, doc from documents where org_id = $1 and kind = $2 and (created_at, id) > ($3, $4)
         order by created_at, id limit $5",
    )
    .bind(org_id)
    .bind(kind.as_str())
    .bind(after_at)
    .bind(after_id)
    .bind(limit + 1)
    .fetch_all(&db.read)
    .await?;
    let more = rows.len() as i64 > limit;
    let mut items = Vec::new();
    let mut last = None;
    for row in rows.iter().take(limit as usize) {
        let doc: String = row.try_get("doc")?;
        items.push(serde_json::from_str(&doc).unwrap_or(Value::Null));
        last = Some((row.try_get("created_at")?, row.try_get("id")?));
    }
    Ok((items, if more { last } else { None }))
}

/// Every document of a kind in an org (small kinds only: connections, templates, audiences).
pub async fn all(db: &Db, org_id: &str, kind: DocumentKind) -> Result<Vec<Value>, sqlx::Error> {
    let docs: Vec<String> = sqlx::query_scalar(
        "select doc from documents where org_id = $1 and kind = $2 order by created_at, id",
    )
    .bind(org_id)
    .bind(kind.as_str())
    .fetch_all(&db.read)
    .await?;
    Ok(docs
        .iter()
        .filter_map(|d| serde_json::from_str(d).ok())
        .collect())
}

/// Outcome of a bulk upsert.
#[derive(Debug, Default, Clone, Copy)]
pub struct BulkSummary {
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
}

/// One row of a bulk upsert: its id when given, its lookup key, and the body as JSON text (an
/// import holds up to 100 000 of them; text is several times smaller than a parsed tree).
#[derive(Debug, Clone)]
pub struct BulkRow {
    pub id: Option<String>,
    pub lookup: Option<String>,
    pub body: String,
}

/// Creates or updates many documents, a transaction per chunk: rows are matched to existing
/// documents by id, or else by lookup key, so a re-import updates instead of duplicating.
pub async fn bulk_upsert(
    db: &Db,
    meta: &CommandMeta,
    kind: DocumentKind,
    rows: Vec<BulkRow>,
) -> Result<BulkSummary, DocError> {
    // In its own task: an import the client stops waiting for still finishes its chunks.
    let (db, meta) = (db.clone(), meta.clone());
    tokio::spawn(async move { bulk_upsert_here(&db, &meta, kind, rows).await })
        .await
        .map_err(|e| DocError::Unreadable(format!("import task failed: {e}")))?
}

/// Import lanes written at once: the database and the service each get a core's worth of work.
const LANES: usize = 3;

async fn bulk_upsert_here(
    db: &Db,
    meta: &CommandMeta,
    kind: DocumentKind,
    rows: Vec<BulkRow>,
) -> Result<BulkSummary, DocError> {
    let mut lanes = lanes(rows, LANES);
    let mut summary = BulkSummary::default();
    if !lanes.is_empty() && !db.analyzed("documents").await? {
        // A table never analyzed (a new database) is planned as empty, and its email lookups
        // then walk the org's rows, more of them with every chunk. The first chunk is written
        // alone, the table analyzed, and the plans stay right as it grows.
        let take = lanes[0].len().min(1000);
        let first: Vec<BulkRow> = lanes[0].drain(..take).collect();
        summary = upsert_lane(db, meta, kind, first, false).await?;
        db.analyze("documents", "org_id, kind, id, lookup").await?;
    }
    let mut running = Vec::new();
    for (i, lane) in lanes.into_iter().enumerate() {
        let (db, meta) = (db.clone(), meta.clone());
        running.push(tokio::spawn(async move {
            upsert_lane(&db, &meta, kind, lane, i == 0).await
        }));
    }
    let mut failed = None;
    for lane in running {
        match lane
            .await
            .map_err(|e| DocError::Unreadable(format!("import task failed: {e}")))
            .and_then(|result| result)
        {
            Ok(part) => {
                summary.created += part.created;
                summary.updated += part.updated;
                summary.unchanged += part.unchanged;
            }
            Err(error) => failed = failed.or(Some(error)),
        }
    }
    // The tables grew: later reads (reach, send runs) plan with fresh statistics. Not on the
    // request's time.
    let db = db.clone();
    tokio::spawn(async move {
        if let Err(error) = analyze_import_tables(&db).await {
            tracing::warn!(%error, "statistics after an import");
        }
    });
    match failed {
        Some(error) => Err(error),
        None => Ok(summary),
    }
}

/// Splits rows into at most `count` lanes that can be written concurrently: rows that share an
/// id or a lookup key (directly or through other rows) share a lane, in their original order,
/// so a later row still sees an earlier one. Groups are dealt to lanes round-robin.
fn lanes(rows: Vec<BulkRow>, count: usize) -> Vec<Vec<BulkRow>> {
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    let mut parent: Vec<usize> = (0..rows.len()).collect();
    let mut holder: HashMap<(bool, &str), usize> = HashMap::new();
    for (i, row) in rows.iter().enumerate() {
        let keys = [(true, row.id.as_deref()), (false, row.lookup.as_deref())];
        for (is_id, key) in keys {
            let Some(key) = key else { continue };
            match holder.get(&(is_id, key)) {
                Some(&other) => {
                    let (a, b) = (root(&mut parent, i), root(&mut parent, other));
                    parent[a.max(b)] = a.min(b);
                }
                None => {
                    holder.insert((is_id, key), i);
                }
            }
        }
    }
    let mut lane_of_group: HashMap<usize, usize> = HashMap::new();
    let mut assignments = Vec::with_capacity(rows.len());
    for i in 0..rows.len() {
        let group = root(&mut parent, i);
        let next = lane_of_group.len() % count.max(1);
        assignments.push(*lane_of_group.entry(group).or_insert(next));
    }
    let mut lanes: Vec<Vec<BulkRow>> = (0..count.max(1)).map(|_| Vec::new()).collect();
    for (row, lane) in rows.into_iter().zip(assignments) {
        lanes[lane].push(row);
    }
    lanes.retain(|lane| !lane.is_empty());
    lanes
}

/// Gathers statistics of the tables an import grows, when they are missing or stale.
async fn analyze_import_tables(db: &Db) -> Result<(), sqlx::Error> {
    db.analyze_if_stale("documents", "org_id, kind, id, lookup")
        .await?;
    db.analyze_if_stale("events", "stream_id, revision").await
}

/// Writes one lane's rows, a transaction per chunk of 1 000. The `lead` lane checks the
/// planner's statistics before the import (and after it, in `bulk_upsert_here`) instead of
/// every chunk: each `analyze` of a growing table cost ~70 ms, ten of them per 100 000 rows.
async fn upsert_lane(
    db: &Db,
    meta: &CommandMeta,
    kind: DocumentKind,
    rows: Vec<BulkRow>,
    lead: bool,
) -> Result<BulkSummary, DocError> {
    let mut summary = BulkSummary::default();
    if lead {
        analyze_import_tables(db).await?;
    }
    for chunk in rows.chunks(1000) {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match bulk_chunk(db, meta, kind, chunk).await {
                Ok(part) => {
                    summary.created += part.created;
                    summary.updated += part.updated;
                    summary.unchanged += part.unchanged;
                    break;
                }
                Err(DocError::Conflict(_)) if attempt < commands::ATTEMPTS => continue,
                Err(DocError::Db(sqlx::Error::Database(e)))
                    if e.is_unique_violation() && attempt < commands::ATTEMPTS =>
                {
                    continue
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(summary)
}

async fn bulk_chunk(
    db: &Db,
    meta: &CommandMeta,
    kind: DocumentKind,
    chunk: &[BulkRow],
) -> Result<BulkSummary, DocError> {
    let mut tx = db.begin().await?;
    // The table grows during an import, faster than its statistics: planned as the small
    // table it was, each key lookup became a scan of everything (seconds per chunk at 30 000
    // rows). The lookups below are index probes by design; say so to the planner.
    crate::db::trust_no_statistics(&mut tx, db.backend).await?;
    // Current rows for the chunk's ids and lookup keys.
    let mut by_id: HashMap<String, DocumentView> = HashMap::new();
    let mut by_lookup: HashMap<String, String> = HashMap::new();
    let ids: Vec<String> = chunk.iter().filter_map(|r| r.id.clone()).collect();
    let lookups: Vec<String> = chunk.iter().filter_map(|r| r.lookup.clone()).collect();
    for (column, keys) in [("id", &ids), ("lookup", &lookups)] {
        for row in rows_by_key(&mut tx, db.backend, &meta.org_id, kind, column, keys).await? {
            let view = view_from_row(&meta.org_id, &row)?;
            if let Some(lookup) = row.try_get::<Option<String>, _>("lookup")? {
                by_lookup.insert(lookup, view.document.id.clone());
            }
            by_id.insert(view.document.id.clone(), view);
        }
    }
    // Ids with a stream but no row were deleted: they stay deleted.
    let unseen: Vec<String> = ids
        .iter()
        .filter(|id| !by_id.contains_key(*id))
        .map(|id| stream_id(kind, &meta.org_id, id))
        .collect();
    for part in unseen.chunks(500) {
        let sql = format!(
            "select stream_id from events where revision = 0 and stream_id in ({})",
            store::params(1, part.len())
        );
        let mut query = sqlx::query_scalar::<_, String>(&sql);
        for stream in part {
            query = query.bind(stream);
        }
        for stream in query.fetch_all(&mut *tx).await? {
            let id = stream
                .rsplit_once(':')
                .map(|(_, id)| id.to_string())
                .unwrap_or_default();
            let mut gone = DocumentView::default();
            gone.document.exists = true;
            gone.document.deleted = true;
            by_id.insert(id, gone);
        }
    }
    let mut summary = BulkSummary::default();
    let mut touched: Vec<String> = Vec::new();
    let mut touched_ids: HashSet<String> = HashSet::new();
    let mut batch: Vec<(String, i64, NewEvent)> = Vec::new();
    let now = Utc::now();
    for row in chunk {
        let id = row
            .id
            .clone()
            .or_else(|| row.lookup.as_ref().and_then(|l| by_lookup.get(l).cloned()))
            .unwrap_or_else(|| format!("{}{}", kind.id_prefix(), uuid::Uuid::now_v7()));
        let body: Value = serde_json::from_str(&row.body)
            .map_err(|e| DocError::Unreadable(format!("an import row could not be read: {e}")))?;
        let view = by_id.entry(id.clone()).or_default();
        // A deleted id stays deleted; such a row counts as unchanged.
        let events = view
            .document
            .decide(
                kind,
                DocumentCommand::Upsert {
                    id: id.clone(),
                    body,
                },
            )
            .unwrap_or_default();
        if events.is_empty() {
            summary.unchanged += 1;
            continue;
        }
        if view.document.exists {
            summary.updated += 1;
        } else {
            summary.created += 1;
        }
        let stream = stream_id(kind, &meta.org_id, &id);
        for (i, event) in to_new_events(kind, &events).into_iter().enumerate() {
            let revision = if view.document.exists {
                view.version()
            } else {
                0
            } + i as i64;
            batch.push((stream.clone(), revision, event));
        }
        // Apply in memory so a later row in the same chunk sees this one.
        let created = store::format_time(now);
        for event in events {
            if !view.document.exists {
                view.org_id = meta.org_id.clone();
                view.created_at = created.clone();
                view.created_by = meta.actor.clone();
                view.revision = -1;
            }
            view.document.apply(event);
            view.revision += 1;
            view.updated_at = created.clone();
            view.updated_by = meta.actor.clone();
        }
        if let Some(lookup) = &row.lookup {
            by_lookup.insert(lookup.clone(), id.clone());
        }
        if touched_ids.insert(id.clone()) {
            touched.push(id);
        }
    }
    if !batch.is_empty() {
        store::append_batch(&mut tx, db.backend, &batch, &meta.metadata(), now)
            .await
            .map_err(|e| match e {
                AppendError::Conflict => DocError::Conflict(kind.noun()),
                AppendError::Db(e) => DocError::Db(e),
            })?;
        let views: Vec<DocumentView> = touched
            .iter()
            .filter_map(|id| by_id.get(id).cloned())
            .collect();
        write_rows(&mut tx, kind, &views).await?;
    }
    tx.commit().await?;
    Ok(summary)
}

/// The org's documents of `kind` with these ids, as resource bodies by id (missing ids are left
/// out), read on the read pool.
pub async fn get_many(
    db: &Db,
    org_id: &str,
    kind: DocumentKind,
    ids: &[String],
) -> Result<HashMap<String, Value>, sqlx::Error> {
    let mut conn = db.read.acquire().await?;
    let rows = rows_by_key(&mut conn, db.backend, org_id, kind, "id", ids).await?;
    let mut out = HashMap::with_capacity(rows.len());
    for row in rows {
        let doc: String = row.try_get("doc")?;
        out.insert(
            row.try_get("id")?,
            serde_json::from_str(&doc).unwrap_or(Value::Null),
        );
    }
    Ok(out)
}

/// The org's documents of `kind` whose `column` (`id` or `lookup`) is one of `keys`.
///
/// On PostgreSQL the keys go as one JSON array parameter and drive the join, each looked up on
/// its own: a statement of three parameters is planned in microseconds where 500 bound keys
/// took ~12 ms, and `offset 0` keeps each lookup from being flattened into a join the planner
/// might turn into a scan of the org's rows when statistics are missing. SQLite takes `in (…)`,
/// 500 keys a statement.
async fn rows_by_key(
    conn: &mut sqlx::AnyConnection,
    backend: crate::db::Backend,
    org_id: &str,
    kind: DocumentKind,
    column: &str,
    keys: &[String],
) -> Result<Vec<sqlx::any::AnyRow>, sqlx::Error> {
    const COLUMNS: &str = "id, lookup, version, created_at, updated_at, doc";
    let mut rows = Vec::new();
    if keys.is_empty() {
        return Ok(rows);
    }
    match backend {
        crate::db::Backend::Postgres => {
            let sql = format!(
                "select d.* from (select distinct value as k from json_array_elements_text($3::json)) keys,
                 lateral (select {COLUMNS} from documents
                          where org_id = $1 and kind = $2 and {column} = keys.k offset 0) d"
            );
            let keys = serde_json::to_string(keys).unwrap_or_default();
            rows = sqlx::query(&sql)
                .bind(org_id)
                .bind(kind.as_str())
                .bind(keys)
                .fetch_all(&mut *conn)
                .await?;
        }
        crate::db::Backend::Sqlite => {
            for part in keys.chunks(500) {
                let sql = format!(
                    "select {COLUMNS} from documents where org_id = $1 and kind = $2 and {column} in ({})",
                    store::params(3, part.len())
                );
                let mut query = sqlx::query(&sql).bind(org_id).bind(kind.as_str());
                for key in part {
                    query = query.bind(key);
                }
                rows.extend(query.fetch_all(&mut *conn).await?);
            }
        }
    }
    Ok(rows)
}

fn view_from_row(org_id: &str, row: &sqlx::any::AnyRow) -> Result<DocumentView, sqlx::Error> {
    let doc: String = row.try_get("doc")?;
    let mut body: Value =
        serde_json::from_str(&doc).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
    let mut created_by = String::new();
    if let Value::Object(map) = &mut body {
        for key in [
            "id",
            "orgId",
            "version",
            "createdAt",
            "updatedAt",
            "updatedBy",
        ] {
            map.remove(key);
        }
        if let Some(Value::String(by)) = map.remove("createdBy") {
            created_by = by;
        }
    }
    let version: i64 = row.try_get("version")?;
    Ok(DocumentView {
        org_id: org_id.to_string(),
        document: Document {
            id: row.try_get("id")?,
            body,
            exists: true,
            deleted: false,
            version,
        },
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        created_by,
        updated_by: String::new(),
        revision: version - 1,
    })
}

/// Whether a document exists (and is not deleted) in the org.
pub async fn exists(
    db: &Db,
    org_id: &str,
    kind: DocumentKind,
    id: &str,
) -> Result<bool, sqlx::Error> {
    let n: i64 = sqlx::query_scalar(
        "select count(*) from documents where org_id = $1 and kind = $2 and id = $3",
    )
    .bind(org_id)
    .bind(kind.as_str())
    .bind(id)
    .fetch_one(&db.read)
    .await?;
    Ok(n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(n: i64, id: Option<&str>, email: Option<&str>) -> BulkRow {
        BulkRow {
            id: id.map(str::to_string),
            lookup: email.map(str::to_string),
            body: serde_json::json!({ "n": n }).to_string(),
        }
    }

    /// Each lane as the row numbers it holds, in order.
    fn numbers(lanes: &[Vec<BulkRow>]) -> Vec<Vec<i64>> {
        lanes
            .iter()
            .map(|lane| {
                lane.iter()
                    .map(|r| {
                        serde_json::from_str::<Value>(&r.body).unwrap()["n"]
                            .as_i64()
                            .unwrap()
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn rows_sharing_an_id_or_email_share_a_lane_in_their_order() {
        let rows = vec![
            row(0, Some("a"), Some("x@e.test")),
            row(1, None, Some("y@e.test")),
            row(2, Some("b"), Some("z@e.test")),
            // Joins row 0 (same email) and, through its id, row 5.
            row(3, Some("c"), Some("x@e.test")),
            row(4, None, None),
            row(5, Some("c"), None),
            row(6, None, Some("y@e.test")),
        ];
        let lanes = numbers(&lanes(rows, 3));
        assert_eq!(lanes.iter().map(Vec::len).sum::<usize>(), 7);
        let lane_of = |n: i64| lanes.iter().position(|l| l.contains(&n)).unwrap();
        assert_eq!(lane_of(0), lane_of(3));
        assert_eq!(lane_of(3), lane_of(5));
        assert_eq!(lane_of(1), lane_of(6));
        for lane in &lanes {
            assert!(lane.windows(2).all(|w| w[0] < w[1]), "order kept: {lane:?}");
        }
        // Three groups or more are spread over the three lanes.
        assert_eq!(lanes.len(), 3);
    }

    #[test]
    fn one_lane_holds_everything_in_order() {
        let rows: Vec<BulkRow> = (0..5)
            .map(|i| row(i, Some(&format!("r{i}")), None))
            .collect();
        assert_eq!(numbers(&lanes(rows, 1)), vec![vec![0, 1, 2, 3, 4]]);
    }
}
