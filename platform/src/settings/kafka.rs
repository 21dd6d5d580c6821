//! `[kafka]`: the cluster, the topics and the options passed through to
//! every Kafka client, with Kafka's own rules for them.

use serde::{Deserialize, Serialize};

use super::{check, check_text, SettingsError};
use crate::kafka_options::LibrdkafkaOptions;

/// Kafka refuses longer topic names.
const MAX_TOPIC_CHARS: usize = 249;

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

    pub(super) fn validate(&self) -> Result<(), SettingsError> {
        check_text("kafka.brokers", &self.brokers, usize::MAX)?;
        check_topic("kafka.topic", &self.topic)?;
        check_topic("kafka.dlq_topic", &self.dlq_topic)?;
        check("kafka.dlq_topic", self.dlq_topic != self.topic, || {
            "must differ from kafka.topic: dead letters would be read again".to_owned()
        })?;
        check("kafka.partitions", self.partitions >= 1, || {
            format!("{} is below 1", self.partitions)
        })?;
        check(
            "kafka.replication_factor",
            self.replication_factor >= 1,
            || format!("{} is below 1", self.replication_factor),
        )?;
        check(
            "kafka.min_insync_replicas",
            (1..=self.replication_factor).contains(&self.min_insync_replicas),
            || {
                format!(
                    "{} is not between 1 and kafka.replication_factor ({}): no write could be acknowledged",
                    self.min_insync_replicas, self.replication_factor
                )
            },
        )
    }
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
