//! Typed settings for every service, read in layers with the `config` crate:
//!
//! 1. the defaults in this file (mirrored, with comments, in `config/default.toml`);
//! 2. `config/default.toml`, then `config/{BAYES_ENV}.toml` when `BAYES_ENV` is set
//!    (the folder is `BAYES_CONFIG_DIR`, default `config`); both optional;
//! 3. environment variables `BAYES__SECTION__KEY`, e.g. `BAYES__KAFKA__BROKERS`.
//!
//! Keys of `kafka.librdkafka` are librdkafka options passed through as they
//! are; in environment variables write `_` for `.`
//! (`BAYES__KAFKA__LIBRDKAFKA__SOCKET_TIMEOUT_MS=3000`).
//!
//! This is the only module that reads the process environment.

use std::collections::BTreeMap;
use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::model_id::ModelId;

/// The prefix of every environment variable that overrides a setting.
pub const ENV_PREFIX: &str = "BAYES";
/// Separates the sections of an environment variable's name.
pub const ENV_SEPARATOR: &str = "__";

/// All settings of all services; each service reads the sections it needs.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub telemetry: TelemetrySettings,
    pub models: ModelDefaults,
    pub kafka: KafkaSettings,
    pub database: DatabaseSettings,
    pub producer: ProducerSettings,
    pub consumer: ConsumerSettings,
    pub model_service: ModelServiceSettings,
}

/// Logging.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetrySettings {
    /// Filter in `RUST_LOG` syntax; `RUST_LOG` itself wins when set.
    pub log_filter: String,
    /// `human` (default) or `json` (one object a line).
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Human,
    Json,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        Self {
            log_filter: "info".into(),
            log_format: LogFormat::Human,
        }
    }
}

/// What a model gets when data arrives before anyone configured it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelDefaults {
    /// The model used when a record has neither key nor `model` field, and by `GET /posterior`.
    pub default_model: ModelId,
    /// Grid size of a model created by its first data (2..=100000).
    pub default_grid_size: u32,
}

impl Default for ModelDefaults {
    fn default() -> Self {
        Self {
            default_model: default_model_id(),
            default_grid_size: crate::bayes::DEFAULT_GRID_SIZE,
        }
    }
}

fn default_model_id() -> ModelId {
    ModelId::parse("globe").unwrap_or_else(|_| unreachable!("`globe` is a valid model id"))
}

/// The Kafka cluster and topics.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaSettings {
    /// `bootstrap.servers`: comma-separated host:port list.
    pub brokers: String,
    /// The topic observations are written to and consumed from.
    pub topic: String,
    /// The dead-letter topic for records that are not observations.
    pub dlq_topic: String,
    /// Create the topics at start-up when they are missing.
    pub create_topics: bool,
    /// Partitions of a topic created at start-up (1 keeps a total order).
    pub partitions: i32,
    /// Replication factor of a topic created at start-up.
    pub replication_factor: i32,
    /// Extra librdkafka options, passed through as they are (`security.protocol`, ...).
    pub librdkafka: BTreeMap<String, String>,
}

impl Default for KafkaSettings {
    fn default() -> Self {
        Self {
            brokers: "127.0.0.1:9092".into(),
            topic: "observations".into(),
            dlq_topic: "observations.dlq".into(),
            create_topics: true,
            partitions: 1,
            replication_factor: 1,
            librdkafka: BTreeMap::new(),
        }
    }
}

impl KafkaSettings {
    /// The pass-through options with `_` read as `.`, as environment variables must spell them.
    pub fn librdkafka_options(&self) -> impl Iterator<Item = (String, &str)> {
        self.librdkafka
            .iter()
            .map(|(k, v)| (k.replace('_', "."), v.as_str()))
    }
}

/// Postgres.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// Connection URL (`postgres://user:password@host:port/database`); kept secret in logs.
    pub url: SecretString,
    /// Connections in the pool.
    pub max_connections: u32,
    /// How long to wait for a connection, in milliseconds.
    pub connect_timeout_ms: u64,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: SecretString::from("postgres://postgres@127.0.0.1:5432/postgres"),
            max_connections: 10,
            connect_timeout_ms: 5_000,
        }
    }
}

impl PartialEq for DatabaseSettings {
    fn eq(&self, other: &Self) -> bool {
        self.url.expose_secret() == other.url.expose_secret()
            && self.max_connections == other.max_connections
            && self.connect_timeout_ms == other.connect_timeout_ms
    }
}

/// The producer's HTTP service.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProducerSettings {
    pub host: String,
    pub port: u16,
    /// The most observations one request may carry.
    pub max_batch: usize,
    /// The largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// How long to wait for the broker's acknowledgement before answering 503, in milliseconds.
    pub ack_timeout_ms: u64,
    /// `linger.ms`: how long librdkafka waits to fill a batch.
    pub linger_ms: u64,
    /// How long `/readyz` and the start-up topic creation wait for the broker, in milliseconds.
    pub admin_timeout_ms: u64,
}

impl Default for ProducerSettings {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 8000,
            max_batch: 10_000,
            max_body_bytes: 1024 * 1024,
            ack_timeout_ms: 5_000,
            linger_ms: 1,
            admin_timeout_ms: 2_000,
        }
    }
}

/// The consumer group.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsumerSettings {
    /// Kafka consumer group id; also the key of the offsets kept in Postgres.
    pub group_id: String,
    /// The most records folded into one database transaction.
    pub batch_size: usize,
    /// The longest wait to fill a batch, in milliseconds.
    pub batch_wait_ms: u64,
    /// Upper bound of the back-off while Postgres is unavailable, in milliseconds.
    pub retry_backoff_max_ms: u64,
    /// Postgres channel notified with the models each commit changed.
    pub notify_channel: String,
    /// Admin HTTP server (`/healthz`, `/readyz`, `/metrics`).
    pub admin_host: String,
    pub admin_port: u16,
    /// How often the consumer-lag gauges are refreshed from the broker's watermarks, in milliseconds.
    pub lag_refresh_ms: u64,
}

impl Default for ConsumerSettings {
    fn default() -> Self {
        Self {
            group_id: "bayes-consumer".into(),
            batch_size: 5_000,
            batch_wait_ms: 50,
            retry_backoff_max_ms: 5_000,
            notify_channel: "model_updates".into(),
            admin_host: "127.0.0.1".into(),
            admin_port: 8002,
            lag_refresh_ms: 5_000,
        }
    }
}

/// The model service.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelServiceSettings {
    pub host: String,
    pub port: u16,
    /// Bearer token required by `PUT /models/{id}`; no token means the route is open.
    pub api_token: Option<SecretString>,
    /// Rendered plots kept in memory.
    pub plot_cache_entries: usize,
    /// The most draws `GET /models/{id}/samples` returns.
    pub max_samples: usize,
    /// The most trials `GET /models/{id}/predictive` accepts.
    pub max_trials: u32,
    /// The widest plot drawn, in pixels.
    pub max_plot_width: u32,
    /// The tallest plot drawn, in pixels.
    pub max_plot_height: u32,
    /// The largest request body accepted (a `grid` prior of 100000 weights needs ~2 MiB), in bytes.
    pub max_body_bytes: usize,
}

impl Default for ModelServiceSettings {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 8001,
            api_token: None,
            plot_cache_entries: 256,
            max_samples: 100_000,
            max_trials: 1_000,
            max_plot_width: 4_000,
            max_plot_height: 4_000,
            max_body_bytes: 4 * 1024 * 1024,
        }
    }
}

impl PartialEq for ModelServiceSettings {
    fn eq(&self, other: &Self) -> bool {
        self.host == other.host
            && self.port == other.port
            && self.api_token.as_ref().map(ExposeSecret::expose_secret)
                == other.api_token.as_ref().map(ExposeSecret::expose_secret)
            && self.plot_cache_entries == other.plot_cache_entries
            && self.max_samples == other.max_samples
            && self.max_trials == other.max_trials
            && self.max_plot_width == other.max_plot_width
            && self.max_plot_height == other.max_plot_height
            && self.max_body_bytes == other.max_body_bytes
    }
}

impl PartialEq for Settings {
    fn eq(&self, other: &Self) -> bool {
        self.telemetry == other.telemetry
            && self.models == other.models
            && self.kafka == other.kafka
            && self.database == other.database
            && self.producer == other.producer
            && self.consumer == other.consumer
            && self.model_service == other.model_service
    }
}

/// Why settings could not be read.
#[derive(Debug, thiserror::Error)]
#[error("invalid settings: {0}")]
pub struct SettingsError(#[from] config::ConfigError);

impl Settings {
    /// Reads the layers described in the module documentation from the process environment.
    pub fn load() -> Result<Self, SettingsError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::load_from(env)
    }

    /// Reads the layers from the given environment, so tests need not touch the process's.
    pub fn load_from(
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, SettingsError> {
        let env: std::collections::HashMap<String, String> = env.into_iter().collect();
        let dir = PathBuf::from(env.get("BAYES_CONFIG_DIR").map_or("config", String::as_str));
        let mut builder = config::Config::builder()
            .add_source(config::File::from(dir.join("default.toml")).required(false));
        if let Some(overlay) = env.get("BAYES_ENV") {
            builder = builder
                .add_source(config::File::from(dir.join(format!("{overlay}.toml"))).required(true));
        }
        let settings = builder
            .add_source(
                config::Environment::with_prefix(ENV_PREFIX)
                    .prefix_separator(ENV_SEPARATOR)
                    .separator(ENV_SEPARATOR)
                    .source(Some(env)),
            )
            .build()?
            .try_deserialize()?;
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_config_dir() -> String {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../config").to_owned()
    }

    #[test]
    fn default_toml_says_exactly_what_the_code_defaults_are() {
        let from_file =
            Settings::load_from([("BAYES_CONFIG_DIR".to_owned(), repo_config_dir())]).unwrap();
        assert_eq!(from_file, Settings::default());
    }

    #[test]
    fn environment_variables_override_the_file() {
        let settings = Settings::load_from([
            ("BAYES_CONFIG_DIR".to_owned(), repo_config_dir()),
            ("BAYES__KAFKA__BROKERS".to_owned(), "kafka:29092".to_owned()),
            ("BAYES__PRODUCER__PORT".to_owned(), "9100".to_owned()),
            (
                "BAYES__KAFKA__LIBRDKAFKA__SOCKET_TIMEOUT_MS".to_owned(),
                "3000".to_owned(),
            ),
            ("BAYES__MODELS__DEFAULT_MODEL".to_owned(), "coin".to_owned()),
        ])
        .unwrap();
        assert_eq!(settings.kafka.brokers, "kafka:29092");
        assert_eq!(settings.producer.port, 9100);
        assert_eq!(settings.models.default_model.as_str(), "coin");
        let options: Vec<_> = settings.kafka.librdkafka_options().collect();
        assert_eq!(options, vec![("socket.timeout.ms".to_owned(), "3000")]);
    }

    #[test]
    fn an_invalid_value_is_an_error_not_a_default() {
        let err = Settings::load_from([
            ("BAYES_CONFIG_DIR".to_owned(), repo_config_dir()),
            (
                "BAYES__MODELS__DEFAULT_MODEL".to_owned(),
                "Not Valid".to_owned(),
            ),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("model id"), "{err}");
        let err = Settings::load_from([
            ("BAYES_CONFIG_DIR".to_owned(), repo_config_dir()),
            ("BAYES__PRODUCER__PORT".to_owned(), "eighty".to_owned()),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("port"), "{err}");
    }
}

/// Where the test suites find their services: `DATABASE_URL` (a server on
/// which tests may create databases; default the local Postgres) and
/// `KAFKA_BROKERS` (an external broker; when unset, tests start librdkafka's
/// mock cluster in-process).
#[derive(Debug, Clone)]
pub struct TestEnvironment {
    pub database_url: String,
    pub kafka_brokers: Option<String>,
    /// `UPDATE_OPENAPI` is set: the OpenAPI test rewrites `openapi.json`
    /// instead of comparing with it.
    pub update_openapi: bool,
}

impl TestEnvironment {
    pub fn from_env() -> Self {
        Self {
            database_url: std::env::var("DATABASE_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned()),
            kafka_brokers: std::env::var("KAFKA_BROKERS")
                .ok()
                .filter(|b| !b.is_empty()),
            update_openapi: std::env::var_os("UPDATE_OPENAPI").is_some(),
        }
    }
}
