//! The model service: answers questions about the posteriors the consumer
//! keeps in Postgres, draws them, and serves a live dashboard.
//!
//! Every number it serves comes from the engine (`domain::bayes`) applied to
//! the stored sufficient statistics; this crate adds HTTP, caching, plotting
//! and the live feed around it. `main.rs` is a thin shell over
//! [`Application`]; tests drive [`router`] directly or a bound `Application`.

pub mod cache;
pub mod error;
pub mod events;
pub mod plot;
mod routes;
pub mod startup;
pub mod state;
pub mod streams;
pub mod views;

pub use error::ApiError;
pub use routes::{openapi, router};
pub use startup::Application;
pub use state::AppState;
