//! Crash safety: stopped abruptly anywhere, restarted, the consumer ends with
//! exactly the published records: none lost, none doubled.

use std::collections::BTreeSet;
use std::sync::Arc;

use consumer::{Assignment, ConsumerError, Stage};
use test_support::proxy::{Cut, PgProxy};

use crate::helpers::{eventually, expected_counts, get, workload, Recorder, TestEnv};

const RECORDS: usize = 60;
/// Every 7th record is poison.
const POISON_EVERY: usize = 7;

/// Publishes, crashes the consumer at the `nth` time it reaches `stage`,
/// restarts a fresh one, and checks the outcome.
async fn crash_and_recover(stage: Stage, nth: usize, assignment: Assignment) {
    let env = TestEnv::new(1).await;
    let records = workload(RECORDS, POISON_EVERY);
    env.publish(&records).await;

    let recorder = Recorder::crash_at(stage, nth);
    let crashed = env
        .spawn(env.settings(), assignment.clone(), Some(recorder.clone()))
        .await;
    match crashed.finished().await {
        Err(ConsumerError::Crashed(checkpoint)) => assert_eq!(checkpoint.stage, stage),
        other => panic!("expected an injected crash at {stage:?}, got {other:?}"),
    }
    let written_before = env.stored_offset(0).await.unwrap_or(0);
    assert!(written_before < RECORDS as i64, "the crash left work to do");

    let restarted = env.spawn(env.settings(), assignment, None).await;
    env.wait_for_offset(0, RECORDS as i64).await;
    assert_eq!(
        env.counts().await,
        expected_counts(&records),
        "crash at {stage:?} #{nth}"
    );
    env.assert_history_consistent().await;
    // The dead-letter topic is at-least-once: a crash after the ack and
    // before the commit sends a poison record again. It holds every poison
    // record and nothing else.
    let poison: BTreeSet<String> = (0..RECORDS)
        .filter(|i| i % POISON_EVERY == POISON_EVERY - 1)
        .map(|i| i.to_string())
        .collect();
    let dlq = env.read_dlq(poison.len()).await;
    let offsets: BTreeSet<String> = dlq
        .iter()
        .map(|r| r.headers.get("source-offset").cloned().unwrap_or_default())
        .collect();
    assert_eq!(offsets, poison);
    restarted.stop().await.expect("graceful stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_while_a_batch_fills_loses_nothing() {
    crash_and_recover(Stage::Polled, 23, Assignment::Subscribe).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_consuming_a_batch_and_writing_it_loses_nothing() {
    crash_and_recover(Stage::Consumed, 3, Assignment::Subscribe).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_dead_lettering_and_before_the_transaction_loses_nothing() {
    crash_and_recover(Stage::DeadLettered, 2, Assignment::Manual(vec![0])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_the_database_commit_and_before_the_kafka_commit_doubles_nothing() {
    crash_and_recover(Stage::Applied, 3, Assignment::Subscribe).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_right_after_the_kafka_commit_doubles_nothing() {
    crash_and_recover(Stage::KafkaCommitted, 2, Assignment::Manual(vec![0])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_running_consumer_mid_stream_loses_nothing() {
    let env = TestEnv::new(1).await;
    let records = workload(300, POISON_EVERY);
    env.publish(&records).await;
    let running = env.spawn(env.settings(), Assignment::Subscribe, None).await;
    eventually("a first batch is written", async || {
        env.stored_offset(0).await.filter(|o| *o > 0)
    })
    .await;
    running.kill();

    let restarted = env.spawn(env.settings(), Assignment::Subscribe, None).await;
    env.wait_for_offset(0, 300).await;
    assert_eq!(env.counts().await, expected_counts(&records));
    env.assert_history_consistent().await;
    restarted.stop().await.expect("graceful stop");
}

/// The consumer's database connection fails around the batch statement of
/// three batches; the consumer retries and ends exact.
async fn cut_database_connections(cut: Cut) -> Arc<Recorder> {
    let env = TestEnv::new(1).await;
    let records = workload(RECORDS, POISON_EVERY);
    let proxy = PgProxy::start(&env.test_db.url()).await.expect("proxy");
    let recorder = Arc::new(Recorder::default());
    let running = env
        .spawn(
            env.settings_via(proxy.url(&env.test_db.url())),
            Assignment::Manual(vec![0]),
            Some(recorder.clone()),
        )
        .await;
    for (round, chunk) in records.chunks(RECORDS / 3).enumerate() {
        // The notify channel is a parameter of the batch statement only, so
        // the next batch's statement is the one that fails.
        proxy.arm(env.channel.as_bytes(), cut, 1);
        env.publish(chunk).await;
        let written = ((round + 1) * chunk.len()) as i64;
        env.wait_for_offset(0, written).await;
        assert_eq!(proxy.cuts(), round + 1, "{cut:?}: the connection was cut");
    }
    assert_eq!(env.counts().await, expected_counts(&records), "{cut:?}");
    env.assert_history_consistent().await;
    running.stop().await.expect("graceful stop");
    recorder
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_cut_before_the_batch_statement_reaches_postgres_is_retried() {
    let recorder = cut_database_connections(Cut::BeforeForwarding).await;
    assert!(recorder.seen(Stage::Conflict).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_cut_while_postgres_runs_the_batch_statement_is_retried() {
    cut_database_connections(Cut::AfterForwarding).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_committed_whose_reply_was_lost_is_not_applied_again() {
    let recorder = cut_database_connections(Cut::SwallowReply).await;
    // Each retry found the offset already moved by its own first attempt,
    // and took it as written.
    let conflicts = recorder.seen(Stage::Conflict);
    assert_eq!(conflicts.len(), 3, "{conflicts:?}");
    let applied = recorder.seen(Stage::Applied);
    for conflict in &conflicts {
        assert!(
            applied
                .iter()
                .all(|a| a.first_offset != conflict.first_offset),
            "the batch at {} was not written twice",
            conflict.first_offset
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_for_a_while_delays_batches_but_skips_none() {
    let env = TestEnv::new(1).await;
    let records = workload(RECORDS, POISON_EVERY);
    let (first, rest) = records.split_at(20);
    let proxy = PgProxy::start(&env.test_db.url()).await.expect("proxy");
    let running = env
        .spawn(
            env.settings_via(proxy.url(&env.test_db.url())),
            Assignment::Subscribe,
            None,
        )
        .await;
    env.publish(first).await;
    env.wait_for_offset(0, 20).await;

    proxy.set_down(true);
    env.publish(rest).await;
    eventually("readiness reports the database down", async || {
        let (status, body) = get(&running.url("/readyz")).await;
        (status == 503 && body.contains("\"name\":\"database\",\"ok\":false")).then_some(())
    })
    .await;
    assert_eq!(
        env.stored_offset(0).await,
        Some(20),
        "nothing written while down"
    );

    proxy.set_down(false);
    env.wait_for_offset(0, RECORDS as i64).await;
    assert_eq!(env.counts().await, expected_counts(&records));
    env.assert_history_consistent().await;
    eventually("readiness recovers", async || {
        (get(&running.url("/readyz")).await.0 == 200).then_some(())
    })
    .await;
    running.stop().await.expect("graceful stop");
}
