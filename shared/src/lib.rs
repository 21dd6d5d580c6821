//! The core of the pipeline, shared by the producer, the consumer and the model service.
//!
//! Architecture invariant: [`model_id`], [`prior`], [`observation`] and [`bayes`]
//! are plain functions over plain data. They do no I/O, hold no async code and
//! log nothing, so they can be tested exhaustively. I/O lives at the edges:
//! [`settings`], [`telemetry`] and [`store`].

pub mod bayes;
pub mod http;
pub mod kafka;
pub mod model_id;
pub mod observation;
pub mod prior;
pub mod settings;
pub mod signal;
pub mod store;
pub mod telemetry;

pub use model_id::ModelId;
pub use observation::Observation;
pub use prior::Prior;
