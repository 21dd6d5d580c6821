//! The experiment routes: definitions, figures and decision at any version
//! or time window, history, and the bandit's weights and sticky
//! assignments. The charts are in `plots`, the live page in `dashboard`;
//! what each answer means is in `crate::query::experiments`.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use domain::experiment::ExperimentDraft;
use platform::http::{ApiJson, ApiPath, ApiQuery};
use serde::Deserialize;

use super::params::{
    experiment_id, mass, new_id, object_body, page_limit, ExperimentHistory, ExperimentPath,
    Experiments, IdPage, VersionPage,
};
use crate::compute::blocking;
use crate::error::{ApiError, ErrorBody};
use crate::query::experiments::{at_point, MergedRows};
use crate::query::{self, TimeTravel};
use crate::state::AppState;
use crate::views::experiment::{
    AssignmentBody, AssignmentView, ExperimentBody, ExperimentHistoryPoint, ExperimentHistoryView,
    ExperimentInfo, ExperimentList, ExperimentView, Figures, WeightsView,
};
use crate::views::Snapshot;

/// The longest unit id, in characters (the column is VARCHAR(255)).
const MAX_UNIT_LEN: usize = 255;

/// Experiments in id order, a page at a time.
#[utoipa::path(
    get,
    path = "/experiments",
    operation_id = "listExperiments", tag = "experiments",
    params(IdPage<Experiments>),
    responses(
        (status = 200, description = "A page of experiments", body = ExperimentList),
        (status = 422, description = "Invalid parameter", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(page): ApiQuery<IdPage<Experiments>>,
) -> Result<ApiJson<ExperimentList>, ApiError> {
    let (after, limit) = page.read()?;
    let (records, next_after) = query::experiments::list(&state, after.as_ref(), limit).await?;
    Ok(ApiJson(ExperimentList {
        experiments: records.iter().map(ExperimentInfo::from).collect(),
        next_after,
    }))
}

/// Creates an experiment or redefines it. Its arms are ordinary models
/// (created with the default prior when new) and keep their priors, grids,
/// history and plots. Needs scope `admin`.
#[utoipa::path(
    put,
    path = "/experiments/{id}",
    operation_id = "putExperiment", tag = "experiments",
    params(ExperimentPath),
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
    let id = new_id(&id)?;
    let body: ExperimentBody = object_body(body)?;
    let spec = ExperimentDraft::from(body)
        .validate()
        .map_err(|e| ApiError::InvalidParameter(e.to_string()))?;
    let (record, created) = query::experiments::put(&state, &id, &spec).await?;
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
    params(ExperimentPath),
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
    if query::experiments::delete(&state, &id).await? {
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
    params(ExperimentPath, ExperimentParams),
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
    let travel = TimeTravel::new(params.version, params.at).windowed(params.since, params.window);
    let at = query::experiments::experiment_at(&state, &id, &travel, mass).await?;
    Ok(ApiJson(ExperimentView::new(
        &at.record,
        &at.arms.snapshots,
        at.arms.point,
        &at.assignments,
        &at.figures,
        mass,
    )?))
}

/// P(best), expected loss and the decision after each commit that touched
/// an arm, computed with the arms' current priors. Paginated.
#[utoipa::path(
    get,
    path = "/experiments/{id}/history",
    operation_id = "getExperimentHistory", tag = "experiments",
    params(ExperimentPath, VersionPage<ExperimentHistory>),
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
    ApiQuery(params): ApiQuery<VersionPage<ExperimentHistory>>,
) -> Result<ApiJson<ExperimentHistoryView>, ApiError> {
    let id = experiment_id(&id)?;
    let mass = mass(params.mass)?;
    let limit = page_limit(params.limit)?;
    let with_origin = params.after.is_none();
    let (history, next_after) =
        query::experiments::history(&state, &id, params.after, limit).await?;
    let MergedRows {
        record,
        models,
        rows,
    } = history;
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

/// The bandit's allocation now: Thompson sampling (weights = P(best),
/// exact), equal during the burn-in, never below the floor; top-two
/// Thompson sampling when the experiment asks for it.
#[utoipa::path(
    get,
    path = "/experiments/{id}/weights",
    operation_id = "getExperimentWeights", tag = "experiments",
    params(ExperimentPath),
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
    Ok(ApiJson(query::experiments::weights_of(&state, &id).await?))
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
    params(ExperimentPath),
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
    let view: AssignmentView = query::experiments::assign(&state, &id, unit).await?;
    let status = if view.new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, ApiJson(view)).into_response())
}
