//! The admin HTTP server: `/healthz` (the process answers), `/readyz` (the
//! database, the broker and the polling thread are all up, and no partition
//! is stalled) and `/metrics` (Prometheus). [`openapi`] describes it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use platform::http::{Check, Health, Readiness};
use platform::kafka_health::ClientHealth;
use platform::settings::HttpSettings;
use rdkafka::producer::Producer;
use sea_orm::DatabaseConnection;
use tokio::net::TcpListener;
use utoipa::OpenApi;

use crate::control::Control;
use crate::kafka::DlqProducer;

/// How long each readiness check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// What the handlers share.
#[derive(Clone)]
pub(crate) struct AdminState {
    pub db: DatabaseConnection,
    /// The dead-letter producer; its client probes the broker.
    pub producer: Arc<DlqProducer>,
    /// Refused credentials and failed TLS handshakes, named by the broker check.
    pub kafka_health: Arc<ClientHealth>,
    pub topic: String,
    pub control: Arc<Control>,
    pub metrics: PrometheusHandle,
}

/// Serves until `shutdown` completes, within the same HTTP limits as the
/// two services (`http.*`: header and idle timeouts, a connection cap).
/// Failures are logged: losing the admin port must not stop the consumer.
pub(crate) async fn serve(
    listener: TcpListener,
    state: AdminState,
    limits: HttpSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "admin server listening");
    }
    platform::http::serve(listener, router(state), &limits, "consumer", shutdown).await;
}

fn router(state: AdminState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// The admin API's OpenAPI description.
pub fn openapi() -> utoipa::openapi::OpenApi {
    #[derive(OpenApi)]
    #[openapi(
        info(
            title = "bayes consumer admin",
            description = "Health, readiness and metrics of the consumer."
        ),
        paths(healthz, readyz, metrics),
        components(schemas(Health, Readiness, Check))
    )]
    struct AdminApi;
    AdminApi::openapi()
}

/// The process is alive.
#[utoipa::path(get, path = "/healthz", responses((status = 200, body = Health)))]
async fn healthz() -> Health {
    Health::OK
}

/// Ready when Postgres answers, the broker answers a metadata request for the
/// topic (through a dead-letter client without a fatal error), the polling
/// thread runs, and no owned partition is stalled (an offset outside the log,
/// a batch the database refuses for good, records waiting while the stored
/// offset does not move for `consumer.stall_timeout`): the `partitions` check
/// then names each one with its reason.
#[utoipa::path(
    get,
    path = "/readyz",
    responses(
        (status = 200, description = "ready", body = Readiness),
        (status = 503, description = "a dependency is down or a partition is stalled", body = Readiness,
            headers(("Retry-After" = u64, description = "Seconds to wait before asking again.")))
    )
)]
async fn readyz(State(state): State<AdminState>) -> Readiness {
    let db = async {
        match tokio::time::timeout(CHECK_TIMEOUT, state.db.ping()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("timed out".to_owned()),
        }
    };
    let producer = state.producer.clone();
    let topic = state.topic.clone();
    let health = state.kafka_health.clone();
    // A metadata request blocks on the network: keep it off the workers. A
    // dead-letter client with a fatal error is not ready whatever the broker
    // says: the check names the error and replaces the client, so that the
    // next probe asks with the new one.
    let broker = async move {
        tokio::task::spawn_blocking(move || {
            if let Some(fatal) = producer.fatal_error() {
                producer.get();
                return Err(format!(
                    "dead-letter producer: {fatal}; replaced by a new client"
                ));
            }
            match producer
                .get()
                .client()
                .fetch_metadata(Some(&topic), CHECK_TIMEOUT)
            {
                Ok(_) => {
                    health.clear();
                    Ok(())
                }
                // A refused login or handshake is the cause of whatever
                // the lookup says: name it instead.
                Err(error) => Err(health.failure().unwrap_or_else(|| error.to_string())),
            }
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string()))
    };
    let (db, broker) = tokio::join!(db, broker);
    let consumer = if state.control.is_running() {
        Ok(())
    } else {
        Err("the polling thread is not running".to_owned())
    };
    Readiness::new(vec![
        Check::new("database", db),
        Check::new("broker", broker),
        Check::new("consumer", consumer),
        Check::new("partitions", stalled(&state.control)),
    ])
}

/// `Err` naming every stalled partition with its reason.
fn stalled(control: &Control) -> Result<(), String> {
    let stalls = control.stalls.snapshot();
    if stalls.is_empty() {
        return Ok(());
    }
    let topic = control.stalls.topic();
    let each: Vec<String> = stalls
        .iter()
        .map(|(partition, stall)| format!("partition {topic}/{partition} stalled: {stall}"))
        .collect();
    Err(each.join("; "))
}

/// Prometheus text format.
#[utoipa::path(
    get,
    path = "/metrics",
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain"))
)]
async fn metrics(State(state): State<AdminState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}
