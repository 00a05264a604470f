//! Event store conformance, on SQLite and PostgreSQL: concurrent writers and a catch-up reader,
//! crash recovery of projections, and replay equal to the live read models.

#[path = "../api/helpers.rs"]
#[allow(dead_code)]
mod helpers;

mod catch_up;
mod crash;
mod erasure_race;
mod golden;
