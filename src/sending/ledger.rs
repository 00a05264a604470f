//! The send ledger and what is written beside it: one row per (run, contact, channel) that
//! refuses a second send, the counters behind `herald_sends_total`, the sandbox outbox, SMS short
//! links and each channel's health figures. This module owns `send_ledger`, `send_counts`,
//! `sandbox_messages` (writes), `short_links` (writes) and `channel_stats`.

use std::collections::{HashMap, HashSet};

use herald_domain::spec::{Category, Channel};
use serde_json::{json, Value};
use sqlx::Row;

use super::message::{Prepared, RunCtx, ShortLink};
use crate::db::{Backend, Db, Tx};
use crate::store;
use crate::vendors::OutboundMessage;

/// Ledger rows written per statement.
const ROWS_PER_INSERT: usize = 500;

/// Whether the run already has rows in the ledger.
pub async fn ledger_started(db: &Db, org_id: &str, run_id: &str) -> Result<bool, sqlx::Error> {
    let row = sqlx::query("select 1 from send_ledger where org_id = $1 and run_id = $2 limit 1")
        .bind(org_id)
        .bind(run_id)
        .fetch_optional(&db.read)
        .await?;
    Ok(row.is_some())
}

/// What a run's ledger reports, counted over every pass of it, whichever node sent them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunCounts {
    /// Sends the frequency caps held back (`capped` rows).
    pub capped: u64,
    /// Contacts a local-time run sent in a zone not their own (rows marked `zone_fallback`).
    pub zone_fallbacks: u64,
}

/// The run's [`RunCounts`], from its ledger rows.
pub async fn run_counts(db: &Db, org_id: &str, run_id: &str) -> Result<RunCounts, sqlx::Error> {
    let (capped, zone_fallbacks): (i64, i64) = sqlx::query_as(
        "select count(case when state = 'capped' then 1 end),
                count(distinct case when zone_fallback = 1 and state <> 'capped' then contact_id end)
         from send_ledger where org_id = $1 and run_id = $2",
    )
    .bind(org_id)
    .bind(run_id)
    .fetch_one(&db.read)
    .await?;
    Ok(RunCounts {
        capped: capped.max(0) as u64,
        zone_fallbacks: zone_fallbacks.max(0) as u64,
    })
}

/// The `(contact, channel)` pairs of this run already in the ledger, among `contacts`.
pub async fn in_ledger(
    db: &Db,
    org_id: &str,
    run_id: &str,
    contacts: &[String],
) -> Result<HashSet<(String, String)>, sqlx::Error> {
    let mut found = HashSet::new();
    if contacts.is_empty() {
        return Ok(found);
    }
    // On PostgreSQL an `in (…)` list over a young table was planned as a scan of the whole run:
    // 83 ms per 1 000 ids at 60 000 ledger rows, growing with the run. One index probe per id
    // (a lateral join; `offset 0` keeps the planner from flattening it back) measured 18 ms, flat.
    let sql = match db.backend {
        Backend::Postgres => format!(
            "select l.contact_id, l.channel from (values {}) v(id) cross join lateral \
             (select contact_id, channel from send_ledger \
              where org_id = $1 and run_id = $2 and contact_id = v.id offset 0) l",
            store::param_rows("", 3, 1, contacts.len())
        ),
        Backend::Sqlite => format!(
            "select contact_id, channel from send_ledger where org_id = $1 and run_id = $2 and contact_id in ({})",
            store::params(3, contacts.len())
        ),
    };
    let mut query = sqlx::query(&sql).bind(org_id).bind(run_id);
    for contact in contacts {
        query = query.bind(contact);
    }
    for row in query.fetch_all(&db.read).await? {
        found.insert((row.try_get("contact_id")?, row.try_get("channel")?));
    }
    Ok(found)
}

/// Stores the short links of messages whose ledger rows this transaction wrote: in the sandbox
/// transaction, or in the claim committed before a vendor call.
pub async fn insert_short_links<'p>(
    tx: &mut Tx,
    ctx: &RunCtx<'_>,
    prepared: impl IntoIterator<Item = &'p Prepared>,
    now: &str,
) -> Result<(), sqlx::Error> {
    let rows: Vec<(&Prepared, &ShortLink)> = prepared
        .into_iter()
        .flat_map(|p| p.short_links.iter().map(move |l| (p, l)))
        .collect();
    for chunk in rows.chunks(200) {
        let mut sql = String::from(
            "insert into short_links (org_id, campaign_id, run_id, created_at, code, contact_id, channel, target) values ",
        );
        for i in 0..chunk.len() {
            let b = 4 + i * 4;
            if i > 0 {
                sql.push(',');
            }
            sql.push_str(&format!(
                "($1, $2, $3, $4, ${}, ${}, ${}, ${})",
                b + 1,
                b + 2,
                b + 3,
                b + 4
            ));
        }
        let mut query = sqlx::query(&sql)
            .bind(ctx.org_id)
            .bind(ctx.campaign_id)
            .bind(ctx.run_id)
            .bind(now);
        for (p, link) in chunk {
            query = query
                .bind(&link.code)
                .bind(&p.contact_id)
                .bind(p.channel.id())
                .bind(&link.target);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

/// A delivery's result, for the ledger.
pub struct Delivered {
    pub contact_id: String,
    pub channel: Channel,
    pub result: Result<Option<String>, String>,
    pub attempts: u32,
}

/// Writes the outcome of vendor calls onto their `sending` rows, and moves the counters from
/// `sending` to `sent` or `failed`.
pub async fn record_outcomes(
    tx: &mut Tx,
    ctx: &RunCtx<'_>,
    delivered: &[Delivered],
    now: &str,
) -> Result<(), sqlx::Error> {
    for d in delivered {
        let (state, provider_id, error) = match &d.result {
            Ok(id) => ("sent", id.clone(), None),
            Err(e) => ("failed", None, Some(e.clone())),
        };
        sqlx::query(
            "update send_ledger set state = $1, provider_message_id = $2, last_error = $3, attempts = $4, updated_at = $5
             where org_id = $6 and run_id = $7 and contact_id = $8 and channel = $9",
        )
        .bind(state)
        .bind(provider_id)
        .bind(error)
        .bind(d.attempts as i64)
        .bind(now)
        .bind(ctx.org_id)
        .bind(ctx.run_id)
        .bind(&d.contact_id)
        .bind(d.channel.id())
        .execute(&mut **tx)
        .await?;
    }
    let mut counts = SendCounts::new();
    for d in delivered {
        let state = if d.result.is_ok() { "sent" } else { "failed" };
        let channel = d.channel.id().to_string();
        *counts
            .entry((channel.clone(), "sending".into()))
            .or_default() -= 1;
        *counts.entry((channel, state.into())).or_default() += 1;
    }
    bump_send_counts(tx, &counts).await
}

pub struct LedgerRow<'a> {
    pub contact_id: &'a str,
    pub channel: Channel,
    pub state: &'static str,
    pub error: Option<&'a str>,
    /// Sent at local time in a zone not the contact's own (`send_ledger.zone_fallback`).
    pub zone_fallback: bool,
}

/// Inserts ledger rows; returns the `(contact, channel)` keys that were new (the others are
/// already in the ledger: someone else sends or sent them).
pub async fn insert_ledger(
    tx: &mut Tx,
    ctx: &RunCtx<'_>,
    rows: &[LedgerRow<'_>],
    now: &str,
) -> Result<HashSet<(String, String)>, sqlx::Error> {
    let mut inserted = HashSet::new();
    let mut counts = SendCounts::new();
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let mut sql = String::from(
            "insert into send_ledger (org_id, run_id, campaign_id, created_at, updated_at, contact_id, channel, state, last_error, attempts, zone_fallback) values ",
        );
        for (i, row) in chunk.iter().enumerate() {
            let b = 4 + i * 4;
            if i > 0 {
                sql.push(',');
            }
            // A `sending` row is claimed before the call; the others record a finished attempt.
            sql.push_str(&format!(
                "($1, $2, $3, $4, $4, ${}, ${}, ${}, ${}, {}, {})",
                b + 1,
                b + 2,
                b + 3,
                b + 4,
                if row.state == "sending" { 0 } else { 1 },
                u8::from(row.zone_fallback)
            ));
        }
        sql.push_str(" on conflict (org_id, run_id, contact_id, channel) do nothing returning contact_id, channel, state");
        let mut query = sqlx::query(&sql)
            .bind(ctx.org_id)
            .bind(ctx.run_id)
            .bind(ctx.campaign_id)
            .bind(now);
        for row in chunk {
            query = query
                .bind(row.contact_id)
                .bind(row.channel.id())
                .bind(row.state)
                .bind(row.error);
        }
        for row in query.fetch_all(&mut **tx).await? {
            let channel: String = row.try_get("channel")?;
            *counts
                .entry((channel.clone(), row.try_get("state")?))
                .or_default() += 1;
            inserted.insert((row.try_get("contact_id")?, channel));
        }
    }
    bump_send_counts(tx, &counts).await?;
    Ok(inserted)
}

/// Changes to the send counters, by (channel, state).
pub type SendCounts = std::collections::BTreeMap<(String, String), i64>;

/// Number of rows each (channel, state) counter is spread over, so concurrent senders rarely
/// wait on one row.
const COUNT_SHARDS: i64 = 8;

/// Moves the send counters behind `herald_sends_total` (`send_counts`) inside the transaction
/// that writes the ledger rows they count. Unlike counting the ledger, they never go down when a
/// purge deletes rows, and reading them costs the same however many sends there were.
pub async fn bump_send_counts(tx: &mut Tx, counts: &SendCounts) -> Result<(), sqlx::Error> {
    let counts: Vec<_> = counts.iter().filter(|(_, n)| **n != 0).collect();
    if counts.is_empty() {
        return Ok(());
    }
    let shard = rand::Rng::gen_range(&mut rand::thread_rng(), 0..COUNT_SHARDS);
    let sql = format!(
        "insert into send_counts (channel, state, shard, n) values {}
         on conflict (channel, state, shard) do update set n = send_counts.n + excluded.n",
        store::param_rows("", 1, 4, counts.len())
    );
    let mut query = sqlx::query(&sql);
    // In key order (a BTreeMap), so two transactions lock shared rows in the same order.
    for ((channel, state), n) in counts {
        query = query.bind(channel).bind(state).bind(shard).bind(*n);
    }
    query.execute(&mut **tx).await?;
    Ok(())
}

pub async fn insert_outbox(
    tx: &mut Tx,
    ctx: &RunCtx<'_>,
    messages: &[(&Prepared, &OutboundMessage)],
    now: &str,
) -> Result<(), sqlx::Error> {
    let mut sql = String::from(
        "insert into sandbox_messages (org_id, campaign_id, run_id, sent_at, id, channel, contact_id, to_address, subject, html, text_body, body, headers, tracking) values ",
    );
    sql.push_str(&store::param_rows("$1,$2,$3,$4,", 5, 10, messages.len()));
    let mut query = sqlx::query(&sql)
        .bind(ctx.org_id)
        .bind(ctx.campaign_id)
        .bind(ctx.run_id)
        .bind(now);
    for (p, m) in messages {
        let contact_id = (!p.contact_id.starts_with("profile:")).then(|| p.contact_id.clone());
        let body = match (&m.body, &m.link) {
            (Some(body), Some(link)) if m.channel.kind() == Category::Social => {
                Some(format!("{body}\n{link}"))
            }
            (body, _) => body.clone(),
        };
        query = query
            .bind(format!("msg-{}", uuid::Uuid::now_v7()))
            .bind(m.channel.id())
            .bind(contact_id)
            .bind(m.to.clone())
            .bind(m.subject.clone())
            .bind(m.html.clone())
            .bind(m.text.clone())
            .bind(body)
            .bind(serde_json::to_string(&m.headers).unwrap_or_else(|_| "{}".into()))
            .bind(p.tracking.to_string());
    }
    query.execute(&mut **tx).await?;
    Ok(())
}

/// Moves the channel's health figures: last success, last failure and the run of failures
/// since the last success (outcomes in send order).
pub async fn bump_channel_stats(
    tx: &mut Tx,
    org_id: &str,
    channel: Channel,
    outcomes: &[bool],
    now: &str,
) -> Result<(), sqlx::Error> {
    if outcomes.is_empty() {
        return Ok(());
    }
    let any_success = outcomes.iter().any(|ok| *ok);
    let any_failure = outcomes.iter().any(|ok| !*ok);
    let trailing = outcomes.iter().rev().take_while(|ok| !**ok).count() as i64;
    sqlx::query(
        "insert into channel_stats (org_id, channel, last_success_at, last_failure_at, consecutive_failures)
         values ($1, $2, $3, $4, $5)
         on conflict (org_id, channel) do update set
           last_success_at = coalesce(excluded.last_success_at, channel_stats.last_success_at),
           last_failure_at = coalesce(excluded.last_failure_at, channel_stats.last_failure_at),
           consecutive_failures = case when excluded.last_success_at is null
             then channel_stats.consecutive_failures + excluded.consecutive_failures
             else excluded.consecutive_failures end",
    )
    .bind(org_id)
    .bind(channel.id())
    .bind(any_success.then(|| now.to_string()))
    .bind(any_failure.then(|| now.to_string()))
    .bind(trailing)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Per-channel send health of an org: `{channel: {lastSuccessAt, lastFailureAt,
/// consecutiveFailures}}`.
pub async fn channel_health(db: &Db, org_id: &str) -> Result<HashMap<String, Value>, sqlx::Error> {
    let rows = sqlx::query(
        "select channel, last_success_at, last_failure_at, consecutive_failures from channel_stats where org_id = $1",
    )
    .bind(org_id)
    .fetch_all(&db.read)
    .await?;
    let mut out = HashMap::new();
    for row in rows {
        let channel: String = row.try_get("channel")?;
        out.insert(
            channel,
            json!({
                "lastSuccessAt": row.try_get::<Option<String>, _>("last_success_at")?,
                "lastFailureAt": row.try_get::<Option<String>, _>("last_failure_at")?,
                "consecutiveFailures": row.try_get::<i64, _>("consecutive_failures")?,
            }),
        );
    }
    Ok(out)
}

/// Takes a contact's personal data out of the sandbox outbox (its messages keep their row, with
/// address and content removed) and deletes its short links (their targets are signed links
/// that may carry it), for erasure (ADR 15). Both found through their `(org, contact)` index.
pub async fn forget_contact(
    tx: &mut Tx,
    org_id: &str,
    contact_id: &str,
    erased: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "update sandbox_messages set to_address = $1, subject = null, html = null, text_body = null,
           body = null, headers = '{}', tracking = '{}'
         where org_id = $2 and contact_id = $3 and to_address <> $1",
    )
    .bind(erased)
    .bind(org_id)
    .bind(contact_id)
    .execute(&mut **tx)
    .await?;
    sqlx::query("delete from short_links where org_id = $1 and contact_id = $2")
        .bind(org_id)
        .bind(contact_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
