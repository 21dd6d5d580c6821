//! [`ConsumerError`]: why the consumer could not start or stopped abnormally.

use platform::store::StoreError;
use rdkafka::error::KafkaError;

use crate::faults::Checkpoint;
use crate::membership::InvalidInstanceId;
use crate::pipeline::PipelineError;

/// Why the consumer could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    #[error("database: {0}")]
    Store(#[from] StoreError),
    /// The database's state was built by another group or from another topic.
    #[error(
        "the database holds the state built by consumer group '{stored_group}' from topic \
         '{stored_topic}', but this consumer is group '{group}' on topic '{topic}'; reading \
         another log into those counts would mix or double them. To go on with that state, set \
         consumer.group_id = '{stored_group}' and kafka.topic = '{stored_topic}'. To rename the \
         group and keep the state, run in the database: UPDATE consumer_offsets SET group_id = \
         '{group}' WHERE group_id = '{stored_group}'; UPDATE consumer_source SET group_id = \
         '{group}'; To start over from the topic, point database.url at an empty database"
    )]
    ForeignState {
        stored_group: String,
        stored_topic: String,
        group: String,
        topic: String,
    },
    #[error("cannot create the Kafka client: {0}")]
    Kafka(#[source] KafkaError),
    #[error("cannot bind the admin server to {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    InstanceId(#[from] InvalidInstanceId),
    #[error("cannot start the polling thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error("the polling thread panicked")]
    Panicked,
    /// Stopped abruptly (the `run_until` future was dropped).
    #[error("aborted")]
    Aborted,
    #[error("cannot create the Kafka consumer: {0}")]
    KafkaConsumer(#[source] KafkaError),
    #[error("fatal Kafka error: {0}")]
    KafkaFatal(#[source] KafkaError),
    /// A [`FaultInjector`](crate::FaultInjector) asked for a crash at this checkpoint.
    #[error("crashed on purpose at {0:?}")]
    Crashed(Checkpoint),
}

impl ConsumerError {
    /// Failures worth retrying at start-up (the database is not up yet).
    pub fn is_transient(&self) -> bool {
        matches!(self, ConsumerError::Store(err) if err.is_transient())
    }
}

impl From<PipelineError> for ConsumerError {
    fn from(err: PipelineError) -> Self {
        match err {
            PipelineError::Create(e) | PipelineError::Subscribe(e) => {
                ConsumerError::KafkaConsumer(e)
            }
            PipelineError::Fatal(e) => ConsumerError::KafkaFatal(e),
            PipelineError::Crashed(checkpoint) => ConsumerError::Crashed(checkpoint),
            PipelineError::Aborted => ConsumerError::Aborted,
        }
    }
}
