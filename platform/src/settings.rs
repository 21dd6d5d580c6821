//! Typed settings for every service, read in layers with the `config` crate:
//!
//! 1. the defaults in this file (mirrored, with comments, in `config/default.toml`);
//! 2. `config/default.toml`, then `config/{BAYES_ENV}.toml` when `BAYES_ENV` is set
//!    (the folder is `BAYES_CONFIG_DIR`, default `config`); both optional;
//! 3. environment variables `BAYES__SECTION__KEY`, e.g. `BAYES__KAFKA__BROKERS`.
//!
//! Keys of `kafka.librdkafka` are librdkafka options passed through to every
//! Kafka client; in environment variables write `_` for `.`
//! (`BAYES__KAFKA__LIBRDKAFKA__SOCKET_TIMEOUT_MS=3000`). They are normalised
//! to librdkafka's spelling once, here (see `crate::kafka_options`), and an
//! environment variable wins over the files for its option, as for any setting.
//!
//! Any variable can name a file instead: `BAYES__DATABASE__URL_FILE=/run/secrets/db`
//! reads the setting from the file (see `crate::secret_files`), as compose
//! and Kubernetes mount secrets.
//!
//! This is the only module that reads the process environment.

use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};
use serde::Serializer;
use serde::{Deserialize, Serialize};

use crate::secret_files::SecretFileError;

// One module per section of `config/default.toml`, each with its struct, its
// defaults and its checks; the types are re-exported here, so callers name
// them `settings::KafkaSettings` whatever file holds them.
mod auth;
mod consumer;
mod database;
mod http;
mod kafka;
mod model_service;
mod models;
mod producer;
mod telemetry;

pub use auth::{AuthSettings, MIN_BOOTSTRAP_KEY_CHARS};
pub use consumer::{ConsumerSettings, OnOffsetGap};
pub use database::DatabaseSettings;
pub use http::HttpSettings;
pub use kafka::KafkaSettings;
pub use model_service::ModelServiceSettings;
pub use models::ModelDefaults;
pub use producer::{ProducerSettings, UploadSettings};
pub use telemetry::{LogFormat, TelemetrySettings};

/// The prefix of every environment variable that overrides a setting.
pub const ENV_PREFIX: &str = "BAYES";
/// Separates the sections of an environment variable's name.
pub const ENV_SEPARATOR: &str = "__";

/// All settings of all services; each service reads the sections it needs.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub telemetry: TelemetrySettings,
    pub models: ModelDefaults,
    pub kafka: KafkaSettings,
    pub database: DatabaseSettings,
    pub http: HttpSettings,
    pub producer: ProducerSettings,
    pub uploads: UploadSettings,
    pub consumer: ConsumerSettings,
    pub model_service: ModelServiceSettings,
    pub auth: AuthSettings,
}

/// Settings serialize only so that tests can compare whole sets of them
/// (every field, including the ones added later); secrets are written out
/// as they are, so never log or answer a serialized `Settings`.
fn expose_secret<S: Serializer>(secret: &SecretString, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(secret.expose_secret())
}

pub(crate) fn expose_optional_secret<S: Serializer>(
    secret: &Option<SecretString>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match secret {
        Some(secret) => serializer.serialize_some(secret.expose_secret()),
        None => serializer.serialize_none(),
    }
}

/// Why settings could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A layer could not be read, or a value does not have its setting's type.
    #[error("invalid settings: {0}")]
    Read(#[from] config::ConfigError),
    /// A `..._FILE` variable names a file that cannot be read, or its
    /// variable is set as well.
    #[error("invalid settings: {0}")]
    SecretFile(#[from] SecretFileError),
    /// A value has the right type but is out of its setting's range.
    #[error("invalid setting `{setting}`: {reason}")]
    Invalid {
        /// The setting's name as in `config/default.toml` (`section.key`).
        setting: &'static str,
        reason: String,
    },
}

/// Postgres truncates identifiers (a `LISTEN` channel) past this many bytes.
pub(crate) const MAX_PG_IDENTIFIER_BYTES: usize = 63;

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
        let mut env: std::collections::HashMap<String, String> = env.into_iter().collect();
        crate::secret_files::resolve(&mut env, ENV_PREFIX, ENV_SEPARATOR)?;
        // The pass-through options are read here rather than by the
        // `config` crate, which would keep `SESSION_TIMEOUT_MS` beside a
        // file's `session.timeout.ms` as two keys instead of overriding it.
        let librdkafka_prefix = [ENV_PREFIX, "KAFKA", "LIBRDKAFKA", ""].join(ENV_SEPARATOR);
        let librdkafka_keys: Vec<String> = env
            .keys()
            .filter(|k| k.to_ascii_uppercase().starts_with(&librdkafka_prefix))
            .cloned()
            .collect();
        let librdkafka_env: Vec<(String, String)> = librdkafka_keys
            .iter()
            .filter_map(|k| env.remove_entry(k))
            .map(|(k, value)| (k[librdkafka_prefix.len()..].to_owned(), value))
            .collect();
        let dir = PathBuf::from(env.get("BAYES_CONFIG_DIR").map_or("config", String::as_str));
        let mut builder = config::Config::builder()
            .add_source(config::File::from(dir.join("default.toml")).required(false));
        if let Some(overlay) = env.get("BAYES_ENV") {
            builder = builder
                .add_source(config::File::from(dir.join(format!("{overlay}.toml"))).required(true));
        }
        let mut settings = builder
            .add_source(
                config::Environment::with_prefix(ENV_PREFIX)
                    .prefix_separator(ENV_SEPARATOR)
                    .separator(ENV_SEPARATOR)
                    .source(Some(env)),
            )
            .build()?
            .try_deserialize::<Settings>()?;
        for (key, value) in librdkafka_env {
            settings.kafka.librdkafka.insert(&key, value);
        }
        settings.validate()?;
        Ok(settings)
    }

    /// Refuses values that have the right type but that no service can run
    /// with, naming the setting, so they stop the start-up instead of
    /// failing later inside a batch or a request.
    pub fn validate(&self) -> Result<(), SettingsError> {
        self.models.validate()?;
        self.kafka.validate()?;
        self.database.validate()?;
        self.http.validate()?;
        self.auth.validate()?;
        self.producer.validate()?;
        self.consumer.validate()?;
        self.uploads.validate()?;
        self.model_service.validate()
    }
}

/// `Err` naming `setting` with `reason` unless `ok`: every section's checks
/// are written with it, so every refusal reads the same.
pub(crate) fn check(
    setting: &'static str,
    ok: bool,
    reason: impl FnOnce() -> String,
) -> Result<(), SettingsError> {
    if ok {
        Ok(())
    } else {
        Err(SettingsError::Invalid {
            setting,
            reason: reason(),
        })
    }
}

/// Not empty, at most `max` bytes (identifiers) or characters (the rest:
/// only ASCII is allowed where the two differ).
pub(crate) fn check_text(
    setting: &'static str,
    value: &str,
    max: usize,
) -> Result<(), SettingsError> {
    check(setting, !value.trim().is_empty(), || "is empty".to_owned())?;
    check(setting, value.len() <= max, || {
        format!("is {} bytes long; the most is {max}", value.len())
    })
}

#[cfg(test)]
mod tests;
