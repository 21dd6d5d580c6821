//! Operational endpoints: `/healthz` (the process answers), `/readyz` (the
//! broker answers) and `/metrics` (Prometheus).

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use platform::http::{Check, Health, Readiness};

use crate::state::AppState;

/// Liveness: the process is up and serving HTTP. Does not look at the broker.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses((status = 200, description = "The process is alive.", body = Health)),
)]
pub async fn healthz() -> Health {
    Health::OK
}

/// Readiness: the broker returned the topic's metadata within
/// `admin_timeout`. The `broker` check names the topic and, when it
/// answered, the topic's partitions and the brokers in the metadata. A Kafka
/// client with a fatal error is not ready: the check names the error, and the
/// client is replaced by a new one, which the next probe asks with.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "The broker is reachable and the topic has partitions.", body = Readiness,
            example = json!({"status": "ready", "checks": [{"name": "broker", "ok": true, "topic": "observations", "partitions": 1, "brokers": 1}]})),
        (status = 503, description = "The broker did not answer in time, the topic is unavailable, or the Kafka client had a fatal error (it is replaced at once).", body = Readiness,
            headers(("Retry-After" = u64, description = "Seconds to wait before asking again.")),
            example = json!({"status": "not_ready", "checks": [{"name": "broker", "ok": false, "error": "broker metadata unavailable: Meta data fetch error: BrokerTransportFailure (Local: Broker transport failure)", "topic": "observations"}]})),
    ),
)]
pub async fn readyz(State(state): State<AppState>) -> Readiness {
    let publisher = state.publisher();
    let outcome = publisher.check_ready(state.admin_timeout()).await;
    let mut broker = Check::new(
        "broker",
        outcome.as_ref().map(|_| ()).map_err(|e| e.to_string()),
    );
    broker.topic = Some(publisher.topic().to_owned());
    if let Ok(status) = outcome {
        broker.partitions = Some(status.partitions);
        broker.brokers = Some(status.brokers);
    }
    let mut checks = vec![broker];
    if state.auth().required {
        checks.push(state.api_keys().readiness());
    }
    Readiness::new(checks)
}

/// Prometheus metrics: `http_requests_total{service,method,route,status}`,
/// `http_request_duration_seconds{service,method,route}`,
/// `http_errors_total{service,code}`, `producer_records_produced_total{topic}`,
/// `producer_produce_duration_seconds`, `producer_request_size_records`,
/// `producer_produce_failures_total{reason}`,
/// `kafka_producer_fatal_errors_total{client}`,
/// `http_key_requests_total{service,key}`, `http_keys_in_force{service}`,
/// `http_keys_loaded_timestamp_seconds{service}`.
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
