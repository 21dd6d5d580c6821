//! Partitions that cannot progress are held, never skipped, and said so:
//! an offset outside the log (the topic recreated, retention past the stored
//! offset), a batch the database refuses for good, records that wait while
//! the stored offset does not move. Readiness names each stalled partition
//! and the metrics count them; the operator resolves an offset gap
//! explicitly with `consumer.on_offset_gap`. A database whose state another
//! group or topic built is refused at start-up.
//!
//! The offset-gap tests delete topics and records, so they need a real
//! broker (`KAFKA_BROKERS`); they fail, not pass, without one.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use consumer::{Action, Assignment, Consumer, ConsumerError, Stage};
use platform::settings::{OnOffsetGap, Settings};
use sea_orm::{ConnectionTrait, DbBackend, Statement};

use crate::admin::sample;
use crate::helpers::{
    block_until, eventually, expected_counts, get, workload, Hook, Rec, Running, TestEnv,
};

/// A test environment on the real broker, or a clear failure without one.
async fn real_broker_env() -> TestEnv {
    let env = TestEnv::new(1).await;
    assert!(
        !env.kafka.is_mock(),
        "this test deletes topics or records: run it against a real broker (KAFKA_BROKERS)"
    );
    env
}

/// Waits until `/readyz` answers 503 with a body that contains every one of `parts`.
async fn wait_not_ready(running: &Running, parts: &[&str]) -> String {
    eventually(&format!("readiness reports {parts:?}"), async || {
        let (status, body) = get(&running.url("/readyz")).await;
        (status == 503 && parts.iter().all(|p| body.contains(p))).then_some(body)
    })
    .await
}

async fn wait_ready(running: &Running) {
    eventually("the consumer is ready", async || {
        (get(&running.url("/readyz")).await.0 == 200).then_some(())
    })
    .await;
}

/// Waits until the metric sample with `labels` reaches `at_least`.
async fn wait_metric(running: &Running, name: &str, labels: &str, at_least: f64) {
    eventually(&format!("{name}{{{labels}}} >= {at_least}"), async || {
        let (_, body) = get(&running.url("/metrics")).await;
        sample(&body, name, labels)
            .is_some_and(|v| v >= at_least)
            .then_some(())
    })
    .await;
}

async fn stalled_gauge(running: &Running, topic: &str) -> Option<f64> {
    let (_, body) = get(&running.url("/metrics")).await;
    sample(
        &body,
        "consumer_stalled_partitions",
        &format!("topic=\"{topic}\""),
    )
}

fn with_gap_policy(mut settings: Settings, policy: OnOffsetGap) -> Settings {
    settings.consumer.on_offset_gap = policy;
    settings
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_recreated_under_the_consumer_holds_the_partition_until_earliest_is_chosen() {
    let env = real_broker_env().await;
    let old = workload(30, 0);
    env.publish(&old).await;
    let running = env.spawn(env.settings(), Assignment::Subscribe, None).await;
    env.wait_for_offset(0, 30).await;

    env.kafka.delete_topic(&env.topic).await;
    env.kafka.create_topic(&env.topic, 1).await;
    let new = workload(5, 0);
    env.publish(&new).await;

    let partition = format!("partition {}/0 stalled: offset gap", env.topic);
    let body = wait_not_ready(&running, &[&partition, "beyond the log's end"]).await;
    assert!(body.contains("stored offset 30"), "{body}");
    let gap_labels = format!(
        "topic=\"{}\",partition=\"0\",side=\"beyond_end\"",
        env.topic
    );
    wait_metric(&running, "consumer_offset_gaps_total", &gap_labels, 1.0).await;
    assert_eq!(stalled_gauge(&running, &env.topic).await, Some(1.0));
    // Held: nothing of the new log was read past or skipped.
    assert_eq!(env.stored_offset(0).await, Some(30));
    assert_eq!(env.counts().await, expected_counts(&old));
    running.stop().await.expect("graceful stop");

    // The operator decides that the new log is to be counted from its start.
    let settings = with_gap_policy(env.settings(), OnOffsetGap::Earliest);
    let running = env.spawn(settings, Assignment::Subscribe, None).await;
    env.wait_for_offset(0, 5).await;
    let all: Vec<Rec> = old.iter().chain(&new).cloned().collect();
    assert_eq!(env.counts().await, expected_counts(&all));
    wait_ready(&running).await;
    running.stop().await.expect("graceful stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_offset_below_the_log_start_is_held_not_skipped() {
    let env = real_broker_env().await;
    let records = workload(40, 0);
    env.publish(&records[..20]).await;
    let running = env.spawn(env.settings(), Assignment::Subscribe, None).await;
    env.wait_for_offset(0, 20).await;
    running.stop().await.expect("graceful stop");

    // While the consumer is away, retention deletes records it never applied.
    env.publish(&records[20..]).await;
    env.kafka.delete_records(&env.topic, 0, 30).await;
    assert_eq!(env.kafka.watermarks(&env.topic, 0), (30, 40));

    let running = env.spawn(env.settings(), Assignment::Subscribe, None).await;
    let partition = format!("partition {}/0 stalled: offset gap", env.topic);
    let body = wait_not_ready(&running, &[&partition, "below the log's start"]).await;
    assert!(
        body.contains("low watermark 30") && body.contains("high watermark 40"),
        "{body}"
    );
    let gap_labels = format!(
        "topic=\"{}\",partition=\"0\",side=\"below_start\"",
        env.topic
    );
    wait_metric(&running, "consumer_offset_gaps_total", &gap_labels, 1.0).await;
    assert_eq!(env.stored_offset(0).await, Some(20));
    assert_eq!(env.counts().await, expected_counts(&records[..20]));
    running.stop().await.expect("graceful stop");

    // The operator accepts the loss of 20..30 and goes on.
    let settings = with_gap_policy(env.settings(), OnOffsetGap::Earliest);
    let running = env.spawn(settings, Assignment::Subscribe, None).await;
    env.wait_for_offset(0, 40).await;
    let kept: Vec<Rec> = records[..20]
        .iter()
        .chain(&records[30..])
        .cloned()
        .collect();
    assert_eq!(env.counts().await, expected_counts(&kept));
    let skipped = format!("topic=\"{}\",partition=\"0\"", env.topic);
    wait_metric(
        &running,
        "consumer_offset_gap_records_skipped_total",
        &skipped,
        10.0,
    )
    .await;
    wait_ready(&running).await;
    running.stop().await.expect("graceful stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_the_database_refuses_for_good_stalls_the_partition_until_it_is_repaired() {
    let env = TestEnv::new(1).await;
    let running = env.spawn(env.settings(), Assignment::Subscribe, None).await;
    env.publish(&[Rec::new(Some("globe"), "w")]).await;
    env.wait_for_offset(0, 1).await;

    // One more success would not fit in a BIGINT: Postgres refuses the batch.
    env.db
        .execute(Statement::from_string(
            DbBackend::Postgres,
            "UPDATE model_states SET successes = 9223372036854775807 WHERE model_id = 'globe'",
        ))
        .await
        .expect("update");
    env.publish(&[Rec::new(Some("globe"), "w")]).await;
    let partition = format!("partition {}/0 stalled: permanent store error", env.topic);
    wait_not_ready(&running, &[&partition, "records 1..2"]).await;
    assert_eq!(stalled_gauge(&running, &env.topic).await, Some(1.0));
    assert_eq!(env.stored_offset(0).await, Some(1));

    // Repaired: the same batch commits, and the stall clears.
    env.db
        .execute(Statement::from_string(
            DbBackend::Postgres,
            "UPDATE model_states SET successes = 1 WHERE model_id = 'globe'",
        ))
        .await
        .expect("update");
    env.wait_for_offset(0, 2).await;
    wait_ready(&running).await;
    assert_eq!(stalled_gauge(&running, &env.topic).await, Some(0.0));
    assert_eq!(env.counts().await["globe"], (2, 0));
    running.stop().await.expect("graceful stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_reports_records_that_wait_while_the_stored_offset_does_not_move() {
    let env = TestEnv::new(1).await;
    let mut settings = env.settings();
    settings.consumer.stall_timeout = Duration::from_millis(300);
    let release = Arc::new(AtomicBool::new(false));
    let released = release.clone();
    // The first batch hangs before it is written, as on a stuck dependency.
    let hook = Hook(move |c: &consumer::Checkpoint| {
        if c.stage == Stage::Consumed {
            block_until(&released);
        }
        Action::Continue
    });
    let running = env
        .spawn(settings, Assignment::Subscribe, Some(Arc::new(hook)))
        .await;
    env.publish(&workload(10, 0)).await;

    let partition = format!("partition {}/0 stalled: no progress", env.topic);
    wait_not_ready(&running, &[&partition, "10 records wait"]).await;

    release.store(true, Ordering::Release);
    env.wait_for_offset(0, 10).await;
    wait_ready(&running).await;
    running.stop().await.expect("graceful stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_holding_another_groups_state_is_refused_at_start_up() {
    let env = TestEnv::new(1).await;
    env.publish(&workload(5, 0)).await;
    let running = env.spawn(env.settings(), Assignment::Subscribe, None).await;
    env.wait_for_offset(0, 5).await;
    running.stop().await.expect("graceful stop");

    let mut other_group = env.settings();
    other_group.consumer.group_id = format!("{}-renamed", env.group);
    let err = Consumer::build(other_group)
        .await
        .expect_err("another group is refused");
    assert!(
        matches!(&err, ConsumerError::ForeignState { stored_group, .. } if *stored_group == env.group),
        "{err}"
    );
    for part in [
        "consumer.group_id",
        "UPDATE consumer_offsets",
        "empty database",
    ] {
        assert!(err.to_string().contains(part), "{part} missing: {err}");
    }

    let mut other_topic = env.settings();
    other_topic.kafka.topic = format!("{}-other", env.topic);
    let err = Consumer::build(other_topic)
        .await
        .expect_err("another topic is refused");
    assert!(
        matches!(&err, ConsumerError::ForeignState { stored_topic, .. } if *stored_topic == env.topic),
        "{err}"
    );
    assert!(!err.is_transient(), "start-up must not retry it forever");

    // The group that built the state starts as before.
    Consumer::build(env.settings())
        .await
        .expect("the same group and topic start");
}
