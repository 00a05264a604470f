//! Recording engagements: every open, click, unsubscribe, webhook report and API engagement
//! becomes an `EngagementRecorded` event through one [`Recorder`].
//!
//! The recorder is a group commit: callers hand their engagement to a committer task and wait;
//! the committer takes everything that queued up while the previous transaction was committing
//! (up to [`MAX_BATCH`]), appends it in one transaction and answers each caller only after the
//! commit. A burst on one campaign therefore costs one commit per batch, not one per request,
//! and no request is answered before its event is durable. Each recipient's delivery is its own
//! stream (`Engagement::stream_id`), so there is no shared revision to fight over.
//!
//! Idempotency: an engagement with a key (an `externalId`, a vendor's event id) claims it in
//! `engagement_keys` in the same transaction; a repeat, in the same batch or later, records
//! nothing and is answered [`Recorded::Duplicate`].

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use chrono::Utc;
use herald_domain::engagement::{Engagement, EVENT_TYPE};
use herald_projections::record::Metadata;
use sqlx::Row;
use tokio::sync::{mpsc, oneshot};

use crate::db::Db;
use crate::erased;
use crate::projector::Wakeup;
use crate::store::{self, format_time, AppendError, Appending, NewEvent};

/// Most engagements one transaction takes.
pub const MAX_BATCH: usize = 2000;

/// Engagements waiting for a committer before callers are made to wait for room.
const QUEUE: usize = 50_000;

/// Times a batch is retried after losing a revision race to another process.
const CONFLICT_RETRIES: u32 = 5;

/// What became of one engagement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Appended at this log position.
    Stored(i64),
    /// Its key was recorded before; nothing was written.
    Duplicate,
}

/// Why an engagement could not be recorded. The caller answers `503`: nothing was stored.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("the engagement could not be stored: {0}")]
    Db(String),
    #[error("the recorder is shutting down")]
    Closed,
}

/// One engagement to record.
#[derive(Debug, Clone)]
pub struct Pending {
    pub org_id: String,
    pub engagement: Engagement,
    pub metadata: Metadata,
    /// Idempotency key, unique per org (e.g. `api:<campaign>:<externalId>`).
    pub key: Option<String>,
}

struct Job {
    pending: Pending,
    reply: oneshot::Sender<Result<Recorded, String>>,
}

/// Handle to the group committers; cheap to clone.
#[derive(Debug, Clone)]
pub struct Recorder {
    /// One queue per committer. An engagement goes to the committer its stream hashes to, so
    /// two batches of this process never race for one stream's next revision.
    queues: std::sync::Arc<Vec<mpsc::Sender<Job>>>,
}

impl Recorder {
    /// Starts `committers` committer tasks on `db` (PostgreSQL gains from two or more, so one
    /// batch builds while another commits; SQLite has one writer and takes one).
    pub fn start(db: Db, wakeup: Wakeup, committers: usize) -> Recorder {
        let mut queues = Vec::new();
        for _ in 0..committers.max(1) {
            let (queue, mut receiver) = mpsc::channel::<Job>(QUEUE);
            queues.push(queue);
            let db = db.clone();
            let wakeup = wakeup.clone();
            tokio::spawn(async move {
                let mut heads = Heads::default();
                while let Some(first) = receiver.recv().await {
                    let mut batch = vec![first];
                    while batch.len() < MAX_BATCH {
                        match receiver.try_recv() {
                            Ok(job) => batch.push(job),
                            Err(_) => break,
                        }
                    }
                    commit(&db, &wakeup, &mut heads, batch).await;
                }
            });
        }
        Recorder {
            queues: std::sync::Arc::new(queues),
        }
    }

    /// The queue of the committer that owns `pending`'s stream.
    fn queue_for(&self, pending: &Pending) -> &mpsc::Sender<Job> {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        pending.org_id.hash(&mut hasher);
        pending.engagement.campaign_id.hash(&mut hasher);
        pending.engagement.run_id.hash(&mut hasher);
        pending.engagement.contact_id.hash(&mut hasher);
        pending.engagement.channel.id().hash(&mut hasher);
        &self.queues[(hasher.finish() % self.queues.len() as u64) as usize]
    }

    /// Records one engagement; returns once it is committed (or known to be a duplicate).
    pub async fn record(&self, pending: Pending) -> Result<Recorded, RecordError> {
        let (reply, answer) = oneshot::channel();
        self.queue_for(&pending)
            .send(Job { pending, reply })
            .await
            .map_err(|_| RecordError::Closed)?;
        match answer.await {
            Ok(Ok(recorded)) => Ok(recorded),
            Ok(Err(message)) => Err(RecordError::Db(message)),
            Err(_) => Err(RecordError::Closed),
        }
    }

    /// Records several engagements; they may land in different transactions. Answers in order.
    pub async fn record_all(&self, items: Vec<Pending>) -> Result<Vec<Recorded>, RecordError> {
        let mut answers = Vec::with_capacity(items.len());
        for pending in items {
            let (reply, answer) = oneshot::channel();
            self.queue_for(&pending)
                .send(Job { pending, reply })
                .await
                .map_err(|_| RecordError::Closed)?;
            answers.push(answer);
        }
        let mut out = Vec::with_capacity(answers.len());
        for answer in answers {
            match answer.await {
                Ok(Ok(recorded)) => out.push(recorded),
                Ok(Err(message)) => return Err(RecordError::Db(message)),
                Err(_) => return Err(RecordError::Closed),
            }
        }
        Ok(out)
    }
}

/// The next revision of the streams a committer wrote last, so that a busy stream's head is
/// not read back before every append. A guess only: another process may have appended since,
/// and then the batch fails on the unique (stream, revision) and is retried with heads read
/// from the log.
#[derive(Debug, Default)]
struct Heads {
    next: HashMap<String, i64>,
}

impl Heads {
    /// Streams remembered at most; past it the map starts over.
    const CAPACITY: usize = 200_000;

    fn forget(&mut self, streams: &[&str]) {
        for stream in streams {
            self.next.remove(*stream);
        }
    }

    fn remember(&mut self, next: HashMap<String, i64>) {
        if self.next.len() + next.len() > Self::CAPACITY {
            self.next.clear();
        }
        self.next.extend(next);
    }
}

/// Commits one batch and answers its callers.
async fn commit(db: &Db, wakeup: &Wakeup, heads: &mut Heads, batch: Vec<Job>) {
    let mut attempt = 0;
    let result = loop {
        attempt += 1;
        match write(db, heads, &batch).await {
            Err(AppendError::Conflict) if attempt <= CONFLICT_RETRIES => {
                let jitter = rand::random::<u64>() % (5 * u64::from(attempt));
                tokio::time::sleep(Duration::from_millis(1 + jitter)).await;
            }
            other => break other,
        }
    };
    match result {
        Ok(answers) => {
            if answers.iter().any(|a| matches!(a, Recorded::Stored(_))) {
                wakeup.wake_projector();
            }
            for (job, answer) in batch.into_iter().zip(answers) {
                let _ = job.reply.send(Ok(answer));
            }
        }
        Err(error) => {
            tracing::error!(%error, size = batch.len(), "engagement batch failed; nothing of it was stored");
            let message = error.to_string();
            for job in batch {
                let _ = job.reply.send(Err(message.clone()));
            }
        }
    }
}

/// Appends a batch in one transaction: claims its keys, skips duplicates, appends the rest.
async fn write(db: &Db, heads: &mut Heads, batch: &[Job]) -> Result<Vec<Recorded>, AppendError> {
    let now = Utc::now();
    let mut tx = db.begin().await?;
    let fresh = claim_keys(&mut tx, batch, &format_time(now)).await?;
    // A link or reason of an erased contact (a late click, a vendor's late bounce) is not
    // stored: one lookup per batch, and none for a batch without either (opens).
    let free_text: BTreeSet<(&str, &str)> = batch
        .iter()
        .enumerate()
        .filter(|(i, _)| fresh.contains(i))
        .map(|(_, job)| &job.pending)
        .filter(|p| p.engagement.link.is_some() || p.engagement.reason.is_some())
        .filter_map(|p| Some((p.org_id.as_str(), p.engagement.contact_id.as_deref()?)))
        .collect();
    let erased = erased::erased_among(&mut tx, &free_text).await?;
    let events: Vec<(usize, String, NewEvent)> = batch
        .iter()
        .enumerate()
        .filter(|(i, _)| fresh.contains(i))
        .map(|(i, job)| {
            let p = &job.pending;
            let mut data = serde_json::to_value(&p.engagement).expect("engagements serialize");
            if let Some(contact) = &p.engagement.contact_id {
                if erased.contains(&(p.org_id.clone(), contact.clone())) {
                    erased::blank_free_text(&mut data);
                }
            }
            let event = NewEvent {
                event_type: EVENT_TYPE.to_string(),
                event_version: "1".to_string(),
                data,
            };
            (i, p.engagement.stream_id(&p.org_id), event)
        })
        .collect();
    let streams: Vec<&str> = {
        let mut seen = HashSet::new();
        events
            .iter()
            .map(|(_, s, _)| s.as_str())
            .filter(|s| seen.insert(*s))
            .collect()
    };
    let unknown: Vec<&str> = streams
        .iter()
        .copied()
        .filter(|s| !heads.next.contains_key(*s))
        .collect();
    let read = store::next_revisions(&mut tx, &unknown).await?;
    let mut next: HashMap<String, i64> = streams
        .iter()
        .map(|s| (s.to_string(), heads.next.get(*s).copied().unwrap_or(0)))
        .collect();
    next.extend(read);
    let appending: Vec<Appending> = events
        .iter()
        .map(|(i, stream, event)| {
            let revision = next
                .get_mut(stream.as_str())
                .expect("every stream was read");
            let this = *revision;
            *revision += 1;
            Appending {
                stream_id: stream,
                revision: this,
                event,
                metadata: &batch[*i].pending.metadata,
            }
        })
        .collect();
    let written = async {
        let positions = store::append_each(&mut tx, db.backend, &appending, now).await?;
        tx.commit().await?;
        Ok::<_, AppendError>(positions)
    }
    .await;
    let positions = match written {
        Ok(positions) => positions,
        Err(error) => {
            heads.forget(&streams);
            return Err(error);
        }
    };
    heads.remember(next);
    let mut answers = vec![Recorded::Duplicate; batch.len()];
    for ((i, _, _), position) in events.iter().zip(positions) {
        answers[*i] = Recorded::Stored(position);
    }
    Ok(answers)
}

/// Inserts the batch's keys; returns the indexes of jobs to append (no key, or a key that
/// was not taken before, first holder within the batch).
async fn claim_keys(
    tx: &mut crate::db::Tx,
    batch: &[Job],
    now: &str,
) -> Result<HashSet<usize>, sqlx::Error> {
    let mut fresh = HashSet::new();
    let mut first_holder: HashMap<(&str, &str), usize> = HashMap::new();
    for (i, job) in batch.iter().enumerate() {
        match &job.pending.key {
            None => {
                fresh.insert(i);
            }
            Some(key) => {
                first_holder
                    .entry((job.pending.org_id.as_str(), key.as_str()))
                    .or_insert(i);
            }
        }
    }
    let keyed: Vec<((&str, &str), usize)> = first_holder.into_iter().collect();
    for chunk in keyed.chunks(300) {
        let sql = format!(
            "insert into engagement_keys (org_id, key, created_at) values {} on conflict do nothing returning org_id, key",
            store::param_rows("", 1, 3, chunk.len())
        );
        let mut query = sqlx::query(&sql);
        for ((org, key), _) in chunk {
            query = query.bind(*org).bind(*key).bind(now);
        }
        let claimed: HashSet<(String, String)> = query
            .fetch_all(&mut **tx)
            .await?
            .iter()
            .map(|row| Ok((row.try_get("org_id")?, row.try_get("key")?)))
            .collect::<Result<_, sqlx::Error>>()?;
        for ((org, key), i) in chunk {
            if claimed.contains(&(org.to_string(), key.to_string())) {
                fresh.insert(*i);
            }
        }
    }
    Ok(fresh)
}
