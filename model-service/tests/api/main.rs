//! The model service's API tests: one binary, each test with its own service
//! on a free port and its own fresh database, filled by the store's own
//! functions (`apply_batch`, as the consumer does, and `configure_model`).

// Helpers fail the test that called them by panicking, as assertions do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod browser;
mod current;
mod dashboard;
mod edges;
mod errors;
mod events;
mod experiments;
mod helpers;
mod keys;
mod limits;
mod models;
mod ops;
mod plots;
mod posterior;
mod tls;
