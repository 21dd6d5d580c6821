//! The broker's side: readiness, what a client sees when the broker is
//! unreachable (a 503 within the acknowledgement timeout, never a hang), and
//! a fatal client error (reported, counted, and the client replaced).

use std::time::{Duration, Instant};

use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

use crate::helpers::{spawn_app, spawn_app_on_mock_cluster, spawn_app_without_broker};

#[tokio::test]
async fn with_the_broker_unreachable_a_write_answers_503_with_retry_after() {
    // The client's own deadline (helpers::HTTP_DEADLINE) turns a hang into a failure.
    let app =
        spawn_app_without_broker(|s| s.producer.ack_timeout = Duration::from_millis(1_000)).await;
    let single = app.post_json(r#"{"model":"globe","outcome":"w"}"#).await;
    single.assert_error(503, "broker_unavailable", "did not acknowledge");
    let retry_after = single
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok());
    assert_eq!(retry_after, Some("1"));

    let batch = app.post_json(r#"[{"outcome":"w"},{"outcome":"l"}]"#).await;
    batch.assert_error(503, "broker_unavailable", "did not acknowledge");
    let seed = app
        .send(reqwest::Method::POST, "/update_model/w", None, &[], "")
        .await;
    seed.assert_error(503, "broker_unavailable", "did not acknowledge");
}

#[tokio::test]
async fn with_the_broker_unreachable_readyz_says_not_ready_and_healthz_still_answers() {
    let app = spawn_app_without_broker(|_| {}).await;
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status, 503, "{}", ready.text);
    let body = ready.json();
    assert_eq!(body["status"], "not_ready", "{body}");
    let broker = &body["checks"][0];
    assert_eq!(
        (&broker["name"], &broker["ok"]),
        (&"broker".into(), &false.into()),
        "{body}"
    );
    assert!(
        broker["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{body}"
    );
    assert!(ready.headers.contains_key("retry-after"));
    let health = app.get("/healthz").await;
    assert_eq!(
        (health.status, health.json()),
        (200, serde_json::json!({"status": "ok"}))
    );
}

#[tokio::test]
async fn readyz_is_ready_when_the_broker_serves_the_topic() {
    let app = spawn_app().await;
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status, 200, "{}", ready.text);
    let body = ready.json();
    assert_eq!(body["status"], "ready");
    let broker = &body["checks"][0];
    assert_eq!(
        (&broker["name"], &broker["ok"]),
        (&"broker".into(), &true.into()),
        "{body}"
    );
    assert_eq!(broker["topic"], app.topic.as_str());
    assert_eq!(broker["partitions"], 1);
    assert!(broker["brokers"].as_u64().is_some_and(|n| n >= 1), "{body}");
}

#[tokio::test]
async fn writes_succeed_again_once_a_broker_that_went_down_is_back() {
    // Only the in-process mock cluster can be stopped by a test.
    let app =
        spawn_app_on_mock_cluster(|s| s.producer.ack_timeout = Duration::from_millis(1_000)).await;
    let mock = app.broker().mock().expect("a mock cluster");
    // The first write also sets the idempotent producer up (metadata, a
    // producer id), which on a loaded machine can take longer than the short
    // acknowledgement timeout: retry it within a deadline.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let answer = app.post_json(r#"{"model":"first","outcome":"w"}"#).await;
        if answer.status == 202 {
            break;
        }
        answer.assert_error(503, "broker_unavailable", "");
        assert!(Instant::now() < deadline, "the first write never succeeded");
    }
    mock.broker_down(-1).expect("stopping the brokers");
    app.post_json(r#"{"model":"during","outcome":"w"}"#)
        .await
        .assert_error(503, "broker_unavailable", "did not acknowledge");
    mock.broker_up(-1).expect("restarting the brokers");
    // The producer reconnects in the background; each attempt is bounded by
    // the acknowledgement timeout, the whole wait by a deadline.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let answer = app.post_json(r#"{"model":"after","outcome":"w"}"#).await;
        if answer.status == 202 {
            break;
        }
        answer.assert_error(503, "broker_unavailable", "");
        assert!(
            Instant::now() < deadline,
            "writes did not recover: {}",
            answer.text
        );
    }
    let keys: Vec<Option<String>> = app.records().await.into_iter().map(|r| r.key).collect();
    assert_eq!(keys.first(), Some(&Some("first".to_owned())), "{keys:?}");
    assert_eq!(keys.last(), Some(&Some("after".to_owned())), "{keys:?}");
}

/// Posts `model` until the producer acknowledges it (a new idempotent client
/// first fetches metadata and a producer id, which on a loaded machine can
/// take longer than a short acknowledgement timeout), within a deadline.
async fn post_until_acknowledged(app: &crate::helpers::TestApp, model: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let answer = app
            .post_json(&format!(r#"{{"model":"{model}","outcome":"w"}}"#))
            .await;
        if answer.status == 202 {
            return;
        }
        answer.assert_error(503, "broker_unavailable", "");
        assert!(
            Instant::now() < deadline,
            "{model} was never acknowledged: {}",
            answer.text
        );
    }
}

#[tokio::test]
async fn a_fatal_client_error_is_reported_counted_and_the_client_replaced_without_a_restart() {
    let app =
        spawn_app_on_mock_cluster(|s| s.producer.ack_timeout = Duration::from_millis(3_000)).await;
    let mock = app.broker().mock().expect("a mock cluster");
    post_until_acknowledged(&app, "before").await;

    // The broker says the oldest batch in flight is out of sequence: the
    // idempotent client can no longer vouch for order or once-ness, which
    // librdkafka makes a fatal error of.
    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER],
    );
    app.post_json(r#"{"model":"fatal","outcome":"w"}"#)
        .await
        .assert_error(503, "broker_unavailable", "");

    let ready = app.get("/readyz").await;
    assert_eq!(ready.status, 503, "{}", ready.text);
    let broker = &ready.json()["checks"][0];
    assert_eq!(broker["name"], "broker", "{}", ready.text);
    assert!(
        broker["error"]
            .as_str()
            .is_some_and(|e| e.contains("fatal Kafka client error")),
        "{}",
        ready.text
    );

    // The new client writes, and readiness is back, without a restart.
    post_until_acknowledged(&app, "after").await;
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status, 200, "{}", ready.text);
    let metrics = app.get("/metrics").await.text;
    let fatal = metrics
        .lines()
        .find(|l| l.starts_with(r#"kafka_producer_fatal_errors_total{client="producer"}"#))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok());
    assert!(fatal.is_some_and(|n| n >= 1.0), "{metrics}");
    let keys: Vec<Option<String>> = app.records().await.into_iter().map(|r| r.key).collect();
    assert_eq!(keys.first(), Some(&Some("before".to_owned())), "{keys:?}");
    assert_eq!(keys.last(), Some(&Some("after".to_owned())), "{keys:?}");
}
