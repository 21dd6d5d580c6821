//! Errors: one JSON shape, the right status, never a 500 for bad input.

use crate::helpers::spawn_app;

#[tokio::test]
async fn unknown_routes_and_methods_answer_in_the_error_shape() {
    let app = spawn_app().await;
    app.get_error("/nowhere", 404, "not_found").await;
    app.get_error("/models/globe/nothing", 404, "not_found")
        .await;
    let response = app
        .client
        .delete(app.url("/models/globe"))
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
