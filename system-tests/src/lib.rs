//! What the system tests in `tests/` share: [`Stack`], the three services
//! in-process on port 0 against a fresh database and fresh topics on the test
//! broker (`KAFKA_BROKERS`, or librdkafka's mock cluster, or a broker the
//! test started: [`Stack::start_with`]). The tests themselves: the pipeline
//! end to end (`e2e`), the broker SIGKILLed mid-stream (`broker_crash`), a
//! 3-node cluster losing nodes under load (`cluster`),
//! Apache Kafka's own console producer (`console`), the OpenAPI document of
//! both HTTP services (`openapi`), and compose.yaml against the settings and
//! a real broker (`deploy`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use platform::settings::Settings;
use serde_json::Value;
use test_support::broker::TestBroker;
use test_support::database::TestDatabase;
use test_support::{eventually, unique, DEADLINE};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The producer, the consumer and the model service, running in this process.
#[derive(Debug)]
pub struct Stack {
    /// The producer's base URL.
    pub producer: String,
    /// The model service's base URL.
    pub model: String,
    pub settings: Settings,
    pub broker: TestBroker,
    pub http: reqwest::Client,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// A future that completes when `stop` says so.
async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

impl Stack {
    /// Starts the three services on a fresh database and fresh topics.
    pub async fn start() -> Self {
        Self::start_with(TestBroker::start(), |_| {}).await
    }

    /// Starts the three services on `broker` (fresh topics on it) and a fresh
    /// database, with the test's changes to the settings applied last.
    pub async fn start_with(broker: TestBroker, configure: impl FnOnce(&mut Settings)) -> Self {
        test_support::init_tracing();
        let (test_db, _db) = TestDatabase::create().await.unwrap();
        let mut settings = Settings::default();
        settings.database = test_db.settings.clone();
        settings.kafka.brokers = broker.brokers.clone();
        settings.kafka.topic = unique("observations");
        settings.kafka.dlq_topic = format!("{}.dlq", settings.kafka.topic);
        settings.consumer.group_id = unique("e2e");
        settings.consumer.batch_wait = Duration::from_millis(20);
        settings.producer.port = 0;
        settings.model_service.port = 0;
        settings.consumer.admin_port = 0;
        // The test makes its topics, on the mock cluster (which has no
        // CreateTopics API) and on a real broker alike.
        broker.create_topic(&settings.kafka.topic, 1).await;
        broker.create_topic(&settings.kafka.dlq_topic, 1).await;
        settings.kafka.create_topics = false;
        configure(&mut settings);

        let (stop, rx) = watch::channel(false);
        let producer = producer::Application::build(settings.clone())
            .await
            .unwrap();
        let model = model_service::Application::build(settings.clone())
            .await
            .unwrap();
        let producer_url = format!("http://127.0.0.1:{}", producer.port());
        let model_url = format!("http://127.0.0.1:{}", model.port());
        let tasks = vec![
            tokio::spawn({
                let rx = rx.clone();
                async move { producer.run_until_stopped(stopped(rx)).await.unwrap() }
            }),
            tokio::spawn({
                let rx = rx.clone();
                async move { model.run_until_stopped(stopped(rx)).await.unwrap() }
            }),
            tokio::spawn({
                let settings = settings.clone();
                async move { consumer::run(settings, stopped(rx)).await.unwrap() }
            }),
        ];
        Self {
            producer: producer_url,
            model: model_url,
            settings,
            broker,
            http: reqwest::Client::new(),
            stop,
            tasks,
        }
    }

    /// `GET {model service}{path}` as JSON, or `None` unless it answers 200.
    pub async fn get_json(&self, path: &str) -> Option<Value> {
        let response = self
            .http
            .get(format!("{}{path}", self.model))
            .send()
            .await
            .unwrap();
        if response.status() != 200 {
            return None;
        }
        Some(response.json().await.unwrap())
    }

    /// Polls `GET /models/{model}` until it reports `trials` trials; more is
    /// a failure.
    pub async fn model_with_trials(&self, model: &str, trials: u64) -> Value {
        self.wait_for_trials(&format!("/models/{model}"), trials)
            .await
    }

    /// Polls `GET /posterior` (the default model) until it reports `trials`
    /// trials; more is a failure.
    pub async fn posterior_with_trials(&self, trials: u64) -> Value {
        self.wait_for_trials("/posterior", trials).await
    }

    async fn wait_for_trials(&self, path: &str, trials: u64) -> Value {
        eventually(&format!("{path} shows {trials} trials"), async || {
            let body = self.get_json(path).await?;
            let seen = body["trials"].as_u64().unwrap_or(0);
            assert!(seen <= trials, "counted too much: {body}");
            (seen == trials).then_some(body)
        })
        .await
    }

    /// Stops the three services and waits until each has returned.
    pub async fn stop(self) {
        self.stop.send(true).unwrap();
        for task in self.tasks {
            tokio::time::timeout(DEADLINE, task)
                .await
                .expect("a service did not stop")
                .unwrap();
        }
    }
}
