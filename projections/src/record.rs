//! The stored shape of one event: what every projection reads.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One event as the log holds it (EventStoreDB-style record, `api.md` section 8).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventRecord {
    pub event_id: String,
    pub stream_id: String,
    pub revision: i64,
    pub position: i64,
    pub event_type: String,
    pub event_version: String,
    /// RFC 3339 UTC with microseconds, e.g. `2026-05-01T09:00:00.000000Z`.
    pub created: String,
    pub data: Value,
    pub metadata: Metadata,
}

/// Who and what caused an event.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    pub actor: String,
    pub org_id: String,
    pub request_id: String,
    pub correlation_id: String,
    pub causation_id: String,
}

/// The stream id of an org's campaign: `campaign-<orgId>:<id>`.
pub fn campaign_stream(org_id: &str, campaign_id: &str) -> String {
    format!("campaign-{org_id}:{campaign_id}")
}
