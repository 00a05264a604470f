//! Delivery of one page of prepared messages on one route: the sandbox records them in its
//! outbox in the ledger's transaction; a real vendor gets `sending` ledger rows committed before
//! the call (a crash during the call never sends twice), bounded concurrency, retries with
//! backoff and jitter, and the outcome written after. Each page's `SendsRecorded` event is
//! appended in the transaction that writes its outcomes.
//!
//! Each page's ledger transaction first reads the suppression list for the page's addresses
//! and leaves the suppressed out, so an address suppressed before that commit gets nothing.
//! It then weighs the rest against the org's frequency caps (`frequency.rs`): a contact over a
//! cap gets a `capped` ledger row and no message, and the page's `SendsRecorded` lists it.
//!
//! Every page is fenced by the job's lease: its ledger rows commit only in a transaction that
//! still holds the lease (`Lease::fence`), and no vendor call starts once another node holds it.

use std::collections::HashSet;
use std::time::Duration;

use futures::StreamExt;
use herald_domain::engagement::{run_stream, SendsRecorded, SENDS_EVENT_TYPE};
use herald_domain::spec::Channel;
use herald_domain::suppression::{normalise, Reason, SUPPRESSIBLE};
use herald_projections::record::Metadata;
use serde_json::Value;

use super::jobs::Lease;
use super::ledger::{self, Delivered, LedgerRow};
use super::message::{Prepared, RunCtx};
use super::report::{RunReport, SendRunError};
use super::route::Route;
use crate::db::{Db, Tx};
use crate::frequency::{self, Candidate, Caps};
use crate::store::{self, format_time, AppendError, NewEvent};
use crate::suppressions::{self, Suppress};
use crate::vendors::{Adapter, OutboundMessage, SendError};

/// The failure recorded for a message whose vendor call was not made because this node lost
/// the job's lease (or could not confirm it) first.
const NOT_CALLED: &str = "not sent: this node lost the job's lease before the vendor call";

/// Vendor calls in flight at once for one run.
const VENDOR_CONCURRENCY: usize = 16;

/// Calls made for one message before a retryable failure counts as failed for good.
const MAX_SEND_ATTEMPTS: u32 = 4;

/// The longest pause between two calls for one message, whatever `Retry-After` asks.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(30);

#[derive(Default)]
struct SendsPage {
    sent: Vec<String>,
    failed: Vec<String>,
    bounced: Vec<String>,
    capped: Vec<String>,
}

pub async fn deliver(
    db: &Db,
    ctx: &RunCtx<'_>,
    route: &Route,
    prepared: Vec<Prepared>,
    report: &mut RunReport,
) -> Result<(), SendRunError> {
    if route.is_sandbox() {
        record_sandbox(db, ctx, route, prepared, report).await
    } else {
        call_vendor(db, ctx, route, prepared, report).await
    }
}

/// The sandbox vendor: ledger rows and outbox rows in one transaction. `settings.failRate`
/// and `settings.bounce` turn some sends into failures (recorded, nothing in the outbox).
async fn record_sandbox(
    db: &Db,
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
    let mut tx = db.begin().await?;
    let outcomes = drop_suppressed(
        db,
        &mut tx,
        ctx,
        route.channel,
        outcomes,
        |(p, _)| p,
        report,
    )
    .await?;
    let caps = take_caps(&mut tx, ctx, route.channel, &outcomes, |(p, _)| p).await?;
    let rows: Vec<LedgerRow> = outcomes
        .iter()
        .map(|(p, outcome)| {
            let capped = caps.is_capped(&p.contact_id);
            LedgerRow {
                contact_id: &p.contact_id,
                channel: p.channel,
                state: match outcome {
                    _ if capped => "capped",
                    Ok(()) => "sent",
                    Err(_) => "failed",
                },
                error: outcome
                    .as_ref()
                    .err()
                    .filter(|_| !capped)
                    .map(String::as_str),
                zone_fallback: p.zone_fallback && !capped,
            }
        })
        .collect();
    let inserted = ledger::insert_ledger(&mut tx, ctx, &rows, &now).await?;
    let mut results = Vec::new();
    let mut outbox = Vec::new();
    let mut sends = SendsPage::default();
    for (p, outcome) in &outcomes {
        if !inserted.contains(&(p.contact_id.clone(), p.channel.id().to_string())) {
            report.already_in_ledger += 1;
            continue;
        }
        if caps.is_capped(&p.contact_id) {
            report.capped += 1;
            sends.capped.push(p.contact_id.clone());
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
    caps.commit(
        &mut tx,
        ctx.org_id,
        |contact| inserted.contains(&(contact.to_string(), route.channel.id().to_string())),
        chrono::Utc::now(),
    )
    .await?;
    let attempted: Vec<&(Prepared, Result<(), String>)> = outcomes
        .iter()
        .filter(|(p, _)| !caps.is_capped(&p.contact_id))
        .collect();
    suppress_hard_bounces(db, &mut tx, ctx, route.channel, &attempted, &bounce).await?;
    for chunk in outbox.chunks(200) {
        ledger::insert_outbox(&mut tx, ctx, chunk, &now).await?;
    }
    ledger::insert_short_links(&mut tx, ctx, outbox.iter().map(|(p, _)| *p), &now).await?;
    // What pages sent at once wait for each other on comes last: the run's stream head, the
    // channel's counters, the job's fence (`run::PAGES_AT_ONCE`).
    record_sends(db, &mut tx, ctx, route.channel, sends, true).await?;
    ledger::bump_channel_stats(&mut tx, ctx.org_id, route.channel, &results, &now).await?;
    if !fenced(ctx, &mut tx).await? {
        tx.rollback().await?;
        return Err(SendRunError::LeaseLost);
    }
    tx.commit().await?;
    Ok(())
}

/// A real vendor: claim the ledger rows (committed, under the lease), call the vendor with
/// bounded concurrency and retries while the lease holds, then record each outcome. A call
/// not made because the lease was lost is recorded as failed: its row already says the contact
/// was claimed, and the node now holding the job skips it.
async fn call_vendor(
    db: &Db,
    ctx: &RunCtx<'_>,
    route: &Route,
    prepared: Vec<Prepared>,
    report: &mut RunReport,
) -> Result<(), SendRunError> {
    let now = format_time(chrono::Utc::now());
    let (claimed, prepared, caps) = {
        let mut tx = db.begin().await?;
        let prepared =
            drop_suppressed(db, &mut tx, ctx, route.channel, prepared, |p| p, report).await?;
        let caps = take_caps(&mut tx, ctx, route.channel, &prepared, |p| p).await?;
        let rows: Vec<LedgerRow> = prepared
            .iter()
            .map(|p| {
                let capped = caps.is_capped(&p.contact_id);
                LedgerRow {
                    contact_id: &p.contact_id,
                    channel: p.channel,
                    state: if capped { "capped" } else { "sending" },
                    error: None,
                    zone_fallback: p.zone_fallback && !capped,
                }
            })
            .collect();
        let inserted = ledger::insert_ledger(&mut tx, ctx, &rows, &now).await?;
        let claimed = prepared
            .iter()
            .filter(|p| inserted.contains(&p.ledger_key()) && !caps.is_capped(&p.contact_id));
        ledger::insert_short_links(&mut tx, ctx, claimed, &now).await?;
        caps.commit(
            &mut tx,
            ctx.org_id,
            |contact| inserted.contains(&(contact.to_string(), route.channel.id().to_string())),
            chrono::Utc::now(),
        )
        .await?;
        let capped = SendsPage {
            capped: prepared
                .iter()
                .filter(|p| inserted.contains(&p.ledger_key()) && caps.is_capped(&p.contact_id))
                .map(|p| p.contact_id.clone())
                .collect(),
            ..SendsPage::default()
        };
        report.capped += capped.capped.len() as u64;
        record_sends(db, &mut tx, ctx, route.channel, capped, false).await?;
        if !fenced(ctx, &mut tx).await? {
            tx.rollback().await?;
            return Err(SendRunError::LeaseLost);
        }
        tx.commit().await?;
        (inserted, prepared, caps)
    };
    let mut mine = Vec::new();
    for p in prepared {
        if !claimed.contains(&p.ledger_key()) {
            report.already_in_ledger += 1;
        } else if !caps.is_capped(&p.contact_id) {
            mine.push(p);
        }
    }
    let adapter = route.adapter.as_ref();
    let lease = ctx.lease;
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
                    let (result, attempts) =
                        send_with_retry(adapter.as_ref(), message, lease).await;
                    (
                        result.map_err(|e| without_address(&e, &message.to)),
                        attempts,
                    )
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
    let mut tx = db.begin().await?;
    let mut results = Vec::with_capacity(delivered.len());
    let mut sends = SendsPage::default();
    for d in &delivered {
        results.push(d.result.is_ok());
        if d.result.is_ok() {
            report.sent += 1;
            sends.sent.push(d.contact_id.clone());
        } else {
            report.failed += 1;
            sends.failed.push(d.contact_id.clone());
        }
    }
    ledger::record_outcomes(&mut tx, ctx, &delivered, &now).await?;
    record_sends(db, &mut tx, ctx, route.channel, sends, false).await?;
    ledger::bump_channel_stats(&mut tx, ctx.org_id, route.channel, &results, &now).await?;
    tx.commit().await?;
    Ok(())
}

/// A vendor's error with the recipient's address taken out (`<recipient>`): vendors quote it
/// ("550 <ann@acme.test> unknown"), and the error goes into the ledger, where an erasure
/// could not find it by the contact.
fn without_address(error: &str, to: &str) -> String {
    let to = to.trim();
    if to.is_empty() {
        return error.to_string();
    }
    let lower = error.to_lowercase();
    let needle = to.to_lowercase();
    // Lower-casing can change byte lengths outside ASCII; then only exact matches are replaced.
    if lower.len() != error.len() {
        return error.replace(to, "<recipient>");
    }
    let mut out = String::with_capacity(error.len());
    let mut rest = 0;
    while let Some(found) = lower[rest..].find(&needle) {
        let start = rest + found;
        out.push_str(&error[rest..start]);
        out.push_str("<recipient>");
        rest = start + needle.len();
    }
    out.push_str(&error[rest..]);
    out
}

/// Leaves out the messages whose address is on the org's suppression list, read in the
/// transaction that writes the page's ledger rows: no row, no send, counted as suppressed.
async fn drop_suppressed<T>(
    db: &Db,
    tx: &mut Tx,
    ctx: &RunCtx<'_>,
    channel: Channel,
    items: Vec<T>,
    prepared: impl Fn(&T) -> &Prepared,
    report: &mut RunReport,
) -> Result<Vec<T>, sqlx::Error> {
    if !SUPPRESSIBLE.contains(&channel) {
        return Ok(items);
    }
    let key = |item: &T| {
        prepared(item)
            .message
            .as_ref()
            .ok()
            .and_then(|m| normalise(channel, &m.to))
    };
    let addresses: Vec<String> = items.iter().filter_map(key).collect();
    let listed = suppressions::suppressed(
        tx,
        db.erasure_key.as_deref(),
        ctx.org_id,
        channel,
        &addresses,
    )
    .await?;
    if listed.is_empty() {
        return Ok(items);
    }
    let before = items.len();
    let kept: Vec<T> = items
        .into_iter()
        .filter(|item| key(item).is_none_or(|a| !listed.contains(&a)))
        .collect();
    report.skipped_suppressed += (before - kept.len()) as u64;
    Ok(kept)
}

/// Weighs a page against the org's frequency caps (`frequency.rs`), in its ledger transaction.
/// Only email and SMS reach one person; a campaign with `ignoreFrequencyCaps` is neither capped
/// nor counted; a message that could not be made is not counted.
async fn take_caps<T>(
    tx: &mut Tx,
    ctx: &RunCtx<'_>,
    channel: Channel,
    items: &[T],
    prepared: impl Fn(&T) -> &Prepared,
) -> Result<Caps, sqlx::Error> {
    if !SUPPRESSIBLE.contains(&channel) || ctx.campaign["ignoreFrequencyCaps"] == true {
        return Ok(Caps::default());
    }
    let settings = crate::settings::get_in(tx, ctx.org_id).await?;
    let candidates: Vec<Candidate> = items
        .iter()
        .map(prepared)
        .filter(|p| p.message.is_ok())
        .map(|p| Candidate {
            contact_id: &p.contact_id,
            timezone: p.timezone.as_deref(),
        })
        .collect();
    frequency::take(
        tx,
        ctx.org_id,
        &settings,
        channel,
        ctx.campaign["schedule"]["timezone"].as_str(),
        &candidates,
        chrono::Utc::now(),
    )
    .await
}

/// Puts the addresses the sandbox bounced (its hard bounces) on the suppression list, in the
/// page's transaction.
async fn suppress_hard_bounces(
    db: &Db,
    tx: &mut Tx,
    ctx: &RunCtx<'_>,
    channel: Channel,
    outcomes: &[&(Prepared, Result<(), String>)],
    bounce: &HashSet<String>,
) -> Result<(), SendRunError> {
    let entries: Vec<Suppress> = outcomes
        .iter()
        .filter_map(|(p, _)| p.message.as_ref().ok())
        .filter(|m| bounce.contains(&m.to.to_lowercase()))
        .filter_map(|m| Suppress::new(channel, &m.to, Reason::Bounce, "sandbox"))
        .collect();
    if entries.is_empty() {
        return Ok(());
    }
    let metadata = sender_metadata(ctx);
    suppressions::add(tx, db, &entries, &metadata, chrono::Utc::now())
        .await
        .map_err(|e| match e {
            AppendError::Db(e) => SendRunError::Db(e),
            AppendError::Conflict => {
                SendRunError::Setup("a concurrent change to the suppression list".into())
            }
        })?;
    Ok(())
}

/// The metadata of the events the sender writes for a run.
fn sender_metadata(ctx: &RunCtx<'_>) -> Metadata {
    Metadata {
        actor: "herald:sender".to_string(),
        org_id: ctx.org_id.to_string(),
        request_id: String::new(),
        correlation_id: ctx.run_id.to_string(),
        causation_id: ctx.run_id.to_string(),
    }
}

/// Appends the page's `SendsRecorded` event to the run's stream, inside the transaction
/// that writes its ledger outcomes: the log holds every send the ledger holds.
async fn record_sends(
    db: &Db,
    tx: &mut Tx,
    ctx: &RunCtx<'_>,
    channel: Channel,
    page: SendsPage,
    delivered: bool,
) -> Result<(), SendRunError> {
    if page.sent.is_empty()
        && page.failed.is_empty()
        && page.bounced.is_empty()
        && page.capped.is_empty()
    {
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
        capped: page.capped,
        delivered,
        at: now,
    };
    let event = NewEvent {
        event_type: SENDS_EVENT_TYPE.to_string(),
        event_version: "1".to_string(),
        data: serde_json::to_value(&data).expect("sends serialize"),
    };
    let stream = match ctx.step_id {
        // A step's run is sent by many batches at once, on one node or several: a stream per
        // page, so no batch fails on another's revision.
        Some(_) => format!(
            "{}:{}",
            run_stream(ctx.org_id, ctx.campaign_id, ctx.run_id),
            uuid::Uuid::now_v7()
        ),
        None => run_stream(ctx.org_id, ctx.campaign_id, ctx.run_id),
    };
    let metadata = sender_metadata(ctx);
    store::append_at_head(tx, db.backend, &stream, &event, &metadata, now)
        .await
        .map_err(|e| match e {
            AppendError::Db(e) => SendRunError::Db(e),
            AppendError::Conflict => {
                SendRunError::Setup("another sender wrote this run's sends".into())
            }
        })?;
    Ok(())
}

/// Calls the vendor, retrying retryable failures with exponential backoff and full jitter
/// (or the vendor's `Retry-After`, capped), each call only while `lease` holds. Returns the
/// outcome and the number of calls.
async fn send_with_retry(
    adapter: &dyn Adapter,
    message: &OutboundMessage,
    lease: Option<&Lease>,
) -> (Result<Option<String>, String>, u32) {
    let mut attempt = 0;
    loop {
        if let Some(lease) = lease {
            if !lease.still_ours().await.unwrap_or(false) {
                return (Err(NOT_CALLED.to_string()), attempt);
            }
        }
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

/// Fences a page's ledger transaction with the job's lease (`Lease::fence`). Drip and
/// milestone steps have no job: their enrollments are claimed row by row, and the ledger alone
/// keeps each of their sends to one (`drip.rs`).
async fn fenced(ctx: &RunCtx<'_>, tx: &mut Tx) -> Result<bool, sqlx::Error> {
    match ctx.lease {
        Some(lease) => lease.fence(tx).await,
        None => Ok(true),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vendor_error_loses_the_recipients_address() {
        assert_eq!(
            without_address(
                "550 <Ann@Acme.test> unknown; ann@acme.test",
                "ann@acme.test"
            ),
            "550 <<recipient>> unknown; <recipient>"
        );
        assert_eq!(
            without_address("21211: '+14155550100' is not valid", "+14155550100"),
            "21211: '<recipient>' is not valid"
        );
        assert_eq!(without_address("timed out", "ann@acme.test"), "timed out");
        assert_eq!(without_address("timed out", ""), "timed out");
    }

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
}
