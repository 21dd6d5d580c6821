//! Partition assignment: the consumer context whose rebalance callback reads
//! each assigned partition's `next_offset` from Postgres and assigns the
//! partition *at* that offset (the beginning when Postgres has none), so
//! Kafka's committed offsets are never used and no seek follows the assign.
//!
//! librdkafka runs this callback inside `poll`, on the polling thread (see
//! [`crate::bridge`]); it blocks on the store call there, never on a tokio
//! worker.

use std::sync::Arc;
use std::time::Duration;

use platform::kafka_health::ClientHealth;
use platform::retry::Backoff;
use platform::store::load_offset;
use platform::store::StoreError;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use sea_orm::DatabaseConnection;

use crate::assignment::Owned;
use crate::bridge::{Bridge, INITIAL_BACKOFF};
use crate::kafka::{log_client_error, ErrorLog};

/// The polling thread's librdkafka context: rebalances and client errors.
#[derive(Debug)]
pub(crate) struct RebalanceContext {
    pub db: DatabaseConnection,
    pub bridge: Bridge,
    pub group_id: String,
    pub topic: String,
    pub max_backoff: Duration,
    /// The partitions owned now, read by the polling loop.
    pub owned: Owned,
    pub errors: ErrorLog,
    /// Refused credentials and failed handshakes, named by `/readyz`.
    pub health: Arc<ClientHealth>,
}

impl ClientContext for RebalanceContext {
    fn error(&self, error: KafkaError, reason: &str) {
        log_client_error(&self.health, "consumer", &self.errors, &error, reason);
    }
}

impl ConsumerContext for RebalanceContext {
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
                self.revoke(consumer, tpl, cooperative);
            }
            other => self.drop_assignment(consumer, other),
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

impl RebalanceContext {
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
        self.bridge.control().set_positions(&stored);
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

    fn revoke(&self, consumer: &BaseConsumer<Self>, tpl: &TopicPartitionList, cooperative: bool) {
        let partitions = self.ours(tpl);
        tracing::info!(
            ?partitions,
            lost = consumer.assignment_lost(),
            "partitions revoked"
        );
        // The polling loop drops the unwritten records of these partitions
        // when it sees the new generation; the next owner reads them again
        // from the offset in Postgres.
        self.owned.remove(&partitions);
        self.bridge.control().forget_positions(&partitions);
        let result = if cooperative {
            consumer.incremental_unassign(tpl)
        } else {
            consumer.unassign()
        };
        if let Err(err) = result {
            tracing::error!(error = %err, "cannot unassign revoked partitions");
        }
    }

    fn drop_assignment(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr) {
        tracing::error!(error = ?err, "rebalance failed; dropping the assignment");
        self.owned.clear();
        self.bridge.control().forget_all_positions();
        if let Err(err) = consumer.unassign() {
            tracing::error!(error = %err, "cannot unassign");
        }
    }

    /// Each partition's `next_offset`, retried with capped back-off while
    /// Postgres is unavailable; `None` once the consumer is stopping.
    fn load_offsets(&self, partitions: &[i32]) -> Option<Vec<(i32, Option<i64>)>> {
        if self.bridge.control().stop_requested() {
            return None;
        }
        let load_all = move || async move {
            let mut stored = Vec::with_capacity(partitions.len());
            for &partition in partitions {
                let offset = load_offset(&self.db, &self.group_id, &self.topic, partition).await?;
                stored.push((partition, offset));
            }
            Ok::<_, StoreError>(stored)
        };
        self.bridge
            .retry(
                &mut Backoff::new(INITIAL_BACKOFF, self.max_backoff),
                "cannot read stored offsets",
                load_all,
                |_| None,
                // Not counted in the retry metric, which counts batch writes.
                || {},
            )
            .ok()
    }
}
