//! The dead-letter topic: poison records go there with their original key,
//! value and headers, plus `error`, `source-topic`, `source-partition` and
//! `source-offset`.
//!
//! A batch's poison records are produced and acknowledged *before* the batch
//! commits in Postgres, so a crash can never lose one. The price: a crash (or
//! a lost partition) between the acknowledgement and the commit dead-letters
//! those records again when the batch is replayed. The DLQ is therefore
//! at-least-once; `source-partition` and `source-offset` identify duplicates.

use std::time::Duration;

use futures::future::join_all;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;

use crate::kafka::DlqProducer;

use crate::batch::Poison;

/// How long one send may wait for room in librdkafka's queue.
const QUEUE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a batch's poison records were not all acknowledged.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DlqError {
    #[error("{failed} of {total} dead-letter records were not acknowledged: {first}")]
    NotAcknowledged {
        failed: usize,
        total: usize,
        first: rdkafka::error::KafkaError,
    },
}

/// Produces poison records to the dead-letter topic.
pub(crate) struct DeadLetters<'a> {
    pub producer: &'a DlqProducer,
    pub dlq_topic: &'a str,
    pub source_topic: &'a str,
}

impl DeadLetters<'_> {
    /// Sends all of them and waits until the broker acknowledged every one.
    pub async fn send(&self, partition: i32, poison: &[Poison]) -> Result<(), DlqError> {
        let partition_text = partition.to_string();
        // A new client if the last one had a fatal error.
        let producer = self.producer.get();
        let sends = poison.iter().map(|p| {
            let offset_text = p.offset.to_string();
            let headers = p
                .headers
                .clone()
                .unwrap_or_else(|| OwnedHeaders::new_with_capacity(4))
                .insert(Header {
                    key: "error",
                    value: Some(p.error.as_str()),
                })
                .insert(Header {
                    key: "source-topic",
                    value: Some(self.source_topic),
                })
                .insert(Header {
                    key: "source-partition",
                    value: Some(partition_text.as_str()),
                })
                .insert(Header {
                    key: "source-offset",
                    value: Some(offset_text.as_str()),
                });
            let mut record: FutureRecord<'_, [u8], [u8]> =
                FutureRecord::to(self.dlq_topic).headers(headers);
            if let Some(key) = &p.key {
                record = record.key(key.as_slice());
            }
            if let Some(value) = &p.value {
                record = record.payload(value.as_slice());
            }
            producer.send(record, QUEUE_TIMEOUT)
        });
        let results = join_all(sends).await;
        let total = results.len();
        let mut failures = results.into_iter().filter_map(Result::err);
        match failures.next() {
            None => Ok(()),
            Some((first, _)) => Err(DlqError::NotAcknowledged {
                failed: 1 + failures.count(),
                total,
                first,
            }),
        }
    }
}
