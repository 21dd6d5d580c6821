//! The polling loop: poll records into per-partition batches and hand each
//! full or due batch to the [`BatchWriter`], partition by partition.
//!
//! Batches hold up to `batch_size` records or `batch_max_bytes` bytes of
//! keys and values (records may be a megabyte each, and poison ones are
//! copied for the dead-letter topic), or wait at most `batch_wait` after
//! their first record. The loop waits for each write, so batches of a
//! partition commit strictly in order, and nothing after an unwritten batch
//! is written. Partitions revoked while a batch fills lose their unwritten
//! records; the next owner reads them again from the stored offset.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedHeaders, BorrowedMessage, Message};

use crate::assignment::Owned;
use crate::batch::PartitionBatch;
use crate::batch_writer::{BatchWriter, PartitionOffsets, PollingConsumer};
use crate::faults::{Checkpoint, Stage};
use crate::halt::Halt;
use crate::kafka::ErrorLog;
use crate::metrics::BATCH_LATENCY;
use crate::offset_gap::handle_gaps;

/// The longest `poll` while no batch is filling, so a stop request is seen quickly.
const IDLE_POLL: Duration = Duration::from_millis(100);

/// A partition the loop owns.
struct OwnedPartition {
    /// Which assignment of the partition this is (see [`Owned`]).
    epoch: u64,
    offsets: PartitionOffsets,
    batch: PartitionBatch,
}

/// The loop's state between polls.
pub(crate) struct PollLoop<'a> {
    writer: BatchWriter<'a>,
    default_model: domain::ModelId,
    batch_size: usize,
    batch_max_bytes: usize,
    batch_wait: Duration,
    partitions: BTreeMap<i32, OwnedPartition>,
    /// The [`Owned`] generation the partitions mirror.
    seen_generation: u64,
    /// Records in all partitions' batches.
    buffered: usize,
    /// Bytes of their keys and values.
    buffered_bytes: usize,
    /// When the filling batch got its first record.
    batch_started: Option<Instant>,
    errors: ErrorLog,
}

impl<'a> PollLoop<'a> {
    pub fn new(writer: BatchWriter<'a>) -> Self {
        let consumer_settings = &writer.settings.consumer;
        Self {
            default_model: writer.settings.models.default_model.clone(),
            batch_size: consumer_settings.batch_size.max(1),
            batch_max_bytes: consumer_settings.batch_max_bytes.max(1),
            batch_wait: consumer_settings.batch_wait,
            writer,
            partitions: BTreeMap::new(),
            seen_generation: 0,
            buffered: 0,
            buffered_bytes: 0,
            batch_started: None,
            errors: ErrorLog::default(),
        }
    }

    /// Polls and writes until a stop request (after writing what was
    /// polled), an abrupt stop, an injected crash or a fatal error.
    pub fn run(&mut self, consumer: &PollingConsumer) -> Result<(), Halt> {
        let control = self.writer.bridge.control();
        loop {
            if control.aborted() {
                return Err(Halt::Abort);
            }
            if control.stop_requested() {
                // Graceful: write what was polled, then leave.
                tracing::info!(records = self.buffered, "stopping: writing the last batch");
                return self.flush(consumer);
            }
            self.sync_assignment(&consumer.context().owned);
            match consumer.poll(self.poll_timeout()) {
                Some(Ok(message)) => self.accept(&consumer.context().owned, &message)?,
                Some(Err(err)) => self.kafka_error(consumer, err)?,
                None => {}
            }
            if self.batch_is_due() {
                self.flush(consumer)?;
            }
        }
    }

    /// Until the filling batch is due, at most [`IDLE_POLL`].
    fn poll_timeout(&self) -> Duration {
        match self.batch_started {
            None => IDLE_POLL,
            Some(started) => (started + self.batch_wait)
                .saturating_duration_since(Instant::now())
                .min(IDLE_POLL),
        }
    }

    fn batch_is_due(&self) -> bool {
        self.buffered >= self.batch_size
            || self.buffered_bytes >= self.batch_max_bytes
            || self
                .batch_started
                .is_some_and(|started| started.elapsed() >= self.batch_wait)
    }

    /// Mirrors the owned partitions after a rebalance: drops the unwritten
    /// records of revoked partitions and starts new ones at their stored offset.
    fn sync_assignment(&mut self, owned: &Owned) {
        let generation = owned.generation();
        if generation == self.seen_generation {
            return;
        }
        let owned = owned.snapshot();
        let (mut dropped, mut dropped_bytes) = (0, 0);
        self.partitions.retain(|partition, state| {
            let keep = owned
                .get(partition)
                .is_some_and(|assigned| assigned.epoch == state.epoch);
            if !keep && !state.batch.is_empty() {
                tracing::info!(
                    partition,
                    records = state.batch.records,
                    "partition revoked: dropping its unwritten records; its next owner reads them again"
                );
                dropped += state.batch.records;
                dropped_bytes += state.batch.bytes;
            }
            keep
        });
        for (partition, assigned) in owned {
            self.partitions
                .entry(partition)
                .or_insert_with(|| OwnedPartition {
                    epoch: assigned.epoch,
                    offsets: PartitionOffsets {
                        stored: assigned.stored,
                        position: assigned.stored,
                    },
                    batch: PartitionBatch::default(),
                });
        }
        self.buffered -= dropped;
        self.buffered_bytes -= dropped_bytes;
        if self.buffered == 0 {
            self.batch_started = None;
        }
        self.seen_generation = generation;
    }

    /// Adds a record to its partition's batch, unless it was seen already.
    fn accept(&mut self, owned: &Owned, message: &BorrowedMessage<'_>) -> Result<(), Halt> {
        // A rebalance runs inside `poll`, which then returns without a
        // record; checked again here all the same (one atomic load).
        self.sync_assignment(owned);
        let partition = message.partition();
        let Some(state) = self.partitions.get_mut(&partition) else {
            // Fetched before its partition was revoked.
            return Ok(());
        };
        let offset = message.offset();
        if state.offsets.position.is_some_and(|next| offset < next) {
            return Ok(());
        }
        state.offsets.position = Some(offset + 1);
        state.batch.push(
            offset,
            message.key(),
            message.payload(),
            &self.default_model,
            !self.writer.settings.models.auto_create,
            || message.headers().map(BorrowedHeaders::detach),
        );
        self.buffered += 1;
        self.buffered_bytes +=
            message.key().map_or(0, <[u8]>::len) + message.payload().map_or(0, <[u8]>::len);
        self.batch_started.get_or_insert_with(Instant::now);
        self.writer.checkpoints.inject(Checkpoint {
            stage: Stage::Polled,
            partition,
            first_offset: offset,
            next_offset: offset + 1,
            records: 1,
        })
    }

    fn kafka_error(&mut self, consumer: &PollingConsumer, err: KafkaError) -> Result<(), Halt> {
        if let KafkaError::MessageConsumptionFatal(_) = err {
            return Err(Halt::Fatal(err));
        }
        if let KafkaError::MessageConsumption(RDKafkaErrorCode::AutoOffsetReset) = err {
            tracing::debug!(error = %err, "a position is outside the log");
            // Written first, so each partition's position is its stored offset.
            self.flush(consumer)?;
            let partitions = self
                .partitions
                .iter_mut()
                .map(|(partition, state)| (*partition, &mut state.offsets))
                .collect();
            return handle_gaps(&self.writer, consumer, partitions);
        }
        // Broker outages surface here again and again while librdkafka
        // reconnects on its own; say each once in a while.
        let text = err.to_string();
        if self.errors.should_log(&text) {
            tracing::warn!(error = %text, "Kafka consumer error; librdkafka keeps retrying");
        }
        Ok(())
    }

    /// Writes every partition's share of the batch, in partition order.
    fn flush(&mut self, consumer: &PollingConsumer) -> Result<(), Halt> {
        let started = self.batch_started.take();
        self.buffered = 0;
        self.buffered_bytes = 0;
        for (&partition, state) in &mut self.partitions {
            if state.batch.is_empty() {
                continue;
            }
            let mut batch = std::mem::take(&mut state.batch);
            let result = self
                .writer
                .write(consumer, partition, &mut state.offsets, &mut batch);
            if let Some(started) = started {
                metrics::histogram!(BATCH_LATENCY).record(started.elapsed().as_secs_f64());
            }
            if let Err(halt) = result {
                if matches!(halt, Halt::Abandon) {
                    tracing::warn!(
                        partition,
                        records = batch.records,
                        "stopping with an unwritten batch; it will be read again on restart"
                    );
                }
                // Nothing after an unwritten batch may be written: that would
                // skip it.
                return Err(halt);
            }
        }
        Ok(())
    }
}
