//! Accepted writes: every body form lands on the topic with the model as key
//! and the canonical JSON as value, in order, with a trace id.

use serde_json::{json, Value};

use crate::helpers::{spawn_app, spawn_app_on};

/// The record value the producer must write for these counts.
fn canonical(model: &str, successes: u64, trials: u64) -> String {
    format!(r#"{{"model":"{model}","successes":{successes},"trials":{trials}}}"#)
}

#[tokio::test]
async fn every_accepted_body_form_lands_on_the_topic_in_order_keyed_by_model() {
    let app = spawn_app().await;
    // (content type, query, body, key, value) in the order they are sent.
    let cases = [
        ("application/json", "", r#"{"model":"globe","outcome":"w"}"#, "globe", canonical("globe", 1, 1)),
        ("application/json; charset=utf-8", "", r#"{"model":"globe","outcome":"L"}"#, "globe", canonical("globe", 0, 1)),
        ("application/json", "", r#"{"model":"coin","outcomes":"WLWWWLWLW"}"#, "coin", canonical("coin", 6, 9)),
        ("application/json", "", r#"{"model":"ab.test-1","successes":6,"trials":9,"id":"k-1","observed_at":"2024-05-01T12:00:00+02:00"}"#,
            "ab.test-1", r#"{"model":"ab.test-1","successes":6,"trials":9,"id":"k-1","observed_at":"2024-05-01T10:00:00Z"}"#.to_owned()),
        ("application/json", "", r#"{"outcome":true}"#, "globe", canonical("globe", 1, 1)),
        ("text/plain", "?model=coin", "WLWWWLWLW\n", "coin", canonical("coin", 6, 9)),
        ("text/plain; charset=utf-8", "", "w l success 0", "globe", canonical("globe", 2, 4)),
        ("text/plain", "", "l", "globe", canonical("globe", 0, 1)),
    ];
    for (offset, (content_type, query, body, _, _)) in cases.iter().enumerate() {
        let answer = app
            .post(
                &format!("/observations{query}"),
                content_type,
                body.to_string(),
            )
            .await;
        assert_eq!(answer.status, 202, "{body}: {}", answer.text);
        let accepted = answer.json();
        assert_eq!(accepted["accepted"], 1, "{accepted}");
        assert_eq!(accepted["partition"], 0, "{accepted}");
        assert_eq!(accepted["offset"], offset, "{accepted}");
        assert_eq!(accepted["last_offset"], offset, "{accepted}");
        assert_eq!(
            answer.headers.get("trace-id").and_then(|v| v.to_str().ok()),
            accepted["trace_id"].as_str(),
        );
    }

    let records = app.records().await;
    let got: Vec<(Option<&str>, &str)> = records
        .iter()
        .map(|r| (r.key.as_deref(), r.value.as_str()))
        .collect();
    let want: Vec<(Option<&str>, &str)> = cases.iter().map(|c| (Some(c.3), c.4.as_str())).collect();
    assert_eq!(got, want);
    let offsets: Vec<i64> = records.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, (0..cases.len() as i64).collect::<Vec<_>>());
}

#[tokio::test]
async fn each_record_carries_the_trace_id_its_answer_reports() {
    let app = spawn_app().await;
    let first = app.post_json(r#"{"outcome":"w"}"#).await.json();
    let batch = app
        .post_json(r#"[{"outcome":"w"},{"outcome":"l"}]"#)
        .await
        .json();
    let records = app.records().await;
    let traces: Vec<Option<&str>> = records.iter().map(|r| r.trace_id.as_deref()).collect();
    let first_trace = first["trace_id"].as_str();
    let batch_trace = batch["trace_id"].as_str();
    assert!(
        first_trace.is_some_and(|t| uuid::Uuid::parse_str(t).is_ok()),
        "{first}"
    );
    assert_ne!(
        first_trace, batch_trace,
        "every request gets its own trace id"
    );
    assert_eq!(traces, [first_trace, batch_trace, batch_trace]);
}

#[tokio::test]
async fn a_batch_keeps_its_order_and_reports_its_first_and_last_offset() {
    let app = spawn_app().await;
    assert_eq!(
        app.post_json(r#"{"model":"before","outcome":"w"}"#)
            .await
            .status,
        202
    );
    let batch = json!([
        {"model": "m1", "outcome": "w"},
        {"model": "m2", "outcomes": "lll"},
        {"model": "m1", "successes": 2, "trials": 5},
        {"outcome": "l"},
        {"model": "m3", "outcome": 1},
    ]);
    let answer = app.post_json(&batch.to_string()).await;
    assert_eq!(answer.status, 202, "{}", answer.text);
    let accepted = answer.json();
    assert_eq!(accepted["accepted"], 5);
    assert_eq!(accepted["partition"], 0);
    assert_eq!(accepted["offset"], 1);
    assert_eq!(accepted["last_offset"], 5);
    assert!(
        accepted.get("partitions").is_none(),
        "one partition needs no breakdown: {accepted}"
    );

    let records = app.records().await;
    let got: Vec<(i64, Option<&str>, &str)> = records
        .iter()
        .map(|r| (r.offset, r.key.as_deref(), r.value.as_str()))
        .collect();
    let want = [
        (0, Some("before"), canonical("before", 1, 1)),
        (1, Some("m1"), canonical("m1", 1, 1)),
        (2, Some("m2"), canonical("m2", 0, 3)),
        (3, Some("m1"), canonical("m1", 2, 5)),
        (4, Some("globe"), canonical("globe", 0, 1)),
        (5, Some("m3"), canonical("m3", 1, 1)),
    ];
    let want: Vec<(i64, Option<&str>, &str)> =
        want.iter().map(|(o, k, v)| (*o, *k, v.as_str())).collect();
    assert_eq!(got, want);
}

#[tokio::test]
async fn a_batch_over_several_partitions_keeps_each_models_order_and_reports_every_partition() {
    let app = spawn_app_on(3, |_| {}).await;
    let models = ["a", "b", "c", "d", "e", "f"];
    // Eight rounds over six models: each model's records must stay in round order.
    let items: Vec<Value> = (0..8u64)
        .flat_map(|round| {
            models
                .iter()
                .map(move |m| json!({"model": m, "successes": round, "trials": 8}))
        })
        .collect();
    let answer = app
        .post_json(&Value::Array(items.clone()).to_string())
        .await;
    assert_eq!(answer.status, 202, "{}", answer.text);
    let accepted = answer.json();
    assert_eq!(accepted["accepted"], items.len());

    let records = app.records().await;
    assert_eq!(records.len(), items.len());
    for model in models {
        let mine: Vec<_> = records
            .iter()
            .filter(|r| r.key.as_deref() == Some(model))
            .collect();
        let partitions: std::collections::HashSet<i32> = mine.iter().map(|r| r.partition).collect();
        assert_eq!(partitions.len(), 1, "one key, one partition: {mine:?}");
        let values: Vec<&str> = mine.iter().map(|r| r.value.as_str()).collect();
        let want: Vec<String> = (0..8).map(|round| canonical(model, round, 8)).collect();
        assert_eq!(values, want, "model {model} keeps its order");
    }
    let used: std::collections::HashSet<i32> = records.iter().map(|r| r.partition).collect();
    assert!(
        used.len() > 1,
        "six keys over three partitions use more than one"
    );
    {
        let ranges = accepted["partitions"]
            .as_array()
            .expect("a breakdown per partition");
        assert_eq!(ranges.len(), used.len(), "{accepted}");
        let total: u64 = ranges
            .iter()
            .map(|r| r["records"].as_u64().unwrap_or(0))
            .sum();
        assert_eq!(total, items.len() as u64, "{accepted}");
        let first = &ranges[0];
        assert_eq!(accepted["partition"], first["partition"]);
        assert_eq!(accepted["offset"], first["first_offset"]);
        assert_eq!(accepted["last_offset"], first["last_offset"]);
    }
}

#[tokio::test]
async fn the_idempotency_key_travels_as_the_record_id() {
    let app = spawn_app().await;
    // The longest key still leaves room for the `:{index}` of a batch item.
    let long_key = "k".repeat(128);
    // ((path, content type), Idempotency-Key, body), each answered 202.
    let json = ("/observations", Some("application/json"));
    let text = ("/observations?model=coin", Some("text/plain"));
    let batch = r#"[{"outcome":"w"},{"outcome":"l","id":"own-id"},{"outcome":"w"}]"#;
    let requests = [
        (json, "order-1", r#"{"model":"globe","outcome":"w"}"#),
        (json, "order-2", r#"{"outcome":"w","id":"order-2"}"#),
        (text, "order-3", "wl"),
        (json, "order-4", batch),
        (("/update_model/w", None), "order-5", ""),
        // The body's own id wins over the header's, as it does for batch items.
        (json, "order-6", r#"{"outcome":"w","id":"own-6"}"#),
        (json, long_key.as_str(), r#"[{"outcome":"w"}]"#),
    ];
    for ((path, content_type), key, body) in requests {
        let headers = [("Idempotency-Key", key)];
        let answer = app
            .send(reqwest::Method::POST, path, content_type, &headers, body)
            .await;
        assert_eq!(answer.status, 202, "{key}: {}", answer.text);
    }

    let ids: Vec<Value> = app
        .records()
        .await
        .iter()
        .map(|r| serde_json::from_str::<Value>(&r.value).expect("JSON value")["id"].clone())
        .collect();
    assert_eq!(
        ids,
        [
            json!("order-1"),
            json!("order-2"),
            json!("order-3"),
            json!("order-4:0"),
            json!("own-id"),
            json!("order-4:2"),
            json!("order-5"),
            json!("own-6"),
            json!(format!("{long_key}:0")),
        ]
    );
}

#[tokio::test]
async fn the_seed_route_writes_one_outcome_for_the_default_model_on_get_and_post() {
    let app = spawn_app_with_default_model("earth").await;
    // The seed's clients follow plain links: GET does what POST does.
    let sent = [
        (reqwest::Method::POST, "w"),
        (reqwest::Method::POST, "l"),
        (reqwest::Method::GET, "W"),
        (reqwest::Method::GET, "L"),
        (reqwest::Method::GET, "success"),
        (reqwest::Method::POST, "0"),
    ];
    for (method, outcome) in sent {
        let answer = app
            .send(
                method.clone(),
                &format!("/update_model/{outcome}"),
                None,
                &[],
                "",
            )
            .await;
        assert_eq!(answer.status, 202, "{method} {outcome}: {}", answer.text);
        assert_eq!(answer.json()["accepted"], 1);
    }
    let values: Vec<String> = app.records().await.into_iter().map(|r| r.value).collect();
    assert_eq!(
        values,
        [
            canonical("earth", 1, 1),
            canonical("earth", 0, 1),
            canonical("earth", 1, 1),
            canonical("earth", 0, 1),
            canonical("earth", 1, 1),
            canonical("earth", 0, 1)
        ]
    );
}

#[tokio::test]
async fn the_seed_route_takes_one_outcome_word_only_whatever_the_method() {
    let app = spawn_app().await;
    for method in [reqwest::Method::GET, reqwest::Method::POST] {
        for outcome in ["wlw", "x", "w,", "%20w"] {
            app.send(
                method.clone(),
                &format!("/update_model/{outcome}"),
                None,
                &[],
                "",
            )
            .await
            .assert_error(422, "invalid_observation", "expected one outcome");
        }
    }
    app.assert_nothing_was_produced().await;
}

#[tokio::test]
async fn the_model_parameter_names_the_model_of_json_observations_that_name_none() {
    let app = spawn_app().await;
    let answer = app
        .post(
            "/observations?model=coin",
            "application/json",
            r#"[{"outcome":"w"},{"model":"dice","outcome":"l"},{"successes":2.0,"trials":3}]"#,
        )
        .await;
    assert_eq!(answer.status, 202, "{}", answer.text);
    let values: Vec<String> = app.records().await.into_iter().map(|r| r.value).collect();
    assert_eq!(
        values,
        [
            canonical("coin", 1, 1),
            canonical("dice", 0, 1),
            canonical("coin", 2, 3)
        ]
    );
}

async fn spawn_app_with_default_model(model: &str) -> crate::helpers::TestApp {
    let model = domain::ModelId::parse(model).expect("a valid model id");
    crate::helpers::spawn_app_with(|s| s.models.default_model = model).await
}
