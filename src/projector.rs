//! Runs the catch-up projections: reads the log after each checkpoint, applies a batch and moves
//! the checkpoint in the same transaction, so a crash loses nothing and counts nothing twice.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use herald_domain::document::DocumentKind;
use herald_projections::campaign::CampaignView;
use herald_projections::document::DocumentView;
use herald_projections::record::EventRecord;
use herald_projections::status_counts::{status_change, StatusChange};
use sqlx::Row;
use tokio::sync::{watch, Notify};

use crate::db::{Backend, Db, Tx};
use crate::store::{self, Checkpoint, LoggedEvent};

/// Events read per catch-up batch.
const BATCH: i64 = 2000;

/// The checkpointed projections, by the name `herald replay --projection` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Projection {
    /// Per-org campaign counts by status.
    CampaignStatusCounts,
    /// Daily engagement rollups, unique opens/clicks and the contact activity log.
    Analytics,
}

impl Projection {
    pub const ALL: [Projection; 2] = [Projection::CampaignStatusCounts, Projection::Analytics];

    pub fn name(self) -> &'static str {
        match self {
            Projection::CampaignStatusCounts => "campaign-status-counts",
            Projection::Analytics => "analytics",
        }
    }

    /// The events the projection reads: campaigns for the status counts; a run's sends and
    /// its recipients' engagements for analytics (contacts, templates and the rest are skipped).
    fn interest(self) -> store::Interest {
        match self {
            Projection::CampaignStatusCounts => store::Interest::EnvelopesPrefixed(&["campaign-"]),
            Projection::Analytics => store::Interest::StreamsPrefixed(&["run-", "delivery-"]),
        }
    }

    /// Applies a batch of events inside `tx`.
    async fn apply(self, tx: &mut Tx, events: &[LoggedEvent]) -> Result<(), sqlx::Error> {
        match self {
            Projection::CampaignStatusCounts => apply_status_counts(tx, events).await,
            Projection::Analytics => crate::analytics::apply(tx, events).await,
        }
    }

    /// The read model's tables.
    fn tables(self) -> &'static [&'static str] {
        match self {
            Projection::CampaignStatusCounts => {
                &["campaign_status_index", "campaign_status_counts"]
            }
            Projection::Analytics => &[
                "analytics_daily",
                "analytics_step_days",
                "analytics_uniques",
                "contact_activities",
            ],
        }
    }

    /// Empties the read model and its checkpoint inside a rebuild's transaction, dropping the
    /// tables' secondary indexes on PostgreSQL; returns the statements that build them again,
    /// for the end of the rebuild.
    async fn reset(self, tx: &mut Tx, backend: Backend) -> Result<Vec<String>, sqlx::Error> {
        let mut indexes = Vec::new();
        for table in self.tables() {
            clear(tx, backend, table).await?;
            indexes.extend(drop_secondary_indexes(tx, backend, table).await?);
        }
        if self == Projection::Analytics {
            // Every org's cached sums are stale once the rollups are emptied.
            sqlx::query("update analytics_versions set version = version + 1")
                .execute(&mut **tx)
                .await?;
        }
        sqlx::query("delete from projection_checkpoints where name = $1")
            .bind(self.name())
            .execute(&mut **tx)
            .await?;
        Ok(indexes)
    }
}

/// Folds a batch into the per-status counts: reads the touched campaigns' index rows once,
/// applies every change in log order in memory, then writes the changed index rows and the
/// net count changes, a few statements per batch whatever its size.
async fn apply_status_counts(tx: &mut Tx, events: &[LoggedEvent]) -> Result<(), sqlx::Error> {
    let mut order: Vec<(String, String)> = Vec::new();
    let mut changes: HashMap<(String, String), Vec<StatusChange>> = HashMap::new();
    for event in events {
        let Some(change) = status_change(&event.record) else {
            continue;
        };
        let campaign_id = event
            .record
            .stream_id
            .rsplit_once(':')
            .map(|(_, id)| id)
            .unwrap_or_default();
        let key = (event.org_id.clone(), campaign_id.to_string());
        changes
            .entry(key.clone())
            .or_insert_with(|| {
                order.push(key);
                Vec::new()
            })
            .push(change);
    }
    if order.is_empty() {
        return Ok(());
    }
    // What the index holds now: (status, deleted) per touched campaign, one org at a time.
    let mut by_org: HashMap<&str, Vec<&str>> = HashMap::new();
    for (org_id, campaign_id) in &order {
        by_org.entry(org_id).or_default().push(campaign_id);
    }
    let mut current: HashMap<(String, String), (Option<String>, bool)> = HashMap::new();
    for (org_id, ids) in by_org {
        for chunk in ids.chunks(500) {
            let list = store::params(2, chunk.len());
            let sql = format!(
                "select campaign_id, status, deleted from campaign_status_index
                 where org_id = $1 and campaign_id in ({list})"
            );
            let mut query = sqlx::query(&sql).bind(org_id);
            for id in chunk {
                query = query.bind(*id);
            }
            for row in query.fetch_all(&mut **tx).await? {
                current.insert(
                    (org_id.to_string(), row.try_get("campaign_id")?),
                    (
                        Some(row.try_get("status")?),
                        row.try_get::<i64, _>("deleted")? != 0,
                    ),
                );
            }
        }
    }
    let mut deltas: HashMap<(String, String), i64> = HashMap::new();
    let mut rows: Vec<(&str, &str, String, bool)> = Vec::new();
    for key in &order {
        let (mut status, mut deleted) = current.remove(key).unwrap_or((None, false));
        if deleted {
            continue;
        }
        for change in &changes[key] {
            if deleted {
                break;
            }
            let (new_status, now_deleted) = match change {
                StatusChange::Status(s) => (s.to_string(), false),
                StatusChange::Deleted => (status.clone().unwrap_or_else(|| "draft".into()), true),
            };
            if let Some(old) = &status {
                *deltas.entry((key.0.clone(), old.clone())).or_default() -= 1;
            }
            if !now_deleted {
                *deltas
                    .entry((key.0.clone(), new_status.clone()))
                    .or_default() += 1;
            }
            status = Some(new_status);
            deleted = now_deleted;
        }
        if let Some(status) = status {
            rows.push((&key.0, &key.1, status, deleted));
        }
    }
    for chunk in rows.chunks(250) {
        let values = store::param_rows("", 1, 4, chunk.len());
        let sql = format!(
            "insert into campaign_status_index (org_id, campaign_id, status, deleted) values {values}
             on conflict (org_id, campaign_id) do update set status = excluded.status, deleted = excluded.deleted"
        );
        let mut query = sqlx::query(&sql);
        for (org_id, campaign_id, status, deleted) in chunk {
            query = query
                .bind(*org_id)
                .bind(*campaign_id)
                .bind(status.as_str())
                .bind(*deleted as i64);
        }
        query.execute(&mut **tx).await?;
    }
    let mut deltas: Vec<((String, String), i64)> =
        deltas.into_iter().filter(|(_, by)| *by != 0).collect();
    // A fixed order, so two writers never wait on each other's count rows crosswise.
    deltas.sort();
    for ((org_id, status), by) in deltas {
        bump(tx, &org_id, &status, by).await?;
    }
    Ok(())
}

async fn bump(tx: &mut Tx, org_id: &str, status: &str, by: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into campaign_status_counts (org_id, status, count) values ($1, $2, $3)
         on conflict (org_id, status) do update set count = campaign_status_counts.count + excluded.count",
    )
    .bind(org_id)
    .bind(status)
    .bind(by)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Reads a projection's checkpoint (zero when it has none).
pub async fn checkpoint<'e, E>(
    executor: E,
    projection: Projection,
) -> Result<Checkpoint, sqlx::Error>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    store::checkpoint(executor, projection.name(), false).await
}

/// One writer per projection at a time, across processes and a concurrent `herald replay`:
/// without it two steps could both see the old checkpoint and apply one batch twice, or a step
/// could land after a rebuild's reset (SQLite's single writer already serializes them). An
/// erasure takes the analytics one too, to rewrite activity rows no batch is about to write.
pub(crate) async fn lock_projection(
    tx: &mut Tx,
    backend: Backend,
    projection: Projection,
) -> Result<(), sqlx::Error> {
    if backend == Backend::Postgres {
        sqlx::query("select pg_advisory_xact_lock($1)")
            .bind(7_242_100 + projection as i64)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Applies the next batch after the stored checkpoint. Returns how many events it applied.
pub async fn step(db: &Db, projection: Projection) -> Result<usize, sqlx::Error> {
    let from = checkpoint(&db.read, projection).await?;
    let page = store::read_page(db, from, BATCH, projection.interest()).await?;
    let Some(last) = page.last else {
        return Ok(0);
    };
    let mut tx = db.begin().await?;
    lock_projection(&mut tx, db.backend, projection).await?;
    // Another node may have moved the checkpoint since we read it; re-check under the transaction.
    let current = checkpoint(&mut *tx, projection).await?;
    if current != from {
        tx.rollback().await?;
        return Ok(0);
    }
    if !page.events.is_empty() {
        projection.apply(&mut tx, &page.events).await?;
    }
    store::save_checkpoint(&mut *tx, projection.name(), last, Utc::now()).await?;
    tx.commit().await?;
    Ok(page.rows)
}

/// Events read per rebuild page of a checkpointed projection.
const REBUILD_PAGE: i64 = 10_000;

/// Rebuilds a projection from position 0, in one transaction that holds the projection's lock
/// from the reset to the commit: readers never see a partial read model (on PostgreSQL they wait
/// for the commit: the tables are truncated and their secondary indexes built once at the end),
/// and a live runner's step, waiting on the lock, then finds the checkpoint moved and drops the
/// batch it had read (it used to slip in between the reset and the rebuild's own steps).
///
/// It replays every event up to the head at its start; events appended meanwhile are left to
/// the live runner, which resumes at the checkpoint the rebuild saves. A reader task walks the
/// log in large pages on its own connection while this one applies the previous page, through
/// the same function as the live runner's steps. Returns the events read.
pub async fn rebuild(db: &Db, projection: Projection) -> anyhow::Result<u64> {
    let head = store::head_position(db).await?;
    wait_until_settled(db, projection, head).await?;
    analyze_log(db).await?;
    let mut tx = db.begin().await?;
    lock_projection(&mut tx, db.backend, projection).await?;
    // Taken before this transaction writes, so that its own id does not hold the bound back.
    // Everything up to `head` is below it: it was settled a moment ago.
    let below = store::settled_below(&mut tx, db.backend).await?;
    let indexes = projection.reset(&mut tx, db.backend).await?;
    // The tables were just emptied: a plan cached while they were small would scan them whole
    // at every page as they grow (a status-count replay of 1 000 000 events took 211 s so).
    crate::db::trust_no_statistics(&mut tx, db.backend).await?;
    let (pages, mut next) = tokio::sync::mpsc::channel::<store::Page>(2);
    let reader = {
        let db = db.clone();
        tokio::spawn(async move {
            let mut after = Checkpoint::default();
            loop {
                let page =
                    store::read_page_below(&db, after, below, REBUILD_PAGE, projection.interest())
                        .await?;
                let Some(last) = page.last else { break };
                after = last;
                let full = page.rows as i64 == REBUILD_PAGE;
                if pages.send(page).await.is_err() || !full {
                    break;
                }
            }
            anyhow::Ok(())
        })
    };
    let mut total = 0u64;
    let mut last = None;
    while let Some(page) = next.recv().await {
        if !page.events.is_empty() {
            projection.apply(&mut tx, &page.events).await?;
        }
        total += page.rows as u64;
        last = page.last.or(last);
    }
    reader.await??;
    for index in &indexes {
        sqlx::query(index).execute(&mut *tx).await?;
    }
    if let Some(last) = last {
        store::save_checkpoint(&mut *tx, projection.name(), last, Utc::now()).await?;
    }
    tx.commit().await?;
    Ok(total)
}

/// Waits until the gap-safe reader can read every event up to `head`: it cannot read an event
/// until every transaction older than it has ended, in any database of the cluster, and an
/// empty page is not the end while such events remain. Warns while it waits.
async fn wait_until_settled(db: &Db, projection: Projection, head: i64) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let mut warned_at = Duration::ZERO;
    loop {
        let unsettled = store::unsettled_up_to(db, head).await?;
        if unsettled == 0 {
            return Ok(());
        }
        let waited = started.elapsed();
        if waited >= warned_at + REPLAY_WAIT_WARNING {
            warned_at = waited;
            tracing::warn!(
                projection = projection.name(),
                events = unsettled,
                waited_secs = waited.as_secs(),
                "replay is waiting for open transactions older than these events to end"
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How long a replay waits on open transactions between two warnings.
const REPLAY_WAIT_WARNING: Duration = Duration::from_secs(10);

/// Handle the command path uses to wake the runner (and the scheduler) after an append.
#[derive(Debug, Clone, Default)]
pub struct Wakeup {
    projector: Arc<Notify>,
    scheduler: Arc<Notify>,
}

impl Wakeup {
    pub fn wake(&self) {
        self.projector.notify_one();
        self.scheduler.notify_one();
    }

    /// Wakes only the projections: for events the scheduler has no interest in (engagements).
    pub fn wake_projector(&self) {
        self.projector.notify_one();
    }

    /// What the scheduler waits on: it follows the log too (`scheduler.rs`).
    pub fn scheduler(&self) -> Arc<Notify> {
        self.scheduler.clone()
    }
}

/// Runs every checkpointed projection until `shutdown` flips to true.
///
/// On PostgreSQL each projection runs on one node only: the runner holds a session advisory lock
/// for it and other nodes wait for the lock.
pub async fn run(db: Db, wakeup: Wakeup, mut shutdown: watch::Receiver<bool>) {
    let mut lock_conn = None;
    loop {
        if *shutdown.borrow() {
            return;
        }
        if db.backend == Backend::Postgres && lock_conn.is_none() {
            match try_lock(&db).await {
                Ok(Some(conn)) => lock_conn = Some(conn),
                Ok(None) => {
                    if wait(&wakeup, &mut shutdown, Duration::from_secs(2)).await {
                        return;
                    }
                    continue;
                }
                Err(error) => {
                    tracing::warn!(%error, "projection lock unavailable");
                    if wait(&wakeup, &mut shutdown, Duration::from_secs(2)).await {
                        return;
                    }
                    continue;
                }
            }
        }
        let mut busy = false;
        for projection in Projection::ALL {
            match step(&db, projection).await {
                Ok(n) => busy |= n > 0,
                Err(error) => {
                    tracing::warn!(projection = projection.name(), %error, "projection step failed");
                    // Close the locked session (not back to the pool) so its advisory lock is freed.
                    if let Some(conn) = lock_conn.take() {
                        let _ = sqlx::Connection::close(conn.detach()).await;
                    }
                }
            }
        }
        if !busy && wait(&wakeup, &mut shutdown, Duration::from_millis(250)).await {
            return;
        }
    }
}

async fn try_lock(db: &Db) -> Result<Option<sqlx::pool::PoolConnection<sqlx::Any>>, sqlx::Error> {
    let mut conn = db.read.acquire().await?;
    let got: bool = sqlx::query_scalar("select pg_try_advisory_lock(7242001)")
        .fetch_one(&mut *conn)
        .await?;
    Ok(got.then_some(conn))
}

/// Waits for a wakeup, the timeout or shutdown; true when shutting down.
///
/// After a wakeup it lingers [`COALESCE`] so that the appends of busy moments are applied in
/// one batch rather than one step per request.
async fn wait(wakeup: &Wakeup, shutdown: &mut watch::Receiver<bool>, timeout: Duration) -> bool {
    tokio::select! {
        _ = wakeup.projector.notified() => {
            tokio::select! {
                _ = tokio::time::sleep(COALESCE) => false,
                _ = shutdown.changed() => true,
            }
        }
        _ = tokio::time::sleep(timeout) => false,
        _ = shutdown.changed() => true,
    }
}

/// How long a woken follower of the log (projections, scheduler) waits for more appends.
pub const COALESCE: Duration = Duration::from_millis(50);

/// Empties a read-model table inside the rebuild's transaction. On PostgreSQL `truncate` leaves
/// no dead rows behind (readers wait for the rebuild instead of seeing the old rows).
async fn clear(tx: &mut Tx, backend: Backend, table: &str) -> Result<(), sqlx::Error> {
    match backend {
        Backend::Postgres => {
            sqlx::query(&format!("truncate {table}"))
                .execute(&mut **tx)
                .await?;
        }
        Backend::Sqlite => {
            sqlx::query(&format!("delete from {table}"))
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(())
}

/// Events read per page of a stream walk ([`read_streams`]).
const EVENTS_PER_PAGE: i64 = 10_000;

/// A page of whole streams, each in revision order.
type Streams = Vec<Vec<EventRecord>>;

/// Reads every stream whose id starts with `prefix`, whole, in stream order, as pages of
/// complete streams on the returned channel. Two tasks beside the caller: one walks the log on
/// its own connection with a keyset over the `(stream_id, revision)` index and asks for the
/// next page as soon as it has one, the other decodes each page and cuts it into streams,
/// carrying a stream cut by a page into the next. So the database reads, this process decodes
/// and the caller folds and writes at the same time. The handle ends with the first error.
fn read_streams(
    db: &Db,
    prefix: &str,
) -> (
    tokio::sync::mpsc::Receiver<Streams>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let (out, streams) = tokio::sync::mpsc::channel::<Streams>(2);
    let (pages, mut next) = tokio::sync::mpsc::channel::<(Vec<sqlx::any::AnyRow>, bool)>(2);
    let reader = {
        let db = db.clone();
        let pattern = format!("{prefix}%");
        tokio::spawn(async move {
            let mut conn = db.read.acquire().await?;
            let sql = format!(
                "select {} from events where stream_id like $1 and (stream_id, revision) > ($2, $3)
                 order by stream_id, revision limit $4",
                store::columns(db.backend)
            );
            let mut after = (String::new(), -1i64);
            loop {
                let rows = sqlx::query(&sql)
                    .bind(&pattern)
                    .bind(&after.0)
                    .bind(after.1)
                    .bind(EVENTS_PER_PAGE)
                    .fetch_all(&mut *conn)
                    .await?;
                let done = (rows.len() as i64) < EVENTS_PER_PAGE;
                if let Some(last) = rows.last() {
                    after = (last.try_get("stream_id")?, last.try_get("revision")?);
                }
                if pages.send((rows, done)).await.is_err() || done {
                    break;
                }
            }
            anyhow::Ok(())
        })
    };
    let decoder = tokio::spawn(async move {
        let mut carry: Vec<EventRecord> = Vec::new();
        while let Some((rows, done)) = next.recv().await {
            let mut page: Streams = Vec::new();
            for row in &rows {
                let record = store::decode(row)?.record;
                if carry
                    .first()
                    .is_some_and(|first| first.stream_id != record.stream_id)
                {
                    page.push(std::mem::take(&mut carry));
                }
                carry.push(record);
            }
            if done && !carry.is_empty() {
                page.push(std::mem::take(&mut carry));
            }
            if out.send(page).await.is_err() {
                break;
            }
        }
        drop(next);
        reader.await?
    });
    (streams, decoder)
}

/// Rebuilds the inline campaign read model from the log.
///
/// Runs in one transaction: the new rows appear all at once when it commits. The log is read
/// and decoded by [`read_streams`], a task folds each page's streams into rows with the live
/// path's fold, and this one inserts them, a thousand rows a statement, into the emptied
/// table. On PostgreSQL the secondary indexes are dropped for the load and built once at the
/// end (inside the same transaction, so readers never see the table without them).
pub async fn rebuild_campaigns(db: &Db) -> anyhow::Result<u64> {
    analyze_log(db).await?;
    let mut tx = db.begin().await?;
    clear(&mut tx, db.backend, "campaigns").await?;
    let indexes = drop_secondary_indexes(&mut tx, db.backend, "campaigns").await?;
    let (mut streams, reader) = read_streams(db, "campaign-");
    let (folded, mut rows) =
        tokio::sync::mpsc::channel::<(u64, Vec<crate::campaigns::CampaignRow>)>(2);
    let folder = tokio::spawn(async move {
        while let Some(page) = streams.recv().await {
            let mut events = 0u64;
            let mut out = Vec::with_capacity(page.len());
            for records in page {
                events += records.len() as u64;
                if let Some(view) = CampaignView::from_owned_records(records)? {
                    out.push(crate::campaigns::CampaignRow::of(&view));
                }
            }
            if folded.send((events, out)).await.is_err() {
                break;
            }
        }
        anyhow::Ok(())
    });
    let mut events = 0u64;
    let mut writing = Duration::ZERO;
    while let Some((read, page)) = rows.recv().await {
        events += read;
        let started = std::time::Instant::now();
        crate::campaigns::insert_rows(&mut tx, page).await?;
        writing += started.elapsed();
    }
    folder.await??;
    reader.await??;
    let started = std::time::Instant::now();
    for index in &indexes {
        sqlx::query(index).execute(&mut *tx).await?;
    }
    let indexing = started.elapsed();
    tracing::debug!(?writing, ?indexing, "campaign rebuild phases");
    tx.commit().await?;
    Ok(events)
}

/// Fresh statistics for the log on PostgreSQL, so the keyset walk stays on its index after a
/// bulk load. Runs on its own, before the rebuild's transaction: statistics gathered inside a
/// transaction are invisible to the reader's connection until it commits.
async fn analyze_log(db: &Db) -> Result<(), sqlx::Error> {
    if db.backend == Backend::Postgres {
        sqlx::query("analyze events").execute(&db.write).await?;
    }
    Ok(())
}

/// On PostgreSQL, drops `table`'s indexes other than its primary key inside `tx` and returns
/// the statements that build them again.
async fn drop_secondary_indexes(
    tx: &mut Tx,
    backend: Backend,
    table: &str,
) -> Result<Vec<String>, sqlx::Error> {
    if backend != Backend::Postgres {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(
        "select i.indexname::text as indexname, i.indexdef from pg_indexes i
         where i.schemaname = current_schema() and i.tablename = $1
           and not exists (select 1 from pg_constraint c where c.conname = i.indexname)",
    )
    .bind(table)
    .fetch_all(&mut **tx)
    .await?;
    let mut create = Vec::with_capacity(rows.len());
    for row in rows {
        let name: String = row.try_get("indexname")?;
        sqlx::query(&format!("drop index {name}"))
            .execute(&mut **tx)
            .await?;
        create.push(row.try_get("indexdef")?);
    }
    Ok(create)
}

/// Rebuilds the `documents` read model (contacts, audiences, templates, connections) in one
/// transaction, its secondary indexes built once at the end on PostgreSQL.
pub async fn rebuild_documents(db: &Db) -> anyhow::Result<u64> {
    analyze_log(db).await?;
    let mut tx = db.begin().await?;
    clear(&mut tx, db.backend, "documents").await?;
    let indexes = drop_secondary_indexes(&mut tx, db.backend, "documents").await?;
    let mut events = 0u64;
    for kind in [
        DocumentKind::Contact,
        DocumentKind::Audience,
        DocumentKind::Template,
        DocumentKind::Connection,
    ] {
        let (mut pages, reader) = read_streams(db, &format!("{}-", kind.as_str()));
        while let Some(streams) = pages.recv().await {
            let mut views = Vec::with_capacity(streams.len());
            for records in &streams {
                events += records.len() as u64;
                if let Some(view) =
                    DocumentView::from_records(records.iter()).map_err(anyhow::Error::msg)?
                {
                    views.push(view);
                }
            }
            crate::documents::write_rows(&mut tx, kind, &views).await?;
        }
        reader.await??;
    }
    for index in &indexes {
        sqlx::query(index).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(events)
}

/// Rebuilds the `suppressions` read model: each entry's stream folded to what it leaves on the
/// list.
pub async fn rebuild_suppressions(db: &Db) -> anyhow::Result<u64> {
    analyze_log(db).await?;
    let mut tx = db.begin().await?;
    clear(&mut tx, db.backend, "suppressions").await?;
    let mut events = 0u64;
    let (mut pages, reader) = read_streams(db, "suppression-");
    while let Some(streams) = pages.recv().await {
        let mut rows = Vec::with_capacity(streams.len());
        for records in &streams {
            events += records.len() as u64;
            let Some(first) = records.first() else {
                continue;
            };
            if let Some(row) = crate::suppressions::fold(&first.metadata.org_id, records)
                .map_err(anyhow::Error::msg)?
            {
                rows.push(row);
            }
        }
        crate::suppressions::write_rows(&mut tx, &rows).await?;
    }
    reader.await??;
    tx.commit().await?;
    Ok(events)
}

/// Rebuilds the `org_settings` read model: each org's settings stream folded to its last
/// `SettingsUpdated`.
pub async fn rebuild_settings(db: &Db) -> anyhow::Result<u64> {
    analyze_log(db).await?;
    let mut tx = db.begin().await?;
    clear(&mut tx, db.backend, "org_settings").await?;
    let mut events = 0u64;
    let (mut pages, reader) = read_streams(db, "settings-");
    while let Some(streams) = pages.recv().await {
        let mut rows = Vec::with_capacity(streams.len());
        for records in &streams {
            events += records.len() as u64;
            if let Some(row) = crate::settings::fold(records).map_err(anyhow::Error::msg)? {
                rows.push(row);
            }
        }
        crate::settings::write_rows(&mut tx, &rows).await?;
    }
    reader.await??;
    tx.commit().await?;
    Ok(events)
}
