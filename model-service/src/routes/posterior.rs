//! Questions about a posterior: summaries and grid, history, predictive
//! distribution, samples, comparison of two models.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use domain::Prior;
use platform::http::{ApiJson, ApiPath, ApiQuery};
use serde::Deserialize;

use super::params::{
    mass, model_id, page_limit, AsOf, ComparedModels, ModelHistory, ModelPath, Since, VersionPage,
};
use crate::compute::{blocking, count_lookup, data_key};
use crate::error::{ApiError, ErrorBody};
use crate::query::{self, TimeTravel};
use crate::state::{AppState, PosteriorKey};
use crate::views::{
    ComparisonView, HistoryPoint, HistoryView, PosteriorView, PredictiveView, SamplesView,
};

/// Draws returned by `/samples` unless `?n=` says otherwise.
const DEFAULT_SAMPLES: usize = 1_000;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PosteriorParams {
    /// Mass of the PI and HPDI, strictly between 0 and 1 (default 0.89).
    #[param(exclusive_minimum = 0, exclusive_maximum = 1)]
    mass: Option<f64>,
    /// `false` leaves out the display grid (summaries only).
    grid: Option<bool>,
}

/// The default model's posterior (`models.default_model`, `globe` unless configured).
#[utoipa::path(
    get,
    path = "/posterior",
    operation_id = "getDefaultPosterior", tag = "models",
    params(PosteriorParams, AsOf, Since),
    responses(
        (status = 200, description = "The posterior", body = PosteriorView),
        (status = 404, description = "The default model has no data and was never configured", body = ErrorBody),
        (status = 422, description = "Invalid parameter", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn default_posterior(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<PosteriorParams>,
    ApiQuery(as_of): ApiQuery<AsOf>,
    ApiQuery(since): ApiQuery<Since>,
) -> Result<Response, ApiError> {
    let id = state.defaults().default_model.clone();
    posterior_response(&state, &id, &params, since.narrow(as_of.travel())).await
}

/// A model's posterior: counts, version, prior, summaries at `mass` and the display grid.
#[utoipa::path(
    get,
    path = "/models/{id}/posterior",
    operation_id = "getPosterior", tag = "models",
    params(ModelPath, PosteriorParams, AsOf, Since),
    responses(
        (status = 200, description = "The posterior", body = PosteriorView),
        (status = 404, description = "Unknown model", body = ErrorBody),
        (status = 422, description = "Invalid parameter: mass, version, at, since or window", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn posterior(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(params): ApiQuery<PosteriorParams>,
    ApiQuery(as_of): ApiQuery<AsOf>,
    ApiQuery(since): ApiQuery<Since>,
) -> Result<Response, ApiError> {
    let id = model_id(&id)?;
    posterior_response(&state, &id, &params, since.narrow(as_of.travel())).await
}

async fn posterior_response(
    state: &AppState,
    id: &domain::ModelId,
    params: &PosteriorParams,
    travel: TimeTravel,
) -> Result<Response, ApiError> {
    let mass = mass(params.mass)?;
    let snapshot = query::models::model_at(state, id, &travel).await?;
    let with_grid = params.grid.unwrap_or(true);
    let key = PosteriorKey {
        data: data_key(&snapshot),
        mass_bits: mass.to_bits(),
        with_grid,
    };
    // The serialised answer is cached: the same data and mass always give
    // the same bytes, and a hit costs one small query.
    let (body, lookup) = state
        .posteriors()
        .get_or_try_insert(key, || {
            let snapshot = snapshot.clone();
            blocking(move || {
                let view = PosteriorView::compute(&snapshot, mass, with_grid)?;
                serde_json::to_vec(&view)
                    .map(Into::into)
                    .map_err(|e| ApiError::Internal(e.into()))
            })
        })
        .await?;
    count_lookup("posterior", lookup.as_str());
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// A model's history: per version the cumulative counts and the posterior
/// mean and HPDI then, computed with the current prior. Paginated.
#[utoipa::path(
    get,
    path = "/models/{id}/history",
    operation_id = "getHistory", tag = "models",
    params(ModelPath, VersionPage<ModelHistory>),
    responses(
        (status = 200, description = "A page of history", body = HistoryView),
        (status = 404, description = "Unknown model", body = ErrorBody),
        (status = 422, description = "Invalid parameter", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn history(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(params): ApiQuery<VersionPage<ModelHistory>>,
) -> Result<ApiJson<HistoryView>, ApiError> {
    let id = model_id(&id)?;
    let mass = mass(params.mass)?;
    let limit = page_limit(params.limit)?;
    let query::models::HistoryPage {
        record,
        rows,
        next_after,
    } = query::models::history(&state, &id, params.after, limit).await?;
    let prior = record.prior.clone();
    let versions = blocking(move || {
        rows.iter()
            .map(|row| HistoryPoint::compute(&prior, row, mass).map_err(ApiError::from))
            .collect::<Result<Vec<_>, _>>()
    })
    .await?;
    Ok(ApiJson(HistoryView {
        model: id,
        prior: Prior::clone(&record.prior),
        mass,
        versions,
        next_after,
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PredictiveParams {
    /// Number of future trials, 0..=`max_trials` (1000 unless configured).
    #[param(minimum = 0, maximum = 1000)]
    trials: u32,
}

/// The posterior predictive distribution of successes in the next `trials` trials.
#[utoipa::path(
    get,
    path = "/models/{id}/predictive",
    operation_id = "getPredictive", tag = "models",
    params(ModelPath, PredictiveParams, AsOf),
    responses(
        (status = 200, description = "P(k successes) for k = 0..=trials", body = PredictiveView),
        (status = 404, description = "Unknown model", body = ErrorBody),
        (status = 422, description = "trials missing or above max_trials", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn predictive(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(params): ApiQuery<PredictiveParams>,
    ApiQuery(as_of): ApiQuery<AsOf>,
) -> Result<ApiJson<PredictiveView>, ApiError> {
    let id = model_id(&id)?;
    let max = state.settings().max_trials;
    let trials = params.trials;
    if trials > max {
        return Err(ApiError::invalid(format!(
            "trials must be at most {max}, got {trials}"
        )));
    }
    let snapshot = query::models::model_at(&state, &id, &as_of.travel()).await?;
    let view = blocking(move || Ok(PredictiveView::compute(&snapshot, trials)?)).await?;
    Ok(ApiJson(view))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SamplesParams {
    /// Number of draws, 1..=`max_samples` (100000 unless configured; default 1000).
    #[param(minimum = 1, maximum = 100000)]
    n: Option<usize>,
    /// Seed of the draws; the same seed gives the same draws. Random when absent (and returned).
    #[param(minimum = 0, maximum = 9223372036854775807_i64)]
    seed: Option<u64>,
}

/// Draws of `p` from the posterior.
#[utoipa::path(
    get,
    path = "/models/{id}/samples",
    operation_id = "getSamples", tag = "models",
    params(ModelPath, SamplesParams, AsOf),
    responses(
        (status = 200, description = "The draws and their seed", body = SamplesView),
        (status = 404, description = "Unknown model", body = ErrorBody),
        (status = 422, description = "n is 0 or above max_samples", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn samples(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(params): ApiQuery<SamplesParams>,
    ApiQuery(as_of): ApiQuery<AsOf>,
) -> Result<ApiJson<SamplesView>, ApiError> {
    let id = model_id(&id)?;
    let max = state.settings().max_samples;
    let n = params.n.unwrap_or(DEFAULT_SAMPLES.min(max));
    if n == 0 || n > max {
        return Err(ApiError::invalid(format!(
            "n must be between 1 and {max}, got {n}"
        )));
    }
    // Seeds are kept within the i64 range, which every JSON client can
    // read back exactly.
    let seed = match params.seed {
        Some(seed) if i64::try_from(seed).is_err() => {
            return Err(ApiError::invalid(format!(
                "seed must be at most {}, got {seed}",
                i64::MAX
            )))
        }
        Some(seed) => seed,
        None => rand::random::<u64>() >> 1,
    };
    let snapshot = query::models::model_at(&state, &id, &as_of.travel()).await?;
    let view = blocking(move || Ok(SamplesView::compute(&snapshot, n, seed)?)).await?;
    Ok(ApiJson(view))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CompareParams {
    /// Documented by [`ComparedModels`], with the model-id pattern.
    #[param(ignore)]
    a: String,
    #[param(ignore)]
    b: String,
    /// Mass of the intervals, strictly between 0 and 1 (default 0.89).
    #[param(exclusive_minimum = 0, exclusive_maximum = 1)]
    mass: Option<f64>,
    /// Compare both as of this time (RFC 3339).
    #[param(format = DateTime)]
    at: Option<String>,
}

/// Compares two models: P(p_a > p_b) and a summary of p_a - p_b.
#[utoipa::path(
    get,
    path = "/compare",
    operation_id = "compareModels", tag = "models",
    params(ComparedModels, CompareParams, Since),
    responses(
        (status = 200, description = "The comparison", body = ComparisonView),
        (status = 404, description = "Unknown model", body = ErrorBody),
        (status = 422, description = "a or b missing, or invalid mass, at, since or window", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn compare(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<CompareParams>,
    ApiQuery(since): ApiQuery<Since>,
) -> Result<ApiJson<ComparisonView>, ApiError> {
    let mass = mass(params.mass)?;
    let (a, b) = (model_id(&params.a)?, model_id(&params.b)?);
    let travel = since.narrow(TimeTravel::new(None, params.at));
    let (a, b) = tokio::try_join!(
        query::models::model_at(&state, &a, &travel),
        query::models::model_at(&state, &b, &travel)
    )?;
    let view = blocking(move || Ok(ComparisonView::compute(&a, &b, mass)?)).await?;
    Ok(ApiJson(view))
}
