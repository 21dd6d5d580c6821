//! librdkafka client configurations and the start-up topic creation.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use platform::kafka::client_config;
use platform::kafka_health::ClientHealth;
use platform::kafka_producer::RebuildingProducer;
use platform::settings::Settings;
use rdkafka::client::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::ClientConfig;

use crate::membership::InstanceId;

/// The same librdkafka error is logged at most this often.
const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The dead-letter producer (also the admin side's window on the broker),
/// replaced by a new client after a fatal librdkafka error.
pub(crate) type DlqProducer = RebuildingProducer<QuietContext>;

/// Says whether an error message is worth logging now: while a broker is
/// down librdkafka reports the same few errors many times a second.
#[derive(Debug, Default)]
pub(crate) struct ErrorLog {
    last: Mutex<HashMap<String, Instant>>,
}

impl ErrorLog {
    pub fn should_log(&self, text: &str) -> bool {
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if last.len() > 64 {
            last.retain(|_, at| now.duration_since(*at) < ERROR_LOG_INTERVAL);
        }
        match last.get(text) {
            Some(at) if now.duration_since(*at) < ERROR_LOG_INTERVAL => false,
            _ => {
                last.insert(text.to_owned(), now);
                true
            }
        }
    }
}

/// The dead-letter producer's context: client-level errors go to the
/// service's [`ClientHealth`] and through [`ErrorLog`].
#[derive(Debug)]
pub(crate) struct QuietContext {
    pub errors: ErrorLog,
    pub health: Arc<ClientHealth>,
}

impl QuietContext {
    pub fn new(health: Arc<ClientHealth>) -> Self {
        Self {
            errors: ErrorLog::default(),
            health,
        }
    }
}

impl ClientContext for QuietContext {
    fn error(&self, error: KafkaError, reason: &str) {
        log_client_error(&self.health, "dlq", &self.errors, &error, reason);
    }
}

/// librdkafka's client-level errors. Refused credentials and failed TLS
/// handshakes are the health's to log and count (once, at error level, see
/// `platform::kafka_health`); the rest (brokers down, transport failures)
/// librdkafka retries itself, so they are warnings, each repeated at most
/// every ten seconds.
pub(crate) fn log_client_error(
    health: &ClientHealth,
    client: &'static str,
    errors: &ErrorLog,
    error: &KafkaError,
    reason: &str,
) {
    if health.report(client, error, reason).handled() {
        return;
    }
    if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AutoOffsetReset) {
        // An offset outside the log: the polling loop handles it (see
        // `offset_gap`) and says what it found; librdkafka does not retry it.
        tracing::debug!(%error, %reason, "offset outside the log");
        return;
    }
    if errors.should_log(reason) {
        tracing::warn!(%error, %reason, "Kafka client error; librdkafka keeps retrying");
    }
}

/// How long start-up waits for the broker to create the topics. A broker
/// without the CreateTopics API (librdkafka's mock cluster) never answers, so
/// this is short, and failing is only a warning: the topics may exist already.
pub(crate) const TOPIC_CREATION_TIMEOUT: Duration = Duration::from_secs(5);

/// The consumer: offsets are never auto-committed nor auto-stored, because
/// Postgres, not Kafka, says where to resume. With an `instance` id the
/// consumer is a static member of the group.
pub(crate) fn consumer_config(settings: &Settings, instance: Option<&InstanceId>) -> ClientConfig {
    let mut config = client_config(&settings.kafka);
    // The pass-through options win over these two: they are trade-offs,
    // not matters of correctness.
    if !settings.kafka.librdkafka.contains_key("session.timeout.ms") {
        config.set(
            "session.timeout.ms",
            settings.consumer.session_timeout.as_millis().to_string(),
        );
    }
    if !settings
        .kafka
        .librdkafka
        .contains_key("partition.assignment.strategy")
    {
        config.set(
            "partition.assignment.strategy",
            &settings.consumer.assignment_strategy,
        );
    }
    if let Some(instance) = instance {
        config.set("group.instance.id", instance.as_str());
    }
    config
        .set("group.id", &settings.consumer.group_id)
        .set("client.id", "bayes-consumer")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        // Never reset a position on our own: an offset outside the log (the
        // topic recreated, retention past the stored offset) comes back as
        // an error, which `offset_gap` reports or resolves as the operator
        // chose. On assignment the offset always comes from Postgres (or is
        // the beginning).
        .set("auto.offset.reset", "error")
        .set("enable.partition.eof", "false")
        // The loop stops polling while it writes a batch, so the prefetch
        // queue can pass `queued.min.messages`; librdkafka then pauses
        // fetching for this long (default 1 s, which stalled the pipeline
        // once a second in the benchmark) before it looks again.
        .set("fetch.queue.backoff.ms", "10");
    // Records up to the broker's limit (`message.max.bytes`, 1048588 by
    // default) need nothing more: `fetch.message.max.bytes` (1 MiB) is only
    // the first request's size per partition, since the broker returns a
    // larger first record batch whole, within `fetch.max.bytes` (50 MB) and
    // `receive.message.max.bytes` (100 MB). The poison tests fetch one just
    // under the limit from a real broker.
    config
}

/// The dead-letter producer's `message.max.bytes`, set explicitly so that
/// `dlq::MAX_RECORD_BYTES` derives from what librdkafka enforces: it refuses a
/// bigger record locally (`MsgSizeTooLarge`) and caps its batches at it. It
/// is librdkafka's default, below Kafka's default broker and topic limit
/// (`message.max.bytes` = 1048588 bytes per record batch), so the broker
/// takes whatever the producer lets through.
pub(crate) const MESSAGE_MAX_BYTES: usize = 1_000_000;

/// The dead-letter producer: idempotent and acknowledged by all replicas,
/// since a poison record's offset is committed only after its ack.
pub(crate) fn producer_config(settings: &Settings) -> ClientConfig {
    let mut config = client_config(&settings.kafka);
    config
        .set("client.id", "bayes-consumer-dlq")
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        // Explicit, because `dlq` cuts records to fit under it.
        .set("message.max.bytes", MESSAGE_MAX_BYTES.to_string())
        // A delivery that fails (broker down) comes back within this time,
        // so the loop can retry the batch, or give it up on a stop request.
        .set("message.timeout.ms", "30000");
    config
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use test_support::settings_with as settings;

    #[test]
    fn a_pass_through_option_from_the_environment_wins_over_the_consumer_settings() {
        let settings = settings(&[
            ("BAYES__CONSUMER__SESSION_TIMEOUT", "30s"),
            ("BAYES__KAFKA__LIBRDKAFKA__SESSION_TIMEOUT_MS", "6000"),
            (
                "BAYES__KAFKA__LIBRDKAFKA__PARTITION_ASSIGNMENT_STRATEGY",
                "roundrobin",
            ),
        ]);
        let config = consumer_config(&settings, None);
        assert_eq!(config.get("session.timeout.ms"), Some("6000"));
        assert_eq!(
            config.get("partition.assignment.strategy"),
            Some("roundrobin")
        );
        // librdkafka takes the configuration as it is.
        let _: rdkafka::consumer::BaseConsumer = config.create().unwrap();
    }

    #[test]
    fn without_a_pass_through_option_the_consumer_settings_apply() {
        let settings = settings(&[("BAYES__CONSUMER__SESSION_TIMEOUT", "30s")]);
        let config = consumer_config(&settings, None);
        assert_eq!(config.get("session.timeout.ms"), Some("30000"));
    }

    #[test]
    fn every_client_of_the_consumer_takes_the_pass_through_options() {
        let settings = settings(&[
            ("BAYES__KAFKA__LIBRDKAFKA__SECURITY_PROTOCOL", "SASL_SSL"),
            ("BAYES__KAFKA__LIBRDKAFKA__SASL_MECHANISM", "SCRAM-SHA-512"),
        ]);
        for config in [consumer_config(&settings, None), producer_config(&settings)] {
            assert_eq!(config.get("security.protocol"), Some("SASL_SSL"));
            assert_eq!(config.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
        }
    }
}
