//! The pure core of the pipeline, shared by the producer, the consumer and the
//! model service: model ids, priors, observations and their wire format, and
//! the Bayesian engine.
//!
//! Architecture invariant: everything here is plain functions over plain
//! data. It does no I/O, holds no async code and logs nothing, so it can be
//! tested exhaustively; the crate's dependencies enforce it (`cargo tree -p
//! domain` shows no tokio, rdkafka, sea-orm or axum). I/O lives in the
//! `platform` crate and in the services.

pub mod bayes;
pub mod experiment;
pub mod json;
pub mod model_id;
pub mod number;
pub mod observation;
pub mod prior;
pub mod schema;
pub mod whole;

pub use model_id::ModelId;
pub use prior::Prior;
