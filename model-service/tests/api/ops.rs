//! Operations: health, readiness, metrics, the OpenAPI document, and the
//! router driven without a socket.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use model_service::{openapi, router};
use tower::ServiceExt;

use crate::helpers::spawn_app;

#[tokio::test]
async fn health_and_readiness_answer_ok() {
    let app = spawn_app().await;
    let health = app.get_json("/healthz", 200).await;
    assert_eq!(health["status"], "ok");
    let ready = app.get_json("/readyz", 200).await;
    assert_eq!(ready["status"], "ready");
    assert_eq!(
        ready["checks"],
        serde_json::json!([
            {"name": "database", "ok": true},
            {"name": "current_state", "ok": true}
        ])
    );
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status() {
    let app = spawn_app().await;
    app.publish("globe", 6, 3).await;
    app.get_json("/models/globe/posterior", 200).await;
    app.get_json("/models/globe/posterior", 200).await;
    app.get("/models/globe/posterior.png")
        .await
        .bytes()
        .await
        .unwrap();
    app.get_error("/models/nope", 404, "model_not_found").await;

    let response = app.get("/metrics").await;
    assert_eq!(response.status().as_u16(), 200);
    let text = response.text().await.unwrap();
    for needle in [
        r#"http_requests_total{service="model-service",method="GET",route="/models/{id}/posterior",status="200"}"#,
        r#"route="/models/{id}/posterior""#,
        r#"status="404""#,
        r#"http_errors_total{service="model-service",code="model_not_found"}"#,
        r#"http_request_duration_seconds_bucket{service="model-service",method="GET",route="/models/{id}/posterior","#,
        "model_service_query_duration_seconds",
        "model_service_render_duration_seconds",
        r#"model_service_cache_lookups_total{cache="posterior",result="hit"}"#,
        r#"model_service_cache_lookups_total{cache="plot",result="miss"}"#,
    ] {
        assert!(text.contains(needle), "/metrics lacks {needle}:\n{text}");
    }
}

#[tokio::test]
async fn the_openapi_document_describes_every_route() {
    let app = spawn_app().await;
    let served = app.get_json("/openapi.json", 200).await;
    let doc = serde_json::to_value(openapi()).unwrap();
    assert_eq!(served, doc);
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/posterior",
        "/models",
        "/models/{id}",
        "/models/{id}/posterior",
        "/models/{id}/posterior.png",
        "/models/{id}/posterior.svg",
        "/models/{id}/history",
        "/models/{id}/history.png",
        "/models/{id}/history.svg",
        "/models/{id}/predictive",
        "/models/{id}/samples",
        "/compare",
        "/",
        "/events",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        assert!(paths.contains_key(path), "openapi lacks {path}");
    }
    assert!(paths["/models/{id}"]["put"].is_object());
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for schema in [
        "PosteriorView",
        "ModelInfo",
        "Prior",
        "Summary",
        "ErrorBody",
    ] {
        assert!(
            schemas.contains_key(schema),
            "openapi lacks schema {schema}"
        );
    }
}

#[tokio::test]
async fn the_router_answers_without_a_socket() {
    let app = spawn_app().await;
    app.publish("globe", 6, 3).await;
    let router = router(app.state.clone());
    let response = router
        .clone()
        .oneshot(Request::get("/models/globe").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["trials"], 9);

    let response = router
        .oneshot(Request::get("/nowhere").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}
