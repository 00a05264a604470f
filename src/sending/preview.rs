//! Dry runs and test sends (`api.md` section 2): a campaign's messages rendered for one contact,
//! sending nothing, and one `[Test]` message sent through the campaign's connection.
//!
//! Both render under the run [`TEST_RUN`]: their tracking links resolve (a click still
//! redirects) but record nothing, so a tester's clicks never reach analytics. A test send
//! writes no ledger row, no `SendsRecorded` event and no frequency-cap count; it is logged as a
//! `TestSent` event on a stream of its own.

use herald_domain::spec::{CampaignSpec, Category, Channel};
use herald_domain::template::CompiledTemplate;
use herald_projections::record::Metadata;
use serde_json::{json, Map, Value};

use super::ledger;
use super::message::{address, Prepared, RunCtx};
use super::report::SendRunError;
use super::route::Route;
use super::run::Sender;
use crate::db::Db;
use crate::store::{self, format_time, NewEvent};

/// The run id of previews and test sends. Not a valid run id (those are `run-…` or
/// `step-…`), so no real run can take it.
pub const TEST_RUN: &str = "test";
/// The contact id of a test send with no contact.
const TEST_CONTACT: &str = "test";
/// The event type of a test send.
pub const TEST_SENT_EVENT_TYPE: &str = "TestSent";

/// The stream of one test send: `testsend-<org>:<campaign>:<id>`.
pub fn test_stream(org_id: &str, campaign_id: &str, id: &str) -> String {
    format!("testsend-{org_id}:{campaign_id}:{id}")
}

/// Why a test send did not go out.
#[derive(Debug, thiserror::Error)]
pub enum TestSendError {
    /// The campaign or its template cannot make the message (`409`).
    #[error("{0}")]
    Unsendable(String),
    /// The vendor refused or failed (`502`); the text is the adapter's, secrets redacted.
    #[error("the vendor did not accept the test message: {0}")]
    Vendor(String),
    #[error(transparent)]
    Run(#[from] SendRunError),
}

impl From<sqlx::Error> for TestSendError {
    fn from(error: sqlx::Error) -> Self {
        TestSendError::Run(SendRunError::Db(error))
    }
}

/// What a test send did.
pub struct TestSent {
    pub message: Value,
    pub event_position: i64,
}

impl Sender {
    /// The campaign's messages for `contact`, every channel, with their tracking URLs; for a
    /// drip or milestone campaign, each step's too. Sends nothing, writes nothing.
    pub async fn preview(
        &self,
        org_id: &str,
        campaign: &Value,
        spec: &CampaignSpec,
        contact_id: &str,
        contact: &Value,
    ) -> Result<Value, SendRunError> {
        let campaign_id = campaign["id"].as_str().unwrap_or_default();
        let mut out = Map::new();
        out.insert("campaignId".into(), json!(campaign_id));
        out.insert("contactId".into(), json!(contact_id));
        match spec.template_id.as_deref() {
            Some(template_id) => {
                let template = self.template_by_id(org_id, template_id).await?;
                let messages = self
                    .render_all(org_id, campaign, spec, None, &template, contact_id, contact)
                    .await?;
                out.insert("templateId".into(), json!(template_id));
                out.insert("messages".into(), Value::Array(messages));
            }
            None if spec.steps.is_empty() => {
                return Err(SendRunError::Setup("the campaign has no template".into()));
            }
            None => {}
        }
        if !spec.steps.is_empty() {
            let mut steps = Vec::new();
            for step in &spec.steps {
                let Some(template_id) = step.template_id.as_ref().or(spec.template_id.as_ref())
                else {
                    steps.push(json!({"id": step.id, "error": "the step has no template"}));
                    continue;
                };
                let template = match self.template_by_id(org_id, template_id).await {
                    Ok(template) => template,
                    Err(SendRunError::Setup(reason)) => {
                        steps.push(
                            json!({"id": step.id, "templateId": template_id, "error": reason}),
                        );
                        continue;
                    }
                    Err(error) => return Err(error),
                };
                let step_spec = CampaignSpec {
                    channels: step.channels_of(&spec.channels),
                    ..spec.clone()
                };
                let messages = self
                    .render_all(
                        org_id,
                        campaign,
                        &step_spec,
                        Some(&step.id),
                        &template,
                        contact_id,
                        contact,
                    )
                    .await?;
                steps.push(json!({"id": step.id, "templateId": template_id, "messages": messages}));
            }
            out.insert("steps".into(), Value::Array(steps));
        }
        Ok(Value::Object(out))
    }

    /// One rendered message per channel of `spec`.
    #[allow(clippy::too_many_arguments)]
    async fn render_all(
        &self,
        org_id: &str,
        campaign: &Value,
        spec: &CampaignSpec,
        step_id: Option<&str>,
        template: &CompiledTemplate,
        contact_id: &str,
        contact: &Value,
    ) -> Result<Vec<Value>, SendRunError> {
        let ctx = RunCtx {
            org_id,
            campaign_id: campaign["id"].as_str().unwrap_or_default(),
            run_id: TEST_RUN,
            step_id,
            lease: None,
            campaign,
            template,
        };
        let mut messages = Vec::new();
        for channel in &spec.channels {
            let channel = *channel;
            let entry = match channel.kind() {
                Category::Email | Category::Sms => {
                    let to = address(channel, contact);
                    let prepared = self.composer().prepare_message(
                        &ctx,
                        channel,
                        contact_id,
                        contact,
                        to.clone().unwrap_or_default(),
                    );
                    let mut entry = describe(&prepared);
                    entry["to"] = json!(to);
                    entry["unsubscribed"] = json!(contact["unsubscribed"][channel.id()]
                        .as_bool()
                        .unwrap_or(false));
                    entry
                }
                Category::Social => {
                    let route = match self.routing().route(org_id, channel, spec).await? {
                        Some(route) => route,
                        None => unconnected(channel, spec),
                    };
                    let mut entry = describe(&self.composer().prepare_post(&ctx, &route));
                    entry["to"] = json!(route.profile);
                    entry
                }
                Category::Ads => json!({
                    "channel": channel,
                    "error": format!("{channel} runs inside the ads platform; nothing is sent per contact"),
                }),
            };
            messages.push(entry);
        }
        Ok(messages)
    }

    /// Sends one `[Test]` message on `channel` (email or SMS) to `to` through the campaign's
    /// connection, rendered for `contact` (or for a contact holding only that address), and
    /// logs it as `TestSent` with its actor.
    #[allow(clippy::too_many_arguments)]
    pub async fn test_send(
        &self,
        metadata: &Metadata,
        campaign: &Value,
        spec: &CampaignSpec,
        channel: Channel,
        to: &str,
        contact: Option<(&str, &Value)>,
    ) -> Result<TestSent, TestSendError> {
        let org_id = metadata.org_id.as_str();
        let campaign_id = campaign["id"].as_str().unwrap_or_default();
        let template_id = spec
            .template_id
            .as_deref()
            .or_else(|| spec.steps.first().and_then(|s| s.template_id.as_deref()))
            .ok_or_else(|| TestSendError::Unsendable("the campaign has no template".into()))?;
        let template = match self.template_by_id(org_id, template_id).await {
            Ok(template) => template,
            Err(SendRunError::Setup(reason)) => return Err(TestSendError::Unsendable(reason)),
            Err(error) => return Err(error.into()),
        };
        let route = self
            .routing()
            .route(org_id, channel, spec)
            .await?
            .ok_or_else(|| TestSendError::Unsendable(format!("{channel} is not connected")))?;
        let field = if channel == Channel::Email {
            "email"
        } else {
            "phone"
        };
        let stand_in = json!({"id": TEST_CONTACT, field: to});
        let (contact_id, contact) = match contact {
            Some((id, contact)) => {
                let mut contact = contact.clone();
                contact[field] = json!(to);
                (id, contact)
            }
            None => (TEST_CONTACT, stand_in),
        };
        let ctx = RunCtx {
            org_id,
            campaign_id,
            run_id: TEST_RUN,
            step_id: None,
            lease: None,
            campaign,
            template: &template,
        };
        let mut prepared =
            self.composer()
                .prepare_message(&ctx, channel, contact_id, &contact, to.to_string());
        let message = match &mut prepared.message {
            Ok(message) => message,
            Err(reason) => return Err(TestSendError::Unsendable(reason.clone())),
        };
        match channel {
            Channel::Email => {
                message.subject = Some(format!(
                    "[Test] {}",
                    message.subject.as_deref().unwrap_or("")
                ));
            }
            _ => message.body = Some(format!("[Test] {}", message.body.as_deref().unwrap_or(""))),
        }
        message.idempotency_key = format!("{TEST_RUN}:{}:{}", uuid::Uuid::now_v7(), channel.id());
        let message = message.clone();
        let provider_message_id = match &route.adapter {
            None => None,
            Some(Err(reason)) => return Err(TestSendError::Vendor(reason.clone())),
            Some(Ok(adapter)) => {
                adapter
                    .send(&message)
                    .await
                    .map_err(|e| TestSendError::Vendor(e.to_string()))?
                    .provider_message_id
            }
        };
        let now = chrono::Utc::now();
        let id = uuid::Uuid::now_v7().to_string();
        let db: &Db = self.db();
        let mut tx = db.begin().await?;
        // A short link of an SMS resolves like a real one's (its click records nothing).
        ledger::insert_short_links(&mut tx, &ctx, [&prepared], &format_time(now)).await?;
        if route.is_sandbox() {
            ledger::insert_outbox(&mut tx, &ctx, &[(&prepared, &message)], &format_time(now))
                .await?;
        }
        let data = json!({
            "campaignId": campaign_id,
            "channel": channel,
            "to": to,
            "contactId": (contact_id != TEST_CONTACT).then_some(contact_id),
            "connectionId": route.connection_id,
            "templateId": template_id,
            "providerMessageId": provider_message_id,
            "at": format_time(now),
        });
        let event = NewEvent {
            event_type: TEST_SENT_EVENT_TYPE.to_string(),
            event_version: "1".to_string(),
            data: data.clone(),
        };
        let stream = test_stream(org_id, campaign_id, &id);
        let stored = store::append(&mut tx, db.backend, &stream, 0, &[event], metadata, now)
            .await
            .map_err(|e| match e {
                store::AppendError::Db(e) => TestSendError::from(e),
                store::AppendError::Conflict => {
                    TestSendError::Unsendable("the test send was recorded twice".into())
                }
            })?;
        tx.commit().await?;
        let mut out = describe(&prepared);
        out["to"] = json!(to);
        out["connectionId"] = json!(route.connection_id);
        out["sandbox"] = json!(route.is_sandbox());
        out["providerMessageId"] = json!(provider_message_id);
        // What went out, not what was rendered before the prefix.
        if let Some(subject) = &message.subject {
            out["subject"] = json!(subject);
        }
        if let Some(body) = &message.body {
            out["body"] = json!(body);
        }
        Ok(TestSent {
            message: out,
            event_position: stored.first().map_or(0, |s| s.record.position),
        })
    }
}

/// A prepared message as a preview shows it.
fn describe(prepared: &Prepared) -> Value {
    let mut out = json!({"channel": prepared.channel});
    match &prepared.message {
        Ok(message) => {
            for (key, value) in [
                ("subject", &message.subject),
                ("html", &message.html),
                ("text", &message.text),
                ("body", &message.body),
                ("link", &message.link),
                ("imageUrl", &message.image_url),
            ] {
                if let Some(value) = value {
                    out[key] = json!(value);
                }
            }
            if !message.headers.is_empty() {
                out["headers"] = json!(message.headers);
            }
            if prepared.channel.kind() != Category::Social {
                out["tracking"] = prepared.tracking.clone();
            }
        }
        Err(reason) => out["error"] = json!(reason),
    }
    out
}

/// The route a preview shows for a social channel with no connection: its profile, if set.
fn unconnected(channel: Channel, spec: &CampaignSpec) -> Route {
    Route {
        channel,
        connection_id: String::new(),
        vendor: None,
        settings: Value::Null,
        profile: spec
            .social_profiles
            .get(channel.id())
            .cloned()
            .unwrap_or_default(),
        adapter: None,
    }
}
