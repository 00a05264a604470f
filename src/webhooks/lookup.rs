//! The database side of webhooks: the connection a callback names, the send each event reports
//! on (by the send key it carried, the vendor's message id, or the sender's phone), and the
//! contact changes an unsubscribe makes.

use herald_domain::contact::is_e164;
use herald_domain::document::DocumentKind;
use herald_domain::spec::Channel;
use herald_domain::suppression::Reason;
use serde_json::{Map, Value};
use sqlx::Row;

use super::{Target, Vendor};
use crate::campaigns::CommandMeta;
use crate::db::Db;
use crate::documents;
use crate::secrets::{Sealed, Sealer};
use crate::suppressions::{self, Suppress};

/// Most orgs whose connections share one id that a callback tries.
const MAX_CANDIDATES: i64 = 20;

/// Most contacts one phone number is matched to.
const MAX_PHONE_CONTACTS: i64 = 100;

/// A connection a callback may come from, with its credentials opened.
pub struct Candidate {
    pub org_id: String,
    pub credentials: Map<String, Value>,
}

impl std::fmt::Debug for Candidate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Candidate")
            .field("org_id", &self.org_id)
            .field("credentials", &format_args!(".."))
            .finish()
    }
}

/// The live connections of `vendor` with this id, in every org (ids are unique per org only;
/// the signature tells which org's connection the vendor signed for). Read through
/// `connection_secrets`, which holds only connections, joined to the connection's document.
pub async fn connections(
    db: &Db,
    sealer: &Sealer,
    vendor: Vendor,
    id: &str,
) -> Result<Vec<Candidate>, sqlx::Error> {
    let rows = sqlx::query(
        "select s.org_id, s.nonce, s.ciphertext, d.doc from connection_secrets s
         join documents d on d.org_id = s.org_id and d.kind = 'connection' and d.id = s.id
         where s.id = $1 order by s.org_id limit $2",
    )
    .bind(id)
    .bind(MAX_CANDIDATES)
    .fetch_all(&db.read)
    .await?;
    let mut out = Vec::new();
    for row in rows {
        let doc: String = row.try_get("doc")?;
        let doc: Value = serde_json::from_str(&doc).unwrap_or(Value::Null);
        if doc["vendor"] != vendor.id() {
            continue;
        }
        let sealed = Sealed {
            nonce: row.try_get("nonce")?,
            ciphertext: row.try_get("ciphertext")?,
        };
        let org_id: String = row.try_get("org_id")?;
        let credentials = sealer
            .open_for(&org_id, id, &sealed)
            .and_then(|plain| serde_json::from_slice(&plain).ok())
            .unwrap_or_default();
        out.push(Candidate {
            org_id,
            credentials,
        });
    }
    Ok(out)
}

/// One recipient's delivery an event reports on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Send {
    pub campaign_id: String,
    pub run_id: String,
    pub contact_id: String,
    pub channel: Channel,
}

/// What an event was matched to: the send (when one is found) and the contacts it concerns
/// (the send's, or every contact with an inbound SMS's phone number).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolution {
    pub send: Option<Send>,
    pub contacts: Vec<String>,
}

/// Matches an event to its send in the org's send ledger: by the send key first, then by the
/// vendor's message id, then (inbound SMS) by the newest SMS send to a contact with the
/// sender's phone number.
pub async fn resolve(db: &Db, org_id: &str, target: &Target) -> Result<Resolution, sqlx::Error> {
    if let Some(key) = &target.message_key {
        let campaign: Option<String> = sqlx::query_scalar(
            "select campaign_id from send_ledger
             where org_id = $1 and run_id = $2 and contact_id = $3 and channel = $4",
        )
        .bind(org_id)
        .bind(&key.run_id)
        .bind(&key.contact_id)
        .bind(key.channel.id())
        .fetch_optional(&db.read)
        .await?;
        if let Some(campaign_id) = campaign {
            return Ok(found(Send {
                campaign_id,
                run_id: key.run_id.clone(),
                contact_id: key.contact_id.clone(),
                channel: key.channel,
            }));
        }
    }
    for id in &target.provider_ids {
        let row = sqlx::query(
            "select run_id, contact_id, channel, campaign_id from send_ledger
             where org_id = $1 and provider_message_id = $2 limit 1",
        )
        .bind(org_id)
        .bind(id)
        .fetch_optional(&db.read)
        .await?;
        if let Some(send) = row.as_ref().map(send_from_row).transpose()?.flatten() {
            return Ok(found(send));
        }
    }
    if let Some(phone) = &target.phone {
        let contacts = contacts_by_phone(db, org_id, phone).await?;
        let send = latest_sms_send(db, org_id, &contacts).await?;
        return Ok(Resolution { send, contacts });
    }
    Ok(Resolution::default())
}

fn found(send: Send) -> Resolution {
    Resolution {
        contacts: vec![send.contact_id.clone()],
        send: Some(send),
    }
}

fn send_from_row(row: &sqlx::any::AnyRow) -> Result<Option<Send>, sqlx::Error> {
    let channel: String = row.try_get("channel")?;
    Ok(Channel::parse(&channel).map(|channel| Send {
        campaign_id: row.try_get("campaign_id").unwrap_or_default(),
        run_id: row.try_get("run_id").unwrap_or_default(),
        contact_id: row.try_get("contact_id").unwrap_or_default(),
        channel,
    }))
}

/// Ids of the org's contacts whose phone is exactly `phone` (E.164 only: anything else can
/// match no stored contact). The stored document is compact JSON, so the phone appears as
/// `"phone":"+1..."`; E.164 has no `LIKE` wildcards, and each hit is checked exactly.
async fn contacts_by_phone(db: &Db, org_id: &str, phone: &str) -> Result<Vec<String>, sqlx::Error> {
    if !is_e164(phone) {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(
        "select id, doc from documents where org_id = $1 and kind = 'contact' and doc like $2
         order by id limit $3",
    )
    .bind(org_id)
    .bind(format!("%\"phone\":\"{phone}\"%"))
    .bind(MAX_PHONE_CONTACTS)
    .fetch_all(&db.read)
    .await?;
    let mut ids = Vec::new();
    for row in rows {
        let doc: String = row.try_get("doc")?;
        let doc: Value = serde_json::from_str(&doc).unwrap_or(Value::Null);
        if doc["phone"] == phone {
            ids.push(row.try_get("id")?);
        }
    }
    Ok(ids)
}

/// The newest SMS send to any of `contacts`: the message an inbound SMS answers.
async fn latest_sms_send(
    db: &Db,
    org_id: &str,
    contacts: &[String],
) -> Result<Option<Send>, sqlx::Error> {
    if contacts.is_empty() {
        return Ok(None);
    }
    let sql = format!(
        "select run_id, contact_id, channel, campaign_id from send_ledger
         where org_id = $1 and channel = 'sms' and contact_id in ({})
         order by created_at desc, run_id desc limit 1",
        crate::store::params(2, contacts.len())
    );
    let mut query = sqlx::query(&sql).bind(org_id);
    for contact in contacts {
        query = query.bind(contact);
    }
    let row = query.fetch_optional(&db.read).await?;
    Ok(row.as_ref().map(send_from_row).transpose()?.flatten())
}

/// Soft bounces of an address that suppress it, and the window they are counted in.
pub const SOFT_BOUNCES_TO_SUPPRESS: i64 = 3;
pub const SOFT_BOUNCE_WINDOW_DAYS: i64 = 30;

/// Records a soft bounce of `send` at `at`, once per message (a vendor reports each deferral of
/// one message, and retries its posts), and puts the address on the suppression list (reason
/// `bounce`) when it is the third message to it that soft-bounced within 30 days. Owns the
/// `soft_bounces` table. Returns whether it suppressed the address now.
pub async fn soft_bounce(
    db: &Db,
    meta: &CommandMeta,
    send: &Send,
    at: chrono::DateTime<chrono::Utc>,
    source: &str,
) -> Result<bool, sqlx::Error> {
    let Some(contact) =
        documents::get(db, &meta.org_id, DocumentKind::Contact, &send.contact_id).await?
    else {
        return Ok(false);
    };
    let Some(address) = suppressions::contact_address(&contact, send.channel) else {
        return Ok(false);
    };
    let message = format!("{}:{}:{}", send.run_id, send.contact_id, send.channel.id());
    sqlx::query(
        "insert into soft_bounces (org_id, channel, address, message_key, at) values ($1, $2, $3, $4, $5)
         on conflict (org_id, channel, address, message_key) do nothing",
    )
    .bind(&meta.org_id)
    .bind(send.channel.id())
    .bind(&address)
    .bind(&message)
    .bind(crate::store::format_time(at))
    .execute(&db.write)
    .await?;
    let since = at - chrono::Duration::days(SOFT_BOUNCE_WINDOW_DAYS);
    let count: i64 = sqlx::query_scalar(
        "select count(*) from soft_bounces where org_id = $1 and channel = $2 and address = $3 and at >= $4",
    )
    .bind(&meta.org_id)
    .bind(send.channel.id())
    .bind(&address)
    .bind(crate::store::format_time(since))
    .fetch_one(&db.write)
    .await?;
    if count < SOFT_BOUNCES_TO_SUPPRESS {
        return Ok(false);
    }
    let Some(entry) = Suppress::new(send.channel, &address, Reason::Bounce, source) else {
        return Ok(false);
    };
    Ok(suppressions::add_now(db, &[entry], &meta.metadata()).await? > 0)
}

/// Puts the contact's address on `channel` on the org's suppression list with `reason`
/// (`source`: the vendor). False when the contact is gone, has no such address, or the address
/// was already listed.
pub async fn suppress(
    db: &Db,
    meta: &CommandMeta,
    contact_id: &str,
    channel: Channel,
    reason: Reason,
    source: &str,
) -> Result<bool, sqlx::Error> {
    let Some(contact) = documents::get(db, &meta.org_id, DocumentKind::Contact, contact_id).await?
    else {
        return Ok(false);
    };
    let Some(entry) = suppressions::contact_address(&contact, channel)
        .and_then(|address| Suppress::new(channel, &address, reason, source))
    else {
        return Ok(false);
    };
    Ok(suppressions::add_now(db, &[entry], &meta.metadata()).await? > 0)
}

/// The key a replay token is remembered by: a digest, so every row has the same width.
fn token_key(vendor: Vendor, token: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{}:{token}", vendor.id()).as_bytes());
    hex::encode(digest)
}

/// Whether a post with this signature token was already accepted within the signature window.
pub async fn token_used(db: &Db, vendor: Vendor, token: &str) -> Result<bool, sqlx::Error> {
    let row = sqlx::query("select 1 from webhook_tokens where token = $1")
        .bind(token_key(vendor, token))
        .fetch_optional(&db.write)
        .await?;
    Ok(row.is_some())
}

/// Deletes soft bounces older than the [`SOFT_BOUNCE_WINDOW_DAYS`] they can count in, in
/// batches of `batch` rows (the scheduler's reconcile pass calls it every minute). Returns how
/// many rows went.
pub async fn prune_soft_bounces(
    db: &Db,
    now: chrono::DateTime<chrono::Utc>,
    batch: i64,
) -> Result<u64, sqlx::Error> {
    let before = crate::store::format_time(now - chrono::Duration::days(SOFT_BOUNCE_WINDOW_DAYS));
    let mut removed = 0;
    loop {
        let done = sqlx::query(
            "delete from soft_bounces where (org_id, channel, address, message_key) in
               (select org_id, channel, address, message_key from soft_bounces where at < $1 limit $2)",
        )
        .bind(&before)
        .bind(batch)
        .execute(&db.write)
        .await?
        .rows_affected();
        removed += done;
        if done < batch as u64 {
            return Ok(removed);
        }
        tokio::task::yield_now().await;
    }
}

/// Remembers an accepted post's signature token until `forget_before` has passed for it, and
/// forgets the tokens whose signatures can no longer be accepted anyway.
pub async fn remember_token(
    db: &Db,
    vendor: Vendor,
    token: &str,
    now: chrono::DateTime<chrono::Utc>,
    forget_before: chrono::DateTime<chrono::Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into webhook_tokens (token, seen_at) values ($1, $2) on conflict (token) do nothing",
    )
    .bind(token_key(vendor, token))
    .bind(crate::store::format_time(now))
    .execute(&db.write)
    .await?;
    sqlx::query("delete from webhook_tokens where seen_at < $1")
        .bind(crate::store::format_time(forget_before))
        .execute(&db.write)
        .await?;
    Ok(())
}
/// Forgets an erased address's soft bounces (ADR 15): the address is on the suppression list
/// for good, so they can never count again.
pub async fn forget_soft_bounces(
    tx: &mut crate::db::Tx,
    org_id: &str,
    channel: Channel,
    address: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("delete from soft_bounces where org_id = $1 and channel = $2 and address = $3")
        .bind(org_id)
        .bind(channel.id())
        .bind(address)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
