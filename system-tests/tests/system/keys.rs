//! API keys across the stack, and the life of a model: every operation of
//! the committed `openapi.json` refuses a request without a key (401) and
//! with a key of every other scope (403), on the service that serves it,
//! and takes one of its own scope; a deleted model starts anew from the
//! records that come after it; with `models.auto_create` off, the producer
//! answers 422 for a model it knows is missing and the consumer
//! dead-letters the records of one that is.

use std::path::Path;

use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{json, Value};
use system_tests::Stack;
use test_support::broker::TestBroker;
use test_support::{eventually, DEADLINE};

const BOOTSTRAP: &str = "bootstrap-admin-key-of-the-system-tests-0123";
const SCOPES: [&str; 3] = ["ingest", "read", "admin"];

/// A path of the document with its parameters filled in.
fn concrete(path: &str) -> String {
    path.replace("{outcome}", "w")
        .replace("{id}", "a1b2c3d4e5f6")
}

/// Sends `method url` with `key` (an empty body where one is expected:
/// what a key check must refuse before the body is read).
async fn send(stack: &Stack, method: &str, url: &str, key: Option<&str>) -> reqwest::Response {
    let mut request = stack.http.request(method.parse().unwrap(), url);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    request.send().await.unwrap()
}

async fn code_of(response: reqwest::Response) -> String {
    let body: Value = response.json().await.unwrap_or_default();
    body["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// `DELETE /models/{model}` without a key (auth is off), which must answer 204.
async fn delete_model(stack: &Stack, model: &str) {
    let url = format!("{}/models/{model}", stack.model);
    assert_eq!(send(stack, "DELETE", &url, None).await.status(), 204);
}

#[tokio::test]
async fn every_operation_in_openapi_json_refuses_a_request_without_its_scope() {
    let _machine = system_tests::share_the_machine().await;
    let stack = Stack::start_with(TestBroker::start(), |s| {
        s.auth.required = true;
        s.auth.bootstrap_admin_key = Some(BOOTSTRAP.to_owned().into());
    })
    .await;
    // One key a scope, in force on both services.
    let mut keys = Vec::new();
    for scope in SCOPES {
        let response = stack
            .http
            .post(format!("{}/keys", stack.model))
            .bearer_auth(BOOTSTRAP)
            .json(&json!({"name": format!("only-{scope}"), "scopes": [scope]}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let created: Value = response.json().await.unwrap();
        keys.push((scope, created["token"].as_str().unwrap().to_owned()));
    }
    for (_, token) in &keys {
        for base in [&stack.producer, &stack.model] {
            eventually("the keys are in force on both services", async || {
                let response = send(&stack, "GET", &format!("{base}/nowhere"), Some(token)).await;
                (response.status() == 404).then_some(())
            })
            .await;
        }
    }

    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../openapi.json");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(committed).unwrap()).unwrap();
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        let servers: Vec<&str> = item["servers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["description"].as_str().unwrap())
            .collect();
        for method in ["get", "post", "put", "delete", "patch"] {
            let Some(operation) = item.get(method) else {
                continue;
            };
            let what = format!("{} {path}", method.to_uppercase());
            let security = operation["security"]
                .as_array()
                .unwrap_or_else(|| panic!("{what} declares no security"));
            let scope = security[0]["bearer"][0].as_str();
            for server in &servers {
                let base = if *server == "producer" {
                    &stack.producer
                } else {
                    &stack.model
                };
                let url = format!("{base}{}", concrete(path));
                let method = method.to_uppercase();
                let Some(scope) = scope else {
                    // Public: probes and the static dashboard pages.
                    assert_eq!(security[0], json!({}), "{what}");
                    let response = send(&stack, &method, &url, None).await;
                    assert_eq!(response.status(), 200, "{what} on the {server}");
                    continue;
                };
                let response = send(&stack, &method, &url, None).await;
                assert_eq!(
                    response.status(),
                    401,
                    "{what} on the {server} without a key"
                );
                assert!(
                    response.headers().contains_key("www-authenticate"),
                    "{what}"
                );
                assert_eq!(code_of(response).await, "unauthorized", "{what}");
                for (held, token) in &keys {
                    let response = send(&stack, &method, &url, Some(token)).await;
                    let status = response.status().as_u16();
                    if *held == scope {
                        assert!(
                            status != 401 && status != 403,
                            "{what} on the {server} with its scope {scope}: {status}"
                        );
                    } else {
                        assert_eq!(status, 403, "{what} on the {server} with scope {held}");
                        assert_eq!(code_of(response).await, "insufficient_scope", "{what}");
                    }
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 30, "only {checked} operations checked");
    stack.stop().await;
}

#[tokio::test]
async fn a_deleted_model_loses_its_history_and_starts_anew_from_later_records() {
    let _machine = system_tests::share_the_machine().await;
    let stack = Stack::start().await;
    assert_eq!(stack.post("gone", "wwl").await.status(), 202);
    stack.model_with_trials("gone", 3).await;
    delete_model(&stack, "gone").await;
    assert!(stack.get_json("/models/gone").await.is_none());
    // Records after the deletion create it again (auto_create is on), from
    // nothing: the three deleted observations are not counted again.
    assert_eq!(stack.post("gone", "lw").await.status(), 202);
    let model = stack.model_with_trials("gone", 2).await;
    assert_eq!(model["version"], 1, "{model}");
    // Its history starts again: the prior (version 0), then this batch.
    let history = stack.get_json("/models/gone/history").await.unwrap();
    let versions: Vec<u64> = history["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, [0, 1], "{history}");
    stack.stop().await;
}

#[tokio::test]
async fn with_auto_create_off_missing_models_are_refused_by_the_producer_and_dead_lettered_by_the_consumer(
) {
    let _machine = system_tests::share_the_machine().await;
    let stack = Stack::start_with(TestBroker::start(), |s| s.models.auto_create = false).await;
    let put = stack
        .http
        .put(format!("{}/models/kept", stack.model))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201);
    eventually("the producer knows the new model", async || {
        (stack.post("kept", "w").await.status() == 202).then_some(())
    })
    .await;
    let refused = stack.post("typo", "w").await;
    assert_eq!(refused.status(), 422);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unknown_model", "{body}");
    let batch = stack
        .http
        .post(format!("{}/observations", stack.producer))
        .json(&json!([{"model": "kept", "outcome": "w"}, {"model": "typo", "outcome": "l"}]))
        .send()
        .await
        .unwrap();
    assert_eq!(batch.status(), 422);
    let body: Value = batch.json().await.unwrap();
    assert_eq!(body["error"]["item"], 1, "{body}");

    // Past the producer (kcat, the console producer), the consumer decides:
    // the record of the missing model is dead-lettered, the others count.
    let raw: FutureProducer = stack.broker.client_config().create().unwrap();
    let topic = &stack.settings.kafka.topic;
    for (key, value) in [("typo", "w"), ("kept", "l")] {
        raw.send(FutureRecord::to(topic).key(key).payload(value), DEADLINE)
            .await
            .unwrap();
    }
    stack.model_with_trials("kept", 2).await;
    let dead = stack.the_dead_letter().await;
    assert_eq!(dead.key.as_deref(), Some(&b"typo"[..]));
    let error = dead.header("error").unwrap_or_default();
    assert!(error.starts_with("unknown_model"), "{error}");
    assert!(stack.get_json("/models/typo").await.is_none());

    // Deleted: the producer learns it, and records still arriving are
    // dead-lettered, never creating it again.
    delete_model(&stack, "kept").await;
    eventually("the producer learns of the deletion", async || {
        (stack.post("kept", "w").await.status() == 422).then_some(())
    })
    .await;
    raw.send(FutureRecord::to(topic).key("kept").payload("w"), DEADLINE)
        .await
        .unwrap();
    let dlq = stack
        .broker
        .records_at_least(&stack.settings.kafka.dlq_topic, 2)
        .await;
    assert_eq!(dlq[1].key.as_deref(), Some(&b"kept"[..]));
    assert!(stack.get_json("/models/kept").await.is_none());
    stack.stop().await;
}
