//! Herald: an event-sourced CQRS backend for multi-channel marketing campaigns.
//!
//! Layout: [`http`] turns requests into commands and queries; [`campaigns`] runs commands
//! through the `herald-domain` aggregate and appends to the [`store`]; [`projector`] keeps the
//! checkpointed read models of `herald-projections` up to date; [`sending`] launches campaigns
//! when they are due and fans each run out to the audience through the [`vendors`]' adapters;
//! [`startup`] wires it together.

pub mod analytics;
pub mod auth;
pub mod cache;
pub mod campaigns;
pub mod commands;
pub mod config;
pub mod db;
pub mod demo;
pub mod documents;
pub mod engagements;
pub mod erased;
pub mod erasure;
pub mod frequency;
pub mod http;
pub mod limits;
pub mod progress;
pub mod projector;
pub mod purge;
pub mod reach;
pub mod secrets;
pub mod sending;
pub mod serve;
pub mod settings;
pub mod startup;
pub mod store;
pub mod suppressions;
pub mod vendors;
pub mod webhooks;

#[cfg(test)]
mod module_graph;
