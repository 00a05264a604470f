//! Launching a campaign: one launch context (what can go out now, what blocks the rest, and the
//! audience's reach) for HTTP commands and the scheduler's wake-ups alike, and the completion of
//! a one-shot campaign once its run is sent, and of a recurring one at its end.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use herald_domain::campaign::{CampaignCommand, LaunchContext};
use herald_domain::error::CampaignError;
use herald_domain::spec::{CampaignSpec, Status};
use serde_json::Value;

use super::{audience, jobs};
use crate::campaigns::{self, CommandError, CommandMeta, OrgAssets, Readiness};
use crate::db::Db;

/// A launch context counts the audience only when the campaign is due within this margin; the
/// aggregate decides anyway.
const DUE_MARGIN: chrono::Duration = chrono::Duration::seconds(5);

/// The time launches are decided at: the wall clock, or the wall clock moved ahead by
/// `HERALD_TEST_CLOCK_AHEAD` (tests only), so a test can make a far-future `startAt` due without
/// waiting for it. Claims and leases keep the wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct LaunchClock {
    ahead: chrono::Duration,
}

impl LaunchClock {
    /// The wall clock moved ahead by `by` (none: the wall clock).
    pub fn ahead(by: Option<chrono::Duration>) -> LaunchClock {
        LaunchClock {
            ahead: by.unwrap_or_default(),
        }
    }

    /// The time of `wall` on this clock.
    fn at(self, wall: DateTime<Utc>) -> DateTime<Utc> {
        wall + self.ahead
    }
}

/// A new run's id.
pub fn new_run_id() -> String {
    format!("run-{}", uuid::Uuid::now_v7())
}

/// The launch context of a command at `now`: what can go out, what blocks the rest, the reach.
pub fn context(now: DateTime<Utc>, run_id: String, ready: &Readiness, reach: u64) -> LaunchContext {
    LaunchContext::new(now, run_id)
        .with_launchable(ready.launchable.clone())
        .with_blockers(ready.blockers.clone())
        .with_reach(reach)
}

/// The org's assets for a command: loaded fresh when the command may launch or schedule (the
/// decision must see the latest connections), the cached copy otherwise.
pub async fn assets_for(
    db: &Db,
    org_id: &str,
    status: Option<Status>,
    cached: Arc<OrgAssets>,
) -> Result<Arc<OrgAssets>, sqlx::Error> {
    if matches!(status, Some(Status::Running | Status::Scheduled)) {
        Ok(Arc::new(OrgAssets::load(db, org_id).await?))
    } else {
        Ok(cached)
    }
}

/// The audience is evaluated at launch (seed): only a command that launches a one-shot now pays
/// for it.
pub async fn reach_if_launching(
    db: &Db,
    org_id: &str,
    status: Option<Status>,
    spec: &CampaignSpec,
) -> Result<u64, sqlx::Error> {
    if status == Some(Status::Running) && spec.recurring.is_none() {
        audience::reach(db, org_id, spec).await
    } else {
        Ok(0)
    }
}

/// How long a campaign whose end has come waits before it is woken again while its last run is
/// still sending.
pub const END_RECHECK: chrono::Duration = chrono::Duration::seconds(2);

/// What waking a campaign did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Woken {
    /// The campaign changed (a run launched or was skipped, or it completed): the run id of the
    /// wake-up and the new status.
    Changed { run_id: String, status: Status },
    /// Nothing was due.
    Unchanged,
    /// A recurring campaign's end has come, but its last run is still sending: completing it now
    /// would stop that run, so it is woken again at this time.
    Again(DateTime<Utc>),
}

/// Wakes a campaign whose launch job is due: `RunDue` with a launch context built like the HTTP
/// path's (readiness from the org's assets, reach from the audience now, or `counted` when the
/// scheduler counted it ahead for this `nextRunAt`), at the time of `clock`. Nothing due means
/// no events. A recurring campaign past its last occurrence is woken at its end, and completes
/// once its last run is sent.
pub async fn run_due(
    db: &Db,
    meta: &CommandMeta,
    campaign_id: &str,
    clock: LaunchClock,
    counted: impl FnOnce(&str) -> Option<u64>,
) -> anyhow::Result<Woken> {
    let org_id = meta.org_id.as_str();
    let Some(doc) = campaigns::get(db, org_id, campaign_id).await? else {
        return Ok(Woken::Unchanged);
    };
    if doc["status"] == "running" && doc["nextRunAt"].is_null() {
        if let Some(last_run) = doc["lastRun"]["runId"].as_str() {
            if jobs::run_sending(db, org_id, last_run).await? {
                return Ok(Woken::Again(Utc::now() + END_RECHECK));
            }
        }
    }
    let spec: CampaignSpec = serde_json::from_value(doc.clone())?;
    let assets = OrgAssets::load(db, org_id).await?;
    let ready = assets.readiness(&spec);
    // A blocker without a channel (template or audience missing) stops the whole launch;
    // one with a channel only skips that channel, and the rest still go out.
    let blocked = ready.blockers.iter().any(|b| b.channel.is_none());
    let ahead = doc["nextRunAt"].as_str().and_then(counted);
    let reach = if is_due(&doc, clock.at(Utc::now()) + DUE_MARGIN) && !blocked {
        match ahead {
            Some(count) => count,
            None => audience::reach(db, org_id, &spec).await?,
        }
    } else {
        0
    };
    let run_id = new_run_id();
    let run = run_id.clone();
    let outcome = campaigns::execute(db, meta, campaign_id, false, None, None, move |_, now| {
        CampaignCommand::RunDue {
            ctx: context(clock.at(now), run.clone(), &ready, reach),
        }
    })
    .await;
    match outcome {
        Ok(outcome) if outcome.changed => Ok(Woken::Changed {
            run_id,
            status: outcome.view.campaign.status(),
        }),
        Ok(_) => Ok(Woken::Unchanged),
        Err(CommandError::Domain(CampaignError::NotFound | CampaignError::Deleted)) => {
            Ok(Woken::Unchanged)
        }
        Err(error) => Err(error.into()),
    }
}

/// A one-shot campaign is completed once every send of its run is dispatched or failed for good
/// (`api.md` section 2). Recurring campaigns keep running between runs. Returns whether the
/// campaign changed.
pub async fn complete_one_shot(
    db: &Db,
    meta: &CommandMeta,
    campaign_id: &str,
    run_id: &str,
) -> Result<bool, CommandError> {
    let run = run_id.to_string();
    let outcome = campaigns::execute(
        db,
        meta,
        campaign_id,
        false,
        None,
        None,
        move |campaign, now| {
            let this_run = campaign.last_run().is_some_and(|r| r.run_id == run);
            // Recurring campaigns keep running between runs, and a drip or milestone one while
            // its contacts go through their steps (`drip::complete_if_done`).
            let one_shot = campaign.spec().recurring.is_none() && !campaign.spec().has_steps();
            let to = if this_run && one_shot && campaign.status() == Status::Running {
                Status::Completed
            } else {
                // The same status: no events.
                campaign.status()
            };
            CampaignCommand::ChangeStatus {
                to,
                ctx: LaunchContext::new(now, run.clone()),
            }
        },
    )
    .await;
    match outcome {
        Ok(outcome) => Ok(outcome.changed),
        Err(CommandError::Domain(_)) => Ok(false),
        Err(error) => Err(error),
    }
}

/// Records on the campaign what its sent run `run_id` reports (`RunReported`: the sends the
/// frequency caps held back, in `lastRun.capped`). Nothing when that is not the last run or the
/// report is unchanged. Returns whether the campaign changed.
pub async fn report_run(
    db: &Db,
    meta: &CommandMeta,
    campaign_id: &str,
    run_id: &str,
    capped: u64,
    zone_fallbacks: u64,
) -> Result<bool, CommandError> {
    let run = run_id.to_string();
    let outcome = campaigns::execute(db, meta, campaign_id, false, None, None, move |_, _| {
        CampaignCommand::ReportRun {
            run_id: run.clone(),
            capped,
            zone_fallbacks,
        }
    })
    .await;
    match outcome {
        Ok(outcome) => Ok(outcome.changed),
        Err(CommandError::Domain(_)) => Ok(false),
        Err(error) => Err(error),
    }
}

/// Whether a campaign read row has a run due by `by`.
pub fn is_due(doc: &Value, by: DateTime<Utc>) -> bool {
    let active =
        doc["state"] == "active" && matches!(doc["status"].as_str(), Some("scheduled" | "running"));
    active
        && doc["nextRunAt"]
            .as_str()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .is_some_and(|at| at <= by)
}
