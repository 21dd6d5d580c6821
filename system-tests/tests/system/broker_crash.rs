//! The broker killed mid-stream: a real Apache Kafka of this test's own
//! (`KafkaProcess`, never the shared one) is SIGKILLed while clients post
//! observations to the producer, then restarted on the same data and ports.
//! The producer answers 503 while it is down and 202 again once it is back,
//! by itself; the consumer resumes; and every acknowledged observation is
//! counted exactly once.
//!
//! What can be asserted exactly: each request names a model of its own, so
//! each stored count says which request it came from. A 202 promises the
//! record is stored, so every acknowledged model must be counted, once. A 503
//! promises nothing: the record may have been written after all (its
//! acknowledgement lost with the broker), so a refused model may be counted
//! once or not at all, but never twice. The topic itself is the referee: the
//! stored models must be exactly the records the log holds, each once.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use platform::store;
use system_tests::{post_while_failing, stored_counts, Answer, Stack};
use test_support::broker::TestBroker;
use test_support::eventually;
use test_support::kafka_process::KafkaProcess;

/// What the clients were told, request by request.
#[derive(Debug, Default)]
struct Outcomes {
    /// Models whose request got 202.
    acked: Vec<String>,
    /// Models whose request got 503.
    refused: Vec<String>,
}

/// Posts one observation of a fresh model after another until `stop`,
/// noting each answer. Anything but 202 or a well-formed 503 fails the test.
async fn client(
    id: usize,
    producer: String,
    outcomes: Arc<Mutex<Outcomes>>,
    acked: Arc<AtomicUsize>,
    refused: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut seq = 0;
    while !stop.load(Ordering::Relaxed) {
        let model = format!("crash-{id}-{seq}");
        seq += 1;
        match post_while_failing(&http, &producer, &model, None).await {
            Answer::Acked => {
                outcomes.lock().unwrap().acked.push(model);
                acked.fetch_add(1, Ordering::Relaxed);
            }
            Answer::Refused(_) => {
                outcomes.lock().unwrap().refused.push(model);
                refused.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broker_killed_mid_stream_costs_503s_and_no_acknowledged_observation_is_lost_or_doubled()
{
    let _machine = system_tests::share_the_machine().await;
    let kafka = Arc::new(
        tokio::task::spawn_blocking(KafkaProcess::start)
            .await
            .unwrap(),
    );
    let stack = Stack::start_with(TestBroker::external(kafka.bootstrap()), |settings| {
        // Short, so that requests caught by the crash are answered (503)
        // while the broker is still down.
        settings.producer.ack_timeout = Duration::from_secs(2);
    })
    .await;
    let db = store::connect(&stack.settings.database).await.unwrap();

    let outcomes = Arc::new(Mutex::new(Outcomes::default()));
    let acked = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|id| {
            tokio::spawn(client(
                id,
                stack.producer.clone(),
                outcomes.clone(),
                acked.clone(),
                refused.clone(),
                stop.clone(),
            ))
        })
        .collect();

    eventually("the clients have 20 acknowledgements", async || {
        (acked.load(Ordering::Relaxed) >= 20).then_some(())
    })
    .await;
    let k = kafka.clone();
    tokio::task::spawn_blocking(move || k.kill()).await.unwrap();
    let killed = Instant::now();
    eventually(
        "a client is answered 503 while the broker is down",
        async || (refused.load(Ordering::Relaxed) >= 1).then_some(()),
    )
    .await;

    let k = kafka.clone();
    tokio::task::spawn_blocking(move || k.restart())
        .await
        .unwrap();
    let restarted = Instant::now();
    let acked_at_restart = acked.load(Ordering::Relaxed);
    eventually(
        "the producer acknowledges 20 more requests after the restart",
        async || (acked.load(Ordering::Relaxed) >= acked_at_restart + 20).then_some(()),
    )
    .await;
    let recovered = Instant::now();
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.expect("a client failed");
    }

    let Outcomes { acked, refused } = std::mem::take(&mut *outcomes.lock().unwrap());
    let acked: BTreeSet<String> = acked.into_iter().collect();
    let refused: BTreeSet<String> = refused.into_iter().collect();
    assert!(!refused.is_empty());

    // The log: each request's record at most once (the idempotent producer
    // wrote none twice across the crash), every acknowledged one there.
    let records = stack.broker.records(&stack.settings.kafka.topic).await;
    let mut logged = BTreeSet::new();
    for record in &records {
        let key = record.key_str().expect("a keyed record");
        assert!(logged.insert(key.clone()), "{key} is in the log twice");
    }
    let lost: Vec<_> = acked.difference(&logged).collect();
    assert!(lost.is_empty(), "acknowledged but not in the log: {lost:?}");
    let unknown: Vec<_> = logged
        .iter()
        .filter(|m| !acked.contains(*m) && !refused.contains(*m))
        .collect();
    assert!(unknown.is_empty(), "in the log but never sent: {unknown:?}");

    // The store: exactly the log, each model counted once.
    let counts = eventually("the consumer has counted the whole log", async || {
        let counts = stored_counts(&db).await;
        for (model, (successes, failures)) in &counts {
            assert!(
                *successes <= 1 && *failures == 0,
                "{model} counted more than once: {successes} successes, {failures} failures"
            );
        }
        let counted: BTreeSet<&String> = counts
            .iter()
            .filter(|(_, c)| **c == (1, 0))
            .map(|(m, _)| m)
            .collect();
        (counted == logged.iter().collect()).then_some(counts)
    })
    .await;
    let refused_but_counted = refused.iter().filter(|m| counts.contains_key(*m)).count();
    eprintln!(
        "broker down {:.1} s, 20 acknowledgements {:.1} s after it answered again; \
         {} acknowledged, {} refused ({} of them written after all), {} counted",
        (restarted - killed).as_secs_f64(),
        (recovered - restarted).as_secs_f64(),
        acked.len(),
        refused.len(),
        refused_but_counted,
        counts.len()
    );
    stack.stop().await;
}
