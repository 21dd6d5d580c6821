//! Assembling and running the service: the router, `Application::build`
//! (which binds the listener, so tests can ask for port 0), and graceful shutdown.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use anyhow::Context;
use axum::extract::DefaultBodyLimit;
use axum::http::{Method, Uri};
use axum::routing::{get, post};
use axum::Router;
use platform::http::auth::{Access, Auth, RouteScopes, Scope};
use platform::http::{upload_pace, with_request_metrics, RequestGuards};
use platform::settings::Settings;
use sea_orm::DatabaseConnection;
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;

use crate::database::Database;
use crate::error::ApiError;
use crate::kafka;
use crate::observability;
use crate::routes::{health, observations, update_model, uploads};
use crate::state::AppState;

/// How often the Prometheus recorder's histograms are maintained.
const METRICS_UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The seed-compatible route, whose `GET` records an observation.
pub(crate) const UPDATE_MODEL_ROUTE: &str = "/update_model/{outcome}";
/// Bulk uploads, whose `POST` body is streamed.
const UPLOADS_ROUTE: &str = "/uploads";

const INGEST: Access = Access::Needs(Scope::Ingest);
const READ: Access = Access::Needs(Scope::Read);

/// Who may call each route when `auth.required` is on (the layer and the
/// OpenAPI document both read it).
pub(crate) const ROUTES: RouteScopes = RouteScopes(&[
    ("POST", "/observations", INGEST),
    // The seed's clients record an observation with a GET: it writes.
    ("GET", UPDATE_MODEL_ROUTE, INGEST),
    ("POST", UPDATE_MODEL_ROUTE, INGEST),
    ("POST", UPLOADS_ROUTE, INGEST),
    ("GET", UPLOADS_ROUTE, READ),
    ("GET", "/uploads/{id}", READ),
    ("GET", "/healthz", Access::Public),
    ("GET", "/readyz", Access::Public),
    ("GET", "/metrics", Access::Public),
]);

/// The HTTP API over `state`. Tests can call it with `oneshot`, without a socket.
pub fn router(state: AppState) -> Router {
    let body_limit = state.settings().max_body_bytes;
    let routes = Router::new()
        .route("/observations", post(observations::post_observations))
        .route(
            UPDATE_MODEL_ROUTE,
            get(update_model::update_model).post(update_model::update_model),
        )
        // The upload's own limits apply (uploads.max_bytes, before and after
        // decoding), not the request body limit.
        .route(
            UPLOADS_ROUTE,
            post(uploads::post_upload)
                .layer(DefaultBodyLimit::disable())
                .get(uploads::list_uploads),
        )
        .route("/uploads/{id}", get(uploads::get_upload))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found);
    let routes = if state.auth().required {
        Auth::new(state.api_keys().clone(), ROUTES).apply(routes)
    } else {
        routes
    };
    let guards = RequestGuards::new(state.http())
        // The seed's clients record an observation with a GET.
        .state_changing_get(UPDATE_MODEL_ROUTE)
        // An upload may rightly take long; it must only keep arriving.
        .streaming_body(Method::POST, UPLOADS_ROUTE, upload_pace(state.uploads()));
    with_request_metrics(guards.apply(routes), observability::SERVICE)
        .layer(DefaultBodyLimit::max(body_limit))
        // Request spans at debug level; failures are logged once, by ApiError.
        .layer(TraceLayer::new_for_http().on_failure(()))
        .with_state(state)
}

impl Application {
    /// Starts what the producer keeps fresh from Postgres once it answers:
    /// the API keys (with `auth.required` on) and the known models (with
    /// `models.auto_create` off), until `stopped` says so.
    fn keep_fresh(
        &self,
        stopped: &tokio::sync::watch::Receiver<bool>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let until_stopped = || {
            let mut stopped = stopped.clone();
            async move {
                let _ = stopped.wait_for(|s| *s).await;
            }
        };
        let state = &self.state;
        let mut tasks = Vec::new();
        if state.auth().required {
            let (keys, auth) = (state.api_keys().clone(), state.auth().clone());
            tasks.push(spawn_when_connected(
                state.database_handle().clone(),
                until_stopped(),
                move |db, stop| platform::http::auth::keep_fresh(keys, db, auth, stop),
            ));
        }
        if let Some(known) = state.known_models() {
            let known = known.clone();
            let channel = state.notify_channel().to_owned();
            let refresh = state.known_models_refresh();
            tasks.push(spawn_when_connected(
                state.database_handle().clone(),
                until_stopped(),
                move |db, stop| crate::known_models::keep_fresh(known, db, channel, refresh, stop),
            ));
        }
        tasks
    }
}

/// Spawns `task` with the connection and the stop signal once the database
/// answers; nothing runs when the service stops first.
fn spawn_when_connected<F, Fut>(
    database: Database,
    stop: impl Future<Output = ()> + Send + 'static,
    task: F,
) -> tokio::task::JoinHandle<()>
where
    F: FnOnce(DatabaseConnection, Pin<Box<dyn Future<Output = ()> + Send>>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        let mut stop: Pin<Box<dyn Future<Output = ()> + Send>> = Box::pin(stop);
        let db = tokio::select! {
            db = database.connected() => db,
            () = stop.as_mut() => return,
        };
        task(db, stop).await;
    })
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::NotFound(format!("{method} {}", uri.path()))
}

async fn method_not_allowed(method: Method) -> ApiError {
    ApiError::MethodNotAllowed(method.to_string())
}

/// The producer service, bound and ready to run.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    port: u16,
    state: AppState,
    flush_timeout: Duration,
}

impl Application {
    /// Creates the topics when `kafka.create_topics` is set (best effort, see
    /// [`kafka::ensure_topics`]), creates the Kafka producer and binds
    /// `producer.host:producer.port` (port 0 picks a free port).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        if settings.kafka.create_topics {
            let timeout = settings.producer.admin_timeout;
            kafka::ensure_topics(&settings.kafka, timeout).await;
        }
        let database = Database::open(&settings.database).await;
        let state = AppState::new(&settings, database).context("creating the Kafka producer")?;
        let address = format!("{}:{}", settings.producer.host, settings.producer.port);
        let listener = TcpListener::bind(&address)
            .await
            .with_context(|| format!("binding {address}"))?;
        let port = listener
            .local_addr()
            .context("reading the bound address")?
            .port();
        tracing::info!(
            %address,
            port,
            brokers = %settings.kafka.brokers,
            topic = %settings.kafka.topic,
            "producer listening"
        );
        Ok(Self {
            listener,
            port,
            state,
            flush_timeout: settings.producer.ack_timeout,
        })
    }

    /// The port actually bound.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The shared state, e.g. for `router(state)` in tests.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes (within the limits of `[http]`, see
    /// [`platform::http::serve`]), then stops accepting connections, lets
    /// in-flight requests finish (each is bounded by the ack timeout), and
    /// flushes records still queued for the broker.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let metrics = self.state.metrics().clone();
        let upkeep = tokio::spawn(async move {
            let mut tick = tokio::time::interval(METRICS_UPKEEP_INTERVAL);
            loop {
                tick.tick().await;
                metrics.run_upkeep();
            }
        });
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let background = self.keep_fresh(&stopped);
        let app = router(self.state.clone());
        platform::http::serve(
            self.listener,
            app,
            self.state.http(),
            observability::SERVICE,
            async move {
                shutdown.await;
                stop.send_replace(true);
            },
        )
        .await;
        upkeep.abort();
        for task in background {
            // They write what they hold (the keys' last uses), then return.
            let _ = task.await;
        }
        tracing::info!("HTTP server stopped; flushing the Kafka producer");
        if let Err(error) = self.state.publisher().flush(self.flush_timeout).await {
            tracing::warn!(%error, "records still queued at shutdown were not delivered");
        }
        Ok(())
    }
}
