//! Listing, reading and configuring models.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use domain::ModelId;
use platform::http::{ApiJson, ApiPath, ApiQuery};
use platform::store::{self, ChangeLimit, Configured, Deleted, ModelConfig};
use serde::Deserialize;

use super::{load_model, model_id, object_body, page_after, page_limit, page_of, timed};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use crate::views::{ModelConfigBody, ModelInfo, ModelList};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Start after this model id (from `next_after` of the previous page).
    #[param(pattern = "^[a-z0-9][a-z0-9_.-]{0,63}$")]
    after: Option<String>,
    /// Models per page, 1..=1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// Models in id order with their counts and last update, a page at a time.
#[utoipa::path(
    get,
    path = "/models",
    operation_id = "listModels", tag = "models",
    params(ListParams),
    responses(
        (status = 200, description = "A page of models", body = ModelList),
        (status = 422, description = "Invalid parameter", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<ApiJson<ModelList>, ApiError> {
    let limit = page_limit(params.limit)?;
    let after = page_after(params.after.as_deref())?;
    let records = timed(
        "list_models",
        store::list_models(state.db(), after.as_ref(), u64::from(limit) + 1),
    )
    .await?;
    let (records, next_after) = page_of(records, limit, |r| &r.id);
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
    params(("id" = String, Path, description = "Model id: 1 to 64 of [a-z0-9_.-], starting with a letter or digit", pattern = "^[a-z0-9][a-z0-9_.-]{0,63}$")),
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
    let record = load_model(&state, &id).await?;
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
    params(("id" = String, Path, description = "Model id: 1 to 64 of [a-z0-9_.-], starting with a letter or digit", pattern = "^[a-z0-9][a-z0-9_.-]{0,63}$")),
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
    let id = ModelId::parse(&id).map_err(|e| ApiError::invalid(e.to_string()))?;
    let body: ModelConfigBody = object_body(body)?;
    let config = ModelConfig {
        prior: body.prior,
        grid_size: body.grid_size,
    };
    let per_hour = state.settings().max_config_changes_per_hour;
    let configured = timed(
        "configure_model",
        store::configure_model(
            state.db(),
            &id,
            &config,
            state.defaults(),
            ChangeLimit { per_hour },
            state.notify_channel(),
        ),
    )
    .await?;
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
    params(("id" = String, Path, description = "Model id: 1 to 64 of [a-z0-9_.-], starting with a letter or digit", pattern = "^[a-z0-9][a-z0-9_.-]{0,63}$")),
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
    let deleted = timed(
        "delete_model",
        store::delete_model(state.db(), &id, state.notify_channel()),
    )
    .await?;
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
