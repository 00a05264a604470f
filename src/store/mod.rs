//! The event store: an append-only global log with per-stream revisions, on PostgreSQL or SQLite.
//!
//! Appends check the expected revision (a unique `(stream_id, revision)` key) so two writers on one
//! stream never both win. Catch-up reads are gap-safe: on PostgreSQL a reader only sees events whose
//! transaction is older than every transaction still in flight, ordered by `(transaction_id,
//! position)`; on SQLite the single writer makes rowid order commit order.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use herald_projections::record::{EventRecord, Metadata};
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::db::{Backend, Db, Tx};

/// An event about to be appended.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub event_type: String,
    pub event_version: String,
    pub data: Value,
}

/// Why an append failed.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// Another writer took the expected revision first.
    #[error("the stream changed since it was read")]
    Conflict,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Where a catch-up reader stands: the last event it has processed.
///
/// `tx_id` is the PostgreSQL transaction id of that event (always 0 on SQLite).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Checkpoint {
    pub tx_id: i64,
    pub position: i64,
}

/// Reads the checkpoint of the log reader `name` (a projection, the scheduler); the start of the
/// log when it has none. `lock` takes its row lock (PostgreSQL), so that two nodes do not apply
/// one batch at the same time.
pub async fn checkpoint<'e, E>(
    executor: E,
    name: &str,
    lock: bool,
) -> Result<Checkpoint, sqlx::Error>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let sql = if lock {
        "select tx_id, position from projection_checkpoints where name = $1 for update"
    } else {
        "select tx_id, position from projection_checkpoints where name = $1"
    };
    let row = sqlx::query(sql).bind(name).fetch_optional(executor).await?;
    Ok(match row {
        Some(row) => Checkpoint {
            tx_id: row.try_get("tx_id")?,
            position: row.try_get("position")?,
        },
        None => Checkpoint::default(),
    })
}

/// Moves a follower's checkpoint to `at`, creating it if needed (inside the transaction that
/// applied what it read).
pub async fn save_checkpoint<'e, E>(
    executor: E,
    name: &str,
    at: Checkpoint,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "insert into projection_checkpoints (name, tx_id, position, updated_at) values ($1, $2, $3, $4)
         on conflict (name) do update set tx_id = excluded.tx_id, position = excluded.position, updated_at = excluded.updated_at",
    )
    .bind(name)
    .bind(at.tx_id)
    .bind(at.position)
    .bind(format_time(now))
    .execute(executor)
    .await?;
    Ok(())
}

/// An event read back with the place it holds in the catch-up order.
#[derive(Debug, Clone)]
pub struct LoggedEvent {
    pub record: EventRecord,
    pub org_id: String,
    pub checkpoint: Checkpoint,
}

/// Formats a timestamp the way the log stores it: fixed width, so text order is time order.
pub fn format_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// `$first, $first+1, …`: `count` numbered parameters, for an `in (…)` list.
pub fn params(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// `count` rows of `width` numbered parameters from `$first`: `($1,$2),($3,$4)` for
/// `(1, 2, 2)`. Each row starts with `lead` (shared parameters such as `$1, $2, `), if any.
pub fn param_rows(lead: &str, first: usize, width: usize, count: usize) -> String {
    (0..count)
        .map(|row| format!("({lead}{})", params(first + row * width, width)))
        .collect::<Vec<_>>()
        .join(",")
}

/// The `insert into events ... values` of `n` events with parameters numbered after `offset`
/// (nine per event), and the number of the last parameter used.
pub fn append_values_sql(n: usize, offset: usize, json_cast: &str) -> (String, usize) {
    let mut sql = String::from(
        "insert into events (event_id, org_id, stream_id, revision, event_type, event_version, created, data, metadata) values ",
    );
    for i in 0..n {
        if i > 0 {
            sql.push(',');
        }
        let p = |k: usize| offset + i * 9 + k;
        sql.push_str(&format!(
            "(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}{json_cast}, ${}{json_cast})",
            p(1),
            p(2),
            p(3),
            p(4),
            p(5),
            p(6),
            p(7),
            p(8),
            p(9)
        ));
    }
    (sql, offset + n * 9)
}

/// Binds events in [`append_values_sql`] order, revisions from `expected`.
pub fn bind_append<'q>(
    mut query: AnyQuery<'q>,
    stream_id: &str,
    expected: i64,
    events: &[NewEvent],
    metadata: &Metadata,
    now: DateTime<Utc>,
) -> AnyQuery<'q> {
    let shared = Shared::new(metadata, now);
    for (offset, event) in events.iter().enumerate() {
        let event_id = uuid::Uuid::now_v7().to_string();
        query = bind_event(
            query,
            &shared,
            event_id,
            stream_id,
            expected + offset as i64,
            event,
        );
    }
    query
}

/// Appends `events` to `stream_id` inside `tx`, expecting the stream to hold `expected` events.
///
/// Returns the stored records, revisions `expected..`.
pub async fn append(
    tx: &mut Tx,
    backend: Backend,
    stream_id: &str,
    expected: i64,
    events: &[NewEvent],
    metadata: &Metadata,
    now: DateTime<Utc>,
) -> Result<Vec<LoggedEvent>, AppendError> {
    let shared = Shared::new(metadata, now);
    let (insert, _) = append_values_sql(1, 0, json_cast(backend));
    let sql = match backend {
        Backend::Postgres => {
            format!("{insert} returning position, transaction_id::text::bigint as tx_id")
        }
        Backend::Sqlite => format!("{insert} returning position, 0 as tx_id"),
    };
    let mut stored = Vec::with_capacity(events.len());
    for (offset, event) in events.iter().enumerate() {
        let event_id = uuid::Uuid::now_v7().to_string();
        let revision = expected + offset as i64;
        let row = bind_event(
            sqlx::query(&sql),
            &shared,
            event_id.clone(),
            stream_id,
            revision,
            event,
        )
        .fetch_one(&mut **tx)
        .await
        .map_err(conflict_or_db)?;
        let position: i64 = row.try_get("position")?;
        let tx_id: i64 = row.try_get("tx_id")?;
        stored.push(LoggedEvent {
            record: EventRecord {
                event_id,
                stream_id: stream_id.to_string(),
                revision,
                position,
                event_type: event.event_type.clone(),
                event_version: event.event_version.clone(),
                created: shared.created.clone(),
                data: event.data.clone(),
                metadata: metadata.clone(),
            },
            org_id: metadata.org_id.clone(),
            checkpoint: Checkpoint { tx_id, position },
        });
    }
    Ok(stored)
}

/// A unique violation on append means another writer took the revision.
pub fn conflict_or_db(error: sqlx::Error) -> AppendError {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => AppendError::Conflict,
        _ => AppendError::Db(error),
    }
}

/// How JSON parameters are cast in an insert.
fn json_cast(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => "::jsonb",
        Backend::Sqlite => "",
    }
}

/// What every event of one append shares, ready to bind.
struct Shared {
    org_id: String,
    created: String,
    metadata_json: String,
}

impl Shared {
    fn new(metadata: &Metadata, now: DateTime<Utc>) -> Shared {
        Shared {
            org_id: metadata.org_id.clone(),
            created: format_time(now),
            metadata_json: serde_json::to_string(metadata).expect("metadata serializes"),
        }
    }
}

/// A query on the `Any` driver with its arguments.
pub type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

/// Binds one event's nine columns, in [`append_values_sql`] order.
fn bind_event<'q>(
    query: AnyQuery<'q>,
    shared: &Shared,
    event_id: String,
    stream_id: &str,
    revision: i64,
    event: &NewEvent,
) -> AnyQuery<'q> {
    query
        .bind(event_id)
        .bind(shared.org_id.clone())
        .bind(stream_id.to_string())
        .bind(revision)
        .bind(event.event_type.clone())
        .bind(event.event_version.clone())
        .bind(shared.created.clone())
        .bind(event.data.to_string())
        .bind(shared.metadata_json.clone())
}

const COLUMNS_PG: &str = "position, transaction_id::text::bigint as tx_id, event_id, org_id, stream_id, revision, event_type, event_version, created, data::text as data, metadata::text as metadata";
const COLUMNS_SQLITE: &str = "position, 0 as tx_id, event_id, org_id, stream_id, revision, event_type, event_version, created, data, metadata";

pub(crate) fn columns(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => COLUMNS_PG,
        Backend::Sqlite => COLUMNS_SQLITE,
    }
}

/// The events a follower of the log decodes: all of them, or only those of streams whose id
/// starts with a prefix. The others are still read, as positions, so the follower's checkpoint
/// moves past them, but their payloads neither cross the wire nor get parsed (the scheduler and
/// the status counts follow campaigns through a log that is mostly engagements).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interest {
    All,
    /// Literal prefixes of letters and dashes, such as `campaign-`; none reads positions only.
    StreamsPrefixed(&'static [&'static str]),
    /// Only the envelopes of these streams' events (ids, org, type, revision, time): `data` is
    /// null and the metadata empty but for the org. For a follower that decides by the event
    /// type alone (the status counts), so no payload crosses the wire or gets parsed.
    EnvelopesPrefixed(&'static [&'static str]),
}

impl Interest {
    /// The SQL test of a row's stream being of interest; `None` for [`Interest::All`].
    fn inside(self) -> Option<String> {
        let prefixes = match self {
            Interest::All => return None,
            Interest::StreamsPrefixed(prefixes) | Interest::EnvelopesPrefixed(prefixes) => prefixes,
        };
        assert!(
            prefixes
                .iter()
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphabetic() || c == '-')),
            "stream prefixes are literal"
        );
        // No prefixes: positions only, every payload skipped.
        if prefixes.is_empty() {
            return Some("1 = 0".to_string());
        }
        Some(
            prefixes
                .iter()
                .map(|prefix| format!("substr(stream_id, 1, {}) = '{prefix}'", prefix.len()))
                .collect::<Vec<_>>()
                .join(" or "),
        )
    }

    /// Whether most of a busy log is of interest: every event, or the `delivery-` streams of
    /// engagements. Such a page is read whole; leaving its few other rows in the database
    /// costs more than it saves (`page_sql`).
    fn dense(self) -> bool {
        match self {
            Interest::All => true,
            Interest::StreamsPrefixed(prefixes) | Interest::EnvelopesPrefixed(prefixes) => {
                prefixes.contains(&"delivery-")
            }
        }
    }

    /// The select list: payloads are `null` outside the interest.
    fn columns(self, backend: Backend) -> String {
        let Some(inside) = self.inside() else {
            return columns(backend).to_string();
        };
        let (data, metadata) = match backend {
            Backend::Postgres => ("data::text", "metadata::text"),
            Backend::Sqlite => ("data", "metadata"),
        };
        let tx_id = match backend {
            Backend::Postgres => "transaction_id::text::bigint",
            Backend::Sqlite => "0",
        };
        if matches!(self, Interest::EnvelopesPrefixed(_)) {
            // `data` says whether the row is of interest; `decode_envelope` never parses it.
            return format!(
                "position, {tx_id} as tx_id, event_id, org_id, stream_id, revision, event_type, event_version, created, \
                 case when {inside} then 'null' end as data, '' as metadata"
            );
        }
        format!(
            "position, {tx_id} as tx_id, event_id, org_id, stream_id, revision, event_type, event_version, created, \
             case when {inside} then {data} end as data, case when {inside} then {metadata} end as metadata"
        )
    }

    /// One page of the log: the events `filter` admits, in `order` (a column list), at most
    /// `limit` (a parameter). For a sparse interest (not [`Interest::dense`]) only the rows of
    /// interest and the page's last row come back, with the page's size in `page_rows`: the
    /// follower's checkpoint moves past the rest, but they neither cross the wire nor get
    /// decoded. Four followers read every page of a log that is mostly opens; their rows were
    /// a fifth of the database's time under an open burst, and their decoding a share of the
    /// server's.
    fn page_sql(self, backend: Backend, filter: &str, order: &[&str], limit: &str) -> String {
        let columns = self.columns(backend);
        let ascending = order.join(", ");
        let inside = match self.inside() {
            Some(inside) if !self.dense() => inside,
            _ => {
                return format!(
                    "select {columns} from events where {filter} order by {ascending} limit {limit}"
                )
            }
        };
        let descending = order
            .iter()
            .map(|column| format!("{column} desc"))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "with page as (select {ascending}, stream_id from events where {filter} \
               order by {ascending} limit {limit}) \
             select {columns}, (select count(*) from page) as page_rows from events \
             where position in (select position from page where {inside} \
               union all select position from (select position from page order by {descending} limit 1) page_end) \
             order by {ascending}"
        )
    }
}

/// A page of the log as a follower reads it.
#[derive(Debug, Default)]
pub struct Page {
    /// The events of the follower's interest, in order.
    pub events: Vec<LoggedEvent>,
    /// Rows read, decoded or not: fewer than the limit means the follower is caught up.
    pub rows: usize,
    /// Where the page ends, past events outside the interest too.
    pub last: Option<Checkpoint>,
}

impl Page {
    fn decode(rows: &[sqlx::any::AnyRow], interest: Interest) -> Result<Page, sqlx::Error> {
        // Rows outside a sparse interest were left in the database (`Interest::page_sql`).
        let read = match rows.first() {
            Some(row) if !interest.dense() => row.try_get::<i64, _>("page_rows")?.max(0) as usize,
            _ => rows.len(),
        };
        let mut page = Page {
            rows: read,
            ..Page::default()
        };
        let envelopes = matches!(interest, Interest::EnvelopesPrefixed(_));
        for row in rows {
            page.last = Some(Checkpoint {
                tx_id: row.try_get("tx_id")?,
                position: row.try_get("position")?,
            });
            if row.try_get::<Option<String>, _>("data")?.is_some() {
                page.events.push(if envelopes {
                    decode_envelope(row)?
                } else {
                    decode(row)?
                });
            }
        }
        Ok(page)
    }
}

/// An event without its payload: `data` null, metadata empty but for the org.
fn decode_envelope(row: &sqlx::any::AnyRow) -> Result<LoggedEvent, sqlx::Error> {
    let position: i64 = row.try_get("position")?;
    let org_id: String = row.try_get("org_id")?;
    let record = EventRecord {
        event_id: row.try_get("event_id")?,
        stream_id: row.try_get("stream_id")?,
        revision: row.try_get("revision")?,
        position,
        event_type: row.try_get("event_type")?,
        event_version: row.try_get("event_version")?,
        created: row.try_get("created")?,
        data: Value::Null,
        metadata: Metadata {
            org_id: org_id.clone(),
            ..Metadata::default()
        },
    };
    Ok(LoggedEvent {
        org_id,
        checkpoint: Checkpoint {
            tx_id: row.try_get("tx_id")?,
            position,
        },
        record,
    })
}

pub(crate) fn decode(row: &sqlx::any::AnyRow) -> Result<LoggedEvent, sqlx::Error> {
    let data: String = row.try_get("data")?;
    let metadata: String = row.try_get("metadata")?;
    let position: i64 = row.try_get("position")?;
    let record = EventRecord {
        event_id: row.try_get("event_id")?,
        stream_id: row.try_get("stream_id")?,
        revision: row.try_get("revision")?,
        position,
        event_type: row.try_get("event_type")?,
        event_version: row.try_get("event_version")?,
        created: row.try_get("created")?,
        data: serde_json::from_str(&data).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        metadata: serde_json::from_str(&metadata).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
    };
    Ok(LoggedEvent {
        org_id: row.try_get("org_id")?,
        checkpoint: Checkpoint {
            tx_id: row.try_get("tx_id")?,
            position,
        },
        record,
    })
}

/// Reads one stream from `from_revision` on, in revision order.
pub async fn read_stream<'e, E>(
    executor: E,
    backend: Backend,
    stream_id: &str,
    from_revision: i64,
    limit: i64,
) -> Result<Vec<LoggedEvent>, sqlx::Error>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let sql = format!(
        "select {} from events where stream_id = $1 and revision >= $2 order by revision limit $3",
        columns(backend)
    );
    let rows = sqlx::query(&sql)
        .bind(stream_id)
        .bind(from_revision)
        .bind(limit)
        .fetch_all(executor)
        .await?;
    rows.iter().map(decode).collect()
}

/// Reads the next events after `after` in catch-up order, never skipping one that commits later.
pub async fn read_all(
    db: &Db,
    after: Checkpoint,
    limit: i64,
) -> Result<Vec<LoggedEvent>, sqlx::Error> {
    Ok(read_page(db, after, limit, Interest::All).await?.events)
}

/// [`read_all`] for a follower with an [`Interest`]: up to `limit` rows, decoded where they
/// are of interest.
pub async fn read_page(
    db: &Db,
    after: Checkpoint,
    limit: i64,
    interest: Interest,
) -> Result<Page, sqlx::Error> {
    read_page_below(db, after, None, limit, interest).await
}

/// [`read_page`] bounded by a settled point taken earlier ([`settled_below`]) instead of the
/// oldest transaction open now: every event it returns was settled at that point, so a rebuild
/// that reads up to it reads a prefix of the catch-up order that nothing can later join. `None`
/// bounds by the snapshot of the moment, as [`read_page`] does. SQLite ignores the bound.
pub async fn read_page_below(
    db: &Db,
    after: Checkpoint,
    below: Option<i64>,
    limit: i64,
    interest: Interest,
) -> Result<Page, sqlx::Error> {
    const CATCH_UP: &[&str] = &["transaction_id", "position"];
    let sql = match (db.backend, below) {
        (Backend::Postgres, None) => interest.page_sql(
            db.backend,
            "(transaction_id, position) > (($1::bigint)::text::xid8, $2) \
             and transaction_id < pg_snapshot_xmin(pg_current_snapshot())",
            CATCH_UP,
            "$3",
        ),
        (Backend::Postgres, Some(_)) => interest.page_sql(
            db.backend,
            "(transaction_id, position) > (($1::bigint)::text::xid8, $2) \
             and transaction_id < ($4::bigint)::text::xid8",
            CATCH_UP,
            "$3",
        ),
        (Backend::Sqlite, _) => {
            interest.page_sql(db.backend, "position > $2 and $1 = $1", &["position"], "$3")
        }
    };
    let mut query = sqlx::query(&sql)
        .bind(after.tx_id)
        .bind(after.position)
        .bind(limit);
    if let (Backend::Postgres, Some(below)) = (db.backend, below) {
        query = query.bind(below);
    }
    let rows = query.fetch_all(&db.read).await?;
    Page::decode(&rows, interest)
}

/// On PostgreSQL, the oldest transaction id still open anywhere in the cluster: every event of
/// an older transaction has committed or never will. Read it before the caller's transaction
/// writes, or its own id holds the bound back. `None` on SQLite, whose log is read in commit
/// order.
pub async fn settled_below(tx: &mut Tx, backend: Backend) -> Result<Option<i64>, sqlx::Error> {
    match backend {
        Backend::Postgres => {
            let xmin: i64 =
                sqlx::query_scalar("select pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
                    .fetch_one(&mut **tx)
                    .await?;
            Ok(Some(xmin))
        }
        Backend::Sqlite => Ok(None),
    }
}

/// The committed events after position `after`, in position order, for a follower with an
/// [`Interest`]. Not gap-safe (see [`read_org`]); the scheduler's fast path.
pub async fn read_positions(
    db: &Db,
    after: i64,
    limit: i64,
    interest: Interest,
) -> Result<Page, sqlx::Error> {
    let sql = interest.page_sql(db.backend, "position > $1", &["position"], "$2");
    let rows = sqlx::query(&sql)
        .bind(after)
        .bind(limit)
        .fetch_all(&db.read)
        .await?;
    Page::decode(&rows, interest)
}

/// Reads an org's log (every org's when `None`) in position order after `after`, optionally of
/// one event type.
///
/// This is the audit view: it shows every committed event at once (read-your-writes). Positions
/// are taken at insert, so under concurrent writes an event can commit after one with a higher
/// position; a consumer that must never miss one reads with [`read_all`] and its checkpoint.
pub async fn read_org(
    db: &Db,
    org_id: Option<&str>,
    after: i64,
    event_type: Option<&str>,
    limit: i64,
) -> Result<Vec<LoggedEvent>, sqlx::Error> {
    read_org_as(db, org_id, after, event_type, limit, true).await
}

/// The event types only admins read: a connection's events carry its settings and profiles
/// (vendor hosts, sender names, account ids), though never its credentials.
pub const ADMIN_ONLY_EVENT_TYPES: [&str; 3] = [
    "ConnectionCreated",
    "ConnectionUpdated",
    "ConnectionDeleted",
];

/// [`read_org`], leaving out [`ADMIN_ONLY_EVENT_TYPES`] unless `admin`.
pub async fn read_org_as(
    db: &Db,
    org_id: Option<&str>,
    after: i64,
    event_type: Option<&str>,
    limit: i64,
    admin: bool,
) -> Result<Vec<LoggedEvent>, sqlx::Error> {
    let settled = settled_head(db).await?;
    if settled <= after {
        return Ok(Vec::new());
    }
    let sql = format!(
        "select {} from events where ($1 = '' or org_id = $1) and position > $2 and position <= $5
           and ($3 = '' or event_type = $3)
           and ($6 = 1 or event_type not in ($7, $8, $9))
         order by position limit $4",
        columns(db.backend)
    );
    let [created, updated, deleted] = ADMIN_ONLY_EVENT_TYPES;
    let rows = sqlx::query(&sql)
        .bind(org_id.unwrap_or(""))
        .bind(after)
        .bind(event_type.unwrap_or(""))
        .bind(limit)
        .bind(settled)
        .bind(i64::from(admin))
        .bind(created)
        .bind(updated)
        .bind(deleted)
        .fetch_all(&db.read)
        .await?;
    rows.iter().map(decode).collect()
}

/// Longest a position reader waits for the log's writers to finish (`settled_head`).
const SETTLE_WAIT: Duration = Duration::from_secs(10);

/// A position up to which the log is settled: every event at or before it that will ever
/// commit is visible now, so a reader following positions (`/events?after=`, `herald export`)
/// never passes over one that commits late.
///
/// On PostgreSQL positions are taken when a transaction inserts and become visible when it
/// commits, so a lower position can appear after a higher one. A transaction holding an
/// unseen position at or below the newest visible one took it before that newer one was
/// committed, and holds the `RowExclusiveLock` on `events` that inserting takes (before the
/// position) until it ends; the reader waits for the transactions holding that lock now, then
/// everything up to the head it saw is settled. They are the log's writers, short
/// transactions; after `SETTLE_WAIT` the reader goes on (and logs it). SQLite has one writer at
/// a time, so positions become visible in order.
pub async fn settled_head(db: &Db) -> Result<i64, sqlx::Error> {
    let head = head_position(db).await?;
    if db.backend == Backend::Sqlite {
        return Ok(head);
    }
    const WRITERS: &str = "select virtualtransaction from pg_locks
         where locktype = 'relation' and relation = 'events'::regclass
           and mode = 'RowExclusiveLock' and granted";
    let writers: Vec<String> = sqlx::query_scalar(WRITERS).fetch_all(&db.read).await?;
    if writers.is_empty() {
        return Ok(head);
    }
    let waiting_for = writers.join(",");
    let deadline = tokio::time::Instant::now() + SETTLE_WAIT;
    let still = format!("select count(*) from ({WRITERS}) w where virtualtransaction = any(string_to_array($1, ','))");
    loop {
        let left: i64 = sqlx::query_scalar(&still)
            .bind(&waiting_for)
            .fetch_one(&db.read)
            .await?;
        if left == 0 {
            return Ok(head);
        }
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(
                writers = left,
                "log writers still open after {SETTLE_WAIT:?}; reading up to position {head} anyway"
            );
            return Ok(head);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The position of the newest event in the log (0 when empty).
pub async fn head_position(db: &Db) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("select coalesce(max(position), 0) from events")
        .fetch_one(&db.read)
        .await
}

/// How many events at or before `position` the gap-safe reader ([`read_page`]) cannot read yet:
/// on PostgreSQL those whose transaction is not older than the oldest one still open anywhere
/// in the cluster (committed or not). Always 0 on SQLite, whose log is read in commit order.
pub async fn unsettled_up_to(db: &Db, position: i64) -> Result<i64, sqlx::Error> {
    match db.backend {
        Backend::Postgres => {
            sqlx::query_scalar(
                "select count(*) from events
                 where transaction_id >= pg_snapshot_xmin(pg_current_snapshot()) and position <= $1",
            )
            .bind(position)
            .fetch_one(&db.read)
            .await
        }
        Backend::Sqlite => Ok(0),
    }
}

/// How many committed events a reader at `at` has yet to read (counted up to 1 000 000).
pub async fn lag(db: &Db, at: Checkpoint) -> Result<i64, sqlx::Error> {
    let sql = match db.backend {
        Backend::Postgres => {
            "select count(*) from (select 1 from events
             where (transaction_id, position) > (($1::bigint)::text::xid8, $2) limit 1000000) behind"
        }
        Backend::Sqlite => {
            "select count(*) from (select 1 from events where position > $2 and $1 = $1 limit 1000000) behind"
        }
    };
    sqlx::query_scalar(sql)
        .bind(at.tx_id)
        .bind(at.position)
        .fetch_one(&db.read)
        .await
}

/// Appends events to many streams in one statement: `(stream, revision, event)` each. Used by
/// bulk imports; a taken revision fails the whole batch with `Conflict`.
pub async fn append_batch(
    tx: &mut Tx,
    backend: Backend,
    events: &[(String, i64, NewEvent)],
    metadata: &Metadata,
    now: DateTime<Utc>,
) -> Result<(), AppendError> {
    let shared = Shared::new(metadata, now);
    for chunk in events.chunks(1000) {
        let (sql, _) = append_values_sql(chunk.len(), 0, json_cast(backend));
        let mut query = sqlx::query(&sql);
        for (stream, revision, event) in chunk {
            let event_id = uuid::Uuid::now_v7().to_string();
            query = bind_event(query, &shared, event_id, stream, *revision, event);
        }
        query.execute(&mut **tx).await.map_err(conflict_or_db)?;
    }
    Ok(())
}

/// The next revision of each of `streams` (0 for a new stream), read inside `tx`. Writers that
/// append without reading the stream's state (engagements, a run's sends) take revisions from
/// here; a racing writer makes the append fail with [`AppendError::Conflict`] and retry.
pub async fn next_revisions(
    tx: &mut Tx,
    streams: &[&str],
) -> Result<std::collections::HashMap<String, i64>, sqlx::Error> {
    let mut next = std::collections::HashMap::with_capacity(streams.len());
    for chunk in streams.chunks(500) {
        // One index probe per stream (a correlated `max` reads the head of the stream's index
        // range); an `in (…) group by` was planned as a scan of the whole log once streams grew.
        let sql = format!(
            "select v.column1 as stream_id, (select max(e.revision) from events e where e.stream_id = v.column1) as revision \
             from (values {}) v",
            param_rows("", 1, 1, chunk.len())
        );
        let mut query = sqlx::query(&sql);
        for stream in chunk {
            query = query.bind(*stream);
        }
        for row in query.fetch_all(&mut **tx).await? {
            if let Some(revision) = row.try_get::<Option<i64>, _>("revision")? {
                next.insert(row.try_get("stream_id")?, revision + 1);
            }
        }
    }
    for stream in streams {
        next.entry(stream.to_string()).or_insert(0);
    }
    Ok(next)
}

/// An event for [`append_each`]: its stream, revision and own metadata.
pub struct Appending<'a> {
    pub stream_id: &'a str,
    pub revision: i64,
    pub event: &'a NewEvent,
    pub metadata: &'a Metadata,
}

/// Appends events from many requests in one transaction (group commit), each with its own
/// metadata. Returns their positions, in order. A taken revision fails the whole batch with
/// [`AppendError::Conflict`].
pub async fn append_each(
    tx: &mut Tx,
    backend: Backend,
    events: &[Appending<'_>],
    now: DateTime<Utc>,
) -> Result<Vec<i64>, AppendError> {
    let mut positions = Vec::with_capacity(events.len());
    for chunk in events.chunks(500) {
        let (insert, _) = append_values_sql(chunk.len(), 0, json_cast(backend));
        let sql = format!("{insert} returning position");
        let mut query = sqlx::query(&sql);
        for item in chunk {
            let shared = Shared::new(item.metadata, now);
            let event_id = uuid::Uuid::now_v7().to_string();
            query = bind_event(
                query,
                &shared,
                event_id,
                item.stream_id,
                item.revision,
                item.event,
            );
        }
        let rows = query.fetch_all(&mut **tx).await.map_err(conflict_or_db)?;
        // `insert ... returning` gives rows in insert order on both databases.
        for row in rows {
            positions.push(row.try_get("position")?);
        }
    }
    Ok(positions)
}

/// A JSON parameter `$n` as the `data` column takes it.
fn json_param(backend: Backend, n: usize) -> String {
    match backend {
        Backend::Postgres => format!("cast(${n} as jsonb)"),
        Backend::Sqlite => format!("${n}"),
    }
}

/// The positions and data of one stream's events, in revision order.
pub async fn stream_data(tx: &mut Tx, stream_id: &str) -> Result<Vec<(i64, Value)>, sqlx::Error> {
    let rows = sqlx::query(
        "select position, cast(data as text) as data from events where stream_id = $1 order by revision",
    )
    .bind(stream_id)
    .fetch_all(&mut **tx)
    .await?;
    rows.iter().map(position_and_data).collect()
}

/// The positions and data of the org's `EngagementRecorded` events of one contact, found
/// through the `events_engagement_contact` index.
pub async fn engagement_data(
    tx: &mut Tx,
    backend: Backend,
    org_id: &str,
    contact_id: &str,
) -> Result<Vec<(i64, Value)>, sqlx::Error> {
    // The index's own expression, so the planner can use it.
    let contact = match backend {
        Backend::Postgres => "data->>'contactId'",
        Backend::Sqlite => "json_extract(data, '$.contactId')",
    };
    let rows = sqlx::query(&format!(
        "select position, cast(data as text) as data from events
         where org_id = $1 and event_type = 'EngagementRecorded' and {contact} = $2"
    ))
    .bind(org_id)
    .bind(contact_id)
    .fetch_all(&mut **tx)
    .await?;
    rows.iter().map(position_and_data).collect()
}

/// The positions and data of one campaign's enrollment events (`ContactsEnrolled`,
/// `EnrollmentsExited`) that list `contact_id`, found through the
/// `events_enrollment_campaign` index; the contact is picked out of the campaign's batches by
/// the database.
pub async fn enrollment_data(
    tx: &mut Tx,
    backend: Backend,
    org_id: &str,
    campaign_id: &str,
    contact_id: &str,
) -> Result<Vec<(i64, Value)>, sqlx::Error> {
    // The index's own expression and predicate, so the planner can use it.
    let (campaign, lists_contact) = match backend {
        Backend::Postgres => (
            "data->>'campaignId'",
            "data->'contacts' @> jsonb_build_array(jsonb_build_object('contactId', cast($3 as text)))",
        ),
        Backend::Sqlite => (
            "json_extract(data, '$.campaignId')",
            "exists (select 1 from json_each(events.data, '$.contacts') as c
                     where json_extract(c.value, '$.contactId') = $3)",
        ),
    };
    let rows = sqlx::query(&format!(
        "select position, cast(data as text) as data from events
         where org_id = $1 and event_type in ('ContactsEnrolled', 'EnrollmentsExited')
           and {campaign} = $2 and {lists_contact}"
    ))
    .bind(org_id)
    .bind(campaign_id)
    .bind(contact_id)
    .fetch_all(&mut **tx)
    .await?;
    rows.iter().map(position_and_data).collect()
}

fn position_and_data(row: &AnyRow) -> Result<(i64, Value), sqlx::Error> {
    let data: String = row.try_get("data")?;
    let data = serde_json::from_str(&data).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
    Ok((row.try_get("position")?, data))
}

/// Rewrites the data of the events at the given positions, which keep their place, id, type
/// and stream; 400 events a statement. Only erasure does this (ADR 15); every other writer
/// appends.
pub async fn replace_data(
    tx: &mut Tx,
    backend: Backend,
    events: &[(i64, Value)],
) -> Result<(), sqlx::Error> {
    let data = match backend {
        Backend::Postgres => "cast(v.data as jsonb)",
        Backend::Sqlite => "v.data",
    };
    for chunk in events.chunks(400) {
        let sql = format!(
            "with v (position, data) as (values {}) update events set data = {data} from v where events.position = v.position",
            param_rows("", 1, 2, chunk.len())
        );
        let mut query = sqlx::query(&sql);
        for (position, value) in chunk {
            query = query.bind(*position).bind(value.to_string());
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Moves the event at `position` to `revision` of `stream_id` with new data, keeping its place,
/// id and type: erasure renames a suppression stream named after an address (ADR 15).
pub async fn move_event(
    tx: &mut Tx,
    backend: Backend,
    position: i64,
    stream_id: &str,
    revision: i64,
    data: &Value,
) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "update events set stream_id = $1, revision = $2, data = {} where position = $4",
        json_param(backend, 3)
    ))
    .bind(stream_id)
    .bind(revision)
    .bind(data.to_string())
    .bind(position)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Appends one event at the head of `stream_id`, whatever its revision: for writers that need
/// no expected-revision check (a run's sender, the purge and erasure jobs' tombstones).
///
/// On PostgreSQL the writers of one stream take turns: a transaction-scoped advisory lock on
/// the stream is held from the read of the head to the commit, so two jobs of one org (two
/// erasures, a purge and an erasure) append one after the other instead of one failing on the
/// revision both read (SQLite's single writer already serializes them). The second writer
/// waits where its insert would have waited anyway, on the first's uncommitted row of the
/// same `(stream, revision)`, so no transaction waits at a new point.
pub async fn append_at_head(
    tx: &mut Tx,
    backend: Backend,
    stream_id: &str,
    event: &NewEvent,
    metadata: &Metadata,
    now: DateTime<Utc>,
) -> Result<i64, AppendError> {
    if backend == Backend::Postgres {
        sqlx::query("select pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(format!("stream-head {stream_id}"))
            .execute(&mut **tx)
            .await?;
    }
    let revision = next_revisions(tx, &[stream_id]).await?[stream_id];
    let appending = [Appending {
        stream_id,
        revision,
        event,
        metadata,
    }];
    Ok(append_each(tx, backend, &appending, now).await?[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_lists_are_numbered_in_order() {
        assert_eq!(params(3, 3), "$3,$4,$5");
        assert_eq!(param_rows("", 2, 1, 2), "($2),($3)");
        assert_eq!(param_rows("", 1, 2, 2), "($1,$2),($3,$4)");
        assert_eq!(param_rows("$1,", 2, 2, 2), "($1,$2,$3),($1,$4,$5)");
        assert_eq!(param_rows("", 1, 3, 0), "");
    }
}
