//! `[producer]` and `[uploads]`: the producer's HTTP service and its bulk
//! CSV uploads.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{check, SettingsError};

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

impl ProducerSettings {
    pub(super) fn validate(&self) -> Result<(), SettingsError> {
        check("producer.max_batch", self.max_batch >= 1, || {
            "0 would refuse every request".to_owned()
        })
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

    pub(super) fn validate(&self) -> Result<(), SettingsError> {
        check(
            "uploads.body_idle_timeout",
            !self.body_idle_timeout.is_zero(),
            || "0s would cut off every upload".to_owned(),
        )
    }
}
