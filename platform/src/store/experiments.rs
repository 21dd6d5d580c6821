//! `experiments` and `experiment_assignments`: what an experiment compares
//! and how a bandit split its units, plus [`merged_history`], the arms'
//! histories read as one sequence (an experiment's versions).
//!
//! An experiment stores no counts: its arms are ordinary models, and its
//! figures are computed from their states when asked. Its version is the
//! number of history rows its arms have between them: each commit that
//! touched an arm adds one.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, Statement, TransactionTrait,
};

use super::convert::{to_i64, to_u64};
use super::entities::{experiments, model_states, models};
use super::models::{
    configure_model, with_priors, ChangeLimit, ModelConfig, ModelRecord, PriorPool,
};
use super::{Notice, StoreError};
use crate::settings::ModelDefaults;
use domain::bayes::{Counts, ModelState};
use domain::model_id::ModelId;

// What an experiment is, and its checks and defaults, are the domain's:
// the store keeps a spec as `domain` built it.
pub use domain::experiment::{BanditConfig, ExperimentSpec};

/// An experiment as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ExperimentRecord {
    pub id: ModelId,
    pub spec: ExperimentSpec,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Creates or redefines an experiment; returns it and whether it was
/// created. Arms that are not models yet become models with the default
/// prior (as their first data would make them), so the experiment answers
/// at once. The arms and the experiment are notified on `notify_channel`, so
/// every model service reloads them and live views redraw.
pub async fn put_experiment(
    db: &DatabaseConnection,
    id: &ModelId,
    spec: &ExperimentSpec,
    defaults: &ModelDefaults,
    notify_channel: &str,
) -> Result<(ExperimentRecord, bool), StoreError> {
    for arm in &spec.arms {
        // Nothing is asked of an arm that exists: never a change, never limited.
        configure_model(
            db,
            arm,
            &ModelConfig::default(),
            defaults,
            ChangeLimit::UNLIMITED,
            notify_channel,
        )
        .await?;
    }
    let arms = serde_json::to_value(spec.arms.iter().map(ModelId::as_str).collect::<Vec<_>>())
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let planned = spec
        .planned_weights
        .as_ref()
        .map(serde_json::to_value)
        .transpose()
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let bandit =
        serde_json::to_value(spec.bandit).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let txn = db.begin().await?;
    let existed = experiments::Entity::find_by_id(id.as_str())
        .one(&txn)
        .await?
        .is_some();
    experiments::Entity::insert(experiments::ActiveModel {
        id: Set(id.as_str().to_owned()),
        arms: Set(arms),
        control: Set(spec.control.as_str().to_owned()),
        threshold_of_caring: Set(spec.threshold_of_caring),
        rope: Set(spec.rope),
        planned_weights: Set(planned),
        bandit: Set(bandit),
        ..Default::default()
    })
    .on_conflict(
        OnConflict::column(experiments::Column::Id)
            .update_columns([
                experiments::Column::Arms,
                experiments::Column::Control,
                experiments::Column::ThresholdOfCaring,
                experiments::Column::Rope,
                experiments::Column::PlannedWeights,
                experiments::Column::Bandit,
            ])
            .value(experiments::Column::UpdatedAt, Expr::cust("now()"))
            .to_owned(),
    )
    .exec_without_returning(&txn)
    .await?;
    let names = spec
        .arms
        .iter()
        .cloned()
        .map(Notice::Model)
        .chain([Notice::Experiment(id.clone())])
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(",");
    txn.execute(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT pg_notify($1, $2)",
        [notify_channel.into(), names.into()],
    ))
    .await?;
    let row = experiments::Entity::find_by_id(id.as_str())
        .one(&txn)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("experiment {id} vanished while written")))?;
    txn.commit().await?;
    Ok((experiment(row)?, !existed))
}

/// One experiment, or `None`.
pub async fn get_experiment(
    db: &impl ConnectionTrait,
    id: &ModelId,
) -> Result<Option<ExperimentRecord>, StoreError> {
    experiments::Entity::find_by_id(id.as_str())
        .one(db)
        .await?
        .map(experiment)
        .transpose()
}

/// Up to `limit` experiments in id order, after `after` (keyset pagination).
pub async fn list_experiments(
    db: &impl ConnectionTrait,
    after: Option<&ModelId>,
    limit: u64,
) -> Result<Vec<ExperimentRecord>, StoreError> {
    let mut query = experiments::Entity::find().order_by_asc(experiments::Column::Id);
    if let Some(after) = after {
        query = query.filter(experiments::Column::Id.gt(after.as_str()));
    }
    query
        .limit(to_i64(limit)?.unsigned_abs())
        .all(db)
        .await?
        .into_iter()
        .map(experiment)
        .collect()
}

/// The models named `ids`, in that order, in one query (and one more for
/// the priors `pool` lacks); `None` for an id that names no model.
pub async fn get_models(
    db: &impl ConnectionTrait,
    ids: &[ModelId],
    pool: &mut PriorPool,
) -> Result<Vec<Option<ModelRecord>>, StoreError> {
    let rows = models::Entity::find()
        .filter(models::Column::Id.is_in(ids.iter().map(ModelId::as_str)))
        .find_also_related(model_states::Entity)
        .all(db)
        .await?;
    let mut found: HashMap<ModelId, ModelRecord> = with_priors(db, rows, pool)
        .await?
        .into_iter()
        .map(|r| (r.id.clone(), r))
        .collect();
    Ok(ids.iter().map(|id| found.remove(id)).collect())
}

/// The experiments named `ids` that exist, in id order.
pub async fn get_experiments(
    db: &impl ConnectionTrait,
    ids: &[ModelId],
) -> Result<Vec<ExperimentRecord>, StoreError> {
    experiments::Entity::find()
        .filter(experiments::Column::Id.is_in(ids.iter().map(ModelId::as_str)))
        .order_by_asc(experiments::Column::Id)
        .all(db)
        .await?
        .into_iter()
        .map(experiment)
        .collect()
}

/// A unit's arm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub arm: ModelId,
    pub assigned_at: DateTime<Utc>,
    /// False when the unit already had an arm (from an earlier call).
    pub created: bool,
}

/// An arm to give a unit unless it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAssignment {
    pub experiment: ModelId,
    pub unit: String,
    pub arm: ModelId,
}

/// Gives each unit its arm unless it already has one, in one statement:
/// the answer, in the order asked, is the arm each unit has now (the one
/// given, or the one an earlier or concurrent call stored: the primary key
/// settles it). The same unit twice in one call gets the first arm asked
/// for it. `experiment_arm_units` counts the units given in the same
/// statement, and `notify_channel` hears `assigned:<experiment>` for every
/// experiment that got a unit (see [`super::Notice`]). A unit of an
/// experiment that no longer exists is `None`.
pub async fn assign_units(
    db: &DatabaseConnection,
    wanted: &[NewAssignment],
    notify_channel: &str,
) -> Result<Vec<Option<Assignment>>, StoreError> {
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let column = |f: fn(&NewAssignment) -> &str| {
        sea_orm::Value::from(wanted.iter().map(|w| f(w).to_owned()).collect::<Vec<_>>())
    };
    let values = [
        column(|w| w.experiment.as_str()),
        column(|w| w.unit.as_str()),
        column(|w| w.arm.as_str()),
        notify_channel.into(),
    ];
    // One statement: atomic by itself, and one round trip.
    let inserted = db
        .query_all(Statement::from_sql_and_values(
            DbBackend::Postgres,
            ASSIGN_UNITS,
            values,
        ))
        .await?;
    let mut stored: HashMap<(String, String), Assignment> = HashMap::new();
    for row in &inserted {
        let key = (row.try_get("", "experiment_id")?, row.try_get("", "unit")?);
        stored.insert(key, assignment(row, true)?);
    }
    // Units that had an arm already: read after the insert, in a statement
    // of its own, so one stored by a concurrent call is seen too (the insert
    // waited for that call to commit).
    let missing: Vec<&NewAssignment> = wanted
        .iter()
        .filter(|w| !stored.contains_key(&(w.experiment.as_str().to_owned(), w.unit.clone())))
        .collect();
    if !missing.is_empty() {
        let rows = db
            .query_all(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT a.experiment_id, a.unit, a.arm, a.assigned_at \
                 FROM experiment_assignments a \
                 JOIN unnest($1::text[], $2::text[]) AS w(experiment_id, unit) \
                 USING (experiment_id, unit)",
                [
                    sea_orm::Value::from(
                        missing
                            .iter()
                            .map(|w| w.experiment.as_str().to_owned())
                            .collect::<Vec<_>>(),
                    ),
                    sea_orm::Value::from(
                        missing.iter().map(|w| w.unit.clone()).collect::<Vec<_>>(),
                    ),
                ],
            ))
            .await?;
        for row in &rows {
            let key = (row.try_get("", "experiment_id")?, row.try_get("", "unit")?);
            stored.insert(key, assignment(row, false)?);
        }
    }
    let mut answered = std::collections::HashSet::new();
    Ok(wanted
        .iter()
        .map(|w| {
            let key = (w.experiment.as_str().to_owned(), w.unit.clone());
            let first = answered.insert(key.clone());
            stored.get(&key).map(|a| Assignment {
                // Only the first of duplicates in one call created it.
                created: a.created && first,
                ..a.clone()
            })
        })
        .collect())
}

/// The statement of [`assign_units`]: $1, $2, $3 the experiments, units
/// and arms; $4 the notify channel. Units of experiments that are gone are
/// skipped (not a foreign-key failure of the whole batch).
const ASSIGN_UNITS: &str = "\
WITH wanted AS (
    SELECT DISTINCT ON (experiment_id, unit) experiment_id, unit, arm
    FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS w(experiment_id, unit, arm, n)
    WHERE EXISTS (SELECT 1 FROM experiments e WHERE e.id = w.experiment_id)
    ORDER BY experiment_id, unit, n
), given AS (
    INSERT INTO experiment_assignments (experiment_id, unit, arm)
    SELECT experiment_id, unit, arm FROM wanted
    ON CONFLICT DO NOTHING
    RETURNING experiment_id, unit, arm, assigned_at
), counted AS (
    INSERT INTO experiment_arm_units AS u (experiment_id, arm, units)
    SELECT experiment_id, arm, count(*) FROM given GROUP BY experiment_id, arm
    ORDER BY experiment_id, arm
    ON CONFLICT (experiment_id, arm) DO UPDATE SET units = u.units + excluded.units
    RETURNING experiment_id
), notified AS (
    SELECT pg_notify($4, string_agg(DISTINCT 'assigned:' || experiment_id, ',')) AS sent
    FROM counted HAVING count(*) > 0
)
SELECT given.*, (SELECT count(sent) FROM notified) AS notified FROM given";

fn assignment(row: &sea_orm::QueryResult, created: bool) -> Result<Assignment, StoreError> {
    let arm: String = row.try_get("", "arm")?;
    Ok(Assignment {
        arm: ModelId::parse(arm).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        assigned_at: row.try_get("", "assigned_at")?,
        created,
    })
}

/// How many units each arm of `arms` was assigned, in that order.
pub async fn assignment_counts(
    db: &impl ConnectionTrait,
    experiment: &ModelId,
    arms: &[ModelId],
) -> Result<Vec<u64>, StoreError> {
    let units = arm_units(db, Some(std::slice::from_ref(experiment))).await?;
    Ok(arms
        .iter()
        .map(|arm| units.iter().find(|u| &u.arm == arm).map_or(0, |u| u.units))
        .collect())
}

/// How many units an arm of an experiment holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArmUnits {
    pub experiment: ModelId,
    pub arm: ModelId,
    pub units: u64,
}

/// The units of every arm of `experiments` (of every experiment: `None`).
pub async fn arm_units(
    db: &impl ConnectionTrait,
    experiments: Option<&[ModelId]>,
) -> Result<Vec<ArmUnits>, StoreError> {
    let (sql, values): (&str, Vec<sea_orm::Value>) = match experiments {
        None => (
            "SELECT experiment_id, arm, units FROM experiment_arm_units",
            vec![],
        ),
        Some(ids) => (
            "SELECT experiment_id, arm, units FROM experiment_arm_units \
             WHERE experiment_id = ANY($1::text[])",
            vec![ids
                .iter()
                .map(|id| id.as_str().to_owned())
                .collect::<Vec<_>>()
                .into()],
        ),
    };
    db.query_all(Statement::from_sql_and_values(
        DbBackend::Postgres,
        sql,
        values,
    ))
    .await?
    .iter()
    .map(|row| {
        let id = |column: &str| -> Result<ModelId, StoreError> {
            ModelId::parse(row.try_get::<String>("", column)?)
                .map_err(|e| StoreError::Corrupt(e.to_string()))
        };
        Ok(ArmUnits {
            experiment: id("experiment_id")?,
            arm: id("arm")?,
            units: to_u64(row.try_get("", "units")?)?,
        })
    })
    .collect()
}

/// A point of an experiment's history: after the `position`-th commit that
/// touched one of its arms (commits in `applied_at` order), the state of
/// every arm.
#[derive(Debug, Clone, PartialEq)]
pub struct MergedPoint {
    /// 1-based: the experiment's version.
    pub position: u64,
    /// Which arm this commit touched (an index into the arms).
    pub arm: usize,
    pub applied_at: DateTime<Utc>,
    /// Every arm's counts and version then, in the arms' order.
    pub states: Vec<ModelState>,
    /// How many points the whole history has.
    pub total: u64,
}

/// Which points of [`merged_history`] to read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Points {
    /// Up to `limit` points after position `after`.
    Page { after: u64, limit: u64 },
    /// The point at this position.
    At(u64),
    /// The last point applied at or before this time.
    AtOrBefore(DateTime<Utc>),
    /// About `max` points spread evenly over the whole history, the last
    /// one always included: what a plot draws.
    Sample { max: u64 },
}

/// The arms' histories merged into one sequence, read as the `points` asked
/// for. One SQL statement: a window over the arms' `model_history` rows in
/// commit order, carrying each arm's latest counts forward (counts only
/// grow, so the running maximum is the latest). Kept as SQL because the
/// per-arm columns depend on the number of arms.
pub async fn merged_history(
    db: &impl ConnectionTrait,
    arms: &[ModelId],
    points: Points,
) -> Result<Vec<MergedPoint>, StoreError> {
    if arms.is_empty() {
        return Ok(Vec::new());
    }
    let mut values: Vec<sea_orm::Value> = arms.iter().map(|a| a.as_str().into()).collect();
    let mut columns = String::new();
    for i in 1..=arms.len() {
        for (name, column) in [("v", "version"), ("s", "successes"), ("f", "failures")] {
            columns.push_str(&format!(
                ",\n coalesce(max({column}) FILTER (WHERE model_id = ${i}) OVER w, 0) AS {name}{i}"
            ));
        }
    }
    let list = (1..=arms.len())
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ");
    let next = arms.len() + 1;
    let select = match points {
        Points::Page { after, limit } => {
            values.push(to_i64(after)?.into());
            values.push(to_i64(limit)?.into());
            format!("WHERE n > ${next} ORDER BY n LIMIT ${}", next + 1)
        }
        Points::At(position) => {
            values.push(to_i64(position)?.into());
            format!("WHERE n = ${next}")
        }
        Points::AtOrBefore(at) => {
            values.push(at.into());
            format!("WHERE applied_at <= ${next} ORDER BY n DESC LIMIT 1")
        }
        Points::Sample { max } => {
            values.push(to_i64(max.max(1))?.into());
            format!(
                "WHERE (n - 1) % greatest(1, ceil(total::float8 / ${next})::bigint) = 0 \
                 OR n = total ORDER BY n"
            )
        }
    };
    let sql = format!(
        "WITH h AS (\n SELECT model_id, applied_at, row_number() OVER w AS n, count(*) OVER () AS total{columns}\n \
         FROM model_history WHERE model_id IN ({list})\n \
         WINDOW w AS (ORDER BY applied_at, model_id, version)\n)\nSELECT * FROM h {select}"
    );
    let rows = db
        .query_all(Statement::from_sql_and_values(
            DbBackend::Postgres,
            sql,
            values,
        ))
        .await?;
    rows.iter()
        .map(|row| {
            let model: String = row.try_get("", "model_id")?;
            let arm = arms
                .iter()
                .position(|a| a.as_str() == model)
                .ok_or_else(|| StoreError::Corrupt(format!("history row of {model}")))?;
            let states = (1..=arms.len())
                .map(|i| {
                    let get = |c: &str| -> Result<u64, StoreError> {
                        to_u64(row.try_get::<i64>("", &format!("{c}{i}"))?)
                    };
                    Ok(ModelState {
                        counts: Counts::new(get("s")?, get("f")?),
                        version: get("v")?,
                    })
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            Ok(MergedPoint {
                position: to_u64(row.try_get::<i64>("", "n")?)?,
                arm,
                applied_at: row.try_get("", "applied_at")?,
                states,
                total: to_u64(row.try_get::<i64>("", "total")?)?,
            })
        })
        .collect()
}

fn experiment(row: experiments::Model) -> Result<ExperimentRecord, StoreError> {
    let corrupt = |what: &str, e: &dyn std::fmt::Display| {
        StoreError::Corrupt(format!("{what} of experiment {}: {e}", row.id))
    };
    let id = ModelId::parse(row.id.as_str()).map_err(|e| corrupt("id", &e))?;
    let arms: Vec<String> =
        serde_json::from_value(row.arms.clone()).map_err(|e| corrupt("arms", &e))?;
    let arms = arms
        .into_iter()
        .map(ModelId::parse)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| corrupt("arms", &e))?;
    let control = ModelId::parse(row.control.as_str()).map_err(|e| corrupt("control", &e))?;
    let planned_weights = row
        .planned_weights
        .clone()
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| corrupt("planned weights", &e))?;
    let bandit = serde_json::from_value(row.bandit.clone()).map_err(|e| corrupt("bandit", &e))?;
    Ok(ExperimentRecord {
        id,
        spec: ExperimentSpec {
            arms,
            control,
            threshold_of_caring: row.threshold_of_caring,
            rope: row.rope,
            planned_weights,
            bandit,
        },
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}
