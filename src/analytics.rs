//! Writes the `analytics` projection's row changes (`herald_projections::analytics::fold`) inside
//! the projector's transaction: rollup upserts, unique claims and activity rows, each as a few
//! multi-row statements per batch.

use std::collections::{BTreeSet, HashSet};

use chrono::Utc;
use herald_projections::analytics::{
    fold, Activity, Counters, DayKey, StepDayKey, UniqueCandidate,
};
use sqlx::Row;

use crate::db::Tx;
use crate::erased;
use crate::store::{self, format_time, LoggedEvent};

/// Applies a batch of events to the analytics read model.
pub async fn apply(tx: &mut Tx, events: &[LoggedEvent]) -> Result<(), sqlx::Error> {
    let mut changes = fold(events.iter().map(|e| (e.org_id.as_str(), &e.record)));
    for (key, kind) in claim_uniques(tx, &changes.uniques).await? {
        let row = changes.days.entry(key).or_default();
        match kind {
            "open" => row.unique_opens += 1,
            _ => row.unique_clicks += 1,
        }
    }
    let days: Vec<(DayKey, Counters)> = changes.days.into_iter().collect();
    let now = format_time(Utc::now());
    for chunk in days.chunks(100) {
        let rows: Vec<_> = chunk.iter().map(|(k, c)| (day_key(k), *c)).collect();
        upsert_counters(tx, "analytics_daily", DAY_KEY, &rows, &now).await?;
    }
    let steps: Vec<(StepDayKey, Counters)> = changes.step_days.into_iter().collect();
    for chunk in steps.chunks(100) {
        let rows: Vec<_> = chunk
            .iter()
            .map(|(k, c)| {
                let mut key = day_key(&k.day);
                key.push(&k.run_id);
                (key, *c)
            })
            .collect();
        upsert_counters(tx, "analytics_step_days", STEP_DAY_KEY, &rows, &now).await?;
    }
    blank_erased(tx, &mut changes.activities).await?;
    for chunk in changes.activities.chunks(500) {
        insert_activities(tx, chunk).await?;
    }
    let orgs: HashSet<&str> = days.iter().map(|(key, _)| key.org_id.as_str()).collect();
    bump_versions(tx, orgs).await?;
    Ok(())
}

/// Moves the analytics version of each org (see `analytics_versions`), inside the transaction
/// that changes its rollups.
pub async fn bump_versions<'a>(
    tx: &mut Tx,
    orgs: impl IntoIterator<Item = &'a str>,
) -> Result<(), sqlx::Error> {
    let mut orgs: Vec<&str> = orgs.into_iter().collect();
    // A fixed order, so concurrent writers take the rows' locks in the same order.
    orgs.sort_unstable();
    orgs.dedup();
    for org_id in orgs {
        sqlx::query(
            "insert into analytics_versions (org_id, version) values ($1, 1)
             on conflict (org_id) do update set version = analytics_versions.version + 1",
        )
        .bind(org_id)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// The org's analytics version: changes whenever its rollups do.
pub async fn version(db: &crate::db::Db, org_id: &str) -> Result<i64, sqlx::Error> {
    let version: Option<i64> =
        sqlx::query_scalar("select version from analytics_versions where org_id = $1")
            .bind(org_id)
            .fetch_optional(&db.read)
            .await?;
    Ok(version.unwrap_or(0))
}

/// Claims first opens and clicks; returns the day and kind of each claim that was new.
async fn claim_uniques(
    tx: &mut Tx,
    candidates: &[UniqueCandidate],
) -> Result<Vec<(DayKey, &'static str)>, sqlx::Error> {
    // The earliest event of a (campaign, channel, contact, kind) in the batch makes the claim.
    let mut seen = HashSet::new();
    let firsts: Vec<&UniqueCandidate> = candidates
        .iter()
        .filter(|c| {
            seen.insert((
                &c.key.org_id,
                &c.key.campaign_id,
                &c.key.channel,
                &c.contact_id,
                c.kind,
            ))
        })
        .collect();
    let mut claimed = Vec::new();
    for chunk in firsts.chunks(500) {
        let sql = format!(
            "insert into analytics_uniques (org_id, campaign_id, channel, contact_id, kind) values {}
             on conflict do nothing returning org_id, campaign_id, channel, contact_id, kind",
            store::param_rows("", 1, 5, chunk.len())
        );
        let mut query = sqlx::query(&sql);
        for c in chunk {
            query = query
                .bind(c.key.org_id.clone())
                .bind(c.key.campaign_id.clone())
                .bind(c.key.channel.clone())
                .bind(c.contact_id.clone())
                .bind(c.kind);
        }
        let rows = query.fetch_all(&mut **tx).await?;
        let mut new = HashSet::with_capacity(rows.len());
        for row in rows {
            new.insert((
                row.try_get::<String, _>("org_id")?,
                row.try_get::<String, _>("campaign_id")?,
                row.try_get::<String, _>("channel")?,
                row.try_get::<String, _>("contact_id")?,
                row.try_get::<String, _>("kind")?,
            ));
        }
        for c in chunk {
            let identity = (
                c.key.org_id.clone(),
                c.key.campaign_id.clone(),
                c.key.channel.clone(),
                c.contact_id.clone(),
                c.kind.to_string(),
            );
            if new.contains(&identity) {
                claimed.push((c.key.clone(), c.kind));
            }
        }
    }
    Ok(claimed)
}

/// Adds counters to rollup rows of `table`, keyed by `key_columns` (each row's `key` gives
/// their values in that order), creating the rows that do not exist yet.
async fn upsert_counters(
    tx: &mut Tx,
    table: &str,
    key_columns: &[&str],
    rows: &[(Vec<&str>, Counters)],
    now: &str,
) -> Result<(), sqlx::Error> {
    let columns = Counters::COLUMNS;
    let width = key_columns.len() + columns.len() + 1;
    let updates: Vec<String> = columns
        .iter()
        .map(|c| format!("{c} = {table}.{c} + excluded.{c}"))
        .collect();
    let keys = key_columns.join(", ");
    let sql = format!(
        "insert into {table} ({keys}, {}, updated_at) values {}
         on conflict ({keys}) do update set {}, updated_at = excluded.updated_at",
        columns.join(", "),
        store::param_rows("", 1, width, rows.len()),
        updates.join(", ")
    );
    let mut query = sqlx::query(&sql);
    for (key, counters) in rows {
        for value in key {
            query = query.bind(value.to_string());
        }
        for value in counters.values() {
            query = query.bind(value);
        }
        query = query.bind(now.to_string());
    }
    query.execute(&mut **tx).await?;
    Ok(())
}

const DAY_KEY: &[&str] = &["org_id", "campaign_id", "channel", "day"];
const STEP_DAY_KEY: &[&str] = &["org_id", "campaign_id", "channel", "day", "run_id"];

fn day_key(key: &DayKey) -> Vec<&str> {
    vec![&key.org_id, &key.campaign_id, &key.channel, &key.day]
}

/// Blanks the free text of the activities of contacts erased since their events were read: the
/// erasure rewrites the rows already here, and one that commits between this batch's read and
/// its apply left these to it (it holds the projection's lock, so it is either done before this
/// transaction looks or waits for it to commit). One lookup per batch, none without free text.
async fn blank_erased(tx: &mut Tx, activities: &mut [Activity]) -> Result<(), sqlx::Error> {
    let free_text: BTreeSet<(&str, &str)> = activities
        .iter()
        .filter(|a| erased::has_free_text(&a.detail))
        .map(|a| (a.org_id.as_str(), a.contact_id.as_str()))
        .collect();
    let erased = erased::erased_among(tx, &free_text).await?;
    if erased.is_empty() {
        return Ok(());
    }
    for a in activities.iter_mut() {
        if erased.contains(&(a.org_id.clone(), a.contact_id.clone())) {
            erased::blank_free_text(&mut a.detail);
        }
    }
    Ok(())
}

async fn insert_activities(tx: &mut Tx, rows: &[Activity]) -> Result<(), sqlx::Error> {
    let sql = format!(
        "insert into contact_activities (org_id, contact_id, position, seq, type, campaign_id, channel, at, detail)
         values {} on conflict do nothing",
        store::param_rows("", 1, 9, rows.len())
    );
    let mut query = sqlx::query(&sql);
    for a in rows {
        query = query
            .bind(a.org_id.clone())
            .bind(a.contact_id.clone())
            .bind(a.position)
            .bind(a.seq)
            .bind(a.kind.clone())
            .bind(a.campaign_id.clone())
            .bind(a.channel.clone())
            .bind(a.at.clone())
            .bind(a.detail.to_string());
    }
    query.execute(&mut **tx).await?;
    Ok(())
}

/// Applies `edit` to the detail of each of a contact's activities, writing back those it
/// changed, 400 a statement (erasure, ADR 15: the same edit as on the events they were folded
/// from, so a replay gives the same rows).
pub async fn edit_activities(
    tx: &mut Tx,
    org_id: &str,
    contact_id: &str,
    edit: impl Fn(&mut serde_json::Value) -> bool,
) -> Result<(), sqlx::Error> {
    let rows = sqlx::query(
        "select position, seq, detail from contact_activities where org_id = $1 and contact_id = $2",
    )
    .bind(org_id)
    .bind(contact_id)
    .fetch_all(&mut **tx)
    .await?;
    let mut changed = Vec::new();
    for row in rows {
        let detail: String = row.try_get("detail")?;
        let Ok(mut detail) = serde_json::from_str(&detail) else {
            continue;
        };
        if edit(&mut detail) {
            let position: i64 = row.try_get("position")?;
            let seq: i64 = row.try_get("seq")?;
            changed.push((position, seq, detail.to_string()));
        }
    }
    for chunk in changed.chunks(400) {
        let sql = format!(
            "with v (position, seq, detail) as (values {})
             update contact_activities set detail = v.detail from v
             where contact_activities.org_id = $1 and contact_activities.contact_id = $2
               and contact_activities.position = v.position and contact_activities.seq = v.seq",
            store::param_rows("", 3, 3, chunk.len())
        );
        let mut query = sqlx::query(&sql).bind(org_id).bind(contact_id);
        for (position, seq, detail) in chunk {
            query = query.bind(*position).bind(*seq).bind(detail.as_str());
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}
