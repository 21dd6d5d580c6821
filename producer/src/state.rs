//! `AppState`: what every handler shares (the Kafka publisher, the database
//! of uploads, the settings, the metrics handle), cheap to clone.

use std::sync::Arc;
use std::time::Duration;

use domain::ModelId;
use metrics_exporter_prometheus::PrometheusHandle;
use platform::http::auth::KeyRing;
use platform::settings::{AuthSettings, HttpSettings, ProducerSettings, Settings, UploadSettings};
use rdkafka::error::KafkaError;

use crate::database::Database;
use crate::idempotency::Keys;
use crate::kafka::Publisher;
use crate::known_models::KnownModels;
use crate::uploads::validating::Validations;

#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    publisher: Publisher,
    settings: ProducerSettings,
    http: HttpSettings,
    uploads: UploadSettings,
    database: Database,
    /// The consumer group whose stored offsets say when an upload is applied.
    consumer_group: String,
    default_model: ModelId,
    metrics: PrometheusHandle,
    /// The uploads whose POST is still reading and validating the file.
    validations: Validations,
    /// The Idempotency-Keys of the requests answered lately.
    keys: Keys,
    auth: AuthSettings,
    /// The API keys this service holds in memory.
    api_keys: Arc<KeyRing>,
    /// With `models.auto_create` off: the models known to exist.
    known_models: Option<Arc<KnownModels>>,
    /// The channel on which commits name the models they changed.
    notify_channel: String,
    known_models_refresh: Duration,
}

impl AppState {
    /// Creates the Kafka producer (without connecting) and installs the
    /// metrics recorder. Used by `Application::build`, and by tests that call
    /// the router without a socket. `database` is where uploads are kept.
    pub fn new(settings: &Settings, database: Database) -> Result<Self, KafkaError> {
        Ok(Self {
            inner: Arc::new(Inner {
                publisher: Publisher::new(&settings.kafka, &settings.producer)?,
                settings: settings.producer.clone(),
                http: settings.http.clone(),
                uploads: settings.uploads.clone(),
                database,
                consumer_group: settings.consumer.group_id.clone(),
                default_model: settings.models.default_model.clone(),
                metrics: platform::telemetry::metrics_handle(),
                validations: Validations::default(),
                // As long as the consumer remembers the records' ids.
                keys: Keys::new(
                    settings.producer.idempotency_keys,
                    settings.consumer.dedup_retention,
                ),
                auth: settings.auth.clone(),
                api_keys: Arc::new(KeyRing::new(
                    crate::observability::SERVICE,
                    settings.auth.bootstrap_admin_key.as_ref(),
                )),
                known_models: (!settings.models.auto_create).then(Arc::default),
                notify_channel: settings.database.notify_channel.clone(),
                known_models_refresh: settings.models.known_models_refresh,
            }),
        })
    }

    pub fn publisher(&self) -> &Publisher {
        &self.inner.publisher
    }

    pub fn settings(&self) -> &ProducerSettings {
        &self.inner.settings
    }

    pub fn http(&self) -> &HttpSettings {
        &self.inner.http
    }

    pub fn uploads(&self) -> &UploadSettings {
        &self.inner.uploads
    }

    /// The database of uploads, when it has answered.
    pub fn database(&self) -> Option<&sea_orm::DatabaseConnection> {
        self.inner.database.get()
    }

    /// The database of uploads, or the 503 that says why there is none.
    pub fn database_or_unavailable(
        &self,
    ) -> Result<&sea_orm::DatabaseConnection, crate::error::ApiError> {
        self.inner.database.get().ok_or_else(|| {
            crate::error::ApiError::DatabaseUnavailable(self.inner.database.not_connected())
        })
    }

    pub fn consumer_group(&self) -> &str {
        &self.inner.consumer_group
    }

    pub fn default_model(&self) -> &ModelId {
        &self.inner.default_model
    }

    pub fn metrics(&self) -> &PrometheusHandle {
        &self.inner.metrics
    }

    pub fn validations(&self) -> &Validations {
        &self.inner.validations
    }

    pub fn keys(&self) -> &Keys {
        &self.inner.keys
    }

    pub fn auth(&self) -> &AuthSettings {
        &self.inner.auth
    }

    pub fn api_keys(&self) -> &Arc<KeyRing> {
        &self.inner.api_keys
    }

    /// The models known to exist; `None` when data creates its models
    /// (`models.auto_create` on).
    pub fn known_models(&self) -> Option<&Arc<KnownModels>> {
        self.inner.known_models.as_ref()
    }

    pub fn notify_channel(&self) -> &str {
        &self.inner.notify_channel
    }

    pub fn known_models_refresh(&self) -> Duration {
        self.inner.known_models_refresh
    }

    /// The database handle, to wait for its connection.
    pub fn database_handle(&self) -> &Database {
        &self.inner.database
    }

    /// How long `/readyz` waits for the broker.
    pub fn admin_timeout(&self) -> Duration {
        self.inner.settings.admin_timeout
    }

    /// How long a request waits for acknowledgements.
    pub fn ack_timeout(&self) -> Duration {
        self.inner.settings.ack_timeout
    }
}
