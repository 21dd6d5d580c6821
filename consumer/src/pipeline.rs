//! The polling thread's work from start to end: create the Kafka consumer
//! (with the [`RebalanceContext`]), join the group or take a manual
//! assignment, run the [`PollLoop`], and close the consumer.
//!
//! [`Pipeline::run`] runs on the dedicated thread started through
//! [`crate::bridge`]; it never runs on a tokio worker.

use std::sync::Arc;

use platform::kafka_health::ClientHealth;
use platform::settings::Settings;
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use sea_orm::DatabaseConnection;

use crate::assignment::{Assignment, Owned};
use crate::batch_writer::{BatchWriter, PollingConsumer};
use crate::bridge::Bridge;
use crate::faults::{Checkpoint, FaultInjector};
use crate::halt::{Checkpoints, Halt};
use crate::kafka::{consumer_config, DlqProducer, ErrorLog};
use crate::membership::InstanceId;
use crate::poll_loop::PollLoop;
use crate::rebalance::RebalanceContext;

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

impl PipelineError {
    /// How the loop's halt ends the thread: a batch abandoned on a stop
    /// request is a normal end.
    fn from_halt(halt: Halt) -> Result<(), Self> {
        match halt {
            Halt::Abandon => Ok(()),
            Halt::Abort => Err(PipelineError::Aborted),
            Halt::Crash(checkpoint) => Err(PipelineError::Crashed(checkpoint)),
            Halt::Fatal(err) => Err(PipelineError::Fatal(err)),
        }
    }
}

/// Everything the polling thread needs, moved onto it.
pub(crate) struct Pipeline {
    pub settings: Settings,
    /// `group.instance.id`, for static membership.
    pub instance: Option<InstanceId>,
    pub assignment: Assignment,
    pub faults: Option<Arc<dyn FaultInjector>>,
    pub db: DatabaseConnection,
    pub producer: Arc<DlqProducer>,
    pub bridge: Bridge,
    /// Shared with the dead-letter producer and `/readyz`.
    pub kafka_health: Arc<ClientHealth>,
}

impl Pipeline {
    /// Runs the loop until a stop request (then `Ok`), an injected crash or
    /// a fatal error. The Kafka consumer is created and closed (leaving the
    /// group) on this thread, because closing runs the rebalance callback.
    pub fn run(self) -> Result<(), PipelineError> {
        let consumer = self.create_consumer()?;
        self.take_partitions(&consumer)?;
        let control = self.bridge.control();
        control.set_running(true);
        let result = self.poll_loop().run(&consumer);
        control.set_running(false);
        // Dropping the consumer closes it: a dynamic member leaves the
        // group, so the partitions move to another member at once; a static
        // member keeps them until it comes back or its session times out. Offsets are never
        // auto-committed, so closing commits nothing.
        drop(consumer);
        tracing::info!("Kafka consumer closed");
        result.or_else(PipelineError::from_halt)
    }

    fn create_consumer(&self) -> Result<PollingConsumer, PipelineError> {
        let context = RebalanceContext {
            db: self.db.clone(),
            bridge: self.bridge.clone(),
            group_id: self.settings.consumer.group_id.clone(),
            topic: self.settings.kafka.topic.clone(),
            max_backoff: self.settings.consumer.retry_backoff_max,
            owned: Owned::default(),
            errors: ErrorLog::default(),
            health: self.kafka_health.clone(),
        };
        consumer_config(&self.settings, self.instance.as_ref())
            .create_with_context(context)
            .map_err(PipelineError::Create)
    }

    /// Joins the group, or assigns the manual partitions at their stored offsets.
    fn take_partitions(&self, consumer: &PollingConsumer) -> Result<(), PipelineError> {
        match &self.assignment {
            Assignment::Subscribe => consumer
                .subscribe(&[self.settings.kafka.topic.as_str()])
                .map_err(PipelineError::Subscribe),
            Assignment::Manual(partitions) => {
                consumer
                    .context()
                    .assign_at_stored_offsets(consumer, partitions, false);
                Ok(())
            }
        }
    }

    fn poll_loop(&self) -> PollLoop<'_> {
        PollLoop::new(BatchWriter {
            settings: &self.settings,
            db: &self.db,
            producer: &self.producer,
            bridge: &self.bridge,
            checkpoints: Checkpoints {
                control: self.bridge.control(),
                faults: self.faults.as_deref(),
            },
        })
    }
}
