//! An erasure that commits between the analytics projection's read of a batch and its apply
//! (it found no activity row of the contact to rewrite yet): the rows that batch writes for the
//! erased contact keep none of the free text its events held.

use herald::db::Db;
use herald::projector::{self, Projection};
use herald::store::{self, NewEvent};
use serde_json::{json, Value};

use crate::helpers::{fresh_database, Backend};

const REASON: &str = "550 5.1.1 <Quill.Feather@race.example>: no such mailbox";

async fn a_batch_read_before_an_erasure_keeps_no_free_text(backend: Backend) {
    let (url, _dir) = fresh_database(backend).await;
    let db = Db::connect(&url, 4).await.expect("connect");
    db.migrate().await.expect("migrate");
    let metadata = crate::catch_up::metadata();
    let bounce = |contact: &str| NewEvent {
        event_type: herald_domain::engagement::EVENT_TYPE.into(),
        event_version: "1".into(),
        data: json!({"campaignId": "camp-race", "contactId": contact, "channel": "email",
            "type": "bounce", "occurredAt": "2026-12-01T10:00:00Z", "source": "mailgun",
            "reason": REASON}),
    };
    // The log as the projection read it: the vendor's bounces, text and all, for the contact
    // being erased and for another one.
    let mut tx = db.begin().await.expect("begin");
    for contact in ["ct-erased", "ct-kept"] {
        let stream = format!("delivery-acme:camp-race:-:{contact}:email");
        store::append(
            &mut tx,
            db.backend,
            &stream,
            0,
            &[bounce(contact)],
            &metadata,
            chrono::Utc::now(),
        )
        .await
        .expect("append");
    }
    tx.commit().await.expect("commit");
    // The erasure's commit: the contact is listed as erased (its rewrite of the log and of the
    // activity rows is beside the point here: there was no row yet).
    sqlx::query(
        "insert into erased_contacts (org_id, contact_id, erased_at)
         values ('acme', 'ct-erased', '2026-12-01T10:00:01Z')",
    )
    .execute(&db.write)
    .await
    .expect("erase");

    // On PostgreSQL the gap-safe read leaves the batch until every older transaction of the
    // cluster has ended (other tests' databases hold some open for seconds).
    let applied = std::cell::Cell::new(0);
    crate::helpers::eventually(std::time::Duration::from_secs(60), || async {
        applied.set(
            projector::step(&db, Projection::Analytics)
                .await
                .expect("step"),
        );
        applied.get() > 0
    })
    .await;
    assert_eq!(applied.get(), 2);
    let rows: Vec<(String, String)> = sqlx::query_as(
        "select contact_id, detail from contact_activities where type = 'bounce' order by contact_id",
    )
    .fetch_all(&db.read)
    .await
    .expect("activities");
    let reasons: Vec<(String, Value)> = rows
        .into_iter()
        .map(|(contact, detail)| {
            let detail: Value = serde_json::from_str(&detail).expect("detail");
            (contact, detail["reason"].clone())
        })
        .collect();
    assert_eq!(
        reasons,
        vec![
            ("ct-erased".to_string(), json!(herald::erased::ERASED)),
            ("ct-kept".to_string(), json!(REASON)),
        ]
    );
}

#[tokio::test]
async fn a_batch_read_before_an_erasure_keeps_no_free_text_on_sqlite() {
    a_batch_read_before_an_erasure_keeps_no_free_text(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_batch_read_before_an_erasure_keeps_no_free_text_on_postgres() {
    a_batch_read_before_an_erasure_keeps_no_free_text(Backend::Postgres).await;
}
