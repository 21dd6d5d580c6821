//! `spawn_app()` and what the API tests share: a real Kafka-protocol broker
//! (librdkafka's mock cluster in-process, or `KAFKA_BROKERS`), a unique topic
//! per test, the producer on a random port, and a reader of the topic that
//! stops at the high watermark instead of sleeping.

use std::time::Duration;

use platform::settings::Settings;
use producer::Application;
use serde_json::Value;
pub use test_support::broker::TestBroker;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long a test waits for an HTTP answer before calling it a hang.
pub const HTTP_DEADLINE: Duration = Duration::from_secs(15);

/// A record as the producer tests look at it: UTF-8 key and value, and the
/// `trace-id` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub value: String,
    pub trace_id: Option<String>,
}

impl From<test_support::broker::Record> for Record {
    fn from(record: test_support::broker::Record) -> Self {
        Self {
            partition: record.partition,
            offset: record.offset,
            key: record.key_str(),
            value: record.value_str(),
            trace_id: record.header("trace-id").map(str::to_owned),
        }
    }
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
    spawn_app_against(TestBroker::start(), partitions, configure).await
}

/// A producer on the in-process mock cluster whatever `KAFKA_BROKERS` says,
/// for the tests that take the broker down.
pub async fn spawn_app_on_mock_cluster(configure: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_app_against(TestBroker::mock_cluster(), 1, configure).await
}

async fn spawn_app_against(
    broker: TestBroker,
    partitions: i32,
    configure: impl FnOnce(&mut Settings),
) -> TestApp {
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

/// A producer against a fresh one-partition topic and a fresh migrated
/// database of its own (uploads need one).
pub async fn spawn_app_with_database(configure: impl FnOnce(&mut Settings)) -> TestApp {
    let (database, _connection) = test_support::database::TestDatabase::create()
        .await
        .expect("creating a test database (is DATABASE_URL's server running?)");
    spawn_app_with(|settings| {
        settings.database = database.settings.clone();
        configure(settings);
    })
    .await
}

/// Settings for a test: port 0, the given broker and topic, no topic
/// creation (the test creates its topic), short broker checks, and a
/// database on a closed port: only the upload tests get one of their own
/// ([`spawn_app_with_database`]), so no test touches a shared database.
pub fn test_settings(brokers: &str, topic: &str) -> Settings {
    let mut settings = Settings::default();
    settings.database.url = format!("postgres://postgres@127.0.0.1:{}/none", closed_port()).into();
    settings.kafka.brokers = brokers.to_owned();
    settings.kafka.topic = topic.to_owned();
    settings.kafka.dlq_topic = format!("{topic}.dlq");
    settings.kafka.create_topics = false;
    settings.producer.port = 0;
    settings.producer.admin_timeout = Duration::from_millis(1_000);
    settings
}

pub fn unique_topic() -> String {
    test_support::unique("observations")
}

/// A local port on which nothing listens: bound, then released.
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding a port");
    listener.local_addr().expect("reading the port").port()
}

async fn launch(settings: Settings, broker: Option<TestBroker>) -> TestApp {
    test_support::init_tracing();
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

    /// `POST {path}` of `body` as `content_type`, with no other header.
    pub async fn post(
        &self,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> Answer {
        let method = reqwest::Method::POST;
        self.send(method, path, Some(content_type), &[], body).await
    }

    pub async fn post_json(&self, body: &str) -> Answer {
        self.post("/observations", "application/json", body.to_owned())
            .await
    }

    pub async fn post_text(&self, query: &str, body: &str) -> Answer {
        let path = format!("/observations{query}");
        self.post(&path, "text/plain", body.to_owned()).await
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send(reqwest::Method::GET, path, None, &[], "").await
    }

    pub fn broker(&self) -> &TestBroker {
        self.broker.as_ref().expect("this test app has a broker")
    }

    /// Every record on the app's topic.
    pub async fn records(&self) -> Vec<Record> {
        let records = self.broker().records(&self.topic).await;
        records.into_iter().map(Record::from).collect()
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
