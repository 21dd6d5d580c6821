//! An experiment's questions: its definition, its arms at any version or
//! time window (merging the arms' histories into the experiment's), a page
//! or an even sample of that merged history, its figures and bandit
//! weights now; and its writes: `PUT`, `DELETE` and a unit's sticky
//! assignment.
//!
//! An experiment's version is the number of commits that touched one of its
//! arms (`store::merged_history`); `?version=` and `?at=` answer with every
//! arm as it was then, under the prior in force then.

use std::sync::Arc;

use domain::bayes::{unit_draw, Counts, DEFAULT_MASS};
use domain::experiment::ExperimentSpec;
use domain::ModelId;
use platform::store::{self, ExperimentRecord, MergedPoint, ModelRecord, NewAssignment, Points};

use super::travel::{check_version, window_counts, TimeTravel};
use super::{page_of, timed};
use crate::compute::figures;
use crate::error::ApiError;
use crate::state::AppState;
use crate::views::experiment::{AssignmentView, ExperimentWindow, Figures, Point, WeightsView};
use crate::views::{Snapshot, Window};

/// The experiment named `id` now, or 404: from memory.
pub async fn experiment(state: &AppState, id: &ModelId) -> Result<ExperimentRecord, ApiError> {
    state
        .current()
        .experiment(id)?
        .map(|record| ExperimentRecord::clone(&record))
        .ok_or_else(|| ApiError::ExperimentNotFound(id.to_string()))
}

/// The arms' models now, in the experiment's order: from memory.
pub async fn arm_models(
    state: &AppState,
    record: &ExperimentRecord,
) -> Result<Vec<ModelRecord>, ApiError> {
    let found = state.current().models(&record.spec.arms)?;
    found
        .into_iter()
        .zip(&record.spec.arms)
        .map(|(model, id)| {
            // `PUT /experiments` creates its arms and a model that is an arm
            // cannot be deleted: a missing one is damage, not a client's
            // mistake.
            model.map(|m| ModelRecord::clone(&m)).ok_or_else(|| {
                ApiError::Internal(anyhow::anyhow!(
                    "arm {id} of experiment {} has no model",
                    record.id
                ))
            })
        })
        .collect()
}

/// The arms at the point asked for, and where that point is.
#[derive(Debug)]
pub struct Arms {
    pub snapshots: Vec<Snapshot>,
    pub point: Point,
}

/// Every arm now, or at `?version=` / `?at=` (the earlier of the two), and
/// only the counts committed after `?since=` / inside `?window=`.
pub async fn arms_at(
    state: &AppState,
    record: &ExperimentRecord,
    travel: &TimeTravel,
) -> Result<Arms, ApiError> {
    let models = arm_models(state, record).await?;
    let current = version_of(&models);
    let since = travel.window_start()?;
    check_version("version", travel.version)?;
    if let Some(v) = travel.version.filter(|v| *v > current) {
        return Err(ApiError::ExperimentVersionNotFound {
            experiment: record.id.to_string(),
            version: v,
            current,
        });
    }
    let arms = &record.spec.arms;
    let by_time = match travel.at_time()? {
        Some(at) => {
            let point = merged(state, arms, Points::AtOrBefore(at)).await?;
            Some(point.map_or(0, |p| p.position))
        }
        None => None,
    };
    let position = match (travel.version, by_time) {
        (Some(v), Some(t)) => Some(v.min(t)),
        (v, t) => v.or(t),
    };
    let mut snapshots: Vec<Snapshot> = models.iter().map(Snapshot::current).collect();
    let mut point = Point {
        version: current,
        as_of: models
            .iter()
            .filter(|m| m.state.version > 0)
            .map(|m| m.updated_at)
            .max(),
        window: None,
    };
    if let Some(p) = position.filter(|p| *p != current) {
        let past = if p == 0 {
            None
        } else {
            merged(state, arms, Points::At(p)).await?
        };
        for (i, (snapshot, model)) in snapshots.iter_mut().zip(&models).enumerate() {
            let (counts, version) = past
                .as_ref()
                .and_then(|p| p.states.get(i))
                .map_or((Counts::ZERO, 0), |s| (s.counts, s.version));
            let config = timed(
                "config_at_version",
                store::config_at_version(state.db(), &model.id, version),
            )
            .await?;
            let mut past_snapshot = Snapshot {
                counts,
                version,
                updated_at: past.as_ref().map_or(model.created_at, |p| p.applied_at),
                ..Snapshot::current(model)
            };
            if let Some(config) = config {
                past_snapshot = past_snapshot.configured(config);
            }
            *snapshot = past_snapshot;
        }
        point.version = p;
        point.as_of = past.map(|p| p.applied_at);
    }
    if let Some(since) = since {
        let start = merged(state, arms, Points::AtOrBefore(since)).await?;
        // A window that starts after the point answered holds nothing.
        let from_version = start.as_ref().map_or(0, |p| p.position).min(point.version);
        for (i, snapshot) in snapshots.iter_mut().enumerate() {
            let before = start
                .as_ref()
                .and_then(|p| p.states.get(i))
                .copied()
                .unwrap_or_default();
            snapshot.counts = window_counts(snapshot.counts, before.counts);
            snapshot.window = Some(Window {
                since,
                from_version: before.version.min(snapshot.version),
            });
        }
        point.window = Some(ExperimentWindow {
            since,
            from_version,
        });
    }
    Ok(Arms { snapshots, point })
}

/// The experiment's version now: the commits its arms have between them.
fn version_of(models: &[ModelRecord]) -> u64 {
    models
        .iter()
        .fold(0u64, |sum, m| sum.saturating_add(m.state.version))
}

/// One point of the arms' merged history.
async fn merged(
    state: &AppState,
    arms: &[ModelId],
    points: Points,
) -> Result<Option<MergedPoint>, ApiError> {
    Ok(timed(
        "merged_history",
        store::merged_history(state.db(), arms, points),
    )
    .await?
    .pop())
}

/// The arms at a point of the merged history, under their current priors.
pub fn at_point(models: &[ModelRecord], point: &MergedPoint) -> Vec<Snapshot> {
    models
        .iter()
        .zip(&point.states)
        .map(|(model, state)| Snapshot {
            counts: state.counts,
            version: state.version,
            updated_at: point.applied_at,
            ..Snapshot::current(model)
        })
        .collect()
}

/// An experiment at a point, with everything its view shows.
#[derive(Debug)]
pub struct ExperimentAt {
    pub record: ExperimentRecord,
    pub arms: Arms,
    /// Units the bandit assigned to each arm (now, whatever point).
    pub assignments: Vec<u64>,
    pub figures: Arc<Figures>,
}

/// The experiment named `id` at the point `travel` asks for, with its
/// figures at `mass`.
pub async fn experiment_at(
    state: &AppState,
    id: &ModelId,
    travel: &TimeTravel,
    mass: f64,
) -> Result<ExperimentAt, ApiError> {
    let record = experiment(state, id).await?;
    let arms = arms_at(state, &record, travel).await?;
    let assignments = state.current().units(id, &record.spec.arms)?;
    let figures = figures(state, &record.spec, &arms.snapshots, mass).await?;
    Ok(ExperimentAt {
        record,
        arms,
        assignments,
        figures,
    })
}

/// The arms named `id` at the point `travel` asks for.
pub async fn arms_of(
    state: &AppState,
    id: &ModelId,
    travel: &TimeTravel,
) -> Result<(ExperimentRecord, Arms), ApiError> {
    let record = experiment(state, id).await?;
    let arms = arms_at(state, &record, travel).await?;
    Ok((record, arms))
}

/// Experiments in id order after `after`, `limit` of them, and the id the
/// next page starts after: from memory.
pub async fn list(
    state: &AppState,
    after: Option<&ModelId>,
    limit: u32,
) -> Result<(Vec<ExperimentRecord>, Option<String>), ApiError> {
    let records = state
        .current()
        .experiments_after(after, limit as usize + 1)?
        .iter()
        .map(|r| ExperimentRecord::clone(r))
        .collect();
    Ok(page_of(records, limit, |r| &r.id))
}

/// A stretch of an experiment's merged history: the arms' models now and
/// the points read.
#[derive(Debug)]
pub struct MergedRows {
    pub record: ExperimentRecord,
    pub models: Vec<ModelRecord>,
    pub rows: Vec<MergedPoint>,
}

/// A page of an experiment's history: the points after `after` (the
/// origin, version 0, first when `after` is absent, counted in `limit`),
/// and the version the next page starts after.
pub async fn history(
    state: &AppState,
    id: &ModelId,
    after: Option<u64>,
    limit: u32,
) -> Result<(MergedRows, Option<u64>), ApiError> {
    check_version("after", after)?;
    let record = experiment(state, id).await?;
    let models = arm_models(state, &record).await?;
    let mut remaining = u64::from(limit);
    if after.is_none() {
        remaining -= 1;
    }
    let rows = if remaining > 0 {
        let page = Points::Page {
            after: after.unwrap_or(0),
            limit: remaining,
        };
        timed(
            "merged_history",
            store::merged_history(state.db(), &record.spec.arms, page),
        )
        .await?
    } else {
        Vec::new()
    };
    let total = rows.last().map(|r| r.total);
    let last = rows
        .last()
        .map(|r| r.position)
        .or(after.is_none().then_some(0));
    let current = version_of(&models);
    let next_after = last.filter(|v| *v < total.unwrap_or(current).min(current));
    Ok((
        MergedRows {
            record,
            models,
            rows,
        },
        next_after,
    ))
}

/// At most `max` points of an experiment's merged history, evenly thinned:
/// what its history plot draws.
pub async fn history_sample(
    state: &AppState,
    id: &ModelId,
    max: u64,
) -> Result<MergedRows, ApiError> {
    let record = experiment(state, id).await?;
    let models = arm_models(state, &record).await?;
    let rows = timed(
        "merged_history",
        store::merged_history(state.db(), &record.spec.arms, Points::Sample { max }),
    )
    .await?;
    Ok(MergedRows {
        record,
        models,
        rows,
    })
}

/// The bandit's weights now.
pub async fn weights(state: &AppState, record: &ExperimentRecord) -> Result<WeightsView, ApiError> {
    let arms = arms_at(state, record, &TimeTravel::default()).await?;
    let figures = figures(state, &record.spec, &arms.snapshots, DEFAULT_MASS).await?;
    Ok(WeightsView::new(
        record,
        &arms.snapshots,
        arms.point.version,
        &figures,
    )?)
}

/// The weights of the experiment named `id` now.
pub async fn weights_of(state: &AppState, id: &ModelId) -> Result<WeightsView, ApiError> {
    let record = experiment(state, id).await?;
    weights(state, &record).await
}

/// Assigns `unit` to an arm of the experiment named `id` by the current
/// weights, and keeps it there: the same unit always gets the same arm
/// afterwards, even when asked concurrently or of another replica. The
/// draw is `domain::bayes::unit_draw` of the experiment and the unit, so it
/// is reproducible. A unit this process has seen is answered from memory;
/// a new one once its assignment is committed (see
/// [`crate::current::assign`]).
pub async fn assign(
    state: &AppState,
    id: &ModelId,
    unit: String,
) -> Result<AssignmentView, ApiError> {
    let record = experiment(state, id).await?;
    let assigner = state.assigner();
    if let Some((arm, assigned_at)) = assigner.known(id, record.created_at, &unit).await {
        return Ok(AssignmentView {
            experiment: id.clone(),
            unit,
            arm,
            assigned_at,
            new: false,
            version: state.current().experiment_version(&record.spec.arms),
        });
    }
    let weights = weights(state, &record).await?;
    let pick = weights.pick(unit_draw(id.as_str(), &unit));
    let arm =
        record.spec.arms.get(pick).cloned().ok_or_else(|| {
            ApiError::Internal(anyhow::anyhow!("arm {pick} of {id} out of range"))
        })?;
    let wanted = NewAssignment {
        experiment: id.clone(),
        unit: unit.clone(),
        arm,
    };
    let assignment = assigner
        .assign(wanted, record.created_at)
        .await?
        .ok_or_else(|| ApiError::ExperimentNotFound(id.to_string()))?;
    Ok(AssignmentView {
        experiment: id.clone(),
        unit,
        arm: assignment.arm,
        assigned_at: assignment.assigned_at,
        new: assignment.created,
        version: weights.version,
    })
}

/// Creates or redefines the experiment; true when created.
pub async fn put(
    state: &AppState,
    id: &ModelId,
    spec: &ExperimentSpec,
) -> Result<(ExperimentRecord, bool), ApiError> {
    let put = timed(
        "put_experiment",
        store::put_experiment(
            state.db(),
            id,
            spec,
            state.defaults(),
            state.notify_channel(),
        ),
    )
    .await?;
    super::written(state).await;
    Ok(put)
}

/// Deletes the experiment and its assignments; false when there was none.
pub async fn delete(state: &AppState, id: &ModelId) -> Result<bool, ApiError> {
    let deleted = timed(
        "delete_experiment",
        store::delete_experiment(state.db(), id, state.notify_channel()),
    )
    .await?;
    super::written(state).await;
    Ok(deleted)
}
