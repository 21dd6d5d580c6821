//! The broker a test runs against: the one named by `KAFKA_BROKERS` (a real
//! Apache Kafka), or else librdkafka's mock cluster in-process, which also
//! injects faults. Topics are created and waited for; a reader returns a
//! topic's records up to its high watermarks instead of sleeping.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::{unique, TestEnvironment, DEADLINE};

/// A broker for one test: the in-process mock cluster (kept alive as long as
/// this value) or the external one named by `KAFKA_BROKERS`.
pub struct TestBroker {
    pub brokers: String,
    mock: Option<MockCluster<'static, DefaultProducerContext>>,
}

impl std::fmt::Debug for TestBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestBroker")
            .field("brokers", &self.brokers)
            .field("mock", &self.mock.is_some())
            .finish()
    }
}

impl TestBroker {
    /// `KAFKA_BROKERS` when set, else a new mock cluster of one broker.
    pub fn start() -> Self {
        crate::init_tracing();
        match TestEnvironment::from_env().kafka_brokers {
            Some(brokers) => Self {
                brokers,
                mock: None,
            },
            None => Self::mock_cluster(),
        }
    }

    /// The broker at `brokers` whatever `KAFKA_BROKERS` says: one a test
    /// started itself (`crate::kafka_process::KafkaProcess`).
    pub fn external(brokers: String) -> Self {
        crate::init_tracing();
        Self {
            brokers,
            mock: None,
        }
    }

    /// A mock cluster whatever `KAFKA_BROKERS` says, for the tests that need
    /// its fault injection.
    pub fn mock_cluster() -> Self {
        crate::init_tracing();
        let mock = MockCluster::new(1).expect("starting the mock cluster");
        Self {
            brokers: mock.bootstrap_servers(),
            mock: Some(mock),
        }
    }

    pub fn is_mock(&self) -> bool {
        self.mock.is_some()
    }

    /// The in-process mock cluster, for tests that break the broker on purpose.
    pub fn mock(&self) -> Option<&MockCluster<'static, DefaultProducerContext>> {
        self.mock.as_ref()
    }

    /// A client configuration pointing at this broker.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.brokers);
        config
    }

    /// Creates `topic` and waits until the broker reports all its partitions.
    pub async fn create_topic(&self, topic: &str, partitions: i32) {
        match &self.mock {
            Some(mock) => mock
                .create_topic(topic, partitions, 1)
                .expect("creating the topic on the mock cluster"),
            None => {
                let admin: AdminClient<DefaultClientContext> =
                    self.client_config().create().expect("an admin client");
                let options = AdminOptions::new().operation_timeout(Some(DEADLINE));
                let results = admin
                    .create_topics(
                        // The broker's own replication factor
                        // (`default.replication.factor`): 1 on one broker, 3
                        // on a KafkaCluster.
                        &[NewTopic::new(
                            topic,
                            partitions,
                            TopicReplication::Fixed(-1),
                        )],
                        &options,
                    )
                    .await
                    .expect("creating the topic");
                for result in results {
                    result.expect("creating the topic");
                }
            }
        }
        let deadline = Instant::now() + DEADLINE;
        let reader = self.reader();
        loop {
            let found = partitions_of(&reader, topic);
            if found == Some(partitions as usize) {
                return;
            }
            assert!(Instant::now() < deadline, "topic {topic} did not appear");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Deletes `topic` and waits until the broker no longer reports it.
    /// Needs a real broker: the mock cluster has no DeleteTopics API.
    pub async fn delete_topic(&self, topic: &str) {
        assert!(
            self.mock.is_none(),
            "deleting a topic needs a real broker (set KAFKA_BROKERS)"
        );
        let results = self
            .admin()
            .delete_topics(
                &[topic],
                &AdminOptions::new().operation_timeout(Some(DEADLINE)),
            )
            .await
            .expect("deleting the topic");
        for result in results {
            result.expect("deleting the topic");
        }
        let deadline = Instant::now() + DEADLINE;
        let reader = self.reader();
        while partitions_of(&reader, topic).is_some() {
            assert!(Instant::now() < deadline, "topic {topic} did not go away");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Deletes the records of `topic`/`partition` below `before`, as
    /// retention would: the log then starts at `before`. Needs a real broker.
    pub async fn delete_records(&self, topic: &str, partition: i32, before: i64) {
        assert!(
            self.mock.is_none(),
            "deleting records needs a real broker (set KAFKA_BROKERS)"
        );
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, partition, Offset::Offset(before))
            .expect("a partition offset");
        let result = self
            .admin()
            .delete_records(&tpl, &AdminOptions::new().operation_timeout(Some(DEADLINE)))
            .await
            .expect("deleting records");
        for element in result.elements() {
            element.error().expect("deleting records");
        }
    }

    /// `topic`/`partition`'s low and high watermarks.
    pub fn watermarks(&self, topic: &str, partition: i32) -> (i64, i64) {
        self.reader()
            .fetch_watermarks(topic, partition, DEADLINE)
            .expect("watermarks")
    }

    fn admin(&self) -> AdminClient<DefaultClientContext> {
        self.client_config().create().expect("an admin client")
    }

    /// The partition count of `topic`, or `None` when the broker does not know it.
    pub fn partitions_of(&self, topic: &str) -> Option<usize> {
        partitions_of(&self.reader(), topic)
    }

    /// Every record of `topic` up to the high watermarks read at the start,
    /// sorted by partition and offset.
    pub async fn records(&self, topic: &str) -> Vec<Record> {
        self.records_at_least(topic, 0).await
    }

    /// Waits until `topic` holds at least `at_least` records, then returns
    /// all of them up to the high watermarks, sorted by partition and offset.
    pub async fn records_at_least(&self, topic: &str, at_least: usize) -> Vec<Record> {
        let reader = self.reader();
        let topic = topic.to_owned();
        tokio::task::spawn_blocking(move || read_to_watermarks(&reader, &topic, at_least))
            .await
            .expect("reading the topic")
    }

    /// A consumer that only reads by assignment; its group never commits.
    fn reader(&self) -> BaseConsumer {
        self.client_config()
            .set("group.id", unique("test-reader"))
            .set("enable.auto.commit", "false")
            .create()
            .expect("a consumer")
    }
}

fn partitions_of(reader: &BaseConsumer, topic: &str) -> Option<usize> {
    let metadata = reader
        .fetch_metadata(Some(topic), Duration::from_secs(5))
        .ok()?;
    metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map(|t| t.partitions().len())
        .filter(|n| *n > 0)
}

/// The high watermark of every partition of `topic`, once they add up to
/// `at_least` records (or the deadline passes).
fn watermarks(reader: &BaseConsumer, topic: &str, at_least: usize) -> HashMap<i32, (i64, i64)> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let metadata = reader
            .fetch_metadata(Some(topic), DEADLINE)
            .expect("fetching the topic's metadata");
        let mut marks = HashMap::new();
        for partition in metadata
            .topics()
            .iter()
            .filter(|t| t.name() == topic)
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        {
            let (low, high) = reader
                .fetch_watermarks(topic, partition, DEADLINE)
                .expect("fetching watermarks");
            marks.insert(partition, (low, high));
        }
        let total: i64 = marks.values().map(|(low, high)| high - low).sum();
        if total >= at_least as i64 {
            return marks;
        }
        assert!(
            Instant::now() < deadline,
            "{topic} holds {total} records, fewer than the {at_least} awaited"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn read_to_watermarks(reader: &BaseConsumer, topic: &str, at_least: usize) -> Vec<Record> {
    let mut assignment = TopicPartitionList::new();
    let mut high_watermarks = HashMap::new();
    for (partition, (low, high)) in watermarks(reader, topic, at_least) {
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
    reader.assign(&assignment).expect("assigning partitions");
    let deadline = Instant::now() + DEADLINE;
    let mut done = HashSet::new();
    while done.len() < high_watermarks.len() {
        assert!(
            Instant::now() < deadline,
            "records up to the high watermarks {high_watermarks:?} did not arrive; got {}",
            records.len()
        );
        let Some(message) = reader.poll(Duration::from_millis(100)) else {
            continue;
        };
        let message = message.expect("consuming");
        let high = high_watermarks[&message.partition()];
        if message.offset() < high {
            records.push(Record::from_message(&message));
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
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    /// Header values, read as UTF-8 (lossily).
    pub headers: BTreeMap<String, String>,
}

impl Record {
    fn from_message(message: &impl Message) -> Self {
        let headers = message
            .headers()
            .map(|headers| {
                headers
                    .iter()
                    .map(|h| {
                        let value = h.value.map(|v| String::from_utf8_lossy(v).into_owned());
                        (h.key.to_owned(), value.unwrap_or_default())
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self {
            partition: message.partition(),
            offset: message.offset(),
            key: message.key().map(<[u8]>::to_vec),
            value: message.payload().map(<[u8]>::to_vec),
            headers,
        }
    }

    /// The key as UTF-8; the test fails when it is not.
    pub fn key_str(&self) -> Option<String> {
        self.key
            .as_ref()
            .map(|k| String::from_utf8(k.clone()).expect("a UTF-8 key"))
    }

    /// The value as UTF-8 (empty when there is none); the test fails when it is not UTF-8.
    pub fn value_str(&self) -> String {
        String::from_utf8(self.value.clone().unwrap_or_default()).expect("a UTF-8 value")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}
