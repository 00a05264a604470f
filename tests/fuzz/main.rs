//! Schemathesis against a live server, in a test binary of its own: cargo runs test binaries one
//! after another, so the fuzzer's load does not slow the timing-sensitive API tests.

#[allow(dead_code)]
#[path = "../api/helpers.rs"]
mod helpers;
#[path = "../api/venv.rs"]
mod venv;

mod schemathesis;
