//! Running the service: metrics, the router without a socket, start-up topic
//! creation, graceful shutdown and the OpenAPI document.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use producer::{router, AppState, Application};
use tower::ServiceExt;

use crate::helpers::{spawn_app, test_settings, unique_topic, TestBroker, HTTP_DEADLINE};

#[tokio::test]
async fn the_router_answers_without_a_socket() {
    let settings = test_settings("127.0.0.1:9", &unique_topic());
    let app = router(
        AppState::new(&settings, producer::Database::default()).expect("creating the state"),
    );
    let response = app
        .clone()
        .oneshot(
            Request::get("/healthz")
                .body(Body::empty())
                .expect("a request"),
        )
        .await
        .expect("an answer");
    assert_eq!(response.status(), StatusCode::OK);
    let response = app
        .oneshot(
            Request::post("/observations")
                .header("content-type", "application/json")
                .body(Body::from(r#"{"successes":3,"trials":2}"#))
                .expect("a request"),
        )
        .await
        .expect("an answer");
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .expect("the body");
    let body: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(body["error"]["message"], "successes (3) exceed trials (2)");
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status_records_latency_and_errors() {
    let app = spawn_app().await;
    assert_eq!(
        app.post_json(r#"[{"outcome":"w"},{"outcome":"l"}]"#)
            .await
            .status,
        202
    );
    assert_eq!(app.post_json(r#"{"outcome":"nope"}"#).await.status, 422);
    assert_eq!(app.get("/nowhere").await.status, 404);
    let metrics = app.get("/metrics").await;
    assert_eq!(metrics.status, 200);
    let text = metrics.text;
    for expected in [
        r#"http_requests_total{service="producer",method="POST",route="/observations",status="202"}"#,
        r#"http_requests_total{service="producer",method="POST",route="/observations",status="422"}"#,
        r#"http_requests_total{service="producer",method="GET",route="unmatched",status="404"}"#,
        "http_request_duration_seconds_bucket{service=\"producer\",method=\"POST\",route=\"/observations\",le=",
        &format!(
            "producer_records_produced_total{{topic=\"{}\"}} 2",
            app.topic
        ),
        "producer_produce_duration_seconds_bucket{le=",
        "producer_request_size_records_bucket{le=",
        r#"http_errors_total{service="producer",code="invalid_observation"}"#,
        r#"http_errors_total{service="producer",code="not_found"}"#,
    ] {
        assert!(
            text.contains(expected),
            "/metrics lacks {expected}:\n{text}"
        );
    }
}

#[tokio::test]
async fn start_up_with_topic_creation_on_never_blocks_for_long_and_creates_what_it_can() {
    test_support::init_tracing();
    let broker = TestBroker::start();
    let topic = unique_topic();
    let mut settings = test_settings(&broker.brokers, &topic);
    settings.kafka.create_topics = true;
    settings.kafka.partitions = 2;
    settings.producer.admin_timeout = std::time::Duration::from_millis(500);
    // The mock cluster has no CreateTopics API: start-up must give up on it
    // with a warning, well before this deadline, and still serve.
    let application = tokio::time::timeout(HTTP_DEADLINE, Application::build(settings.clone()))
        .await
        .expect("start-up finished before the deadline")
        .expect("start-up succeeded");
    assert_ne!(application.port(), 0);
    if !broker.is_mock() {
        assert_eq!(broker.partitions_of(&topic), Some(2));
        assert_eq!(broker.partitions_of(&settings.kafka.dlq_topic), Some(2));
    }
}

#[tokio::test]
async fn stopping_the_app_closes_the_port_and_returns_after_flushing() {
    let mut app = spawn_app().await;
    assert_eq!(app.post_json(r#"{"outcome":"w"}"#).await.status, 202);
    app.stop().await.expect("a clean stop");
    let refused = tokio::net::TcpStream::connect(("127.0.0.1", app.port)).await;
    assert!(refused.is_err(), "the port still accepts connections");
    assert_eq!(app.records().await.len(), 1);
}

#[test]
fn the_openapi_document_describes_every_endpoint_and_its_errors() {
    let doc = producer::openapi();
    let json = serde_json::to_value(&doc).expect("the document serialises");
    let responses = |path: &str, method: &str| -> Vec<String> {
        json["paths"][path][method]["responses"]
            .as_object()
            .unwrap_or_else(|| panic!("{method} {path} is documented"))
            .keys()
            .cloned()
            .collect()
    };
    assert_eq!(
        responses("/observations", "post"),
        ["202", "400", "401", "403", "408", "409", "413", "415", "421", "422", "429", "503"]
    );
    // The seed's GET changes state too: cross-site refusal applies to both.
    for method in ["get", "post"] {
        assert_eq!(
            responses("/update_model/{outcome}", method),
            ["202", "400", "401", "403", "409", "421", "422", "429", "503"]
        );
    }
    assert_eq!(responses("/healthz", "get"), ["200"]);
    assert_eq!(responses("/readyz", "get"), ["200", "503"]);
    assert_eq!(responses("/metrics", "get"), ["200"]);
    let content = &json["paths"]["/observations"]["post"]["requestBody"]["content"];
    assert!(
        content.get("application/json").is_some() && content.get("text/plain").is_some(),
        "{content}"
    );
    for schema in [
        "ObservationBody",
        "ObservationsPayload",
        "Accepted",
        "ErrorBody",
    ] {
        assert!(
            json["components"]["schemas"].get(schema).is_some(),
            "schema {schema} is missing"
        );
    }
}
