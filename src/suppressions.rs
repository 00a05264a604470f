//! The org's suppression list (`api.md` section 12): owns the `suppressions` table, a read model
//! of the `SuppressionAdded`/`SuppressionRemoved` events, written in the transaction that
//! appends them. One stream per entry (`suppression-<org>:<channel>:<address>`); the table's
//! key makes two writers of one address wait for each other, so each change is one event.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use herald_domain::spec::Channel;
use herald_domain::suppression::{
    self, AddressKey, Reason, SuppressionAdded, SuppressionRemoved, ADDED_EVENT_TYPE,
    REMOVED_EVENT_TYPE,
};
use herald_projections::record::{EventRecord, Metadata};
use serde::Serialize;
use serde_json::{Map, Value};
use sqlx::Row;

use crate::db::{Db, Tx};
use crate::store::{self, format_time, AppendError, NewEvent};

/// The stream of one entry.
pub fn stream_id(org_id: &str, channel: Channel, address: &str) -> String {
    format!("suppression-{org_id}:{}:{address}", channel.id())
}

/// One entry as `GET /crm/suppressions` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    pub channel: String,
    pub address: String,
    pub reason: String,
    pub at: String,
    pub source: String,
}

/// An address to put on the list. `address` is normalised by [`Suppress::new`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Suppress {
    pub channel: Channel,
    pub address: String,
    pub reason: Reason,
    pub source: String,
}

impl Suppress {
    /// `None` when `address` is not an address of `channel`.
    pub fn new(channel: Channel, address: &str, reason: Reason, source: &str) -> Option<Suppress> {
        Some(Suppress {
            channel,
            address: suppression::normalise(channel, address)?,
            reason,
            source: source.to_string(),
        })
    }

    /// The entries a contact body's `unsubscribed` opt-outs add: each channel set to `true` on
    /// which the contact has an address (reason `manual`).
    pub fn from_contact(body: &Value, opt_outs: &[String]) -> Vec<Suppress> {
        opt_outs
            .iter()
            .filter_map(|id| suppression::parse_channel(id))
            .filter_map(|channel| {
                let address = body.get(address_field(channel))?.as_str()?;
                Suppress::new(channel, address, Reason::Manual, "contact")
            })
            .collect()
    }
}

/// The contact field that holds a channel's address.
fn address_field(channel: Channel) -> &'static str {
    match channel {
        Channel::Sms => "phone",
        _ => "email",
    }
}

/// Puts each entry on the list inside `tx`, appending `SuppressionAdded` for those not already
/// there. Returns how many were added.
pub async fn add(
    tx: &mut Tx,
    db: &Db,
    entries: &[Suppress],
    metadata: &Metadata,
    now: DateTime<Utc>,
) -> Result<usize, AppendError> {
    let mut added = 0;
    for entry in entries {
        let at = format_time(now);
        let inserted = sqlx::query(
            "insert into suppressions (org_id, channel, address, reason, source, at)
             values ($1, $2, $3, $4, $5, $6) on conflict (org_id, channel, address) do nothing",
        )
        .bind(&metadata.org_id)
        .bind(entry.channel.id())
        .bind(&entry.address)
        .bind(entry.reason.id())
        .bind(&entry.source)
        .bind(&at)
        .execute(&mut **tx)
        .await?
        .rows_affected()
            == 1;
        if !inserted {
            continue;
        }
        let data = SuppressionAdded {
            channel: entry.channel,
            address: entry.address.clone(),
            reason: entry.reason,
            source: entry.source.clone(),
            at: now,
        };
        let event = NewEvent {
            event_type: ADDED_EVENT_TYPE.to_string(),
            event_version: "1".to_string(),
            data: serde_json::to_value(&data).expect("suppression serializes"),
        };
        let stream = stream_id(&metadata.org_id, entry.channel, &entry.address);
        store::append_at_head(tx, db.backend, &stream, &event, metadata, now).await?;
        added += 1;
    }
    Ok(added)
}

/// Takes an erased address off the list in plain form and keeps it there hashed (ADR 15): its
/// stream's events move to the hashed address's stream (keeping their place, id and type, the
/// address in their data replaced by the hash), the entry is the one that stream now leaves,
/// and when that is none (the address was never listed, or was taken off) a `SuppressionAdded`
/// with source `erasure` puts the hash on the list. Returns how many events moved.
pub async fn hide(
    tx: &mut Tx,
    db: &Db,
    key: &AddressKey,
    channel: Channel,
    address: &str,
    metadata: &Metadata,
) -> Result<u64, AppendError> {
    let org_id = &metadata.org_id;
    let hashed = key.hashed(org_id, channel, address);
    let hashed_stream = stream_id(org_id, channel, &hashed);
    let moving = store::stream_data(tx, &stream_id(org_id, channel, address)).await?;
    let mut next = store::next_revisions(tx, &[hashed_stream.as_str()]).await?[&hashed_stream];
    for (position, mut data) in moving.iter().cloned() {
        data["address"] = Value::String(hashed.clone());
        store::move_event(tx, db.backend, position, &hashed_stream, next, &data).await?;
        next += 1;
    }
    sqlx::query(
        "delete from suppressions where org_id = $1 and channel = $2 and address in ($3, $4)",
    )
    .bind(org_id)
    .bind(channel.id())
    .bind(address)
    .bind(&hashed)
    .execute(&mut **tx)
    .await?;
    let records: Vec<EventRecord> =
        store::read_stream(&mut **tx, db.backend, &hashed_stream, 0, i64::MAX)
            .await?
            .into_iter()
            .map(|e| e.record)
            .collect();
    match fold(org_id, &records).map_err(|e| AppendError::Db(sqlx::Error::Protocol(e)))? {
        Some(row) => write_rows(tx, &[row]).await?,
        None => {
            let entry = Suppress {
                channel,
                address: hashed,
                reason: Reason::Manual,
                source: "erasure".to_string(),
            };
            add(tx, db, &[entry], metadata, Utc::now()).await?;
        }
    }
    Ok(moving.len() as u64)
}

/// [`add`] in a transaction of its own, retried when a concurrent writer took a revision.
pub async fn add_now(
    db: &Db,
    entries: &[Suppress],
    metadata: &Metadata,
) -> Result<usize, sqlx::Error> {
    if entries.is_empty() {
        return Ok(0);
    }
    let mut last = None;
    for _ in 0..5 {
        let mut tx = db.begin().await?;
        match add(&mut tx, db, entries, metadata, Utc::now()).await {
            Ok(added) => {
                tx.commit().await?;
                return Ok(added);
            }
            Err(AppendError::Conflict) => {
                tx.rollback().await.ok();
                last = Some(sqlx::Error::Protocol(
                    "concurrent writers on one suppression".into(),
                ));
            }
            Err(AppendError::Db(e)) => return Err(e),
        }
    }
    Err(last.expect("at least one attempt"))
}

/// Takes an entry off the list, appending `SuppressionRemoved`. False when it was not there.
pub async fn remove(
    db: &Db,
    channel: Channel,
    address: &str,
    metadata: &Metadata,
) -> Result<bool, sqlx::Error> {
    for _ in 0..5 {
        let now = Utc::now();
        let mut tx = db.begin().await?;
        let deleted = sqlx::query(
            "delete from suppressions where org_id = $1 and channel = $2 and address = $3",
        )
        .bind(&metadata.org_id)
        .bind(channel.id())
        .bind(address)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !deleted {
            tx.rollback().await?;
            return Ok(false);
        }
        let data = SuppressionRemoved {
            channel,
            address: address.to_string(),
            at: now,
        };
        let event = NewEvent {
            event_type: REMOVED_EVENT_TYPE.to_string(),
            event_version: "1".to_string(),
            data: serde_json::to_value(&data).expect("suppression serializes"),
        };
        let stream = stream_id(&metadata.org_id, channel, address);
        match store::append_at_head(&mut tx, db.backend, &stream, &event, metadata, now).await {
            Ok(_) => {
                tx.commit().await?;
                return Ok(true);
            }
            Err(AppendError::Conflict) => tx.rollback().await?,
            Err(AppendError::Db(e)) => return Err(e),
        }
    }
    Err(sqlx::Error::Protocol(
        "concurrent writers on one suppression".into(),
    ))
}

/// A page of the org's list in `(channel, address)` order, after `after`, and the key of its
/// last entry when more may follow.
pub async fn list(
    db: &Db,
    org_id: &str,
    channel: Option<Channel>,
    after: Option<(String, String)>,
    limit: i64,
) -> Result<(Vec<Entry>, Option<(String, String)>), sqlx::Error> {
    let (after_channel, after_address) = after.unwrap_or_default();
    let rows = sqlx::query(
        "select channel, address, reason, source, at from suppressions
         where org_id = $1 and ($2 = '' or channel = $2) and (channel, address) > ($3, $4)
         order by channel, address limit $5",
    )
    .bind(org_id)
    .bind(channel.map_or("", Channel::id))
    .bind(&after_channel)
    .bind(&after_address)
    .bind(limit + 1)
    .fetch_all(&db.read)
    .await?;
    let more = rows.len() as i64 > limit;
    let mut items = Vec::with_capacity(rows.len());
    for row in rows.iter().take(limit as usize) {
        items.push(Entry {
            channel: row.try_get("channel")?,
            address: row.try_get("address")?,
            reason: row.try_get("reason")?,
            at: row.try_get("at")?,
            source: row.try_get("source")?,
        });
    }
    let next = match items.last() {
        Some(last) if more => Some((last.channel.clone(), last.address.clone())),
        _ => None,
    };
    Ok((items, next))
}

/// Which of `addresses` (normalised) are suppressed on `channel`, read on `conn` (a send's
/// transaction, so the check and the ledger rows it guards commit together). With the key of
/// erased addresses, each address is also looked up in its hashed form: an erased address
/// stays refused.
pub async fn suppressed(
    conn: &mut sqlx::AnyConnection,
    key: Option<&AddressKey>,
    org_id: &str,
    channel: Channel,
    addresses: &[String],
) -> Result<HashSet<String>, sqlx::Error> {
    // Each key looked up, with the address it stands for.
    let mut keys: HashMap<String, &String> = HashMap::with_capacity(addresses.len() * 2);
    for address in addresses {
        keys.insert(address.clone(), address);
        if let Some(key) = key {
            keys.insert(key.hashed(org_id, channel, address), address);
        }
    }
    let keys: Vec<(String, &String)> = keys.into_iter().collect();
    let mut found = HashSet::new();
    for chunk in keys.chunks(500) {
        let sql = format!(
            "select address from suppressions where org_id = $1 and channel = $2 and address in ({})",
            store::params(3, chunk.len())
        );
        let mut query = sqlx::query(&sql).bind(org_id).bind(channel.id());
        for (listed, _) in chunk {
            query = query.bind(listed);
        }
        let stands_for: HashMap<&str, &String> =
            chunk.iter().map(|(k, a)| (k.as_str(), *a)).collect();
        for row in query.fetch_all(&mut *conn).await? {
            let listed: String = row.try_get("address")?;
            if let Some(address) = stands_for.get(listed.as_str()) {
                found.insert((*address).clone());
            }
        }
    }
    Ok(found)
}

/// Sets each contact's `unsubscribed` to what the suppressions of its addresses say: the
/// stored body's own value is not what decides (`api.md` section 12).
pub async fn overlay<'a>(
    db: &Db,
    org_id: &str,
    contacts: impl IntoIterator<Item = &'a mut Value>,
) -> Result<(), sqlx::Error> {
    let mut contacts: Vec<&mut Value> = contacts.into_iter().collect();
    let mut wanted: HashMap<Channel, Vec<String>> = HashMap::new();
    for contact in &contacts {
        for channel in suppression::SUPPRESSIBLE {
            if let Some(address) = contact_address(contact, channel) {
                wanted.entry(channel).or_default().push(address);
            }
        }
    }
    let mut found: HashMap<Channel, HashSet<String>> = HashMap::new();
    if !wanted.is_empty() {
        let mut conn = db.read.acquire().await?;
        for (channel, addresses) in wanted {
            found.insert(
                channel,
                suppressed(
                    &mut conn,
                    db.erasure_key.as_deref(),
                    org_id,
                    channel,
                    &addresses,
                )
                .await?,
            );
        }
    }
    for contact in contacts.iter_mut() {
        let mut unsubscribed = Map::new();
        for channel in suppression::SUPPRESSIBLE {
            let on_list = contact_address(contact, channel)
                .is_some_and(|a| found.get(&channel).is_some_and(|set| set.contains(&a)));
            if on_list {
                unsubscribed.insert(channel.id().to_string(), Value::Bool(true));
            }
        }
        if let Some(object) = contact.as_object_mut() {
            object.insert("unsubscribed".into(), Value::Object(unsubscribed));
        }
    }
    Ok(())
}

/// A contact's normalised address on `channel`, if it has one.
pub fn contact_address(contact: &Value, channel: Channel) -> Option<String> {
    let address = contact.get(address_field(channel))?.as_str()?;
    suppression::normalise(channel, address)
}

/// The entry a stream's events leave on the list (`None` when the last one removed it).
pub fn fold(org_id: &str, records: &[EventRecord]) -> Result<Option<(String, Entry)>, String> {
    let mut entry = None;
    for record in records {
        match record.event_type.as_str() {
            ADDED_EVENT_TYPE => {
                let added: SuppressionAdded = serde_json::from_value(record.data.clone())
                    .map_err(|e| format!("{ADDED_EVENT_TYPE}: {e}"))?;
                entry = Some(Entry {
                    channel: added.channel.id().to_string(),
                    address: added.address,
                    reason: added.reason.id().to_string(),
                    at: format_time(added.at),
                    source: added.source,
                });
            }
            REMOVED_EVENT_TYPE => entry = None,
            other => return Err(format!("unknown suppression event {other}")),
        }
    }
    Ok(entry.map(|e| (org_id.to_string(), e)))
}

/// Writes folded entries (a rebuild's page).
pub async fn write_rows(tx: &mut Tx, rows: &[(String, Entry)]) -> Result<(), sqlx::Error> {
    for chunk in rows.chunks(500) {
        let sql = format!(
            "insert into suppressions (org_id, channel, address, reason, source, at) values {}",
            store::param_rows("", 1, 6, chunk.len())
        );
        let mut query = sqlx::query(&sql);
        for (org_id, entry) in chunk {
            query = query
                .bind(org_id)
                .bind(&entry.channel)
                .bind(&entry.address)
                .bind(&entry.reason)
                .bind(&entry.source)
                .bind(&entry.at);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

/// One entry of the org's list.
pub async fn get(
    db: &Db,
    org_id: &str,
    channel: Channel,
    address: &str,
) -> Result<Option<Entry>, sqlx::Error> {
    let row = sqlx::query(
        "select channel, address, reason, source, at from suppressions
         where org_id = $1 and channel = $2 and address = $3",
    )
    .bind(org_id)
    .bind(channel.id())
    .bind(address)
    .fetch_optional(&db.read)
    .await?;
    row.map(|row| {
        Ok(Entry {
            channel: row.try_get("channel")?,
            address: row.try_get("address")?,
            reason: row.try_get("reason")?,
            at: row.try_get("at")?,
            source: row.try_get("source")?,
        })
    })
    .transpose()
}
