//! What a hostile client found at the edges: numbers a double cannot hold
//! as written, priors the engine could not compute, planned splits that
//! overflowed, and writes without bound (`PUT /models/{id}`).

use domain::bayes::{Counts, Posterior};
use domain::Prior;
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::{json, Value};

use crate::helpers::{spawn_app, spawn_app_with, TestApp};

async fn count(app: &TestApp, sql: &str) -> i64 {
    app.db
        .query_one(Statement::from_string(DbBackend::Postgres, sql))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index::<i64>(0)
        .unwrap()
}

/// PUT, asserting the status; the body as JSON.
async fn put(app: &TestApp, path: &str, body: &Value, status: u16) -> Value {
    let response = app.put_json(path, body).await;
    let got = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert_eq!(got, status, "PUT {path} {body}: {text}");
    serde_json::from_str(&text).unwrap()
}

#[tokio::test]
async fn a_grid_prior_of_the_smallest_double_is_the_prior_of_its_ratios() {
    let app = spawn_app().await;
    put(
        &app,
        "/models/tiny",
        &json!({"prior": {"type": "grid", "weights": [5e-324, 0, 0]}}),
        201,
    )
    .await;
    put(
        &app,
        "/models/one",
        &json!({"prior": {"type": "grid", "weights": [1, 0, 0]}}),
        201,
    )
    .await;
    app.publish_many(&[("tiny", 3, 4), ("one", 3, 4)]).await;
    let tiny = app.get_json("/models/tiny/posterior", 200).await;
    let one = app.get_json("/models/one/posterior", 200).await;
    // Before, 0.125 against 0.166.
    assert_eq!(tiny["summary"], one["summary"]);
    assert_eq!(tiny["grid"]["posterior"], one["grid"]["posterior"]);
}

#[tokio::test]
async fn a_step_prior_the_engine_cannot_place_is_refused_and_what_is_accepted_reads() {
    let app = spawn_app().await;
    let body = put(
        &app,
        "/models/m",
        &json!({"prior": {"type": "step", "lower": 0, "upper": 5e-324}}),
        422,
    )
    .await;
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("got upper = 5e-324"), "{message}");
    app.get_error("/models/m", 404, "model_not_found").await;
    // The nearest accepted ones answer every read, with or without data.
    for (id, prior) in [
        ("low", json!({"type": "step", "lower": 0, "upper": 1e-300})),
        ("far", json!({"type": "step", "lower": 0, "upper": 1e-20})),
    ] {
        put(
            &app,
            &format!("/models/{id}"),
            &json!({"prior": prior}),
            201,
        )
        .await;
        for path in [
            "posterior",
            "posterior.svg",
            "predictive?trials=5",
            "samples?n=3",
            "history",
        ] {
            let response = app.get(&format!("/models/{id}/{path}")).await;
            assert_eq!(response.status().as_u16(), 200, "{id}/{path}");
        }
        app.publish(id, 5, 5).await;
        let body = app.get_json(&format!("/models/{id}/posterior"), 200).await;
        let sum: f64 = body["grid"]["posterior"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_f64().unwrap())
            .sum();
        assert!((sum - 1.0).abs() < 1e-9, "{id}: {sum}");
        assert!(body["summary"]["mean"].as_f64().unwrap() <= prior["upper"].as_f64().unwrap());
    }
}

#[tokio::test]
async fn an_even_split_of_huge_planned_weights_checks_out_as_even() {
    let app = spawn_app().await;
    put(
        &app,
        "/experiments/huge",
        &json!({"arms": ["a", "b"], "planned_weights": [1e308, 1e308]}),
        201,
    )
    .await;
    app.publish_many(&[("a", 50, 4950), ("b", 55, 4945)]).await;
    let body = app.get_json("/experiments/huge", 200).await;
    // Before: chi_square null, p_value 0, flagged.
    let srm = &body["srm"];
    assert!(srm["chi_square"].is_number(), "{srm}");
    assert!(srm["chi_square"].as_f64().unwrap() < 1e-9, "{srm}");
    assert_eq!(srm["flagged"], false, "{srm}");
    // A share a trillion times below the other is refused when set.
    let body = put(
        &app,
        "/experiments/skew",
        &json!({"arms": ["a", "b"], "planned_weights": [1e308, 1]}),
        422,
    )
    .await;
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("planned weight 1 is 1, less than 1e-12 of the largest (1e308)"),
        "{message}"
    );
}

#[tokio::test]
async fn numbers_past_what_a_double_holds_are_shown_as_doubles_not_invented_integers() {
    let app = spawn_app().await;
    // 2^64, and 1e300 (whose Display is 301 digits).
    let body = put(
        &app,
        "/models/m",
        &json!({"grid_size": 18446744073709551616.0}),
        422,
    )
    .await;
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("at most 18446744073709551615, got 1.8446744073709552e19"),
        "{message}"
    );
    assert!(!message.contains("18446744073709552000"), "{message}");
    let body = put(
        &app,
        "/experiments/e",
        &json!({"arms": ["a", "b"], "bandit": {"min_trials": 1e30}}),
        422,
    )
    .await;
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("got 1e30"), "{message}");
    let body = put(
        &app,
        "/experiments/e",
        &json!({"arms": ["a", "b"], "threshold_of_caring": 1e300}),
        422,
    )
    .await;
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.ends_with("got 1e300"), "{message}");
    app.publish("globe", 1, 1).await;
    let message = app
        .get_error(
            "/models/globe/posterior?mass=1e300",
            422,
            "invalid_parameter",
        )
        .await;
    assert!(message.ends_with("got 1e300"), "{message}");
}

#[tokio::test]
async fn a_put_that_changes_nothing_writes_nothing() {
    let app = spawn_app().await;
    let body = json!({"prior": {"type": "beta", "a": 2, "b": 3}, "grid_size": 50});
    let created = put(&app, "/models/m", &body, 201).await;
    let configs = count(&app, "SELECT count(*) FROM model_configs").await;
    for same in [
        body.clone(),
        json!({"grid_size": 50}),
        json!({"prior": {"type": "beta", "a": 2.0, "b": 3.0}}),
        json!({}),
    ] {
        let again = put(&app, "/models/m", &same, 200).await;
        assert_eq!(again, created, "{same}");
    }
    assert_eq!(
        count(&app, "SELECT count(*) FROM model_configs").await,
        configs
    );
    // A change is a change.
    let changed = put(&app, "/models/m", &json!({"grid_size": 51}), 200).await;
    assert_eq!(changed["grid_size"], 51);
    assert_ne!(changed["configured_at"], created["configured_at"]);
    assert_eq!(
        count(&app, "SELECT count(*) FROM model_configs").await,
        configs + 1
    );
}

#[tokio::test]
async fn re_putting_a_big_prior_adds_no_copy_of_it_to_the_history() {
    let app = spawn_app_with(|s| s.model_service.max_config_changes_per_hour = 0).await;
    let weights: Vec<f64> = (0..100_000).map(|i| f64::from(i % 97) / 7.0).collect();
    let grid = json!({"prior": {"type": "grid", "weights": weights}});
    let flat = json!({"prior": {"type": "uniform"}});
    for id in ["a", "b", "c"] {
        put(&app, &format!("/models/{id}"), &grid, 201).await;
        for _ in 0..3 {
            put(&app, &format!("/models/{id}"), &flat, 200).await;
            put(&app, &format!("/models/{id}"), &grid, 200).await;
        }
    }
    assert_eq!(count(&app, "SELECT count(*) FROM model_configs").await, 21);
    assert_eq!(count(&app, "SELECT count(*) FROM priors").await, 2);
    let history = count(
        &app,
        "SELECT sum(pg_column_size(c.*))::bigint FROM model_configs c",
    )
    .await;
    assert!(history < 21 * 200, "{history} bytes of history");
    // Time travel still answers with the prior in force then.
    app.publish("a", 1, 1).await;
    let body = app
        .get_json("/models/a/posterior?version=0&grid=false", 200)
        .await;
    assert_eq!(body["prior"]["type"], "grid");
}

#[tokio::test]
async fn reconfiguring_a_model_too_often_is_refused_with_429_and_retry_after() {
    let app = spawn_app_with(|s| s.model_service.max_config_changes_per_hour = 2).await;
    let beta = |a: f64| json!({"prior": {"type": "beta", "a": a, "b": 1}});
    put(&app, "/models/m", &beta(1.0), 201).await;
    put(&app, "/models/m", &beta(2.0), 200).await;
    put(&app, "/models/m", &beta(3.0), 200).await;
    let response = app.put_json("/models/m", &beta(4.0)).await;
    assert_eq!(response.status().as_u16(), 429);
    let wait: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((3590..=3600).contains(&wait), "{wait}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_changes", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("max_config_changes_per_hour"), "{message}");
    // Nothing changed; what changes nothing still answers; other models are free.
    let now = app.get_json("/models/m", 200).await;
    assert_eq!(now["prior"]["a"], 3.0);
    put(&app, "/models/m", &beta(3.0), 200).await;
    put(&app, "/models/other", &beta(4.0), 201).await;
    put(&app, "/models/other", &beta(5.0), 200).await;
    // Data still arrives; the posterior follows it under the prior in force.
    app.publish("m", 7, 2).await;
    let body = app.get_json("/models/m/posterior?grid=false", 200).await;
    let prior = Prior::Beta { a: 3.0, b: 1.0 };
    let want = Posterior::new(&prior, Counts::new(7, 2))
        .unwrap()
        .summary(0.89)
        .unwrap();
    assert_eq!(body["summary"], serde_json::to_value(want).unwrap());
}
