//! The admin port: health, readiness (database, broker, polling thread) and metrics.

use consumer::Assignment;

use crate::helpers::{eventually, get, workload, TestEnv};

/// The value of the first sample of `name` (with `labels`, if any) in a Prometheus text body.
pub fn sample(body: &str, name: &str, labels: &str) -> Option<f64> {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| {
            l.starts_with(name) && l[name.len()..].starts_with([' ', '{']) && l.contains(labels)
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_port_answers_health_readiness_and_metrics() {
    let env = TestEnv::new(1).await;
    let records = workload(30, 5);
    env.publish(&records).await;
    let running = env.spawn(env.settings(), Assignment::Subscribe, None).await;

    let (status, body) = get(&running.url("/healthz")).await;
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#));
    eventually("the consumer is ready", async || {
        (get(&running.url("/readyz")).await.0 == 200).then_some(())
    })
    .await;
    env.wait_for_offset(0, 30).await;

    let topic_label = format!("topic=\"{}\"", env.topic);
    let body = eventually("the lag gauge shows the partition caught up", async || {
        let (_, body) = get(&running.url("/metrics")).await;
        (sample(&body, "consumer_lag_records", &topic_label) == Some(0.0)).then_some(body)
    })
    .await;
    // Other tests may share this process's recorder, hence "at least".
    for (name, at_least) in [
        ("consumer_records_consumed_total", 30.0),
        ("consumer_records_applied_total", 30.0),
        ("consumer_records_dead_lettered_total", 6.0),
        ("consumer_observations_applied_total", 24.0),
        ("consumer_batches_total", 6.0),
        ("consumer_batch_size_records_count", 6.0),
        ("consumer_batch_latency_seconds_count", 6.0),
        ("consumer_db_apply_seconds_count", 6.0),
    ] {
        let value = sample(&body, name, "").unwrap_or_else(|| panic!("{name} missing:\n{body}"));
        assert!(
            value >= at_least,
            "{name} = {value}, expected at least {at_least}"
        );
    }
    assert!(
        body.contains("consumer_batch_size_records_bucket{le=\"10\"}"),
        "{body}"
    );
    running.stop().await.expect("graceful stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_reports_a_broker_outage_and_consuming_resumes_after_it() {
    // The mock cluster takes its broker down on cue, whatever KAFKA_BROKERS says.
    let env = TestEnv::on_mock_cluster(1).await;
    let cluster = env.kafka.mock().expect("a mock cluster");
    let records = workload(40, 0);
    let running = env.spawn(env.settings(), Assignment::Subscribe, None).await;
    env.publish(&records[..20]).await;
    env.wait_for_offset(0, 20).await;

    cluster.broker_down(1).expect("broker down");
    eventually("readiness reports the broker down", async || {
        let (status, body) = get(&running.url("/readyz")).await;
        (status == 503 && body.contains("\"name\":\"broker\",\"ok\":false")).then_some(())
    })
    .await;
    cluster.broker_up(1).expect("broker up");
    eventually("readiness recovers", async || {
        (get(&running.url("/readyz")).await.0 == 200).then_some(())
    })
    .await;

    env.publish(&records[20..]).await;
    env.wait_for_offset(0, 40).await;
    assert_eq!(
        env.counts().await,
        crate::helpers::expected_counts(&records)
    );
    running.stop().await.expect("graceful stop");
}

#[test]
fn the_openapi_document_lists_the_admin_routes() {
    let doc = consumer::admin::openapi();
    let paths: Vec<&str> = doc.paths.paths.keys().map(String::as_str).collect();
    assert_eq!(paths, vec!["/healthz", "/metrics", "/readyz"]);
}
