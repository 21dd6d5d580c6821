//! `[consumer]`: the consumer group, its batches and what it does when it
//! cannot go on.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{check, check_text, SettingsError};

/// `consumer_offsets.group_id` and `.topic` are `VARCHAR(255)`.
const MAX_GROUP_ID_CHARS: usize = 255;

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

impl ConsumerSettings {
    pub(super) fn validate(&self) -> Result<(), SettingsError> {
        check_text("consumer.group_id", &self.group_id, MAX_GROUP_ID_CHARS)?;
        check("consumer.batch_size", self.batch_size >= 1, || {
            "0 would never write a batch".to_owned()
        })?;
        check("consumer.lag_refresh", !self.lag_refresh.is_zero(), || {
            "0s would ask the broker in a busy loop".to_owned()
        })
    }
}
