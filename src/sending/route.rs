//! Which connection each channel of a run goes through, and its vendor adapter built once with
//! the connection's decrypted credentials.

use std::sync::Arc;

use herald_domain::connection::Vendor;
use herald_domain::spec::{CampaignSpec, Channel};
use serde_json::{json, Map, Value};
use sqlx::Row;

use crate::db::Db;
use crate::secrets::{Sealed, Sealer};
use crate::vendors::{self, Adapter, ConnectionConfig};

/// One channel's route for a run: the connection it goes through, built once.
pub struct Route {
    pub channel: Channel,
    /// The connection the channel goes through.
    pub connection_id: String,
    /// `None` for a stored vendor this version does not know (its adapter says so).
    pub vendor: Option<Vendor>,
    pub settings: Value,
    /// The profile a social post is made from (or the connection id when it has none).
    pub profile: String,
    /// `None` for the sandbox; a build error fails every message of the channel for good.
    pub adapter: Option<Result<Box<dyn Adapter>, String>>,
}

impl Route {
    pub fn is_sandbox(&self) -> bool {
        self.vendor == Some(Vendor::Sandbox)
    }
}

/// Finds routes: reads connections, opens their credentials and builds adapters.
pub struct Routing {
    db: Db,
    sealer: Arc<Sealer>,
    http: crate::vendors::Outbound,
}

impl Routing {
    pub fn new(db: Db, sealer: Arc<Sealer>, http: crate::vendors::Outbound) -> Routing {
        Routing { db, sealer, http }
    }

    /// Where vendor calls may go.
    pub fn outbound_policy(&self) -> &crate::vendors::OutboundPolicy {
        &self.http.policy
    }

    /// The connection a channel goes through: `channelSettings.<channel>.connectionId` when set,
    /// for a social channel the one holding `socialProfiles.<channel>`, else the oldest.
    pub async fn route(
        &self,
        org_id: &str,
        channel: Channel,
        spec: &CampaignSpec,
    ) -> Result<Option<Route>, sqlx::Error> {
        let rows = sqlx::query(
            "select id, doc from documents where org_id = $1 and kind = 'connection' and lookup = $2
             order by created_at, id",
        )
        .bind(org_id)
        .bind(channel.id())
        .fetch_all(&self.db.read)
        .await?;
        let connections: Vec<(String, Value)> = rows
            .iter()
            .filter_map(|row| {
                let id: String = row.try_get("id").ok()?;
                let doc: String = row.try_get("doc").ok()?;
                Some((id, serde_json::from_str(&doc).ok()?))
            })
            .collect();
        let wanted_connection = spec
            .channel_settings
            .as_ref()
            .and_then(|s| s.get(channel.id()))
            .and_then(|s| s.get("connectionId"))
            .and_then(Value::as_str);
        let wanted_profile = spec.social_profiles.get(channel.id());
        let has_profile = |doc: &Value, profile: &str| {
            doc["profiles"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|p| p["id"] == profile))
        };
        let chosen = connections
            .iter()
            .find(|(id, _)| Some(id.as_str()) == wanted_connection)
            .or_else(|| {
                wanted_profile.and_then(|p| connections.iter().find(|(_, doc)| has_profile(doc, p)))
            })
            .or_else(|| connections.first());
        let Some((id, doc)) = chosen else {
            return Ok(None);
        };
        let vendor_id = doc["vendor"].as_str().unwrap_or_default().to_string();
        let vendor = Vendor::parse(&vendor_id);
        let settings = doc.get("settings").cloned().unwrap_or_else(|| json!({}));
        let profile = wanted_profile
            .filter(|p| has_profile(doc, p))
            .cloned()
            .or_else(|| doc["profiles"][0]["id"].as_str().map(str::to_string))
            .unwrap_or_else(|| id.clone());
        let adapter = if vendor == Some(Vendor::Sandbox) {
            None
        } else {
            let credentials = self.credentials(org_id, id).await?;
            let config = ConnectionConfig {
                vendor: vendor_id,
                settings: settings.clone(),
                credentials,
            };
            Some(vendors::adapter_for(&config, self.http.clone()))
        };
        Ok(Some(Route {
            channel,
            connection_id: id.clone(),
            vendor,
            settings,
            profile,
            adapter,
        }))
    }

    async fn credentials(
        &self,
        org_id: &str,
        connection_id: &str,
    ) -> Result<Map<String, Value>, sqlx::Error> {
        let row = sqlx::query(
            "select nonce, ciphertext from connection_secrets where org_id = $1 and id = $2",
        )
        .bind(org_id)
        .bind(connection_id)
        .fetch_optional(&self.db.read)
        .await?;
        let Some(row) = row else {
            return Ok(Map::new());
        };
        let sealed = Sealed {
            nonce: row.try_get("nonce")?,
            ciphertext: row.try_get("ciphertext")?,
        };
        Ok(self
            .sealer
            .open_for(org_id, connection_id, &sealed)
            .and_then(|plain| serde_json::from_slice(&plain).ok())
            .unwrap_or_default())
    }
}
