//! Every valid record counts exactly once; the position lives in Postgres.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use consumer::{Action, Assignment, Stage};

use crate::helpers::{eventually, expected_counts, workload, Hook, Rec, TestEnv};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_valid_record_counts_once_and_history_versions_are_consecutive() {
    let env = TestEnv::new(1).await;
    let records = workload(200, 0);
    env.publish(&records).await;
    let mut settings = env.settings();
    settings.consumer.batch_size = 7;
    let running = env.spawn(settings, Assignment::Subscribe, None).await;

    env.wait_for_offset(0, 200).await;
    assert_eq!(env.counts().await, expected_counts(&records));
    env.assert_history_consistent().await;
    // More batches than models: versions went well past 1.
    let history = env.history().await;
    assert!(history.len() > 3 * 10, "{} history rows", history.len());

    // Kafka's copy of the offset follows, for lag tools.
    eventually("Kafka has the committed offset", async || {
        (env.kafka_committed(0) == Some(200)).then_some(())
    })
    .await;
    running.stop().await.expect("graceful stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_resumes_from_postgres_even_when_kafkas_committed_offset_disagrees() {
    // Behind: trusting Kafka would count records 5..20 twice. Ahead: it
    // would skip records 20..25.
    for wrong in [5, 25] {
        let env = TestEnv::new(1).await;
        let first = workload(20, 0);
        env.publish(&first).await;
        let running = env.spawn(env.settings(), Assignment::Subscribe, None).await;
        env.wait_for_offset(0, 20).await;
        running.stop().await.expect("graceful stop");

        env.commit_to_kafka(0, wrong);
        assert_eq!(env.kafka_committed(0), Some(wrong));
        let second = workload(30, 0).split_off(20);
        env.publish(&second).await;

        let running = env.spawn(env.settings(), Assignment::Subscribe, None).await;
        env.wait_for_offset(0, 30).await;
        let all: Vec<Rec> = first.iter().chain(&second).cloned().collect();
        assert_eq!(
            env.counts().await,
            expected_counts(&all),
            "Kafka said {wrong}, Postgres said 20"
        );
        env.assert_history_consistent().await;
        running.stop().await.expect("graceful stop");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_writes_the_batch_in_hand_before_leaving() {
    let env = TestEnv::new(1).await;
    let records = workload(12, 4);
    env.publish(&records).await;
    let mut settings = env.settings();
    // The batch would wait a minute to fill: only the stop can flush it.
    settings.consumer.batch_size = 1_000;
    settings.consumer.batch_wait = std::time::Duration::from_secs(60);
    let polled = Arc::new(AtomicUsize::new(0));
    let counter = polled.clone();
    let hook = Hook(move |c: &consumer::Checkpoint| {
        if c.stage == Stage::Polled {
            counter.fetch_add(1, Ordering::AcqRel);
        }
        Action::Continue
    });
    let running = env
        .spawn(settings, Assignment::Subscribe, Some(Arc::new(hook)))
        .await;
    eventually("all records are polled", async || {
        (polled.load(Ordering::Acquire) == 12).then_some(())
    })
    .await;
    assert_eq!(env.stored_offset(0).await, None, "nothing written yet");

    running.stop().await.expect("graceful stop");
    assert_eq!(env.stored_offset(0).await, Some(12));
    assert_eq!(env.counts().await, expected_counts(&records));
    assert_eq!(env.read_dlq(3).await.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_member_takes_over_partitions_mid_stream_without_loss() {
    let env = TestEnv::new(2).await;
    let records = workload(400, 0);
    let (first, rest) = records.split_at(100);
    env.publish_to(None, first).await;
    let a = env.spawn(env.settings(), Assignment::Subscribe, None).await;
    eventually("the first member wrote something", async || {
        let p0 = env.stored_offset(0).await.unwrap_or(0);
        let p1 = env.stored_offset(1).await.unwrap_or(0);
        (p0 + p1 > 0).then_some(())
    })
    .await;

    // A second member joins while records keep coming: the group rebalances.
    let b = env.spawn(env.settings(), Assignment::Subscribe, None).await;
    for chunk in rest.chunks(50) {
        env.publish_to(None, chunk).await;
    }
    let per_partition = high_watermarks(&env);
    env.wait_for_offset(0, per_partition.0).await;
    env.wait_for_offset(1, per_partition.1).await;
    assert_eq!(per_partition.0 + per_partition.1, 400);
    assert_eq!(env.counts().await, expected_counts(&records));
    env.assert_history_consistent().await;
    a.stop().await.expect("graceful stop");
    b.stop().await.expect("graceful stop");
}

fn high_watermarks(env: &TestEnv) -> (i64, i64) {
    use rdkafka::consumer::{BaseConsumer, Consumer as _};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &env.kafka.brokers)
        .create()
        .expect("consumer");
    let high = |p| {
        consumer
            .fetch_watermarks(&env.topic, p, std::time::Duration::from_secs(10))
            .expect("watermarks")
            .1
    };
    (high(0), high(1))
}
