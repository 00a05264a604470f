//! (a) 32 concurrent writers on distinct and shared streams, with random rollbacks and one
//! transaction held open for seconds: a catch-up reader sees every committed event exactly once,
//! in order, none skipped; and so does a reader following positions (`/events?after=`).
//!
//! The readers stop once they have seen as many events as were committed (or at a deadline, and
//! the assertions then say what they missed), never after a spell of empty polls: on a loaded
//! server a transaction of another database can hold the readers back for longer.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use herald::db::Db;
use herald::store::{self, AppendError, Checkpoint, NewEvent};
use herald_projections::record::Metadata;
use serde_json::json;
use tokio::sync::Mutex;

use crate::helpers::{fresh_database, Backend};

const WRITERS: usize = 32;
const APPENDS_PER_WRITER: usize = 25;

pub(crate) fn metadata() -> Metadata {
    Metadata {
        actor: "conformance".into(),
        org_id: "acme".into(),
        request_id: "r".into(),
        correlation_id: "c".into(),
        causation_id: "c".into(),
    }
}

/// Tiny deterministic generator, so a failure can be replayed.
fn next(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

async fn append_once(db: &Db, stream: &str, seed: &mut u64, committed: &Mutex<Vec<String>>) {
    loop {
        let mut tx = db.begin().await.expect("begin");
        let revision: i64 = sqlx::query_scalar(
            "select coalesce(max(revision) + 1, 0) from events where stream_id = $1",
        )
        .bind(stream)
        .fetch_one(&mut *tx)
        .await
        .expect("revision");
        let events = vec![NewEvent {
            event_type: "Probed".into(),
            event_version: "1".into(),
            data: json!({ "n": next(seed) % 1000 }),
        }];
        match store::append(
            &mut tx,
            db.backend,
            stream,
            revision,
            &events,
            &metadata(),
            chrono::Utc::now(),
        )
        .await
        {
            Ok(stored) => {
                if next(seed) % 5 == 0 {
                    tx.rollback().await.expect("rollback");
                } else {
                    tx.commit().await.expect("commit");
                    committed
                        .lock()
                        .await
                        .push(stored[0].record.event_id.clone());
                }
                return;
            }
            Err(AppendError::Conflict) => {
                tx.rollback().await.ok();
                tokio::task::yield_now().await;
            }
            Err(AppendError::Db(e)) => panic!("append failed: {e}"),
        }
    }
}

async fn catch_up_reader_sees_every_committed_event_once_in_order(backend: Backend) {
    let (url, _dir) = fresh_database(backend).await;
    let db = Db::connect(&url, 40).await.expect("connect");
    db.migrate().await.expect("migrate");
    let committed = Arc::new(Mutex::new(Vec::new()));
    // How many events were committed, once every writer is done.
    let total = Arc::new(AtomicUsize::new(usize::MAX));

    // The reader runs while the writers write.
    let reader = {
        let db = db.clone();
        let total = total.clone();
        tokio::spawn(async move {
            let mut at = Checkpoint::default();
            let mut seen = Vec::new();
            let mut stop = Stop::default();
            loop {
                let batch = store::read_all(&db, at, 200).await.expect("read");
                for event in &batch {
                    assert!(event.checkpoint > at, "catch-up order went backwards");
                    at = event.checkpoint;
                    seen.push(event.record.event_id.clone());
                }
                if batch.is_empty() {
                    if stop.now(&total, seen.len()) {
                        return seen;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        })
    };

    // A reader following positions, as `/events?after=` and `herald export` do.
    let by_position = {
        let db = db.clone();
        let total = total.clone();
        tokio::spawn(async move {
            let mut after = 0;
            let mut seen = Vec::new();
            let mut stop = Stop::default();
            loop {
                let page = store::read_org(&db, None, after, None, 200)
                    .await
                    .expect("read by position");
                for event in &page {
                    assert!(
                        event.record.position > after,
                        "position order went backwards"
                    );
                    after = event.record.position;
                    seen.push(event.record.event_id.clone());
                }
                if page.is_empty() {
                    if stop.now(&total, seen.len()) {
                        return seen;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        })
    };

    // A follower with a sparse interest (the scheduler's, the enroller's): only its streams'
    // events come back, and its checkpoint passes every committed row, each counted once.
    let sparse = {
        let db = db.clone();
        let total = total.clone();
        tokio::spawn(async move {
            let interest = store::Interest::StreamsPrefixed(&["probe-own-"]);
            let mut at = Checkpoint::default();
            let mut seen = Vec::new();
            let mut rows = 0;
            let mut stop = Stop::default();
            loop {
                let page = store::read_page(&db, at, 200, interest)
                    .await
                    .expect("sparse read");
                for event in &page.events {
                    assert!(event.checkpoint > at, "sparse order went backwards");
                    assert!(event.record.stream_id.starts_with("probe-own-"));
                    at = event.checkpoint;
                    seen.push(event.record.event_id.clone());
                }
                if let Some(last) = page.last {
                    assert!(last >= at, "the page ended before its last event");
                    at = last;
                }
                rows += page.rows;
                if page.rows == 0 {
                    if stop.now(&total, rows) {
                        return (seen, rows);
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        })
    };

    // One transaction holds a low position open for seconds, then commits.
    let slow = {
        let db = db.clone();
        let committed = committed.clone();
        tokio::spawn(async move {
            let mut tx = db.begin().await.expect("begin");
            let events = vec![NewEvent {
                event_type: "Slow".into(),
                event_version: "1".into(),
                data: json!({}),
            }];
            let stored = store::append(
                &mut tx,
                db.backend,
                "probe-slow",
                0,
                &events,
                &metadata(),
                chrono::Utc::now(),
            )
            .await
            .expect("append");
            tokio::time::sleep(Duration::from_secs(3)).await;
            tx.commit().await.expect("commit");
            committed
                .lock()
                .await
                .push(stored[0].record.event_id.clone());
            stored[0].record.clone()
        })
    };
    // On SQLite the slow writer holds the only write lock; let it start first either way.
    tokio::time::sleep(Duration::from_millis(100)).await;

    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let db = db.clone();
        let committed = committed.clone();
        writers.push(tokio::spawn(async move {
            let mut seed = 0x9E37_79B9_7F4A_7C15u64 ^ (w as u64 + 1);
            for i in 0..APPENDS_PER_WRITER {
                let stream = if i % 2 == 0 {
                    format!("probe-own-{w}")
                } else {
                    format!("probe-shared-{}", next(&mut seed) % 4)
                };
                append_once(&db, &stream, &mut seed, &committed).await;
            }
        }));
    }
    for writer in writers {
        writer.await.expect("writer");
    }
    let slow = slow.await.expect("slow writer");
    total.store(committed.lock().await.len(), Ordering::SeqCst);
    let seen = reader.await.expect("reader");
    let seen_by_position = by_position.await.expect("position reader");
    let (seen_sparse, sparse_rows) = sparse.await.expect("sparse reader");

    let committed = committed.lock().await.clone();
    let committed_set: HashSet<&String> = committed.iter().collect();
    let by_position_set: HashSet<&String> = seen_by_position.iter().collect();
    assert_eq!(
        by_position_set.len(),
        seen_by_position.len(),
        "the position reader read an event twice"
    );
    assert_eq!(
        committed_set.difference(&by_position_set).count(),
        0,
        "the position reader passed over committed events"
    );
    assert_eq!(by_position_set.difference(&committed_set).count(), 0);
    let seen_set: HashSet<&String> = seen.iter().collect();
    assert_eq!(seen_set.len(), seen.len(), "an event was read twice");
    let missing = committed_set.difference(&seen_set).count();
    let extra = seen_set.difference(&committed_set).count();
    assert_eq!(missing, 0, "the reader skipped {missing} committed events");
    assert_eq!(
        extra, 0,
        "the reader saw {extra} events that were rolled back"
    );
    assert!(committed.len() > WRITERS * APPENDS_PER_WRITER / 2);
    let streams: std::collections::HashMap<String, String> =
        store::read_org(&db, None, 0, None, 10_000)
            .await
            .expect("read the log")
            .into_iter()
            .map(|e| (e.record.event_id, e.record.stream_id))
            .collect();
    let own: HashSet<&String> = committed_set
        .iter()
        .copied()
        .filter(|id| streams[*id].starts_with("probe-own-"))
        .collect();
    let seen_sparse_set: HashSet<&String> = seen_sparse.iter().collect();
    assert_eq!(
        seen_sparse_set.len(),
        seen_sparse.len(),
        "a sparse read repeated an event"
    );
    assert_eq!(seen_sparse_set, own, "the sparse reader's events");
    assert_eq!(
        sparse_rows,
        committed.len(),
        "the sparse reader's pages counted every committed row once"
    );
    if backend == Backend::Postgres {
        // The case the reader must survive happened: events committed while the slow
        // transaction was open took positions after the one it held.
        let positions: std::collections::HashMap<String, i64> =
            store::read_org(&db, None, 0, None, 10_000)
                .await
                .expect("read the log")
                .into_iter()
                .map(|e| (e.record.event_id, e.record.position))
                .collect();
        let slow_index = committed
            .iter()
            .position(|id| *id == slow.event_id)
            .expect("the slow event committed");
        let overtaken = committed[..slow_index]
            .iter()
            .filter(|id| positions[*id] > slow.position)
            .count();
        assert!(
            overtaken > 0,
            "no event committed before the slow transaction took a position after it"
        );
    }
}

/// When a reader stops: once it has seen every committed event, or a minute after the
/// writers are done.
#[derive(Default)]
struct Stop {
    deadline: Option<Instant>,
}

impl Stop {
    fn now(&mut self, total: &AtomicUsize, seen: usize) -> bool {
        let total = total.load(Ordering::SeqCst);
        if total == usize::MAX {
            return false;
        }
        let deadline = *self
            .deadline
            .get_or_insert_with(|| Instant::now() + Duration::from_secs(60));
        seen >= total || Instant::now() >= deadline
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn catch_up_reader_sees_every_committed_event_once_on_sqlite() {
    catch_up_reader_sees_every_committed_event_once_in_order(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn catch_up_reader_sees_every_committed_event_once_on_postgres() {
    catch_up_reader_sees_every_committed_event_once_in_order(Backend::Postgres).await;
}
