//! What one fan-out attempt reports: its counts, and why it could not run.

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
    /// Another node claimed the job after this node's lease ran out: stop, send nothing more.
    #[error("the job's lease was lost to another node")]
    LeaseLost,
}
