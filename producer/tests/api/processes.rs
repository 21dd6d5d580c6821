//! The producer as it is deployed, a process of its own, SIGKILLed in the
//! middle of producing an upload and started again: the upload is then
//! `failed` as interrupted, the same file re-sent resumes it under the same
//! id, and the consumer (run here, in-process) counts every row exactly
//! once, although some of them reached the log twice.

use std::path::PathBuf;
use std::process::Child;
use std::time::Duration;

use domain::ModelId;
use platform::settings::Settings;
use serde_json::Value;
use test_support::broker::TestBroker;
use test_support::database::TestDatabase;
use test_support::service_process::spawn_service;
use test_support::{eventually, eventually_within, unique};
use tokio::sync::watch;

use crate::helpers::closed_port;

/// Rows in the file: enough that producing them at the slow pace of the
/// first process takes seconds, so the kill lands half-way.
const ROWS: u64 = 40_000;

/// A producer process; SIGKILLed when dropped.
struct ProducerProcess {
    child: Child,
    log: PathBuf,
    address: String,
}

impl Drop for ProducerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ProducerProcess {
    /// Starts the producer binary with its settings in the environment,
    /// as an operator would; `max_in_flight` paces it.
    fn start(settings: &Settings, port: u16, max_in_flight: usize, log: PathBuf) -> Self {
        let extra = [
            ("BAYES__PRODUCER__PORT", port.to_string()),
            ("BAYES__UPLOADS__MAX_IN_FLIGHT", max_in_flight.to_string()),
            ("BAYES__UPLOADS__PROGRESS_INTERVAL", "20ms".into()),
            ("RUST_LOG", "info".into()),
        ];
        let child = spawn_service(env!("CARGO_BIN_EXE_producer"), settings, &extra, &log);
        Self {
            child,
            log,
            address: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Fails the test with the process's log when it exited by itself.
    fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().expect("process status") {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            panic!("the producer exited by itself ({status}); its log:\n{log}");
        }
    }

    async fn wait_until_serving(&mut self, http: &reqwest::Client) {
        let url = format!("{}/healthz", self.address);
        eventually("the producer answers /healthz", async || {
            self.assert_running();
            let response = http.get(&url).send().await.ok()?;
            (response.status() == 200).then_some(())
        })
        .await;
    }
}

async fn get_upload(http: &reqwest::Client, address: &str, id: &str) -> Value {
    let response = http
        .get(format!("{address}/uploads/{id}"))
        .send()
        .await
        .expect("GET /uploads/{id}");
    assert_eq!(response.status(), 200);
    response.json().await.expect("JSON")
}

async fn post_file(http: &reqwest::Client, address: &str, csv: &str) -> (u16, Value) {
    let response = http
        .post(format!("{address}/uploads"))
        .header("content-type", "text/csv")
        .body(csv.to_owned())
        .send()
        .await
        .expect("POST /uploads");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_upload_interrupted_by_killing_the_producer_and_re_sent_counts_every_row_once() {
    test_support::init_tracing();
    let broker = TestBroker::start();
    let (database, db) = TestDatabase::create()
        .await
        .expect("creating a test database (is DATABASE_URL's server running?)");
    let mut settings = Settings::default();
    settings.database = database.settings.clone();
    settings.kafka.brokers = broker.brokers.clone();
    settings.kafka.topic = unique("uploads");
    settings.kafka.dlq_topic = format!("{}.dlq", settings.kafka.topic);
    settings.kafka.create_topics = false;
    settings.consumer.group_id = unique("uploads");
    settings.consumer.admin_port = 0;
    settings.consumer.batch_wait = Duration::from_millis(20);
    broker.create_topic(&settings.kafka.topic, 1).await;
    broker.create_topic(&settings.kafka.dlq_topic, 1).await;

    let (mut csv, mut successes) = (String::from("model,outcome\n"), 0);
    for row in 0..ROWS {
        let win = row % 3 == 0;
        successes += u64::from(win);
        csv.push_str(if win { "killed,w\n" } else { "killed,l\n" });
    }
    let http = reqwest::Client::new();
    let logs = std::env::temp_dir();
    let port = closed_port();

    // A slow first producer: few records in flight at a time.
    let mut first = ProducerProcess::start(
        &settings,
        port,
        2,
        logs.join(format!("{}-1.log", settings.kafka.topic)),
    );
    first.wait_until_serving(&http).await;
    let (status, accepted) = post_file(&http, &first.address, &csv).await;
    assert_eq!(status, 202, "{accepted}");
    let id = accepted["id"].as_str().expect("an id").to_owned();
    let produced_before_kill = eventually("some rows are produced", async || {
        first.assert_running();
        let upload = get_upload(&http, &first.address, &id).await;
        assert_eq!(upload["status"], "producing", "{upload}");
        let produced = upload["rows_produced"].as_u64().unwrap_or(0);
        (produced >= 1_000).then_some(produced)
    })
    .await;
    first.child.kill().expect("SIGKILL");
    first.child.wait().expect("reaping the producer");
    assert!(produced_before_kill < ROWS, "the kill came too late");

    let mut second = ProducerProcess::start(
        &settings,
        port,
        10_000,
        logs.join(format!("{}-2.log", settings.kafka.topic)),
    );
    second.wait_until_serving(&http).await;
    let interrupted = get_upload(&http, &second.address, &id).await;
    assert_eq!(interrupted["status"], "failed", "{interrupted}");
    assert_eq!(interrupted["reason"], producer::INTERRUPTED);

    let (status, resumed) = post_file(&http, &second.address, &csv).await;
    assert_eq!(status, 202, "{resumed}");
    assert_eq!(
        resumed["id"],
        id.as_str(),
        "the re-send resumes the same upload"
    );
    eventually_within(
        Duration::from_secs(120),
        "the upload is produced",
        async || {
            second.assert_running();
            let upload = get_upload(&http, &second.address, &id).await;
            assert_ne!(upload["status"], "failed", "{upload}");
            (upload["status"] == "produced").then_some(())
        },
    )
    .await;
    let (_, end) = broker.watermarks(&settings.kafka.topic, 0);
    assert!(
        end as u64 > ROWS,
        "rows produced before the kill are in the log twice ({end} records for {ROWS} rows)"
    );

    // The consumer counts each row once, the ones in the log twice too.
    let (stop, stopped) = watch::channel(false);
    let consumer = tokio::spawn(consumer::run(settings.clone(), async move {
        let mut stopped = stopped;
        let _ = stopped.wait_for(|stop| *stop).await;
    }));
    let model = ModelId::parse("killed").expect("a model id");
    let counts = eventually_within(
        Duration::from_secs(120),
        "every row is counted",
        async || {
            let record = platform::store::get_model(&db, &model).await.ok()??;
            let counts = record.state.counts;
            assert!(
                counts.successes + counts.failures <= ROWS,
                "counted too much: {counts:?}"
            );
            (counts.successes + counts.failures == ROWS).then_some(counts)
        },
    )
    .await;
    assert_eq!(
        (counts.successes, counts.failures),
        (successes, ROWS - successes)
    );
    let applied = eventually("the upload is applied", async || {
        let upload = get_upload(&http, &second.address, &id).await;
        (upload["status"] == "applied").then_some(upload)
    })
    .await;
    assert_eq!(applied["rows_produced"], ROWS);
    stop.send(true).expect("stopping the consumer");
    tokio::time::timeout(test_support::DEADLINE, consumer)
        .await
        .expect("the consumer stops")
        .expect("the consumer task did not panic")
        .expect("the consumer ran without error");
}
