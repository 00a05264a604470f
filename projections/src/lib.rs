//! Herald's read models, each a pure function of the event log.
//!
//! A projection here takes stored [`record::EventRecord`]s and returns rows; the `herald` crate
//! runs them (inline with a command, or as checkpointed catch-up readers) and replays them.

pub mod analytics;
pub mod campaign;
pub mod document;
pub mod record;
pub mod status_counts;
