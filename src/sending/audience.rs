//! A campaign's audience: its filter (saved or inline), how many contacts it reaches now, and the
//! pages of contacts a run walks. Launches from HTTP and from the scheduler count here.

use herald_domain::document::DocumentKind;
use herald_domain::query::{parse_filter, Filter};
use herald_domain::spec::CampaignSpec;
use serde_json::Value;
use sqlx::Row;

use super::report::SendRunError;
use crate::db::Db;
use crate::documents;

/// Contacts read, rendered and recorded per transaction: memory stays flat whatever the audience.
pub const PAGE: i64 = 500;

/// The campaign's audience filter, or why there is none.
pub async fn filter(db: &Db, org_id: &str, spec: &CampaignSpec) -> Result<Filter, SendRunError> {
    let value = match (&spec.audience_id, &spec.audience) {
        (Some(id), _) => documents::get(db, org_id, DocumentKind::Audience, id)
            .await?
            .ok_or_else(|| SendRunError::Setup(format!("audience {id} does not exist")))?["filter"]
            .clone(),
        (None, Some(inline)) => inline["filter"].clone(),
        (None, None) => return Err(SendRunError::Setup("the campaign has no audience".into())),
    };
    parse_filter(&value)
        .map_err(|_| SendRunError::Setup("the audience filter no longer parses".into()))
}

/// How many of the org's contacts match `filter` now (the reach a launch records).
pub async fn count_matching(db: &Db, org_id: &str, filter: &Filter) -> Result<u64, sqlx::Error> {
    Ok(crate::reach::evaluate(db, org_id, filter, 0).await?.0)
}

/// How many contacts a campaign's audience reaches now; `0` when it has none, its saved audience
/// is gone or its filter no longer parses (the launch's blockers say why).
pub async fn reach(db: &Db, org_id: &str, spec: &CampaignSpec) -> Result<u64, sqlx::Error> {
    match filter(db, org_id, spec).await {
        Ok(filter) => count_matching(db, org_id, &filter).await,
        Err(SendRunError::Setup(_) | SendRunError::LeaseLost) => Ok(0),
        Err(SendRunError::Db(error)) => Err(error),
    }
}

/// The next page of the audience's contacts by id that existed at the launch. On PostgreSQL the
/// filter's compiled predicate narrows the page in SQL (the same one reach uses); callers still
/// keep only the contacts [`Filter::matches`], the oracle where the predicate is inexact.
pub async fn page(
    db: &Db,
    org_id: &str,
    filter: &Filter,
    after: &str,
    launched_at: &str,
    limit: i64,
) -> Result<Vec<(String, Value)>, sqlx::Error> {
    let predicate = crate::reach::contacts_predicate(db, filter, 5);
    let sql = format!(
        "select id, doc from documents
         where org_id = $1 and kind = 'contact' and id > $2 and created_at <= $3 and {}
         order by id limit $4",
        predicate.sql
    );
    let query = sqlx::query(&sql)
        .bind(org_id)
        .bind(after)
        .bind(launched_at)
        .bind(limit);
    let query = crate::reach::bind(query, &predicate);
    let rows = if predicate.params.is_empty() {
        query.fetch_all(&db.read).await?
    } else {
        let mut tx = crate::reach::without_jit(db).await?;
        let rows = query.persistent(false).fetch_all(&mut *tx).await?;
        tx.commit().await?;
        rows
    };
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let id: String = row.try_get("id")?;
        let doc: String = row.try_get("doc")?;
        out.push((id, serde_json::from_str(&doc).unwrap_or(Value::Null)));
    }
    Ok(out)
}

/// Which of `ids` (contacts of the org) `filter`'s compiled predicate keeps, for continuous
/// enrollment: on PostgreSQL the same predicate as [`page`] and reach, over just those contacts
/// (a superset where it is inexact, and contacts without a `jsonb` body always kept); `None` on
/// SQLite, which keeps every candidate. Callers still keep only what [`Filter::matches`].
pub async fn narrowed_among(
    db: &Db,
    org_id: &str,
    filter: &Filter,
    ids: &[&str],
) -> Result<Option<std::collections::HashSet<String>>, sqlx::Error> {
    if db.backend == crate::db::Backend::Sqlite || ids.is_empty() {
        return Ok(None);
    }
    let predicate = crate::reach::contacts_predicate(db, filter, 3);
    let sql = format!(
        "select d.id from (select distinct value as k from json_array_elements_text($2::json)) keys,
         lateral (select id from documents
                  where org_id = $1 and kind = 'contact' and id = keys.k and {} offset 0) d",
        predicate.sql
    );
    let keys = serde_json::to_string(ids).unwrap_or_default();
    let query = crate::reach::bind(sqlx::query(&sql).bind(org_id).bind(keys), &predicate);
    let mut tx = crate::reach::without_jit(db).await?;
    let rows = query.persistent(false).fetch_all(&mut *tx).await?;
    tx.commit().await?;
    rows.iter()
        .map(|row| row.try_get::<String, _>("id"))
        .collect::<Result<_, _>>()
        .map(Some)
}
