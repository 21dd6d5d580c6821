//! What the system tests in `tests/system/` share: [`Stack`], the three
//! services in-process on port 0 against a fresh database and fresh topics on
//! the test broker (`KAFKA_BROKERS`, or librdkafka's mock cluster, or a broker
//! the test started: [`Stack::start_with`]), and the machine's turn
//! ([`share_the_machine`], [`take_the_machine`]). The tests themselves, one
//! binary with a module each: the pipeline end to end (`e2e`), the broker
//! SIGKILLed mid-stream (`broker_crash`), a 3-node cluster losing nodes under
//! load (`cluster`), Apache Kafka's own console producer (`console`), the
//! OpenAPI document of both HTTP services (`openapi`), compose.yaml
//! against the settings and a real broker (`deploy`), and model-service
//! processes killed, restarted and run as two replicas (`replicas`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use domain::ModelId;
use platform::settings::Settings;
use platform::store;
use serde_json::Value;
use test_support::broker::{Record, TestBroker};
use test_support::database::TestDatabase;
use test_support::{eventually, unique, DEADLINE};
use tokio::sync::{watch, RwLock, RwLockReadGuard, RwLockWriteGuard};
use tokio::task::JoinHandle;

/// The machine the tests run on. One test binary runs its tests as threads
/// of one process under `cargo test`; a test that measures timings (the
/// cluster's failovers) must not share the two cores with brokers and
/// services of other tests, as it did not when each file was a binary of its
/// own. A static, so every test of the process sees the same lock; tokio's,
/// so waiting does not block a runtime thread, and fair, so a test waiting
/// for the whole machine is not starved by those that share it.
static MACHINE: RwLock<()> = RwLock::const_new(());

/// A share of the machine, for a test that starts services or brokers: many
/// such tests run at once, but none while a test holds the whole machine.
/// Under nextest each test is a process of its own and this never waits.
pub async fn share_the_machine() -> RwLockReadGuard<'static, ()> {
    MACHINE.read().await
}

/// The whole machine, for a test whose figures other tests would distort:
/// it waits until the tests that share the machine are done, and the others
/// wait for it.
pub async fn take_the_machine() -> RwLockWriteGuard<'static, ()> {
    MACHINE.write().await
}

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

    /// `POST {producer}/observations` of `outcomes` for `model`, answered.
    pub async fn post(&self, model: &str, outcomes: &str) -> reqwest::Response {
        self.http
            .post(format!("{}/observations", self.producer))
            .json(&serde_json::json!({"model": model, "outcomes": outcomes}))
            .send()
            .await
            .unwrap()
    }

    /// Waits for the dead-letter topic's first record and fails unless it
    /// is the only one: the tests send one bad record each.
    pub async fn the_dead_letter(&self) -> Record {
        let dead = self
            .broker
            .records_at_least(&self.settings.kafka.dlq_topic, 1)
            .await;
        assert_eq!(dead.len(), 1, "{dead:?}");
        dead.into_iter().next().unwrap()
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

/// Every stored model and its (successes, failures), read page by page.
pub async fn stored_counts(db: &sea_orm::DatabaseConnection) -> BTreeMap<String, (u64, u64)> {
    let mut counts = BTreeMap::new();
    let mut after: Option<ModelId> = None;
    loop {
        let page = store::list_models(db, after.as_ref(), 1000).await.unwrap();
        let Some(last) = page.last() else {
            return counts;
        };
        after = Some(last.id.clone());
        for model in &page {
            let c = model.state.counts;
            counts.insert(model.id.to_string(), (c.successes, c.failures));
        }
    }
}

/// Runs `program` with `args`, typing `lines` (then end of input, on which
/// Kafka's console producer and kcat flush and exit), and fails with its
/// output unless it exits 0. Blocking: call it from `spawn_blocking`.
pub fn run_with_input(program: &Path, args: &[String], lines: &[&str]) {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running {}: {e}", program.display()));
    let mut stdin = child.stdin.take().unwrap();
    for line in lines {
        writeln!(stdin, "{line}").unwrap();
    }
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{} failed ({}): {}",
        program.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// What the producer told a client while a broker was failing.
#[derive(Debug)]
pub enum Answer {
    /// 202: the record is in the log.
    Acked,
    /// A well-formed 503 `broker_unavailable`, with its body.
    Refused(Value),
}

/// POSTs one observation (`w`) of `model` to the producer at `base`, with
/// `key` as its `Idempotency-Key` if any, while brokers fail: a 202 is
/// [`Answer::Acked`], a 503 must say `broker_unavailable` with a message and
/// `Retry-After`, and anything else fails the test.
pub async fn post_while_failing(
    http: &reqwest::Client,
    base: &str,
    model: &str,
    key: Option<&str>,
) -> Answer {
    let mut request = http
        .post(format!("{base}/observations"))
        .json(&serde_json::json!({"model": model, "outcome": "w"}));
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    let response = request
        .send()
        .await
        .expect("the producer answers HTTP whatever the brokers do");
    match response.status().as_u16() {
        202 => Answer::Acked,
        503 => {
            assert!(
                response.headers().contains_key("retry-after"),
                "{model}: a 503 without Retry-After"
            );
            let body: Value = response.json().await.expect("a JSON error body");
            assert_eq!(body["error"]["code"], "broker_unavailable", "{body}");
            assert!(body["error"]["message"].is_string(), "{body}");
            Answer::Refused(body)
        }
        status => panic!(
            "{model}: the producer answered {status}: {:?}",
            response.text().await
        ),
    }
}
