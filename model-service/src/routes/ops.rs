//! Operations: liveness, readiness (the database answers), Prometheus
//! metrics and the OpenAPI description.

use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use platform::http::{Check, Health, Readiness};

use crate::query;
use crate::state::AppState;

/// How long readiness waits for the database.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// The process is up.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "modelServiceHealthz", tag = "operations",
    responses((status = 200, description = "Alive", body = Health))
)]
pub async fn healthz() -> Health {
    Health::OK
}

/// The process can answer: the database responds, the current state in
/// memory is in sync with it (check `current_state`: loaded, listening,
/// nothing missed) and, with `auth.required` on, the API keys were loaded.
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "modelServiceReadyz", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "Database unavailable", body = Readiness,
            headers(("Retry-After" = u64, description = "Seconds to wait before asking again."))),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> Readiness {
    let database = match tokio::time::timeout(READY_TIMEOUT, query::ping(&state)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(err)) => Err(err.to_string()),
        Err(_) => Err(format!("no answer within {READY_TIMEOUT:?}")),
    };
    let current = match state.current().status() {
        crate::current::Sync::InSync => Ok(()),
        crate::current::Sync::Lost(why) => Err(why),
    };
    let mut checks = vec![
        Check::new("database", database),
        Check::new("current_state", current),
    ];
    if state.auth().required {
        checks.push(state.keys().readiness());
    }
    Readiness::new(checks)
}

/// Prometheus metrics: `http_requests_total{service,method,route,status}`,
/// `http_request_duration_seconds{service,method,route}`, `http_errors_total{service,code}`,
/// `model_service_query_duration_seconds{query}`,
/// `model_service_render_duration_seconds{plot,format}`,
/// `http_key_requests_total{service,key}`, `http_keys_in_force{service}`,
/// `http_keys_loaded_timestamp_seconds{service}`,
/// `model_service_cache_lookups_total{cache,result}`,
/// `model_service_current_in_sync`, `model_service_current_models`,
/// `model_service_current_experiments`,
/// `model_service_current_resyncs_total{reason}`,
/// `model_service_current_repaired_total{reason}`,
/// `model_service_current_resync_seconds`,
/// `model_service_current_lag_seconds`,
/// `model_service_assignment_batch_units`.
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
