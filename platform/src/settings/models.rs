//! `[models]`: what a model gets when data arrives before anyone configured
//! it, and whether data may create models at all.

use std::time::Duration;

use domain::model_id::ModelId;
use serde::{Deserialize, Serialize};

use super::{check, SettingsError};

/// What a model gets when data arrives before anyone configured it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelDefaults {
    /// The model used when a record has neither key nor `model` field, and by `GET /posterior`.
    pub default_model: ModelId,
    /// Grid size of a model created by its first data (2..=100000).
    pub default_grid_size: u32,
    /// Whether data creates the model it names. Off: only `PUT /models/{id}`
    /// creates models; the producer answers 422 `unknown_model` for one it
    /// knows does not exist, and the consumer dead-letters every record of
    /// a model that does not exist with reason `unknown_model`.
    pub auto_create: bool,
    /// With `auto_create` off, how often the producer reloads the model ids
    /// it knows from Postgres in full, besides following every commit's
    /// notification on `database.notify_channel`.
    #[serde(with = "humantime_serde")]
    pub known_models_refresh: Duration,
}

impl Default for ModelDefaults {
    fn default() -> Self {
        Self {
            default_model: default_model_id(),
            default_grid_size: domain::bayes::DEFAULT_GRID_SIZE,
            auto_create: true,
            known_models_refresh: Duration::from_secs(30),
        }
    }
}

fn default_model_id() -> ModelId {
    ModelId::parse("globe").unwrap_or_else(|_| unreachable!("`globe` is a valid model id"))
}

impl ModelDefaults {
    pub(super) fn validate(&self) -> Result<(), SettingsError> {
        let grid = self.default_grid_size;
        check(
            "models.default_grid_size",
            (domain::bayes::MIN_GRID_SIZE..=domain::bayes::MAX_GRID_SIZE).contains(&grid),
            || {
                format!(
                    "{grid} is not in {}..={}",
                    domain::bayes::MIN_GRID_SIZE,
                    domain::bayes::MAX_GRID_SIZE
                )
            },
        )?;
        check(
            "models.known_models_refresh",
            !self.known_models_refresh.is_zero(),
            || "0s would ask Postgres in a busy loop".to_owned(),
        )
    }
}
