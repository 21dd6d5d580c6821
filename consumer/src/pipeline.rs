//! The polling loop, on its own thread: poll, fold, dead-letter, write, commit.
//!
//! Batches hold up to `batch_size` records or wait at most `batch_wait`
//! after their first record. Each partition's share of a batch is written in
//! one Postgres transaction (see [`platform::store::apply_batch`]); the
//! loop waits for it, so batches of a partition commit strictly in order and
//! a batch that cannot be written stops the partition rather than being
//! skipped:
//!
//! - Postgres unavailable: back off (capped) and retry the same batch;
//! - offset conflict: another consumer moved the stored offset (or an earlier
//!   attempt whose reply was lost had committed): reload it, seek there, drop
//!   the batch;
//! - partitions revoked while a batch fills: their unwritten records are
//!   dropped; the next owner reads them again from the stored offset.
//!
//! The loop blocks on async calls through a runtime handle; it never runs on
//! a tokio worker.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use platform::settings::Settings;
use platform::store::{apply_batch, load_offset, BatchWrite, StoreError};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedHeaders, BorrowedMessage, Message};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::util::Timeout;
use rdkafka::ClientConfig;
use sea_orm::DatabaseConnection;
use tokio::runtime::Handle;
use tokio::sync::watch;

use crate::app::Assignment;
use crate::batch::PartitionBatch;
use crate::dlq::DeadLetters;
use crate::faults::{Action, Checkpoint, FaultInjector, Stage};
use crate::kafka::{DlqProducer, ErrorLog};
use crate::metrics as m;
use crate::rebalance::{Ctx, Owned};

/// The first back-off after a failure; it doubles up to `retry_backoff_max`.
pub(crate) const INITIAL_BACKOFF: Duration = Duration::from_millis(50);
/// The longest `poll` while no batch is filling, so a stop request is seen quickly.
const IDLE_POLL: Duration = Duration::from_millis(100);
/// How long a seek after an offset conflict may take.
const SEEK_TIMEOUT: Duration = Duration::from_secs(10);

const RUNNING: u8 = 0;
const STOPPING: u8 = 1;
const ABORTED: u8 = 2;

/// What the polling thread shares with the async side: stop requests, its
/// liveness, and each owned partition's stored offset (for the lag gauges).
#[derive(Debug)]
pub(crate) struct Control {
    level: AtomicU8,
    changed: watch::Sender<u8>,
    running: AtomicBool,
    positions: Mutex<BTreeMap<i32, Option<i64>>>,
}

impl Control {
    pub fn new() -> Self {
        Self {
            level: AtomicU8::new(RUNNING),
            changed: watch::Sender::new(RUNNING),
            running: AtomicBool::new(false),
            positions: Mutex::new(BTreeMap::new()),
        }
    }

    /// Graceful: finish the batch, commit, leave the group.
    pub fn request_stop(&self) {
        self.raise(STOPPING);
    }

    /// Abrupt, like a killed process: stop at the next step, write nothing more.
    pub fn abort(&self) {
        self.raise(ABORTED);
    }

    fn raise(&self, level: u8) {
        let now = self.level.fetch_max(level, Ordering::AcqRel).max(level);
        self.changed.send_replace(now);
    }

    pub fn stop_requested(&self) -> bool {
        self.level.load(Ordering::Acquire) >= STOPPING
    }

    pub fn aborted(&self) -> bool {
        self.level.load(Ordering::Acquire) >= ABORTED
    }

    /// Completes once a stop (graceful or not) was requested.
    pub async fn stopping(&self) {
        let mut level = self.changed.subscribe();
        // The sender lives as long as `self`, so this cannot fail.
        let _ = level.wait_for(|l| *l >= STOPPING).await;
    }

    /// Completes once an abrupt stop was requested.
    pub async fn aborting(&self) {
        let mut level = self.changed.subscribe();
        let _ = level.wait_for(|l| *l >= ABORTED).await;
    }

    /// Runs `future` on the calling (non-runtime) thread; `None` if the
    /// consumer is aborted first, so a hung broker or database cannot hold
    /// an abrupt stop.
    pub fn block_on<T>(
        &self,
        rt: &Handle,
        future: impl std::future::Future<Output = T>,
    ) -> Option<T> {
        rt.block_on(async {
            tokio::select! {
                value = future => Some(value),
                () = self.aborting() => None,
            }
        })
    }

    /// Sleeps on the calling (non-runtime) thread; `false` when cut short by a stop request.
    pub fn sleep(&self, rt: &Handle, duration: Duration) -> bool {
        if self.stop_requested() {
            return false;
        }
        rt.block_on(async {
            tokio::select! {
                () = tokio::time::sleep(duration) => true,
                () = self.stopping() => false,
            }
        })
    }

    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::Acquire)
    }

    fn set_running(&self, running: bool) {
        self.running.store(running, Ordering::Release);
    }

    pub fn positions(&self) -> Vec<(i32, Option<i64>)> {
        self.lock_positions()
            .iter()
            .map(|(p, o)| (*p, *o))
            .collect()
    }

    pub fn set_positions(&self, stored: &[(i32, Option<i64>)]) {
        self.lock_positions().extend(stored.iter().copied());
    }

    pub fn forget_positions(&self, partitions: &[i32]) {
        let mut positions = self.lock_positions();
        for p in partitions {
            positions.remove(p);
        }
    }

    pub fn forget_all_positions(&self) {
        self.lock_positions().clear();
    }

    fn lock_positions(&self) -> std::sync::MutexGuard<'_, BTreeMap<i32, Option<i64>>> {
        self.positions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Why the polling thread stopped other than on request.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PipelineError {
    #[error("cannot create the Kafka consumer: {0}")]
    Create(#[source] KafkaError),
    #[error("cannot subscribe to the topic: {0}")]
    Subscribe(#[source] KafkaError),
    #[error("fatal Kafka error: {0}")]
    Fatal(#[source] KafkaError),
    #[error("crashed on purpose at {0:?}")]
    Crashed(Checkpoint),
    #[error("aborted")]
    Aborted,
}

/// Why a batch's processing stopped half-way.
enum Halt {
    Crash(Checkpoint),
    Abort,
    /// A stop was requested while the batch could not be written: it is left
    /// unwritten (it will be read again) and the loop ends.
    Abandon,
    Fatal(KafkaError),
}

/// Everything the polling thread needs, moved onto it.
pub(crate) struct Pipeline {
    pub settings: Settings,
    pub assignment: Assignment,
    pub faults: Option<Arc<dyn FaultInjector>>,
    pub db: DatabaseConnection,
    pub producer: Arc<DlqProducer>,
    pub rt: Handle,
    pub control: Arc<Control>,
}

impl Pipeline {
    /// Runs the loop until a stop request (then `Ok`), an injected crash or
    /// a fatal error. The Kafka consumer is created and closed (leaving the
    /// group) on this thread, because closing runs the rebalance callback.
    pub fn run(self) -> Result<(), PipelineError> {
        let ctx = Ctx {
            db: self.db.clone(),
            rt: self.rt.clone(),
            group_id: self.settings.consumer.group_id.clone(),
            topic: self.settings.kafka.topic.clone(),
            max_backoff: max_backoff(&self.settings),
            control: self.control.clone(),
            owned: Owned::default(),
            errors: crate::kafka::ErrorLog::default(),
        };
        let config: ClientConfig = crate::kafka::consumer_config(&self.settings);
        let consumer: BaseConsumer<Ctx> = config
            .create_with_context(ctx)
            .map_err(PipelineError::Create)?;
        match &self.assignment {
            Assignment::Subscribe => consumer
                .subscribe(&[self.settings.kafka.topic.as_str()])
                .map_err(PipelineError::Subscribe)?,
            Assignment::Manual(partitions) => consumer
                .context()
                .assign_at_stored_offsets(&consumer, partitions, false),
        }
        self.control.set_running(true);
        let result = Loop::new(&self).run(&consumer);
        self.control.set_running(false);
        let result = match result {
            Ok(()) | Err(Halt::Abandon) => Ok(()),
            Err(Halt::Abort) => Err(PipelineError::Aborted),
            Err(Halt::Crash(checkpoint)) => Err(PipelineError::Crashed(checkpoint)),
            Err(Halt::Fatal(err)) => Err(PipelineError::Fatal(err)),
        };
        // Dropping the consumer closes it: it leaves the group, so the
        // partitions move to another member at once. Offsets are never
        // auto-committed, so closing commits nothing.
        drop(consumer);
        tracing::info!("Kafka consumer closed");
        result
    }
}

fn max_backoff(settings: &Settings) -> Duration {
    settings.consumer.retry_backoff_max.max(INITIAL_BACKOFF)
}

/// A partition the loop owns.
struct Part {
    epoch: u64,
    /// `next_offset` in Postgres as last read or written: the batch's
    /// compare-and-set value.
    stored: Option<i64>,
    /// The next offset to accept; records below it were written or are
    /// buffered already (a replay after a seek or a reassignment).
    position: Option<i64>,
    batch: PartitionBatch,
}

struct Loop<'a> {
    p: &'a Pipeline,
    default_model: domain::ModelId,
    batch_size: usize,
    batch_wait: Duration,
    max_backoff: Duration,
    parts: BTreeMap<i32, Part>,
    seen_generation: u64,
    buffered: usize,
    batch_started: Option<Instant>,
    errors: ErrorLog,
}

impl<'a> Loop<'a> {
    fn new(p: &'a Pipeline) -> Self {
        Self {
            p,
            default_model: p.settings.models.default_model.clone(),
            batch_size: p.settings.consumer.batch_size.max(1),
            batch_wait: p.settings.consumer.batch_wait,
            max_backoff: max_backoff(&p.settings),
            parts: BTreeMap::new(),
            seen_generation: 0,
            buffered: 0,
            batch_started: None,
            errors: ErrorLog::default(),
        }
    }

    fn run(&mut self, consumer: &BaseConsumer<Ctx>) -> Result<(), Halt> {
        let control = &self.p.control;
        loop {
            if control.aborted() {
                return Err(Halt::Abort);
            }
            if control.stop_requested() {
                // Graceful: write what was polled, then leave.
                tracing::info!(records = self.buffered, "stopping: writing the last batch");
                return self.flush(consumer);
            }
            self.sync_assignment(consumer.context());
            let timeout = match self.batch_started {
                None => IDLE_POLL,
                Some(started) => (started + self.batch_wait)
                    .saturating_duration_since(Instant::now())
                    .min(IDLE_POLL),
            };
            match consumer.poll(timeout) {
                Some(Ok(message)) => self.accept(consumer.context(), &message)?,
                Some(Err(err)) => self.kafka_error(err)?,
                None => {}
            }
            let due = self
                .batch_started
                .is_some_and(|started| started.elapsed() >= self.batch_wait);
            if self.buffered >= self.batch_size || due {
                self.flush(consumer)?;
            }
        }
    }

    /// Mirrors the owned partitions after a rebalance: drops the unwritten
    /// records of revoked partitions and starts new ones at their stored offset.
    fn sync_assignment(&mut self, ctx: &Ctx) {
        let generation = ctx.owned.generation();
        if generation == self.seen_generation {
            return;
        }
        let owned = ctx.owned.snapshot();
        let mut dropped = 0;
        self.parts.retain(|partition, part| {
            let keep = owned.get(partition).is_some_and(|a| a.epoch == part.epoch);
            if !keep && !part.batch.is_empty() {
                tracing::info!(
                    partition,
                    records = part.batch.records,
                    "partition revoked: dropping its unwritten records; its next owner reads them again"
                );
                dropped += part.batch.records;
            }
            keep
        });
        for (partition, assigned) in owned {
            self.parts.entry(partition).or_insert_with(|| Part {
                epoch: assigned.epoch,
                stored: assigned.stored,
                position: assigned.stored,
                batch: PartitionBatch::default(),
            });
        }
        self.buffered -= dropped;
        if self.buffered == 0 {
            self.batch_started = None;
        }
        self.seen_generation = generation;
    }

    fn accept(&mut self, ctx: &Ctx, message: &BorrowedMessage<'_>) -> Result<(), Halt> {
        // A rebalance runs inside `poll`, which then returns without a
        // record; checked again here all the same (one atomic load).
        self.sync_assignment(ctx);
        let partition = message.partition();
        let Some(part) = self.parts.get_mut(&partition) else {
            // Fetched before its partition was revoked.
            return Ok(());
        };
        let offset = message.offset();
        if part.position.is_some_and(|next| offset < next) {
            return Ok(());
        }
        part.position = Some(offset + 1);
        part.batch.push(
            offset,
            message.key(),
            message.payload(),
            &self.default_model,
            || message.headers().map(BorrowedHeaders::detach),
        );
        self.buffered += 1;
        self.batch_started.get_or_insert_with(Instant::now);
        if let Some(faults) = &self.p.faults {
            let checkpoint = Checkpoint {
                stage: Stage::Polled,
                partition,
                first_offset: offset,
                next_offset: offset + 1,
                records: 1,
            };
            if faults.at(&checkpoint) == Action::Crash {
                tracing::warn!(?checkpoint, "injected crash");
                return Err(Halt::Crash(checkpoint));
            }
        }
        Ok(())
    }

    fn kafka_error(&mut self, err: KafkaError) -> Result<(), Halt> {
        if let KafkaError::MessageConsumptionFatal(_) = err {
            return Err(Halt::Fatal(err));
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
    fn flush(&mut self, consumer: &BaseConsumer<Ctx>) -> Result<(), Halt> {
        let started = self.batch_started.take();
        self.buffered = 0;
        let partitions: Vec<i32> = self
            .parts
            .iter()
            .filter(|(_, part)| !part.batch.is_empty())
            .map(|(p, _)| *p)
            .collect();
        for partition in partitions {
            let Some(part) = self.parts.get_mut(&partition) else {
                continue;
            };
            let batch = std::mem::take(&mut part.batch);
            let expected = part.stored;
            let result = self.process(consumer, partition, expected, &batch);
            if let Some(started) = started {
                metrics::histogram!(m::BATCH_LATENCY).record(started.elapsed().as_secs_f64());
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

    fn checkpoint(&self, stage: Stage, partition: i32, batch: &PartitionBatch) -> Result<(), Halt> {
        if self.p.control.aborted() {
            return Err(Halt::Abort);
        }
        let Some(faults) = &self.p.faults else {
            return Ok(());
        };
        let checkpoint = Checkpoint {
            stage,
            partition,
            first_offset: batch.first_offset.unwrap_or(batch.next_offset),
            next_offset: batch.next_offset,
            records: batch.records,
        };
        match faults.at(&checkpoint) {
            Action::Continue => Ok(()),
            Action::Crash => {
                tracing::warn!(?checkpoint, "injected crash");
                Err(Halt::Crash(checkpoint))
            }
        }
    }

    /// Sleeps before a retry; a stop request ends the wait and the batch.
    fn back_off(&self, backoff: &mut Duration) -> Result<(), Halt> {
        metrics::counter!(m::RETRIES).increment(1);
        if !self.p.control.sleep(&self.p.rt, *backoff) {
            return Err(if self.p.control.aborted() {
                Halt::Abort
            } else {
                Halt::Abandon
            });
        }
        *backoff = (*backoff * 2).min(self.max_backoff);
        Ok(())
    }

    /// One partition's batch: dead-letter, write, commit to Kafka.
    fn process(
        &mut self,
        consumer: &BaseConsumer<Ctx>,
        partition: i32,
        expected: Option<i64>,
        batch: &PartitionBatch,
    ) -> Result<(), Halt> {
        let p = self.p;
        let records = batch.records as u64;
        self.checkpoint(Stage::Consumed, partition, batch)?;
        metrics::counter!(m::RECORDS_CONSUMED).increment(records);

        if !batch.poison.is_empty() {
            let dlq = DeadLetters {
                producer: &p.producer,
                dlq_topic: &p.settings.kafka.dlq_topic,
                source_topic: &p.settings.kafka.topic,
            };
            let mut backoff = INITIAL_BACKOFF;
            loop {
                if p.control.aborted() {
                    return Err(Halt::Abort);
                }
                match p
                    .control
                    .block_on(&p.rt, dlq.send(partition, &batch.poison))
                {
                    None => return Err(Halt::Abort),
                    Some(Ok(())) => break,
                    Some(Err(err)) => {
                        tracing::warn!(error = %err, partition, retry_in = ?backoff, "dead-lettering failed; retrying the batch");
                        self.back_off(&mut backoff)?;
                    }
                }
            }
            metrics::counter!(m::RECORDS_DEAD_LETTERED).increment(batch.poison.len() as u64);
        }
        self.checkpoint(Stage::DeadLettered, partition, batch)?;

        let deltas = batch.deltas();
        let write = BatchWrite {
            group_id: &p.settings.consumer.group_id,
            topic: &p.settings.kafka.topic,
            partition,
            expected_next_offset: expected,
            next_offset: batch.next_offset,
            deltas: &deltas,
        };
        let mut backoff = INITIAL_BACKOFF;
        loop {
            if p.control.aborted() {
                return Err(Halt::Abort);
            }
            let started = Instant::now();
            let result = p.control.block_on(
                &p.rt,
                apply_batch(
                    &p.db,
                    &write,
                    &p.settings.models,
                    &p.settings.consumer.notify_channel,
                ),
            );
            let Some(result) = result else {
                return Err(Halt::Abort);
            };
            match result {
                Ok(_applied) => {
                    metrics::histogram!(m::DB_APPLY_LATENCY)
                        .record(started.elapsed().as_secs_f64());
                    break;
                }
                Err(StoreError::Conflict(reason)) => {
                    return self.resolve_conflict(consumer, partition, batch, &reason);
                }
                Err(err @ (StoreError::Corrupt(_) | StoreError::Rejected(_))) => {
                    // Corrupt data, or a statement Postgres refuses (a count
                    // past BIGINT): retrying will not help, but skipping would
                    // lose data: hold the partition and say loudly that a
                    // person is needed.
                    tracing::error!(error = %err, partition, retry_in = ?backoff, "the batch cannot be written until the stored data is repaired; holding the partition");
                    self.back_off(&mut backoff)?;
                }
                Err(err) => {
                    // Unavailable: the same batch again, never the next one.
                    tracing::warn!(error = %err, partition, retry_in = ?backoff, "cannot write the batch; retrying");
                    self.back_off(&mut backoff)?;
                }
            }
        }
        self.applied(partition, batch);
        self.checkpoint(Stage::Applied, partition, batch)?;
        self.commit_to_kafka(consumer, partition, batch.next_offset);
        self.checkpoint(Stage::KafkaCommitted, partition, batch)
    }

    fn applied(&mut self, partition: i32, batch: &PartitionBatch) {
        if let Some(part) = self.parts.get_mut(&partition) {
            part.stored = Some(batch.next_offset);
        }
        self.p
            .control
            .set_positions(&[(partition, Some(batch.next_offset))]);
        metrics::counter!(m::BATCHES).increment(1);
        metrics::counter!(m::RECORDS_APPLIED).increment(batch.records as u64);
        metrics::counter!(m::OBSERVATIONS_APPLIED).increment(batch.observations);
        metrics::histogram!(m::BATCH_SIZE).record(batch.records as f64);
    }

    /// Kafka's copy of the offset, for lag tools only; never read back.
    fn commit_to_kafka(&self, consumer: &BaseConsumer<Ctx>, partition: i32, next_offset: i64) {
        let mut tpl = TopicPartitionList::with_capacity(1);
        let added = tpl.add_partition_offset(
            &self.p.settings.kafka.topic,
            partition,
            Offset::Offset(next_offset),
        );
        if let Err(err) = added.and_then(|()| consumer.commit(&tpl, CommitMode::Async)) {
            tracing::debug!(error = %err, partition, "cannot commit the offset to Kafka");
        }
    }

    /// The stored offset moved under us: reload it, continue from there.
    fn resolve_conflict(
        &mut self,
        consumer: &BaseConsumer<Ctx>,
        partition: i32,
        batch: &PartitionBatch,
        reason: &str,
    ) -> Result<(), Halt> {
        let p = self.p;
        metrics::counter!(m::OFFSET_CONFLICTS).increment(1);
        let mut backoff = INITIAL_BACKOFF;
        let stored = loop {
            if p.control.aborted() {
                return Err(Halt::Abort);
            }
            let loaded = p.control.block_on(
                &p.rt,
                load_offset(
                    &p.db,
                    &p.settings.consumer.group_id,
                    &p.settings.kafka.topic,
                    partition,
                ),
            );
            let Some(loaded) = loaded else {
                return Err(Halt::Abort);
            };
            match loaded {
                Ok(stored) => break stored,
                Err(err) => {
                    tracing::warn!(error = %err, partition, "cannot reload the stored offset; retrying");
                    self.back_off(&mut backoff)?;
                }
            }
        };
        let Some(part) = self.parts.get_mut(&partition) else {
            return Ok(());
        };
        let fetching_from = part.position;
        part.stored = stored;
        part.position = stored;
        p.control.set_positions(&[(partition, stored)]);
        if stored == Some(batch.next_offset) {
            // A retry after a lost reply: the first attempt had committed.
            tracing::info!(
                partition,
                next_offset = batch.next_offset,
                "the batch had already been committed"
            );
            self.applied(partition, batch);
            self.commit_to_kafka(consumer, partition, batch.next_offset);
        } else {
            tracing::warn!(
                partition,
                %reason,
                ?stored,
                "the stored offset moved: another consumer wrote this partition; continuing from Postgres"
            );
        }
        if stored != fetching_from {
            let target = stored.map_or(Offset::Beginning, Offset::Offset);
            if let Err(err) = consumer.seek(
                &p.settings.kafka.topic,
                partition,
                target,
                Timeout::After(SEEK_TIMEOUT),
            ) {
                let backwards = match (stored, fetching_from) {
                    (Some(s), Some(f)) => s < f,
                    (None, _) => true,
                    (Some(_), None) => false,
                };
                if backwards {
                    // Fetching on from where we are would skip the records
                    // between the stored offset and here: stop instead; a
                    // restart resumes from Postgres.
                    tracing::error!(error = %err, partition, "cannot seek back to the stored offset");
                    return Err(Halt::Fatal(err));
                }
                // Forward: records below the stored offset are skipped anyway.
                tracing::warn!(error = %err, partition, "cannot seek to the stored offset; skipping up to it");
            }
        }
        self.checkpoint(Stage::Conflict, partition, batch)
    }
}
