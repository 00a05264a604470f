//! Campaign commands and queries: commands go through the aggregate and the log, queries read
//! the `campaigns` read model.

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use herald_domain::campaign::{Campaign, CampaignCommand};
use herald_domain::error::CampaignError;
use herald_projections::campaign::CampaignView;
use herald_projections::record::{campaign_stream, Metadata};
use serde_json::Value;
use sqlx::Row;

use crate::commands::{self, Attempt};
pub use crate::commands::{CommandMeta, IdempotencyClaim};
use crate::db::{Db, Tx};
use crate::store::{self, AppendError, NewEvent};

/// Why a command did not change anything.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Domain(#[from] CampaignError),
    /// `If-Match` named a version that is not the current one.
    #[error("the campaign has changed (version {current})")]
    VersionMismatch { current: i64 },
    /// A concurrent request with the same idempotency key won.
    #[error("a request with this idempotency key is in flight")]
    IdempotencyRace,
    /// The command lost every race for the campaign; the client may retry.
    #[error("too many concurrent writers on this campaign")]
    Contention,
    #[error("the event log holds an event this version cannot read: {0}")]
    Unreadable(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// The result of a command: the campaign after it, and whether anything was written.
#[derive(Debug)]
pub struct Outcome {
    pub view: CampaignView,
    pub changed: bool,
}

/// Runs a command against one campaign's newest state, appending its events and updating the
/// read model in one transaction. A lost race re-runs the command on the new state, unless the
/// caller pinned a version (`If-Match`), which then fails with `VersionMismatch`.
///
/// The work runs in its own task: a client that hangs up mid-request cannot cancel a
/// transaction half-way, so an answered command is complete and an unanswered one is either
/// complete or absent.
pub async fn execute(
    db: &Db,
    meta: &CommandMeta,
    campaign_id: &str,
    creating: bool,
    expected_version: Option<i64>,
    idempotency: Option<&IdempotencyClaim>,
    command: impl Fn(&Campaign, DateTime<Utc>) -> CampaignCommand + Send + Sync + 'static,
) -> Result<Outcome, CommandError> {
    let (db, meta, campaign_id, idempotency) = (
        db.clone(),
        meta.clone(),
        campaign_id.to_string(),
        idempotency.cloned(),
    );
    commands::in_own_task(
        async move {
            execute_here(
                &db,
                &meta,
                &campaign_id,
                creating,
                expected_version,
                idempotency.as_ref(),
                command,
            )
            .await
        },
        |message| CommandError::Db(sqlx::Error::Protocol(message)),
    )
    .await
}

async fn execute_here(
    db: &Db,
    meta: &CommandMeta,
    campaign_id: &str,
    creating: bool,
    expected_version: Option<i64>,
    idempotency: Option<&IdempotencyClaim>,
    command: impl Fn(&Campaign, DateTime<Utc>) -> CampaignCommand + Sync,
) -> Result<Outcome, CommandError> {
    let stream_id = campaign_stream(&meta.org_id, campaign_id);
    if creating && idempotency.is_none() && db.backend == crate::db::Backend::Postgres {
        return create_fast(db, meta, campaign_id, &stream_id, command).await;
    }
    let (stream_id, command) = (&stream_id, &command);
    let attempt = |mut tx: Tx| async move {
        if db.backend == crate::db::Backend::Postgres && !creating {
            // Writers of one campaign queue on its row instead of racing to the same revision.
            sqlx::query("select 1 from campaigns where org_id = $1 and id = $2 for update")
                .bind(&meta.org_id)
                .bind(campaign_id)
                .fetch_optional(&mut *tx)
                .await?;
        }
        // A create expects an empty stream: the append at revision 0 proves it, no read needed.
        let events = if creating {
            Vec::new()
        } else {
            store::read_stream(&mut *tx, db.backend, stream_id, 0, i64::MAX).await?
        };
        let records: Vec<_> = events.into_iter().map(|e| e.record).collect();
        let mut view = CampaignView::from_records(records.iter())
            .map_err(|e| CommandError::Unreadable(e.0))?
            .unwrap_or_default();
        let existing = !view.created_at.is_empty();
        let current_version = if existing { view.version() } else { 0 };
        if let Some(expected) = expected_version {
            if expected != current_version {
                return Err(CommandError::VersionMismatch {
                    current: current_version,
                });
            }
        }
        // Microseconds, as the log stores times.
        let now = chrono::SubsecRound::trunc_subsecs(Utc::now(), 6);
        let mut aggregate = view.campaign.clone();
        let sink = EventSink::default();
        aggregate
            .handle(command(&view.campaign, now), &(), &sink)
            .await?;
        let new_events = sink.collect().await;
        if new_events.is_empty() {
            tx.rollback().await?;
            return Ok(Attempt::Done(Outcome {
                view,
                changed: false,
            }));
        }
        let to_store = to_new_events(&new_events);
        let metadata = meta.metadata();
        let stored = match store::append(
            &mut tx,
            db.backend,
            stream_id,
            current_version,
            &to_store,
            &metadata,
            now,
        )
        .await
        {
            Ok(stored) => stored,
            Err(AppendError::Conflict) => {
                tx.rollback().await.ok();
                if creating {
                    return Err(CommandError::Domain(CampaignError::AlreadyExists));
                }
                if expected_version.is_some() {
                    let current = current_version_of(db, stream_id).await?;
                    return Err(CommandError::VersionMismatch { current });
                }
                return Ok(Attempt::Retry);
            }
            Err(AppendError::Db(e)) => return Err(e.into()),
        };
        for event in &stored {
            view.apply(&event.record)
                .map_err(|e| CommandError::Unreadable(e.0))?;
        }
        upsert_views(&mut tx, std::slice::from_ref(&view)).await?;
        if let Some(claim) = idempotency {
            let body = view.to_json().to_string();
            if !commands::record_idempotent_answer(&mut tx, &meta.org_id, claim, &body, now).await?
            {
                tx.rollback().await?;
                return Err(CommandError::IdempotencyRace);
            }
        }
        tx.commit().await?;
        db.cache.put(
            &meta.org_id,
            campaign_id,
            std::sync::Arc::new(view.to_json()),
        );
        db.cache.announce(&meta.org_id, campaign_id);
        Ok(Attempt::Done(Outcome {
            view,
            changed: true,
        }))
    };
    commands::with_retries(db, attempt, || CommandError::Contention).await
}

async fn current_version_of(db: &Db, stream_id: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("select coalesce(max(revision) + 1, 0) from events where stream_id = $1")
        .bind(stream_id)
        .fetch_one(&db.read)
        .await
}

/// Campaign events as the log stores them.
fn to_new_events(events: &[herald_domain::campaign::CampaignEvent]) -> Vec<NewEvent> {
    events
        .iter()
        .map(|e| NewEvent {
            event_type: e.event_type().to_string(),
            event_version: herald_domain::campaign::CampaignEvent::VERSION.to_string(),
            data: e.data(),
        })
        .collect()
}

/// The stream id a view was folded from.
pub fn stream_of(view: &CampaignView) -> String {
    campaign_stream(&view.org_id, view.campaign.id())
}

/// Writes campaign views to the read model (insert or replace).
pub async fn upsert_views(tx: &mut Tx, views: &[CampaignView]) -> Result<(), sqlx::Error> {
    if views.is_empty() {
        return Ok(());
    }
    let sql = upsert_sql(views.len(), 0);
    let query = bind_rows(sqlx::query(&sql), views.iter().map(CampaignRow::of));
    query.execute(&mut **tx).await?;
    Ok(())
}

/// Inserts new campaign rows, a multi-row statement per [`ROWS_PER_INSERT`]: for a rebuild,
/// which writes each campaign once into an emptied table (no conflict to handle).
pub async fn insert_rows(tx: &mut Tx, rows: Vec<CampaignRow>) -> Result<(), sqlx::Error> {
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<CampaignRow> = rows.by_ref().take(ROWS_PER_INSERT).collect();
        let sql = format!("{INSERT}{}", store::param_rows("", 1, 12, chunk.len()));
        bind_rows(sqlx::query(&sql), chunk)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Rows per statement of [`insert_rows`] (twelve parameters each).
pub const ROWS_PER_INSERT: usize = 1000;

const INSERT: &str = "insert into campaigns (org_id, id, name, name_lower, type, status, state, channels, version, created_at, updated_at, doc) values ";

/// The campaign-row upsert for `rows` rows, its parameters numbered after `offset`.
fn upsert_sql(rows: usize, offset: usize) -> String {
    let mut sql = String::from(INSERT);
    sql.push_str(&store::param_rows("", offset + 1, 12, rows));
    sql.push_str(
        " on conflict (org_id, id) do update set name = excluded.name, name_lower = excluded.name_lower,
          type = excluded.type, status = excluded.status, state = excluded.state, channels = excluded.channels,
          version = excluded.version, created_at = excluded.created_at, updated_at = excluded.updated_at, doc = excluded.doc",
    );
    sql
}

/// One `campaigns` row: the columns the list queries filter and sort on, and the document.
#[derive(Debug, Clone)]
pub struct CampaignRow {
    org_id: String,
    id: String,
    name: String,
    name_lower: String,
    campaign_type: String,
    status: String,
    state: &'static str,
    channels: String,
    version: i64,
    created_at: String,
    updated_at: String,
    doc: String,
}

impl CampaignRow {
    pub fn of(view: &CampaignView) -> CampaignRow {
        let spec = view.campaign.spec();
        let channels: String = spec
            .channels
            .iter()
            .map(|c| format!(",{}", c.id()))
            .collect::<String>()
            + ",";
        CampaignRow {
            org_id: view.org_id.clone(),
            id: view.campaign.id().to_string(),
            name: spec.name.clone(),
            name_lower: spec.name.to_lowercase(),
            campaign_type: spec.campaign_type.id().to_string(),
            status: view.campaign.status().as_str().to_string(),
            state: if view.campaign.is_deleted() {
                "deleted"
            } else {
                "active"
            },
            channels,
            version: view.version(),
            created_at: view.created_at.clone(),
            updated_at: view.updated_at.clone(),
            doc: view.to_json().to_string(),
        }
    }
}

/// Binds the twelve columns of each row, in [`INSERT`] order.
fn bind_rows<'q>(
    mut query: store::AnyQuery<'q>,
    rows: impl IntoIterator<Item = CampaignRow>,
) -> store::AnyQuery<'q> {
    for row in rows {
        query = query
            .bind(row.org_id)
            .bind(row.id)
            .bind(row.name)
            .bind(row.name_lower)
            .bind(row.campaign_type)
            .bind(row.status)
            .bind(row.state)
            .bind(row.channels)
            .bind(row.version)
            .bind(row.created_at)
            .bind(row.updated_at)
            .bind(row.doc);
    }
    query
}

/// The create path on PostgreSQL: no stream to read, one statement to write.
async fn create_fast(
    db: &Db,
    meta: &CommandMeta,
    campaign_id: &str,
    stream_id: &str,
    command: impl Fn(&Campaign, DateTime<Utc>) -> CampaignCommand + Sync,
) -> Result<Outcome, CommandError> {
    let now = chrono::SubsecRound::trunc_subsecs(Utc::now(), 6);
    let mut aggregate = Campaign::default();
    let sink = EventSink::default();
    aggregate
        .handle(command(&Campaign::default(), now), &(), &sink)
        .await?;
    let new_events = sink.collect().await;
    let to_store = to_new_events(&new_events);
    let metadata = meta.metadata();
    let mut view = CampaignView::default();
    for (revision, event) in to_store.iter().enumerate() {
        let record = herald_projections::record::EventRecord {
            event_id: String::new(),
            stream_id: stream_id.to_string(),
            revision: revision as i64,
            position: 0,
            event_type: event.event_type.clone(),
            event_version: event.event_version.clone(),
            created: store::format_time(now),
            data: event.data.clone(),
            metadata: metadata.clone(),
        };
        view.apply(&record)
            .map_err(|e| CommandError::Unreadable(e.0))?;
    }
    match create_in_one_statement(db, stream_id, &to_store, &metadata, now, &view).await {
        Ok(()) => {}
        Err(AppendError::Conflict) => {
            return Err(CommandError::Domain(CampaignError::AlreadyExists))
        }
        Err(AppendError::Db(e)) => return Err(e.into()),
    }
    db.cache.put(
        &meta.org_id,
        campaign_id,
        std::sync::Arc::new(view.to_json()),
    );
    db.cache.announce(&meta.org_id, campaign_id);
    Ok(Outcome {
        view,
        changed: true,
    })
}

/// Creates a campaign on PostgreSQL in one statement (one round trip, its own transaction):
/// the events and the read-model row are written by a data-modifying `with`, so they commit
/// together or not at all. A taken revision 0 means the campaign exists.
async fn create_in_one_statement(
    db: &Db,
    stream_id: &str,
    events: &[NewEvent],
    metadata: &Metadata,
    now: DateTime<Utc>,
    view: &CampaignView,
) -> Result<(), AppendError> {
    let (events_sql, next) = store::append_values_sql(events.len(), 0, "::jsonb");
    let sql = format!(
        "with appended as ({events_sql} returning position) {} returning (select count(*) from appended) as appended",
        upsert_sql(1, next)
    );
    let query = store::bind_append(sqlx::query(&sql), stream_id, 0, events, metadata, now);
    bind_rows(query, [CampaignRow::of(view)])
        .fetch_one(&db.write)
        .await
        .map_err(store::conflict_or_db)?;
    Ok(())
}

/// One campaign's resource body, or `None` when the org has no such campaign.
pub async fn get(db: &Db, org_id: &str, id: &str) -> Result<Option<Value>, sqlx::Error> {
    Ok(get_shared(db, org_id, id).await?.map(|doc| (*doc).clone()))
}

/// Like [`get`], served from the process cache when it can be.
pub async fn get_shared(
    db: &Db,
    org_id: &str,
    id: &str,
) -> Result<Option<std::sync::Arc<Value>>, sqlx::Error> {
    if let Some(doc) = db.cache.get(org_id, id) {
        if db.backend != crate::db::Backend::Sqlite {
            return Ok(Some(doc));
        }
        // A hit on SQLite is good only while no other process (`herald purge`) changed
        // campaigns (`cache.rs`); a miss reads the row itself.
        let outside: i64 = sqlx::query_scalar("select epoch from cache_epoch where id = 1")
            .fetch_one(&db.read)
            .await?;
        if !db.cache.observe_outside_epoch(outside) {
            return Ok(Some(doc));
        }
    }
    let epoch = db.cache.epoch();
    let doc: Option<String> =
        sqlx::query_scalar("select doc from campaigns where org_id = $1 and id = $2")
            .bind(org_id)
            .bind(id)
            .fetch_optional(&db.read)
            .await?;
    let Some(doc) = doc.and_then(|d| serde_json::from_str::<Value>(&d).ok()) else {
        return Ok(None);
    };
    let doc = std::sync::Arc::new(doc);
    db.cache.fill(org_id, id, doc.clone(), epoch);
    Ok(Some(doc))
}

/// Sort orders the list endpoint accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    CreatedAt,
    Name,
    UpdatedAt,
}

impl SortKey {
    fn column(self) -> &'static str {
        match self {
            SortKey::CreatedAt => "created_at",
            SortKey::Name => "name_lower",
            SortKey::UpdatedAt => "updated_at",
        }
    }
}

/// Filters and page of `GET /crm/marketing/campaigns`.
#[derive(Debug, Clone)]
pub struct ListQuery {
    pub status: Option<String>,
    pub campaign_type: Option<String>,
    pub channel: Option<String>,
    pub name_contains: Option<String>,
    pub include_deleted: bool,
    pub sort: SortKey,
    pub descending: bool,
    /// Keyset position: the sort value and id of the last item of the previous page.
    pub after: Option<(String, String)>,
    pub limit: i64,
}

/// A page of campaigns, plus the keyset position of its last item when more may follow.
pub async fn list(
    db: &Db,
    org_id: &str,
    query: &ListQuery,
) -> Result<(Vec<Value>, Option<(String, String)>), sqlx::Error> {
    let column = query.sort.column();
    let mut sql =
        format!("select {column} as sort_value, id, doc from campaigns where org_id = $1");
    let mut binds: Vec<String> = vec![org_id.to_string()];
    let bind = |value: String, binds: &mut Vec<String>| {
        binds.push(value);
        format!("${}", binds.len())
    };
    if !query.include_deleted {
        sql.push_str(" and state = 'active'");
    }
    if let Some(status) = &query.status {
        let p = bind(status.clone(), &mut binds);
        sql.push_str(&format!(" and status = {p}"));
    }
    if let Some(kind) = &query.campaign_type {
        let p = bind(kind.clone(), &mut binds);
        sql.push_str(&format!(" and type = {p}"));
    }
    if let Some(channel) = &query.channel {
        let p = bind(format!("%,{channel},%"), &mut binds);
        sql.push_str(&format!(" and channels like {p}"));
    }
    if let Some(q) = &query.name_contains {
        let escaped = q
            .to_lowercase()
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        let p = bind(format!("%{escaped}%"), &mut binds);
        sql.push_str(&format!(" and name_lower like {p} escape '\\'"));
    }
    if let Some((value, id)) = &query.after {
        let pv = bind(value.clone(), &mut binds);
        let pi = bind(id.clone(), &mut binds);
        let op = if query.descending { "<" } else { ">" };
        sql.push_str(&format!(" and ({column}, id) {op} ({pv}, {pi})"));
    }
    let direction = if query.descending { "desc" } else { "asc" };
    sql.push_str(&format!(
        " order by {column} {direction}, id {direction} limit {}",
        query.limit + 1
    ));
    let mut q = sqlx::query(&sql);
    for value in binds {
        q = q.bind(value);
    }
    let rows = q.fetch_all(&db.read).await?;
    let more = rows.len() as i64 > query.limit;
    let mut items = Vec::with_capacity(rows.len());
    let mut last = None;
    for row in rows.iter().take(query.limit as usize) {
        let doc: String = row.try_get("doc")?;
        items.push(serde_json::from_str(&doc).unwrap_or(Value::Null));
        last = Some((
            row.try_get::<String, _>("sort_value")?,
            row.try_get::<String, _>("id")?,
        ));
    }
    Ok((items, if more { last } else { None }))
}

/// Per-process cache of each org's assets for the read path. Entries live one second and are
/// dropped at once when this process changes a document of the org, so a client sees its own
/// changes immediately and other processes' within a second. Commands always load fresh.
#[derive(Debug, Default)]
pub struct AssetsCache {
    entries: std::sync::Mutex<
        std::collections::HashMap<String, (std::time::Instant, std::sync::Arc<OrgAssets>)>,
    >,
    /// Rendered `GET` bodies: valid while the cached document (the same `Arc`) and the org's
    /// assets (the same generation) are unchanged.
    rendered: std::sync::Mutex<std::collections::HashMap<(String, String), Rendered>>,
}

/// A campaign's response body, rendered once for one document and one assets generation.
#[derive(Debug, Clone)]
pub struct Rendered {
    doc: std::sync::Arc<Value>,
    generation: u64,
    pub body: bytes::Bytes,
    pub version: Option<i64>,
}

/// Numbers each distinct load of an org's assets.
static ASSETS_GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl AssetsCache {
    const TTL: std::time::Duration = std::time::Duration::from_secs(1);

    pub async fn get(
        &self,
        db: &Db,
        org_id: &str,
    ) -> Result<std::sync::Arc<OrgAssets>, sqlx::Error> {
        if let Some((at, assets)) = self.entries.lock().expect("cache lock").get(org_id) {
            if at.elapsed() < Self::TTL {
                return Ok(assets.clone());
            }
        }
        let mut assets = OrgAssets::load(db, org_id).await?;
        let mut entries = self.entries.lock().expect("cache lock");
        // Unchanged assets keep their generation, so rendered bodies stay valid.
        assets.generation = match entries.get(org_id) {
            Some((_, old)) if old.same_content(&assets) => old.generation,
            _ => ASSETS_GENERATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        };
        let assets = std::sync::Arc::new(assets);
        if entries.len() > 10_000 {
            entries.clear();
        }
        entries.insert(
            org_id.to_string(),
            (std::time::Instant::now(), assets.clone()),
        );
        Ok(assets)
    }

    pub fn invalidate(&self, org_id: &str) {
        self.entries.lock().expect("cache lock").remove(org_id);
    }

    /// The rendered body of `doc` under `assets`, if it was rendered before.
    pub fn rendered(
        &self,
        org_id: &str,
        id: &str,
        doc: &std::sync::Arc<Value>,
        assets: &OrgAssets,
    ) -> Option<Rendered> {
        let rendered = self.rendered.lock().expect("cache lock");
        rendered
            .get(&(org_id.to_string(), id.to_string()))
            .filter(|r| std::sync::Arc::ptr_eq(&r.doc, doc) && r.generation == assets.generation)
            .cloned()
    }

    /// Renders `doc` with its live blockers, and keeps the body for the next `GET`.
    pub fn render(
        &self,
        org_id: &str,
        id: &str,
        doc: std::sync::Arc<Value>,
        assets: &OrgAssets,
    ) -> Rendered {
        let live = assets.live_blockers((*doc).clone());
        let rendered = Rendered {
            body: serde_json::to_vec(&live)
                .expect("documents serialize")
                .into(),
            version: live.get("version").and_then(Value::as_i64),
            doc,
            generation: assets.generation,
        };
        let mut map = self.rendered.lock().expect("cache lock");
        if map.len() >= 10_000 {
            map.clear();
        }
        map.insert((org_id.to_string(), id.to_string()), rendered.clone());
        rendered
    }
}

/// What the org has ready for a campaign: the channels it can send on now and what blocks it.
#[derive(Debug, Clone, Default)]
pub struct Readiness {
    pub launchable: Vec<herald_domain::spec::Channel>,
    pub blockers: Vec<herald_domain::campaign::Blocker>,
}

/// The org's connected platforms, template ids and audience ids: what readiness checks against.
#[derive(Debug, Clone, Default)]
pub struct OrgAssets {
    /// Tells loads apart: equal generations have equal content.
    generation: u64,
    connected: Vec<String>,
    templates: std::collections::HashSet<String>,
    audiences: std::collections::HashSet<String>,
}

impl OrgAssets {
    /// One query: the ids of the org's templates and audiences and its connections' platforms.
    pub async fn load(db: &Db, org_id: &str) -> Result<OrgAssets, sqlx::Error> {
        let rows = sqlx::query(
            "select kind, id, lookup from documents
             where org_id = $1 and kind in ('connection', 'template', 'audience')",
        )
        .bind(org_id)
        .fetch_all(&db.read)
        .await?;
        let mut assets = OrgAssets::default();
        for row in rows {
            let kind: String = row.try_get("kind")?;
            match kind.as_str() {
                "connection" => {
                    if let Some(platform) = row.try_get::<Option<String>, _>("lookup")? {
                        if !assets.connected.contains(&platform) {
                            assets.connected.push(platform);
                        }
                    }
                }
                "template" => {
                    assets.templates.insert(row.try_get("id")?);
                }
                _ => {
                    assets.audiences.insert(row.try_get("id")?);
                }
            }
        }
        Ok(assets)
    }

    fn same_content(&self, other: &OrgAssets) -> bool {
        let mut a = self.connected.clone();
        let mut b = other.connected.clone();
        a.sort();
        b.sort();
        a == b && self.templates == other.templates && self.audiences == other.audiences
    }

    /// Checks a campaign's channels, template and audience against these assets.
    pub fn readiness(&self, spec: &herald_domain::spec::CampaignSpec) -> Readiness {
        use herald_domain::campaign::Blocker;
        let mut out = Readiness::default();
        for channel in &spec.channels {
            if self.connected.iter().any(|p| p == channel.id()) {
                out.launchable.push(*channel);
            } else {
                out.blockers.push(Blocker::channel_not_connected(*channel));
            }
        }
        let template_ok = spec
            .template_id
            .as_ref()
            .is_some_and(|id| self.templates.contains(id));
        if !template_ok {
            out.blockers.push(Blocker::new(Blocker::TEMPLATE_MISSING));
        }
        let audience_ok = match (&spec.audience_id, &spec.audience) {
            (Some(id), _) => self.audiences.contains(id),
            (None, Some(_)) => true,
            (None, None) => false,
        };
        if !audience_ok {
            out.blockers.push(Blocker::new(Blocker::AUDIENCE_MISSING));
        }
        out
    }

    /// Replaces a campaign document's `blockers` with what blocks it now (nothing once deleted).
    pub fn live_blockers(&self, mut doc: Value) -> Value {
        // Blockers say what stops a launch: nothing can launch a deleted or completed campaign.
        if doc.get("state").and_then(Value::as_str) == Some("deleted")
            || doc.get("status").and_then(Value::as_str) == Some("completed")
        {
            doc["blockers"] = Value::Array(vec![]);
            return doc;
        }
        // Deserialize from a borrow: the document is not copied to read its spec.
        let spec = <herald_domain::spec::CampaignSpec as serde::Deserialize>::deserialize(&doc);
        if let Ok(spec) = spec {
            let ready = self.readiness(&spec);
            doc["blockers"] = serde_json::to_value(&ready.blockers).unwrap_or(Value::Array(vec![]));
        }
        doc
    }
}
