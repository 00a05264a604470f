//! An org's marketing settings (`api.md` section 12): owns the `org_settings` table, the read
//! model of the `SettingsUpdated` events of the stream `settings-<org>`, written in the
//! transaction that appends them.

use chrono::Utc;
use herald_domain::settings::{OrgSettings, UPDATED_EVENT_TYPE};
use herald_projections::record::{EventRecord, Metadata};

use crate::db::{Db, Tx};
use crate::store::{self, format_time, AppendError, NewEvent};

/// The stream of an org's settings.
pub fn stream_id(org_id: &str) -> String {
    format!("settings-{org_id}")
}

/// The org's settings; the defaults when it never set any.
pub async fn get(db: &Db, org_id: &str) -> Result<OrgSettings, sqlx::Error> {
    read(&db.read, org_id).await
}

/// [`get`] inside `tx`: a send page's transaction, which must not wait for a second connection
/// while it holds one (several pages of a run are sent at once, `sending::run`).
pub async fn get_in(tx: &mut Tx, org_id: &str) -> Result<OrgSettings, sqlx::Error> {
    read(&mut **tx, org_id).await
}

async fn read<'e, E>(executor: E, org_id: &str) -> Result<OrgSettings, sqlx::Error>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let stored: Option<String> =
        sqlx::query_scalar("select settings from org_settings where org_id = $1")
            .bind(org_id)
            .fetch_optional(executor)
            .await?;
    Ok(stored
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default())
}

/// Replaces the org's settings, appending `SettingsUpdated` when they change. Returns whether
/// they changed.
pub async fn put(
    db: &Db,
    settings: &OrgSettings,
    metadata: &Metadata,
) -> Result<bool, sqlx::Error> {
    for _ in 0..5 {
        if get(db, &metadata.org_id).await? == *settings {
            return Ok(false);
        }
        let now = Utc::now();
        let mut tx = db.begin().await?;
        let event = NewEvent {
            event_type: UPDATED_EVENT_TYPE.to_string(),
            event_version: "1".to_string(),
            data: serde_json::to_value(settings).expect("settings serialize"),
        };
        let stream = stream_id(&metadata.org_id);
        match store::append_at_head(&mut tx, db.backend, &stream, &event, metadata, now).await {
            Ok(_) => {
                write_rows(
                    &mut tx,
                    &[(metadata.org_id.clone(), settings.clone(), format_time(now))],
                )
                .await?;
                tx.commit().await?;
                return Ok(true);
            }
            Err(AppendError::Conflict) => tx.rollback().await?,
            Err(AppendError::Db(e)) => return Err(e),
        }
    }
    Err(sqlx::Error::Protocol(
        "concurrent writers of one org's settings".into(),
    ))
}

/// The settings an org's stream leaves, with the time of its last event.
pub fn fold(records: &[EventRecord]) -> Result<Option<(String, OrgSettings, String)>, String> {
    let mut out = None;
    for record in records {
        if record.event_type != UPDATED_EVENT_TYPE {
            return Err(format!("unknown settings event {}", record.event_type));
        }
        let settings: OrgSettings = serde_json::from_value(record.data.clone())
            .map_err(|e| format!("{UPDATED_EVENT_TYPE}: {e}"))?;
        out = Some((
            record.metadata.org_id.clone(),
            settings,
            record.created.clone(),
        ));
    }
    Ok(out)
}

/// Writes (or replaces) settings rows: `(org, settings, updated_at)`.
pub async fn write_rows(
    tx: &mut Tx,
    rows: &[(String, OrgSettings, String)],
) -> Result<(), sqlx::Error> {
    for (org_id, settings, updated_at) in rows {
        sqlx::query(
            "insert into org_settings (org_id, settings, updated_at) values ($1, $2, $3)
             on conflict (org_id) do update set settings = excluded.settings, updated_at = excluded.updated_at",
        )
        .bind(org_id)
        .bind(serde_json::to_string(settings).expect("settings serialize"))
        .bind(updated_at)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}
