//! The consumer group: reads the `observations` topic and keeps every model's
//! posterior state in Postgres so that each acknowledged observation counts
//! exactly once, whatever crashes, restarts or rebalances happen (DESIGN.md 6).
//!
//! How one batch travels (see [`pipeline`]):
//! 1. poll up to `batch_size` records or `batch_wait`, parse each with the
//!    shared parser and fold the valid ones into per-model deltas;
//! 2. produce the poison records to the dead-letter topic and wait for the
//!    broker's acknowledgement;
//! 3. write deltas, history rows and the partition's new `next_offset` in one
//!    Postgres transaction whose offset write is a compare-and-set;
//! 4. commit the offset to Kafka too, only so that lag tools see it.
//!
//! Kafka's committed offsets are never read back: on assignment the consumer
//! resumes from `consumer_offsets` in Postgres.
//!
//! The Kafka client is polled on a dedicated thread, because librdkafka runs
//! rebalance callbacks inside `poll` and ours read offsets from Postgres: that
//! must not block a tokio worker.

pub mod admin;
mod app;
mod batch;
mod dlq;
pub mod faults;
mod kafka;
pub mod metrics;
mod pipeline;
mod rebalance;

use std::future::Future;
use std::time::Duration;

pub use app::{Assignment, Consumer, ConsumerError};
pub use faults::{Action, Checkpoint, FaultInjector, Stage};
pub use platform::shutdown::shutdown_signal;

use platform::settings::Settings;

/// Builds the consumer and runs it until `shutdown` completes; the thin
/// `main` calls this. When Postgres is unreachable at start-up it keeps
/// trying (with capped back-off) instead of exiting, so the consumer can
/// start before its database.
pub async fn run(
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ConsumerError> {
    tokio::pin!(shutdown);
    let max_backoff = settings
        .consumer
        .retry_backoff_max
        .max(Duration::from_millis(1));
    let mut backoff = pipeline::INITIAL_BACKOFF;
    let consumer = loop {
        match Consumer::build(settings.clone()).await {
            Ok(consumer) => break consumer,
            Err(err) if err.is_transient() => {
                tracing::warn!(error = %err, retry_in = ?backoff, "consumer start-up failed; retrying");
                tokio::select! {
                    // Asked to stop before we ever started: nothing to clean up.
                    () = &mut shutdown => return Ok(()),
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(max_backoff);
            }
            Err(err) => return Err(err),
        }
    };
    consumer.run_until(shutdown).await
}
