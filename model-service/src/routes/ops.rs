//! Operations: liveness, readiness (the database answers), Prometheus
//! metrics and the OpenAPI description.

use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use platform::store;
use serde::Serialize;

use crate::error::{ApiError, ApiJson, ErrorBody};
use crate::state::AppState;

/// How long readiness waits for the database.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// `{"status": "..."}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Status {
    pub status: &'static str,
}

/// The process is up.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "modelServiceHealthz", tag = "operations",
    responses((status = 200, description = "Alive", body = Status))
)]
pub async fn healthz() -> ApiJson<Status> {
    ApiJson(Status { status: "ok" })
}

/// The process can answer: the database responds.
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "modelServiceReadyz", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Status),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> Result<ApiJson<Status>, ApiError> {
    match tokio::time::timeout(READY_TIMEOUT, store::ping(state.db())).await {
        Ok(Ok(())) => Ok(ApiJson(Status { status: "ready" })),
        Ok(Err(err)) => Err(ApiError::Unavailable(err)),
        Err(_) => Err(ApiError::Unavailable(
            platform::store::StoreError::Unavailable(sea_orm::DbErr::ConnectionAcquire(
                sea_orm::ConnAcquireErr::Timeout,
            )),
        )),
    }
}

/// Prometheus metrics: `http_requests_total{method,route,status}`,
/// `http_request_duration_seconds`, `model_service_query_seconds{query}`,
/// `model_service_render_seconds{plot,format}`, `model_service_cache_total{cache,result}`.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "modelServiceMetrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain"))
)]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics().render(),
    )
}

/// This API's OpenAPI 3.1 description.
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "modelServiceOpenapi", tag = "operations",
    responses((status = 200, description = "OpenAPI document", content_type = "application/json"))
)]
pub async fn openapi_json() -> impl IntoResponse {
    axum::Json(super::openapi())
}
