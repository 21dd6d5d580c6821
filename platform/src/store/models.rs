//! `models` with their current state: what the model service lists and shows,
//! and [`configure_model`], the one write it makes (`PUT /models/{id}`).
//!
//! A model's row and its state row are read together, one query a model or a
//! page (the hot path: every request for a model starts here). Rows become
//! domain types here: an invalid prior, id, grid size or count in the
//! database is `StoreError::Corrupt`, never a panic.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Alias, Expr, Func, Query};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, TransactionTrait, TryInsertResult,
};

use super::convert::{self, to_i64, to_u64};
use super::entities::{model_configs, model_states, models};
use super::StoreError;
use crate::settings::ModelDefaults;
use domain::bayes::{Counts, GridSize, ModelState};
use domain::model_id::ModelId;
use domain::prior::Prior;

/// The class (first key) of the model locks: transaction-scoped advisory
/// locks on `(MODEL_LOCK_CLASS, hashtext(model id))`. Every transaction that
/// creates a model or writes its `models` or `model_states` row takes its
/// models' locks first, in the order of that hash (then id), so concurrent
/// writers of one model queue instead of deadlocking. Two ids that share a
/// hash only share a queue. The two-key form lives apart from the
/// migrations' one-key lock.
pub(super) const MODEL_LOCK_CLASS: i32 = 0x6d6f_646c; // "modl"

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

/// One model with its current state, or `None` when there is no such model.
pub async fn get_model(
    db: &impl ConnectionTrait,
    id: &ModelId,
) -> Result<Option<ModelRecord>, StoreError> {
    let row = models::Entity::find_by_id(id.as_str())
        .find_also_related(model_states::Entity)
        .one(db)
        .await?;
    row.map(record).transpose()
}

/// Up to `limit` models in id order, starting after `after` (keyset pagination).
pub async fn list_models(
    db: &impl ConnectionTrait,
    after: Option<&ModelId>,
    limit: u64,
) -> Result<Vec<ModelRecord>, StoreError> {
    // The driver binds LIMIT as a BIGINT and panics on a larger one.
    to_i64(limit)?;
    let mut page = models::Entity::find()
        .find_also_related(model_states::Entity)
        .cursor_by(models::Column::Id);
    if let Some(after) = after {
        page.after(after.as_str());
    }
    let rows = page.first(limit).all(db).await?;
    rows.into_iter().map(record).collect()
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
    // The model's lock before its rows: a batch creating the same model
    // takes it too (see `MODEL_LOCK_CLASS`).
    let lock = Query::select()
        .expr(
            Func::cust(Alias::new("pg_advisory_xact_lock"))
                .arg(MODEL_LOCK_CLASS)
                .arg(Func::cust(Alias::new("hashtext")).arg(id.as_str())),
        )
        .to_owned();
    txn.execute(txn.get_database_backend().build(&lock)).await?;

    let prior = config.prior.clone().unwrap_or_default();
    let grid_size = match config.grid_size {
        Some(size) => size,
        None => GridSize::parse(defaults.default_grid_size)
            .map_err(|e| StoreError::Corrupt(format!("default grid size: {e}")))?,
    };
    let inserted = models::Entity::insert(models::ActiveModel {
        id: Set(id.as_str().to_owned()),
        prior: Set(convert::prior_json(&prior)?),
        grid_size: Set(convert::grid_size_i32(grid_size.get())?),
        ..Default::default()
    })
    .on_conflict_do_nothing()
    .exec_without_returning(&txn)
    .await?;
    let created = matches!(inserted, TryInsertResult::Inserted(1));
    model_states::Entity::insert(model_states::ActiveModel {
        model_id: Set(id.as_str().to_owned()),
        successes: Set(0),
        failures: Set(0),
        version: Set(0),
        ..Default::default()
    })
    .on_conflict_do_nothing()
    .exec_without_returning(&txn)
    .await?;

    let mut changed = created;
    if created {
        insert_config(&txn, id, 0, &prior, grid_size, None).await?;
    }
    if !created && (config.prior.is_some() || config.grid_size.is_some()) {
        let before = get_model(&txn, id)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("model {id} vanished while configured")))?;
        // A model first created by its data has no history yet: its
        // configuration so far held from its creation.
        let recorded = model_configs::Entity::find()
            .filter(model_configs::Column::ModelId.eq(id.as_str()))
            .one(&txn)
            .await?
            .is_some();
        if !recorded {
            let since = Some(before.configured_at);
            insert_config(&txn, id, 0, &before.prior, before.grid_size, since).await?;
        }
        let mut update = models::Entity::update_many()
            .col_expr(models::Column::UpdatedAt, Expr::cust("clock_timestamp()"))
            .filter(models::Column::Id.eq(id.as_str()));
        if let Some(prior) = &config.prior {
            update = update.col_expr(
                models::Column::Prior,
                Expr::value(convert::prior_json(prior)?),
            );
        }
        if let Some(size) = config.grid_size {
            update = update.col_expr(
                models::Column::GridSize,
                Expr::value(convert::grid_size_i32(size.get())?),
            );
        }
        update.exec(&txn).await?;
        let prior = config.prior.as_ref().unwrap_or(&before.prior);
        let grid_size = config.grid_size.unwrap_or(before.grid_size);
        insert_config(&txn, id, before.state.version, prior, grid_size, None).await?;
        changed = true;
    }

    if changed {
        // Delivered only if the transaction commits.
        let notify = Query::select()
            .expr(
                Func::cust(Alias::new("pg_notify"))
                    .arg(notify_channel)
                    .arg(id.as_str()),
            )
            .to_owned();
        txn.execute(txn.get_database_backend().build(&notify))
            .await?;
    }

    let record = get_model(&txn, id)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("model {id} vanished while configured")))?;
    txn.commit().await?;
    Ok(Configured { record, created })
}

/// Appends a configuration to the model's history; `since` defaults to
/// `clock_timestamp()`, read under the model's lock.
async fn insert_config(
    txn: &impl ConnectionTrait,
    id: &ModelId,
    from_version: u64,
    prior: &Prior,
    grid_size: GridSize,
    since: Option<DateTime<Utc>>,
) -> Result<(), StoreError> {
    let mut row = model_configs::ActiveModel {
        model_id: Set(id.as_str().to_owned()),
        from_version: Set(to_i64(from_version)?),
        prior: Set(convert::prior_json(prior)?),
        grid_size: Set(convert::grid_size_i32(grid_size.get())?),
        ..Default::default()
    };
    if let Some(since) = since {
        row.configured_at = Set(since);
    }
    model_configs::Entity::insert(row)
        .exec_without_returning(txn)
        .await?;
    Ok(())
}

/// A model's configuration at one point of its past.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigRecord {
    pub prior: Prior,
    pub grid_size: GridSize,
    /// When it was set.
    pub configured_at: DateTime<Utc>,
}

/// The configuration in force at `version`: the last one set while the
/// model was at that version or before. `None` when the model's
/// configuration never changed (its current one held throughout).
pub async fn config_at_version(
    db: &impl ConnectionTrait,
    id: &ModelId,
    version: u64,
) -> Result<Option<ConfigRecord>, StoreError> {
    let row = model_configs::Entity::find()
        .filter(model_configs::Column::ModelId.eq(id.as_str()))
        .filter(model_configs::Column::FromVersion.lte(to_i64(version)?))
        .order_by_desc(model_configs::Column::Seq)
        .one(db)
        .await?;
    row.map(config_record).transpose()
}

/// The configuration in force at `at`: the last one set at or before it
/// (the first one, for a time before the model existed). `None` when the
/// model's configuration never changed.
pub async fn config_at_time(
    db: &impl ConnectionTrait,
    id: &ModelId,
    at: DateTime<Utc>,
) -> Result<Option<ConfigRecord>, StoreError> {
    let of_model =
        || model_configs::Entity::find().filter(model_configs::Column::ModelId.eq(id.as_str()));
    let row = match of_model()
        .filter(model_configs::Column::ConfiguredAt.lte(at))
        .order_by_desc(model_configs::Column::Seq)
        .one(db)
        .await?
    {
        Some(row) => Some(row),
        None => {
            of_model()
                .order_by_asc(model_configs::Column::Seq)
                .one(db)
                .await?
        }
    };
    row.map(config_record).transpose()
}

fn config_record(row: model_configs::Model) -> Result<ConfigRecord, StoreError> {
    let prior: Prior = serde_json::from_value(row.prior)
        .map_err(|e| StoreError::Corrupt(format!("prior of {}: {e}", row.model_id)))?;
    Ok(ConfigRecord {
        prior,
        grid_size: convert::grid_size(row.grid_size, &row.model_id)?,
        configured_at: row.configured_at,
    })
}

/// A model's row and its state row (none: no data yet) as a [`ModelRecord`].
pub(super) fn record(
    (model, state): (models::Model, Option<model_states::Model>),
) -> Result<ModelRecord, StoreError> {
    let id = ModelId::parse(model.id).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let prior: Prior = serde_json::from_value(model.prior)
        .map_err(|e| StoreError::Corrupt(format!("prior of {id}: {e}")))?;
    let grid_size = convert::grid_size(model.grid_size, id.as_str())?;
    // A model without a state row has had no data: version 0, zero counts,
    // unchanged since it was created.
    let (state, updated_at) = match state {
        Some(s) => (
            ModelState {
                counts: Counts::new(to_u64(s.successes)?, to_u64(s.failures)?),
                version: to_u64(s.version)?,
            },
            s.updated_at,
        ),
        None => (
            ModelState {
                counts: Counts::ZERO,
                version: 0,
            },
            model.created_at,
        ),
    };
    Ok(ModelRecord {
        id,
        prior,
        grid_size,
        state,
        created_at: model.created_at,
        configured_at: model.updated_at,
        updated_at,
    })
}
