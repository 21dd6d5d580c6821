//! End to end: the three services in-process on port 0, a real Postgres and a
//! real Kafka-protocol broker (librdkafka's mock cluster, or `KAFKA_BROKERS`).
//! McElreath's nine globe tosses go in through the producer and come out of
//! the model service as the exact Beta(7, 4) posterior; a record typed by hand
//! is counted, a poison one is dead-lettered; the plot renders.

use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::Value;
use statrs::distribution::{Beta, ContinuousCDF};
use statrs::statistics::Distribution;
use system_tests::Stack;
use test_support::DEADLINE;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn observations_flow_from_http_and_kafka_to_the_exact_posterior() {
    let _machine = system_tests::share_the_machine().await;
    let stack = Stack::start().await;
    let http = reqwest::Client::new();

    // W L W W W L W L W, one request each, in order.
    for toss in ["w", "l", "w", "w", "w", "l", "w", "l", "w"] {
        let response = http
            .post(format!("{}/observations", stack.producer))
            .json(&serde_json::json!({"model": "globe", "outcome": toss}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202, "{:?}", response.text().await);
    }
    let body = stack.posterior_with_trials(9).await;
    assert_eq!(
        (body["successes"].as_u64(), body["failures"].as_u64()),
        (Some(6), Some(3))
    );

    // Uniform prior: exactly Beta(7, 4).
    let exact = Beta::new(7.0, 4.0).unwrap();
    let summary = &body["summary"];
    let close = |what: &str, got: &Value, want: f64| {
        let got = got.as_f64().unwrap_or(f64::NAN);
        assert!((got - want).abs() < 1e-6, "{what}: {got} vs exact {want}");
    };
    close("mean", &summary["mean"], exact.mean().unwrap());
    close("sd", &summary["sd"], exact.std_dev().unwrap());
    close("mode", &summary["mode"], 6.0 / 9.0);
    close("median", &summary["median"], exact.inverse_cdf(0.5));
    close(
        "pi.lower",
        &summary["pi"]["lower"],
        exact.inverse_cdf(0.055),
    );
    close(
        "pi.upper",
        &summary["pi"]["upper"],
        exact.inverse_cdf(0.945),
    );
    let hpdi = (
        summary["hpdi"]["lower"].as_f64().unwrap(),
        summary["hpdi"]["upper"].as_f64().unwrap(),
    );
    assert!(
        (exact.cdf(hpdi.1) - exact.cdf(hpdi.0) - 0.89).abs() < 1e-6,
        "{hpdi:?}"
    );

    // A record typed by hand (no key: the default model), then a poison one.
    let raw: FutureProducer = stack.broker.client_config().create().unwrap();
    let topic = &stack.settings.kafka.topic;
    raw.send(FutureRecord::<(), str>::to(topic).payload("w"), DEADLINE)
        .await
        .unwrap();
    raw.send(
        FutureRecord::to(topic).key("globe").payload("banana"),
        DEADLINE,
    )
    .await
    .unwrap();
    let body = stack.posterior_with_trials(10).await;
    assert_eq!(body["successes"].as_u64(), Some(7));

    // The poison record is in the dead-letter topic, with its reason.
    let dlq = stack
        .broker
        .records_at_least(&stack.settings.kafka.dlq_topic, 1)
        .await;
    assert_eq!(dlq.len(), 1, "{dlq:?}");
    let record = &dlq[0];
    assert_eq!(record.value.as_deref(), Some(&b"banana"[..]));
    assert_eq!(record.key.as_deref(), Some(&b"globe"[..]));
    let error = record.header("error").unwrap_or_default();
    assert!(error.contains("unknown outcome \"banana\""), "{error}");

    // And the plot.
    let response = http
        .get(format!(
            "{}/models/globe/posterior.png?width=640&height=480",
            stack.model
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "image/png");
    let png = response.bytes().await.unwrap();
    let decoder = png::Decoder::new(std::io::Cursor::new(png));
    let info = decoder.read_info().unwrap();
    assert_eq!((info.info().width, info.info().height), (640, 480));

    stack.stop().await;
}
