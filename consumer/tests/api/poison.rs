//! Records that are not observations go to the dead-letter topic, never into
//! the counts, and never stall the partition, whatever their size up to the
//! broker's limit.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use consumer::{Action, Assignment, Stage};
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use test_support::TestEnvironment;

use crate::helpers::{eventually, get, Hook, Rec, TestEnv};

/// The longest `error` header a dead-letter record may carry, in bytes.
const MAX_ERROR_HEADER_BYTES: usize = 256;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_records_go_to_the_dlq_with_their_reason_and_are_never_counted() {
    let env = TestEnv::new(1).await;
    // (record, why it is poison: a fragment of the error header)
    let cases: Vec<(Rec, Option<&str>)> = vec![
        (Rec::new(None, "w"), None),
        (Rec::new(None, "x"), Some("unknown outcome \"x\"")),
        (Rec::new(None, "l"), None),
        (Rec::new(None, ""), Some("empty record")),
        (Rec::new(Some("coin"), "WLWWWLWLW"), None),
        (
            Rec::new(Some("coin"), r#"{"model":"globe","outcome":"w"}"#),
            Some("record key names model \"coin\" but its body names model \"globe\""),
        ),
        (Rec::new(None, r#"{"model":"coin","outcome":"w"}"#), None),
        (Rec::new(Some("Bad Key"), "w"), Some("invalid model id")),
        (
            Rec::new(Some("globe"), r#"{"successes":6,"trials":9}"#),
            None,
        ),
        (
            Rec::bytes(None, Some(&[0xff, 0xfe])),
            Some("not valid UTF-8"),
        ),
        (
            Rec::new(None, r#"{"outcom":"w"}"#).with_header("trace-id", "abc123"),
            Some("unknown field `outcom`"),
        ),
        (Rec::new(None, "w l w"), None),
        (Rec::bytes(Some(b"globe"), None), Some("empty record")),
        // What a careless or hostile client sends: no trials, a key that
        // would be another model's once trimmed, a repeated key, a NUL in
        // an id (which Postgres text cannot hold).
        (
            Rec::new(None, r#"{"successes":0,"trials":0}"#),
            Some("no trials"),
        ),
        (Rec::new(Some(" coin"), "w"), Some("invalid model id")),
        (
            Rec::new(None, r#"{"model":"coin","model":"globe","outcome":"w"}"#),
            Some("duplicate"),
        ),
        (
            Rec::new(None, r#"{"outcome":"w","id":"a\u0000b"}"#),
            Some("U+0000"),
        ),
    ];
    let records: Vec<Rec> = cases.iter().map(|(r, _)| r.clone()).collect();
    env.publish(&records).await;
    let mut settings = env.settings();
    settings.consumer.batch_size = 3;
    let running = env.spawn(settings, Assignment::Subscribe, None).await;

    env.wait_for_offset(0, records.len() as i64).await;
    let expected: BTreeMap<String, (u64, u64)> = [
        // w, l, 6 of 9, w l w
        ("globe".to_owned(), (1 + 6 + 2, 1 + 3 + 1)),
        // WLWWWLWLW, w
        ("coin".to_owned(), (6 + 1, 3)),
    ]
    .into();
    assert_eq!(env.counts().await, expected);
    env.assert_history_consistent().await;

    let poison: Vec<(usize, &Rec, &str)> = cases
        .iter()
        .enumerate()
        .filter_map(|(offset, (r, why))| why.map(|w| (offset, r, w)))
        .collect();
    let dlq = env.read_dlq(poison.len()).await;
    assert_eq!(
        dlq.len(),
        poison.len(),
        "exactly the poison records: {dlq:#?}"
    );
    for (got, (offset, sent, why)) in dlq.iter().zip(&poison) {
        assert_eq!(
            (&got.key, &got.value),
            (&sent.key, &sent.value),
            "offset {offset}"
        );
        let header = |k: &str| got.headers.get(k).map(String::as_str);
        assert!(
            header("error").is_some_and(|e| e.contains(why)),
            "offset {offset}: {:?} lacks {why:?}",
            header("error")
        );
        let reason = domain::observation::parse_record(
            sent.key.as_deref(),
            sent.value.as_deref().unwrap_or_default(),
            &domain::ModelId::parse("globe").expect("model id"),
        )
        .expect_err("poison")
        .to_string();
        assert_eq!(
            header("error"),
            Some(reason.as_str()),
            "the parser's own words"
        );
        assert_eq!(header("source-topic"), Some(env.topic.as_str()));
        assert_eq!(header("source-partition"), Some("0"));
        assert_eq!(header("source-offset"), Some(offset.to_string().as_str()));
        for (k, v) in &sent.headers {
            assert_eq!(
                header(k),
                Some(v.as_str()),
                "the record's own headers pass through"
            );
        }
    }
    running.stop().await.expect("graceful stop");
}

/// A JSON record of exactly `len` bytes that is not an observation:
/// `successes` is a string, which serde's message quotes.
fn not_an_observation(len: usize) -> Rec {
    const HEAD: &str = r#"{"model":"x","successes":""#;
    const TAIL: &str = r#"","trials":1}"#;
    let value = format!("{HEAD}{}{TAIL}", "A".repeat(len - HEAD.len() - TAIL.len()));
    assert_eq!(value.len(), len);
    Rec::new(None, &value)
}

/// Fails at once, with the reason, without a real broker: the mock cluster
/// knows nothing of topic configurations.
fn require_real_broker() {
    assert!(
        TestEnvironment::from_env().kafka_brokers.is_some(),
        "this test needs a real Apache Kafka named by KAFKA_BROKERS; scripts/test.sh starts one"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_records_of_any_size_up_to_the_brokers_limit_are_dead_lettered_and_never_stop_the_consumer(
) {
    require_real_broker();
    let env = TestEnv::new(1).await;
    let max = env.max_message_bytes(&env.topic).await;
    // Just under the limit, which counts the record batch around the value:
    // a 61-byte batch header and about a dozen bytes of record framing.
    let near_max = max - 200;
    let million_key = "k".repeat(1_000_000);
    // (poison record, a fragment of its reason, whether it is too large to
    // be dead-lettered whole)
    let poison: Vec<(Rec, &str, bool)> = vec![
        (Rec::new(None, "x"), "unknown outcome \"x\"", false),
        (
            not_an_observation(100_000),
            "invalid type: string \"AAAA",
            false,
        ),
        (
            not_an_observation(900_000),
            "invalid type: string \"AAAA",
            false,
        ),
        (
            not_an_observation(near_max),
            "invalid type: string \"AAAA",
            true,
        ),
        (
            Rec::bytes(Some(b"globe"), Some(&[b'w', 0xff, 0xfe, b'l'])),
            "not valid UTF-8",
            false,
        ),
        (
            Rec::new(Some(&million_key), "w"),
            "model id is 1000000 characters long",
            true,
        ),
    ];
    // A valid record first, and one after each poison record, each for its
    // own model so that every one is seen to count exactly once.
    let mut records = vec![Rec::new(None, "w")];
    for (i, (rec, _, _)) in poison.iter().enumerate() {
        records.push(rec.clone());
        records.push(Rec::new(Some(&format!("after-{i}")), "WLW"));
    }
    env.publish_large(max, &records).await;
    let mut settings = env.settings();
    settings.consumer.batch_size = 3;
    let running = env.spawn(settings, Assignment::Subscribe, None).await;

    env.wait_for_offset(0, records.len() as i64).await;
    let mut expected: BTreeMap<String, (u64, u64)> = (0..poison.len())
        .map(|i| (format!("after-{i}"), (2, 1)))
        .collect();
    expected.insert("globe".to_owned(), (1, 0));
    assert_eq!(env.counts().await, expected);
    env.assert_history_consistent().await;

    let dlq = env.read_dlq(poison.len()).await;
    assert_eq!(dlq.len(), poison.len(), "exactly the poison records");
    for (i, (got, (sent, why, too_large))) in dlq.iter().zip(&poison).enumerate() {
        let offset = 1 + 2 * i;
        let header = |k: &str| got.headers.get(k).map(String::as_str);
        let error = header("error").unwrap_or_default();
        assert!(
            error.contains(why),
            "offset {offset}: {error:?} lacks {why:?}"
        );
        assert!(
            error.len() <= MAX_ERROR_HEADER_BYTES,
            "offset {offset}: an error header of {} bytes",
            error.len()
        );
        assert_eq!(header("source-topic"), Some(env.topic.as_str()));
        assert_eq!(header("source-partition"), Some("0"));
        assert_eq!(header("source-offset"), Some(offset.to_string().as_str()));
        let sent_key = sent.key.as_deref().unwrap_or_default();
        let sent_value = sent.value.as_deref().unwrap_or_default();
        if !too_large {
            assert_eq!(
                (&got.key, &got.value),
                (&sent.key, &sent.value),
                "offset {offset}: dead-lettered whole"
            );
            assert_eq!(header("truncated"), None, "offset {offset}");
            continue;
        }
        assert_eq!(header("truncated"), Some("true"), "offset {offset}");
        assert_eq!(
            header("original-key-bytes"),
            Some(sent_key.len().to_string().as_str()),
            "offset {offset}"
        );
        assert_eq!(
            header("original-value-bytes"),
            Some(sent_value.len().to_string().as_str()),
            "offset {offset}"
        );
        let key = got.key.as_deref().unwrap_or_default();
        let value = got.value.as_deref().unwrap_or_default();
        assert!(
            sent_key.starts_with(key) && sent_value.starts_with(value),
            "offset {offset}: the copy holds the beginnings of key and value"
        );
        assert!(
            key.len() + value.len() > 990_000,
            "offset {offset}: the copy keeps as much as fits, not {} bytes",
            key.len() + value.len()
        );
        assert!(
            key.len() < sent_key.len() || value.len() < sent_value.len(),
            "offset {offset}: something was cut"
        );
    }
    running.stop().await.expect("graceful stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_written_as_soon_as_its_records_reach_batch_max_bytes() {
    let env = TestEnv::new(1).await;
    // Twelve records of 300 KB and small valid ones between them.
    let mut records = Vec::new();
    for i in 0..12 {
        records.push(not_an_observation(300_000));
        records.push(Rec::new(Some(&format!("m{i}")), "w"));
    }
    env.publish(&records).await;
    let sizes: Vec<usize> = records
        .iter()
        .map(|r| r.key.as_ref().map_or(0, Vec::len) + r.value.as_ref().map_or(0, Vec::len))
        .collect();

    let bound = 1_000_000;
    let mut settings = env.settings();
    // Neither the record count nor the wait ends a batch here: only the bytes.
    settings.consumer.batch_size = 10_000;
    settings.consumer.batch_wait = Duration::from_secs(2);
    settings.consumer.batch_max_bytes = bound;
    let batches = Arc::new(Mutex::new(Vec::new()));
    let seen = batches.clone();
    let hook = Hook(move |checkpoint: &consumer::Checkpoint| {
        if checkpoint.stage == Stage::Consumed {
            let range = checkpoint.first_offset as usize..checkpoint.next_offset as usize;
            seen.lock().expect("lock").push(range);
        }
        Action::Continue
    });
    let running = env
        .spawn(settings, Assignment::Subscribe, Some(Arc::new(hook)))
        .await;

    env.wait_for_offset(0, records.len() as i64).await;
    assert_eq!(env.counts().await.len(), 12, "every valid record counted");
    let batches = batches.lock().expect("lock").clone();
    assert!(
        batches.len() >= 4,
        "at least 3.6 MB in 1 MB batches: {batches:?}"
    );
    for batch in &batches {
        // Every record but the last was added below the bound.
        let before_last: usize = sizes[batch.start..batch.end - 1].iter().sum();
        assert!(
            before_last < bound,
            "batch {batch:?} held {before_last} bytes before its last record"
        );
    }
    running.stop().await.expect("graceful stop");
}

/// The value of a counter in a Prometheus text body, if it is there.
fn counter(body: &str, name: &str) -> Option<f64> {
    body.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_the_topic_refuses_is_counted_holds_the_partition_and_goes_once_the_topic_is_fixed(
) {
    require_real_broker();
    let env = TestEnv::new(1).await;
    // A dead-letter topic whose limit is far below the source topic's.
    let small_dlq = format!("{}.small", env.dlq_topic);
    env.create_topic_with(&small_dlq, &[("max.message.bytes", "2000")])
        .await;
    let records = vec![
        Rec::new(None, "w"),
        not_an_observation(10_000),
        Rec::new(None, "l"),
    ];
    env.publish(&records).await;
    let mut settings = env.settings();
    settings.kafka.dlq_topic = small_dlq.clone();
    settings.consumer.batch_size = 1;
    let running = env.spawn(settings, Assignment::Subscribe, None).await;

    env.wait_for_offset(0, 1).await;
    eventually("the refusal is counted", async || {
        let (_, body) = get(&running.url("/metrics")).await;
        counter(&body, "consumer_dead_letters_refused_total")
            .filter(|n| *n >= 1.0)
            .map(|_| ())
    })
    .await;
    assert_eq!(
        env.stored_offset(0).await,
        Some(1),
        "the poison record is neither skipped nor written"
    );

    // A person raises the topic's limit: the record goes, the partition moves.
    env.alter_topic(&small_dlq, "max.message.bytes", "100000")
        .await;
    env.wait_for_offset(0, records.len() as i64).await;
    assert_eq!(
        env.counts().await,
        BTreeMap::from([("globe".to_owned(), (1, 1))])
    );
    let dlq = env.kafka.records_at_least(&small_dlq, 1).await;
    assert_eq!(dlq.len(), 1);
    assert_eq!(dlq[0].header("source-offset"), Some("1"));
    running.stop().await.expect("graceful stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fatal_error_of_the_dead_letter_producer_replaces_it_and_the_batch_still_commits() {
    // Only the mock cluster can answer a produce request with an error.
    let env = TestEnv::on_mock_cluster(1).await;
    let records = [
        Rec::new(None, "w"),
        Rec::new(None, "x"),
        Rec::new(None, "l"),
    ];
    env.publish(&records).await;
    // The dead-letter producer's first batch is answered "out of sequence",
    // which librdkafka makes a fatal error of an idempotent client.
    env.kafka.mock().expect("a mock cluster").request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER],
    );
    let running = env.spawn(env.settings(), Assignment::Subscribe, None).await;

    // The batch is retried with a new client: the poison record is
    // dead-lettered, the others counted, the offset stored.
    env.wait_for_offset(0, records.len() as i64).await;
    assert_eq!(
        env.counts().await,
        BTreeMap::from([("globe".to_owned(), (1, 1))])
    );
    let dlq = env.read_dlq(1).await;
    assert!(
        dlq.iter().all(|r| r.value_str() == "x"),
        "{:?}",
        dlq.iter().map(|r| r.value_str()).collect::<Vec<_>>()
    );
    let (status, metrics) = get(&running.url("/metrics")).await;
    assert_eq!(status, 200);
    let fatal = metrics
        .lines()
        .find(|l| l.starts_with(r#"kafka_producer_fatal_errors_total{client="dlq"}"#))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok());
    assert!(fatal.is_some_and(|n| n >= 1.0), "{metrics}");
    let (status, ready) = get(&running.url("/readyz")).await;
    assert_eq!(status, 200, "{ready}");
    running.stop().await.expect("a clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_whose_id_was_applied_with_other_content_is_dead_lettered_and_the_first_stands() {
    let env = TestEnv::new(2).await;
    let first = vec![
        Rec::new(Some("a"), r#"{"model":"a","outcome":"w","id":"k"}"#),
        Rec::new(Some("a"), "w"),
    ];
    env.publish_to(Some(0), &first).await;
    let mut settings = env.settings();
    settings.consumer.batch_size = 4;
    let running = env.spawn(settings, Assignment::Subscribe, None).await;
    env.wait_for_offset(0, 2).await;

    // The id again: a retry (same content), and for another model and
    // counts, both in a later batch and on the other partition; then one in
    // the same batch as its first use with other counts.
    let later = [
        Rec::new(Some("a"), r#"{"model":"a","outcome":"w","id":"k"}"#),
        Rec::new(
            Some("b"),
            r#"{"model":"b","successes":3,"trials":5,"id":"k"}"#,
        ),
        Rec::new(Some("a"), r#"{"model":"a","outcome":"w","id":"fresh"}"#),
        Rec::new(Some("a"), r#"{"model":"a","outcome":"l","id":"fresh"}"#),
        Rec::new(Some("a"), "l"),
    ];
    env.publish_to(Some(0), &later[..1]).await;
    env.publish_to(Some(1), &later[1..2]).await;
    env.publish_to(Some(0), &later[2..]).await;
    env.wait_for_offset(0, 6).await;
    env.wait_for_offset(1, 1).await;

    let expected: BTreeMap<String, (u64, u64)> = [("a".to_owned(), (3, 1))].into();
    assert_eq!(env.counts().await, expected, "b is never created");
    let dlq = env.read_dlq(2).await;
    assert_eq!(dlq.len(), 2, "{dlq:#?}");
    let mut reasons: Vec<(Option<&str>, Option<&str>, Option<&str>)> = dlq
        .iter()
        .map(|d| {
            let header = |k: &str| d.headers.get(k).map(String::as_str);
            (
                d.value.as_deref().and_then(|v| std::str::from_utf8(v).ok()),
                header("source-partition"),
                header("error"),
            )
        })
        .collect();
    reasons.sort();
    let (value, partition, error) = reasons[0];
    assert_eq!(value, Some(later[3].text()));
    assert_eq!(partition, Some("0"));
    let error = error.unwrap_or_default();
    assert!(
        error.starts_with("id conflict: \"fresh\" came earlier")
            && error.contains("model a, 1 successes, 0 failures"),
        "{error}"
    );
    let (value, partition, error) = reasons[1];
    assert_eq!(value, Some(later[1].text()));
    assert_eq!(partition, Some("1"));
    assert_eq!(
        error,
        Some("id conflict: \"k\" was applied before with other content (model a, 1 successes, 0 failures)")
    );
    let (_, metrics) = get(&running.url("/metrics")).await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("consumer_id_conflicts_total ")),
        "{metrics}"
    );
    let (status, _) = get(&running.url("/readyz")).await;
    assert_eq!(status, 200, "nothing is held");
    running.stop().await.expect("graceful stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_holding_what_the_databases_encoding_cannot_is_dead_lettered_and_the_rest_counted()
{
    // A LATIN1 database (an operator's choice) has no Japanese characters.
    let env = TestEnv::with_database_encoding(1, "LATIN1").await;
    let records = vec![
        Rec::new(None, "w"),
        Rec::new(None, r#"{"outcome":"w","id":"日本"}"#),
        Rec::new(None, r#"{"outcome":"w","id":"café"}"#),
        Rec::new(None, r#"{"outcome":"l","id":"plain"}"#),
        Rec::new(None, "w"),
    ];
    env.publish(&records).await;
    let mut settings = env.settings();
    settings.consumer.batch_size = 10;
    settings.consumer.batch_wait = Duration::from_millis(500);
    let running = env.spawn(settings, Assignment::Subscribe, None).await;
    env.wait_for_offset(0, records.len() as i64).await;

    let expected: BTreeMap<String, (u64, u64)> = [("globe".to_owned(), (3, 1))].into();
    assert_eq!(env.counts().await, expected);
    env.assert_history_consistent().await;
    let dlq = env.read_dlq(1).await;
    assert_eq!(dlq.len(), 1, "{dlq:#?}");
    assert_eq!(dlq[0].value, records[1].value);
    let error = dlq[0].headers.get("error").cloned().unwrap_or_default();
    assert!(
        error.starts_with("the database cannot store this record"),
        "{error}"
    );
    assert_eq!(
        dlq[0].headers.get("source-offset").map(String::as_str),
        Some("1")
    );
    let (status, _) = get(&running.url("/readyz")).await;
    assert_eq!(status, 200, "nothing is held");
    running.stop().await.expect("graceful stop");
}
