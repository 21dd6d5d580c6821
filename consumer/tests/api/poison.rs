//! Records that are not observations go to the dead-letter topic, never into
//! the counts, and never stall the partition.

use std::collections::BTreeMap;

use consumer::Assignment;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

use crate::helpers::{get, Rec, TestEnv};

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
