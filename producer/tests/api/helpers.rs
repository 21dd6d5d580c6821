//! `spawn_app()` and what the API tests share: a real Kafka-protocol broker
//! (librdkafka's mock cluster in-process, or `KAFKA_BROKERS`), a unique topic
//! per test, the producer on a random port, and a reader of the topic that
//! stops at the high watermark instead of sleeping.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use producer::Application;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::Value;
use shared::settings::{Settings, TestEnvironment};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// The longest any helper waits for the broker before failing the test.
const BROKER_DEADLINE: Duration = Duration::from_secs(20);
/// How long a test waits for an HTTP answer before calling it a hang.
pub const HTTP_DEADLINE: Duration = Duration::from_secs(15);

/// A broker for one test: the in-process mock cluster (kept alive as long as
/// this value) or the external one named by `KAFKA_BROKERS`.
pub struct TestBroker {
    pub brokers: String,
    mock: Option<MockCluster<'static, DefaultProducerContext>>,
}

impl TestBroker {
    pub fn start() -> Self {
        match TestEnvironment::from_env().kafka_brokers {
            Some(brokers) => Self {
                brokers,
                mock: None,
            },
            None => {
                let mock = MockCluster::new(1).expect("starting the mock cluster");
                Self {
                    brokers: mock.bootstrap_servers(),
                    mock: Some(mock),
                }
            }
        }
    }

    pub fn is_mock(&self) -> bool {
        self.mock.is_some()
    }

    /// The in-process mock cluster, for tests that break the broker on purpose.
    pub fn mock(&self) -> Option<&MockCluster<'static, DefaultProducerContext>> {
        self.mock.as_ref()
    }

    /// Creates `topic` and waits until the broker reports all its partitions.
    pub async fn create_topic(&self, topic: &str, partitions: i32) {
        match &self.mock {
            Some(mock) => mock
                .create_topic(topic, partitions, 1)
                .expect("creating the topic on the mock cluster"),
            None => {
                let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
                    .set("bootstrap.servers", &self.brokers)
                    .create()
                    .expect("creating an admin client");
                let options = AdminOptions::new().operation_timeout(Some(BROKER_DEADLINE));
                let results = admin
                    .create_topics(
                        &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
                        &options,
                    )
                    .await
                    .expect("creating the topic");
                for result in results {
                    result.expect("creating the topic");
                }
            }
        }
        let deadline = Instant::now() + BROKER_DEADLINE;
        let consumer = self.consumer();
        loop {
            let found = consumer
                .fetch_metadata(Some(topic), Duration::from_secs(1))
                .ok()
                .and_then(|m| {
                    m.topics()
                        .iter()
                        .find(|t| t.name() == topic && t.error().is_none())
                        .map(|t| t.partitions().len())
                });
            if found == Some(partitions as usize) {
                return;
            }
            assert!(Instant::now() < deadline, "topic {topic} did not appear");
            tokio::task::yield_now().await;
        }
    }

    /// The partition count of `topic`, or `None` when the broker does not know it.
    pub fn partitions_of(&self, topic: &str) -> Option<usize> {
        let metadata = self
            .consumer()
            .fetch_metadata(None, Duration::from_secs(5))
            .expect("fetching metadata");
        metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic && t.error().is_none())
            .map(|t| t.partitions().len())
    }

    fn consumer(&self) -> BaseConsumer {
        ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .set("group.id", format!("producer-tests-{}", Uuid::new_v4()))
            .set("enable.auto.commit", "false")
            .create()
            .expect("creating a consumer")
    }

    /// Every record of `topic` up to the high watermarks read at the start,
    /// sorted by partition and offset. Reads until each partition's
    /// watermark is reached, failing the test after a deadline.
    pub async fn records(&self, topic: &str) -> Vec<Record> {
        let consumer = self.consumer();
        let topic = topic.to_owned();
        tokio::task::spawn_blocking(move || read_to_watermarks(&consumer, &topic))
            .await
            .expect("reading the topic")
    }
}

fn read_to_watermarks(consumer: &BaseConsumer, topic: &str) -> Vec<Record> {
    let metadata = consumer
        .fetch_metadata(Some(topic), BROKER_DEADLINE)
        .expect("fetching the topic's metadata");
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    let mut assignment = TopicPartitionList::new();
    let mut high_watermarks = HashMap::new();
    for partition in partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, BROKER_DEADLINE)
            .expect("fetching watermarks");
        if high > low {
            assignment
                .add_partition_offset(topic, partition, Offset::Offset(low))
                .expect("adding a partition");
            high_watermarks.insert(partition, high);
        }
    }
    let mut records = Vec::new();
    if high_watermarks.is_empty() {
        return records;
    }
    consumer.assign(&assignment).expect("assigning partitions");
    let deadline = Instant::now() + BROKER_DEADLINE;
    let mut done = HashSet::new();
    while done.len() < high_watermarks.len() {
        assert!(
            Instant::now() < deadline,
            "records up to the high watermarks {high_watermarks:?} did not arrive; got {records:?}"
        );
        let Some(message) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let message = message.expect("consuming");
        let high = high_watermarks[&message.partition()];
        if message.offset() < high {
            records.push(Record {
                partition: message.partition(),
                offset: message.offset(),
                key: message
                    .key()
                    .map(|k| String::from_utf8(k.to_vec()).expect("UTF-8 key")),
                value: String::from_utf8(message.payload().unwrap_or_default().to_vec())
                    .expect("UTF-8 value"),
                trace_id: message.headers().and_then(|headers| {
                    headers
                        .iter()
                        .find(|h| h.key == "trace-id")
                        .and_then(|h| h.value)
                        .map(|v| String::from_utf8(v.to_vec()).expect("UTF-8 header"))
                }),
            });
        }
        if message.offset() + 1 >= high {
            done.insert(message.partition());
        }
    }
    records.sort_by_key(|r| (r.partition, r.offset));
    records
}

/// A record as the tests look at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub value: String,
    pub trace_id: Option<String>,
}

/// A running producer, on its own port, writing to its own topic.
pub struct TestApp {
    pub address: String,
    pub port: u16,
    pub topic: String,
    pub client: reqwest::Client,
    /// `None` when the test pointed the producer at a closed port.
    pub broker: Option<TestBroker>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
}

/// A producer against a fresh one-partition topic, with default settings.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// A producer against a fresh one-partition topic; `configure` adjusts the settings.
pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_app_on(1, configure).await
}

/// A producer against a fresh topic of `partitions` partitions.
pub async fn spawn_app_on(partitions: i32, configure: impl FnOnce(&mut Settings)) -> TestApp {
    let broker = TestBroker::start();
    let topic = unique_topic();
    broker.create_topic(&topic, partitions).await;
    let mut settings = test_settings(&broker.brokers, &topic);
    configure(&mut settings);
    launch(settings, Some(broker)).await
}

/// A producer whose broker address is a closed local port.
pub async fn spawn_app_without_broker(configure: impl FnOnce(&mut Settings)) -> TestApp {
    let mut settings = test_settings(&format!("127.0.0.1:{}", closed_port()), &unique_topic());
    configure(&mut settings);
    launch(settings, None).await
}

/// Settings for a test: port 0, the given broker and topic, no topic
/// creation (the test creates its topic), short broker checks.
pub fn test_settings(brokers: &str, topic: &str) -> Settings {
    let mut settings = Settings::default();
    settings.kafka.brokers = brokers.to_owned();
    settings.kafka.topic = topic.to_owned();
    settings.kafka.dlq_topic = format!("{topic}.dlq");
    settings.kafka.create_topics = false;
    settings.producer.port = 0;
    settings.producer.admin_timeout_ms = 1_000;
    settings
}

pub fn unique_topic() -> String {
    format!("observations-{}", Uuid::new_v4())
}

/// A local port on which nothing listens: bound, then released.
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding a port");
    listener.local_addr().expect("reading the port").port()
}

async fn launch(settings: Settings, broker: Option<TestBroker>) -> TestApp {
    shared::telemetry::init_test_tracing();
    let application = Application::build(settings.clone())
        .await
        .expect("building the application");
    let port = application.port();
    let (shutdown, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(application.run_until_stopped(async {
        let _ = stopped.await;
    }));
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        port,
        topic: settings.kafka.topic.clone(),
        client: reqwest::Client::builder()
            .timeout(HTTP_DEADLINE)
            .build()
            .expect("building the HTTP client"),
        broker,
        shutdown: Some(shutdown),
        server: Some(server),
    }
}

/// An HTTP answer, read completely.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text))
    }

    /// Asserts an error answer: the status, the code, and a fragment of the message.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str, message_fragment: &str) {
        assert_eq!(self.status, status, "body: {}", self.text);
        let body = self.json();
        assert_eq!(body["error"]["code"], code, "body: {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(message_fragment),
            "message {message:?} lacks {message_fragment:?}"
        );
        assert_eq!(
            self.headers
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("application/json"),
            "error bodies are JSON"
        );
    }
}

impl TestApp {
    /// Sends a request; `content_type` and `headers` are set when given.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        content_type: Option<&str>,
        headers: &[(&str, &str)],
        body: impl Into<reqwest::Body>,
    ) -> Answer {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.address))
            .body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("sending the request");
        Answer {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            text: response.text().await.expect("reading the body"),
        }
    }

    pub async fn post_json(&self, body: &str) -> Answer {
        self.send(
            reqwest::Method::POST,
            "/observations",
            Some("application/json"),
            &[],
            body.to_owned(),
        )
        .await
    }

    pub async fn post_text(&self, query: &str, body: &str) -> Answer {
        self.send(
            reqwest::Method::POST,
            &format!("/observations{query}"),
            Some("text/plain"),
            &[],
            body.to_owned(),
        )
        .await
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send(reqwest::Method::GET, path, None, &[], "").await
    }

    pub fn broker(&self) -> &TestBroker {
        self.broker.as_ref().expect("this test app has a broker")
    }

    /// Every record on the app's topic.
    pub async fn records(&self) -> Vec<Record> {
        self.broker().records(&self.topic).await
    }

    /// Proves that the rejected requests before it produced nothing: writes
    /// one marker observation and reads the whole topic. Records enqueued by
    /// an earlier request would be ordered before the acked marker, so they
    /// would be read too.
    pub async fn assert_nothing_was_produced(&self) {
        let answer = self.post_json(r#"{"model":"marker","outcome":"w"}"#).await;
        assert_eq!(answer.status, 202, "{}", answer.text);
        let records = self.records().await;
        let values: Vec<&str> = records.iter().map(|r| r.value.as_str()).collect();
        assert_eq!(
            values,
            [r#"{"model":"marker","successes":1,"trials":1}"#],
            "only the marker is on the topic"
        );
    }

    /// Stops the app as SIGTERM would and returns what `run_until_stopped` returned.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        let server = self.server.take().expect("the app runs");
        tokio::time::timeout(HTTP_DEADLINE, server)
            .await
            .expect("the app stops before the deadline")
            .expect("the server task did not panic")
    }
}
