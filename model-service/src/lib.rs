//! The model service: answers questions about the posteriors the consumer
//! keeps in Postgres, draws them, and serves a live dashboard.
//!
//! Every number it serves comes from the engine (`domain::bayes`) applied to
//! the stored sufficient statistics; this crate adds HTTP, caching, plotting
//! and the live feed around it. A request goes one way: `routes` reads it,
//! `query` answers from `current` (the current state in memory, kept fresh
//! by Postgres notifications) or asks `platform::store` (time travel,
//! windows, history, writes), `views` and `charts` (over `plot`) render the
//! answer. `main.rs` is a thin shell over
//! [`Application`]; tests drive [`router`] directly or a bound `Application`.

pub mod cache;
mod charts;
mod compute;
pub mod current;
pub mod error;
pub mod plot;
pub mod query;
mod routes;
pub mod startup;
pub mod state;
pub mod streams;
pub mod views;

/// The `service` label of the common HTTP metrics and of the API keys' use.
pub(crate) const SERVICE: &str = "model-service";

pub use error::ApiError;
pub use routes::{openapi, router};
pub use startup::Application;
pub use state::AppState;
