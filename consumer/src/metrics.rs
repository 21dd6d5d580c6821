//! The consumer's Prometheus metrics (served on the admin port's `/metrics`)
//! and the task that keeps the consumer-lag gauges fresh and notices
//! partitions whose records wait while their stored offset does not move.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::producer::Producer;

use crate::control::Control;
use crate::kafka::DlqProducer;
use crate::stalls::{Stall, StallKind};

pub use crate::stalls::STALLED_PARTITIONS;

/// Records polled from the topic (valid and poison).
pub const RECORDS_CONSUMED: &str = "consumer_records_consumed_total";
/// Records whose batch committed in Postgres (valid and poison).
pub const RECORDS_APPLIED: &str = "consumer_records_applied_total";
/// Observations (trials) added to model states.
pub const OBSERVATIONS_APPLIED: &str = "consumer_observations_applied_total";
/// Observations skipped because an observation with the same `id` had been
/// applied (a client's retry).
pub const DUPLICATES_SKIPPED: &str = "consumer_duplicates_skipped_total";
/// Records whose id had been applied with other content, dead-lettered
/// with reason `id conflict` (also counted in [`RECORDS_DEAD_LETTERED`]).
pub const ID_CONFLICTS: &str = "consumer_id_conflicts_total";
/// Records Postgres refused for a value they carry (a character the
/// database's encoding lacks), dead-lettered with its reason (also counted
/// in [`RECORDS_DEAD_LETTERED`]).
pub const RECORDS_UNSTORABLE: &str = "consumer_records_unstorable_total";
/// Records of models that do not exist while `models.auto_create` is off,
/// dead-lettered with reason `unknown_model` (also counted in
/// [`RECORDS_DEAD_LETTERED`]).
pub const RECORDS_UNKNOWN_MODEL: &str = "consumer_records_unknown_model_total";
/// Records sent to the dead-letter topic and acknowledged.
pub const RECORDS_DEAD_LETTERED: &str = "consumer_records_dead_lettered_total";
/// Dead-letter sends refused for good (a record too large for the topic, a
/// missing permission): each failed attempt, logged as an error and retried.
pub const DEAD_LETTERS_REFUSED: &str = "consumer_dead_letters_refused_total";
/// Batches committed in Postgres (one transaction each).
pub const BATCHES: &str = "consumer_batches_total";
/// Records per committed batch (histogram).
pub const BATCH_SIZE: &str = "consumer_batch_size_records";
/// From a batch's first record polled to its Kafka commit (histogram).
pub const BATCH_LATENCY: &str = "consumer_batch_latency_seconds";
/// The Postgres transaction alone (histogram).
pub const DB_APPLY_LATENCY: &str = "consumer_db_apply_seconds";
/// Failed attempts to write a batch or dead-letter its records, retried.
pub const RETRIES: &str = "consumer_retries_total";
/// Batches rejected because the stored offset had moved.
pub const OFFSET_CONFLICTS: &str = "consumer_offset_conflicts_total";
/// Fatal librdkafka errors of the dead-letter producer, after which it was
/// replaced by a new client (label `client="dlq"`; the name is shared with
/// the producer service).
pub const FATAL_ERRORS: &str = platform::kafka_producer::FATAL_ERRORS;
/// Client-level errors of the Kafka clients (labels `client`: `consumer`,
/// `dlq`; `kind`: `authentication`, `tls`, `other`); shared with the producer.
pub const CLIENT_ERRORS: &str = platform::kafka_health::CLIENT_ERRORS;
/// Records between the partition's high watermark and the offset stored in
/// Postgres (gauge, labels `topic` and `partition`).
pub const LAG: &str = "consumer_lag_records";
/// Stored offsets found outside the log (counter, labels `topic`,
/// `partition` and `side`: `below_start` or `beyond_end`).
pub const OFFSET_GAPS: &str = "consumer_offset_gaps_total";
/// Records skipped by moving a stored offset past them after an offset gap
/// (`consumer.on_offset_gap = "earliest"` or `"latest"`; counter, labels
/// `topic` and `partition`).
pub const OFFSET_GAP_RECORDS_SKIPPED: &str = "consumer_offset_gap_records_skipped_total";

/// Registers the help texts.
pub(crate) fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        RECORDS_CONSUMED,
        "Records polled from the topic, valid and poison."
    );
    describe_counter!(
        RECORDS_APPLIED,
        "Records whose batch committed in Postgres."
    );
    describe_counter!(
        OBSERVATIONS_APPLIED,
        "Observations (trials) added to model states."
    );
    describe_counter!(
        DUPLICATES_SKIPPED,
        "Observations skipped because their id had been applied (a client's retry)."
    );
    describe_counter!(
        ID_CONFLICTS,
        "Records whose id had been applied with other content, dead-lettered."
    );
    describe_counter!(
        RECORDS_UNSTORABLE,
        "Records Postgres refused for a value they carry, dead-lettered."
    );
    describe_counter!(
        RECORDS_UNKNOWN_MODEL,
        "Records of models that do not exist (models.auto_create off), dead-lettered."
    );
    describe_counter!(
        RECORDS_DEAD_LETTERED,
        "Poison records acknowledged by the dead-letter topic."
    );
    describe_counter!(
        DEAD_LETTERS_REFUSED,
        "Dead-letter sends the broker refused for good (record too large, no permission); the partition waits."
    );
    describe_counter!(
        BATCHES,
        "Batches committed in Postgres, one transaction each."
    );
    describe_counter!(
        FATAL_ERRORS,
        "Fatal Kafka client errors after which the client was replaced by a new one."
    );
    describe_counter!(
        CLIENT_ERRORS,
        "Kafka client errors by kind: authentication and tls need new settings; other ones librdkafka retries."
    );
    describe_histogram!(BATCH_SIZE, Unit::Count, "Records per committed batch.");
    describe_histogram!(
        BATCH_LATENCY,
        Unit::Seconds,
        "From a batch's first record to its commit."
    );
    describe_histogram!(
        DB_APPLY_LATENCY,
        Unit::Seconds,
        "The batch's Postgres transaction."
    );
    describe_counter!(
        RETRIES,
        "Failed batch writes or dead-letter sends, retried."
    );
    describe_counter!(
        OFFSET_CONFLICTS,
        "Batches rejected because the stored offset had moved."
    );
    describe_gauge!(
        LAG,
        Unit::Count,
        "High watermark minus the next offset stored in Postgres."
    );
    describe_counter!(
        OFFSET_GAPS,
        "Stored offsets found outside the log (topic recreated, retention passed)."
    );
    describe_counter!(
        OFFSET_GAP_RECORDS_SKIPPED,
        "Records skipped by moving a stored offset after an offset gap."
    );
    describe_gauge!(
        STALLED_PARTITIONS,
        Unit::Count,
        "Partitions that cannot make progress; /readyz names them."
    );
}

/// When each partition's stored offset last moved, to tell a partition
/// whose records wait in vain from one that is busy.
#[derive(Debug, Default)]
struct Progress {
    last: BTreeMap<i32, (Option<i64>, Instant)>,
}

impl Progress {
    /// Registers or clears the partition's no-progress stall.
    fn observe(
        &mut self,
        control: &Control,
        partition: i32,
        stored: Option<i64>,
        lag: i64,
        stall_timeout: Duration,
    ) {
        let now = Instant::now();
        let since = match self.last.get(&partition) {
            Some(&(seen, since)) if seen == stored && lag > 0 => since,
            _ => {
                self.last.insert(partition, (stored, now));
                now
            }
        };
        let stalls = &control.stalls;
        if lag > 0 && !stall_timeout.is_zero() && now.duration_since(since) >= stall_timeout {
            stalls.stall(
                partition,
                Stall {
                    kind: StallKind::NoProgress,
                    detail: format!(
                        "{lag} records wait but the stored offset has not moved for {}s",
                        now.duration_since(since).as_secs()
                    ),
                    first_offset: stored,
                    next_offset: stored.map(|stored| stored + lag),
                },
            );
        } else if stalls.is_stalled(partition, StallKind::NoProgress) && since == now {
            stalls.clear(partition, StallKind::NoProgress);
        }
    }

    /// Drops the partitions no longer owned.
    fn retain(&mut self, owned: &[(i32, Option<i64>)]) {
        self.last
            .retain(|partition, _| owned.iter().any(|(p, _)| p == partition));
    }
}

/// Refreshes the lag gauges every `every` until the consumer stops. The
/// watermarks come from the broker through the dead-letter producer's
/// client, so the polling thread never waits on them.
pub(crate) async fn report_lag(
    producer: Arc<DlqProducer>,
    control: Arc<Control>,
    topic: String,
    every: Duration,
    stall_timeout: Duration,
) {
    let mut progress = Progress::default();
    let mut ticks = tokio::time::interval(every.max(Duration::from_millis(10)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            // Stop refreshing when the consumer stops.
            () = control.stopping() => return,
            _ = ticks.tick() => {}
        }
        let positions = control.positions();
        progress.retain(&positions);
        if positions.is_empty() {
            continue;
        }
        let producer = producer.clone();
        let for_fetch = topic.clone();
        // `fetch_watermarks` blocks on the network.
        let lags = tokio::task::spawn_blocking(move || {
            let topic = for_fetch;
            positions
                .into_iter()
                .filter_map(|(partition, stored)| {
                    let (low, high) = producer
                        .get()
                        .client()
                        .fetch_watermarks(&topic, partition, Duration::from_secs(2))
                        .ok()?;
                    // No stored offset yet: we start from the beginning.
                    Some((partition, stored, high - stored.unwrap_or(low).max(low)))
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        for (partition, stored, lag) in lags {
            progress.observe(&control, partition, stored, lag, stall_timeout);
            metrics::gauge!(LAG, "topic" => topic.clone(), "partition" => partition.to_string())
                .set(lag.max(0) as f64);
        }
    }
}
