//! A 3-node Apache Kafka cluster (`KafkaCluster`: replication factor 3,
//! `min.insync.replicas=2`, scripts/kafka/cluster.properties' failure
//! detection) under HTTP load while its nodes go: the partition leader is
//! SIGKILLed, then the active controller, then all three are restarted one
//! by one (SIGTERM, controlled shutdown). The services run with the shipped
//! settings, so what is asserted is what a deployment gets:
//!
//! - no request refused: the producer's `ack_timeout` outlasts every
//!   failover, which costs latency, not 503s (the longest time without a 202
//!   and the p99 latency of each step are printed);
//! - every acknowledged observation counted exactly once (each request names
//!   a model of its own, and clients resend a refused request with its
//!   Idempotency-Key, so a 503 would be a duplicate candidate, not a loss);
//! - the consumer, never restarted, reaches the end of the log with no
//!   offset gap, and every poison record written during it all reaches the
//!   dead-letter topic once.
//!
//! Three JVMs take a while to start, so one cluster serves every step and
//! the steps are one test.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use platform::store;
use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use system_tests::{post_while_failing, stored_counts, Answer, Stack};
use test_support::broker::TestBroker;
use test_support::kafka_process::KafkaCluster;
use test_support::{eventually, unique};

/// Broker settings to measure instead of scripts/kafka/cluster.properties'
/// (`key=value,key=value`), e.g. Kafka's defaults:
/// `broker.heartbeat.interval.ms=2000,broker.session.timeout.ms=9000`.
const MEASURE: &str = "CLUSTER_TEST_BROKER_PROPERTIES";

fn measured_properties() -> Vec<(String, String)> {
    std::env::var(MEASURE)
        .unwrap_or_default()
        .split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            let (k, v) = p
                .split_once('=')
                .unwrap_or_else(|| panic!("{MEASURE}: {p} is no key=value"));
            (k.trim().to_owned(), v.trim().to_owned())
        })
        .collect()
}

/// How long one request may take, retries included, before the test fails.
const REQUEST_DEADLINE: Duration = Duration::from_secs(60);

/// One acknowledged request.
#[derive(Debug, Clone)]
struct Acked {
    model: String,
    /// The first attempt's start.
    sent: Instant,
    /// The 202's arrival.
    acked: Instant,
}

#[derive(Debug, Default)]
struct Load {
    acked: Mutex<Vec<Acked>>,
    acks: AtomicUsize,
    /// 503s (each followed by a retry with the same Idempotency-Key).
    refused: AtomicUsize,
    stop: AtomicBool,
}

/// Posts one observation of a fresh model after another until `stop`,
/// resending a refused request with its Idempotency-Key until it is
/// acknowledged. Anything but 202 or a well-formed 503 fails the test.
async fn client(id: usize, producer: String, load: Arc<Load>) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut seq = 0;
    while !load.stop.load(Ordering::Relaxed) {
        let model = format!("cluster-{id}-{seq}");
        let key = format!("key-{id}-{seq}");
        seq += 1;
        let sent = Instant::now();
        loop {
            assert!(
                sent.elapsed() < REQUEST_DEADLINE,
                "{model}: no 202 within {REQUEST_DEADLINE:?}"
            );
            match post_while_failing(&http, &producer, &model, Some(&key)).await {
                Answer::Acked => {
                    let acked = Instant::now();
                    load.acked.lock().unwrap().push(Acked {
                        model: model.clone(),
                        sent,
                        acked,
                    });
                    load.acks.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Answer::Refused(body) => {
                    load.refused.fetch_add(1, Ordering::Relaxed);
                    eprintln!("{model}: refused ({body}); resending with its Idempotency-Key");
                    // The client's back-off, not synchronisation.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
}

/// Writes a record that is no observation every 100 ms until `stop`, and
/// returns the keys sent and those the brokers acknowledged: each of the
/// latter must reach the dead-letter topic once (one whose acknowledgement
/// was lost may, too).
async fn poisoner(
    brokers: String,
    topic: String,
    stop: Arc<AtomicBool>,
) -> (BTreeSet<String>, BTreeSet<String>) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", "60000")
        .create()
        .unwrap();
    let mut sent = BTreeSet::new();
    let mut delivered = BTreeSet::new();
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        let key = format!("poison-{n}");
        n += 1;
        sent.insert(key.clone());
        let record = FutureRecord::to(&topic)
            .key(&key)
            .payload("not an observation");
        if producer.send(record, Duration::from_secs(60)).await.is_ok() {
            delivered.insert(key);
        }
        // The pace of the poison, not synchronisation.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (sent, delivered)
}

/// Waits until the clients have `more` acknowledgements beyond now's.
async fn more_acks(load: &Load, more: usize, what: &str) {
    let from = load.acks.load(Ordering::Relaxed);
    eventually(what, async || {
        (load.acks.load(Ordering::Relaxed) >= from + more).then_some(())
    })
    .await;
}

/// Runs a blocking step of the cluster (a JVM starting or stopping, a poll
/// of its metadata) off the runtime.
async fn blocking<T: Send + 'static>(
    cluster: &Arc<KafkaCluster>,
    step: impl FnOnce(&KafkaCluster) -> T + Send + 'static,
) -> T {
    let cluster = cluster.clone();
    tokio::task::spawn_blocking(move || step(&cluster))
        .await
        .unwrap()
}

/// Starts node `id` again and waits until every partition is whole: the
/// state in which the next node may go.
fn restart_replicated(cluster: &KafkaCluster, id: u32) {
    cluster.restart(id);
    cluster.wait_fully_replicated();
}

/// The longest time without a 202 within `from..to`, and the p99 latency of
/// the requests first sent in it.
fn measure(acked: &[Acked], from: Instant, to: Instant) -> (Duration, Duration) {
    let mut times: Vec<Instant> = acked
        .iter()
        .map(|a| a.acked)
        .filter(|t| (from..=to).contains(t))
        .collect();
    times.push(from);
    times.push(to);
    times.sort();
    let gap = times
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default();
    let mut latencies: Vec<Duration> = acked
        .iter()
        .filter(|a| (from..=to).contains(&a.sent))
        .map(|a| a.acked - a.sent)
        .collect();
    latencies.sort();
    let p99 = latencies
        .get((latencies.len() * 99).div_ceil(100).saturating_sub(1))
        .copied()
        .unwrap_or_default();
    (gap, p99)
}

/// The services' start-up topic creation on the cluster: the topics get the
/// configured replication factor and `min.insync.replicas`.
async fn topics_created_by_the_services_have_rf_3_and_two_in_sync(cluster: &KafkaCluster) {
    let mut kafka = platform::settings::KafkaSettings {
        brokers: cluster.bootstrap(),
        topic: unique("created"),
        replication_factor: 3,
        min_insync_replicas: 2,
        ..Default::default()
    };
    kafka.dlq_topic = format!("{}.dlq", kafka.topic);
    platform::kafka::ensure_topics(&kafka, Duration::from_secs(10)).await;
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &kafka.brokers)
        .create()
        .unwrap();
    for topic in [&kafka.topic, &kafka.dlq_topic] {
        let configs = admin
            .describe_configs([&ResourceSpecifier::Topic(topic)], &AdminOptions::new())
            .await
            .unwrap();
        let config = configs
            .into_iter()
            .next()
            .unwrap()
            .expect("the topic's configuration");
        let min_insync = config
            .get("min.insync.replicas")
            .and_then(|e| e.value.clone());
        assert_eq!(min_insync.as_deref(), Some("2"), "{topic}");
        let metadata = admin
            .inner()
            .fetch_metadata(Some(topic.as_str()), Duration::from_secs(10))
            .unwrap();
        let replicas = metadata.topics()[0].partitions()[0].replicas().len();
        assert_eq!(replicas, 3, "{topic}: replication factor");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_three_node_cluster_loses_its_leader_its_controller_and_each_node_in_turn_without_a_refused_request(
) {
    // Alone: its failover figures are what other tests' brokers would stretch.
    let _machine = system_tests::take_the_machine().await;
    let started = Instant::now();
    let extra = measured_properties();
    if !extra.is_empty() {
        eprintln!("{MEASURE}: {extra:?} (the assertions hold for the shipped settings only)");
    }
    let cluster = Arc::new(
        tokio::task::spawn_blocking(move || KafkaCluster::start_with(3, &extra))
            .await
            .unwrap(),
    );
    eprintln!(
        "3 nodes answer after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    topics_created_by_the_services_have_rf_3_and_two_in_sync(&cluster).await;

    // The shipped settings: only what every test stack changes (ports, a
    // fresh database, topics and group).
    let stack = Stack::start_with(TestBroker::external(cluster.bootstrap()), |_| {}).await;
    let topic = stack.settings.kafka.topic.clone();
    let db = store::connect(&stack.settings.database).await.unwrap();
    blocking(&cluster, KafkaCluster::wait_fully_replicated).await;

    let load = Arc::new(Load::default());
    let clients: Vec<_> = (0..4)
        .map(|id| tokio::spawn(client(id, stack.producer.clone(), load.clone())))
        .collect();
    let poison_stop = Arc::new(AtomicBool::new(false));
    let poison = tokio::spawn(poisoner(
        cluster.bootstrap(),
        topic.clone(),
        poison_stop.clone(),
    ));
    more_acks(&load, 20, "the clients have 20 acknowledgements").await;

    let mut steps: Vec<(String, Instant, Instant)> = Vec::new();

    let from = Instant::now();
    let leader = {
        let topic = topic.clone();
        blocking(&cluster, move |c| c.leader_of(&topic, 0)).await
    };
    blocking(&cluster, move |c| c.kill(leader)).await;
    more_acks(&load, 20, "20 acknowledgements after the leader's SIGKILL").await;
    let step = format!("partition leader (node {leader}) SIGKILLed");
    steps.push((step, from, Instant::now()));
    blocking(&cluster, move |c| restart_replicated(c, leader)).await;

    let from = Instant::now();
    let controller = blocking(&cluster, KafkaCluster::active_controller).await;
    blocking(&cluster, move |c| c.kill(controller)).await;
    // The new controller is elected and the node fenced: then writes to
    // partitions it led go on. Wait for the election, then for acks.
    let successor = blocking(&cluster, KafkaCluster::active_controller).await;
    assert_ne!(successor, controller);
    more_acks(
        &load,
        20,
        "20 acknowledgements after the controller's SIGKILL",
    )
    .await;
    let step =
        format!("active controller (node {controller}) SIGKILLed, node {successor} took over");
    steps.push((step, from, Instant::now()));
    blocking(&cluster, move |c| restart_replicated(c, controller)).await;

    for id in cluster.ids() {
        let from = Instant::now();
        blocking(&cluster, move |c| {
            c.stop(id);
            restart_replicated(c, id);
        })
        .await;
        more_acks(&load, 20, "20 acknowledgements after a node's restart").await;
        let step = format!("node {id} restarted (SIGTERM)");
        steps.push((step, from, Instant::now()));
    }

    load.stop.store(true, Ordering::Relaxed);
    poison_stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.expect("a client failed");
    }
    let (poison_sent, poisoned) = poison.await.unwrap();
    let acked = std::mem::take(&mut *load.acked.lock().unwrap());
    let refused = load.refused.load(Ordering::Relaxed);

    for (what, from, to) in &steps {
        let (gap, p99) = measure(&acked, *from, *to);
        eprintln!(
            "{what}: longest time without a 202 {:.2} s, p99 latency {:.2} s ({:.1} s to 20 acks after it)",
            gap.as_secs_f64(),
            p99.as_secs_f64(),
            (*to - *from).as_secs_f64()
        );
    }
    eprintln!(
        "{} acknowledged, {refused} refused, {} poison records; {:.1} s in all",
        acked.len(),
        poisoned.len(),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(refused, 0, "requests refused with the shipped settings");

    // Every acknowledged model counted once, nothing else counted.
    let acked_models: BTreeSet<String> = acked.iter().map(|a| a.model.clone()).collect();
    assert_eq!(
        acked_models.len(),
        acked.len(),
        "a model acknowledged twice"
    );
    eventually(
        "the consumer has counted every acknowledged observation",
        async || {
            let counts = stored_counts(&db).await;
            for (model, (successes, failures)) in &counts {
                assert!(
                    *successes <= 1 && *failures == 0,
                    "{model} counted more than once: {successes} successes, {failures} failures"
                );
                assert!(
                    acked_models.contains(model),
                    "{model} counted but never acknowledged"
                );
            }
            (counts.len() == acked_models.len()).then_some(())
        },
    )
    .await;

    // No offset gap: the consumer, never restarted, has committed up to the
    // end of the log (observations and poison alike).
    let (_, end) = stack.broker.watermarks(&topic, 0);
    let group = stack.settings.consumer.group_id.clone();
    eventually(
        "the consumer's stored offset reaches the end of the log",
        async || {
            let next = store::load_offset(&db, &group, &topic, 0).await.unwrap();
            (next == Some(end)).then_some(())
        },
    )
    .await;

    // Every poison record the brokers acknowledged is in the dead-letter
    // topic, once.
    let letters = stack
        .broker
        .records_at_least(&stack.settings.kafka.dlq_topic, poisoned.len())
        .await;
    let mut lettered = BTreeSet::new();
    for letter in &letters {
        let key = letter.key_str().expect("a dead letter keeps its key");
        assert!(
            lettered.insert(key.clone()),
            "{key} is in the dead-letter topic twice"
        );
    }
    let missing: Vec<_> = poisoned.difference(&lettered).collect();
    assert!(
        missing.is_empty(),
        "acknowledged poison not in the dead-letter topic: {missing:?}"
    );
    let unknown: Vec<_> = lettered.difference(&poison_sent).collect();
    assert!(unknown.is_empty(), "dead letters never sent: {unknown:?}");
    stack.stop().await;
}
