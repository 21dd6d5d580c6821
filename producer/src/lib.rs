//! The producer service: observations arrive over HTTP, are validated with the
//! shared wire parser, are written to Kafka (key = model id, value = canonical
//! JSON, a `trace-id` header), and are answered `202 Accepted` only once the
//! broker acknowledged every record. Bulk CSV files come in through
//! `POST /uploads` (`uploads`), validated whole and then produced in the
//! background, their progress kept in Postgres.
//!
//! `main.rs` is a thin wrapper: settings, telemetry, [`Application::build`],
//! [`Application::run_until_stopped`] with `platform::shutdown::shutdown_signal`.

mod database;
pub mod error;
pub mod extract;
pub mod idempotency;
pub mod kafka;
pub mod known_models;
pub mod observability;
mod openapi;
pub mod routes;
mod startup;
mod state;
pub mod uploads;

pub use database::{Database, INTERRUPTED};
pub use error::ApiError;
pub use openapi::openapi;
pub use routes::Accepted;
pub use startup::{router, Application};
pub use state::AppState;
