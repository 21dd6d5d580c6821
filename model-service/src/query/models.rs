//! A model's questions: the model now or at a point of its history (with
//! the prior and grid in force then), a window of its counts, a page of its
//! history or an even sample of it, a page of models; and the writes of
//! `PUT` and `DELETE /models/{id}`.

use chrono::{DateTime, Utc};
use domain::bayes::Counts;
use domain::ModelId;
use platform::store::{self, ChangeLimit, HistoryRecord, ModelRecord};

/// What `PUT /models/{id}` asks for and answers, and what `DELETE` answers.
pub use platform::store::{Configured, Deleted, ModelConfig};

use super::travel::{check_version, window_counts, TimeTravel};
use super::{page_of, timed};
use crate::error::ApiError;
use crate::state::AppState;
use crate::views::{HistoryPoint, Snapshot, Window};

/// The model named `id` now, or 404: from memory.
pub async fn model(state: &AppState, id: &ModelId) -> Result<ModelRecord, ApiError> {
    state
        .current()
        .model(id)?
        .map(|record| ModelRecord::clone(&record))
        .ok_or_else(|| ApiError::ModelNotFound(id.to_string()))
}

/// The model named `id` at the point `travel` asks for (see [`snapshot`]).
pub async fn model_at(
    state: &AppState,
    id: &ModelId,
    travel: &TimeTravel,
) -> Result<Snapshot, ApiError> {
    let record = model(state, id).await?;
    snapshot(state, &record, travel).await
}

/// The model now, or at `?version=` / `?at=`: the counts and the
/// configuration (prior, grid size) in force then. With both, the earlier
/// of the two points: the version asked for, unless it had not been
/// applied yet at `at`.
///
/// What "as of `at`" means: the writes of the model stamped at or before
/// `at`. Writers of one model queue on its lock and stamp under it, so the
/// stamps follow commit order, and an answer is always a state the model
/// really passed through (never version 6 without version 5, never a prior
/// set after a version it is paired with).
pub async fn snapshot(
    state: &AppState,
    record: &ModelRecord,
    travel: &TimeTravel,
) -> Result<Snapshot, ApiError> {
    check_version("version", travel.version)?;
    let fresher;
    let record = match travel.version.filter(|v| *v > record.state.version) {
        None => record,
        Some(v) => {
            // Memory may lag a commit by its notification's delay: ask the
            // database before saying the version does not exist.
            fresher = timed("get_model", store::get_model(state.db(), &record.id))
                .await?
                .ok_or_else(|| ApiError::ModelNotFound(record.id.to_string()))?;
            if v > fresher.state.version {
                return Err(ApiError::VersionNotFound {
                    model: record.id.to_string(),
                    version: v,
                    current: fresher.state.version,
                });
            }
            &fresher
        }
    };
    let since = travel.window_start()?;
    let end = as_of(state, record, travel).await?;
    match since {
        None => Ok(end),
        Some(since) => windowed(state, record, end, since).await,
    }
}

/// The counts committed after `since`, up to `end`: `end`'s cumulative
/// counts minus those of the last version applied at or before `since`,
/// under `end`'s prior.
async fn windowed(
    state: &AppState,
    record: &ModelRecord,
    end: Snapshot,
    since: DateTime<Utc>,
) -> Result<Snapshot, ApiError> {
    let (start, from_version) = timed(
        "history_at",
        store::history_at(state.db(), &record.id, since),
    )
    .await?
    .map_or((Counts::ZERO, 0), |row| (row.counts, row.version));
    let counts = window_counts(end.counts, start);
    let from_version = from_version.min(end.version);
    Ok(Snapshot {
        counts,
        window: Some(Window {
            since,
            from_version,
        }),
        ..end
    })
}

/// The model at `?version=` / `?at=` (see [`snapshot`]).
async fn as_of(
    state: &AppState,
    record: &ModelRecord,
    travel: &TimeTravel,
) -> Result<Snapshot, ApiError> {
    let at = travel.at_time()?;
    let by_time = match at {
        Some(at) => Some(
            timed("history_at", store::history_at(state.db(), &record.id, at))
                .await?
                .map_or(0, |row| row.version),
        ),
        None => None,
    };
    let (version, config) = match (travel.version, by_time, at) {
        (None, None, _) => return Ok(Snapshot::current(record)),
        // The version is the earlier point.
        (Some(v), by_time, _) if by_time.is_none_or(|t| v < t) => (
            v,
            timed(
                "config_at_version",
                store::config_at_version(state.db(), &record.id, v),
            )
            .await?,
        ),
        (_, Some(t), Some(at)) => (
            t,
            timed(
                "config_at_time",
                store::config_at_time(state.db(), &record.id, at),
            )
            .await?,
        ),
        // `by_time` is set exactly when `at` is.
        _ => return Ok(Snapshot::current(record)),
    };
    let counts = if version == 0 {
        Snapshot::prior_only(record)
    } else if version == record.state.version {
        Snapshot::current(record)
    } else {
        let row = timed(
            "history_version",
            store::history_version(state.db(), &record.id, version),
        )
        .await?
        .ok_or_else(|| ApiError::VersionNotFound {
            model: record.id.to_string(),
            version,
            current: record.state.version,
        })?;
        Snapshot::at(record, &row)
    };
    Ok(match config {
        Some(config) => counts.configured(config),
        None => counts,
    })
}

/// Models in id order after `after`, `limit` of them, and the id the next
/// page starts after: from memory.
pub async fn list(
    state: &AppState,
    after: Option<&ModelId>,
    limit: u32,
) -> Result<(Vec<ModelRecord>, Option<String>), ApiError> {
    let records = state
        .current()
        .models_after(after, limit as usize + 1)?
        .iter()
        .map(|r| ModelRecord::clone(r))
        .collect();
    Ok(page_of(records, limit, |r| &r.id))
}

/// A page of a model's history: the model, its rows (the origin, version
/// 0, first when `after` is absent) and the version the next page starts
/// after.
#[derive(Debug)]
pub struct HistoryPage {
    pub record: ModelRecord,
    pub rows: Vec<HistoryRecord>,
    pub next_after: Option<u64>,
}

/// Up to `limit` versions of the model after `after` (from the origin
/// without it).
pub async fn history(
    state: &AppState,
    id: &ModelId,
    after: Option<u64>,
    limit: u32,
) -> Result<HistoryPage, ApiError> {
    check_version("after", after)?;
    let record = model(state, id).await?;
    let mut rows = Vec::with_capacity(limit as usize);
    let mut remaining = u64::from(limit);
    if after.is_none() {
        rows.push(HistoryPoint::origin(record.created_at));
        remaining -= 1;
    }
    if remaining > 0 {
        rows.extend(
            timed(
                "history_page",
                store::history_page(state.db(), id, after, remaining),
            )
            .await?,
        );
    }
    let last = rows.last().map(|r| r.version);
    let next_after = last.filter(|v| *v < record.state.version);
    Ok(HistoryPage {
        record,
        rows,
        next_after,
    })
}

/// At most `max` versions up to the snapshot's, evenly thinned: what an
/// evolution plot draws.
pub async fn history_sample(
    state: &AppState,
    snapshot: &Snapshot,
    max: u64,
) -> Result<Vec<HistoryRecord>, ApiError> {
    let rows = store::history_sample(state.db(), &snapshot.model, snapshot.version, max);
    timed("history_sample", rows).await
}

/// Creates the model or changes its prior and grid, at most `per_hour`
/// times an hour.
pub async fn configure(
    state: &AppState,
    id: &ModelId,
    config: &ModelConfig,
    per_hour: u32,
) -> Result<Configured, ApiError> {
    let configured = timed(
        "configure_model",
        store::configure_model(
            state.db(),
            id,
            config,
            state.defaults(),
            ChangeLimit { per_hour },
            state.notify_channel(),
        ),
    )
    .await?;
    super::written(state).await;
    Ok(configured)
}

/// Deletes the model with its history, unless an experiment holds it.
pub async fn delete(state: &AppState, id: &ModelId) -> Result<Deleted, ApiError> {
    let deleted = timed(
        "delete_model",
        store::delete_model(state.db(), id, state.notify_channel()),
    )
    .await?;
    super::written(state).await;
    Ok(deleted)
}
