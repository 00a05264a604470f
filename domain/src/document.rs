//! Simple document resources (contacts, audiences, templates, connections): an aggregate that
//! owns existence, versions and deletion, while each kind's body is validated by its own parser.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The kinds of document resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DocumentKind {
    Contact,
    Audience,
    Template,
    Connection,
}

impl DocumentKind {
    /// Stream prefix and read-model kind: `contact-<org>:<id>`.
    pub fn as_str(self) -> &'static str {
        match self {
            DocumentKind::Contact => "contact",
            DocumentKind::Audience => "audience",
            DocumentKind::Template => "template",
            DocumentKind::Connection => "connection",
        }
    }

    /// Prefix of server-made ids.
    pub fn id_prefix(self) -> &'static str {
        match self {
            DocumentKind::Contact => "ct-",
            DocumentKind::Audience => "aud-",
            DocumentKind::Template => "tpl-",
            DocumentKind::Connection => "conn-",
        }
    }

    /// Name used in messages: "contact", "audience"...
    pub fn noun(self) -> &'static str {
        self.as_str()
    }

    fn title(self) -> &'static str {
        match self {
            DocumentKind::Contact => "Contact",
            DocumentKind::Audience => "Audience",
            DocumentKind::Template => "Template",
            DocumentKind::Connection => "Connection",
        }
    }

    /// The stored event type, e.g. `ContactCreated`.
    pub fn event_type(self, event: &DocumentEvent) -> String {
        let verb = match event {
            DocumentEvent::Created { .. } => "Created",
            DocumentEvent::Updated { .. } => "Updated",
            DocumentEvent::Deleted {} => "Deleted",
        };
        format!("{}{verb}", self.title())
    }
}

/// What a client asks of a document.
#[derive(Debug, Clone, PartialEq)]
pub enum DocumentCommand {
    Create {
        id: String,
        body: Value,
    },
    /// Create when absent, replace when present (imports).
    Upsert {
        id: String,
        body: Value,
    },
    Replace {
        body: Value,
    },
    Delete,
}

/// What happened to a document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DocumentEvent {
    Created { id: String, body: Value },
    Updated { body: Value },
    Deleted {},
}

impl DocumentEvent {
    /// The payload as stored (`data`).
    pub fn data(&self) -> Value {
        match self {
            DocumentEvent::Created { id, body } => serde_json::json!({ "id": id, "body": body }),
            DocumentEvent::Updated { body } => serde_json::json!({ "body": body }),
            DocumentEvent::Deleted {} => serde_json::json!({}),
        }
    }

    /// Reads a stored event back from its type name (`ContactCreated`...) and payload.
    pub fn from_stored(event_type: &str, data: &Value) -> Result<DocumentEvent, String> {
        let body = || data.get("body").cloned().unwrap_or(Value::Null);
        if event_type.ends_with("Created") {
            let id = data
                .get("id")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("{event_type} without an id"))?;
            Ok(DocumentEvent::Created {
                id: id.to_string(),
                body: body(),
            })
        } else if event_type.ends_with("Updated") {
            Ok(DocumentEvent::Updated { body: body() })
        } else if event_type.ends_with("Deleted") {
            Ok(DocumentEvent::Deleted {})
        } else {
            Err(format!("unknown document event {event_type}"))
        }
    }
}

/// Why a document command was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DocumentError {
    #[error("a {0} with this id already exists")]
    AlreadyExists(&'static str),
    #[error("no such {0}")]
    NotFound(&'static str),
}

/// One document's state, folded from its stream.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Document {
    pub id: String,
    pub body: Value,
    pub exists: bool,
    pub deleted: bool,
    /// Events applied so far.
    pub version: i64,
}

impl Document {
    /// Checks a command against the current state and returns the events it causes. A replace
    /// with an identical body causes none.
    pub fn decide(
        &self,
        kind: DocumentKind,
        command: DocumentCommand,
    ) -> Result<Vec<DocumentEvent>, DocumentError> {
        let live = self.exists && !self.deleted;
        match command {
            DocumentCommand::Create { id, body } => {
                if self.exists {
                    return Err(DocumentError::AlreadyExists(kind.noun()));
                }
                Ok(vec![DocumentEvent::Created { id, body }])
            }
            DocumentCommand::Upsert { id, body } => {
                if !self.exists {
                    Ok(vec![DocumentEvent::Created { id, body }])
                } else if self.deleted {
                    Err(DocumentError::AlreadyExists(kind.noun()))
                } else if self.body == body {
                    Ok(vec![])
                } else {
                    Ok(vec![DocumentEvent::Updated { body }])
                }
            }
            DocumentCommand::Replace { body } => {
                if !live {
                    return Err(DocumentError::NotFound(kind.noun()));
                }
                if self.body == body {
                    return Ok(vec![]);
                }
                Ok(vec![DocumentEvent::Updated { body }])
            }
            DocumentCommand::Delete => {
                if !live {
                    return Err(DocumentError::NotFound(kind.noun()));
                }
                Ok(vec![DocumentEvent::Deleted {}])
            }
        }
    }

    /// Folds one event. Cannot fail.
    pub fn apply(&mut self, event: DocumentEvent) {
        match event {
            DocumentEvent::Created { id, body } => {
                self.id = id;
                self.body = body;
                self.exists = true;
            }
            DocumentEvent::Updated { body } => self.body = body,
            DocumentEvent::Deleted {} => self.deleted = true,
        }
        self.version += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn created() -> Document {
        let mut doc = Document::default();
        doc.apply(DocumentEvent::Created {
            id: "ct-1".into(),
            body: json!({"email": "a@x.test"}),
        });
        doc
    }

    #[test]
    fn creating_twice_is_refused() {
        let err = created()
            .decide(
                DocumentKind::Contact,
                DocumentCommand::Create {
                    id: "ct-1".into(),
                    body: json!({}),
                },
            )
            .unwrap_err();
        assert_eq!(err, DocumentError::AlreadyExists("contact"));
    }

    #[test]
    fn replacing_with_the_same_body_changes_nothing() {
        let events = created()
            .decide(
                DocumentKind::Contact,
                DocumentCommand::Replace {
                    body: json!({"email": "a@x.test"}),
                },
            )
            .unwrap();
        assert!(events.is_empty());
    }

    #[test]
    fn upsert_creates_then_updates() {
        let fresh = Document::default();
        let events = fresh
            .decide(
                DocumentKind::Contact,
                DocumentCommand::Upsert {
                    id: "ct-1".into(),
                    body: json!({"a": 1}),
                },
            )
            .unwrap();
        assert!(matches!(events[0], DocumentEvent::Created { .. }));
        let events = created()
            .decide(
                DocumentKind::Contact,
                DocumentCommand::Upsert {
                    id: "ct-1".into(),
                    body: json!({"a": 2}),
                },
            )
            .unwrap();
        assert_eq!(
            events,
            vec![DocumentEvent::Updated {
                body: json!({"a": 2})
            }]
        );
    }

    #[test]
    fn a_deleted_document_cannot_be_changed_or_deleted_again() {
        let mut doc = created();
        doc.apply(DocumentEvent::Deleted {});
        for command in [
            DocumentCommand::Replace { body: json!({}) },
            DocumentCommand::Delete,
        ] {
            assert_eq!(
                doc.decide(DocumentKind::Audience, command).unwrap_err(),
                DocumentError::NotFound("audience")
            );
        }
    }

    #[test]
    fn event_types_are_named_by_kind() {
        assert_eq!(
            DocumentKind::Template.event_type(&DocumentEvent::Deleted {}),
            "TemplateDeleted"
        );
        let data = DocumentEvent::Created {
            id: "tpl-1".into(),
            body: json!({"name": "x"}),
        }
        .data();
        assert_eq!(
            DocumentEvent::from_stored("TemplateCreated", &data).unwrap(),
            DocumentEvent::Created {
                id: "tpl-1".into(),
                body: json!({"name": "x"})
            }
        );
    }
}
