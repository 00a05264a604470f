//! In-process cache of campaign documents for `GET /crm/marketing/campaigns/:id`.
//!
//! Correctness rules: this process's own commands replace entries before they answer, so a
//! client reads its writes; every process announces its commits with batched
//! `pg_notify('herald_campaigns', ..)` (milliseconds after the commit) and the listeners of the
//! others evict those entries. While the listener is
//! not connected (PostgreSQL only), the cache is bypassed. A read that raced an eviction does
//! not fill the cache (the epoch check), so an evicted version cannot come back.
//!
//! Commands run as their own process (`herald purge`, `herald replay`) change campaigns outside
//! the server: on PostgreSQL they announce what they changed like any command
//! (`Db::tell_other_processes`); on SQLite, which has no notifications, they move the `cache_epoch`
//! counter, and a cache hit that sees it moved ([`CampaignCache::observe_outside_epoch`], called
//! by `campaigns::get_shared`) empties the cache and reads the row instead. That costs a one-row
//! read per hit on SQLite (a miss reads the campaign row anyway), and keeps reads across
//! processes exact.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

/// Entries kept before the cache is emptied and refilled.
const CAPACITY: usize = 200_000;

/// Notification channel commands write to on PostgreSQL.
pub const CHANNEL: &str = "herald_campaigns";

#[derive(Debug)]
pub struct CampaignCache {
    entries: Mutex<HashMap<(String, String), Arc<Value>>>,
    /// Changes of this process to announce to the others (PostgreSQL only).
    outbox: Mutex<Option<tokio::sync::mpsc::UnboundedSender<String>>>,
    epoch: AtomicU64,
    /// False while another process could change campaigns unseen (listener down).
    usable: AtomicBool,
    /// The last `cache_epoch` seen (SQLite); `i64::MIN` before the first look.
    outside_epoch: AtomicI64,
}

impl CampaignCache {
    /// A cache that is usable at once (single-process SQLite) or after the listener connects.
    pub fn new(usable: bool) -> CampaignCache {
        CampaignCache {
            entries: Mutex::new(HashMap::new()),
            outbox: Mutex::new(None),
            epoch: AtomicU64::new(0),
            usable: AtomicBool::new(usable),
            outside_epoch: AtomicI64::new(i64::MIN),
        }
    }

    pub fn get(&self, org_id: &str, id: &str) -> Option<Arc<Value>> {
        if !self.usable.load(Ordering::Acquire) {
            return None;
        }
        self.entries
            .lock()
            .expect("cache lock")
            .get(&(org_id.to_string(), id.to_string()))
            .cloned()
    }

    /// Records the `cache_epoch` counter of the database (SQLite); when it moved since the last
    /// look (or at the first look, since entries may predate it), another process may have
    /// changed campaigns and every entry is dropped.
    /// Returns whether it dropped them.
    pub fn observe_outside_epoch(&self, epoch: i64) -> bool {
        let before = self.outside_epoch.swap(epoch, Ordering::AcqRel);
        if before != epoch {
            self.reset(true);
        }
        before != epoch
    }

    /// Whether entries are kept: false while another process could change campaigns unseen.
    pub fn usable(&self) -> bool {
        self.usable.load(Ordering::Acquire)
    }

    /// The epoch to pass to [`fill`](Self::fill) after reading the database. It moves with
    /// every campaign change this process makes or hears of.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Caches a document read from the database, unless anything was evicted since `epoch`.
    pub fn fill(&self, org_id: &str, id: &str, doc: Arc<Value>, epoch: u64) {
        if !self.usable.load(Ordering::Acquire) {
            return;
        }
        let mut entries = self.entries.lock().expect("cache lock");
        if self.epoch.load(Ordering::Acquire) != epoch {
            return;
        }
        if entries.len() >= CAPACITY {
            entries.clear();
        }
        entries
            .entry((org_id.to_string(), id.to_string()))
            .or_insert(doc);
    }

    /// Records the document a command of this process just committed.
    pub fn put(&self, org_id: &str, id: &str, doc: Arc<Value>) {
        let mut entries = self.entries.lock().expect("cache lock");
        self.epoch.fetch_add(1, Ordering::AcqRel);
        if entries.len() >= CAPACITY {
            entries.clear();
        }
        entries.insert((org_id.to_string(), id.to_string()), doc);
    }

    /// Tells other processes (batched, a few milliseconds later) that a campaign changed.
    pub fn announce(&self, org_id: &str, id: &str) {
        if let Some(outbox) = self.outbox.lock().expect("cache lock").as_ref() {
            let _ = outbox.send(format!("{org_id}\t{id}"));
        }
    }

    pub fn evict(&self, org_id: &str, id: &str) {
        let mut entries = self.entries.lock().expect("cache lock");
        self.epoch.fetch_add(1, Ordering::AcqRel);
        entries.remove(&(org_id.to_string(), id.to_string()));
    }

    fn reset(&self, usable: bool) {
        let mut entries = self.entries.lock().expect("cache lock");
        self.epoch.fetch_add(1, Ordering::AcqRel);
        entries.clear();
        self.usable.store(usable, Ordering::Release);
    }
}

/// Sends this process's announced changes as `pg_notify` batches (ids cannot hold tabs or
/// newlines, so `org\tid` lines joined by newlines are unambiguous). Runs until the process stops.
pub async fn announce_changes(pool: sqlx::AnyPool, cache: Arc<CampaignCache>) {
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel::<String>();
    *cache.outbox.lock().expect("cache lock") = Some(sender);
    while let Some(first) = receiver.recv().await {
        let mut payload = first;
        while payload.len() < 7000 {
            match receiver.try_recv() {
                Ok(next) => {
                    payload.push('\n');
                    payload.push_str(&next);
                }
                Err(_) => break,
            }
        }
        let sent = sqlx::query("select 1 from (select pg_notify($1, $2)) notified")
            .bind(CHANNEL)
            .bind(&payload)
            .execute(&pool)
            .await;
        if let Err(error) = sent {
            tracing::warn!(%error, "could not announce campaign changes; other processes may serve stale reads");
        }
    }
}

/// Keeps the cache coherent with other processes on PostgreSQL: evicts on each notification,
/// and empties and disables the cache while disconnected. Runs until the process stops.
pub async fn listen(database_url: String, cache: Arc<CampaignCache>) {
    loop {
        match sqlx::postgres::PgListener::connect(&database_url).await {
            Ok(mut listener) => {
                if let Err(error) = listener.listen(CHANNEL).await {
                    tracing::warn!(%error, "campaign cache listener could not subscribe");
                } else {
                    cache.reset(true);
                    // `None` or an error: the connection dropped and notifications may be lost.
                    while let Ok(Some(note)) = listener.try_recv().await {
                        for line in note.payload().lines() {
                            if let Some((org, id)) = line.split_once('\t') {
                                cache.evict(org, id);
                            }
                        }
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "campaign cache listener cannot connect"),
        }
        cache.reset(false);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
