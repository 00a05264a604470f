//! Launch and sending: from a campaign falling due to each message in the ledger.
//!
//! - `launch`: one launch context and readiness, for HTTP commands and the scheduler alike;
//! - `audience`: a campaign's filter, its reach and the contact pages a run walks;
//! - `jobs`: the jobs table, its claims and leases;
//! - `scheduler`: the loop, the log follower, the reconcile and the heartbeat;
//! - `enroll`: the log follower that enrolls contacts in running sequences after their launch;
//! - `drip`: drip and milestone enrollments, their durable step timers and each step's sends;
//! - `preview`: dry runs and test sends, outside every count;
//! - `run`: one run's fan-out, page by page;
//! - `route`: which connection (and vendor adapter) each channel goes through;
//! - `message`: the only room that knows each channel's message shape;
//! - `deliver`: a page of messages to the sandbox or a vendor, with retries;
//! - `ledger`: the send ledger, send counts, outbox, short links and channel stats;
//! - `report`: what a run reports.
//!
//! Dependencies run one way, top to bottom in that list (`tests` in `src/lib.rs` checks that no
//! module imports one that imports it back).

pub mod audience;
pub mod deliver;
pub mod drip;
pub mod enroll;
pub mod jobs;
pub mod launch;
pub mod ledger;
pub mod message;
pub mod preview;
pub mod report;
pub mod route;
pub mod run;
pub mod scheduler;
