//! One launched run's fan-out: streams the audience a batch of pages at a time, prepares each
//! contact's message on every per-contact channel (and one post per social channel) and hands
//! the batch's pages to delivery at once. The ledger decides who is sent, so a run is safe to
//! resume, retry or run twice.

use std::collections::HashSet;
use std::sync::Arc;

use herald_domain::document::DocumentKind;
use herald_domain::schedule::{parse_timezone, resolve_local};
use herald_domain::settings::Tz;
use herald_domain::spec::{CampaignSpec, Category};
use herald_domain::template::{CompiledTemplate, TemplateContent};
use serde_json::Value;

use super::audience::{self, PAGE};
use super::deliver;
use super::jobs::{Lease, RunPlan};
use super::ledger;
use super::message::{self, Composer, RunCtx};
use super::report::{RunReport, SendRunError};
use super::route::{Route, Routing};
use crate::db::Db;
use crate::secrets::Sealer;
use crate::{campaigns, documents, frequency};

/// Pages of a fan-out sent at once, each in its own transaction. One page at a time left a
/// third of the machine idle while its statements waited on PostgreSQL (`docs/benchmarks.md`).
/// Each page's contacts are its own, so the pages take no row lock from each other until the
/// run's stream head, the channel's counters and the job's fence, which `deliver` takes last
/// and in that order. The run's progress moves once every page of the batch has committed; a
/// run resumed after a crash reads the batch again and the ledger skips what it sent. With two
/// runs at once (`SEND_SLOTS`) that is eight of the pool's connections at most.
const PAGES_AT_ONCE: i64 = 4;

/// Contacts read per batch of pages.
const BATCH: i64 = PAGE * PAGES_AT_ONCE;

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
    /// Every eligible send is in the ledger but those due inside the org's quiet hours: run
    /// again from the first page at this time, the earliest end of their windows.
    Deferred(chrono::DateTime<chrono::Utc>, RunReport),
}

/// Everything a fan-out needs from the process: the database, the routes and the composer.
pub struct Sender {
    db: Db,
    routing: Routing,
    composer: Composer,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("public_url", &self.composer.public_url())
            .finish_non_exhaustive()
    }
}

impl Sender {
    /// Where vendor calls may go (`HERALD_OUTBOUND_ALLOW`).
    pub fn outbound_policy(&self) -> &crate::vendors::OutboundPolicy {
        self.routing.outbound_policy()
    }

    pub fn new(
        db: Db,
        sealer: Arc<Sealer>,
        tracking_secret: &str,
        public_url: Arc<str>,
        http: crate::vendors::Outbound,
    ) -> Sender {
        Sender {
            routing: Routing::new(db.clone(), sealer, http),
            composer: Composer::new(tracking_secret, public_url),
            db,
        }
    }

    /// The database the sender works on.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Where each channel's messages go.
    pub fn routing(&self) -> &Routing {
        &self.routing
    }

    /// Renders each channel's messages.
    pub(super) fn composer(&self) -> &Composer {
        &self.composer
    }

    /// one post per social channel. Safe to run again, or twice at once: the ledger decides.
    /// Stops as [`RunOutcome::Interrupted`] once the job's lease is lost to another node.
    #[tracing::instrument(skip_all, fields(org = %org_id, campaign = %campaign_id, run = %run_id))]
    pub async fn send_run(
        &self,
        org_id: &str,
        campaign_id: &str,
        run_id: &str,
        plan: &RunPlan,
        lease: &Lease,
    ) -> Result<RunOutcome, SendRunError> {
        match self.fan_out(org_id, campaign_id, run_id, plan, lease).await {
            Err(SendRunError::LeaseLost) => Ok(RunOutcome::Interrupted),
            outcome => outcome,
        }
    }

    async fn fan_out(
        &self,
        org_id: &str,
        campaign_id: &str,
        run_id: &str,
        plan: &RunPlan,
        lease: &Lease,
    ) -> Result<RunOutcome, SendRunError> {
        let (campaign, spec) = match self.running_campaign(org_id, campaign_id).await? {
            Ok(running) => running,
            Err(stop) => return Ok(stop),
        };
        let template = self.template(org_id, &spec).await?;
        let filter = audience::filter(&self.db, org_id, &spec).await?;
        let mut report = RunReport::default();
        let mut routes = Vec::new();
        for &channel in &plan.channels {
            if channel.kind() == Category::Ads {
                // Ads run inside the ads platform; nothing is sent per contact (channels/ads.rs).
                continue;
            }
            match self.routing.route(org_id, channel, &spec).await? {
                Some(route) => routes.push(route),
                None => report.channels_without_connection.push(channel),
            }
        }
        let ctx = RunCtx {
            org_id,
            campaign_id,
            run_id,
            step_id: None,
            campaign: &campaign,
            template: &template,
            lease: Some(lease),
        };
        // A run whose ledger is empty at its start (not a retry or a resumption) skips the
        // per-page ledger read: the ledger insert still refuses any second send.
        let resumed = ledger::ledger_started(&self.db, org_id, run_id).await?;
        let (social, direct): (Vec<Route>, Vec<Route>) = routes
            .into_iter()
            .partition(|r| r.channel.kind() == Category::Social);
        for route in &social {
            let key = message::profile_key(&route.profile);
            if ledger::in_ledger(&self.db, org_id, run_id, std::slice::from_ref(&key))
                .await?
                .is_empty()
            {
                let prepared = vec![self.composer.prepare_post(&ctx, route)];
                deliver::deliver(&self.db, &ctx, route, prepared, &mut report).await?;
            } else {
                report.already_in_ledger += 1;
            }
        }
        // A run taken over or handed back continues after the last page it finished.
        let mut after = lease.resume_after().unwrap_or_default().to_string();
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
                None => {
                    audience::page(&self.db, org_id, &filter, &after, &plan.launched_at, BATCH)
                        .await?
                }
            };
            let Some((last_id, _)) = page.last() else {
                break;
            };
            after = last_id.clone();
            let full = page.len() as i64 == BATCH;
            let members: Vec<(String, Value)> = page
                .into_iter()
                .filter(|(_, contact)| filter.matches(contact))
                .collect();
            // The next page is read while this one is sent (the pause check above still comes
            // before it is sent).
            let next = async {
                if full {
                    audience::page(&self.db, org_id, &filter, &after, &plan.launched_at, BATCH)
                        .await
                        .map(Some)
                } else {
                    Ok(None)
                }
            };
            // Its pages go at once, each in its own transaction (see `PAGES_AT_ONCE`).
            let to_send: &[_] = if direct.is_empty() { &[] } else { &members };
            let sends = to_send.chunks(PAGE as usize).map(|chunk| {
                let (ctx, direct) = (&ctx, &direct);
                async move {
                    let mut part = RunReport::default();
                    self.send_page(ctx, direct, chunk, resumed, &mut part)
                        .await?;
                    Ok::<_, SendRunError>(part)
                }
            });
            let (next, sent) = tokio::join!(next, futures::future::join_all(sends));
            for part in sent {
                report.absorb(part?);
            }
            if !lease.record_progress(&after).await? {
                return Err(SendRunError::LeaseLost);
            }
            match next? {
                Some(page) => read_ahead = Some(page),
                None => break,
            }
        }
        match report.wake_at() {
            Some(at) => Ok(RunOutcome::Deferred(at, report)),
            None => Ok(RunOutcome::Finished(report)),
        }
    }

    /// The campaign's read row and spec while it runs, or how a run of it must stop (deleted,
    /// paused, completed).
    pub async fn running_campaign(
        &self,
        org_id: &str,
        campaign_id: &str,
    ) -> Result<Result<(Value, CampaignSpec), RunOutcome>, SendRunError> {
        let Some(campaign) = campaigns::get(&self.db, org_id, campaign_id).await? else {
            return Ok(Err(RunOutcome::Cancelled(
                "the campaign does not exist".into(),
            )));
        };
        if let Some(stop) = stop_reason(&campaign) {
            return Ok(Err(stop));
        }
        let spec: CampaignSpec = serde_json::from_value(campaign.clone())
            .map_err(|e| SendRunError::Setup(format!("the campaign cannot be read: {e}")))?;
        Ok(Ok((campaign, spec)))
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
        self.template_by_id(org_id, id).await
    }

    /// The org's template `id`, compiled.
    pub async fn template_by_id(
        &self,
        org_id: &str,
        id: &str,
    ) -> Result<CompiledTemplate, SendRunError> {
        let doc = documents::get(&self.db, org_id, DocumentKind::Template, id)
            .await?
            .ok_or_else(|| SendRunError::Setup(format!("template {id} does not exist")))?;
        let content: TemplateContent = serde_json::from_value(doc)
            .map_err(|e| SendRunError::Setup(format!("template {id} cannot be read: {e}")))?;
        CompiledTemplate::new(&content)
            .map_err(|_| SendRunError::Setup(format!("template {id} does not compile")))
    }

    /// Sends one page of members on each route: skips what the ledger holds (when asked to
    /// look), the unsubscribed and those without an address, and defers (`RunReport::defer`)
    /// those whose local time is inside the org's quiet hours for the channel.
    pub async fn send_page(
        &self,
        ctx: &RunCtx<'_>,
        routes: &[Route],
        members: &[(String, Value)],
        check_ledger: bool,
        report: &mut RunReport,
    ) -> Result<(), SendRunError> {
        let done = if check_ledger {
            let ids: Vec<String> = members.iter().map(|(id, _)| id.clone()).collect();
            ledger::in_ledger(&self.db, ctx.org_id, ctx.run_id, &ids).await?
        } else {
            HashSet::new()
        };
        let settings = crate::settings::get(&self.db, ctx.org_id).await?;
        let default_zone = settings.default_zone();
        let campaign_zone = ctx.campaign["schedule"]["timezone"].as_str();
        let now = chrono::Utc::now();
        let wall = local_wall_time(ctx);
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
                let Some(to) = message::address(route.channel, contact) else {
                    report.skipped_no_address += 1;
                    continue;
                };
                let mut zone_fallback = false;
                if let Some(wall) = wall {
                    // Local-time delivery: the contact's own zone, else the campaign's, else
                    // the org's; a moment still ahead waits for it.
                    let own = contact["timezone"].as_str().and_then(parse_timezone);
                    let tz = own.unwrap_or_else(|| {
                        frequency::local_zone(None, campaign_zone, default_zone)
                    });
                    let moment = resolve_local(tz, wall).unwrap_or(now);
                    if moment > now {
                        report.defer(id, moment);
                        continue;
                    }
                    // Counted from the ledger row the send writes (`ledger::run_counts`), so a
                    // crash or a quiet-hours deferral neither loses nor repeats it.
                    zone_fallback = own.is_none();
                }
                if settings.quiet_hours.is_some() {
                    let tz = frequency::local_zone(
                        contact["timezone"].as_str(),
                        campaign_zone,
                        default_zone,
                    );
                    if let Some(until) = settings.quiet_until(route.channel.id(), now, tz) {
                        report.defer(id, until);
                        continue;
                    }
                }
                let mut message =
                    self.composer
                        .prepare_message(ctx, route.channel, id, contact, to);
                self.composer.add_status_callback(route, &mut message);
                message.zone_fallback = zone_fallback;
                prepared.push(message);
            }
            if !prepared.is_empty() {
                deliver::deliver(&self.db, ctx, route, prepared, report).await?;
            }
        }
        Ok(())
    }
}

/// The wall-clock time a local-time run (`schedule.localTime`) reaches each contact at:
/// `startAt` read in the campaign's zone (UTC when it has none). `None` for other runs and for
/// drip and milestone steps.
fn local_wall_time(ctx: &RunCtx<'_>) -> Option<chrono::NaiveDateTime> {
    let schedule = &ctx.campaign["schedule"];
    if ctx.step_id.is_some() || schedule["localTime"] != true {
        return None;
    }
    let start = chrono::DateTime::parse_from_rfc3339(schedule["startAt"].as_str()?).ok()?;
    let zone = schedule["timezone"]
        .as_str()
        .and_then(parse_timezone)
        .unwrap_or(Tz::UTC);
    Some(start.with_timezone(&zone).naive_local())
}

/// Why a fan-out must stop, from the campaign's current read row.
pub fn stop_reason(campaign: &Value) -> Option<RunOutcome> {
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
