//! Experiments: their definitions, their figures and decision at any
//! version or time window, their history and its plot, and the bandit's
//! weights and sticky assignments.
//!
//! An experiment's version is the number of commits that touched one of its
//! arms (`store::merged_history`); `?version=` and `?at=` answer with every
//! arm as it was then, under the prior in force then.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use domain::bayes::Counts;
use domain::experiment::ExperimentDraft;
use domain::ModelId;
use platform::http::{ApiJson, ApiPath, ApiQuery};
use platform::store::{self, ExperimentRecord, MergedPoint, ModelRecord, Points};
use serde::Deserialize;

use super::plots::{dimension, DEFAULT_HEIGHT, DEFAULT_WIDTH};
use super::{
    blocking, data_key, mass, object_body, page_after, page_limit, page_of, parse_time, timed,
    window_counts, TimeTravel,
};
use crate::error::{ApiError, ErrorBody};
use crate::plot::{self, ExperimentPlot, Format};
use crate::state::{AppState, FiguresKey};
use crate::views::experiment::{
    AssignmentBody, AssignmentView, ExperimentBody, ExperimentHistoryPoint, ExperimentHistoryView,
    ExperimentInfo, ExperimentList, ExperimentView, ExperimentWindow, Figures, Point, WeightsView,
};
use crate::views::{Snapshot, Window};

/// Points drawn in an experiment's history plot at most.
const HISTORY_PLOT_POINTS: u64 = 200;
/// The longest unit id, in characters (the column is VARCHAR(255)).
const MAX_UNIT_LEN: usize = 255;

/// An experiment id from a path: one that cannot be valid names none (404).
fn experiment_id(raw: &str) -> Result<ModelId, ApiError> {
    ModelId::parse(raw).map_err(|_| ApiError::ExperimentNotFound(raw.to_owned()))
}

async fn load_experiment(state: &AppState, id: &ModelId) -> Result<ExperimentRecord, ApiError> {
    timed("get_experiment", store::get_experiment(state.db(), id))
        .await?
        .ok_or_else(|| ApiError::ExperimentNotFound(id.to_string()))
}

/// The arms' models now, in the experiment's order.
async fn load_arms(
    state: &AppState,
    record: &ExperimentRecord,
) -> Result<Vec<ModelRecord>, ApiError> {
    let found = timed(
        "get_models",
        store::get_models(state.db(), &record.spec.arms),
    )
    .await?;
    found
        .into_iter()
        .zip(&record.spec.arms)
        .map(|(model, id)| {
            // `PUT /experiments` creates its arms and models are never
            // deleted: a missing one is damage, not a client's mistake.
            model.ok_or_else(|| {
                ApiError::Internal(anyhow::anyhow!(
                    "arm {id} of experiment {} has no model",
                    record.id
                ))
            })
        })
        .collect()
}

/// The arms at the point asked for, and where that point is.
struct Arms {
    snapshots: Vec<Snapshot>,
    point: Point,
}

/// Every arm now, or at `?version=` / `?at=` (the earlier of the two), and
/// only the counts committed after `?since=` / inside `?window=`.
async fn arms_at(
    state: &AppState,
    record: &ExperimentRecord,
    travel: &TimeTravel,
) -> Result<Arms, ApiError> {
    let models = load_arms(state, record).await?;
    let current = models
        .iter()
        .fold(0u64, |sum, m| sum.saturating_add(m.state.version));
    let since = travel.window_start()?;
    if let Some(v) = travel.version {
        if i64::try_from(v).is_err() {
            return Err(ApiError::invalid(format!(
                "version must be at most {}, got {v}",
                i64::MAX
            )));
        }
        if v > current {
            return Err(ApiError::ExperimentVersionNotFound {
                experiment: record.id.to_string(),
                version: v,
                current,
            });
        }
    }
    let arms = &record.spec.arms;
    let by_time = match travel.at.as_deref() {
        Some(at) => {
            let at = parse_time("at", at)?;
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
    match position {
        Some(p) if p != current => {
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
        _ => {}
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

/// The engine's figures for these snapshots, computed once per distinct
/// data and options (the cache is keyed by every arm's data).
async fn figures(
    state: &AppState,
    record: &ExperimentRecord,
    snapshots: &[Snapshot],
    mass: f64,
) -> Result<Arc<Figures>, ApiError> {
    let spec = &record.spec;
    let key = FiguresKey {
        arms: snapshots.iter().map(data_key).collect(),
        control: spec.control.clone(),
        rope_bits: spec.rope.to_bits(),
        threshold_bits: spec.threshold_of_caring.to_bits(),
        mass_bits: mass.to_bits(),
    };
    let (figures, lookup) = state
        .figures()
        .get_or_try_insert(key, || {
            let spec = spec.clone();
            let snapshots = snapshots.to_vec();
            blocking(move || Ok(Arc::new(Figures::compute(&spec, &snapshots, mass)?)))
        })
        .await?;
    metrics::counter!(super::CACHE_LOOKUPS, "cache" => "experiment", "result" => lookup.as_str())
        .increment(1);
    Ok(figures)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Start after this experiment id (from `next_after` of the previous page).
    #[param(pattern = "^[a-z0-9][a-z0-9_.-]{0,63}$")]
    after: Option<String>,
    /// Experiments per page, 1..=1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// Experiments in id order, a page at a time.
#[utoipa::path(
    get,
    path = "/experiments",
    operation_id = "listExperiments", tag = "experiments",
    params(ListParams),
    responses(
        (status = 200, description = "A page of experiments", body = ExperimentList),
        (status = 422, description = "Invalid parameter", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<ApiJson<ExperimentList>, ApiError> {
    let limit = page_limit(params.limit)?;
    let after = page_after(params.after.as_deref())?;
    let records = timed(
        "list_experiments",
        store::list_experiments(state.db(), after.as_ref(), u64::from(limit) + 1),
    )
    .await?;
    let (records, next_after) = page_of(records, limit, |r| &r.id);
    Ok(ApiJson(ExperimentList {
        experiments: records.iter().map(ExperimentInfo::from).collect(),
        next_after,
    }))
}

const ID_PARAM: &str = "Experiment id: 1 to 64 of [a-z0-9_.-], starting with a letter or digit";

/// Creates an experiment or redefines it. Its arms are ordinary models
/// (created with the default prior when new) and keep their priors, grids,
/// history and plots. Needs scope `admin`.
#[utoipa::path(
    put,
    path = "/experiments/{id}",
    operation_id = "putExperiment", tag = "experiments",
    params(("id" = String, Path, description = ID_PARAM, pattern = "^[a-z0-9][a-z0-9_.-]{0,63}$")),
    request_body = ExperimentBody,
    responses(
        (status = 200, description = "Redefined", body = ExperimentInfo),
        (status = 201, description = "Created", body = ExperimentInfo),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not application/json", body = ErrorBody),
        (status = 422, description = "Invalid id, arms, control, threshold, rope, weights or bandit", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn put(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<serde_json::Map<String, serde_json::Value>>,
) -> Result<Response, ApiError> {
    let id = ModelId::parse(&id).map_err(|e| ApiError::invalid(e.to_string()))?;
    let body: ExperimentBody = object_body(body)?;
    let spec = ExperimentDraft::from(body)
        .validate()
        .map_err(|e| ApiError::InvalidParameter(e.to_string()))?;
    let (record, created) = timed(
        "put_experiment",
        store::put_experiment(
            state.db(),
            &id,
            &spec,
            state.defaults(),
            state.notify_channel(),
        ),
    )
    .await?;
    let info = ExperimentInfo::from(&record);
    tracing::info!(experiment = %id, arms = record.spec.arms.len(), created, "experiment defined");
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        [(header::LOCATION, format!("/experiments/{id}"))],
        ApiJson(info),
    )
        .into_response())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExperimentParams {
    /// Mass of the HPDIs, strictly between 0 and 1 (default 0.89); also the
    /// probability `no_meaningful_difference` asks of every uplift.
    #[param(exclusive_minimum = 0, exclusive_maximum = 1)]
    mass: Option<f64>,
    /// Answer as of this experiment version (commits that touched an arm; 0: the priors).
    #[param(minimum = 0, maximum = 9223372036854775807_i64)]
    version: Option<u64>,
    /// Answer as of this time (RFC 3339).
    #[param(format = DateTime)]
    at: Option<String>,
    /// Only the observations committed after this time (RFC 3339).
    #[param(format = DateTime)]
    since: Option<String>,
    /// Only the observations committed within this span before `at` (or now): `7d`, `24h`.
    #[param(pattern = "^[1-9][0-9]{0,5}[smhdw]$")]
    window: Option<String>,
}

/// Deletes an experiment and the units its bandit assigned. Its arms are
/// ordinary models and stay, with their counts and history. Needs scope
/// `admin`.
#[utoipa::path(
    delete,
    path = "/experiments/{id}",
    operation_id = "deleteExperiment", tag = "experiments",
    params(("id" = String, Path, description = ID_PARAM, pattern = "^[a-z0-9][a-z0-9_.-]{0,63}$")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "Unknown experiment", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let id = experiment_id(&id)?;
    if timed(
        "delete_experiment",
        store::delete_experiment(state.db(), &id),
    )
    .await?
    {
        tracing::info!(experiment = %id, "experiment deleted");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::ExperimentNotFound(id.to_string()))
    }
}

/// An experiment's figures: per arm its counts, posterior, P(best), expected
/// loss, P(beats control) and uplift; the decision with its reason; the SRM
/// check. All exact (one-dimensional integrals), not sampled.
#[utoipa::path(
    get,
    path = "/experiments/{id}",
    operation_id = "getExperiment", tag = "experiments",
    params(("id" = String, Path, description = ID_PARAM, pattern = "^[a-z0-9][a-z0-9_.-]{0,63}$"), ExperimentParams),
    responses(
        (status = 200, description = "The experiment's figures and decision", body = ExperimentView),
        (status = 404, description = "Unknown experiment or version", body = ErrorBody),
        (status = 422, description = "Invalid parameter", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(params): ApiQuery<ExperimentParams>,
) -> Result<ApiJson<ExperimentView>, ApiError> {
    let id = experiment_id(&id)?;
    let mass = mass(params.mass)?;
    let record = load_experiment(&state, &id).await?;
    let travel = TimeTravel::new(params.version, params.at).windowed(params.since, params.window);
    let arms = arms_at(&state, &record, &travel).await?;
    let assignments = timed(
        "assignment_counts",
        store::assignment_counts(state.db(), &id, &record.spec.arms),
    )
    .await?;
    let figures = figures(&state, &record, &arms.snapshots, mass).await?;
    Ok(ApiJson(ExperimentView::new(
        &record,
        &arms.snapshots,
        arms.point,
        &assignments,
        &figures,
        mass,
    )?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryParams {
    /// Mass for the decision at each point, strictly between 0 and 1 (default 0.89).
    #[param(exclusive_minimum = 0, exclusive_maximum = 1)]
    mass: Option<f64>,
    /// Start after this version (from `next_after`); without it the first
    /// page starts at version 0, the priors.
    #[param(minimum = 0, maximum = 9223372036854775807_i64)]
    after: Option<u64>,
    /// Points per page, 1..=1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// P(best), expected loss and the decision after each commit that touched
/// an arm, computed with the arms' current priors. Paginated.
#[utoipa::path(
    get,
    path = "/experiments/{id}/history",
    operation_id = "getExperimentHistory", tag = "experiments",
    params(("id" = String, Path, description = ID_PARAM, pattern = "^[a-z0-9][a-z0-9_.-]{0,63}$"), HistoryParams),
    responses(
        (status = 200, description = "A page of history", body = ExperimentHistoryView),
        (status = 404, description = "Unknown experiment", body = ErrorBody),
        (status = 422, description = "Invalid parameter", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn history(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(params): ApiQuery<HistoryParams>,
) -> Result<ApiJson<ExperimentHistoryView>, ApiError> {
    let id = experiment_id(&id)?;
    let mass = mass(params.mass)?;
    let limit = page_limit(params.limit)?;
    if let Some(after) = params.after.filter(|a| i64::try_from(*a).is_err()) {
        return Err(ApiError::invalid(format!(
            "after must be at most {}, got {after}",
            i64::MAX
        )));
    }
    let record = load_experiment(&state, &id).await?;
    let models = load_arms(&state, &record).await?;
    let mut remaining = u64::from(limit);
    let with_origin = params.after.is_none();
    if with_origin {
        remaining -= 1;
    }
    let rows = if remaining > 0 {
        let page = Points::Page {
            after: params.after.unwrap_or(0),
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
    let last = rows.last().map(|r| r.position).or(with_origin.then_some(0));
    let current = models
        .iter()
        .fold(0u64, |sum, m| sum.saturating_add(m.state.version));
    let next_after = last.filter(|v| *v < total.unwrap_or(current).min(current));
    let spec = record.spec.clone();
    let points = blocking(move || {
        let mut points = Vec::with_capacity(rows.len() + 1);
        if with_origin {
            let snapshots: Vec<Snapshot> = models.iter().map(Snapshot::prior_only).collect();
            let figures = Figures::compute(&spec, &snapshots, mass)?;
            points.push(ExperimentHistoryPoint::new(
                0, None, None, &snapshots, &figures, &spec,
            ));
        }
        for row in &rows {
            let snapshots = at_point(&models, row);
            let figures = Figures::compute(&spec, &snapshots, mass)?;
            points.push(ExperimentHistoryPoint::new(
                row.position,
                spec.arms.get(row.arm).cloned(),
                Some(row.applied_at),
                &snapshots,
                &figures,
                &spec,
            ));
        }
        Ok(points)
    })
    .await?;
    Ok(ApiJson(ExperimentHistoryView {
        experiment: id,
        arms: record.spec.arms,
        mass,
        points,
        next_after,
    }))
}

/// The arms at a point of the merged history, under their current priors.
fn at_point(models: &[ModelRecord], point: &MergedPoint) -> Vec<Snapshot> {
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

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryPlotParams {
    /// Width in pixels, 200..=`max_plot_width` (4000 unless configured; default 800).
    #[param(minimum = 200, maximum = 4000)]
    width: Option<u32>,
    /// Height in pixels, 150..=`max_plot_height` (4000 unless configured; default 600).
    #[param(minimum = 150, maximum = 4000)]
    height: Option<u32>,
}

/// P(best) of every arm over time, as PNG.
#[utoipa::path(
    get,
    path = "/experiments/{id}/history.png",
    operation_id = "getExperimentHistoryPng", tag = "plots",
    params(("id" = String, Path, description = ID_PARAM, pattern = "^[a-z0-9][a-z0-9_.-]{0,63}$"), HistoryPlotParams),
    responses(
        (status = 200, description = "PNG image", content_type = "image/png"),
        (status = 404, description = "Unknown experiment", body = ErrorBody),
        (status = 422, description = "Invalid size", body = ErrorBody),
    )
)]
pub async fn history_png(
    state: State<AppState>,
    id: ApiPath<String>,
    params: ApiQuery<HistoryPlotParams>,
) -> Result<Response, ApiError> {
    history_plot(state, id, params, Format::Png).await
}

/// P(best) of every arm over time, as SVG.
#[utoipa::path(
    get,
    path = "/experiments/{id}/history.svg",
    operation_id = "getExperimentHistorySvg", tag = "plots",
    params(("id" = String, Path, description = ID_PARAM, pattern = "^[a-z0-9][a-z0-9_.-]{0,63}$"), HistoryPlotParams),
    responses(
        (status = 200, description = "SVG image", content_type = "image/svg+xml"),
        (status = 404, description = "Unknown experiment", body = ErrorBody),
        (status = 422, description = "Invalid size", body = ErrorBody),
    )
)]
pub async fn history_svg(
    state: State<AppState>,
    id: ApiPath<String>,
    params: ApiQuery<HistoryPlotParams>,
) -> Result<Response, ApiError> {
    history_plot(state, id, params, Format::Svg).await
}

async fn history_plot(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(params): ApiQuery<HistoryPlotParams>,
    format: Format,
) -> Result<Response, ApiError> {
    let id = experiment_id(&id)?;
    let (width, height) = plot_size(&state, params.width, params.height)?;
    let record = load_experiment(&state, &id).await?;
    let models = load_arms(&state, &record).await?;
    let rows = timed(
        "merged_history",
        store::merged_history(
            state.db(),
            &record.spec.arms,
            Points::Sample {
                max: HISTORY_PLOT_POINTS,
            },
        ),
    )
    .await?;
    let _permit = state
        .render_permits()
        .acquire()
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    let image = blocking(move || {
        let start = Instant::now();
        let spec = &record.spec;
        let mut times: Vec<DateTime<Utc>> = Vec::with_capacity(rows.len());
        let mut series: Vec<Vec<f64>> = Vec::with_capacity(rows.len());
        for row in &rows {
            let snapshots = at_point(&models, row);
            let figures = Figures::compute(spec, &snapshots, domain::bayes::DEFAULT_MASS)?;
            times.push(row.applied_at);
            series.push(figures.figures.arms.iter().map(|a| a.prob_best).collect());
        }
        let names: Vec<&str> = spec.arms.iter().map(ModelId::as_str).collect();
        let plot = ExperimentPlot {
            experiment: record.id.as_str(),
            arms: &names,
            times: &times,
            prob_best: &series,
        };
        let image = plot::render_experiment_history(&plot, width, height, format)
            .map_err(|e| ApiError::Internal(e.into()))?;
        metrics::histogram!(
            super::RENDER_SECONDS,
            "plot" => "experiment_history",
            "format" => format.as_str()
        )
        .record(start.elapsed().as_secs_f64());
        Ok(axum::body::Bytes::from(image))
    })
    .await?;
    Ok(image_response(format, image))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PosteriorsPlotParams {
    /// Width in pixels, 200..=`max_plot_width` (4000 unless configured; default 800).
    #[param(minimum = 200, maximum = 4000)]
    width: Option<u32>,
    /// Height in pixels, 150..=`max_plot_height` (4000 unless configured; default 600).
    #[param(minimum = 150, maximum = 4000)]
    height: Option<u32>,
    /// Draw as of this experiment version.
    #[param(minimum = 0, maximum = 9223372036854775807_i64)]
    version: Option<u64>,
    /// Draw as of this time (RFC 3339).
    #[param(format = DateTime)]
    at: Option<String>,
    /// Only the observations committed after this time (RFC 3339).
    #[param(format = DateTime)]
    since: Option<String>,
    /// Only the observations committed within this span: `7d`, `24h`.
    #[param(pattern = "^[1-9][0-9]{0,5}[smhdw]$")]
    window: Option<String>,
}

/// The arms' posteriors overlaid on one axis zoomed onto their mass, as PNG.
#[utoipa::path(
    get,
    path = "/experiments/{id}/posteriors.png",
    operation_id = "getExperimentPosteriorsPng", tag = "plots",
    params(("id" = String, Path, description = ID_PARAM, pattern = "^[a-z0-9][a-z0-9_.-]{0,63}$"), PosteriorsPlotParams),
    responses(
        (status = 200, description = "PNG image", content_type = "image/png"),
        (status = 404, description = "Unknown experiment or version", body = ErrorBody),
        (status = 422, description = "Invalid parameter", body = ErrorBody),
    )
)]
pub async fn posteriors_png(
    state: State<AppState>,
    id: ApiPath<String>,
    params: ApiQuery<PosteriorsPlotParams>,
) -> Result<Response, ApiError> {
    posteriors_plot(state, id, params, Format::Png).await
}

/// The arms' posteriors overlaid on one axis zoomed onto their mass, as SVG.
#[utoipa::path(
    get,
    path = "/experiments/{id}/posteriors.svg",
    operation_id = "getExperimentPosteriorsSvg", tag = "plots",
    params(("id" = String, Path, description = ID_PARAM, pattern = "^[a-z0-9][a-z0-9_.-]{0,63}$"), PosteriorsPlotParams),
    responses(
        (status = 200, description = "SVG image", content_type = "image/svg+xml"),
        (status = 404, description = "Unknown experiment or version", body = ErrorBody),
        (status = 422, description = "Invalid parameter", body = ErrorBody),
    )
)]
pub async fn posteriors_svg(
    state: State<AppState>,
    id: ApiPath<String>,
    params: ApiQuery<PosteriorsPlotParams>,
) -> Result<Response, ApiError> {
    posteriors_plot(state, id, params, Format::Svg).await
}

/// Bins of the overlaid posteriors.
const DENSITY_BINS: usize = 300;
/// The plot spans the arms' central 1 − 2·TAIL of mass.
const DENSITY_TAIL: f64 = 1e-4;

async fn posteriors_plot(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(params): ApiQuery<PosteriorsPlotParams>,
    format: Format,
) -> Result<Response, ApiError> {
    let id = experiment_id(&id)?;
    let (width, height) = plot_size(&state, params.width, params.height)?;
    let record = load_experiment(&state, &id).await?;
    let travel = TimeTravel::new(params.version, params.at).windowed(params.since, params.window);
    let arms = arms_at(&state, &record, &travel).await?;
    let _permit = state
        .render_permits()
        .acquire()
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    let image = blocking(move || {
        let start = Instant::now();
        let posteriors = arms
            .snapshots
            .iter()
            .map(Snapshot::posterior)
            .collect::<Result<Vec<_>, _>>()?;
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for posterior in &posteriors {
            lo = lo.min(posterior.quantile(DENSITY_TAIL)?);
            hi = hi.max(posterior.quantile(1.0 - DENSITY_TAIL)?);
        }
        let step = ((hi - lo) / DENSITY_BINS as f64).max(f64::MIN_POSITIVE);
        let edges: Vec<f64> = (0..=DENSITY_BINS).map(|k| lo + step * k as f64).collect();
        // Each bin's probability from the engine's CDF, over its width: the
        // density, however narrow the posteriors are.
        let mut density = Vec::with_capacity(posteriors.len());
        for posterior in &posteriors {
            let cdf = edges
                .iter()
                .map(|x| posterior.cdf(*x))
                .collect::<Result<Vec<_>, _>>()?;
            density.push(
                cdf.windows(2)
                    .map(|c| (c[1] - c[0]) / step)
                    .collect::<Vec<_>>(),
            );
        }
        let centres: Vec<f64> = edges.windows(2).map(|e| 0.5 * (e[0] + e[1])).collect();
        let names: Vec<&str> = record.spec.arms.iter().map(ModelId::as_str).collect();
        let plot = plot::DensitiesPlot {
            experiment: record.id.as_str(),
            arms: &names,
            p: &centres,
            density: &density,
        };
        let image = plot::render_densities(&plot, width, height, format)
            .map_err(|e| ApiError::Internal(e.into()))?;
        metrics::histogram!(
            super::RENDER_SECONDS,
            "plot" => "experiment_posteriors",
            "format" => format.as_str()
        )
        .record(start.elapsed().as_secs_f64());
        Ok(axum::body::Bytes::from(image))
    })
    .await?;
    Ok(image_response(format, image))
}

fn image_response(format: Format, image: axum::body::Bytes) -> Response {
    (
        [
            (header::CONTENT_TYPE, format.content_type()),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        image,
    )
        .into_response()
}

/// `?width=` and `?height=` within the configured bounds.
fn plot_size(
    state: &AppState,
    width: Option<u32>,
    height: Option<u32>,
) -> Result<(u32, u32), ApiError> {
    let settings = state.settings();
    Ok((
        dimension(
            "width",
            width,
            DEFAULT_WIDTH,
            plot::MIN_WIDTH,
            settings.max_plot_width,
        )?,
        dimension(
            "height",
            height,
            DEFAULT_HEIGHT,
            plot::MIN_HEIGHT,
            settings.max_plot_height,
        )?,
    ))
}

static PAGE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    super::dashboard::with_api_js(include_str!("../../assets/experiment.html"))
});

/// The experiment's live page: the arms' posteriors overlaid, P(best),
/// expected loss and uplift per arm, the decision and SRM badges and the
/// P(best) history, redrawn when `/events` names an arm.
///
/// The page is the same static file for every experiment and holds no data
/// (it reads everything with the key the reader entered), so it answers
/// without a key and without asking the database: whether an experiment
/// exists is told by `GET /experiments/{id}`, to a key with scope `read`.
#[utoipa::path(
    get,
    path = "/experiments/{id}/dashboard",
    operation_id = "getExperimentDashboard", tag = "experiments",
    params(("id" = String, Path, description = ID_PARAM, pattern = "^[a-z0-9][a-z0-9_.-]{0,63}$")),
    responses(
        (status = 200, description = "HTML page", content_type = "text/html"),
        (status = 404, description = "An id no experiment can have", body = ErrorBody),
    )
)]
pub async fn dashboard(
    ApiPath(id): ApiPath<String>,
) -> Result<axum::response::Html<&'static str>, ApiError> {
    experiment_id(&id)?;
    Ok(axum::response::Html(PAGE.as_str()))
}

/// The bandit's allocation now: Thompson sampling (weights = P(best),
/// exact), equal during the burn-in, never below the floor; top-two
/// Thompson sampling when the experiment asks for it.
#[utoipa::path(
    get,
    path = "/experiments/{id}/weights",
    operation_id = "getExperimentWeights", tag = "experiments",
    params(("id" = String, Path, description = ID_PARAM, pattern = "^[a-z0-9][a-z0-9_.-]{0,63}$")),
    responses(
        (status = 200, description = "The weights and the version they were computed from", body = WeightsView),
        (status = 404, description = "Unknown experiment", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn weights(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<ApiJson<WeightsView>, ApiError> {
    let id = experiment_id(&id)?;
    let record = load_experiment(&state, &id).await?;
    Ok(ApiJson(current_weights(&state, &record).await?))
}

async fn current_weights(
    state: &AppState,
    record: &ExperimentRecord,
) -> Result<WeightsView, ApiError> {
    let arms = arms_at(state, record, &TimeTravel::default()).await?;
    let figures = figures(state, record, &arms.snapshots, domain::bayes::DEFAULT_MASS).await?;
    Ok(WeightsView::new(
        record,
        &arms.snapshots,
        arms.point.version,
        &figures,
    )?)
}

/// Assigns a unit (a user, a session) to an arm by the current weights, and
/// keeps it there: the same unit always gets the same arm afterwards, even
/// when asked concurrently. A unit's draw is a hash of the experiment and
/// the unit, so it is reproducible. Outcomes still arrive as ordinary
/// observations of the arm's model.
#[utoipa::path(
    post,
    path = "/experiments/{id}/assignments",
    operation_id = "assignUnit", tag = "experiments",
    params(("id" = String, Path, description = ID_PARAM, pattern = "^[a-z0-9][a-z0-9_.-]{0,63}$")),
    request_body = AssignmentBody,
    responses(
        (status = 200, description = "The unit's existing arm", body = AssignmentView),
        (status = 201, description = "A new assignment", body = AssignmentView),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 404, description = "Unknown experiment", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not application/json", body = ErrorBody),
        (status = 422, description = "Invalid unit", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn assign(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<serde_json::Map<String, serde_json::Value>>,
) -> Result<Response, ApiError> {
    let id = experiment_id(&id)?;
    let body: AssignmentBody = object_body(body)?;
    let unit = body.unit;
    let length = unit.chars().count();
    if length == 0 || length > MAX_UNIT_LEN || unit.chars().any(char::is_control) {
        return Err(ApiError::invalid(format!(
            "unit must be 1 to {MAX_UNIT_LEN} characters without control characters"
        )));
    }
    let record = load_experiment(&state, &id).await?;
    let weights = current_weights(&state, &record).await?;
    let pick = weights.pick(domain::bayes::unit_draw(id.as_str(), &unit));
    let arm =
        record.spec.arms.get(pick).cloned().ok_or_else(|| {
            ApiError::Internal(anyhow::anyhow!("arm {pick} of {id} out of range"))
        })?;
    let assignment = timed(
        "assign_unit",
        store::assign_unit(state.db(), &id, &unit, &arm),
    )
    .await?;
    let status = if assignment.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let view = AssignmentView {
        experiment: id,
        unit,
        arm: assignment.arm,
        assigned_at: assignment.assigned_at,
        new: assignment.created,
        version: weights.version,
    };
    Ok((status, ApiJson(view)).into_response())
}
