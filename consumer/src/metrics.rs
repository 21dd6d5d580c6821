//! The consumer's Prometheus metrics (served on the admin port's `/metrics`)
//! and the task that keeps the consumer-lag gauges fresh.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::producer::Producer;

use crate::control::Control;
use crate::kafka::DlqProducer;

/// Records polled from the topic (valid and poison).
pub const RECORDS_CONSUMED: &str = "consumer_records_consumed_total";
/// Records whose batch committed in Postgres (valid and poison).
pub const RECORDS_APPLIED: &str = "consumer_records_applied_total";
/// Observations (trials) added to model states.
pub const OBSERVATIONS_APPLIED: &str = "consumer_observations_applied_total";
/// Records sent to the dead-letter topic and acknowledged.
pub const RECORDS_DEAD_LETTERED: &str = "consumer_records_dead_lettered_total";
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
/// Records between the partition's high watermark and the offset stored in
/// Postgres (gauge, labels `topic` and `partition`).
pub const LAG: &str = "consumer_lag_records";

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
        RECORDS_DEAD_LETTERED,
        "Poison records acknowledged by the dead-letter topic."
    );
    describe_counter!(
        BATCHES,
        "Batches committed in Postgres, one transaction each."
    );
    describe_counter!(
        FATAL_ERRORS,
        "Fatal Kafka client errors after which the client was replaced by a new one."
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
}

/// Refreshes the lag gauges every `every` until the consumer stops. The
/// watermarks come from the broker through the dead-letter producer's
/// client, so the polling thread never waits on them.
pub(crate) async fn report_lag(
    producer: Arc<DlqProducer>,
    control: Arc<Control>,
    topic: String,
    every: Duration,
) {
    let mut ticks = tokio::time::interval(every.max(Duration::from_millis(10)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            // Stop refreshing when the consumer stops.
            () = control.stopping() => return,
            _ = ticks.tick() => {}
        }
        let positions = control.positions();
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
                    Some((partition, high - stored.unwrap_or(low).max(low)))
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        for (partition, lag) in lags {
            metrics::gauge!(LAG, "topic" => topic.clone(), "partition" => partition.to_string())
                .set(lag.max(0) as f64);
        }
    }
}
