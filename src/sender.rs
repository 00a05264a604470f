//! The send fan-out of one launched run: streams the audience a page at a time, renders the
//! template per contact, and delivers through each channel's connection, writing the send
//! ledger first so that no (run, contact, channel) is ever sent twice, whoever retries.
//!
//! Sandbox connections record the message in `sandbox_messages` in the same transaction as the
//! ledger row. Real vendors get a `sending` ledger row committed before the call, so a crash
//! during the call leaves the row and the contact is not sent again (at most once); the outcome
//! (`sent` / `failed`, after retries with backoff and jitter) is written after the call.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use herald_domain::document::DocumentKind;
use herald_domain::query::{parse_filter, Filter};
use herald_domain::spec::{CampaignSpec, Channel};
use herald_domain::template::{CompiledTemplate, RenderContext, TemplateContent};
use herald_domain::tracking::{self, TrackingClaims, TrackingKind};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sqlx::Row;

use crate::channels::{self, Adapter, ConnectionConfig, OutboundMessage, SendError};
use crate::db::Db;
use crate::scheduler::Lease;
use crate::secrets::{Sealed, Sealer};
use crate::store::{self, format_time, AppendError, NewEvent};
use crate::{campaigns, documents};
use herald_domain::engagement::{run_stream, SendsRecorded, SENDS_EVENT_TYPE};
use herald_projections::record::Metadata;

/// Contacts read, rendered and recorded per transaction: memory stays flat whatever the audience.
pub const PAGE: i64 = 500;

/// Vendor calls in flight at once for one run.
const VENDOR_CONCURRENCY: usize = 16;

/// Calls made for one message before a retryable failure counts as failed for good.
const MAX_SEND_ATTEMPTS: u32 = 4;

/// The longest pause between two calls for one message, whatever `Retry-After` asks.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(30);

/// A contact id that cannot clash with a real one (ids have no `:`): social posts are made once
/// per run, from a profile, and are recorded in the ledger under it.
fn profile_key(profile: &str) -> String {
    format!("profile:{profile}")
}

/// What a `send` job carries: taken from the run's `Launched` event.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunPlan {
    /// Channels the run went out on.
    pub channels: Vec<Channel>,
    /// When the `Launched` event was written: the audience is the contacts that existed then.
    pub launched_at: String,
}

/// How far a fan-out got.
#[derive(Debug)]
pub enum RunOutcome {
    /// Every eligible (contact, channel) is in the ledger: sent, or failed for good.
    Finished(RunReport),
    /// Stopped early (shutdown, or the job's lease was lost); the next attempt resumes.
    Interrupted,
    /// The campaign is paused: try again later.
    Paused,
    /// Nothing more will be sent for this run (the campaign was deleted or completed).
    Cancelled(String),
}

/// Counts of one fan-out attempt (a resumed run counts what this attempt did).
#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunReport {
    pub sent: u64,
    pub failed: u64,
    pub already_in_ledger: u64,
    pub skipped_unsubscribed: u64,
    pub skipped_no_address: u64,
    pub channels_without_connection: Vec<Channel>,
}

/// Why a fan-out could not run; the job is retried and, in the end, dead-lettered.
#[derive(Debug, thiserror::Error)]
pub enum SendRunError {
    #[error("{0}")]
    Setup(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Everything a fan-out needs from the process: the database, the keys and the HTTP client.
pub struct Sender {
    db: Db,
    sealer: Arc<Sealer>,
    tracking_key: Vec<u8>,
    public_url: Arc<str>,
    http: reqwest::Client,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("public_url", &self.public_url)
            .finish_non_exhaustive()
    }
}

/// One channel's route for a run: the connection it goes through, built once.
struct Route {
    channel: Channel,
    /// The connection the channel goes through.
    connection_id: String,
    vendor: String,
    settings: Value,
    /// The profile a social post is made from (or the connection id when it has none).
    profile: String,
    /// `None` for the sandbox; a build error fails every message of the channel for good.
    adapter: Option<Result<Box<dyn Adapter>, String>>,
}

impl Route {
    fn is_sandbox(&self) -> bool {
        self.vendor == "sandbox"
    }
}

/// One message ready to go, or the reason it cannot be made.
struct Prepared {
    contact_id: String,
    channel: Channel,
    message: Result<OutboundMessage, String>,
    tracking: Value,
    /// The short links in an SMS body: written ([`insert_short_links`]) with the message's
    /// ledger row, so they resolve once the message is out.
    short_links: Vec<ShortLink>,
}

impl Prepared {
    /// The message's `(contact, channel)` key in the send ledger.
    fn ledger_key(&self) -> (String, String) {
        (self.contact_id.clone(), self.channel.id().to_string())
    }
}

/// `{public_url}/connect/s/{code}` stands for `target`.
struct ShortLink {
    code: String,
    target: String,
}

/// A delivery's result, for the ledger.
struct Delivered {
    contact_id: String,
    channel: Channel,
    result: Result<Option<String>, String>,
    attempts: u32,
}

impl Sender {
    pub fn new(
        db: Db,
        sealer: Arc<Sealer>,
        tracking_secret: &str,
        public_url: Arc<str>,
        http: reqwest::Client,
    ) -> Sender {
        Sender {
            db,
            sealer,
            tracking_key: tracking_secret.as_bytes().to_vec(),
            public_url,
            http,
        }
    }

    /// The campaign's audience filter, or why there is none.
    pub async fn audience_filter(
        &self,
        org_id: &str,
        spec: &CampaignSpec,
    ) -> Result<Filter, SendRunError> {
        let value = match (&spec.audience_id, &spec.audience) {
            (Some(id), _) => documents::get(&self.db, org_id, DocumentKind::Audience, id)
                .await?
                .ok_or_else(|| SendRunError::Setup(format!("audience {id} does not exist")))?
                ["filter"]
                .clone(),
            (None, Some(inline)) => inline["filter"].clone(),
            (None, None) => return Err(SendRunError::Setup("the campaign has no audience".into())),
        };
        parse_filter(&value)
            .map_err(|_| SendRunError::Setup("the audience filter no longer parses".into()))
    }

    /// How many of the org's contacts match `filter` now (the reach a launch records).
    pub async fn count_matching(&self, org_id: &str, filter: &Filter) -> Result<u64, sqlx::Error> {
        Ok(crate::reach::evaluate(&self.db, org_id, filter, 0).await?.0)
    }

    /// Sends one run: every eligible contact of the audience on every per-contact channel, and
    /// one post per social channel. Safe to run again, or twice at once: the ledger decides.
    #[tracing::instrument(skip_all, fields(org = %org_id, campaign = %campaign_id, run = %run_id))]
    pub async fn send_run(
        &self,
        org_id: &str,
        campaign_id: &str,
        run_id: &str,
        plan: &RunPlan,
        lease: &Lease,
    ) -> Result<RunOutcome, SendRunError> {
        let Some(campaign) = campaigns::get(&self.db, org_id, campaign_id).await? else {
            return Ok(RunOutcome::Cancelled("the campaign does not exist".into()));
        };
        if let Some(stop) = stop_reason(&campaign) {
            return Ok(stop);
        }
        let spec: CampaignSpec = serde_json::from_value(campaign.clone())
            .map_err(|e| SendRunError::Setup(format!("the campaign cannot be read: {e}")))?;
        let template = self.template(org_id, &spec).await?;
        let filter = self.audience_filter(org_id, &spec).await?;
        let mut report = RunReport::default();
        let mut routes = Vec::new();
        for &channel in &plan.channels {
            if channel.category() == "ads" {
                // Ads run inside the ads platform; nothing is sent per contact (channels/ads.rs).
                continue;
            }
            match self.route(org_id, channel, &spec).await? {
                Some(route) => routes.push(route),
                None => report.channels_without_connection.push(channel),
            }
        }
        let ctx = RunCtx {
            org_id,
            campaign_id,
            run_id,
            campaign: &campaign,
            template: &template,
        };
        // A run whose ledger is empty at its start (not a retry or a resumption) skips the
        // per-page ledger read: the ledger insert still refuses any second send.
        let resumed = self.ledger_started(org_id, run_id).await?;
        let (social, direct): (Vec<Route>, Vec<Route>) = routes
            .into_iter()
            .partition(|r| r.channel.category() == "social");
        for route in &social {
            let key = profile_key(&route.profile);
            if self
                .in_ledger(org_id, run_id, std::slice::from_ref(&key))
                .await?
                .is_empty()
            {
                let prepared = vec![self.prepare_post(&ctx, route)];
                self.deliver(&ctx, route, prepared, &mut report).await?;
            } else {
                report.already_in_ledger += 1;
            }
        }
        let mut after = String::new();
        let mut read_ahead: Option<Vec<(String, Value)>> = None;
        for page_number in 0u64.. {
            if page_number % 50 == 0 {
                // A run reads the contacts and grows the ledger: keep both planned as lookups.
                self.db
                    .analyze_if_stale("documents", "org_id, kind, id, created_at")
                    .await?;
                self.db
                    .analyze_if_stale("send_ledger", "org_id, run_id, contact_id, channel")
                    .await?;
            }
            if !lease.renew().await? {
                return Ok(RunOutcome::Interrupted);
            }
            if let Some(stop) = campaigns::get(&self.db, org_id, campaign_id)
                .await?
                .as_ref()
                .and_then(stop_reason)
            {
                return Ok(stop);
            }
            let page = match read_ahead.take() {
                Some(page) => page,
                None => self.contact_page(org_id, &after, &plan.launched_at).await?,
            };
            let Some((last_id, _)) = page.last() else {
                break;
            };
            after = last_id.clone();
            let full = page.len() as i64 == PAGE;
            let members: Vec<(String, Value)> = page
                .into_iter()
                .filter(|(_, contact)| filter.matches(contact))
                .collect();
            // The next page is read while this one is sent (the pause check above still comes
            // before it is sent).
            let next = async {
                if full {
                    self.contact_page(org_id, &after, &plan.launched_at)
                        .await
                        .map(Some)
                } else {
                    Ok(None)
                }
            };
            let send = async {
                if !members.is_empty() && !direct.is_empty() {
                    self.send_page(&ctx, &direct, &members, resumed, &mut report)
                        .await
                } else {
                    Ok(())
                }
            };
            let (next, sent) = tokio::join!(next, send);
            sent?;
            match next? {
                Some(page) => read_ahead = Some(page),
                None => break,
            }
        }
        Ok(RunOutcome::Finished(report))
    }

    async fn template(
        &self,
        org_id: &str,
        spec: &CampaignSpec,
    ) -> Result<CompiledTemplate, SendRunError> {
        let id = spec
            .template_id
            .as_deref()
            .ok_or_else(|| SendRunError::Setup("the campaign has no template".into()))?;
        let doc = documents::get(&self.db, org_id, DocumentKind::Template, id)
            .await?
            .ok_or_else(|| SendRunError::Setup(format!("template {id} does not exist")))?;
        let content: TemplateContent = serde_json::from_value(doc)
            .map_err(|e| SendRunError::Setup(format!("template {id} cannot be read: {e}")))?;
        CompiledTemplate::new(&content)
            .map_err(|_| SendRunError::Setup(format!("template {id} does not compile")))
    }

    /// The connection a channel goes through: `channelSettings.<channel>.connectionId` when set,
    /// for a social channel the one holding `socialProfiles.<channel>`, else the oldest.
    async fn route(
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
        let vendor = doc["vendor"].as_str().unwrap_or_default().to_string();
        let settings = doc.get("settings").cloned().unwrap_or_else(|| json!({}));
        let profile = wanted_profile
            .filter(|p| has_profile(doc, p))
            .cloned()
            .or_else(|| doc["profiles"][0]["id"].as_str().map(str::to_string))
            .unwrap_or_else(|| id.clone());
        let adapter = if vendor == "sandbox" {
            None
        } else {
            let credentials = self.credentials(org_id, id).await?;
            let config = ConnectionConfig {
                vendor: vendor.clone(),
                settings: settings.clone(),
                credentials,
            };
            Some(channels::adapter_for(&config, self.http.clone()))
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
            .open(&sealed)
            .and_then(|plain| serde_json::from_slice(&plain).ok())
            .unwrap_or_default())
    }

    /// The next page of contacts by id that existed at the launch.
    async fn contact_page(
        &self,
        org_id: &str,
        after: &str,
        launched_at: &str,
    ) -> Result<Vec<(String, Value)>, sqlx::Error> {
        let rows = sqlx::query(
            "select id, doc from documents
             where org_id = $1 and kind = 'contact' and id > $2 and created_at <= $3
             order by id limit $4",
        )
        .bind(org_id)
        .bind(after)
        .bind(launched_at)
        .bind(PAGE)
        .fetch_all(&self.db.read)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let id: String = row.try_get("id")?;
            let doc: String = row.try_get("doc")?;
            out.push((id, serde_json::from_str(&doc).unwrap_or(Value::Null)));
        }
        Ok(out)
    }

    /// Whether the run already has rows in the ledger.
    async fn ledger_started(&self, org_id: &str, run_id: &str) -> Result<bool, sqlx::Error> {
        let row =
            sqlx::query("select 1 from send_ledger where org_id = $1 and run_id = $2 limit 1")
                .bind(org_id)
                .bind(run_id)
                .fetch_optional(&self.db.read)
                .await?;
        Ok(row.is_some())
    }

    /// The `(contact, channel)` pairs of this run already in the ledger, among `contacts`.
    async fn in_ledger(
        &self,
        org_id: &str,
        run_id: &str,
        contacts: &[String],
    ) -> Result<HashSet<(String, String)>, sqlx::Error> {
        let mut found = HashSet::new();
        if contacts.is_empty() {
            return Ok(found);
        }
        let sql = format!(
            "select contact_id, channel from send_ledger where org_id = $1 and run_id = $2 and contact_id in ({})",
            store::params(3, contacts.len())
        );
        let mut query = sqlx::query(&sql).bind(org_id).bind(run_id);
        for contact in contacts {
            query = query.bind(contact);
        }
        for row in query.fetch_all(&self.db.read).await? {
            found.insert((row.try_get("contact_id")?, row.try_get("channel")?));
        }
        Ok(found)
    }

    async fn send_page(
        &self,
        ctx: &RunCtx<'_>,
        routes: &[Route],
        members: &[(String, Value)],
        check_ledger: bool,
        report: &mut RunReport,
    ) -> Result<(), SendRunError> {
        let done = if check_ledger {
            let ids: Vec<String> = members.iter().map(|(id, _)| id.clone()).collect();
            self.in_ledger(ctx.org_id, ctx.run_id, &ids).await?
        } else {
            HashSet::new()
        };
        for route in routes {
            let mut prepared = Vec::new();
            for (id, contact) in members {
                if done.contains(&(id.clone(), route.channel.id().to_string())) {
                    report.already_in_ledger += 1;
                    continue;
                }
                let unsubscribed = contact["unsubscribed"][route.channel.id()] == Value::Bool(true);
                if unsubscribed {
                    report.skipped_unsubscribed += 1;
                    continue;
                }
                let Some(to) = address(route.channel, contact) else {
                    report.skipped_no_address += 1;
                    continue;
                };
                let mut message = self.prepare_message(ctx, route.channel, id, contact, to);
                if route.vendor == "twilio" {
                    if let Ok(outbound) = &mut message.message {
                        // Twilio posts delivery statuses here (src/webhooks/twilio.rs).
                        outbound.status_callback = Some(format!(
                            "{}/connect/webhooks/twilio/{}?{}={}",
                            self.public_url,
                            route.connection_id,
                            channels::MESSAGE_KEY_ARG,
                            outbound.idempotency_key
                        ));
                    }
                }
                prepared.push(message);
            }
            if !prepared.is_empty() {
                self.deliver(ctx, route, prepared, report).await?;
            }
        }
        Ok(())
    }

    fn token_url(
        &self,
        ctx: &RunCtx<'_>,
        contact_id: &str,
        channel: Channel,
        kind: TrackingKind,
        link: Option<(u32, &str)>,
    ) -> String {
        let claims = TrackingClaims {
            org_id: ctx.org_id.to_string(),
            campaign_id: ctx.campaign_id.to_string(),
            run_id: ctx.run_id.to_string(),
            contact_id: contact_id.to_string(),
            channel,
            kind,
            link: link.map(|(i, _)| i),
            url: link.map(|(_, url)| url.to_string()),
            expires: Some(chrono::Utc::now().timestamp() + tracking::TOKEN_LIFETIME_SECS),
        };
        let path = match kind {
            TrackingKind::Open => "email/open",
            TrackingKind::Click => "link/click",
            TrackingKind::Unsubscribe => "unsubscribe",
        };
        format!(
            "{}/connect/automation/{}/{}/{path}/?t={}",
            self.public_url,
            ctx.campaign_id,
            ctx.run_id,
            tracking::sign(&self.tracking_key, &claims)
        )
    }

    /// Renders an email or SMS for one contact, with its tracking URLs.
    fn prepare_message(
        &self,
        ctx: &RunCtx<'_>,
        channel: Channel,
        contact_id: &str,
        contact: &Value,
        to: String,
    ) -> Prepared {
        let unsubscribe = self.token_url(ctx, contact_id, channel, TrackingKind::Unsubscribe, None);
        let mut tracking = json!({"open": null, "clicks": [], "unsubscribe": unsubscribe});
        let mut short_links = Vec::new();
        let render = RenderContext {
            contact: contact.clone(),
            campaign: ctx.campaign.clone(),
            unsubscribe_url: unsubscribe.clone(),
        };
        let message = match ctx.template.render(&render) {
            Err(e) => Err(e.to_string()),
            Ok(rendered) => match channel {
                Channel::Email => match rendered.email {
                    None => Err("the template has no email part".to_string()),
                    Some(email) => {
                        let own = format!("{}/connect/", self.public_url);
                        let mut clicks = Vec::new();
                        let html = email.html.map(|html| {
                            let rewritten = tracking::rewrite_links(&html, |i, url| {
                                if !tracking::is_trackable(url) || url.starts_with(&own) {
                                    return None;
                                }
                                let click = self.token_url(
                                    ctx,
                                    contact_id,
                                    channel,
                                    TrackingKind::Click,
                                    Some((i, url)),
                                );
                                clicks.push(click.clone());
                                Some(click)
                            });
                            let open =
                                self.token_url(ctx, contact_id, channel, TrackingKind::Open, None);
                            tracking["open"] = json!(open);
                            tracking::add_open_pixel(&rewritten, &open)
                        });
                        tracking["clicks"] = json!(clicks);
                        let mut headers = std::collections::BTreeMap::new();
                        headers.insert("List-Unsubscribe".to_string(), format!("<{unsubscribe}>"));
                        headers.insert(
                            "List-Unsubscribe-Post".to_string(),
                            "List-Unsubscribe=One-Click".to_string(),
                        );
                        Ok(OutboundMessage {
                            channel,
                            to,
                            subject: Some(email.subject),
                            html,
                            text: email.text,
                            body: None,
                            link: None,
                            image_url: None,
                            headers,
                            idempotency_key: format!(
                                "{}:{contact_id}:{}",
                                ctx.run_id,
                                channel.id()
                            ),
                            status_callback: None,
                        })
                    }
                },
                _ => match rendered.sms {
                    None => Err("the template has no sms part".to_string()),
                    Some(sms) => {
                        let (body, clicks, links) =
                            self.shorten_sms_links(ctx, channel, contact_id, &sms.body);
                        tracking["clicks"] = json!(clicks);
                        tracking["shortLinks"] = links
                            .iter()
                            .map(|l| json!({"url": self.short_url(&l.code), "target": l.target}))
                            .collect();
                        short_links = links;
                        Ok(OutboundMessage {
                            channel,
                            to,
                            subject: None,
                            html: None,
                            text: None,
                            body: Some(body),
                            link: None,
                            image_url: None,
                            headers: Default::default(),
                            idempotency_key: format!(
                                "{}:{contact_id}:{}",
                                ctx.run_id,
                                channel.id()
                            ),
                            status_callback: None,
                        })
                    }
                },
            },
        };
        Prepared {
            contact_id: contact_id.to_string(),
            channel,
            message,
            tracking,
            short_links,
        }
    }

    /// Replaces every `http(s)` link of an SMS body with a short link. An outside link's short
    /// link stands for its signed click URL; a link to Herald's own `/connect/` routes (the
    /// unsubscribe URL) for itself, so it is short too but not counted as a click. Returns the
    /// new body, the click URLs and the short links to store.
    fn shorten_sms_links(
        &self,
        ctx: &RunCtx<'_>,
        channel: Channel,
        contact_id: &str,
        body: &str,
    ) -> (String, Vec<String>, Vec<ShortLink>) {
        let own = format!("{}/connect/", self.public_url);
        let mut out = String::with_capacity(body.len());
        let mut clicks = Vec::new();
        let mut links = Vec::new();
        let mut copied = 0;
        for range in sms_links(body) {
            let url = &body[range.clone()];
            let target = if url.starts_with(&own) {
                url.to_string()
            } else {
                let index = clicks.len() as u32;
                let click = self.token_url(
                    ctx,
                    contact_id,
                    channel,
                    TrackingKind::Click,
                    Some((index, url)),
                );
                clicks.push(click.clone());
                click
            };
            let code = short_code();
            out.push_str(&body[copied..range.start]);
            out.push_str(&self.short_url(&code));
            copied = range.end;
            links.push(ShortLink { code, target });
        }
        out.push_str(&body[copied..]);
        (out, clicks, links)
    }

    fn short_url(&self, code: &str) -> String {
        format!("{}/connect/s/{code}", self.public_url)
    }

    /// Renders a social channel's post for the run (no contact: `contact` is `{}`).
    fn prepare_post(&self, ctx: &RunCtx<'_>, route: &Route) -> Prepared {
        let render = RenderContext {
            contact: json!({}),
            campaign: ctx.campaign.clone(),
            unsubscribe_url: String::new(),
        };
        let message = match ctx.template.render(&render) {
            Err(e) => Err(e.to_string()),
            Ok(rendered) => match rendered.social {
                None => Err("the template has no social part".to_string()),
                Some(post) => Ok(OutboundMessage {
                    channel: route.channel,
                    to: route.profile.clone(),
                    subject: None,
                    html: None,
                    text: None,
                    body: Some(post.text),
                    link: post.link.filter(|l| !l.is_empty()),
                    image_url: post.image_url.filter(|l| !l.is_empty()),
                    headers: Default::default(),
                    idempotency_key: format!(
                        "{}:{}:{}",
                        ctx.run_id,
                        profile_key(&route.profile),
                        route.channel.id()
                    ),
                    status_callback: None,
                }),
            },
        };
        Prepared {
            contact_id: profile_key(&route.profile),
            channel: route.channel,
            message,
            tracking: json!({"open": null, "clicks": [], "unsubscribe": null}),
            short_links: Vec::new(),
        }
    }

    async fn deliver(
        &self,
        ctx: &RunCtx<'_>,
        route: &Route,
        prepared: Vec<Prepared>,
        report: &mut RunReport,
    ) -> Result<(), SendRunError> {
        if route.is_sandbox() {
            self.record_sandbox(ctx, route, prepared, report).await
        } else {
            self.call_vendor(ctx, route, prepared, report).await
        }
    }

    /// The sandbox vendor: ledger rows and outbox rows in one transaction. `settings.failRate`
    /// and `settings.bounce` turn some sends into failures (recorded, nothing in the outbox).
    async fn record_sandbox(
        &self,
        ctx: &RunCtx<'_>,
        route: &Route,
        prepared: Vec<Prepared>,
        report: &mut RunReport,
    ) -> Result<(), SendRunError> {
        let fail_rate = route.settings["failRate"].as_f64().unwrap_or(0.0);
        let bounce: HashSet<String> = route.settings["bounce"]
            .as_array()
            .map(|list| {
                list.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_lowercase)
                    .collect()
            })
            .unwrap_or_default();
        let outcomes: Vec<(Prepared, Result<(), String>)> = prepared
            .into_iter()
            .map(|p| {
                let outcome = match &p.message {
                    Err(e) => Err(e.clone()),
                    Ok(m) if bounce.contains(&m.to.to_lowercase()) => {
                        Err("bounced (sandbox settings.bounce)".to_string())
                    }
                    Ok(_) if fail_rate > 0.0 && rand::random::<f64>() < fail_rate => {
                        Err("failed (sandbox settings.failRate)".to_string())
                    }
                    Ok(_) => Ok(()),
                };
                (p, outcome)
            })
            .collect();
        let now = format_time(chrono::Utc::now());
        let mut tx = self.db.begin().await?;
        let rows: Vec<LedgerRow> = outcomes
            .iter()
            .map(|(p, outcome)| LedgerRow {
                contact_id: &p.contact_id,
                channel: p.channel,
                state: if outcome.is_ok() { "sent" } else { "failed" },
                error: outcome.as_ref().err().map(String::as_str),
            })
            .collect();
        let inserted = insert_ledger(&mut tx, ctx, &rows, &now).await?;
        let mut results = Vec::new();
        let mut outbox = Vec::new();
        let mut sends = SendsPage::default();
        for (p, outcome) in &outcomes {
            if !inserted.contains(&(p.contact_id.clone(), p.channel.id().to_string())) {
                report.already_in_ledger += 1;
                continue;
            }
            results.push(outcome.is_ok());
            match (outcome, &p.message) {
                (Ok(()), Ok(message)) => {
                    report.sent += 1;
                    sends.sent.push(p.contact_id.clone());
                    outbox.push((p, message));
                }
                (Err(_), Ok(message)) if bounce.contains(&message.to.to_lowercase()) => {
                    report.failed += 1;
                    sends.bounced.push(p.contact_id.clone());
                }
                _ => {
                    report.failed += 1;
                    sends.failed.push(p.contact_id.clone());
                }
            }
        }
        self.record_sends(&mut tx, ctx, route.channel, sends, true)
            .await?;
        for chunk in outbox.chunks(200) {
            insert_outbox(&mut tx, ctx, chunk, &now).await?;
        }
        insert_short_links(&mut tx, ctx, outbox.iter().map(|(p, _)| *p), &now).await?;
        bump_channel_stats(&mut tx, ctx.org_id, route.channel, &results, &now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A real vendor: claim the ledger rows (committed), call the vendor with bounded
    /// concurrency and retries, then record each outcome.
    async fn call_vendor(
        &self,
        ctx: &RunCtx<'_>,
        route: &Route,
        prepared: Vec<Prepared>,
        report: &mut RunReport,
    ) -> Result<(), SendRunError> {
        let now = format_time(chrono::Utc::now());
        let claimed = {
            let mut tx = self.db.begin().await?;
            let rows: Vec<LedgerRow> = prepared
                .iter()
                .map(|p| LedgerRow {
                    contact_id: &p.contact_id,
                    channel: p.channel,
                    state: "sending",
                    error: None,
                })
                .collect();
            let inserted = insert_ledger(&mut tx, ctx, &rows, &now).await?;
            let claimed = prepared
                .iter()
                .filter(|p| inserted.contains(&p.ledger_key()));
            insert_short_links(&mut tx, ctx, claimed, &now).await?;
            tx.commit().await?;
            inserted
        };
        let mut mine = Vec::new();
        for p in prepared {
            if claimed.contains(&(p.contact_id.clone(), p.channel.id().to_string())) {
                mine.push(p);
            } else {
                report.already_in_ledger += 1;
            }
        }
        let adapter = route.adapter.as_ref();
        let delivered: Vec<Delivered> = futures::stream::iter(mine)
            .map(|p| async move {
                let (result, attempts) = match (&p.message, adapter) {
                    (Err(e), _) => (Err(e.clone()), 0),
                    (_, None) | (_, Some(Err(_))) => (
                        Err(adapter
                            .and_then(|a| a.as_ref().err().cloned())
                            .unwrap_or_else(|| "no adapter for this connection".into())),
                        0,
                    ),
                    (Ok(message), Some(Ok(adapter))) => {
                        send_with_retry(adapter.as_ref(), message).await
                    }
                };
                Delivered {
                    contact_id: p.contact_id,
                    channel: p.channel,
                    result,
                    attempts,
                }
            })
            .buffered(VENDOR_CONCURRENCY)
            .collect()
            .await;
        let now = format_time(chrono::Utc::now());
        let mut tx = self.db.begin().await?;
        let mut results = Vec::with_capacity(delivered.len());
        let mut sends = SendsPage::default();
        for d in &delivered {
            let (state, provider_id, error) = match &d.result {
                Ok(id) => ("sent", id.clone(), None),
                Err(e) => ("failed", None, Some(e.clone())),
            };
            results.push(d.result.is_ok());
            if d.result.is_ok() {
                report.sent += 1;
                sends.sent.push(d.contact_id.clone());
            } else {
                report.failed += 1;
                sends.failed.push(d.contact_id.clone());
            }
            sqlx::query(
                "update send_ledger set state = $1, provider_message_id = $2, last_error = $3, attempts = $4, updated_at = $5
                 where org_id = $6 and run_id = $7 and contact_id = $8 and channel = $9",
            )
            .bind(state)
            .bind(provider_id)
            .bind(error)
            .bind(d.attempts as i64)
            .bind(&now)
            .bind(ctx.org_id)
            .bind(ctx.run_id)
            .bind(&d.contact_id)
            .bind(d.channel.id())
            .execute(&mut *tx)
            .await?;
        }
        let mut counts = SendCounts::new();
        for d in &delivered {
            let state = if d.result.is_ok() { "sent" } else { "failed" };
            let channel = d.channel.id().to_string();
            *counts
                .entry((channel.clone(), "sending".into()))
                .or_default() -= 1;
            *counts.entry((channel, state.into())).or_default() += 1;
        }
        bump_send_counts(&mut tx, &counts).await?;
        self.record_sends(&mut tx, ctx, route.channel, sends, false)
            .await?;
        bump_channel_stats(&mut tx, ctx.org_id, route.channel, &results, &now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Appends the page's `SendsRecorded` event to the run's stream, inside the transaction
    /// that writes its ledger outcomes: the log holds every send the ledger holds.
    async fn record_sends(
        &self,
        tx: &mut crate::db::Tx,
        ctx: &RunCtx<'_>,
        channel: Channel,
        page: SendsPage,
        delivered: bool,
    ) -> Result<(), SendRunError> {
        if page.sent.is_empty() && page.failed.is_empty() && page.bounced.is_empty() {
            return Ok(());
        }
        let now = chrono::Utc::now();
        let data = SendsRecorded {
            campaign_id: ctx.campaign_id.to_string(),
            run_id: ctx.run_id.to_string(),
            channel,
            sent: page.sent,
            failed: page.failed,
            bounced: page.bounced,
            delivered,
            at: now,
        };
        let event = NewEvent {
            event_type: SENDS_EVENT_TYPE.to_string(),
            event_version: "1".to_string(),
            data: serde_json::to_value(&data).expect("sends serialize"),
        };
        let stream = run_stream(ctx.org_id, ctx.campaign_id, ctx.run_id);
        let metadata = Metadata {
            actor: "herald:sender".to_string(),
            org_id: ctx.org_id.to_string(),
            request_id: String::new(),
            correlation_id: ctx.run_id.to_string(),
            causation_id: ctx.run_id.to_string(),
        };
        store::append_at_head(tx, self.db.backend, &stream, &event, &metadata, now)
            .await
            .map_err(|e| match e {
                AppendError::Db(e) => SendRunError::Db(e),
                AppendError::Conflict => {
                    SendRunError::Setup("another sender wrote this run's sends".into())
                }
            })?;
        Ok(())
    }
}

/// One page's outcomes on one channel, for its `SendsRecorded` event.
#[derive(Default)]
struct SendsPage {
    sent: Vec<String>,
    failed: Vec<String>,
    bounced: Vec<String>,
}

/// What every step of one fan-out shares.
struct RunCtx<'a> {
    org_id: &'a str,
    campaign_id: &'a str,
    run_id: &'a str,
    campaign: &'a Value,
    template: &'a CompiledTemplate,
}

/// Why a fan-out must stop, from the campaign's current read row.
fn stop_reason(campaign: &Value) -> Option<RunOutcome> {
    if campaign["state"] == "deleted" {
        return Some(RunOutcome::Cancelled("the campaign was deleted".into()));
    }
    match campaign["status"].as_str() {
        Some("running") => None,
        Some("paused") => Some(RunOutcome::Paused),
        Some(other) => Some(RunOutcome::Cancelled(format!("the campaign is {other}"))),
        None => Some(RunOutcome::Cancelled("the campaign has no status".into())),
    }
}

/// The contact's address on a per-contact channel, if it has one.
fn address(channel: Channel, contact: &Value) -> Option<String> {
    let field = match channel {
        Channel::Email => "email",
        Channel::Sms => "phone",
        _ => return None,
    };
    contact[field]
        .as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Characters of a short link's code: 12 base62 characters are 71 random bits.
const SHORT_CODE_CHARS: usize = 12;

/// A new short link code, from the thread's cryptographically secure generator.
fn short_code() -> String {
    use rand::Rng;
    rand::thread_rng()
        .sample_iter(&rand::distributions::Alphanumeric)
        .take(SHORT_CODE_CHARS)
        .map(char::from)
        .collect()
}

/// The byte ranges of the `http(s)` links in a text: from the scheme to the first space, `<`,
/// `>` or `"`, without the punctuation that ends a sentence (`.`, `,`, `!`…) or a closing
/// bracket the link did not open.
fn sms_links(text: &str) -> Vec<std::ops::Range<usize>> {
    let lower = text.to_ascii_lowercase();
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(found) = lower[from..].find("http") {
        let start = from + found;
        let rest = &lower[start..];
        let scheme = if rest.starts_with("https://") {
            8
        } else if rest.starts_with("http://") {
            7
        } else {
            from = start + 4;
            continue;
        };
        let glued = start > 0 && (bytes[start - 1].is_ascii_alphanumeric());
        let mut end = start + scheme;
        while end < bytes.len()
            && !bytes[end].is_ascii_whitespace()
            && !bytes[end].is_ascii_control()
            && !matches!(bytes[end], b'<' | b'>' | b'"')
        {
            end += 1;
        }
        // `end` only ever stops on an ASCII byte, so it is a char boundary.
        while end > start + scheme {
            let last = bytes[end - 1];
            let unopened = |open: u8, close: u8| {
                last == close && {
                    let link = &bytes[start..end];
                    let opens = link.iter().filter(|&&b| b == open).count();
                    let closes = link.iter().filter(|&&b| b == close).count();
                    closes > opens
                }
            };
            if matches!(last, b'.' | b',' | b';' | b':' | b'!' | b'?' | b'\'')
                || unopened(b'(', b')')
                || unopened(b'[', b']')
                || unopened(b'{', b'}')
            {
                end -= 1;
            } else {
                break;
            }
        }
        if !glued && end > start + scheme {
            out.push(start..end);
        }
        from = end.max(start + scheme);
    }
    out
}

/// Stores the short links of messages whose ledger rows this transaction wrote: in the sandbox
/// transaction, or in the claim committed before a vendor call.
async fn insert_short_links<'p>(
    tx: &mut crate::db::Tx,
    ctx: &RunCtx<'_>,
    prepared: impl IntoIterator<Item = &'p Prepared>,
    now: &str,
) -> Result<(), sqlx::Error> {
    let rows: Vec<(&Prepared, &ShortLink)> = prepared
        .into_iter()
        .flat_map(|p| p.short_links.iter().map(move |l| (p, l)))
        .collect();
    for chunk in rows.chunks(200) {
        let mut sql = String::from(
            "insert into short_links (org_id, campaign_id, run_id, created_at, code, contact_id, channel, target) values ",
        );
        for i in 0..chunk.len() {
            let b = 4 + i * 4;
            if i > 0 {
                sql.push(',');
            }
            sql.push_str(&format!(
                "($1, $2, $3, $4, ${}, ${}, ${}, ${})",
                b + 1,
                b + 2,
                b + 3,
                b + 4
            ));
        }
        let mut query = sqlx::query(&sql)
            .bind(ctx.org_id)
            .bind(ctx.campaign_id)
            .bind(ctx.run_id)
            .bind(now);
        for (p, link) in chunk {
            query = query
                .bind(&link.code)
                .bind(&p.contact_id)
                .bind(p.channel.id())
                .bind(&link.target);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Calls the vendor, retrying retryable failures with exponential backoff and full jitter
/// (or the vendor's `Retry-After`, capped). Returns the outcome and the number of calls.
async fn send_with_retry(
    adapter: &dyn Adapter,
    message: &OutboundMessage,
) -> (Result<Option<String>, String>, u32) {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match adapter.send(message).await {
            Ok(receipt) => return (Ok(receipt.provider_message_id), attempt),
            Err(error @ SendError::Retryable { .. }) if attempt < MAX_SEND_ATTEMPTS => {
                tokio::time::sleep(retry_delay(attempt, error.retry_after())).await;
            }
            Err(error) => return (Err(error.to_string()), attempt),
        }
    }
}

/// 250 ms, 500 ms, 1 s… with full jitter, or what the vendor asked; never above the cap.
pub fn retry_delay(attempt: u32, retry_after: Option<Duration>) -> Duration {
    let base = Duration::from_millis(250u64 << attempt.min(10).saturating_sub(1));
    let jittered = base.mul_f64(0.5 + rand::random::<f64>() * 0.5);
    retry_after
        .map_or(jittered, |asked| asked.max(jittered))
        .min(MAX_RETRY_DELAY)
}

struct LedgerRow<'a> {
    contact_id: &'a str,
    channel: Channel,
    state: &'static str,
    error: Option<&'a str>,
}

/// Inserts ledger rows; returns the `(contact, channel)` keys that were new (the others are
/// already in the ledger: someone else sends or sent them).
async fn insert_ledger(
    tx: &mut crate::db::Tx,
    ctx: &RunCtx<'_>,
    rows: &[LedgerRow<'_>],
    now: &str,
) -> Result<HashSet<(String, String)>, sqlx::Error> {
    let mut inserted = HashSet::new();
    let mut counts = SendCounts::new();
    for chunk in rows.chunks(PAGE as usize) {
        let mut sql = String::from(
            "insert into send_ledger (org_id, run_id, campaign_id, created_at, updated_at, contact_id, channel, state, last_error, attempts) values ",
        );
        for (i, row) in chunk.iter().enumerate() {
            let b = 4 + i * 4;
            if i > 0 {
                sql.push(',');
            }
            // A `sending` row is claimed before the call; the others record a finished attempt.
            sql.push_str(&format!(
                "($1, $2, $3, $4, $4, ${}, ${}, ${}, ${}, {})",
                b + 1,
                b + 2,
                b + 3,
                b + 4,
                if row.state == "sending" { 0 } else { 1 }
            ));
        }
        sql.push_str(" on conflict (org_id, run_id, contact_id, channel) do nothing returning contact_id, channel, state");
        let mut query = sqlx::query(&sql)
            .bind(ctx.org_id)
            .bind(ctx.run_id)
            .bind(ctx.campaign_id)
            .bind(now);
        for row in chunk {
            query = query
                .bind(row.contact_id)
                .bind(row.channel.id())
                .bind(row.state)
                .bind(row.error);
        }
        for row in query.fetch_all(&mut **tx).await? {
            let channel: String = row.try_get("channel")?;
            *counts
                .entry((channel.clone(), row.try_get("state")?))
                .or_default() += 1;
            inserted.insert((row.try_get("contact_id")?, channel));
        }
    }
    bump_send_counts(tx, &counts).await?;
    Ok(inserted)
}

/// Changes to the send counters, by (channel, state).
type SendCounts = std::collections::BTreeMap<(String, String), i64>;

/// Number of rows each (channel, state) counter is spread over, so concurrent senders rarely
/// wait on one row.
const COUNT_SHARDS: i64 = 8;

/// Moves the send counters behind `herald_sends_total` (`send_counts`) inside the transaction
/// that writes the ledger rows they count. Unlike counting the ledger, they never go down when a
/// purge deletes rows, and reading them costs the same however many sends there were.
async fn bump_send_counts(tx: &mut crate::db::Tx, counts: &SendCounts) -> Result<(), sqlx::Error> {
    let counts: Vec<_> = counts.iter().filter(|(_, n)| **n != 0).collect();
    if counts.is_empty() {
        return Ok(());
    }
    let shard = rand::Rng::gen_range(&mut rand::thread_rng(), 0..COUNT_SHARDS);
    let sql = format!(
        "insert into send_counts (channel, state, shard, n) values {}
         on conflict (channel, state, shard) do update set n = send_counts.n + excluded.n",
        store::param_rows("", 1, 4, counts.len())
    );
    let mut query = sqlx::query(&sql);
    // In key order (a BTreeMap), so two transactions lock shared rows in the same order.
    for ((channel, state), n) in counts {
        query = query.bind(channel).bind(state).bind(shard).bind(*n);
    }
    query.execute(&mut **tx).await?;
    Ok(())
}

async fn insert_outbox(
    tx: &mut crate::db::Tx,
    ctx: &RunCtx<'_>,
    messages: &[(&Prepared, &OutboundMessage)],
    now: &str,
) -> Result<(), sqlx::Error> {
    let mut sql = String::from(
        "insert into sandbox_messages (org_id, campaign_id, run_id, sent_at, id, channel, contact_id, to_address, subject, html, text_body, body, headers, tracking) values ",
    );
    sql.push_str(&store::param_rows("$1,$2,$3,$4,", 5, 10, messages.len()));
    let mut query = sqlx::query(&sql)
        .bind(ctx.org_id)
        .bind(ctx.campaign_id)
        .bind(ctx.run_id)
        .bind(now);
    for (p, m) in messages {
        let contact_id = (!p.contact_id.starts_with("profile:")).then(|| p.contact_id.clone());
        let body = match (&m.body, &m.link) {
            (Some(body), Some(link)) if m.channel.category() == "social" => {
                Some(format!("{body}\n{link}"))
            }
            (body, _) => body.clone(),
        };
        query = query
            .bind(format!("msg-{}", uuid::Uuid::now_v7()))
            .bind(m.channel.id())
            .bind(contact_id)
            .bind(m.to.clone())
            .bind(m.subject.clone())
            .bind(m.html.clone())
            .bind(m.text.clone())
            .bind(body)
            .bind(serde_json::to_string(&m.headers).unwrap_or_else(|_| "{}".into()))
            .bind(p.tracking.to_string());
    }
    query.execute(&mut **tx).await?;
    Ok(())
}

/// Moves the channel's health figures: last success, last failure and the run of failures
/// since the last success (outcomes in send order).
async fn bump_channel_stats(
    tx: &mut crate::db::Tx,
    org_id: &str,
    channel: Channel,
    outcomes: &[bool],
    now: &str,
) -> Result<(), sqlx::Error> {
    if outcomes.is_empty() {
        return Ok(());
    }
    let any_success = outcomes.iter().any(|ok| *ok);
    let any_failure = outcomes.iter().any(|ok| !*ok);
    let trailing = outcomes.iter().rev().take_while(|ok| !**ok).count() as i64;
    sqlx::query(
        "insert into channel_stats (org_id, channel, last_success_at, last_failure_at, consecutive_failures)
         values ($1, $2, $3, $4, $5)
         on conflict (org_id, channel) do update set
           last_success_at = coalesce(excluded.last_success_at, channel_stats.last_success_at),
           last_failure_at = coalesce(excluded.last_failure_at, channel_stats.last_failure_at),
           consecutive_failures = case when excluded.last_success_at is null
             then channel_stats.consecutive_failures + excluded.consecutive_failures
             else excluded.consecutive_failures end",
    )
    .bind(org_id)
    .bind(channel.id())
    .bind(any_success.then(|| now.to_string()))
    .bind(any_failure.then(|| now.to_string()))
    .bind(trailing)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Per-channel send health of an org: `{channel: {lastSuccessAt, lastFailureAt,
/// consecutiveFailures}}`.
pub async fn channel_health(db: &Db, org_id: &str) -> Result<HashMap<String, Value>, sqlx::Error> {
    let rows = sqlx::query(
        "select channel, last_success_at, last_failure_at, consecutive_failures from channel_stats where org_id = $1",
    )
    .bind(org_id)
    .fetch_all(&db.read)
    .await?;
    let mut out = HashMap::new();
    for row in rows {
        let channel: String = row.try_get("channel")?;
        out.insert(
            channel,
            json!({
                "lastSuccessAt": row.try_get::<Option<String>, _>("last_success_at")?,
                "lastFailureAt": row.try_get::<Option<String>, _>("last_failure_at")?,
                "consecutiveFailures": row.try_get::<i64, _>("consecutive_failures")?,
            }),
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_grow_with_jitter_and_never_pass_the_cap() {
        for _ in 0..100 {
            let first = retry_delay(1, None);
            assert!(first >= Duration::from_millis(125) && first <= Duration::from_millis(250));
            let third = retry_delay(3, None);
            assert!(third >= Duration::from_millis(500) && third <= Duration::from_secs(1));
        }
        assert_eq!(
            retry_delay(2, Some(Duration::from_secs(5))),
            Duration::from_secs(5)
        );
        assert_eq!(
            retry_delay(2, Some(Duration::from_secs(3600))),
            MAX_RETRY_DELAY
        );
        assert_eq!(retry_delay(40, None), MAX_RETRY_DELAY);
    }

    fn links_of(text: &str) -> Vec<&str> {
        sms_links(text).into_iter().map(|r| &text[r]).collect()
    }

    #[test]
    fn sms_links_are_found_without_the_punctuation_around_them() {
        assert_eq!(
            links_of("Sale! https://acme.test/spring?x=1&y=2. Stop: HTTP://acme.test/u/?t=a.b"),
            [
                "https://acme.test/spring?x=1&y=2",
                "HTTP://acme.test/u/?t=a.b"
            ]
        );
        assert_eq!(
            links_of("(see https://en.wikipedia.org/wiki/Spring_(season)), or <http://a.test/x>"),
            [
                "https://en.wikipedia.org/wiki/Spring_(season)",
                "http://a.test/x"
            ]
        );
        assert_eq!(
            links_of("Café → https://acme.test/é!\nnext"),
            ["https://acme.test/é"]
        );
        assert_eq!(
            links_of("no link: http:// nor xhttps://glued.test nor ftp://a.test or http"),
            Vec::<&str>::new()
        );
    }

    #[test]
    fn short_codes_are_twelve_base62_characters_and_differ() {
        let a = short_code();
        assert_eq!(a.len(), SHORT_CODE_CHARS);
        assert!(a.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(a, short_code());
    }

    #[test]
    fn only_per_contact_channels_have_an_address_and_blank_ones_do_not_count() {
        let contact = json!({"email": " ann@acme.test ", "phone": ""});
        assert_eq!(
            address(Channel::Email, &contact).as_deref(),
            Some("ann@acme.test")
        );
        assert_eq!(address(Channel::Sms, &contact), None);
        assert_eq!(address(Channel::Facebook, &contact), None);
    }
}
