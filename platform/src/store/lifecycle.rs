//! Which models exist (for `models.auto_create` off: the producer's set of
//! known models, the consumer's unknown-model refusals), and deleting models
//! and experiments.
//!
//! Deleting a model removes its row and, by the schema's cascades, its
//! state, its history and its configurations, under the model's lock (see
//! `models::MODEL_LOCK_CLASS`), so it never interleaves with a batch or a
//! `PUT`. The ids of its applied observations stay until
//! `consumer.dedup_retention` passes: a retry of an observation counted
//! before the deletion is still a retry.

use std::collections::HashSet;

use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, QueryFilter,
    QuerySelect, Statement, TransactionTrait,
};

use super::entities::{experiments, models};
use super::models::{lock_model, notify_model};
use super::{Notice, StoreError};
use domain::model_id::ModelId;

/// The ids among `ids` that name a model now.
pub async fn existing_models(
    db: &impl ConnectionTrait,
    ids: &[&str],
) -> Result<HashSet<String>, StoreError> {
    if ids.is_empty() {
        return Ok(HashSet::new());
    }
    let found: Vec<String> = models::Entity::find()
        .select_only()
        .column(models::Column::Id)
        .filter(models::Column::Id.is_in(ids.iter().copied()))
        .into_tuple()
        .all(db)
        .await?;
    Ok(found.into_iter().collect())
}

/// Every model id.
pub async fn all_model_ids(db: &impl ConnectionTrait) -> Result<HashSet<String>, StoreError> {
    let ids: Vec<String> = models::Entity::find()
        .select_only()
        .column(models::Column::Id)
        .into_tuple()
        .all(db)
        .await?;
    Ok(ids.into_iter().collect())
}

/// What [`delete_model`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deleted {
    Deleted,
    /// There was no such model.
    NotFound,
    /// Experiments have the model as an arm (their ids): nothing was
    /// deleted. Delete them first.
    InExperiments(Vec<String>),
}

/// Deletes a model with its state, history and configurations, unless an
/// experiment has it as an arm; `notify_channel` hears its id on commit, so
/// live views drop it.
pub async fn delete_model(
    db: &DatabaseConnection,
    id: &ModelId,
    notify_channel: &str,
) -> Result<Deleted, StoreError> {
    let txn = db.begin().await?;
    lock_model(&txn, id).await?;
    if models::Entity::find_by_id(id.as_str())
        .one(&txn)
        .await?
        .is_none()
    {
        txn.rollback().await?;
        return Ok(Deleted::NotFound);
    }
    let arms_of = txn
        .query_all(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT id FROM experiments WHERE arms @> jsonb_build_array($1::text) ORDER BY id",
            [id.as_str().into()],
        ))
        .await?
        .iter()
        .map(|row| row.try_get::<String>("", "id"))
        .collect::<Result<Vec<_>, _>>()?;
    if !arms_of.is_empty() {
        txn.rollback().await?;
        return Ok(Deleted::InExperiments(arms_of));
    }
    models::Entity::delete_by_id(id.as_str()).exec(&txn).await?;
    notify_model(&txn, notify_channel, id).await?;
    txn.commit().await?;
    Ok(Deleted::Deleted)
}

/// Deletes an experiment and its stored assignments; its arms, ordinary
/// models, stay. `false` when there was no such experiment. On commit,
/// `notify_channel` hears `experiment:<id>`.
pub async fn delete_experiment(
    db: &DatabaseConnection,
    id: &ModelId,
    notify_channel: &str,
) -> Result<bool, StoreError> {
    let txn = db.begin().await?;
    let deleted = experiments::Entity::delete_many()
        .filter(experiments::Column::Id.eq(id.as_str()))
        .exec(&txn)
        .await?;
    txn.execute(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT pg_notify($1, $2)",
        [
            notify_channel.into(),
            Notice::Experiment(id.clone()).to_string().into(),
        ],
    ))
    .await?;
    txn.commit().await?;
    Ok(deleted.rows_affected > 0)
}
