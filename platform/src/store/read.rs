//! Reads: the queries the model service answers from, and `configure_model`,
//! the one write the model service makes (`PUT /models/{id}`).
//!
//! Every function is one or a few plain SQL statements (Postgres only, like
//! the schema) so the hot path, one model's row and state, is a single
//! prepared query. Rows are turned into domain types here: an invalid prior,
//! id or count in the database is `StoreError::Corrupt`, never a panic.

use chrono::{DateTime, Utc};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, QueryResult, Statement, TransactionTrait, Value,
};

use super::StoreError;
use crate::settings::ModelDefaults;
use domain::bayes::{Counts, GridSize, ModelState};
use domain::model_id::ModelId;
use domain::prior::Prior;

/// A model as it stands now: its configuration and its current state.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelRecord {
    pub id: ModelId,
    pub prior: Prior,
    pub grid_size: GridSize,
    pub state: ModelState,
    /// When the model was created (by `PUT` or by its first data).
    pub created_at: DateTime<Utc>,
    /// When the prior or grid size last changed (`created_at` if never).
    pub configured_at: DateTime<Utc>,
    /// When the counts last changed (`created_at` if never).
    pub updated_at: DateTime<Utc>,
}

/// One row of `model_history`: the state after the `version`-th update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryRecord {
    pub version: u64,
    /// Cumulative counts after this update.
    pub counts: Counts,
    /// What this update added.
    pub delta: Counts,
    pub applied_at: DateTime<Utc>,
}

/// What `PUT /models/{id}` asks for; a field left `None` keeps its value
/// (or takes the default when the model is created).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelConfig {
    pub prior: Option<Prior>,
    pub grid_size: Option<GridSize>,
}

/// The outcome of [`configure_model`].
#[derive(Debug, Clone, PartialEq)]
pub struct Configured {
    pub record: ModelRecord,
    /// True when this call created the model.
    pub created: bool,
}

const MODEL_COLUMNS: &str =
    "m.id, m.prior, m.grid_size, m.created_at, m.updated_at AS configured_at, \
     COALESCE(s.successes, 0) AS successes, COALESCE(s.failures, 0) AS failures, \
     COALESCE(s.version, 0) AS version, COALESCE(s.updated_at, m.created_at) AS updated_at";

const HISTORY_COLUMNS: &str =
    "version, successes, failures, delta_successes, delta_failures, applied_at";

/// Checks that the database answers.
pub async fn ping(db: &impl ConnectionTrait) -> Result<(), StoreError> {
    db.execute_unprepared("SELECT 1").await?;
    Ok(())
}

/// One model with its current state, or `None` when there is no such model.
pub async fn get_model(
    db: &impl ConnectionTrait,
    id: &ModelId,
) -> Result<Option<ModelRecord>, StoreError> {
    let row = db
        .query_one(Statement::from_sql_and_values(
            DbBackend::Postgres,
            format!(
                "SELECT {MODEL_COLUMNS} FROM models m LEFT JOIN model_states s ON s.model_id = m.id \
                 WHERE m.id = $1"
            ),
            [id.as_str().into()],
        ))
        .await?;
    row.as_ref().map(model_from_row).transpose()
}

/// Up to `limit` models in id order, starting after `after` (keyset pagination).
pub async fn list_models(
    db: &impl ConnectionTrait,
    after: Option<&ModelId>,
    limit: u64,
) -> Result<Vec<ModelRecord>, StoreError> {
    let after: Value = after.map(|id| id.as_str().to_owned()).into();
    let rows = db
        .query_all(Statement::from_sql_and_values(
            DbBackend::Postgres,
            format!(
                "SELECT {MODEL_COLUMNS} FROM models m LEFT JOIN model_states s ON s.model_id = m.id \
                 WHERE $1::text IS NULL OR m.id > $1::text ORDER BY m.id LIMIT $2"
            ),
            [after, to_i64(limit)?.into()],
        ))
        .await?;
    rows.iter().map(model_from_row).collect()
}

/// The history row of `version` (1-based; version 0 has no row: no data yet).
pub async fn history_version(
    db: &impl ConnectionTrait,
    id: &ModelId,
    version: u64,
) -> Result<Option<HistoryRecord>, StoreError> {
    let row = db
        .query_one(Statement::from_sql_and_values(
            DbBackend::Postgres,
            format!(
                "SELECT {HISTORY_COLUMNS} FROM model_history WHERE model_id = $1 AND version = $2"
            ),
            [id.as_str().into(), to_i64(version)?.into()],
        ))
        .await?;
    row.as_ref().map(history_from_row).transpose()
}

/// The last version applied at or before `at`, or `None` when no data had
/// been applied by then.
pub async fn history_at(
    db: &impl ConnectionTrait,
    id: &ModelId,
    at: DateTime<Utc>,
) -> Result<Option<HistoryRecord>, StoreError> {
    let row = db
        .query_one(Statement::from_sql_and_values(
            DbBackend::Postgres,
            format!(
                "SELECT {HISTORY_COLUMNS} FROM model_history WHERE model_id = $1 AND applied_at <= $2 \
                 ORDER BY version DESC LIMIT 1"
            ),
            [id.as_str().into(), at.into()],
        ))
        .await?;
    row.as_ref().map(history_from_row).transpose()
}

/// Up to `limit` history rows in version order, starting after version `after`.
pub async fn history_page(
    db: &impl ConnectionTrait,
    id: &ModelId,
    after: Option<u64>,
    limit: u64,
) -> Result<Vec<HistoryRecord>, StoreError> {
    let after = match after {
        Some(v) => to_i64(v)?,
        None => 0,
    };
    let rows = db
        .query_all(Statement::from_sql_and_values(
            DbBackend::Postgres,
            format!(
                "SELECT {HISTORY_COLUMNS} FROM model_history WHERE model_id = $1 AND version > $2 \
                 ORDER BY version LIMIT $3"
            ),
            [id.as_str().into(), after.into(), to_i64(limit)?.into()],
        ))
        .await?;
    rows.iter().map(history_from_row).collect()
}

/// At most about `max_points` history rows spread evenly over versions
/// 1..=`up_to`, always including the last: what an evolution plot draws.
pub async fn history_sample(
    db: &impl ConnectionTrait,
    id: &ModelId,
    up_to: u64,
    max_points: u64,
) -> Result<Vec<HistoryRecord>, StoreError> {
    let step = up_to.div_ceil(max_points.max(1)).max(1);
    let rows = db
        .query_all(Statement::from_sql_and_values(
            DbBackend::Postgres,
            format!(
                "SELECT {HISTORY_COLUMNS} FROM model_history WHERE model_id = $1 AND version <= $2 \
                 AND (version % $3 = 0 OR version = $2) ORDER BY version"
            ),
            [
                id.as_str().into(),
                to_i64(up_to)?.into(),
                to_i64(step)?.into(),
            ],
        ))
        .await?;
    rows.iter().map(history_from_row).collect()
}

/// Creates a model, or changes its prior and grid size, in one transaction.
///
/// A new model gets its `models` row and a zero `model_states` row together,
/// so the consumer (which creates models it has not seen with
/// `ON CONFLICT DO NOTHING`) always finds a state to add to. Fields left
/// `None` take `defaults` on creation and keep their value otherwise. The
/// counts are never touched: the posterior is recomputed from them. When
/// something changed, `notify_channel` receives the model id after the commit,
/// as it does from the consumer, so live views redraw.
pub async fn configure_model(
    db: &DatabaseConnection,
    id: &ModelId,
    config: &ModelConfig,
    defaults: &ModelDefaults,
    notify_channel: &str,
) -> Result<Configured, StoreError> {
    let txn = db.begin().await?;

    let prior = config.prior.clone().unwrap_or_default();
    let grid_size = match config.grid_size {
        Some(size) => size,
        None => GridSize::parse(defaults.default_grid_size)
            .map_err(|e| StoreError::Corrupt(format!("default grid size: {e}")))?,
    };
    let created = txn
        .query_one(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "INSERT INTO models (id, prior, grid_size) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO NOTHING RETURNING id",
            [
                id.as_str().into(),
                prior_json(&prior)?.into(),
                grid_size_i32(grid_size)?.into(),
            ],
        ))
        .await?
        .is_some();
    txn.execute(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "INSERT INTO model_states (model_id, successes, failures, version) VALUES ($1, 0, 0, 0) \
         ON CONFLICT (model_id) DO NOTHING",
        [id.as_str().into()],
    ))
    .await?;

    let mut changed = created;
    if !created {
        let mut sets = Vec::new();
        let mut values: Vec<Value> = vec![id.as_str().into()];
        if let Some(prior) = &config.prior {
            values.push(prior_json(prior)?.into());
            sets.push(format!("prior = ${}", values.len()));
        }
        if let Some(size) = config.grid_size {
            values.push(grid_size_i32(size)?.into());
            sets.push(format!("grid_size = ${}", values.len()));
        }
        if !sets.is_empty() {
            txn.execute(Statement::from_sql_and_values(
                DbBackend::Postgres,
                format!(
                    "UPDATE models SET {}, updated_at = now() WHERE id = $1",
                    sets.join(", ")
                ),
                values,
            ))
            .await?;
            changed = true;
        }
    }

    if changed {
        // Delivered only if the transaction commits.
        txn.execute(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_notify($1, $2)",
            [notify_channel.into(), id.as_str().into()],
        ))
        .await?;
    }

    let record = get_model(&txn, id)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("model {id} vanished while configured")))?;
    txn.commit().await?;
    Ok(Configured { record, created })
}

fn model_from_row(row: &QueryResult) -> Result<ModelRecord, StoreError> {
    let id: String = row.try_get("", "id")?;
    let id = ModelId::parse(id).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let prior: serde_json::Value = row.try_get("", "prior")?;
    let prior: Prior = serde_json::from_value(prior)
        .map_err(|e| StoreError::Corrupt(format!("prior of {id}: {e}")))?;
    let grid_size: i32 = row.try_get("", "grid_size")?;
    let grid_size = u32::try_from(grid_size)
        .ok()
        .and_then(|g| GridSize::parse(g).ok())
        .ok_or_else(|| StoreError::Corrupt(format!("grid size {grid_size} of {id}")))?;
    Ok(ModelRecord {
        prior,
        grid_size,
        state: ModelState {
            counts: Counts::new(
                to_u64(row.try_get("", "successes")?)?,
                to_u64(row.try_get("", "failures")?)?,
            ),
            version: to_u64(row.try_get("", "version")?)?,
        },
        created_at: row.try_get("", "created_at")?,
        configured_at: row.try_get("", "configured_at")?,
        updated_at: row.try_get("", "updated_at")?,
        id,
    })
}

fn history_from_row(row: &QueryResult) -> Result<HistoryRecord, StoreError> {
    Ok(HistoryRecord {
        version: to_u64(row.try_get("", "version")?)?,
        counts: Counts::new(
            to_u64(row.try_get("", "successes")?)?,
            to_u64(row.try_get("", "failures")?)?,
        ),
        delta: Counts::new(
            to_u64(row.try_get("", "delta_successes")?)?,
            to_u64(row.try_get("", "delta_failures")?)?,
        ),
        applied_at: row.try_get("", "applied_at")?,
    })
}

fn prior_json(prior: &Prior) -> Result<serde_json::Value, StoreError> {
    serde_json::to_value(prior).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn grid_size_i32(size: GridSize) -> Result<i32, StoreError> {
    i32::try_from(size.get()).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn to_i64(x: u64) -> Result<i64, StoreError> {
    i64::try_from(x).map_err(|_| StoreError::Corrupt(format!("{x} does not fit a BIGINT")))
}

fn to_u64(x: i64) -> Result<u64, StoreError> {
    u64::try_from(x).map_err(|_| StoreError::Corrupt(format!("negative count {x} in the database")))
}
