//! What an erasure leaves in place of free text, and the lookup of erased contacts: shared by
//! the erasure (`erasure.rs`), the engagement recorder and the analytics projection, which
//! blank the text of a contact erased before their batch commits.

use std::collections::BTreeSet;

use serde_json::{Map, Value};
use sqlx::Row;

use crate::db::Tx;
use crate::store;

/// What replaces a free-text field that may quote the person (a click's link, a bounce's
/// reason) in their engagement events and activities.
pub const ERASED: &str = "[erased]";

/// Which of `contacts` (org, contact id) were erased: one query per batch of the engagement
/// recorder or the analytics projection (`erased_contacts`, written by the erasure's first
/// transaction).
pub async fn erased_among(
    tx: &mut Tx,
    contacts: &BTreeSet<(&str, &str)>,
) -> Result<BTreeSet<(String, String)>, sqlx::Error> {
    let mut erased = BTreeSet::new();
    if contacts.is_empty() {
        return Ok(erased);
    }
    let sql = format!(
        "select org_id, contact_id from erased_contacts where (org_id, contact_id) in (values {})",
        store::param_rows("", 1, 2, contacts.len())
    );
    let mut query = sqlx::query(&sql);
    for (org, contact) in contacts {
        query = query.bind(*org).bind(*contact);
    }
    for row in query.fetch_all(&mut **tx).await? {
        erased.insert((row.try_get("org_id")?, row.try_get("contact_id")?));
    }
    Ok(erased)
}

/// Replaces an engagement's (or activity's) `link` and `reason`, the fields that carry text
/// from outside (a personalised link, a vendor's bounce message quoting the address); whether
/// anything changed.
pub fn blank_free_text(data: &mut Value) -> bool {
    let Some(object) = data.as_object_mut() else {
        return false;
    };
    FREE_TEXT
        .iter()
        .fold(false, |changed, field| blank(object, field) | changed)
}

/// Whether [`blank_free_text`] would change `data`.
pub fn has_free_text(data: &Value) -> bool {
    FREE_TEXT
        .iter()
        .any(|field| data.get(*field).is_some_and(not_erased))
}

/// The fields that carry text from outside.
const FREE_TEXT: [&str; 2] = ["link", "reason"];

fn not_erased(value: &Value) -> bool {
    value.is_string() && value != ERASED
}

fn blank(object: &mut Map<String, Value>, field: &str) -> bool {
    match object.get_mut(field) {
        Some(value) if not_erased(value) => {
            *value = Value::String(ERASED.to_string());
            true
        }
        _ => false,
    }
}
