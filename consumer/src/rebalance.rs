//! Partition assignment: the consumer context whose rebalance callback reads
//! each assigned partition's `next_offset` from Postgres and assigns the
//! partition *at* that offset (the beginning when Postgres has none), so
//! Kafka's committed offsets are never used and no seek follows the assign.
//!
//! librdkafka runs this callback inside `poll`, on the consumer's own thread
//! (see [`crate::pipeline`]); it blocks on the store call there, never on a
//! tokio worker.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use platform::store::load_offset;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::KafkaResult;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use sea_orm::DatabaseConnection;
use tokio::runtime::Handle;

use crate::pipeline::{Control, INITIAL_BACKOFF};

/// A partition this consumer owns, as of its assignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Assigned {
    /// `next_offset` in Postgres when it was assigned.
    pub stored: Option<i64>,
    /// Changes with every assignment, so the polling loop can tell a
    /// partition that was revoked and assigned again from one it kept.
    pub epoch: u64,
}

/// The partitions owned right now. The rebalance callback writes it; the
/// polling loop compares `generation` (one atomic load a record) and re-reads
/// the map only when it changed.
#[derive(Debug, Default)]
pub(crate) struct Owned {
    generation: AtomicU64,
    partitions: Mutex<BTreeMap<i32, Assigned>>,
}

impl Owned {
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn snapshot(&self) -> BTreeMap<i32, Assigned> {
        self.partitions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn add(&self, stored: &[(i32, Option<i64>)]) {
        let mut partitions = self
            .partitions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let epoch = self.generation.load(Ordering::Acquire) + 1;
        for &(partition, stored) in stored {
            partitions.insert(partition, Assigned { stored, epoch });
        }
        self.generation.store(epoch, Ordering::Release);
    }

    fn remove(&self, gone: &[i32]) {
        let mut partitions = self
            .partitions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for partition in gone {
            partitions.remove(partition);
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    fn clear(&self) {
        let mut partitions = self
            .partitions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        partitions.clear();
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}

/// The consumer's librdkafka context.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub db: DatabaseConnection,
    pub rt: Handle,
    pub group_id: String,
    pub topic: String,
    pub max_backoff: Duration,
    pub control: Arc<Control>,
    pub owned: Owned,
    pub errors: crate::kafka::ErrorLog,
}

impl ClientContext for Ctx {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        crate::kafka::log_client_error(&self.errors, &error, reason);
    }
}

impl ConsumerContext for Ctx {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let partitions = self.ours(tpl);
                tracing::info!(?partitions, "partitions assigned");
                self.assign_at_stored_offsets(consumer, &partitions, cooperative);
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let partitions = self.ours(tpl);
                tracing::info!(
                    ?partitions,
                    lost = consumer.assignment_lost(),
                    "partitions revoked"
                );
                // The polling loop drops the unwritten records of these
                // partitions when it sees the new generation; the next owner
                // reads them again from the offset in Postgres.
                self.owned.remove(&partitions);
                self.control.forget_positions(&partitions);
                let result = if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                };
                if let Err(err) = result {
                    tracing::error!(error = %err, "cannot unassign revoked partitions");
                }
            }
            other => {
                tracing::error!(error = ?other, "rebalance failed; dropping the assignment");
                self.owned.clear();
                self.control.forget_all_positions();
                if let Err(err) = consumer.unassign() {
                    tracing::error!(error = %err, "cannot unassign");
                }
            }
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        // Kafka's offsets only feed lag tools; a failed commit costs nothing
        // but a stale lag figure, and the next batch commits again.
        if let Err(err) = result {
            tracing::debug!(error = %err, ?offsets, "offset commit to Kafka failed");
        }
    }
}

impl Ctx {
    /// The partitions of our topic in `tpl` (we subscribe to one topic).
    fn ours(&self, tpl: &TopicPartitionList) -> Vec<i32> {
        tpl.elements()
            .iter()
            .filter(|e| e.topic() == self.topic)
            .map(|e| e.partition())
            .collect()
    }

    /// Reads the partitions' stored offsets and assigns them there: all at
    /// once (`assign`) or added to the current set (`incremental_assign`, the
    /// cooperative protocol). Used by the rebalance callback and for a manual
    /// assignment. Postgres being down blocks here, retrying, until it
    /// answers or the consumer stops.
    pub fn assign_at_stored_offsets(
        &self,
        consumer: &BaseConsumer<Self>,
        partitions: &[i32],
        incremental: bool,
    ) {
        let Some(stored) = self.load_offsets(partitions) else {
            tracing::info!("stopping; leaving partitions unassigned");
            return;
        };
        let mut tpl = TopicPartitionList::with_capacity(stored.len());
        for &(partition, offset) in &stored {
            let offset = offset.map_or(Offset::Beginning, Offset::Offset);
            if let Err(err) = tpl.add_partition_offset(&self.topic, partition, offset) {
                tracing::error!(error = %err, partition, "invalid offset");
            }
        }
        // Registered before assigning, so the first record of a partition
        // always finds its position.
        self.owned.add(&stored);
        self.control.set_positions(&stored);
        let result = if incremental {
            consumer.incremental_assign(&tpl)
        } else {
            consumer.assign(&tpl)
        };
        match result {
            Ok(()) => tracing::info!(?stored, "resuming from the offsets stored in Postgres"),
            Err(err) => tracing::error!(error = %err, "cannot assign partitions"),
        }
    }

    /// Each partition's `next_offset`, retried with capped back-off while
    /// Postgres is unavailable; `None` once the consumer is stopping.
    fn load_offsets(&self, partitions: &[i32]) -> Option<Vec<(i32, Option<i64>)>> {
        let mut backoff = INITIAL_BACKOFF;
        loop {
            if self.control.stop_requested() {
                return None;
            }
            let loaded = self.control.block_on(&self.rt, async {
                let mut stored = Vec::with_capacity(partitions.len());
                for &partition in partitions {
                    let offset =
                        load_offset(&self.db, &self.group_id, &self.topic, partition).await?;
                    stored.push((partition, offset));
                }
                Ok::<_, platform::store::StoreError>(stored)
            });
            match loaded? {
                Ok(stored) => return Some(stored),
                Err(err) => {
                    tracing::warn!(error = %err, retry_in = ?backoff, "cannot read stored offsets; retrying");
                    if !self.control.sleep(&self.rt, backoff) {
                        return None;
                    }
                    backoff = (backoff * 2).min(self.max_backoff);
                }
            }
        }
    }
}
