//! One partition's share of a batch, from full to done: dead-letter its
//! poison records, write it to Postgres in one transaction (see
//! [`platform::store::apply_batch`]), commit its offset to Kafka.
//!
//! A batch that cannot be written stops the partition rather than being
//! skipped:
//!
//! - Postgres unavailable: back off (capped) and retry the same batch;
//! - stored data corrupt or a statement Postgres refuses: retried too, and
//!   the partition is registered as stalled (one error-level line, the
//!   gauge, `/readyz`), since only a person can repair it and skipping
//!   would lose data; the stall clears when the batch finally commits;
//! - offset conflict: another consumer moved the stored offset (or an earlier
//!   attempt whose reply was lost had committed): reload it, seek there, drop
//!   the batch.
//!
//! Only what a record carries is never a reason to stop: a record whose id
//! was applied with other content, that holds a value the database cannot
//! store, or (with `models.auto_create` off) that names a model that does
//! not exist, is dead-lettered with its reason and the rest of the batch
//! written (see [`crate::refusals`]).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use domain::ModelId;

use platform::retry::Backoff;
use platform::settings::Settings;
use platform::store::StoreError;
use platform::store::{apply_batch, load_offset, BatchWrite};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::util::Timeout;
use sea_orm::DatabaseConnection;

use crate::batch::{PartitionBatch, Poison};
use crate::bridge::{Bridge, INITIAL_BACKOFF};
use crate::dlq::{refused, DeadLetters, DlqError};
use crate::faults::{Checkpoint, Stage};
use crate::halt::{Checkpoints, Halt};
use crate::kafka::DlqProducer;
use crate::metrics::{
    BATCHES, BATCH_SIZE, DB_APPLY_LATENCY, DUPLICATES_SKIPPED, ID_CONFLICTS, OBSERVATIONS_APPLIED,
    OFFSET_CONFLICTS, RECORDS_APPLIED, RECORDS_CONSUMED, RECORDS_DEAD_LETTERED,
    RECORDS_UNKNOWN_MODEL, RECORDS_UNSTORABLE, RETRIES,
};
use crate::rebalance::RebalanceContext;
use crate::refusals::{self, Reasons};
use crate::stalls::{Stall, StallKind};

/// How long a seek after an offset conflict may take.
const SEEK_TIMEOUT: Duration = Duration::from_secs(10);

/// The polling thread's Kafka consumer.
pub(crate) type PollingConsumer = BaseConsumer<RebalanceContext>;

/// How a batch's transaction ended.
enum Written {
    /// With the identified observations skipped as already applied, and
    /// their trials.
    Committed {
        duplicates: u64,
        duplicate_trials: u64,
    },
    /// The stored offset was not the expected one: why, as Postgres said.
    Conflict(String),
    /// Nothing was written: Postgres refused these records of the batch
    /// (ids with their reasons), which go to the dead-letter topic before
    /// the rest is written again.
    Refused { reasons: Reasons, cause: Refusal },
    /// Nothing was written: these models of the batch do not exist and
    /// `models.auto_create` is off; all their records go to the dead-letter
    /// topic before the rest is written again.
    UnknownModels(HashSet<ModelId>),
}

/// Why Postgres refused some records of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// Their ids were applied before with other content.
    IdConflict,
    /// They carry a value the database cannot hold.
    Unstorable,
}

/// Where a partition stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PartitionOffsets {
    /// `next_offset` in Postgres as last read or written: the batch's
    /// compare-and-set value.
    pub stored: Option<i64>,
    /// The next offset to accept; records below it were written or are
    /// buffered already (a replay after a seek or a reassignment).
    pub position: Option<i64>,
}

/// Everything a batch's journey needs, borrowed from the pipeline.
pub(crate) struct BatchWriter<'a> {
    pub settings: &'a Settings,
    pub db: &'a DatabaseConnection,
    pub producer: &'a DlqProducer,
    pub bridge: &'a Bridge,
    pub checkpoints: Checkpoints<'a>,
}

impl BatchWriter<'_> {
    /// One partition's batch: dead-letter, write, commit to Kafka. On
    /// success (or a resolved conflict) `offsets` holds the stored offset.
    pub fn write(
        &self,
        consumer: &PollingConsumer,
        partition: i32,
        offsets: &mut PartitionOffsets,
        batch: &mut PartitionBatch,
    ) -> Result<(), Halt> {
        self.pass(Stage::Consumed, partition, batch)?;
        metrics::counter!(RECORDS_CONSUMED).increment(batch.records as u64);
        self.dead_letter(partition, batch, &batch.poison)?;
        self.pass(Stage::DeadLettered, partition, batch)?;
        let (duplicates, duplicate_trials) = loop {
            match self.apply(partition, offsets.stored, batch)? {
                Written::Committed {
                    duplicates,
                    duplicate_trials,
                } => break (duplicates, duplicate_trials),
                Written::Conflict(reason) => {
                    return self.resolve_conflict(consumer, partition, offsets, batch, &reason);
                }
                // Each round takes at least one record out, so this ends.
                Written::Refused { reasons, cause } => {
                    let refused = batch.refuse(reasons);
                    if refused.is_empty() {
                        continue;
                    }
                    let counter = match cause {
                        Refusal::IdConflict => ID_CONFLICTS,
                        Refusal::Unstorable => RECORDS_UNSTORABLE,
                    };
                    metrics::counter!(counter).increment(refused.len() as u64);
                    tracing::warn!(
                        partition,
                        records = refused.len(),
                        first_offset = refused[0].record.offset,
                        reason = %refused[0].error,
                        "the database refuses records of the batch; dead-lettering them and writing the rest"
                    );
                    self.dead_letter(partition, batch, &refused)?;
                    batch.poison.extend(refused);
                }
                // Each round takes a model out, or finds that it exists
                // (created meanwhile): this ends too.
                Written::UnknownModels(unknown) => {
                    let refused = batch.refuse_models(&unknown, refusals::unknown_model);
                    if refused.is_empty() {
                        continue;
                    }
                    metrics::counter!(RECORDS_UNKNOWN_MODEL).increment(refused.len() as u64);
                    tracing::warn!(
                        partition,
                        records = refused.len(),
                        models = unknown.len(),
                        first_offset = refused[0].record.offset,
                        reason = %refused[0].error,
                        "records of models that do not exist (models.auto_create is off); dead-lettering them and writing the rest"
                    );
                    self.dead_letter(partition, batch, &refused)?;
                    batch.poison.extend(refused);
                }
            }
        };
        offsets.stored = Some(batch.next_offset);
        self.applied(partition, batch, duplicates, duplicate_trials);
        self.pass(Stage::Applied, partition, batch)?;
        self.commit_to_kafka(consumer, partition, batch.next_offset);
        self.pass(Stage::KafkaCommitted, partition, batch)
    }

    fn pass(&self, stage: Stage, partition: i32, batch: &PartitionBatch) -> Result<(), Halt> {
        self.checkpoints.pass(Checkpoint {
            stage,
            partition,
            first_offset: batch.first_offset.unwrap_or(batch.next_offset),
            next_offset: batch.next_offset,
            records: batch.records,
        })
    }

    /// A fresh back-off for one call's retries.
    pub fn backoff(&self) -> Backoff {
        Backoff::new(INITIAL_BACKOFF, self.settings.consumer.retry_backoff_max)
    }

    /// Produces the poison records and waits for the broker's acks, retrying
    /// until they all are acknowledged. A refusal no retry cures (a record
    /// too large for the topic) is counted and stalls the partition (one
    /// error-level line, the gauge, `/readyz`) until the batch goes through.
    fn dead_letter(
        &self,
        partition: i32,
        batch: &PartitionBatch,
        poison: &[Poison],
    ) -> Result<(), Halt> {
        if poison.is_empty() {
            return Ok(());
        }
        let dead_letters = DeadLetters {
            producer: self.producer,
            dlq_topic: &self.settings.kafka.dlq_topic,
            source_topic: &self.settings.kafka.topic,
        };
        let dead_letters = &dead_letters;
        let stalls = &self.bridge.control().stalls;
        let stuck = |err: &DlqError| {
            let reason = refused(err)?;
            stalls.stall(
                partition,
                Stall {
                    kind: StallKind::DeadLetterRefused,
                    detail: format!("{err}; {reason}"),
                    first_offset: batch.first_offset,
                    next_offset: Some(batch.next_offset),
                },
            );
            Some(reason)
        };
        let sent = tracing::warn_span!("dead_letter", partition).in_scope(|| {
            self.bridge.retry(
                &mut self.backoff(),
                "dead-lettering failed; the batch waits",
                move || dead_letters.send(partition, poison),
                stuck,
                count_retry,
            )
        });
        sent?;
        metrics::counter!(RECORDS_DEAD_LETTERED).increment(poison.len() as u64);
        Ok(())
    }

    /// The Postgres transaction, retried until it commits or conflicts.
    fn apply(
        &self,
        partition: i32,
        expected: Option<i64>,
        batch: &PartitionBatch,
    ) -> Result<Written, Halt> {
        let deltas = batch.deltas();
        let write = &BatchWrite {
            group_id: &self.settings.consumer.group_id,
            topic: &self.settings.kafka.topic,
            partition,
            expected_next_offset: expected,
            next_offset: batch.next_offset,
            deltas: &deltas,
            identified: &batch.identified,
        };
        let (db, settings) = (self.db, self.settings);
        let models = &batch.models();
        let attempt = move || async move {
            let started = Instant::now();
            let result = apply_batch(
                db,
                write,
                &settings.models,
                &settings.database.notify_channel,
            )
            .await;
            match result {
                Ok(applied) => {
                    metrics::histogram!(DB_APPLY_LATENCY).record(started.elapsed().as_secs_f64());
                    Ok(Written::Committed {
                        duplicates: applied.duplicates,
                        duplicate_trials: applied.duplicate_trials,
                    })
                }
                // Not a failure to retry: the answer is to reload the offset.
                Err(StoreError::Conflict(reason)) => Ok(Written::Conflict(reason)),
                Err(StoreError::UnknownModels(_)) => Ok(Written::UnknownModels(
                    refusals::unknown_models(db, models).await?,
                )),
                Err(StoreError::IdConflict(_)) => Ok(Written::Refused {
                    reasons: refusals::id_conflicts(db, write.identified).await?,
                    cause: Refusal::IdConflict,
                }),
                Err(StoreError::Unstorable(err)) => {
                    let reasons = refusals::unstorable(
                        db,
                        write,
                        &settings.models,
                        &settings.database.notify_channel,
                    )
                    .await?;
                    if reasons.is_empty() {
                        // Not a record's value: held like any refusal.
                        return Err(StoreError::Unstorable(err));
                    }
                    Ok(Written::Refused {
                        reasons,
                        cause: Refusal::Unstorable,
                    })
                }
                Err(err) => Err(err),
            }
        };
        let stalls = &self.bridge.control().stalls;
        let stuck = |err: &StoreError| {
            let reason = stuck_write(err)?;
            stalls.stall(
                partition,
                Stall {
                    kind: StallKind::StoreError,
                    detail: format!("{err}; {reason}"),
                    first_offset: batch.first_offset,
                    next_offset: Some(batch.next_offset),
                },
            );
            Some(reason)
        };
        let written = tracing::warn_span!("write", partition).in_scope(|| {
            self.bridge.retry(
                &mut self.backoff(),
                "cannot write the batch",
                attempt,
                stuck,
                count_retry,
            )
        });
        Ok(written?)
    }

    /// Records a committed batch: the shared position and the metrics.
    /// `duplicates` were skipped by the store (their ids had been applied),
    /// on top of the batch's own repeats.
    fn applied(
        &self,
        partition: i32,
        batch: &PartitionBatch,
        duplicates: u64,
        duplicate_trials: u64,
    ) {
        let control = self.bridge.control();
        control.set_positions(&[(partition, Some(batch.next_offset))]);
        control.stalls.progressed(partition);
        metrics::counter!(BATCHES).increment(1);
        metrics::counter!(RECORDS_APPLIED).increment(batch.records as u64);
        metrics::counter!(OBSERVATIONS_APPLIED)
            .increment(batch.observations.saturating_sub(duplicate_trials));
        let skipped = batch.duplicates + duplicates;
        if skipped > 0 {
            metrics::counter!(DUPLICATES_SKIPPED).increment(skipped);
            tracing::debug!(
                partition,
                skipped,
                "skipped observations whose id was applied before"
            );
        }
        metrics::histogram!(BATCH_SIZE).record(batch.records as f64);
    }

    /// Kafka's copy of the offset, for lag tools only; never read back.
    fn commit_to_kafka(&self, consumer: &PollingConsumer, partition: i32, next_offset: i64) {
        let mut tpl = TopicPartitionList::with_capacity(1);
        let added = tpl.add_partition_offset(
            &self.settings.kafka.topic,
            partition,
            Offset::Offset(next_offset),
        );
        if let Err(err) = added.and_then(|()| consumer.commit(&tpl, CommitMode::Async)) {
            tracing::debug!(error = %err, partition, "cannot commit the offset to Kafka");
        }
    }

    /// The stored offset moved under us: reload it, continue from there.
    fn resolve_conflict(
        &self,
        consumer: &PollingConsumer,
        partition: i32,
        offsets: &mut PartitionOffsets,
        batch: &PartitionBatch,
        reason: &str,
    ) -> Result<(), Halt> {
        metrics::counter!(OFFSET_CONFLICTS).increment(1);
        let stored = self.reload_offset(partition)?;
        let fetching_from = offsets.position;
        *offsets = PartitionOffsets {
            stored,
            position: stored,
        };
        self.bridge.control().set_positions(&[(partition, stored)]);
        if stored == Some(batch.next_offset) {
            // A retry after a lost reply: the first attempt had committed.
            tracing::info!(
                partition,
                next_offset = batch.next_offset,
                "the batch had already been committed"
            );
            // How many of its ids were repeats went with the lost reply.
            self.applied(partition, batch, 0, 0);
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
            self.seek_to_stored(consumer, partition, stored, fetching_from)?;
        }
        self.pass(Stage::Conflict, partition, batch)
    }

    /// The partition's `next_offset` in Postgres, retried until it answers.
    pub fn reload_offset(&self, partition: i32) -> Result<Option<i64>, Halt> {
        let settings = self.settings;
        let db = self.db;
        let loaded = tracing::warn_span!("reload_offset", partition).in_scope(|| {
            self.bridge.retry(
                &mut self.backoff(),
                "cannot reload the stored offset",
                move || {
                    load_offset(
                        db,
                        &settings.consumer.group_id,
                        &settings.kafka.topic,
                        partition,
                    )
                },
                |_| None,
                count_retry,
            )
        });
        Ok(loaded?)
    }

    /// Moves the fetch position to the stored offset. Failing to seek
    /// backwards is fatal: fetching on from where we are would skip the
    /// records in between; a restart resumes from Postgres instead.
    fn seek_to_stored(
        &self,
        consumer: &PollingConsumer,
        partition: i32,
        stored: Option<i64>,
        fetching_from: Option<i64>,
    ) -> Result<(), Halt> {
        let target = stored.map_or(Offset::Beginning, Offset::Offset);
        let Err(err) = consumer.seek(
            &self.settings.kafka.topic,
            partition,
            target,
            Timeout::After(SEEK_TIMEOUT),
        ) else {
            return Ok(());
        };
        let backwards = match (stored, fetching_from) {
            (Some(stored), Some(fetching)) => stored < fetching,
            (None, _) => true,
            (Some(_), None) => false,
        };
        if backwards {
            tracing::error!(error = %err, partition, "cannot seek back to the stored offset");
            return Err(Halt::Fatal(err));
        }
        // Forward: records below the stored offset are skipped anyway.
        tracing::warn!(error = %err, partition, "cannot seek to the stored offset; skipping up to it");
        Ok(())
    }
}

/// Corrupt stored data, or a statement Postgres refuses (a count past
/// BIGINT), is retried loudly: retrying will not help, but skipping would
/// lose data. Anything else (Postgres unavailable) is the same batch again,
/// never the next one.
fn stuck_write(err: &StoreError) -> Option<&'static str> {
    match err {
        StoreError::Corrupt(_) | StoreError::Rejected(_) | StoreError::Unstorable(_) => {
            Some("the stored data or the statement must be repaired first; holding the partition")
        }
        StoreError::Refused(_) => Some(
            "the database refuses the connection: fix the certificates or the login in database.url",
        ),
        _ => None,
    }
}

pub(crate) fn count_retry() {
    metrics::counter!(RETRIES).increment(1);
}
