//! Errors: one JSON shape, the right status, never a 500 for bad input.

use crate::helpers::spawn_app;

#[tokio::test]
async fn unknown_routes_and_methods_answer_in_the_error_shape() {
    let app = spawn_app().await;
    app.get_errors(&[
        ("/nowhere", 404, "not_found"),
        ("/models/globe/nothing", 404, "not_found"),
    ])
    .await;
    let response = app
        .client
        .post(app.url("/models/globe"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 405);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "method_not_allowed");
}

#[tokio::test]
async fn no_bad_input_gets_a_server_error() {
    let app = spawn_app().await;
    app.publish("globe", 6, 3).await;
    let paths = [
        "/models/globe/posterior?mass=%FF",
        "/models/globe/posterior?version=18446744073709551616",
        "/models/globe/posterior?at=2024-13-45T00:00:00Z",
        "/models/globe/posterior?grid=maybe",
        "/models/globe/posterior.png?width=1e3",
        "/models/globe/samples?n=99999999999999999999",
        "/models/globe/predictive?trials=4294967296",
        "/models/globe/history?after=-1",
        "/models/%00/posterior",
        "/models/a%2Fb/posterior",
        "/compare?a=&b=globe",
        "/models?limit=%20",
        &format!("/models/{}", "x".repeat(65)),
    ];
    for path in paths {
        let response = app.get(path).await;
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        assert!((400..500).contains(&status), "{path}: {status} {body}");
        assert!(body["error"]["code"].is_string(), "{path}: {body}");
    }
}

#[tokio::test]
async fn a_database_that_is_gone_answers_503() {
    let app = spawn_app().await;
    app.publish("globe", 6, 3).await;
    app.get_json("/models/globe/posterior", 200).await;

    // Drop the service's database from under it.
    use sea_orm::ConnectionTrait;
    let admin = sea_orm::Database::connect(test_support::TestEnvironment::from_env().database_url)
        .await
        .unwrap();
    app.db.clone().close().await.unwrap();
    admin
        .execute_unprepared(&format!(
            "DROP DATABASE \"{}\" WITH (FORCE)",
            app.test_db.name
        ))
        .await
        .unwrap();

    // Readiness says which dependency is down, in the common shape.
    let response = app.get("/readyz").await;
    assert_eq!(response.status().as_u16(), 503, "/readyz");
    assert_eq!(response.headers()["retry-after"], "1");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "not_ready", "{body}");
    assert_eq!(body["checks"][0]["name"], "database", "{body}");
    assert_eq!(body["checks"][0]["ok"], false, "{body}");
    // The current state in memory can no longer be kept in sync: once the
    // service noticed (its listening connection was closed), readiness says
    // so and reads answer 503 instead of a state that may be stale.
    let why = test_support::eventually("readiness names the lost feed", async || {
        let body: serde_json::Value = app.get("/readyz").await.json().await.unwrap();
        let check = body["checks"][1].clone();
        assert_eq!(check["name"], "current_state", "{body}");
        (check["ok"] == false).then(|| check["error"].clone())
    })
    .await;
    assert!(why.as_str().is_some_and(|w| !w.is_empty()), "{why}");
    for path in [
        "/models/globe/posterior",
        "/models",
        "/models/globe/posterior.png?width=300",
    ] {
        let response = app.get(path).await;
        assert_eq!(response.status().as_u16(), 503, "{path}");
        assert_eq!(response.headers()["retry-after"], "1");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "database_unavailable", "{path}");
    }
    // Liveness does not depend on the database.
    app.get_json("/healthz", 200).await;
}

#[tokio::test]
async fn every_parameter_outside_its_declared_range_is_a_422_invalid_parameter() {
    let app = spawn_app().await;
    app.publish("globe", 6, 3).await;
    let past_i64 = "9223372036854775808";
    let paths = [
        format!("/models/globe/history?after={past_i64}"),
        "/models/globe/history?after=18446744073709551615".to_owned(),
        "/models/globe/history?limit=0".to_owned(),
        "/models/globe/history?limit=1001".to_owned(),
        "/models/globe/history?limit=4294967296".to_owned(),
        "/models/globe/history?mass=1".to_owned(),
        "/models?limit=0".to_owned(),
        "/models?limit=1001".to_owned(),
        "/models?after=Not%20An%20Id".to_owned(),
        "/models/globe/posterior?mass=0".to_owned(),
        "/models/globe/posterior?mass=1".to_owned(),
        "/models/globe/posterior?mass=-0.5".to_owned(),
        "/models/globe/posterior?mass=NaN".to_owned(),
        "/models/globe/posterior?mass=inf".to_owned(),
        "/posterior?mass=1.5".to_owned(),
        format!("/models/globe/posterior?version={past_i64}"),
        "/models/globe/posterior?at=".to_owned(),
        "/models/globe/samples?n=0".to_owned(),
        "/models/globe/samples?n=100001".to_owned(),
        format!("/models/globe/samples?seed={past_i64}"),
        "/models/globe/predictive?trials=1001".to_owned(),
        "/models/globe/predictive".to_owned(),
        "/models/globe/posterior.png?width=199".to_owned(),
        "/models/globe/posterior.png?width=4001".to_owned(),
        "/models/globe/posterior.svg?height=149".to_owned(),
        "/models/globe/history.svg?height=4001".to_owned(),
        "/models/globe/history.png?mass=0".to_owned(),
        "/compare?a=globe&b=globe&mass=1".to_owned(),
        "/compare?a=globe".to_owned(),
    ];
    for path in &paths {
        app.get_error(path, 422, "invalid_parameter").await;
    }
}

#[tokio::test]
async fn a_model_configuration_must_be_a_json_object_with_priors_the_engine_can_answer() {
    let app = spawn_app().await;
    for (body, code) in [
        ("[null, null]", "invalid_body"),
        ("[]", "invalid_body"),
        (
            r#"{"prior": {"type": "uniform", "extra": 1}}"#,
            "invalid_body",
        ),
        (
            r#"{"prior": {"type": "beta", "a": 1e-300, "b": 1}}"#,
            "invalid_body",
        ),
        (
            r#"{"prior": {"type": "beta", "a": 1, "b": 1e300}}"#,
            "invalid_body",
        ),
    ] {
        let response = app
            .client
            .put(app.url("/models/coin"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let answer: serde_json::Value = response.json().await.unwrap_or_default();
        assert_eq!(
            (status, &answer["error"]["code"]),
            (422, &serde_json::json!(code)),
            "{body}: {answer}"
        );
    }
    app.get_error("/models/coin", 404, "model_not_found").await;
    // A whole number written with a fraction is still that number.
    let response = app
        .client
        .put(app.url("/models/coin"))
        .header("content-type", "application/json")
        .body(r#"{"grid_size": 500.0, "prior": {"type": "beta", "a": 1e-6, "b": 1e6}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
    let created: serde_json::Value = response.json().await.unwrap();
    assert_eq!(created["grid_size"], 500, "{created}");
    app.get_json("/models/coin/posterior", 200).await;
}
