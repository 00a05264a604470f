//! Read model of the simple document resources (contacts, audiences, templates, connections).

use herald_domain::document::{Document, DocumentEvent, DocumentKind};
use serde_json::{Map, Value};

use crate::record::EventRecord;

/// One document as clients see it, folded from its stream.
#[derive(Debug, Clone, Default)]
pub struct DocumentView {
    pub org_id: String,
    pub document: Document,
    pub created_at: String,
    pub updated_at: String,
    pub created_by: String,
    pub updated_by: String,
    pub revision: i64,
}

impl DocumentView {
    /// Applies one stored event; records at or below the applied revision are ignored.
    pub fn apply(&mut self, record: &EventRecord) -> Result<(), String> {
        if self.document.exists && record.revision <= self.revision {
            return Ok(());
        }
        let event = DocumentEvent::from_stored(&record.event_type, &record.data)?;
        if !self.document.exists {
            self.org_id = record.metadata.org_id.clone();
            self.created_at = record.created.clone();
            self.created_by = record.metadata.actor.clone();
        }
        self.document.apply(event);
        self.updated_at = record.created.clone();
        self.updated_by = record.metadata.actor.clone();
        self.revision = record.revision;
        Ok(())
    }

    /// Folds a whole stream; `None` when it holds no document.
    pub fn from_records<'a>(
        records: impl IntoIterator<Item = &'a EventRecord>,
    ) -> Result<Option<Self>, String> {
        let mut view = DocumentView::default();
        for record in records {
            view.apply(record)?;
        }
        Ok(view.document.exists.then_some(view))
    }

    pub fn version(&self) -> i64 {
        self.revision + 1
    }

    /// The resource body: the stored fields plus the server-owned ones.
    pub fn to_json(&self, kind: DocumentKind) -> Value {
        let mut doc = match &self.document.body {
            Value::Object(map) => map.clone(),
            _ => Map::new(),
        };
        doc.insert("id".into(), Value::String(self.document.id.clone()));
        doc.insert("orgId".into(), Value::String(self.org_id.clone()));
        doc.insert("version".into(), Value::from(self.version()));
        doc.insert("createdAt".into(), Value::String(self.created_at.clone()));
        doc.insert("updatedAt".into(), Value::String(self.updated_at.clone()));
        if kind == DocumentKind::Contact {
            doc.entry("tags").or_insert_with(|| Value::Array(vec![]));
            doc.entry("attributes")
                .or_insert_with(|| Value::Object(Map::new()));
            // No `unsubscribed`: the API derives it from the suppression list
            // (`src/suppressions.rs`), and the stored body must equal a parsed one.
        } else {
            doc.insert("createdBy".into(), Value::String(self.created_by.clone()));
            doc.insert("updatedBy".into(), Value::String(self.updated_by.clone()));
        }
        Value::Object(doc)
    }
}
