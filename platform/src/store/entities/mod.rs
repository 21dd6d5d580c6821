//! sea-orm entities, one module a table.

pub mod api_keys;
pub mod applied_ids;
pub mod consumer_offsets;
pub mod consumer_source;
pub mod experiment_assignments;
pub mod experiments;
pub mod model_configs;
pub mod model_history;
pub mod model_states;
pub mod models;
pub mod priors;
pub mod uploads;
