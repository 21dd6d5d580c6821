//! The Kafka side of the producer: the idempotent `FutureProducer` that writes
//! observations and waits for their acknowledgements (replaced by a new one
//! after a fatal librdkafka error, see `platform::kafka_producer`), the
//! readiness probe, and the best-effort topic creation at start-up.

use std::sync::Arc;
use std::time::Duration;

use domain::observation::Observation;
pub use platform::kafka::{client_config, ensure_topics};
use platform::kafka_health::{ClientHealth, ObservedContext};
use platform::kafka_producer::RebuildingProducer;
use platform::settings::{KafkaSettings, ProducerSettings};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::ClientConfig;
use tokio::time::Instant;

/// The Kafka header that carries the request's trace id on every record.
pub const TRACE_ID_HEADER: &str = "trace-id";

/// How long to wait before offering a record again when librdkafka's local
/// queue is full. Short, because the queue drains at broker speed.
pub(crate) const QUEUE_FULL_BACKOFF: Duration = Duration::from_millis(2);

/// A record of `topic` with the request's (or upload's) trace id in its
/// headers.
pub(crate) fn traced_record<'a>(
    topic: &'a str,
    key: &'a str,
    payload: &'a str,
    trace_id: &'a str,
) -> FutureRecord<'a, str, str> {
    let headers = OwnedHeaders::new_with_capacity(1).insert(Header {
        key: TRACE_ID_HEADER,
        value: Some(trace_id),
    });
    FutureRecord::to(topic)
        .key(key)
        .payload(payload)
        .headers(headers)
}

/// What a sender does while librdkafka's queue is full.
pub(crate) trait MakeRoom {
    type Error: From<KafkaError>;

    /// Waits until the queue may take a record again.
    async fn make_room(&mut self) -> Result<(), Self::Error>;
}

/// Waits a moment for the queue to drain.
struct Wait;

impl MakeRoom for Wait {
    type Error = PublishError;

    async fn make_room(&mut self) -> Result<(), PublishError> {
        tokio::time::sleep(QUEUE_FULL_BACKOFF).await;
        Ok(())
    }
}

/// Offers `record` to librdkafka until its queue takes it, making room each
/// time the queue is full; records offered one after the other keep their
/// order.
pub(crate) async fn enqueue<M: MakeRoom>(
    producer: &FutureProducer<ObservedContext>,
    mut record: FutureRecord<'_, str, str>,
    sender: &mut M,
) -> Result<DeliveryFuture, M::Error> {
    loop {
        match producer.send_result(record) {
            Ok(delivery) => return Ok(delivery),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                sender.make_room().await?;
            }
            Err((error, _)) => return Err(error.into()),
        }
    }
}

/// Where the broker stored one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acked {
    pub partition: i32,
    pub offset: i64,
}

/// Why records were not acknowledged. Every variant means "the broker is not
/// available right now": the client may retry the same request.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("the broker did not acknowledge within {} ms", .0.as_millis())]
    Timeout(Duration),
    #[error("the broker did not accept the record: {0}")]
    Kafka(#[from] KafkaError),
    #[error("the producer is shutting down")]
    Closed,
}

/// Why `/readyz` says not ready.
#[derive(Debug, thiserror::Error)]
pub enum NotReady {
    #[error("broker metadata unavailable: {0}")]
    Metadata(#[from] KafkaError),
    #[error("topic {topic:?} is not available: {reason}")]
    Topic { topic: String, reason: String },
    #[error("broker metadata did not arrive within {} ms", .0.as_millis())]
    Timeout(Duration),
    /// The client had a fatal error; the probe replaced it with a new one.
    #[error("{0}; replaced by a new client")]
    Fatal(String),
    /// The broker refuses the client's credentials or its TLS handshake
    /// (see `platform::kafka_health`): only new settings help.
    #[error("{0}")]
    Refused(String),
}

/// What a successful readiness check saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicStatus {
    pub brokers: usize,
    pub partitions: usize,
}

/// Writes observations to the topic and waits for the broker's acknowledgements.
#[derive(Clone)]
pub struct Publisher {
    producer: Arc<RebuildingProducer<ObservedContext>>,
    /// Authentication and TLS failures, named by `/readyz`.
    health: Arc<ClientHealth>,
    topic: String,
    ack_timeout: Duration,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("topic", &self.topic)
            .field("ack_timeout", &self.ack_timeout)
            .finish_non_exhaustive()
    }
}

/// The producer's client configuration: the base one with the pass-through
/// options, the producer's trade-offs where no option names them, and what
/// correctness needs.
fn producer_config(kafka: &KafkaSettings, settings: &ProducerSettings) -> ClientConfig {
    let mut config = client_config(kafka);
    // Trade-offs, so the pass-through options win over them.
    let defaults = [
        ("linger.ms", settings.linger.as_millis().to_string()),
        // librdkafka gives up on a record after this long, so nothing
        // waits in its queue for a client that has already had its 503.
        (
            "delivery.timeout.ms",
            settings.ack_timeout.as_millis().to_string(),
        ),
    ];
    for (key, value) in defaults {
        if !kafka.librdkafka.contains_key(key) {
            config.set(key, value);
        }
    }
    // Set last so that no pass-through option can weaken them: the 202
    // promises that every replica has the record, exactly once.
    config.set("acks", "all").set("enable.idempotence", "true");
    config
}

impl Publisher {
    /// Creates the producer. This does not connect: librdkafka connects in
    /// the background, so a broker that is down shows in `/readyz` and as 503s.
    pub fn new(kafka: &KafkaSettings, settings: &ProducerSettings) -> Result<Self, KafkaError> {
        let config = producer_config(kafka, settings);
        let health = Arc::new(ClientHealth::default());
        let context_health = health.clone();
        Ok(Self {
            producer: Arc::new(RebuildingProducer::new("producer", config, move || {
                ObservedContext::new("producer", context_health.clone())
            })?),
            health,
            topic: kafka.topic.clone(),
            ack_timeout: settings.ack_timeout,
        })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The client to write with now (a new one after a fatal error), for
    /// callers that pace their own records, as uploads do.
    pub fn client(&self) -> Arc<FutureProducer<ObservedContext>> {
        self.producer.get()
    }

    /// Writes the observations in order, keyed by model id, with `trace_id`
    /// in a header, and returns where each landed once all are acknowledged.
    /// Gives up after the acknowledgement timeout: never hangs.
    pub async fn publish(
        &self,
        observations: &[Observation],
        trace_id: &str,
    ) -> Result<Vec<Acked>, PublishError> {
        let deadline = Instant::now() + self.ack_timeout;
        match tokio::time::timeout_at(deadline, self.send_all(observations, trace_id)).await {
            Ok(result) => result,
            Err(_elapsed) => Err(PublishError::Timeout(self.ack_timeout)),
        }
    }

    async fn send_all(
        &self,
        observations: &[Observation],
        trace_id: &str,
    ) -> Result<Vec<Acked>, PublishError> {
        // Everything is enqueued before anything is awaited, so a batch travels
        // in a few broker requests rather than one round trip per record.
        // The client of this request: a new one if the last had a fatal error.
        let producer = self.producer.get();
        let mut pending: Vec<DeliveryFuture> = Vec::with_capacity(observations.len());
        for observation in observations {
            let payload = observation.to_canonical_json();
            let record = traced_record(&self.topic, observation.model.as_str(), &payload, trace_id);
            // The local queue is full: wait for it to drain and offer the
            // same record again, which keeps the request's order. The
            // caller's deadline bounds the wait.
            let delivery = enqueue(&producer, record, &mut Wait).await?;
            pending.push(delivery);
        }
        let mut acked = Vec::with_capacity(pending.len());
        for delivery in pending {
            match delivery.await {
                Ok(Ok(delivery)) => acked.push(Acked {
                    partition: delivery.partition,
                    offset: delivery.offset,
                }),
                Ok(Err((error, _message))) => return Err(error.into()),
                Err(_canceled) => return Err(PublishError::Closed),
            }
        }
        Ok(acked)
    }

    /// Waits until every queued record is delivered or `timeout` passes.
    pub async fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        let producer = self.producer.get();
        // `flush` blocks its thread while librdkafka drains the queue.
        tokio::task::spawn_blocking(move || producer.flush(timeout))
            .await
            .unwrap_or(Err(KafkaError::Canceled))
    }

    /// Asks the brokers for the topic's metadata, on a blocking thread because
    /// librdkafka's call blocks until the answer or the timeout. A client with
    /// a fatal error is not ready whatever the broker says: the probe says so
    /// and replaces it, so that the next probe asks with the new client.
    pub async fn check_ready(&self, timeout: Duration) -> Result<TopicStatus, NotReady> {
        if let Some(fatal) = self.producer.fatal_error() {
            self.producer.get();
            return Err(NotReady::Fatal(fatal));
        }
        let producer = self.producer.get();
        let topic = self.topic.clone();
        let lookup = tokio::task::spawn_blocking(move || {
            let metadata = producer.client().fetch_metadata(Some(&topic), timeout)?;
            let Some(found) = metadata.topics().iter().find(|t| t.name() == topic) else {
                return Err(NotReady::Topic {
                    topic,
                    reason: "missing from the broker's metadata".into(),
                });
            };
            if let Some(error) = found.error() {
                let reason = RDKafkaErrorCode::from(error).to_string();
                return Err(NotReady::Topic { topic, reason });
            }
            if found.partitions().is_empty() {
                return Err(NotReady::Topic {
                    topic,
                    reason: "it has no partitions".into(),
                });
            }
            Ok(TopicStatus {
                brokers: metadata.brokers().len(),
                partitions: found.partitions().len(),
            })
        });
        // librdkafka honours the timeout; the outer one is a guard so that a
        // probe never waits much longer than asked, whatever happens inside.
        let result = match tokio::time::timeout(timeout + Duration::from_millis(500), lookup).await
        {
            Ok(Ok(result)) => result,
            Ok(Err(_)) | Err(_) => Err(NotReady::Timeout(timeout)),
        };
        // A refused login or handshake is the cause of whatever the lookup
        // says (a timeout, a transport failure): name it instead.
        match result {
            Ok(status) => {
                self.health.clear();
                Ok(status)
            }
            Err(error) => Err(self.health.failure().map_or(error, NotReady::Refused)),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use test_support::settings_with as settings;

    #[test]
    fn pass_through_options_win_over_the_producer_settings_but_not_over_acks_and_idempotence() {
        let settings = settings(&[
            ("BAYES__PRODUCER__LINGER", "50ms"),
            ("BAYES__KAFKA__LIBRDKAFKA__LINGER_MS", "7"),
            ("BAYES__KAFKA__LIBRDKAFKA__DELIVERY_TIMEOUT_MS", "9000"),
            ("BAYES__KAFKA__LIBRDKAFKA__ACKS", "1"),
            ("BAYES__KAFKA__LIBRDKAFKA__SECURITY_PROTOCOL", "SASL_SSL"),
        ]);
        let config = producer_config(&settings.kafka, &settings.producer);
        assert_eq!(config.get("linger.ms"), Some("7"));
        assert_eq!(config.get("delivery.timeout.ms"), Some("9000"));
        assert_eq!(config.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(config.get("acks"), Some("all"));
        assert_eq!(config.get("enable.idempotence"), Some("true"));
    }

    #[test]
    fn without_pass_through_options_the_producer_settings_apply() {
        let settings = settings(&[
            ("BAYES__PRODUCER__LINGER", "50ms"),
            ("BAYES__PRODUCER__ACK_TIMEOUT", "4s"),
        ]);
        let config = producer_config(&settings.kafka, &settings.producer);
        assert_eq!(config.get("linger.ms"), Some("50"));
        assert_eq!(config.get("delivery.timeout.ms"), Some("4000"));
    }
}
