//! `models` with their current state: what the model service lists and shows,
//! and [`configure_model`], the one write it makes (`PUT /models/{id}`).
//!
//! A model's row, its state row and its prior are read together, one query
//! a model (the hot path: every request for a model starts here), and one
//! more a page for the page's distinct priors. A prior is stored once in
//! `priors`, keyed by the SHA-256 of its canonical JSON, whichever models
//! and configurations use it. Rows become domain types here: an invalid
//! prior, id, grid size or count in the database is `StoreError::Corrupt`,
//! never a panic.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Alias, Expr, Func, Query};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, TransactionTrait, TryInsertResult,
};

use super::convert::{self, to_i64, to_u64};
use super::entities::{model_configs, model_states, models, priors};
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
    /// Shared by every record read with the same [`PriorPool`]: many models
    /// usually have one prior, and a grid prior can weigh megabytes.
    pub prior: Arc<Prior>,
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

/// What [`configure_model`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Configured {
    /// The model did not exist: it does now.
    Created(ModelRecord),
    /// Its prior or grid size changed.
    Changed(ModelRecord),
    /// It already had what was asked for: nothing was written or notified.
    Unchanged(ModelRecord),
    /// The change would pass the bound on changes an hour: nothing was
    /// written. A change is allowed again in `retry_after`.
    Limited { retry_after: Duration },
}

/// How often a model's configuration may change: at most `per_hour`
/// changes within any hour (a model's creation is not a change); 0 means
/// no bound. Counted from `model_configs` under the model's lock, so the
/// bound holds however many replicas of the model service write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangeLimit {
    pub per_hour: u32,
}

impl ChangeLimit {
    pub const UNLIMITED: ChangeLimit = ChangeLimit { per_hour: 0 };
}

/// One model with its current state, or `None` when there is no such model.
pub async fn get_model(
    db: &impl ConnectionTrait,
    id: &ModelId,
) -> Result<Option<ModelRecord>, StoreError> {
    let row = models::Entity::find_by_id(id.as_str())
        .find_also_related(model_states::Entity)
        .find_also_related(priors::Entity)
        .one(db)
        .await?;
    row.map(|(model, state, prior)| {
        let prior = prior
            .ok_or_else(|| StoreError::Corrupt(format!("the prior of {} is missing", model.id)))?;
        record(
            model,
            state,
            Arc::new(parse_prior(prior.prior, &prior.sha256)?),
        )
    })
    .transpose()
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
    with_priors(db, rows, &mut PriorPool::default()).await
}

/// Priors already read, by the SHA-256 they are stored under: records
/// read with one pool share each distinct prior, and a prior in the pool is
/// not read again. A pool only grows; [`PriorPool::prune`] drops the priors
/// no record holds any more.
#[derive(Debug, Default)]
pub struct PriorPool(HashMap<String, Arc<Prior>>);

impl PriorPool {
    /// Forgets the priors that only the pool holds.
    pub fn prune(&mut self) {
        self.0.retain(|_, prior| Arc::strong_count(prior) > 1);
    }

    /// How many distinct priors the pool holds.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Models with their state rows, the priors the pool lacks read in one
/// more query: each distinct prior once (a page of models that share a 2 MB
/// prior reads it once, not once a model).
pub(super) async fn with_priors(
    db: &impl ConnectionTrait,
    rows: Vec<(models::Model, Option<model_states::Model>)>,
    pool: &mut PriorPool,
) -> Result<Vec<ModelRecord>, StoreError> {
    let mut missing: Vec<&str> = rows
        .iter()
        .map(|(m, _)| m.prior_sha256.as_str())
        .filter(|sha| !pool.0.contains_key(*sha))
        .collect();
    missing.sort_unstable();
    missing.dedup();
    if !missing.is_empty() {
        for row in priors::Entity::find()
            .filter(priors::Column::Sha256.is_in(missing))
            .all(db)
            .await?
        {
            let prior = Arc::new(parse_prior(row.prior, &row.sha256)?);
            pool.0.insert(row.sha256, prior);
        }
    }
    rows.into_iter()
        .map(|(model, state)| {
            let prior = pool.0.get(&model.prior_sha256).cloned().ok_or_else(|| {
                StoreError::Corrupt(format!("the prior of {} is missing", model.id))
            })?;
            record(model, state, prior)
        })
        .collect()
}

/// Creates a model, or changes its prior and grid size, in one transaction.
///
/// A new model gets its `models` row and a zero `model_states` row together,
/// so the consumer (which creates models it has not seen with
/// `ON CONFLICT DO NOTHING`) always finds a state to add to. Fields left
/// `None` take `defaults` on creation and keep their value otherwise. The
/// counts are never touched: the posterior is recomputed from them.
///
/// A request that changes nothing writes nothing (no configuration row, no
/// notification). A change past `limit` writes nothing either and says
/// when one is allowed again. When something changed, `notify_channel`
/// receives the model id after the commit, as it does from the consumer,
/// so live views redraw.
pub async fn configure_model(
    db: &DatabaseConnection,
    id: &ModelId,
    config: &ModelConfig,
    defaults: &ModelDefaults,
    limit: ChangeLimit,
    notify_channel: &str,
) -> Result<Configured, StoreError> {
    let txn = db.begin().await?;
    // The model's lock before its rows: a batch creating the same model
    // takes it too (see `MODEL_LOCK_CLASS`), and so does another replica
    // configuring it, which is what makes the count of recent changes
    // below exact.
    lock_model(&txn, id).await?;

    let before = models::Entity::find_by_id(id.as_str())
        .find_also_related(model_states::Entity)
        .one(&txn)
        .await?;
    let Some((row, state)) = before else {
        let prior = config.prior.clone().unwrap_or_default();
        let grid_size = match config.grid_size {
            Some(size) => size,
            None => GridSize::parse(defaults.default_grid_size)
                .map_err(|e| StoreError::Corrupt(format!("default grid size: {e}")))?,
        };
        let sha256 = store_prior(&txn, &prior).await?;
        let inserted = models::Entity::insert(models::ActiveModel {
            id: Set(id.as_str().to_owned()),
            prior_sha256: Set(sha256.clone()),
            grid_size: Set(convert::grid_size_i32(grid_size.get())?),
            ..Default::default()
        })
        .on_conflict_do_nothing()
        .exec_without_returning(&txn)
        .await?;
        if !matches!(inserted, TryInsertResult::Inserted(1)) {
            // Every writer that creates models takes the model's lock first.
            return Err(StoreError::Conflict(format!(
                "model {id} was created by a writer that did not take its lock"
            )));
        }
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
        insert_config(&txn, id, 0, &sha256, grid_size, None).await?;
        notify(&txn, notify_channel, id).await?;
        let record = reread(&txn, id).await?;
        txn.commit().await?;
        return Ok(Configured::Created(record));
    };

    let grid_before = convert::grid_size(row.grid_size, id.as_str())?;
    let grid_size = config.grid_size.unwrap_or(grid_before);
    // Compared by key: the canonical JSON decides, not a re-read double.
    let sha256 = match &config.prior {
        Some(prior) => store_prior(&txn, prior).await?,
        None => row.prior_sha256.clone(),
    };
    if sha256 == row.prior_sha256 && grid_size == grid_before {
        let record = reread(&txn, id).await?;
        // Nothing was written (the prior's row, if any, was there).
        txn.rollback().await?;
        return Ok(Configured::Unchanged(record));
    }
    if let Some(retry_after) = wait_for_change(&txn, id, limit).await? {
        txn.rollback().await?;
        return Ok(Configured::Limited { retry_after });
    }

    // A model first created by its data has no history yet: its
    // configuration so far held from its creation.
    let recorded = model_configs::Entity::find()
        .filter(model_configs::Column::ModelId.eq(id.as_str()))
        .one(&txn)
        .await?
        .is_some();
    if !recorded {
        let since = Some(row.updated_at);
        insert_config(&txn, id, 0, &row.prior_sha256, grid_before, since).await?;
    }
    models::Entity::update_many()
        .col_expr(models::Column::UpdatedAt, Expr::cust("clock_timestamp()"))
        .col_expr(models::Column::PriorSha256, Expr::value(sha256.clone()))
        .col_expr(
            models::Column::GridSize,
            Expr::value(convert::grid_size_i32(grid_size.get())?),
        )
        .filter(models::Column::Id.eq(id.as_str()))
        .exec(&txn)
        .await?;
    let version = state.map_or(Ok(0), |s| to_u64(s.version))?;
    insert_config(&txn, id, version, &sha256, grid_size, None).await?;
    notify(&txn, notify_channel, id).await?;
    let record = reread(&txn, id).await?;
    txn.commit().await?;
    Ok(Configured::Changed(record))
}

/// Takes the model's lock (see [`MODEL_LOCK_CLASS`]) for the rest of the
/// transaction.
pub(super) async fn lock_model(txn: &impl ConnectionTrait, id: &ModelId) -> Result<(), StoreError> {
    let lock = Query::select()
        .expr(
            Func::cust(Alias::new("pg_advisory_xact_lock"))
                .arg(MODEL_LOCK_CLASS)
                .arg(Func::cust(Alias::new("hashtext")).arg(id.as_str())),
        )
        .to_owned();
    txn.execute(txn.get_database_backend().build(&lock)).await?;
    Ok(())
}

/// Sends the model's id on `channel` (see [`notify`]).
pub(super) async fn notify_model(
    txn: &impl ConnectionTrait,
    channel: &str,
    id: &ModelId,
) -> Result<(), StoreError> {
    notify(txn, channel, id).await
}

/// How long until `limit` allows another change of the model, or `None`
/// when it allows one now. The newest `per_hour + 1` configurations are
/// read: with fewer, the model has had fewer than `per_hour` changes since
/// its creation; with that many, the `per_hour`-th newest is a change
/// (an older row exists), and while it is less than an hour old so are
/// all newer ones. Times are Postgres's clock, the one that stamped them.
async fn wait_for_change(
    txn: &impl ConnectionTrait,
    id: &ModelId,
    limit: ChangeLimit,
) -> Result<Option<Duration>, StoreError> {
    if limit.per_hour == 0 {
        return Ok(None);
    }
    let remaining: Vec<f64> = model_configs::Entity::find()
        .select_only()
        .column_as(
            Expr::cust(
                "extract(epoch from configured_at + interval '1 hour' - clock_timestamp())::float8",
            ),
            "remaining",
        )
        .filter(model_configs::Column::ModelId.eq(id.as_str()))
        .order_by_desc(model_configs::Column::Seq)
        .limit(u64::from(limit.per_hour) + 1)
        .into_tuple()
        .all(txn)
        .await?;
    let per_hour = limit.per_hour as usize;
    Ok(match remaining.get(per_hour - 1) {
        Some(seconds) if remaining.len() > per_hour && *seconds > 0.0 => {
            Some(Duration::from_secs_f64(seconds.ceil()))
        }
        _ => None,
    })
}

/// Stores `prior` in `priors` unless it is there, and returns its key
/// (computed by Postgres from the canonical JSON; see the migration).
async fn store_prior(txn: &impl ConnectionTrait, prior: &Prior) -> Result<String, StoreError> {
    let stored = Query::select()
        .expr_as(
            Func::cust(Alias::new("store_prior"))
                .arg(Expr::value(convert::prior_json(prior)?).cast_as(Alias::new("jsonb"))),
            Alias::new("sha256"),
        )
        .to_owned();
    let row = txn
        .query_one(txn.get_database_backend().build(&stored))
        .await?
        .ok_or_else(|| StoreError::Corrupt("store_prior returned no row".to_owned()))?;
    Ok(row.try_get("", "sha256")?)
}

/// Sends the model's id on `channel`; delivered only if the transaction commits.
async fn notify(txn: &impl ConnectionTrait, channel: &str, id: &ModelId) -> Result<(), StoreError> {
    let notify = Query::select()
        .expr(
            Func::cust(Alias::new("pg_notify"))
                .arg(channel)
                .arg(id.as_str()),
        )
        .to_owned();
    txn.execute(txn.get_database_backend().build(&notify))
        .await?;
    Ok(())
}

/// The model as the transaction now sees it.
async fn reread(txn: &impl ConnectionTrait, id: &ModelId) -> Result<ModelRecord, StoreError> {
    get_model(txn, id)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("model {id} vanished while configured")))
}

/// Appends a configuration to the model's history; `since` defaults to
/// `clock_timestamp()`, read under the model's lock.
async fn insert_config(
    txn: &impl ConnectionTrait,
    id: &ModelId,
    from_version: u64,
    prior_sha256: &str,
    grid_size: GridSize,
    since: Option<DateTime<Utc>>,
) -> Result<(), StoreError> {
    let mut row = model_configs::ActiveModel {
        model_id: Set(id.as_str().to_owned()),
        from_version: Set(to_i64(from_version)?),
        prior_sha256: Set(prior_sha256.to_owned()),
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
        .find_also_related(priors::Entity)
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
        .find_also_related(priors::Entity)
        .one(db)
        .await?
    {
        Some(row) => Some(row),
        None => {
            of_model()
                .order_by_asc(model_configs::Column::Seq)
                .find_also_related(priors::Entity)
                .one(db)
                .await?
        }
    };
    row.map(config_record).transpose()
}

fn config_record(
    (row, prior): (model_configs::Model, Option<priors::Model>),
) -> Result<ConfigRecord, StoreError> {
    let prior = prior
        .ok_or_else(|| StoreError::Corrupt(format!("a prior of {} is missing", row.model_id)))?;
    Ok(ConfigRecord {
        prior: parse_prior(prior.prior, &prior.sha256)?,
        grid_size: convert::grid_size(row.grid_size, &row.model_id)?,
        configured_at: row.configured_at,
    })
}

/// A stored prior (the row of `priors` keyed `sha256`) as a [`Prior`].
fn parse_prior(json: serde_json::Value, sha256: &str) -> Result<Prior, StoreError> {
    serde_json::from_value(json).map_err(|e| StoreError::Corrupt(format!("prior {sha256}: {e}")))
}

/// A model's row, its state row (none: no data yet) and its prior as a
/// [`ModelRecord`].
pub(super) fn record(
    model: models::Model,
    state: Option<model_states::Model>,
    prior: Arc<Prior>,
) -> Result<ModelRecord, StoreError> {
    let id = ModelId::parse(model.id).map_err(|e| StoreError::Corrupt(e.to_string()))?;
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
