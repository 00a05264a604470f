//! Herald: an event-sourced CQRS backend for multi-channel marketing campaigns.
//!
//! Layout: [`http`] turns requests into commands and queries; [`campaigns`] runs commands
//! through the `herald-domain` aggregate and appends to the [`store`]; [`projector`] keeps the
//! checkpointed read models of `herald-projections` up to date; [`scheduler`] launches
//! campaigns when they are due and hands each run to [`sender`], which fans it out to the
//! audience through [`channels`]; [`startup`] wires it together.

pub mod analytics;
pub mod auth;
pub mod cache;
pub mod campaigns;
pub mod channels;
pub mod config;
pub mod db;
pub mod documents;
pub mod engagements;
pub mod http;
pub mod projector;
pub mod purge;
pub mod reach;
pub mod scheduler;
pub mod secrets;
pub mod sender;
pub mod startup;
pub mod store;
pub mod webhooks;
