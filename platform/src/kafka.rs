//! What every Kafka client of the pipeline shares: the base client
//! configuration (brokers and the librdkafka pass-through options) and the
//! best-effort creation of the topics at start-up.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use crate::settings::KafkaSettings;

/// A client configuration with the brokers and the pass-through options.
/// Callers set their own options after it, so the ones correctness depends
/// on (`enable.auto.commit=false`, `acks=all`, ...) cannot be overridden.
pub fn client_config(kafka: &KafkaSettings) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &kafka.brokers);
    for (key, value) in kafka.librdkafka_options() {
        config.set(key, value);
    }
    config
}

/// Creates the topic and the dead-letter topic when they are missing, with
/// the configured partitions, replication factor and `min.insync.replicas`. Best effort: a broker
/// without the CreateTopics API (the mock cluster) or without permission gets
/// a warning, not a failed start-up, because the topics may well exist or be
/// auto-created.
pub async fn ensure_topics(kafka: &KafkaSettings, timeout: Duration) {
    match try_ensure_topics(kafka, timeout).await {
        Ok(created) if created.is_empty() => {
            tracing::info!(topic = %kafka.topic, dlq_topic = %kafka.dlq_topic, "topics exist");
        }
        Ok(created) => tracing::info!(?created, "created topics"),
        Err(error) => tracing::warn!(
            %error,
            topic = %kafka.topic,
            dlq_topic = %kafka.dlq_topic,
            "could not make sure the topics exist; carrying on (create them by hand, or rely on auto-creation)"
        ),
    }
}

/// Why the start-up topic creation did not finish.
#[derive(Debug, thiserror::Error)]
enum TopicSetupError {
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error("the broker did not answer within {} ms", .0.as_millis())]
    Timeout(Duration),
    #[error("creating {topic:?} failed: {code}")]
    Create {
        topic: String,
        code: RDKafkaErrorCode,
    },
}

async fn try_ensure_topics(
    kafka: &KafkaSettings,
    timeout: Duration,
) -> Result<Vec<String>, TopicSetupError> {
    let admin: AdminClient<DefaultClientContext> = client_config(kafka).create()?;
    // Listing is cheap and works everywhere, so only missing topics are
    // created and a broker without CreateTopics is not asked needlessly.
    let (admin, metadata) = tokio::task::spawn_blocking(move || {
        let metadata = admin.inner().fetch_metadata(None, timeout);
        (admin, metadata)
    })
    .await
    .map_err(|_| TopicSetupError::Timeout(timeout))?;
    let metadata = metadata?;
    let missing: Vec<&str> = [kafka.topic.as_str(), kafka.dlq_topic.as_str()]
        .into_iter()
        .filter(|wanted| {
            !metadata
                .topics()
                .iter()
                .any(|t| t.name() == *wanted && t.error().is_none())
        })
        .collect();
    if missing.is_empty() {
        return Ok(Vec::new());
    }
    let min_insync = kafka.min_insync_replicas.to_string();
    let new_topics: Vec<NewTopic<'_>> = missing
        .iter()
        .map(|name| {
            NewTopic::new(
                name,
                kafka.partitions,
                TopicReplication::Fixed(kafka.replication_factor),
            )
            // Always set, so a topic's durability is this setting's and not
            // whatever the broker's default happens to be.
            .set("min.insync.replicas", &min_insync)
        })
        .collect();
    let options = AdminOptions::new()
        .request_timeout(Some(timeout))
        .operation_timeout(Some(timeout));
    // Some brokers never answer CreateTopics (the mock cluster), so the
    // request timeout is backed by our own.
    let results = tokio::time::timeout(
        timeout + Duration::from_millis(500),
        admin.create_topics(&new_topics, &options),
    )
    .await
    .map_err(|_| TopicSetupError::Timeout(timeout))??;
    let mut created = Vec::new();
    for result in results {
        match result {
            Ok(topic) => created.push(topic),
            // Another service (the consumer) won the race: fine.
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(TopicSetupError::Create { topic, code }),
        }
    }
    Ok(created)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use rdkafka::producer::BaseProducer;

    use super::*;
    use crate::settings::Settings;

    /// A client with `options`; creating it checks them but does not connect.
    fn create(options: &[(&str, &str)]) -> Result<(), String> {
        let mut kafka = Settings::default().kafka;
        kafka.brokers = "127.0.0.1:9".into();
        for (key, value) in options {
            kafka.librdkafka.insert(key, *value);
        }
        let created: Result<BaseProducer, KafkaError> = client_config(&kafka).create();
        created.map(drop).map_err(|error| error.to_string())
    }

    /// What docs/operations.md says this build can and cannot do
    /// ("Kafka with TLS and SASL"): TLS and SASL PLAIN/SCRAM are built in,
    /// OIDC (libcurl) and GSSAPI (Cyrus SASL) are not.
    #[test]
    fn this_build_has_tls_with_plain_and_scram_but_neither_oidc_nor_gssapi() {
        for mechanism in ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] {
            let sasl_ssl = [
                ("security.protocol", "SASL_SSL"),
                ("sasl.mechanism", mechanism),
                ("sasl.username", "user"),
                ("sasl.password", "password"),
            ];
            create(&sasl_ssl).unwrap();
        }
        create(&[("security.protocol", "SSL")]).unwrap();
        let oidc = create(&[
            ("security.protocol", "SASL_SSL"),
            ("sasl.mechanism", "OAUTHBEARER"),
            ("sasl.oauthbearer.method", "oidc"),
        ])
        .unwrap_err();
        assert!(oidc.contains("libcurl"), "{oidc}");
        let gssapi = create(&[
            ("security.protocol", "SASL_SSL"),
            ("sasl.mechanism", "GSSAPI"),
        ])
        .unwrap_err();
        assert!(gssapi.contains("GSSAPI"), "{gssapi}");
    }
}
