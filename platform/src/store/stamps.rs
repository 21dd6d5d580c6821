//! What a model service checks its memory of the current state against:
//! every model's version and configuration time, and every experiment's
//! last definition, in one cheap read each. An entry whose stamp differs
//! (or that is missing on either side) is reloaded; nothing else is.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, Statement};

use super::convert::to_u64;
use super::StoreError;
use domain::model_id::ModelId;

/// A model's stamp: what changes whenever its record does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelStamp {
    pub id: ModelId,
    pub version: u64,
    pub configured_at: DateTime<Utc>,
}

/// An experiment's stamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExperimentStamp {
    pub id: ModelId,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn id(row: &sea_orm::QueryResult) -> Result<ModelId, StoreError> {
    ModelId::parse(row.try_get::<String>("", "id")?).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Every model's stamp, in id order.
pub async fn model_stamps(db: &impl ConnectionTrait) -> Result<Vec<ModelStamp>, StoreError> {
    let rows = db
        .query_all(Statement::from_string(
            DbBackend::Postgres,
            "SELECT m.id, coalesce(s.version, 0) AS version, m.updated_at AS configured_at \
             FROM models m LEFT JOIN model_states s ON s.model_id = m.id ORDER BY m.id",
        ))
        .await?;
    rows.iter()
        .map(|row| {
            Ok(ModelStamp {
                id: id(row)?,
                version: to_u64(row.try_get("", "version")?)?,
                configured_at: row.try_get("", "configured_at")?,
            })
        })
        .collect()
}

/// Every experiment's stamp, in id order.
pub async fn experiment_stamps(
    db: &impl ConnectionTrait,
) -> Result<Vec<ExperimentStamp>, StoreError> {
    let rows = db
        .query_all(Statement::from_string(
            DbBackend::Postgres,
            "SELECT id, created_at, updated_at FROM experiments ORDER BY id",
        ))
        .await?;
    rows.iter()
        .map(|row| {
            Ok(ExperimentStamp {
                id: id(row)?,
                created_at: row.try_get("", "created_at")?,
                updated_at: row.try_get("", "updated_at")?,
            })
        })
        .collect()
}
