//! Shared set-up: brokers, topics, databases, publishing, reading state back,
//! fault injectors, and waiting by polling with a deadline.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use consumer::{Action, Assignment, Checkpoint, Consumer, ConsumerError, FaultInjector, Stage};
use domain::observation::parse_record;
use domain::ModelId;
use platform::settings::Settings;
use platform::store::load_offset;
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, NewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::ClientConfig;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use secrecy::SecretString;
use test_support::broker::{Record, TestBroker};
use test_support::database::TestDatabase;
pub use test_support::{eventually, unique, DEADLINE};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// One record to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rec {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, String)>,
}

impl Rec {
    pub fn new(key: Option<&str>, value: &str) -> Self {
        Self::bytes(key.map(str::as_bytes), Some(value.as_bytes()))
    }

    pub fn bytes(key: Option<&[u8]>, value: Option<&[u8]>) -> Self {
        Self {
            key: key.map(<[u8]>::to_vec),
            value: value.map(<[u8]>::to_vec),
            headers: Vec::new(),
        }
    }

    pub fn with_header(mut self, key: &str, value: &str) -> Self {
        self.headers.push((key.to_owned(), value.to_owned()));
        self
    }

    /// The value as text (empty when it has none or is not UTF-8).
    pub fn text(&self) -> &str {
        self.value
            .as_deref()
            .and_then(|v| std::str::from_utf8(v).ok())
            .unwrap_or_default()
    }

    /// What the shared parser makes of it: `(model, successes, failures)` or `None` for poison.
    pub fn parsed(&self) -> Option<(String, u64, u64)> {
        let default = ModelId::parse("globe").expect("model id");
        parse_record(
            self.key.as_deref(),
            self.value.as_deref().unwrap_or_default(),
            &default,
        )
        .ok()
        .map(|o| (o.model.to_string(), o.successes, o.failures))
    }
}

/// A deterministic mix of every accepted form over three models, with a
/// poison record every `poison_every` records (0: none).
pub fn workload(n: usize, poison_every: usize) -> Vec<Rec> {
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..n)
        .map(|i| {
            if poison_every > 0 && i % poison_every == poison_every - 1 {
                return match next() % 3 {
                    0 => Rec::new(None, "maybe"),
                    1 => Rec::new(Some("coin"), r#"{"model":"globe","outcome":"w"}"#),
                    _ => Rec::new(None, "{\"outcome\":"),
                };
            }
            let model = ["globe", "coin", "dice.v2"][(next() % 3) as usize];
            match next() % 5 {
                0 => Rec::new(Some(model), if next() % 2 == 0 { "w" } else { "l" }),
                1 => Rec::new(Some(model), "WLWWWLWLW"),
                2 => Rec::new(None, &format!(r#"{{"model":"{model}","outcome":"W"}}"#)),
                3 => Rec::new(
                    Some(model),
                    &format!(r#"{{"successes":{},"trials":9}}"#, next() % 10),
                ),
                _ => Rec::new(None, &format!(r#"{{"model":"{model}","outcomes":"wlwl"}}"#)),
            }
        })
        .collect()
}

/// Model -> (successes, failures), as the records say.
pub fn expected_counts(records: &[Rec]) -> BTreeMap<String, (u64, u64)> {
    let mut counts = BTreeMap::new();
    for (model, s, f) in records.iter().filter_map(Rec::parsed) {
        let entry = counts.entry(model).or_insert((0, 0));
        entry.0 += s;
        entry.1 += f;
    }
    counts
}

/// A history row: `(model, version, successes, failures, delta_successes, delta_failures)`.
pub type HistoryRow = (String, i64, i64, i64, i64, i64);

/// Everything one test needs: a broker, topics, a group, a database.
pub struct TestEnv {
    pub kafka: TestBroker,
    pub topic: String,
    pub dlq_topic: String,
    pub group: String,
    pub channel: String,
    pub test_db: TestDatabase,
    pub db: DatabaseConnection,
}

impl TestEnv {
    pub async fn new(partitions: i32) -> Self {
        Self::on(TestBroker::start(), partitions).await
    }

    /// On the in-process mock cluster whatever `KAFKA_BROKERS` says, for the
    /// tests that take the broker down.
    pub async fn on_mock_cluster(partitions: i32) -> Self {
        Self::on(TestBroker::mock_cluster(), partitions).await
    }

    /// With a database whose server-side encoding is `encoding`, as an
    /// operator may have created it (see `TestDatabase::create_with_encoding`).
    pub async fn with_database_encoding(partitions: i32, encoding: &str) -> Self {
        let database = TestDatabase::create_with_encoding(encoding)
            .await
            .expect("test database");
        Self::on_database(TestBroker::start(), partitions, database).await
    }

    async fn on(kafka: TestBroker, partitions: i32) -> Self {
        let database = TestDatabase::create().await.expect("test database");
        Self::on_database(kafka, partitions, database).await
    }

    async fn on_database(
        kafka: TestBroker,
        partitions: i32,
        (test_db, db): (TestDatabase, DatabaseConnection),
    ) -> Self {
        let topic = unique("observations");
        let dlq_topic = format!("{topic}.dlq");
        kafka.create_topic(&topic, partitions).await;
        kafka.create_topic(&dlq_topic, 1).await;
        Self {
            kafka,
            topic,
            dlq_topic,
            group: unique("group"),
            channel: unique("updates").replace('-', "_"),
            test_db,
            db,
        }
    }

    /// Settings for a consumer of this environment: small batches, short
    /// back-off, admin on a free port, no topic creation.
    pub fn settings(&self) -> Settings {
        let mut s = Settings::default();
        s.kafka.brokers = self.kafka.brokers.clone();
        s.kafka.topic = self.topic.clone();
        s.kafka.dlq_topic = self.dlq_topic.clone();
        s.kafka.create_topics = false;
        for (k, v) in [
            ("session.timeout.ms", "6000"),
            ("heartbeat.interval.ms", "500"),
        ] {
            s.kafka.librdkafka.insert(k, v.to_owned());
        }
        s.database = self.test_db.settings.clone();
        s.consumer.group_id = self.group.clone();
        s.consumer.batch_size = 5;
        s.consumer.batch_wait = Duration::from_millis(20);
        s.consumer.retry_backoff_max = Duration::from_millis(200);
        s.database.notify_channel = self.channel.clone();
        s.consumer.admin_port = 0;
        s.consumer.lag_refresh = Duration::from_millis(100);
        s
    }

    /// Settings whose database URL goes through `url` (a proxy).
    pub fn settings_via(&self, url: String) -> Settings {
        let mut s = self.settings();
        s.database.url = SecretString::from(url);
        s.database.connect_timeout = Duration::from_millis(1_000);
        s
    }

    /// Publishes to partition `partition` (or by key when `None`) and waits for the acks.
    pub async fn publish_to(&self, partition: Option<i32>, records: &[Rec]) {
        self.publish_with(partition, None, records).await;
    }

    /// Publishes to partition 0 with the producer's `message.max.bytes`
    /// raised to `max_message_bytes` (librdkafka's default, 1000000, refuses
    /// records near the broker's limit before they leave).
    pub async fn publish_large(&self, max_message_bytes: usize, records: &[Rec]) {
        self.publish_with(Some(0), Some(max_message_bytes), records)
            .await;
    }

    async fn publish_with(
        &self,
        partition: Option<i32>,
        max_message_bytes: Option<usize>,
        records: &[Rec],
    ) {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.kafka.brokers)
            .set("linger.ms", "5")
            .set("enable.idempotence", "true");
        if let Some(max) = max_message_bytes {
            config.set("message.max.bytes", max.to_string());
        }
        let producer: FutureProducer = config.create().expect("producer");
        let sends = records.iter().map(|r| {
            let mut headers = OwnedHeaders::new();
            for (k, v) in &r.headers {
                headers = headers.insert(Header {
                    key: k,
                    value: Some(v.as_str()),
                });
            }
            let mut record: FutureRecord<'_, [u8], [u8]> =
                FutureRecord::to(&self.topic).headers(headers);
            if let Some(p) = partition {
                record = record.partition(p);
            }
            if let Some(k) = &r.key {
                record = record.key(k.as_slice());
            }
            if let Some(v) = &r.value {
                record = record.payload(v.as_slice());
            }
            producer.send(record, Duration::from_secs(10))
        });
        for result in futures::future::join_all(sends).await {
            result.expect("publish");
        }
    }

    pub async fn publish(&self, records: &[Rec]) {
        self.publish_to(Some(0), records).await;
    }

    /// The largest record batch the broker accepts on `topic`: the topic's
    /// `max.message.bytes`, which defaults to the broker's `message.max.bytes`.
    pub async fn max_message_bytes(&self, topic: &str) -> usize {
        let admin: AdminClient<DefaultClientContext> =
            self.kafka.client_config().create().expect("admin client");
        let described = admin
            .describe_configs(
                &[ResourceSpecifier::Topic(topic)],
                &AdminOptions::new().request_timeout(Some(DEADLINE)),
            )
            .await
            .expect("describing the topic's configuration");
        let resource = described
            .into_iter()
            .next()
            .expect("one resource")
            .expect("the topic's configuration");
        resource
            .get("max.message.bytes")
            .and_then(|entry| entry.value.as_deref())
            .expect("max.message.bytes")
            .parse()
            .expect("a number")
    }

    /// Creates a topic of one partition with `config` (name, value pairs).
    pub async fn create_topic_with(&self, topic: &str, config: &[(&str, &str)]) {
        let admin: AdminClient<DefaultClientContext> =
            self.kafka.client_config().create().expect("admin client");
        let new_topic = config.iter().fold(
            NewTopic::new(topic, 1, TopicReplication::Fixed(1)),
            |t, (k, v)| t.set(k, v),
        );
        for result in admin
            .create_topics(
                &[new_topic],
                &AdminOptions::new().operation_timeout(Some(DEADLINE)),
            )
            .await
            .expect("creating the topic")
        {
            result.expect("creating the topic");
        }
        eventually(&format!("topic {topic} exists"), async || {
            (self.kafka.partitions_of(topic) == Some(1)).then_some(())
        })
        .await;
    }

    /// Sets a topic's configuration `name` to `value`.
    pub async fn alter_topic(&self, topic: &str, name: &str, value: &str) {
        let admin: AdminClient<DefaultClientContext> =
            self.kafka.client_config().create().expect("admin client");
        for result in admin
            .alter_configs(
                &[AlterConfig::new(ResourceSpecifier::Topic(topic)).set(name, value)],
                &AdminOptions::new().operation_timeout(Some(DEADLINE)),
            )
            .await
            .expect("altering the topic")
        {
            result.expect("altering the topic");
        }
    }

    /// Builds and starts a consumer.
    pub async fn spawn(
        &self,
        settings: Settings,
        assignment: Assignment,
        faults: Option<Arc<dyn FaultInjector>>,
    ) -> Running {
        let mut consumer = Consumer::build(settings)
            .await
            .expect("consumer builds")
            .with_assignment(assignment);
        if let Some(faults) = faults {
            consumer = consumer.with_faults(faults);
        }
        let admin = consumer.admin_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(consumer.run_until(async {
            let _ = stopped.await;
        }));
        Running {
            task,
            stop: Some(stop),
            admin,
        }
    }

    pub async fn stored_offset(&self, partition: i32) -> Option<i64> {
        load_offset(&self.db, &self.group, &self.topic, partition)
            .await
            .expect("load offset")
    }

    /// Waits until Postgres says `partition` resumes at `next_offset`.
    pub async fn wait_for_offset(&self, partition: i32, next_offset: i64) {
        eventually(
            &format!("partition {partition} is at {next_offset}"),
            async || (self.stored_offset(partition).await == Some(next_offset)).then_some(()),
        )
        .await;
    }

    /// Model -> (successes, failures) in `model_states`.
    pub async fn counts(&self) -> BTreeMap<String, (u64, u64)> {
        self.rows("SELECT model_id, successes, failures FROM model_states ORDER BY model_id")
            .await
            .into_iter()
            .map(|r| {
                let model: String = r.try_get("", "model_id").expect("model_id");
                let s: i64 = r.try_get("", "successes").expect("successes");
                let f: i64 = r.try_get("", "failures").expect("failures");
                (model, (s as u64, f as u64))
            })
            .collect()
    }

    pub async fn history(&self) -> Vec<HistoryRow> {
        self.rows(
            "SELECT model_id, version, successes, failures, delta_successes, delta_failures \
             FROM model_history ORDER BY model_id, version",
        )
        .await
        .into_iter()
        .map(|r| {
            (
                r.try_get("", "model_id").expect("model_id"),
                r.try_get("", "version").expect("version"),
                r.try_get("", "successes").expect("successes"),
                r.try_get("", "failures").expect("failures"),
                r.try_get("", "delta_successes").expect("delta_successes"),
                r.try_get("", "delta_failures").expect("delta_failures"),
            )
        })
        .collect()
    }

    async fn rows(&self, sql: &str) -> Vec<sea_orm::QueryResult> {
        self.db
            .query_all(Statement::from_string(DbBackend::Postgres, sql))
            .await
            .expect("query")
    }

    /// Asserts that each model's history runs 1, 2, 3, ... with cumulative
    /// counts that add up its deltas and end at its state.
    pub async fn assert_history_consistent(&self) {
        let history = self.history().await;
        let counts = self.counts().await;
        let mut per_model: BTreeMap<&str, Vec<&HistoryRow>> = BTreeMap::new();
        for row in &history {
            per_model.entry(row.0.as_str()).or_default().push(row);
        }
        assert_eq!(
            per_model.keys().copied().collect::<Vec<_>>(),
            counts.keys().map(String::as_str).collect::<Vec<_>>(),
            "every model with a state has a history"
        );
        for (model, rows) in per_model {
            let (mut s, mut f) = (0, 0);
            for (i, row) in rows.iter().enumerate() {
                s += row.4;
                f += row.5;
                assert_eq!(row.1, i as i64 + 1, "{model}: versions are consecutive");
                assert_eq!(
                    (row.2, row.3),
                    (s, f),
                    "{model} v{}: cumulative counts",
                    row.1
                );
            }
            assert_eq!(
                counts[model],
                (s as u64, f as u64),
                "{model}: history ends at the state"
            );
            let version: i64 = self
                .db
                .query_one(Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    "SELECT version FROM model_states WHERE model_id = $1",
                    [model.into()],
                ))
                .await
                .expect("query")
                .expect("state row")
                .try_get("", "version")
                .expect("version");
            assert_eq!(version, rows.len() as i64, "{model}: state version");
        }
    }

    /// Reads the whole dead-letter topic, which must hold at least `at_least` records.
    pub async fn read_dlq(&self, at_least: usize) -> Vec<DlqRecord> {
        self.kafka.records_at_least(&self.dlq_topic, at_least).await
    }

    /// Commits `offset` for this group to Kafka, as a confused tool might:
    /// it joins the group (brokers refuse commits from non-members of a
    /// group that has had members), commits, and leaves.
    pub fn commit_to_kafka(&self, partition: i32, offset: i64) {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.kafka.brokers)
            .set("group.id", &self.group)
            .set("enable.auto.commit", "false")
            // As short as the consumers': the group's rebalance timeout follows it.
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "500")
            .create()
            .expect("consumer");
        consumer.subscribe(&[&self.topic]).expect("subscribe");
        let deadline = Instant::now() + DEADLINE;
        while consumer.assignment().expect("assignment").count() == 0 {
            assert!(Instant::now() < deadline, "timed out joining the group");
            // Records polled here are ignored; only the assignment matters.
            let _ = consumer.poll(Duration::from_millis(50));
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&self.topic, partition, Offset::Offset(offset))
            .expect("tpl");
        consumer
            .commit(&tpl, rdkafka::consumer::CommitMode::Sync)
            .expect("commit");
    }

    /// The group's committed offset in Kafka.
    pub fn kafka_committed(&self, partition: i32) -> Option<i64> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.kafka.brokers)
            .set("group.id", &self.group)
            .create()
            .expect("consumer");
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&self.topic, partition);
        let committed = consumer
            .committed_offsets(tpl, Duration::from_secs(10))
            .expect("committed offsets");
        committed
            .find_partition(&self.topic, partition)
            .and_then(|e| e.offset().to_raw())
            .filter(|o| *o >= 0)
    }
}

/// A dead-letter record as read back.
pub type DlqRecord = Record;

/// A consumer running in a task.
pub struct Running {
    task: JoinHandle<Result<(), ConsumerError>>,
    stop: Option<oneshot::Sender<()>>,
    pub admin: SocketAddr,
}

impl Running {
    /// Graceful stop: finish the batch, commit, leave the group.
    pub async fn stop(mut self) -> Result<(), ConsumerError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.finished().await
    }

    /// Waits for the consumer to end by itself (an injected crash).
    pub async fn finished(self) -> Result<(), ConsumerError> {
        tokio::time::timeout(DEADLINE, self.task)
            .await
            .expect("consumer ends in time")
            .expect("consumer task")
    }

    /// Drops the running future, as a killed process would stop.
    pub fn kill(self) {
        self.task.abort();
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }
}

/// Records every checkpoint; crashes at the `nth` (1-based) time `stage` is reached.
#[derive(Debug, Default)]
pub struct Recorder {
    pub crash_at: Option<(Stage, usize)>,
    seen: Mutex<Vec<Checkpoint>>,
}

impl Recorder {
    pub fn crash_at(stage: Stage, nth: usize) -> Arc<Self> {
        Arc::new(Self {
            crash_at: Some((stage, nth)),
            seen: Mutex::default(),
        })
    }

    pub fn seen(&self, stage: Stage) -> Vec<Checkpoint> {
        self.seen
            .lock()
            .expect("lock")
            .iter()
            .filter(|c| c.stage == stage)
            .cloned()
            .collect()
    }
}

impl FaultInjector for Recorder {
    fn at(&self, checkpoint: &Checkpoint) -> Action {
        let mut seen = self.seen.lock().expect("lock");
        seen.push(checkpoint.clone());
        match self.crash_at {
            Some((stage, nth))
                if stage == checkpoint.stage
                    && seen.iter().filter(|c| c.stage == stage).count() == nth =>
            {
                Action::Crash
            }
            _ => Action::Continue,
        }
    }
}

/// A fault injector from a closure.
pub struct Hook<F>(pub F);

impl<F> std::fmt::Debug for Hook<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hook")
    }
}

impl<F: Fn(&Checkpoint) -> Action + Send + Sync> FaultInjector for Hook<F> {
    fn at(&self, checkpoint: &Checkpoint) -> Action {
        (self.0)(checkpoint)
    }
}

/// Blocks the calling (consumer) thread until `flag` is set; panics after the deadline.
pub fn block_until(flag: &std::sync::atomic::AtomicBool) {
    let deadline = Instant::now() + DEADLINE;
    while !flag.load(std::sync::atomic::Ordering::Acquire) {
        assert!(Instant::now() < deadline, "timed out waiting for a flag");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// GETs an admin URL: (status, body).
pub async fn get(url: &str) -> (u16, String) {
    let response = reqwest::get(url).await.expect("admin request");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}
