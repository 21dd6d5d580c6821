//! What careless or hostile clients send: strings Postgres cannot hold, a
//! reused or repeated Idempotency-Key, ids of an upload's form, repeated
//! JSON keys, records of no trials. Each gets a 4xx that names the problem,
//! and nothing is produced.

use std::time::Duration;

use crate::helpers::{spawn_app, spawn_app_with_database, spawn_app_without_broker, Answer};

#[tokio::test]
async fn an_id_postgres_could_not_store_is_refused_in_every_form() {
    let app = spawn_app_with_database(|_| {}).await;
    app.post_json(r#"{"model":"x","outcome":"w","id":"a\u0000b"}"#)
        .await
        .assert_error(422, "invalid_observation", "U+0000");
    app.post_json(r#"[{"outcome":"w"},{"outcome":"w","id":"tab\there"}]"#)
        .await
        .assert_error(
            422,
            "invalid_observation",
            "item 1: `id` must not hold control characters",
        );
    // A lone surrogate is not a string at all.
    app.post_json(r#"{"outcome":"w","id":"\ud800"}"#)
        .await
        .assert_error(400, "malformed_json", "escape");
    let csv = app
        .post("/uploads", "text/csv", "model,outcome,id\nx,w,a\u{0}b\n")
        .await;
    assert_eq!(csv.status, 422, "{}", csv.text);
    assert_eq!(
        csv.json()["error"]["errors"][0]["column"],
        "id",
        "{}",
        csv.text
    );
    let named = app
        .post(
            "/uploads?filename=a%00b.csv",
            "text/csv",
            "model,outcome\nx,w\n",
        )
        .await;
    named.assert_error(
        422,
        "invalid_parameter",
        "filename must not hold control characters",
    );
    app.get("/uploads/%00")
        .await
        .assert_error(404, "upload_not_found", "");
    app.assert_nothing_was_produced().await;
}

#[tokio::test]
async fn an_idempotency_key_reused_for_other_observations_is_409_and_a_retry_is_accepted() {
    let app = spawn_app().await;
    let key = [("idempotency-key", "order-4711")];
    let send = |body: &'static str| {
        app.send(
            reqwest::Method::POST,
            "/observations",
            Some("application/json"),
            &key,
            body,
        )
    };
    assert_eq!(send(r#"{"model":"a","outcome":"w"}"#).await.status, 202);
    send(r#"{"model":"b","successes":3,"trials":5}"#)
        .await
        .assert_error(409, "idempotency_key_reused", "other observations");
    // The same request again is a retry: accepted (the consumer counts it once).
    assert_eq!(send(r#"{"model":"a","outcome":"w"}"#).await.status, 202);
    // A stamp of its own on each attempt does not make it another request.
    assert_eq!(
        send(r#"{"model":"a","outcome":"w","observed_at":"2024-05-01T10:00:00Z"}"#)
            .await
            .status,
        202
    );
    let keys: Vec<Option<String>> = app.records().await.into_iter().map(|r| r.key).collect();
    assert_eq!(keys, vec![Some("a".to_owned()); 3], "b was never produced");
}

#[tokio::test]
async fn a_key_in_use_by_a_request_waiting_for_the_broker_is_409() {
    // No broker: a request waits its whole acknowledgement timeout.
    let app =
        spawn_app_without_broker(|s| s.producer.ack_timeout = Duration::from_millis(1_500)).await;
    let send = |body: &'static str| {
        app.send(
            reqwest::Method::POST,
            "/observations",
            Some("application/json"),
            &[("idempotency-key", "k-1")],
            body,
        )
    };
    let body = r#"{"model":"a","outcome":"w"}"#;
    let (first, second) = tokio::join!(send(body), send(body));
    let mut statuses = [first.status, second.status];
    statuses.sort_unstable();
    assert_eq!(statuses, [409, 503], "{} / {}", first.text, second.text);
    let busy: &Answer = if first.status == 409 { &first } else { &second };
    busy.assert_error(
        409,
        "idempotency_key_in_use",
        "still waiting for the broker",
    );
    // Answered, the key is bound to what it carried: a 503 promises nothing,
    // so the records may be in the log all the same.
    send(r#"{"model":"b","outcome":"w"}"#)
        .await
        .assert_error(409, "idempotency_key_reused", "");
    send(body)
        .await
        .assert_error(503, "broker_unavailable", "did not acknowledge");
}

#[tokio::test]
async fn two_idempotency_keys_or_an_uploads_id_form_are_refused() {
    let app = spawn_app().await;
    let two = app
        .send(
            reqwest::Method::POST,
            "/observations",
            Some("application/json"),
            &[("idempotency-key", "a"), ("idempotency-key", "b")],
            r#"{"outcome":"w"}"#,
        )
        .await;
    two.assert_error(400, "bad_request", "one Idempotency-Key header");
    app.post_json(r#"{"outcome":"w","id":"9f86d081884c7d659a2f:3"}"#)
        .await
        .assert_error(422, "invalid_observation", "upload's line id");
    // A key of an upload's form makes line ids of a batch's items.
    let batch = app
        .send(
            reqwest::Method::POST,
            "/observations",
            Some("application/json"),
            &[("idempotency-key", "9f86d081884c7d659a2f")],
            r#"[{"outcome":"w"},{"outcome":"l"}]"#,
        )
        .await;
    batch.assert_error(
        422,
        "invalid_observation",
        "item 0: `id` has the form of an upload's line id",
    );
    let seed = app
        .send(
            reqwest::Method::GET,
            "/update_model/w",
            None,
            &[("idempotency-key", "9f86d081884c7d659a2f:0")],
            "",
        )
        .await;
    seed.assert_error(422, "invalid_observation", "upload's line id");
    app.assert_nothing_was_produced().await;
}

#[tokio::test]
async fn repeated_json_keys_and_records_of_no_trials_are_422() {
    let app = spawn_app().await;
    app.post_json(r#"{"model":"a","model":"b","outcome":"w"}"#)
        .await
        .assert_error(422, "invalid_observation", "duplicate key `model`");
    app.post_json(r#"[{"outcome":"w"},{"outcome":"w","outcome":"l"}]"#)
        .await
        .assert_error(422, "invalid_observation", "duplicate key `outcome`");
    app.post_json(r#"{"successes":0,"trials":0}"#)
        .await
        .assert_error(422, "invalid_observation", "no trials");
    app.post_json(r#"{"model":" globe","outcome":"w"}"#)
        .await
        .assert_error(422, "invalid_observation", "invalid model id");
    app.assert_nothing_was_produced().await;
}
