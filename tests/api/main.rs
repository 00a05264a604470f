//! Black-box API tests: every test starts the real server on port 0 against a fresh database,
//! once on SQLite and once on PostgreSQL.

#[allow(dead_code)]
mod helpers;

mod analytics;
mod audiences;
mod auth;
mod bad_input;
mod browser;
mod campaigns;
mod cli;
mod concurrency;
mod consent;
mod contacts;
mod contract;
mod dashboard;
mod demo;
mod discovery;
mod drip;
mod engagements;
mod erasure;
mod events;
mod failover;
mod health;
mod integrations;
mod lifecycle;
mod limits;
mod logging;
mod openapi;
mod preview;
mod purge;
mod reach;
mod scheduling;
mod sending;
mod settings;
mod suppressions;
mod tracking;
mod venv;
mod webhooks;
