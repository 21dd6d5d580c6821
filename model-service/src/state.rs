//! What every handler shares: the pool, the settings, the caches, the event
//! feed and the shutdown signal.

use std::sync::Arc;

use axum::body::Bytes;
use chrono::{DateTime, Utc};
use domain::bayes::Counts;
use domain::ModelId;
use metrics_exporter_prometheus::PrometheusHandle;
use platform::http::auth::KeyRing;
use platform::settings::{
    AuthSettings, HttpSettings, ModelDefaults, ModelServiceSettings, Settings,
};
use sea_orm::DatabaseConnection;
use tokio::sync::{broadcast, watch, Semaphore};

use crate::cache::Cache;
use crate::current::assign::Assigner;
use crate::current::sync::Barriers;
use crate::current::Current;
use crate::plot::Format;
use crate::streams::EventStreams;
use crate::views::experiment::Figures;
use crate::views::ModelEvent;

/// How many events a slow dashboard may fall behind before it is told to
/// reload everything.
const EVENT_BUFFER: usize = 256;
/// Serialised posteriors kept in memory (each ~50 KB with a 1000-point grid).
const POSTERIOR_CACHE_ENTRIES: usize = 512;
/// Experiments' figures kept in memory (a few KB each).
const FIGURES_CACHE_ENTRIES: usize = 1024;

/// Identifies the data a computed answer depends on, whatever the version
/// numbering: the counts themselves, the version and when it was applied,
/// and when the configuration last changed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DataKey {
    pub model: ModelId,
    pub counts: Counts,
    pub version: u64,
    pub updated_at: DateTime<Utc>,
    pub configured_at: DateTime<Utc>,
    /// The start of a time window, when the counts are a window's.
    pub since: Option<DateTime<Utc>>,
}

/// The key of a serialised posterior.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PosteriorKey {
    pub data: DataKey,
    pub mass_bits: u64,
    pub with_grid: bool,
}

/// The key of an experiment's figures: every arm's data and the options.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FiguresKey {
    pub arms: Vec<DataKey>,
    pub control: ModelId,
    pub rope_bits: u64,
    pub threshold_bits: u64,
    pub mass_bits: u64,
}

/// Which plot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PlotKind {
    Posterior,
    History,
}

impl PlotKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PlotKind::Posterior => "posterior",
            PlotKind::History => "history",
        }
    }
}

/// The key of a rendered plot.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PlotKey {
    pub kind: PlotKind,
    pub data: DataKey,
    pub width: u32,
    pub height: u32,
    pub mass_bits: u64,
    pub format: Format,
}

/// Cheap to clone: everything lives behind one `Arc`.
#[derive(Clone, Debug)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    db: DatabaseConnection,
    settings: ModelServiceSettings,
    http: HttpSettings,
    defaults: ModelDefaults,
    notify_channel: String,
    auth: AuthSettings,
    keys: Arc<KeyRing>,
    current: Current,
    barriers: Barriers,
    assigner: Assigner,
    posteriors: Cache<PosteriorKey, Bytes>,
    plots: Cache<PlotKey, Bytes>,
    figures: Cache<FiguresKey, Arc<Figures>>,
    events: broadcast::Sender<ModelEvent>,
    streams: EventStreams,
    render_permits: Semaphore,
    metrics: PrometheusHandle,
    shutdown: watch::Sender<bool>,
}

impl AppState {
    /// State over an open pool, with `current` (loaded by the caller: see
    /// [`crate::current::sync`]). Starts the assignment writer.
    pub fn new(db: DatabaseConnection, settings: &Settings, current: Current) -> Self {
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let (shutdown, _) = watch::channel(false);
        // Rendering is CPU-bound: more renders at once than cores only adds
        // memory (a 4000x4000 bitmap is 48 MB) and latency.
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let assigner = Assigner::start(
            db.clone(),
            settings.database.notify_channel.clone(),
            settings.model_service.assignment_cache_entries,
        );
        Self {
            inner: Arc::new(Inner {
                db,
                current,
                barriers: Barriers::default(),
                assigner,
                settings: settings.model_service.clone(),
                http: settings.http.clone(),
                defaults: settings.models.clone(),
                notify_channel: settings.database.notify_channel.clone(),
                auth: settings.auth.clone(),
                keys: Arc::new(KeyRing::new(
                    crate::SERVICE,
                    settings.auth.bootstrap_admin_key.as_ref(),
                )),
                posteriors: Cache::new(POSTERIOR_CACHE_ENTRIES),
                plots: Cache::new(settings.model_service.plot_cache_entries),
                figures: Cache::new(FIGURES_CACHE_ENTRIES),
                events,
                streams: EventStreams::new(
                    settings.model_service.max_event_streams,
                    settings.model_service.max_event_streams_per_client,
                ),
                render_permits: Semaphore::new(cores),
                metrics: platform::telemetry::metrics_handle(),
                shutdown,
            }),
        }
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.inner.db
    }

    pub fn settings(&self) -> &ModelServiceSettings {
        &self.inner.settings
    }

    pub fn http(&self) -> &HttpSettings {
        &self.inner.http
    }

    pub fn defaults(&self) -> &ModelDefaults {
        &self.inner.defaults
    }

    pub fn notify_channel(&self) -> &str {
        &self.inner.notify_channel
    }

    pub fn auth(&self) -> &AuthSettings {
        &self.inner.auth
    }

    /// The API keys this service holds in memory.
    pub fn keys(&self) -> &Arc<KeyRing> {
        &self.inner.keys
    }

    /// The current state in memory.
    pub fn current(&self) -> &Current {
        &self.inner.current
    }

    pub(crate) fn barriers(&self) -> &Barriers {
        &self.inner.barriers
    }

    pub(crate) fn assigner(&self) -> &Assigner {
        &self.inner.assigner
    }

    /// Returns once everything committed before the call is reflected in
    /// this process's answers (see [`crate::current::sync::caught_up`]).
    pub async fn caught_up(&self) -> Result<(), crate::error::ApiError> {
        crate::current::sync::caught_up(self).await
    }

    pub(crate) fn posteriors(&self) -> &Cache<PosteriorKey, Bytes> {
        &self.inner.posteriors
    }

    pub(crate) fn plots(&self) -> &Cache<PlotKey, Bytes> {
        &self.inner.plots
    }

    pub(crate) fn figures(&self) -> &Cache<FiguresKey, Arc<Figures>> {
        &self.inner.figures
    }

    pub(crate) fn render_permits(&self) -> &Semaphore {
        &self.inner.render_permits
    }

    pub(crate) fn metrics(&self) -> &PrometheusHandle {
        &self.inner.metrics
    }

    /// Sends an event to every open `/events` stream.
    pub fn publish(&self, event: ModelEvent) {
        // No receiver is not an error: nobody is watching.
        let _ = self.inner.events.send(event);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<ModelEvent> {
        self.inner.events.subscribe()
    }

    /// How many `/events` streams are open.
    pub fn subscribers(&self) -> usize {
        self.inner.events.receiver_count()
    }

    /// The caps on `/events` streams, and the places taken under them.
    pub fn streams(&self) -> &EventStreams {
        &self.inner.streams
    }

    /// Ends every `/events` stream and the listener, so graceful shutdown
    /// does not wait on connections that never finish by themselves.
    pub fn begin_shutdown(&self) {
        self.inner.shutdown.send_replace(true);
    }

    /// Resolves once [`AppState::begin_shutdown`] was called.
    pub fn shutdown_signal(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.inner.shutdown.subscribe();
        async move {
            // An error means the sender is gone: the state was dropped, so stop too.
            let _ = rx.wait_for(|stop| *stop).await;
        }
    }
}
