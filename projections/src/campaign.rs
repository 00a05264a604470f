//! The campaign read model: what `GET /crm/marketing/campaigns/:id` returns.

use herald_domain::campaign::{Campaign, CampaignEvent};
use serde_json::{json, Map, Value};

use crate::record::EventRecord;

/// One campaign as clients see it, folded from its stream.
///
/// The lifecycle state comes from the domain aggregate itself (the same `apply`), so the read
/// model cannot drift from the rules; the envelope adds who and when.
#[derive(Debug, Clone, Default)]
pub struct CampaignView {
    pub org_id: String,
    pub campaign: Campaign,
    pub created_at: String,
    pub created_by: String,
    pub updated_at: String,
    pub updated_by: String,
    pub launched_at: Option<String>,
    pub completed_at: Option<String>,
    pub deleted_at: Option<String>,
    /// Revision of the last event applied; `version` is this plus one.
    pub revision: i64,
}

/// An event in the log that this projection cannot read.
#[derive(Debug)]
pub struct UnreadableEvent(pub String);

impl std::fmt::Display for UnreadableEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "unreadable campaign event: {}", self.0)
    }
}

impl std::error::Error for UnreadableEvent {}

impl CampaignView {
    /// Applies one event of the campaign's stream. Events at or below the applied revision are
    /// ignored, so applying a record twice changes nothing.
    pub fn apply(&mut self, record: &EventRecord) -> Result<(), UnreadableEvent> {
        if !self.created_at.is_empty() && record.revision <= self.revision {
            return Ok(());
        }
        self.apply_data(record, record.data.clone())
    }

    /// [`apply`](Self::apply) with the record's `data` handed over, so that a fold over records
    /// it owns decodes each payload without copying it first.
    fn apply_data(&mut self, record: &EventRecord, data: Value) -> Result<(), UnreadableEvent> {
        if !self.created_at.is_empty() && record.revision <= self.revision {
            return Ok(());
        }
        let event = CampaignEvent::from_stored(&record.event_type, &record.event_version, data)
            .map_err(UnreadableEvent)?;
        if self.created_at.is_empty() {
            self.org_id = record.metadata.org_id.clone();
            self.created_at = record.created.clone();
            self.created_by = record.metadata.actor.clone();
        }
        match &event {
            CampaignEvent::Launched { .. } if self.launched_at.is_none() => {
                self.launched_at = Some(record.created.clone());
            }
            CampaignEvent::Completed { .. } => self.completed_at = Some(record.created.clone()),
            CampaignEvent::SoftDeleted { .. } => self.deleted_at = Some(record.created.clone()),
            _ => {}
        }
        cqrs_es::Aggregate::apply(&mut self.campaign, event);
        self.updated_at = record.created.clone();
        self.updated_by = record.metadata.actor.clone();
        self.revision = record.revision;
        Ok(())
    }

    /// Folds a whole stream.
    pub fn from_records<'a>(
        records: impl IntoIterator<Item = &'a EventRecord>,
    ) -> Result<Option<Self>, UnreadableEvent> {
        let mut view = CampaignView::default();
        for record in records {
            view.apply(record)?;
        }
        Ok((!view.created_at.is_empty()).then_some(view))
    }

    /// Folds a whole stream it owns (a replay's), moving each payload into its event.
    pub fn from_owned_records(records: Vec<EventRecord>) -> Result<Option<Self>, UnreadableEvent> {
        let mut view = CampaignView::default();
        for mut record in records {
            let data = std::mem::take(&mut record.data);
            view.apply_data(&record, data)?;
        }
        Ok((!view.created_at.is_empty()).then_some(view))
    }

    /// The resource version clients see in `version` and the `ETag`.
    pub fn version(&self) -> i64 {
        self.revision + 1
    }

    /// The JSON body of the campaign resource.
    pub fn to_json(&self) -> Value {
        let c = &self.campaign;
        let mut doc = match serde_json::to_value(c.spec()) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        };
        let last_run = c.last_run().map(|run| {
            json!({
                "runId": run.run_id,
                "at": run.at,
                "reach": run.reach,
                "channels": run.channels,
                "skipped": run.skipped,
                "capped": run.capped,
                "zoneFallbacks": run.zone_fallbacks,
            })
        });
        let fields = json!({
            "id": c.id(),
            "orgId": self.org_id,
            "status": c.status().as_str(),
            "state": if c.is_deleted() { "deleted" } else { "active" },
            "version": self.version(),
            "nextRunAt": c.next_run_at(),
            "blockers": c.blockers(),
            "lastRun": last_run,
            "launchedAt": self.launched_at,
            "completedAt": self.completed_at,
            "deletedAt": self.deleted_at,
            "createdAt": self.created_at,
            "createdBy": self.created_by,
            "updatedAt": self.updated_at,
            "updatedBy": self.updated_by,
        });
        if let Value::Object(fields) = fields {
            doc.extend(fields);
        }
        Value::Object(doc)
    }
}
