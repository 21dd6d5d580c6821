//! `AppState`: what every handler shares (the Kafka publisher, the settings,
//! the metrics handle), cheap to clone.

use std::sync::Arc;
use std::time::Duration;

use domain::ModelId;
use metrics_exporter_prometheus::PrometheusHandle;
use platform::settings::{ProducerSettings, Settings};
use rdkafka::error::KafkaError;

use crate::kafka::Publisher;

#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    publisher: Publisher,
    settings: ProducerSettings,
    default_model: ModelId,
    metrics: PrometheusHandle,
}

impl AppState {
    /// Creates the Kafka producer (without connecting) and installs the
    /// metrics recorder. Used by `Application::build`, and by tests that call
    /// the router without a socket.
    pub fn new(settings: &Settings) -> Result<Self, KafkaError> {
        Ok(Self {
            inner: Arc::new(Inner {
                publisher: Publisher::new(&settings.kafka, &settings.producer)?,
                settings: settings.producer.clone(),
                default_model: settings.models.default_model.clone(),
                metrics: platform::telemetry::metrics_handle(),
            }),
        })
    }

    pub fn publisher(&self) -> &Publisher {
        &self.inner.publisher
    }

    pub fn settings(&self) -> &ProducerSettings {
        &self.inner.settings
    }

    pub fn default_model(&self) -> &ModelId {
        &self.inner.default_model
    }

    pub fn metrics(&self) -> &PrometheusHandle {
        &self.inner.metrics
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
