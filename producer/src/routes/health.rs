//! Operational endpoints: `/healthz` (the process answers), `/readyz` (the
//! broker answers) and `/metrics` (Prometheus).

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// `/healthz` body.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"status": "ok"}))]
pub struct Health {
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// `/readyz` body when ready.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"status": "ready", "topic": "observations", "partitions": 1, "brokers": 1}))]
pub struct Ready {
    #[schema(example = "ready")]
    pub status: &'static str,
    /// The topic observations are written to.
    pub topic: String,
    /// Its partitions, as the broker reports them.
    pub partitions: usize,
    /// Brokers in the cluster's metadata.
    pub brokers: usize,
}

/// Liveness: the process is up and serving HTTP. Does not look at the broker.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses((status = 200, description = "The process is alive.", body = Health)),
)]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Readiness: the broker returned the topic's metadata within `admin_timeout`.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "The broker is reachable and the topic has partitions.", body = Ready),
        (status = 503, description = "The broker did not answer in time, or the topic is unavailable.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before asking again.")),
            example = json!({"error": {"code": "not_ready", "message": "not ready: broker metadata unavailable: Meta data fetch error: BrokerTransportFailure (Local: Broker transport failure)"}})),
    ),
)]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Ready>, ApiError> {
    let publisher = state.publisher();
    let status = publisher
        .check_ready(state.admin_timeout())
        .await
        .map_err(|e| ApiError::NotReady(e.to_string()))?;
    Ok(Json(Ready {
        status: "ready",
        topic: publisher.topic().to_owned(),
        partitions: status.partitions,
        brokers: status.brokers,
    }))
}

/// Prometheus metrics: `producer_http_requests_total{route,status}`,
/// `producer_http_request_duration_seconds{route}`,
/// `producer_records_produced_total{topic}`, `producer_produce_duration_seconds`,
/// `producer_request_size_records`, `producer_errors_total{code}`,
/// `producer_produce_failures_total{reason}`.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses(
        (status = 200, description = "Metrics in the Prometheus text format.", body = String, content_type = "text/plain; version=0.0.4",
            example = "# TYPE producer_records_produced_total counter\nproducer_records_produced_total{topic=\"observations\"} 42\n"),
    ),
)]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics().render(),
    )
}
