//! What the three services share beyond the pure domain: typed settings,
//! telemetry, the Kafka client basics and a producer that outlives its fatal
//! errors, the Postgres store, the HTTP conventions, retrying with back-off,
//! waiting for the database at start-up, and the shutdown signal.
//!
//! Everything here touches the outside world; the math and the wire format
//! live in the `domain` crate, which this one builds on.

pub mod http;
pub mod kafka;
pub mod kafka_health;
pub mod kafka_options;
pub mod kafka_producer;
pub mod listen;
pub mod retry;
pub mod secret_files;
pub mod settings;
pub mod shutdown;
pub mod startup;
pub mod store;
pub mod telemetry;
