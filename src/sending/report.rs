//! What one fan-out attempt reports: its counts, and why it could not run.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use herald_domain::spec::Channel;
use serde::Serialize;

#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunReport {
    pub sent: u64,
    pub failed: u64,
    pub already_in_ledger: u64,
    pub skipped_unsubscribed: u64,
    /// Not sent: the address is on the org's suppression list.
    pub skipped_suppressed: u64,
    /// Not sent: the org's frequency caps held them back (a `capped` ledger row each).
    pub capped: u64,
    pub skipped_no_address: u64,
    /// Not sent yet: due inside the org's quiet hours, or before their local time.
    pub deferred: u64,
    /// Contacts sent at local time in a fallback zone (no valid zone of their own), over every
    /// pass of the run: set from the ledger once the run is sent (`ledger::run_counts`).
    pub zone_fallbacks: u64,
    pub channels_without_connection: Vec<Channel>,
    /// Each deferred contact, and when its window ends.
    #[serde(skip)]
    pub deferred_until: HashMap<String, DateTime<Utc>>,
}

impl RunReport {
    /// Holds `contact_id`'s send until `until`, the end of its quiet hours.
    pub fn defer(&mut self, contact_id: &str, until: DateTime<Utc>) {
        self.deferred += 1;
        self.hold_until(contact_id.to_string(), until);
    }

    /// Keeps the earliest time a deferred contact may be sent at.
    fn hold_until(&mut self, contact_id: String, until: DateTime<Utc>) {
        let at = self.deferred_until.entry(contact_id).or_insert(until);
        *at = (*at).min(until);
    }

    /// Adds the counts of a page sent beside others, each with its own report.
    pub fn absorb(&mut self, page: RunReport) {
        let RunReport {
            sent,
            failed,
            already_in_ledger,
            skipped_unsubscribed,
            skipped_suppressed,
            capped,
            skipped_no_address,
            deferred,
            zone_fallbacks,
            channels_without_connection,
            deferred_until,
        } = page;
        self.sent += sent;
        self.failed += failed;
        self.already_in_ledger += already_in_ledger;
        self.skipped_unsubscribed += skipped_unsubscribed;
        self.skipped_suppressed += skipped_suppressed;
        self.capped += capped;
        self.skipped_no_address += skipped_no_address;
        self.deferred += deferred;
        self.zone_fallbacks += zone_fallbacks;
        for channel in channels_without_connection {
            if !self.channels_without_connection.contains(&channel) {
                self.channels_without_connection.push(channel);
            }
        }
        for (contact, until) in deferred_until {
            self.hold_until(contact, until);
        }
    }

    /// When the earliest deferred send may go, if any was deferred.
    pub fn wake_at(&self) -> Option<DateTime<Utc>> {
        self.deferred_until.values().min().copied()
    }
}

/// Why a fan-out could not run; the job is retried and, in the end, dead-lettered.
#[derive(Debug, thiserror::Error)]
pub enum SendRunError {
    #[error("{0}")]
    Setup(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    /// Another node claimed the job after this node's lease ran out: stop, send nothing more.
    #[error("the job's lease was lost to another node")]
    LeaseLost,
}
