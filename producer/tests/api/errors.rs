//! Rejected requests: each status with its JSON body, and nothing produced.

use serde_json::{json, Value};

use crate::helpers::{spawn_app, spawn_app_with};

#[tokio::test]
async fn malformed_json_is_a_400_and_produces_nothing() {
    let app = spawn_app().await;
    for body in [
        r#"{"model":"globe","outcome":"#,
        "",
        "w",
        r#"[{"outcome":"w"},]"#,
    ] {
        app.post_json(body)
            .await
            .assert_error(400, "malformed_json", "malformed JSON");
    }
    let not_utf8 = app
        .post("/observations", "text/plain", vec![0xff, 0xfe, b'w'])
        .await;
    not_utf8.assert_error(400, "bad_request", "not valid UTF-8");
    app.assert_nothing_was_produced().await;
}

#[tokio::test]
async fn a_body_over_the_size_limit_is_a_413() {
    let app = spawn_app_with(|s| s.producer.max_body_bytes = 1_024).await;
    let big_json = Value::Array(vec![json!({"outcome": "w"}); 100]).to_string();
    assert!(big_json.len() > 1_024);
    app.post_json(&big_json).await.assert_error(
        413,
        "payload_too_large",
        "larger than the limit of 1024 bytes",
    );
    app.post_text("", &"w".repeat(1_025)).await.assert_error(
        413,
        "payload_too_large",
        "1024 bytes",
    );
    // Just under the limit is fine.
    assert_eq!(
        app.post_text("?model=big", &"w".repeat(1_000)).await.status,
        202
    );
    let values: Vec<String> = app.records().await.into_iter().map(|r| r.value).collect();
    assert_eq!(
        values,
        [r#"{"model":"big","successes":1000,"trials":1000}"#]
    );
}

#[tokio::test]
async fn a_batch_over_the_batch_limit_is_a_413_and_produces_nothing() {
    let app = spawn_app_with(|s| s.producer.max_batch = 3).await;
    let four = Value::Array(vec![json!({"outcome": "w"}); 4]).to_string();
    app.post_json(&four).await.assert_error(
        413,
        "batch_too_large",
        "4 observations in one request; at most 3 are allowed",
    );
    app.assert_nothing_was_produced().await;
}

#[tokio::test]
async fn a_missing_or_unsupported_content_type_is_a_415() {
    let app = spawn_app().await;
    let body = r#"{"outcome":"w"}"#;
    for content_type in [
        None,
        Some("application/xml"),
        Some("application/x-www-form-urlencoded"),
        Some("text/plain; charset=latin1"),
    ] {
        let answer = app
            .send(
                reqwest::Method::POST,
                "/observations",
                content_type,
                &[],
                body,
            )
            .await;
        answer.assert_error(415, "unsupported_media_type", "");
    }
    app.post("/observations", "application/xml", body)
        .await
        .assert_error(
            415,
            "unsupported_media_type",
            "\"application/xml\" is not supported",
        );
    app.assert_nothing_was_produced().await;
}

#[tokio::test]
async fn invalid_values_are_a_422_that_says_what_is_wrong() {
    let app = spawn_app().await;
    // (content type, query, body, fragment of the message)
    let cases = [
        (
            "application/json",
            "",
            r#"{"model":"globe","outcome":"maybe"}"#,
            r#"unknown outcome "maybe""#,
        ),
        (
            "application/json",
            "",
            r#"{"model":"globe","successes":10,"trials":9}"#,
            "successes (10) exceed trials (9)",
        ),
        (
            "application/json",
            "",
            r#"{"model":"globe","successes":-1,"trials":9}"#,
            "expected a non-negative whole number, got -1",
        ),
        (
            "application/json",
            "",
            r#"{"model":"globe","outcom":"w"}"#,
            "unknown field `outcom`",
        ),
        (
            "application/json",
            "",
            r#"{"model":"globe"}"#,
            "exactly one of",
        ),
        (
            "application/json",
            "",
            r#"{"model":"Globe!","outcome":"w"}"#,
            "invalid model id",
        ),
        (
            "application/json",
            "",
            r#"{"outcome":"w","id":""}"#,
            "`id` must be",
        ),
        (
            "application/json",
            "",
            r#"{"successes":1,"trials":1000001}"#,
            "1000001 trials in one record",
        ),
        ("application/json", "", r#""w""#, "expected a JSON object"),
        ("application/json", "", "42", "expected a JSON object"),
        ("application/json", "", "[]", "empty batch"),
        (
            "application/json",
            "?model=Not%20Valid",
            r#"{"outcome":"w"}"#,
            "invalid `model` parameter",
        ),
        ("text/plain", "", "wlx", r#"unknown outcome "wlx""#),
        ("text/plain", "", "   ", "empty record"),
        (
            "text/plain",
            "?model=Not%20Valid",
            "w",
            "invalid `model` parameter",
        ),
    ];
    for (content_type, query, body, fragment) in cases {
        let answer = app
            .post(&format!("/observations{query}"), content_type, body)
            .await;
        answer.assert_error(422, "invalid_observation", fragment);
        assert!(
            answer.json()["error"].get("item").is_none(),
            "not a batch: {}",
            answer.text
        );
    }
    app.assert_nothing_was_produced().await;
}

#[tokio::test]
async fn a_batch_with_one_bad_item_is_a_422_naming_the_item_and_produces_nothing() {
    let app = spawn_app().await;
    let batch = json!([
        {"model": "globe", "outcome": "w"},
        {"model": "globe", "outcomes": "wlw"},
        {"model": "coin", "successes": 1, "trials": 2},
        {"model": "globe", "successes": 10, "trials": 9},
        {"model": "globe", "outcome": "l"},
    ]);
    let answer = app.post_json(&batch.to_string()).await;
    assert_eq!(answer.status, 422, "{}", answer.text);
    assert_eq!(
        answer.json(),
        json!({"error": {"code": "invalid_observation", "message": "item 3: successes (10) exceed trials (9)", "item": 3}})
    );
    let not_an_object = app.post_json(r#"[{"outcome":"w"},"w"]"#).await;
    not_an_object.assert_error(422, "invalid_observation", "item 1: JSON must be an object");
    // Serde would read a struct from an array of its fields; an item must be an object.
    let fields = app.post_json(r#"[["globe","w"]]"#).await;
    fields.assert_error(422, "invalid_observation", "item 0: JSON must be an object");
    app.assert_nothing_was_produced().await;
}

#[tokio::test]
async fn a_malformed_idempotency_key_is_a_400() {
    let app = spawn_app().await;
    let long = "k".repeat(129);
    for key in ["", long.as_str()] {
        app.send(
            reqwest::Method::POST,
            "/observations",
            Some("application/json"),
            &[("Idempotency-Key", key)],
            r#"{"outcome":"w"}"#,
        )
        .await
        .assert_error(400, "bad_request", "Idempotency-Key");
    }
    app.assert_nothing_was_produced().await;
}

#[tokio::test]
async fn unknown_routes_methods_and_seed_outcomes_are_json_errors() {
    let app = spawn_app().await;
    app.send(reqwest::Method::POST, "/nope", None, &[], "")
        .await
        .assert_error(404, "not_found", "POST /nope");
    app.send(reqwest::Method::POST, "/update_model", None, &[], "")
        .await
        .assert_error(404, "not_found", "/update_model");
    app.get("/observations")
        .await
        .assert_error(405, "method_not_allowed", "GET");
    for outcome in ["x", "wl", "2", "%20"] {
        app.send(
            reqwest::Method::POST,
            &format!("/update_model/{outcome}"),
            None,
            &[],
            "",
        )
        .await
        .assert_error(
            422,
            "invalid_observation",
            "expected one outcome, `w` or `l`",
        );
    }
    app.assert_nothing_was_produced().await;
}

#[tokio::test]
async fn a_query_string_that_cannot_be_read_is_a_422_invalid_parameter_as_in_the_model_service() {
    let app = spawn_app().await;
    // One `model` expected, two given: the query string does not fit its type.
    app.post_text("?model=globe&model=coin", "w")
        .await
        .assert_error(422, "invalid_parameter", "model");
    app.assert_nothing_was_produced().await;
}
