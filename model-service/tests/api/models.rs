//! `GET /models`, `GET /models/{id}`, `PUT /models/{id}`.

use domain::bayes::{Counts, Posterior};
use domain::Prior;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, spawn_app_with};

#[tokio::test]
async fn a_model_shows_its_prior_grid_size_counts_and_version() {
    let app = spawn_app().await;
    app.publish("globe", 6, 3).await;
    app.publish("globe", 1, 1).await;

    let body = app.get_json("/models/globe", 200).await;
    assert_eq!(body["model"], "globe");
    assert_eq!(body["prior"], json!({"type": "uniform"}));
    assert_eq!(body["grid_size"], 1000);
    assert_eq!(
        (
            &body["successes"],
            &body["failures"],
            &body["trials"],
            &body["version"]
        ),
        (&json!(7), &json!(4), &json!(11), &json!(2))
    );
    for field in ["created_at", "configured_at", "updated_at"] {
        let time = body[field].as_str().expect(field);
        chrono::DateTime::parse_from_rfc3339(time).expect("an RFC 3339 time");
    }
}

#[tokio::test]
async fn an_unknown_model_is_not_found() {
    let app = spawn_app().await;
    let message = app.get_error("/models/nope", 404, "model_not_found").await;
    assert!(message.contains("nope"), "{message}");
    // An id that could never be valid names no model either.
    app.get_error("/models/Not%20Valid", 404, "model_not_found")
        .await;
}

#[tokio::test]
async fn the_model_list_pages_through_models_in_id_order() {
    let app = spawn_app().await;
    app.publish_many(&[("c", 1, 0), ("a", 2, 0), ("b", 3, 1)])
        .await;

    let first = app.get_json("/models?limit=2", 200).await;
    let ids: Vec<&str> = first["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["model"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["a", "b"]);
    assert_eq!(first["models"][1]["trials"], 4);
    assert_eq!(first["next_after"], "b");

    let second = app.get_json("/models?limit=2&after=b", 200).await;
    assert_eq!(second["models"].as_array().unwrap().len(), 1);
    assert_eq!(second["models"][0]["model"], "c");
    assert!(second.get("next_after").is_none(), "{second}");

    let all = app.get_json("/models", 200).await;
    assert_eq!(all["models"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn the_model_list_rejects_a_bad_limit_or_cursor() {
    let app = spawn_app().await;
    for query in ["limit=0", "limit=1001", "limit=ten", "after=Not%20Valid"] {
        app.get_error(&format!("/models?{query}"), 422, "invalid_parameter")
            .await;
    }
}

#[tokio::test]
async fn put_creates_a_model_with_no_data_yet() {
    let app = spawn_app().await;
    let response = app
        .put_json(
            "/models/coin",
            &json!({"prior": {"type": "beta", "a": 2.0, "b": 2.0}, "grid_size": 101}),
        )
        .await;
    assert_eq!(response.status().as_u16(), 201);
    assert_eq!(response.headers()["location"], "/models/coin");
    let created: Value = response.json().await.unwrap();
    assert_eq!(
        created["prior"],
        json!({"type": "beta", "a": 2.0, "b": 2.0})
    );
    assert_eq!(created["grid_size"], 101);
    assert_eq!(
        (&created["trials"], &created["version"]),
        (&json!(0), &json!(0))
    );

    // The posterior of a model without data is its prior.
    let posterior = app.get_json("/models/coin/posterior", 200).await;
    let prior = Prior::Beta { a: 2.0, b: 2.0 };
    let expected = Posterior::new(&prior, Counts::ZERO)
        .unwrap()
        .summary(0.89)
        .unwrap();
    assert_eq!(
        posterior["summary"],
        serde_json::to_value(expected).unwrap()
    );
    assert_eq!(posterior["grid"]["p"].as_array().unwrap().len(), 101);
}

#[tokio::test]
async fn data_arriving_after_put_keeps_the_configured_prior() {
    let app = spawn_app().await;
    let response = app
        .put_json(
            "/models/coin",
            &json!({"prior": {"type": "step", "lower": 0.5, "upper": 1.0}}),
        )
        .await;
    assert_eq!(response.status().as_u16(), 201);
    app.publish("coin", 3, 1).await;

    let body = app.get_json("/models/coin", 200).await;
    assert_eq!(body["prior"]["type"], "step");
    assert_eq!(body["grid_size"], 1000);
    assert_eq!((&body["trials"], &body["version"]), (&json!(4), &json!(1)));
}

#[tokio::test]
async fn put_after_data_recomputes_the_posterior_from_the_counts() {
    let app = spawn_app().await;
    app.publish("globe", 6, 3).await;
    let before = app.get_json("/models/globe/posterior", 200).await;

    let prior = Prior::Beta { a: 10.0, b: 10.0 };
    let response = app
        .put_json("/models/globe", &json!({"prior": prior, "grid_size": 50}))
        .await;
    assert_eq!(response.status().as_u16(), 200);
    let info: Value = response.json().await.unwrap();
    assert_eq!(
        (&info["successes"], &info["failures"]),
        (&json!(6), &json!(3))
    );

    let after = app.get_json("/models/globe/posterior", 200).await;
    let expected = Posterior::new(&prior, Counts::new(6, 3))
        .unwrap()
        .summary(0.89)
        .unwrap();
    assert_eq!(after["summary"], serde_json::to_value(expected).unwrap());
    assert_eq!(after["grid"]["p"].as_array().unwrap().len(), 50);
    assert_ne!(before["summary"], after["summary"]);
    assert_eq!(after["version"], 1, "configuration is not a data version");
}

#[tokio::test]
async fn put_with_only_a_grid_size_keeps_the_prior() {
    let app = spawn_app().await;
    app.configure("globe", Prior::Beta { a: 3.0, b: 1.0 }, None)
        .await;
    let response = app
        .put_json("/models/globe", &json!({"grid_size": 11}))
        .await;
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["prior"], json!({"type": "beta", "a": 3.0, "b": 1.0}));
    assert_eq!(body["grid_size"], 11);
}

#[tokio::test]
async fn put_needs_an_admin_key_when_keys_are_required() {
    let app = spawn_app_with(|s| {
        s.auth.required = true;
        s.auth.bootstrap_admin_key = Some(crate::keys::BOOTSTRAP.to_owned().into());
    })
    .await;
    let body = json!({"prior": {"type": "uniform"}});
    let put = |auth: Option<String>| {
        let mut request = app.client.put(app.url("/models/coin")).json(&body);
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        request.send()
    };

    for auth in [
        None,
        Some("Bearer wrong".to_owned()),
        Some(format!("Basic {}", crate::keys::BOOTSTRAP)),
        Some("Bearer".to_owned()),
    ] {
        let response = put(auth.clone()).await.unwrap();
        assert_eq!(response.status().as_u16(), 401, "{auth:?}");
        assert!(response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer realm=\"bayes\""));
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], "unauthorized");
    }
    let response = put(Some(format!("Bearer {}", crate::keys::BOOTSTRAP)))
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
}

#[tokio::test]
async fn put_rejects_invalid_bodies_and_ids_with_the_right_status() {
    let app = spawn_app().await;
    let send = |path: &'static str, content_type: &'static str, body: String| {
        app.client
            .put(app.url(path))
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let cases: Vec<(&str, &str, String, u16, &str)> = vec![
        (
            "/models/coin",
            "application/json",
            "{not json".into(),
            400,
            "malformed_json",
        ),
        (
            "/models/coin",
            "text/plain",
            r#"{"grid_size": 10}"#.into(),
            415,
            "unsupported_media_type",
        ),
        (
            "/models/coin",
            "application/json",
            r#"{"prior": {"type": "beta", "a": -1, "b": 1}}"#.into(),
            422,
            "invalid_body",
        ),
        (
            "/models/coin",
            "application/json",
            r#"{"prior": {"type": "cauchy"}}"#.into(),
            422,
            "invalid_body",
        ),
        (
            "/models/coin",
            "application/json",
            r#"{"grid_size": 1}"#.into(),
            422,
            "invalid_body",
        ),
        (
            "/models/coin",
            "application/json",
            r#"{"grid_size": 100001}"#.into(),
            422,
            "invalid_body",
        ),
        (
            "/models/coin",
            "application/json",
            r#"{"colour": "blue"}"#.into(),
            422,
            "invalid_body",
        ),
        (
            "/models/Bad%20Id",
            "application/json",
            "{}".into(),
            422,
            "invalid_parameter",
        ),
        (
            "/models/coin",
            "application/json",
            format!("[{}]", "1,".repeat(3_000_000)),
            413,
            "payload_too_large",
        ),
    ];
    for (path, content_type, body, status, code) in cases {
        let response = send(path, content_type, body).await.unwrap();
        assert_eq!(
            response.status().as_u16(),
            status,
            "{path} {content_type} {code}"
        );
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], code, "{error}");
        assert!(error["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    // Nothing was created by the failed requests.
    app.get_error("/models/coin", 404, "model_not_found").await;
}

#[tokio::test]
async fn a_grid_prior_of_the_largest_size_is_accepted() {
    let app = spawn_app().await;
    let weights: Vec<f64> = (0..100_000).map(|i| (i % 7) as f64).collect();
    let response = app
        .put_json(
            "/models/big",
            &json!({"prior": {"type": "grid", "weights": weights}}),
        )
        .await;
    assert_eq!(response.status().as_u16(), 201);
}
