//! Frequency caps at send time (`api.md` section 12, `docs/consent.md`): owns the
//! `frequency_counts` table, how many marketing sends each contact had in one local day or ISO
//! week per cap channel (`email`, `sms` or `*`).
//!
//! A page of sends is capped in the transaction that writes its ledger rows, in two steps:
//! [`take`] locks the counters of every cap in force for the page's contacts (one upsert per
//! chunk, keys in sorted order, so two pages that share contacts lock them in the same order
//! and cannot deadlock; on SQLite the transaction already holds the write lock) and decides who
//! is over a cap; once the ledger says which rows are new, [`Caps::commit`] adds the sends that
//! went out. Only the counters of caps in force are kept: a cap added mid-day counts from then.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};
use herald_domain::schedule::parse_timezone;
use herald_domain::settings::OrgSettings;
use herald_domain::settings::Tz;
use herald_domain::spec::Channel;
use sqlx::Row;

use crate::db::{Db, Tx};
use crate::store::{self, format_time};

/// Counter rows locked or written per statement.
const KEYS_PER_STATEMENT: usize = 400;

/// One counter: a contact's sends on a cap channel in one local period.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Key {
    contact_id: String,
    channel: String,
    period: String,
}

/// A send to weigh against the caps: its contact and the zone its periods are read in.
pub struct Candidate<'a> {
    pub contact_id: &'a str,
    /// The contact's own `timezone` as stored; may be invalid.
    pub timezone: Option<&'a str>,
}

/// The decision for one page: who is over a cap, and the counters to move for the others.
#[derive(Debug, Default)]
pub struct Caps {
    /// Contacts not to send to: one of their caps is full.
    pub capped: HashSet<String>,
    /// The counters each allowed contact takes.
    allowed: HashMap<String, Vec<Key>>,
}

/// Locks the counters of the caps in force on `channel` for `candidates` and decides, in
/// their order, who still fits under every cap. Nothing is counted yet ([`Caps::commit`]).
/// `campaign_zone` is the campaign's `schedule.timezone`, the fallback of a contact without a
/// valid zone before the org's default.
pub async fn take(
    tx: &mut Tx,
    org_id: &str,
    settings: &OrgSettings,
    channel: Channel,
    campaign_zone: Option<&str>,
    candidates: &[Candidate<'_>],
    now: DateTime<Utc>,
) -> Result<Caps, sqlx::Error> {
    let caps = settings.caps_for(channel.id());
    let mut out = Caps::default();
    if caps.is_empty() || candidates.is_empty() {
        return Ok(out);
    }
    let default_zone = settings.default_zone();
    let mut wanted: Vec<(&str, Vec<(Key, u32)>)> = Vec::with_capacity(candidates.len());
    let mut keys: BTreeSet<Key> = BTreeSet::new();
    for candidate in candidates {
        let tz = local_zone(candidate.timezone, campaign_zone, default_zone);
        let mine: Vec<(Key, u32)> = caps
            .iter()
            .map(|(cap_channel, per, max)| {
                let key = Key {
                    contact_id: candidate.contact_id.to_string(),
                    channel: cap_channel.to_string(),
                    period: per.period(now, tz),
                };
                keys.insert(key.clone());
                (key, *max)
            })
            .collect();
        wanted.push((candidate.contact_id, mine));
    }
    let mut counts = lock(tx, org_id, &keys, now).await?;
    for (contact_id, mine) in wanted {
        let fits = mine
            .iter()
            .all(|(key, max)| counts.get(key).copied().unwrap_or(0) < i64::from(*max));
        if fits {
            for (key, _) in &mine {
                *counts.entry(key.clone()).or_default() += 1;
            }
            out.allowed.insert(
                contact_id.to_string(),
                mine.into_iter().map(|(k, _)| k).collect(),
            );
        } else {
            out.capped.insert(contact_id.to_string());
        }
    }
    Ok(out)
}

/// A contact's zone: its own when valid, else the campaign's, else the org's default.
pub fn local_zone(contact: Option<&str>, campaign: Option<&str>, default: Tz) -> Tz {
    contact
        .and_then(parse_timezone)
        .or_else(|| campaign.and_then(parse_timezone))
        .unwrap_or(default)
}

/// Creates or locks each counter row, in key order, and returns their counts.
async fn lock(
    tx: &mut Tx,
    org_id: &str,
    keys: &BTreeSet<Key>,
    now: DateTime<Utc>,
) -> Result<BTreeMap<Key, i64>, sqlx::Error> {
    let now = format_time(now);
    let keys: Vec<&Key> = keys.iter().collect();
    let mut counts = BTreeMap::new();
    for chunk in keys.chunks(KEYS_PER_STATEMENT) {
        // `do update` (not `do nothing`) so an existing row is locked too, in this statement's
        // row order.
        let sql = format!(
            "insert into frequency_counts (org_id, updated_at, contact_id, channel, period, n) values {}
             on conflict (org_id, contact_id, channel, period) do update set n = frequency_counts.n
             returning contact_id, channel, period, n",
            (0..chunk.len())
                .map(|i| format!("($1, $2, {}, 0)", store::params(3 + i * 3, 3)))
                .collect::<Vec<_>>()
                .join(",")
        );
        let mut query = sqlx::query(&sql).bind(org_id).bind(&now);
        for key in chunk {
            query = query
                .bind(&key.contact_id)
                .bind(&key.channel)
                .bind(&key.period);
        }
        for row in query.fetch_all(&mut **tx).await? {
            let key = Key {
                contact_id: row.try_get("contact_id")?,
                channel: row.try_get("channel")?,
                period: row.try_get("period")?,
            };
            counts.insert(key, row.try_get::<i64, _>("n")?);
        }
    }
    Ok(counts)
}

impl Caps {
    /// Whether the caps hold this contact back.
    pub fn is_capped(&self, contact_id: &str) -> bool {
        self.capped.contains(contact_id)
    }

    /// Counts the sends that went out (`sent` says which allowed contacts the ledger took), on
    /// the rows [`take`] locked.
    pub async fn commit(
        &self,
        tx: &mut Tx,
        org_id: &str,
        sent: impl Fn(&str) -> bool,
        now: DateTime<Utc>,
    ) -> Result<(), sqlx::Error> {
        let mut add: BTreeMap<&Key, i64> = BTreeMap::new();
        for (contact_id, keys) in &self.allowed {
            if sent(contact_id) {
                for key in keys {
                    *add.entry(key).or_default() += 1;
                }
            }
        }
        let now = format_time(now);
        let rows: Vec<(&&Key, &i64)> = add.iter().collect();
        for chunk in rows.chunks(KEYS_PER_STATEMENT) {
            let sql = format!(
                "insert into frequency_counts (org_id, updated_at, contact_id, channel, period, n) values {}
                 on conflict (org_id, contact_id, channel, period)
                 do update set n = frequency_counts.n + excluded.n, updated_at = excluded.updated_at",
                store::param_rows("$1, $2, ", 3, 4, chunk.len())
            );
            let mut query = sqlx::query(&sql).bind(org_id).bind(&now);
            for (key, n) in chunk {
                query = query
                    .bind(&key.contact_id)
                    .bind(&key.channel)
                    .bind(&key.period)
                    .bind(**n);
            }
            query.execute(&mut **tx).await?;
        }
        Ok(())
    }
}

/// Days a counter row is kept after the last send it counted: a week period ends at most seven
/// days after any send in it, so a row untouched this long belongs to a period long past, which
/// no send will look up again.
const KEEP_COUNTS_DAYS: i64 = 14;

/// Rows one pruning statement deletes, so a sweep never holds locks on a large table for long.
pub const PRUNE_BATCH: i64 = 1000;

/// Deletes the counters of periods long past, a batch at a time (the scheduler's reconcile pass
/// calls it every minute). Returns how many rows went.
pub async fn prune(db: &Db, now: DateTime<Utc>) -> Result<u64, sqlx::Error> {
    let before = format_time(now - chrono::Duration::days(KEEP_COUNTS_DAYS));
    let mut removed = 0;
    loop {
        let done = sqlx::query(
            "delete from frequency_counts where (org_id, contact_id, channel, period) in
               (select org_id, contact_id, channel, period from frequency_counts
                where updated_at < $1 limit $2)",
        )
        .bind(&before)
        .bind(PRUNE_BATCH)
        .execute(&db.write)
        .await?
        .rows_affected();
        removed += done;
        if done < PRUNE_BATCH as u64 {
            return Ok(removed);
        }
        tokio::task::yield_now().await;
    }
}
