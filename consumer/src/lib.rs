//! The consumer group: reads the `observations` topic and keeps every model's
//! posterior state in Postgres so that each acknowledged observation counts
//! exactly once, whatever crashes, restarts or rebalances happen.
//!
//! How one batch travels:
//! 1. `poll_loop` polls up to `batch_size` records, `batch_max_bytes`
//!    bytes or `batch_wait`;
//!    `batch` parses each with the domain's parser and folds the valid
//!    ones into per-model deltas;
//! 2. `batch_writer` produces the poison records to the dead-letter topic
//!    (`dlq`) and waits for the broker's acknowledgement;
//! 3. it writes deltas, history rows and the partition's new `next_offset`
//!    in one Postgres transaction whose offset write is a compare-and-set;
//!    when Postgres refuses it for what some records carry (an id applied
//!    with other content, a value it cannot store), `refusals` names those
//!    records, which are dead-lettered, and the rest is written;
//! 4. it commits the offset to Kafka too, only so that lag tools see it.
//!
//! Kafka's committed offsets are never read back: on assignment
//! (`rebalance`) the consumer resumes from `consumer_offsets` in Postgres.
//!
//! The Kafka client is polled on a dedicated thread (`bridge`), because
//! librdkafka runs rebalance callbacks inside `poll` and ours read offsets
//! from Postgres: that must not block a tokio worker.
//!
//! Modules depend on each other one way, from the top down:
//! `app` (start-up, tasks) over `pipeline` (the polling thread's work)
//! over `poll_loop` over `offset_gap` over `batch_writer` (with `refusals`) over `rebalance` over
//! `bridge` over `control` (stop switches, positions, and `stalls`: the
//! partitions that cannot progress) and `assignment` (the partitions asked
//! for and owned); `admin` and `metrics` read `control`; `batch`, `dlq`,
//! `kafka`, `halt` and `faults` are leaves or near them.

pub mod admin;
mod app;
mod assignment;
mod batch;
mod batch_writer;
mod bridge;
mod control;
mod dedup;
mod dlq;
mod error;
pub mod faults;
mod halt;
mod kafka;
mod membership;
pub mod metrics;
mod offset_gap;
mod pipeline;
mod poll_loop;
mod rebalance;
mod refusals;
mod stalls;

use std::future::Future;

use platform::retry::Verdict;
use platform::settings::Settings;
use platform::startup::{wait_for_database, WaitError};

pub use app::Consumer;
pub use assignment::Assignment;
pub use error::ConsumerError;
pub use faults::{Action, Checkpoint, FaultInjector, Stage};

/// Builds the consumer and runs it until `shutdown` completes; the thin
/// `main` calls this. It binds the admin port first; while Postgres is
/// unreachable or refuses the connection (certificates, login) at start-up
/// it keeps trying (with capped back-off) instead of exiting, and the admin
/// port answers the probes meanwhile (`/readyz`: 503 naming the error), so
/// the consumer can start before its database and says why it waits.
pub async fn run(
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ConsumerError> {
    tokio::pin!(shutdown);
    let listener = Consumer::bind_admin(&settings).await?;
    let (listener, opened) = wait_for_database(
        listener,
        "consumer",
        &settings.http,
        settings.consumer.retry_backoff_max,
        shutdown.as_mut(),
        || Consumer::open_database(&settings),
        |err: &ConsumerError| match err {
            err if err.is_transient() => Verdict::Transient,
            ConsumerError::Store(store) if store.is_refused() => Verdict::Stuck(
                "fix the certificates or the login in database.url (see docs/operations.md)",
            ),
            _ => Verdict::Permanent,
        },
    )
    .await;
    let listener = listener.map_err(|source| ConsumerError::Bind {
        addr: "the admin port".to_owned(),
        source,
    })?;
    match opened {
        Ok(db) => {
            let consumer = Consumer::assemble(settings, db, listener).await?;
            consumer.run_until(shutdown).await
        }
        // Asked to stop before we ever started: nothing to clean up.
        Err(WaitError::Stopped) => Ok(()),
        Err(WaitError::GaveUp(err)) => Err(err),
    }
}
