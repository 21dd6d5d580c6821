//! Apache Kafka's own console producer, as the README tells users to run it
//! (`scripts/kafka-console-producer.sh`, the released jars), against the
//! whole stack: every accepted form it can type is counted, and a garbage
//! line is dead-lettered with its reason.
//!
//! It needs a real Apache Kafka (the console producer is a Java client):
//! `scripts/test.sh` starts one and names it in `KAFKA_BROKERS`. Without it
//! the test fails and says so, rather than passing without having run.

use std::path::Path;

use system_tests::{run_with_input, Stack};
use test_support::TestEnvironment;

/// Runs the console producer on `topic` with `args`, typing `lines`, and
/// waits until it has sent them and exited.
fn console_producer(brokers: &str, topic: &str, args: &[&str], lines: &[&str]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/kafka-console-producer.sh");
    let args: Vec<String> = ["--bootstrap-server", brokers, "--topic", topic]
        .iter()
        .chain(args)
        .map(|arg| (*arg).to_owned())
        .collect();
    run_with_input(&script, &args, lines);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn what_users_type_into_kafkas_console_producer_is_counted_and_garbage_is_dead_lettered() {
    let _machine = system_tests::share_the_machine().await;
    assert!(
        TestEnvironment::from_env().kafka_brokers.is_some(),
        "this test needs a real Apache Kafka named by KAFKA_BROKERS; scripts/test.sh starts one"
    );
    let stack = Stack::start().await;
    let brokers = stack.settings.kafka.brokers.clone();
    let topic = stack.settings.kafka.topic.clone();

    // As typed without a key: the default model, a JSON record naming its
    // model, and a line that is no observation at all.
    let plain = ["w", r#"{"model":"die","successes":2,"trials":5}"#, "banana"];
    let (b, t) = (brokers.clone(), topic.clone());
    tokio::task::spawn_blocking(move || console_producer(&b, &t, &[], &plain))
        .await
        .unwrap();
    // With the key typed before the value, as the README shows.
    let keyed = [
        "--property",
        "parse.key=true",
        "--property",
        "key.separator=:",
        "--property",
        "ignore.error=true",
    ];
    tokio::task::spawn_blocking(move || {
        console_producer(&brokers, &topic, &keyed, &["coin:WLWWWLWLW"])
    })
    .await
    .unwrap();

    let globe = stack.model_with_trials("globe", 1).await;
    assert_eq!(globe["successes"], 1, "{globe}");
    let die = stack.model_with_trials("die", 5).await;
    assert_eq!(die["successes"], 2, "{die}");
    let coin = stack.model_with_trials("coin", 9).await;
    assert_eq!(coin["successes"], 6, "{coin}");

    let dead = stack.the_dead_letter().await;
    assert_eq!(dead.value.as_deref(), Some(&b"banana"[..]));
    let reason = dead.header("error").unwrap_or_default();
    assert!(reason.contains("unknown outcome"), "{reason}");

    stack.stop().await;
}
