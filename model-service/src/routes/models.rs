//! Listing, reading and configuring models.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use platform::http::{ApiJson, ApiPath, ApiQuery};

use super::params::{model_id, new_id, object_body, IdPage, ModelPath, Models};
use crate::error::{ApiError, ErrorBody};
use crate::query;
use crate::query::models::{Configured, Deleted, ModelConfig};
use crate::state::AppState;
use crate::views::{ModelConfigBody, ModelInfo, ModelList};

/// Models in id order with their counts and last update, a page at a time.
#[utoipa::path(
    get,
    path = "/models",
    operation_id = "listModels", tag = "models",
    params(IdPage<Models>),
    responses(
        (status = 200, description = "A page of models", body = ModelList),
        (status = 422, description = "Invalid parameter", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(page): ApiQuery<IdPage<Models>>,
) -> Result<ApiJson<ModelList>, ApiError> {
    let (after, limit) = page.read()?;
    let (records, next_after) = query::models::list(&state, after.as_ref(), limit).await?;
    Ok(ApiJson(ModelList {
        models: records.iter().map(ModelInfo::from).collect(),
        next_after,
    }))
}

/// A model's prior, grid size, counts and version.
#[utoipa::path(
    get,
    path = "/models/{id}",
    operation_id = "getModel", tag = "models",
    params(ModelPath),
    responses(
        (status = 200, description = "The model", body = ModelInfo),
        (status = 404, description = "Unknown model", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<ApiJson<ModelInfo>, ApiError> {
    let id = model_id(&id)?;
    let record = query::models::model(&state, &id).await?;
    Ok(ApiJson(ModelInfo::from(&record)))
}

/// Creates a model or changes its prior and grid size. Allowed after data
/// arrived: the counts are kept and the posterior is recomputed from them.
/// A request that changes nothing writes nothing and answers 200 with the
/// model as it is. At most `model_service.max_config_changes_per_hour`
/// changes of one model within any hour (10 unless configured); past it,
/// 429 with `Retry-After`. Needs scope `admin`.
#[utoipa::path(
    put,
    path = "/models/{id}",
    operation_id = "configureModel", tag = "models",
    params(ModelPath),
    request_body = ModelConfigBody,
    responses(
        (status = 200, description = "Reconfigured, or already so configured (nothing written)", body = ModelInfo),
        (status = 201, description = "Created", body = ModelInfo),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not application/json", body = ErrorBody),
        (status = 422, description = "Invalid model id, prior or grid size", body = ErrorBody),
        (status = 429, description = "The model changed `max_config_changes_per_hour` times within the last hour", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds until the model may change again."))),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn put(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<serde_json::Map<String, serde_json::Value>>,
) -> Result<Response, ApiError> {
    let id = new_id(&id)?;
    let body: ModelConfigBody = object_body(body)?;
    let config = ModelConfig {
        prior: body.prior,
        grid_size: body.grid_size,
    };
    let per_hour = state.settings().max_config_changes_per_hour;
    let configured = query::models::configure(&state, &id, &config, per_hour).await?;
    match configured {
        Configured::Created(record) => {
            let info = ModelInfo::from(&record);
            tracing::info!(model = %id, prior = %info.prior.label(), "model created");
            Ok((
                StatusCode::CREATED,
                [(header::LOCATION, format!("/models/{id}"))],
                ApiJson(info),
            )
                .into_response())
        }
        Configured::Changed(record) => {
            let info = ModelInfo::from(&record);
            tracing::info!(model = %id, prior = %info.prior.label(), "model reconfigured");
            Ok(ApiJson(info).into_response())
        }
        Configured::Unchanged(record) => Ok(ApiJson(ModelInfo::from(&record)).into_response()),
        Configured::Limited { retry_after } => Err(ApiError::TooManyChanges {
            model: id.to_string(),
            per_hour,
            retry_after,
        }),
    }
}

/// Deletes a model: its configuration, counts, history and plots, at once.
/// Its records still in the log, or sent later, are applied as any other
/// record: with `models.auto_create` on they create the model anew, from
/// nothing; off, they are dead-lettered (`unknown_model`). The ids of the
/// observations it had applied are remembered for `consumer.dedup_retention`
/// all the same, so a client's retry of one of them is not counted again.
/// A model that is an arm of an experiment is not deleted (409): delete the
/// experiment first. Needs scope `admin`.
#[utoipa::path(
    delete,
    path = "/models/{id}",
    operation_id = "deleteModel", tag = "models",
    params(ModelPath),
    responses(
        (status = 204, description = "Deleted, with its history"),
        (status = 404, description = "Unknown model", body = ErrorBody),
        (status = 409, description = "An arm of experiments (`model_in_experiment`); the message names them", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let id = model_id(&id)?;
    let deleted = query::models::delete(&state, &id).await?;
    match deleted {
        Deleted::Deleted => {
            tracing::info!(model = %id, "model deleted");
            Ok(StatusCode::NO_CONTENT)
        }
        Deleted::NotFound => Err(ApiError::ModelNotFound(id.to_string())),
        Deleted::InExperiments(experiments) => Err(ApiError::ModelInExperiments {
            model: id.to_string(),
            experiments,
        }),
    }
}
