//! The system tests: the three services together, against real brokers and a
//! real Postgres, and the repository's files against the code. One binary,
//! one module per concern, so the whole stack is linked once rather than once
//! per file.
//!
//! Under `cargo test` the tests share one process and run as threads; the
//! cluster test, which measures failovers of three JVMs, takes the machine
//! for itself ([`system_tests::take_the_machine`]) and the tests that start
//! services or brokers share it ([`system_tests::share_the_machine`]), so it
//! runs alone there as it does under nextest (`.config/nextest.toml`).

// Helpers fail the test that called them by panicking, as assertions do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod broker_crash;
mod cluster;
mod commands;
mod console;
mod deploy;
mod docs;
mod e2e;
mod experiment;
mod kafka_tls;
mod keys;
mod openapi;
mod replicas;
mod retries;
mod uploads;
