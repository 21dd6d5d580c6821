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
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Serializer;
use serde::{Deserialize, Serialize};

use domain::model_id::ModelId;

mod auth;
pub use auth::{AuthSettings, MIN_BOOTSTRAP_KEY_CHARS};
mod database;
use crate::kafka_options::LibrdkafkaOptions;
use crate::secret_files::SecretFileError;

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

/// Logging.
#[derive(Debug, Clone, Deserialize, Serialize)]
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
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelDefaults {
    /// The model used when a record has neither key nor `model` field, and by `GET /posterior`.
    pub default_model: ModelId,
    /// Grid size of a model created by its first data (2..=100000).
    pub default_grid_size: u32,
    /// Whether data creates the model it names. Off: only `PUT /models/{id}`
    /// creates models; the producer answers 422 `unknown_model` for one it
    /// knows does not exist, and the consumer dead-letters every record of
    /// a model that does not exist with reason `unknown_model`.
    pub auto_create: bool,
    /// With `auto_create` off, how often the producer reloads the model ids
    /// it knows from Postgres in full, besides following every commit's
    /// notification on `database.notify_channel`.
    #[serde(with = "humantime_serde")]
    pub known_models_refresh: Duration,
}

impl Default for ModelDefaults {
    fn default() -> Self {
        Self {
            default_model: default_model_id(),
            default_grid_size: domain::bayes::DEFAULT_GRID_SIZE,
            auto_create: true,
            known_models_refresh: Duration::from_secs(30),
        }
    }
}

fn default_model_id() -> ModelId {
    ModelId::parse("globe").unwrap_or_else(|_| unreachable!("`globe` is a valid model id"))
}

/// The Kafka cluster and topics.
#[derive(Debug, Clone, Deserialize, Serialize)]
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
    /// `min.insync.replicas` of a topic created at start-up: how many
    /// replicas must have a record before the broker acknowledges it
    /// (`acks=all`). 1 for a single broker; 2 with a replication factor of 3,
    /// so one broker may fail without losing an acknowledged record or
    /// stopping writes. At most `replication_factor`.
    pub min_insync_replicas: i32,
    /// Extra librdkafka options for every Kafka client (`security.protocol`,
    /// `sasl.password`, ...), keys in librdkafka's spelling; secrets redacted
    /// in `Debug`.
    pub librdkafka: LibrdkafkaOptions,
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
            min_insync_replicas: 1,
            librdkafka: LibrdkafkaOptions::default(),
        }
    }
}

impl KafkaSettings {
    /// The pass-through options, keys in librdkafka's spelling.
    pub fn librdkafka_options(&self) -> impl Iterator<Item = (&str, &str)> {
        self.librdkafka.iter()
    }
}

/// Postgres.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// Connection URL (`postgres://user:password@host:port/database`); kept secret in logs.
    /// TLS goes in its query: `sslmode=verify-full&sslrootcert=CA&sslcert=CERT&sslkey=KEY`
    /// (files, checked when settings load: see `settings::database`).
    #[serde(serialize_with = "expose_secret")]
    pub url: SecretString,
    /// Connections in the pool.
    pub max_connections: u32,
    /// The channel (`LISTEN`/`NOTIFY`) on which every commit that changes
    /// models names them: the consumer and `PUT /models` notify, the model
    /// service's live feed listens.
    pub notify_channel: String,
    /// How long to wait for a connection (humantime: `5s`, `500ms`).
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: SecretString::from("postgres://postgres@127.0.0.1:5432/postgres"),
            max_connections: 10,
            notify_channel: "model_updates".into(),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// What the producer and the model service hold to on every HTTP
/// connection and request: the limits a client cannot outgrow, and which
/// requests from browsers they refuse.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    /// How long a client has to send a request's head (request line and
    /// headers) once the server waits for one: on a new connection and on
    /// an idle keep-alive connection between two requests alike, so this is
    /// also how long an idle connection stays open. Past it the connection
    /// is closed.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// How long a client has to send a whole request body on every route
    /// but `POST /uploads` (whose pace is `uploads.body_idle_timeout` and
    /// `uploads.min_bytes_per_second`). Past it: 408 `request_timeout`.
    #[serde(with = "humantime_serde")]
    pub body_timeout: Duration,
    /// How long an answer may wait for a client that reads none of it (a
    /// write to the connection that makes no progress at all); then the
    /// connection is closed. Any progress starts the time anew, so a slow
    /// reader is served; one that stopped reading is not held forever.
    #[serde(with = "humantime_serde")]
    pub write_stall_timeout: Duration,
    /// The most connections one service keeps open at once. A client that
    /// connects past it is answered 503 `too_many_connections` with
    /// `Retry-After` and the connection is closed. The process's soft
    /// open-file limit is raised to its hard limit at start, and a warning
    /// says so when this does not fit under it.
    pub max_connections: usize,
    /// Origins (`scheme://host[:port]`) whose pages may send requests that
    /// change state (`POST`, `PUT`, ..., and `GET /update_model/{outcome}`)
    /// from a browser. Every other cross-site browser request is refused
    /// with 403 `cross_origin_request`; requests without `Sec-Fetch-Site`
    /// and `Origin` (curl, scripts) are not browsers' and pass. A list, or
    /// one comma-separated string in an environment variable.
    #[serde(deserialize_with = "string_list")]
    pub trusted_origins: Vec<String>,
    /// The `Host` values served (`name` for any port, or `name:port`),
    /// case-insensitive; empty: any. Another host is refused with 421
    /// `misdirected_request`, except on `/healthz`, `/readyz` and
    /// `/metrics`, which probes and scrapers reach by address. A list, or
    /// one comma-separated string in an environment variable.
    #[serde(deserialize_with = "string_list")]
    pub allowed_hosts: Vec<String>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            write_stall_timeout: Duration::from_secs(30),
            max_connections: 4_096,
            trusted_origins: Vec::new(),
            allowed_hosts: Vec::new(),
        }
    }
}

/// A list setting: a list in a file, or one comma-separated string (which
/// is all an environment variable can hold); empty items are dropped.
fn string_list<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrText {
        List(Vec<String>),
        Text(String),
    }
    let items = match ListOrText::deserialize(deserializer)? {
        ListOrText::List(items) => items,
        ListOrText::Text(text) => text.split(',').map(str::to_owned).collect(),
    };
    Ok(items
        .into_iter()
        .map(|item| item.trim().to_owned())
        .filter(|item| !item.is_empty())
        .collect())
}

/// The producer's HTTP service.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProducerSettings {
    pub host: String,
    pub port: u16,
    /// The most observations one request may carry.
    pub max_batch: usize,
    /// The largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// How long to wait for the broker's acknowledgement before answering
    /// 503. Well beyond a cluster's failover (a dead node's partitions
    /// moved within 5 to 8 s on a loaded 2-core host, see
    /// docs/operations.md), so that a node's crash delays writes rather
    /// than refusing them.
    #[serde(with = "humantime_serde")]
    pub ack_timeout: Duration,
    /// `linger.ms`: how long librdkafka waits to fill a batch.
    #[serde(with = "humantime_serde")]
    pub linger: Duration,
    /// How long `/readyz` and the start-up topic creation wait for the broker.
    #[serde(with = "humantime_serde")]
    pub admin_timeout: Duration,
    /// The most `Idempotency-Key`s remembered, each bound to its request's
    /// observations for `consumer.dedup_retention`: a key sent again with
    /// other observations is refused with 409 while it is remembered.
    pub idempotency_keys: u64,
}

impl Default for ProducerSettings {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 8000,
            max_batch: 10_000,
            max_body_bytes: 1024 * 1024,
            ack_timeout: Duration::from_secs(15),
            linger: Duration::from_millis(1),
            admin_timeout: Duration::from_secs(2),
            idempotency_keys: 100_000,
        }
    }
}

/// The producer's bulk CSV uploads (`POST /uploads`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct UploadSettings {
    /// The largest upload, in bytes: applied to the body as sent and again
    /// to the CSV after gzip decoding, so a small compressed body cannot
    /// fill the disk (1 GiB by default).
    pub max_bytes: u64,
    /// Where a file is spooled while it is validated and then produced
    /// (empty: the system's temporary directory). It needs room for the
    /// decoded CSV of every upload in progress.
    pub spool_dir: PathBuf,
    /// The most invalid rows a 422 lists (the count covers all of them).
    pub max_errors: usize,
    /// The most records of one upload waiting for the broker's
    /// acknowledgement at once: bounds the memory an upload holds.
    pub max_in_flight: usize,
    /// How often a producing upload writes its progress (rows produced,
    /// offsets) to its row.
    #[serde(with = "humantime_serde")]
    pub progress_interval: Duration,
    /// The longest an upload's body may stay silent (no byte arrives while
    /// the producer waits for one) before the upload is cut off with 408
    /// `request_timeout`.
    #[serde(with = "humantime_serde")]
    pub body_idle_timeout: Duration,
    /// The slowest average pace an upload's body may arrive at, in bytes per
    /// second, counted over the time the producer waited for it (so a busy
    /// producer never counts against the client); slower: 408
    /// `request_timeout`. 0 turns the check off.
    pub min_bytes_per_second: u64,
    /// How long the producer waits for an upload's body before it judges
    /// the pace (`min_bytes_per_second`), so a slow start is not cut off.
    #[serde(with = "humantime_serde")]
    pub min_rate_grace: Duration,
}

impl Default for UploadSettings {
    fn default() -> Self {
        Self {
            max_bytes: 1024 * 1024 * 1024,
            spool_dir: PathBuf::new(),
            max_errors: 100,
            max_in_flight: 100_000,
            progress_interval: Duration::from_secs(1),
            body_idle_timeout: Duration::from_secs(30),
            min_bytes_per_second: 4_096,
            min_rate_grace: Duration::from_secs(10),
        }
    }
}

impl UploadSettings {
    /// The spool directory: `spool_dir`, or the system's temporary
    /// directory (`TMPDIR`) when it is empty.
    pub fn spool_dir(&self) -> PathBuf {
        if self.spool_dir.as_os_str().is_empty() {
            std::env::temp_dir()
        } else {
            self.spool_dir.clone()
        }
    }
}

/// The consumer group.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsumerSettings {
    /// Kafka consumer group id; also the key of the offsets kept in Postgres.
    pub group_id: String,
    /// The most records folded into one database transaction.
    pub batch_size: usize,
    /// The most bytes of record keys and values one batch holds: a batch is
    /// written as soon as it reaches this or `batch_size`, whichever comes
    /// first, so that large records (up to the broker's `message.max.bytes`
    /// each) cannot fill the memory. 16 MiB by default.
    pub batch_max_bytes: usize,
    /// The longest wait to fill a batch.
    #[serde(with = "humantime_serde")]
    pub batch_wait: Duration,
    /// Upper bound of the back-off while Postgres is unavailable.
    #[serde(with = "humantime_serde")]
    pub retry_backoff_max: Duration,
    /// Admin HTTP server (`/healthz`, `/readyz`, `/metrics`).
    pub admin_host: String,
    pub admin_port: u16,
    /// How often the consumer-lag gauges are refreshed from the broker's watermarks.
    #[serde(with = "humantime_serde")]
    pub lag_refresh: Duration,
    /// Static group membership (`group.instance.id`): a consumer restarted
    /// with the same id takes its partitions back at once, without a
    /// rebalance. `"auto"` derives it from the host name and the admin port
    /// (unique per process on a host, stable across its restarts; dynamic
    /// membership when the admin port is 0), `"none"` turns it off, anything
    /// else is the id itself.
    pub instance_id: String,
    /// How long the group coordinator waits for a silent member before it
    /// hands the member's partitions to the others (`session.timeout.ms`).
    #[serde(with = "humantime_serde")]
    pub session_timeout: Duration,
    /// How the group shares partitions (`partition.assignment.strategy`):
    /// `"range"`, `"roundrobin"` (eager: every rebalance stops every member)
    /// or `"cooperative-sticky"` (only the partitions that move stop).
    pub assignment_strategy: String,
    /// How long the ids of applied observations are remembered: a record
    /// whose `id` was applied within this time is a retry and is skipped.
    #[serde(with = "humantime_serde")]
    pub dedup_retention: Duration,
    /// What to do when a partition's stored offset lies outside the log (the
    /// topic was deleted and recreated, or retention deleted records never
    /// applied): `halt` holds the partition until a person decides;
    /// `earliest` or `latest` moves the stored offset to the log's start or
    /// end, says how many records that skips, and goes on.
    pub on_offset_gap: OnOffsetGap,
    /// How long records may wait while a partition's stored offset does not
    /// move before `/readyz` reports the partition stalled (`0s`: never).
    #[serde(with = "humantime_serde")]
    pub stall_timeout: Duration,
}

/// What the consumer does with an offset gap (see [`ConsumerSettings::on_offset_gap`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnOffsetGap {
    /// Hold the partition, skip nothing, report it (error log, metric, `/readyz`).
    #[default]
    Halt,
    /// Move the stored offset to the log's first record.
    Earliest,
    /// Move the stored offset to the log's end: only new records are read.
    Latest,
}

impl Default for ConsumerSettings {
    fn default() -> Self {
        Self {
            group_id: "bayes-consumer".into(),
            batch_size: 5_000,
            batch_max_bytes: 16 * 1024 * 1024,
            batch_wait: Duration::from_millis(50),
            retry_backoff_max: Duration::from_secs(5),
            admin_host: "127.0.0.1".into(),
            admin_port: 8002,
            lag_refresh: Duration::from_secs(5),
            instance_id: "auto".into(),
            session_timeout: Duration::from_secs(45),
            assignment_strategy: "range,roundrobin".into(),
            dedup_retention: Duration::from_secs(7 * 24 * 3600),
            on_offset_gap: OnOffsetGap::Halt,
            stall_timeout: Duration::from_secs(120),
        }
    }
}

/// The model service.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelServiceSettings {
    pub host: String,
    pub port: u16,
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
    /// The most `/events` streams open at once; past it a new stream is
    /// refused with 503 `too_many_streams` and `Retry-After`.
    pub max_event_streams: usize,
    /// The most `/events` streams one client holds at once (a client is an
    /// IPv4 address, or an IPv6 /64 network, as the service sees it: behind
    /// a proxy, the proxy); past it: 503 `too_many_streams`.
    pub max_event_streams_per_client: usize,
    /// The most changes of one model's prior or grid size within any hour
    /// (`PUT /models/{id}` past it answers 429 with `Retry-After`); creating
    /// a model is not a change, and a PUT that changes nothing is not
    /// counted. Counted in Postgres, so it holds across replicas. 0: no bound.
    pub max_config_changes_per_hour: u32,
}

impl Default for ModelServiceSettings {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 8001,
            plot_cache_entries: 256,
            max_samples: 100_000,
            max_trials: 1_000,
            max_plot_width: 4_000,
            max_plot_height: 4_000,
            max_body_bytes: 4 * 1024 * 1024,
            max_event_streams: 1_024,
            max_event_streams_per_client: 16,
            max_config_changes_per_hour: 10,
        }
    }
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
/// `consumer_offsets.group_id` and `.topic` are `VARCHAR(255)`.
const MAX_GROUP_ID_CHARS: usize = 255;
/// Kafka refuses longer topic names.
const MAX_TOPIC_CHARS: usize = 249;

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
        let grid = self.models.default_grid_size;
        check(
            "models.default_grid_size",
            (domain::bayes::MIN_GRID_SIZE..=domain::bayes::MAX_GRID_SIZE).contains(&grid),
            || {
                format!(
                    "{grid} is not in {}..={}",
                    domain::bayes::MIN_GRID_SIZE,
                    domain::bayes::MAX_GRID_SIZE
                )
            },
        )?;
        check_text("kafka.brokers", &self.kafka.brokers, usize::MAX)?;
        check_topic("kafka.topic", &self.kafka.topic)?;
        check_topic("kafka.dlq_topic", &self.kafka.dlq_topic)?;
        check(
            "kafka.dlq_topic",
            self.kafka.dlq_topic != self.kafka.topic,
            || "must differ from kafka.topic: dead letters would be read again".to_owned(),
        )?;
        check("kafka.partitions", self.kafka.partitions >= 1, || {
            format!("{} is below 1", self.kafka.partitions)
        })?;
        check(
            "kafka.replication_factor",
            self.kafka.replication_factor >= 1,
            || format!("{} is below 1", self.kafka.replication_factor),
        )?;
        database::check_url(self.database.url.expose_secret()).map_err(|reason| {
            SettingsError::Invalid {
                setting: "database.url",
                reason,
            }
        })?;
        check(
            "kafka.min_insync_replicas",
            (1..=self.kafka.replication_factor).contains(&self.kafka.min_insync_replicas),
            || {
                format!(
                    "{} is not between 1 and kafka.replication_factor ({}): no write could be acknowledged",
                    self.kafka.min_insync_replicas, self.kafka.replication_factor
                )
            },
        )?;
        check(
            "database.max_connections",
            self.database.max_connections >= 1,
            || "0 connections can run no query".to_owned(),
        )?;
        let channel = &self.database.notify_channel;
        check_text("database.notify_channel", channel, MAX_PG_IDENTIFIER_BYTES)?;
        check("database.notify_channel", !channel.contains('\0'), || {
            "contains a NUL byte".to_owned()
        })?;
        self.validate_http()?;
        self.auth.validate()?;
        check(
            "models.known_models_refresh",
            !self.models.known_models_refresh.is_zero(),
            || "0s would ask Postgres in a busy loop".to_owned(),
        )?;
        check("producer.max_batch", self.producer.max_batch >= 1, || {
            "0 would refuse every request".to_owned()
        })?;
        check_text(
            "consumer.group_id",
            &self.consumer.group_id,
            MAX_GROUP_ID_CHARS,
        )?;
        check("consumer.batch_size", self.consumer.batch_size >= 1, || {
            "0 would never write a batch".to_owned()
        })?;
        check(
            "consumer.lag_refresh",
            !self.consumer.lag_refresh.is_zero(),
            || "0s would ask the broker in a busy loop".to_owned(),
        )?;
        check(
            "uploads.body_idle_timeout",
            !self.uploads.body_idle_timeout.is_zero(),
            || "0s would cut off every upload".to_owned(),
        )?;
        check(
            "model_service.max_event_streams",
            self.model_service.max_event_streams >= 1,
            || "0 would refuse every /events stream".to_owned(),
        )?;
        check(
            "model_service.max_event_streams_per_client",
            self.model_service.max_event_streams_per_client >= 1,
            || "0 would refuse every /events stream".to_owned(),
        )?;
        Ok(())
    }

    fn validate_http(&self) -> Result<(), SettingsError> {
        let http = &self.http;
        check(
            "http.header_read_timeout",
            !http.header_read_timeout.is_zero(),
            || "0s would close every connection before its first request".to_owned(),
        )?;
        check("http.body_timeout", !http.body_timeout.is_zero(), || {
            "0s would refuse every request body".to_owned()
        })?;
        check(
            "http.write_stall_timeout",
            !http.write_stall_timeout.is_zero(),
            || "0s would close every connection that answers".to_owned(),
        )?;
        check("http.max_connections", http.max_connections >= 1, || {
            "0 would refuse every connection".to_owned()
        })?;
        for origin in &http.trusted_origins {
            check("http.trusted_origins", is_origin(origin), || {
                format!("{origin:?} is not an origin: write scheme://host[:port], without a path")
            })?;
        }
        for host in &http.allowed_hosts {
            check("http.allowed_hosts", is_host(host), || {
                format!("{host:?} is not a host: write name or name:port")
            })?;
        }
        Ok(())
    }
}

/// `scheme://host[:port]` and nothing more, as a browser's `Origin` header
/// spells it.
fn is_origin(origin: &str) -> bool {
    let Ok(uri) = origin.parse::<axum::http::Uri>() else {
        return false;
    };
    match (uri.scheme_str(), uri.authority()) {
        // Rebuilt from its parts, it must read the same: no path, query,
        // user or trailing slash was there.
        (Some(scheme), Some(authority)) => {
            !authority.as_str().contains('@')
                && format!("{scheme}://{authority}").eq_ignore_ascii_case(origin)
        }
        _ => false,
    }
}

/// `name` or `name:port`, as a `Host` header spells it.
fn is_host(host: &str) -> bool {
    host.parse::<axum::http::uri::Authority>()
        .is_ok_and(|a| !a.as_str().contains('@'))
}

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

/// Kafka's rule for topic names: 1 to 249 of `[a-zA-Z0-9._-]`.
fn check_topic(setting: &'static str, topic: &str) -> Result<(), SettingsError> {
    check_text(setting, topic, MAX_TOPIC_CHARS)?;
    check(
        setting,
        topic
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')),
        || {
            format!("{topic:?} has characters Kafka does not allow in a topic name (only a-z, A-Z, 0-9, `.`, `_`, `-`)")
        },
    )?;
    check(setting, topic != "." && topic != "..", || {
        format!("{topic:?} is not a topic name Kafka allows")
    })
}

#[cfg(test)]
mod tests;
