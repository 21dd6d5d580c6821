//! A client's retry is counted once: the producer writes the request's
//! `Idempotency-Key` as the records' ids (`{key}:{i}` for batch item `i`) and
//! the consumer applies each id once, even when the first attempt reached the
//! log (its answer lost, or a 503 after part of a batch was written).

use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{json, Value};
use system_tests::Stack;
use test_support::DEADLINE;

/// A batch of `n` outcomes for `model`, alternating w and l from w.
fn batch(model: &str, n: usize) -> Value {
    let items: Vec<Value> = (0..n)
        .map(|i| json!({"model": model, "outcome": if i % 2 == 0 { "w" } else { "l" }}))
        .collect();
    Value::Array(items)
}

async fn post(stack: &Stack, key: &str, body: &Value) {
    let response = stack
        .http
        .post(format!("{}/observations", stack.producer))
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202, "{:?}", response.text().await);
}

/// Posts one observation to a model of its own and waits until it is
/// counted: the topic has one partition, so everything before it is too.
async fn drain(stack: &Stack) {
    let sentinel = format!("sentinel-{}", uuid::Uuid::new_v4().simple());
    let body = json!({"model": sentinel, "outcome": "w"});
    let response = stack
        .http
        .post(format!("{}/observations", stack.producer))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    stack.model_with_trials(&sentinel, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_retried_after_its_answer_was_lost_is_counted_once() {
    let _machine = system_tests::share_the_machine().await;
    let stack = Stack::start().await;
    let request = batch("lost", 100);
    post(&stack, "order-1", &request).await;
    // The client never saw that 202 and sends the same request again.
    post(&stack, "order-1", &request).await;
    // A single observation and a text run, each retried too.
    let one = json!({"model": "lost", "successes": 3, "trials": 4});
    post(&stack, "order-2", &one).await;
    post(&stack, "order-2", &one).await;
    for _ in 0..2 {
        let response = stack
            .http
            .post(format!("{}/observations?model=lost", stack.producer))
            .header("Idempotency-Key", "order-3")
            .header("Content-Type", "text/plain")
            .body("WLWWWLWLW")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202, "{:?}", response.text().await);
    }
    drain(&stack).await;
    let body = stack.model_with_trials("lost", 100 + 4 + 9).await;
    assert_eq!(body["successes"].as_u64(), Some(50 + 3 + 6), "{body}");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_retried_after_part_of_it_reached_the_log_counts_every_item_once() {
    let _machine = system_tests::share_the_machine().await;
    let stack = Stack::start().await;
    // The first attempt wrote items 0..40 and then failed (the broker went
    // away, the client got a 503): the records the producer would have
    // written, with the ids it derives.
    let raw: FutureProducer = stack.broker.client_config().create().unwrap();
    let request = batch("partial", 100);
    for (i, item) in request.as_array().unwrap().iter().take(40).enumerate() {
        let mut record = item.clone();
        record["id"] = json!(format!("order-9:{i}"));
        let payload = record.to_string();
        raw.send(
            FutureRecord::to(&stack.settings.kafka.topic)
                .key("partial")
                .payload(&payload),
            DEADLINE,
        )
        .await
        .unwrap();
    }
    // The retry sends the whole batch with the same key.
    post(&stack, "order-9", &request).await;
    drain(&stack).await;
    let body = stack.model_with_trials("partial", 100).await;
    assert_eq!(body["successes"].as_u64(), Some(50), "{body}");
    stack.stop().await;
}
