//! Fault injection: the points of a batch's life at which tests stop the
//! consumer abruptly, to prove that a crash anywhere loses nothing and
//! doubles nothing. Production runs without an injector.

use std::fmt;

/// How far a batch of one partition got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// One record polled and buffered (checked per record, only when an
    /// injector is installed); its batch is still filling.
    Polled,
    /// The batch is full or due: polled and folded; nothing sent or written yet.
    Consumed,
    /// Poison records (if any) acknowledged by the dead-letter topic; the
    /// Postgres transaction has not run.
    DeadLettered,
    /// Committed in Postgres; the offset is not yet committed to Kafka.
    Applied,
    /// The offset commit was handed to Kafka too: the batch is done.
    KafkaCommitted,
    /// The transaction was rejected because the stored offset had moved
    /// (another consumer owns the partition, or a retried commit had in fact
    /// succeeded); the position was reloaded from Postgres.
    Conflict,
}

/// One batch of one partition at one stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub stage: Stage,
    pub partition: i32,
    /// Offset of the batch's first record.
    pub first_offset: i64,
    /// The offset after the batch's last record.
    pub next_offset: i64,
    /// Records in the batch, valid and poison.
    pub records: usize,
}

/// What the consumer does after a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Continue,
    /// Stop at once, like a killed process: no further write, no Kafka
    /// commit, no flush. `Consumer::run_until` returns `ConsumerError::Crashed`.
    Crash,
}

/// Called on the consumer's polling thread at every checkpoint. It may block
/// (a test can hold the consumer at a checkpoint), but then the consumer
/// neither polls nor writes meanwhile.
pub trait FaultInjector: Send + Sync + fmt::Debug {
    fn at(&self, checkpoint: &Checkpoint) -> Action;
}
