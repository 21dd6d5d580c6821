//! Records that are not observations go to the dead-letter topic, never into
//! the counts, and never stall the partition.

use std::collections::BTreeMap;

use consumer::Assignment;

use crate::helpers::{Rec, TestEnv};

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
