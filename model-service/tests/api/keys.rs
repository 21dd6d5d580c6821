//! API keys on the model service: `/keys` (create, list, revoke), the
//! refusals (401, 403, 429) in the common error shape, revocation reaching
//! the service by notification and by the periodic reload, the last use
//! written, the per-key metric, and everything open with keys off.

use std::time::Duration;

use platform::settings::Settings;
use serde_json::{json, Value};

use crate::helpers::{eventually, spawn_app, spawn_app_with, TestApp};

/// The bootstrap admin key of these tests (32 characters at least).
pub const BOOTSTRAP: &str = "bootstrap-admin-key-for-the-tests-0123456789";

pub fn locked(s: &mut Settings) {
    s.auth.required = true;
    s.auth.bootstrap_admin_key = Some(BOOTSTRAP.to_owned().into());
}

/// `method path` with `key` (none: no `Authorization`), JSON `body`.
async fn call(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> reqwest::Response {
    let mut request = app.client.request(method, app.url(path));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

/// Revokes key `id` with the bootstrap key, which must answer 204.
async fn revoke(app: &TestApp, id: &str) {
    let path = format!("/keys/{id}");
    let revoked = call(app, reqwest::Method::DELETE, &path, Some(BOOTSTRAP), None).await;
    assert_eq!(revoked.status(), 204);
}

/// Waits until `GET /models` with `token` answers `status` on `app`: a
/// key's creation or revocation reaching the service.
async fn until_models_answers(app: &TestApp, token: &str, status: u16, what: &str) {
    eventually(Duration::from_secs(10), what, || async {
        let response = call(app, reqwest::Method::GET, "/models", Some(token), None).await;
        (response.status() == status).then_some(())
    })
    .await;
}

/// Creates a key with the bootstrap key and waits until the service took
/// it (the notification of its creation); returns (id, token).
pub async fn create_key(app: &TestApp, body: Value) -> (String, String) {
    let response = call(
        app,
        reqwest::Method::POST,
        "/keys",
        Some(BOOTSTRAP),
        Some(body),
    )
    .await;
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let created: Value = response.json().await.unwrap();
    let (id, token) = (
        created["id"].as_str().unwrap().to_owned(),
        created["token"].as_str().unwrap().to_owned(),
    );
    // Any route but a public one: 401 until the key is in force, 503 while
    // the service has not loaded its keys yet; then the router's 404.
    eventually(
        Duration::from_secs(10),
        "the new key is in force",
        || async {
            let response = call(app, reqwest::Method::GET, "/nowhere", Some(&token), None).await;
            (response.status() == 404).then_some(())
        },
    )
    .await;
    (id, token)
}

/// The status and `error.code` of an answer, checking the JSON error shape.
async fn refusal(response: reqwest::Response) -> (u16, String, Option<String>) {
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    (
        status,
        body["error"]["code"].as_str().unwrap().to_owned(),
        challenge,
    )
}

#[tokio::test]
async fn a_key_is_shown_once_listed_without_its_token_and_refused_once_revoked() {
    let app = spawn_app_with(locked).await;
    let (id, token) = create_key(&app, json!({"name": "reader", "scopes": ["read"]})).await;
    assert!(token.starts_with(&format!("bk_{id}_")), "{token}");

    let response = call(&app, reqwest::Method::GET, "/models", Some(&token), None).await;
    assert_eq!(response.status(), 200);

    let list = call(&app, reqwest::Method::GET, "/keys", Some(BOOTSTRAP), None).await;
    let list: Value = list.json().await.unwrap();
    assert_eq!(list["keys"][0]["name"], "reader");
    assert_eq!(list["keys"][0]["scopes"], json!(["read"]));
    assert!(!list.to_string().contains(&token[16..]), "{list}");

    // The name is taken while the key is in force.
    let again = call(
        &app,
        reqwest::Method::POST,
        "/keys",
        Some(BOOTSTRAP),
        Some(json!({"name": "reader", "scopes": ["ingest"]})),
    )
    .await;
    assert_eq!(refusal(again).await.1, "key_name_taken");

    revoke(&app, &id).await;
    // The notification reaches the service's keys within a moment.
    until_models_answers(&app, &token, 401, "the revoked key is refused").await;
    let gone = call(
        &app,
        reqwest::Method::DELETE,
        &format!("/keys/{id}"),
        Some(BOOTSTRAP),
        None,
    )
    .await;
    assert_eq!(refusal(gone).await.1, "key_not_found");
}

#[tokio::test]
async fn every_refusal_is_json_with_its_status_challenge_and_code() {
    let app = spawn_app_with(locked).await;
    let (_, reader) = create_key(&app, json!({"name": "reader", "scopes": ["read"]})).await;
    let (status, code, challenge) =
        refusal(call(&app, reqwest::Method::GET, "/models", None, None).await).await;
    assert_eq!((status, code.as_str()), (401, "unauthorized"));
    assert_eq!(challenge.as_deref(), Some("Bearer realm=\"bayes\""));

    let (status, code, challenge) = refusal(
        call(
            &app,
            reqwest::Method::GET,
            "/models",
            Some("bk_000000000000_00"),
            None,
        )
        .await,
    )
    .await;
    assert_eq!((status, code.as_str()), (401, "unauthorized"));
    assert!(challenge.unwrap().contains("error=\"invalid_token\""));

    let (status, code, challenge) = refusal(
        call(
            &app,
            reqwest::Method::PUT,
            "/models/coin",
            Some(&reader),
            Some(json!({})),
        )
        .await,
    )
    .await;
    assert_eq!((status, code.as_str()), (403, "insufficient_scope"));
    assert!(challenge.unwrap().contains("scope=\"admin\""));

    // An unknown route needs a key too before it is a 404.
    let (status, code, _) =
        refusal(call(&app, reqwest::Method::GET, "/nowhere", None, None).await).await;
    assert_eq!((status, code.as_str()), (401, "unauthorized"));
    let (status, _, _) =
        refusal(call(&app, reqwest::Method::GET, "/nowhere", Some(&reader), None).await).await;
    assert_eq!(status, 404);

    // Probes and the static pages answer anyone.
    for path in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/",
        "/experiments/x/dashboard",
    ] {
        let response = call(&app, reqwest::Method::GET, path, None, None).await;
        assert_eq!(response.status(), 200, "{path}");
    }
}

#[tokio::test]
async fn a_key_past_its_rate_limit_is_answered_429_with_retry_after() {
    let app = spawn_app_with(locked).await;
    let (_, token) = create_key(
        &app,
        // 3.0 is 3, as JSON Schema's integers go (schemathesis sends such).
        json!({"name": "slow", "scopes": ["read"], "rate_limit": 3.0}),
    )
    .await;
    let mut limited = None;
    for _ in 0..20 {
        let response = call(&app, reqwest::Method::GET, "/healthz?x", Some(&token), None).await;
        assert_eq!(response.status(), 200, "a public route counts nothing");
    }
    for _ in 0..20 {
        let response = call(&app, reqwest::Method::GET, "/models", Some(&token), None).await;
        if response.status() == 429 {
            limited = Some(response);
            break;
        }
    }
    let response = limited.expect("never limited");
    assert_eq!(response.headers()["retry-after"], "1");
    assert_eq!(refusal(response).await.1, "rate_limited");
}

#[tokio::test]
async fn the_last_use_is_written_and_requests_are_counted_by_key_name() {
    let app = spawn_app_with(|s| {
        locked(s);
        s.auth.last_used_interval = Duration::from_millis(100);
    })
    .await;
    let (_, token) = create_key(&app, json!({"name": "counted", "scopes": ["read"]})).await;
    let list = call(&app, reqwest::Method::GET, "/keys", Some(BOOTSTRAP), None).await;
    let list: Value = list.json().await.unwrap();
    assert_eq!(list["keys"][0]["last_used_at"], Value::Null);
    until_models_answers(&app, &token, 200, "the key is loaded").await;
    eventually(
        Duration::from_secs(10),
        "the last use is written",
        || async {
            let list = call(&app, reqwest::Method::GET, "/keys", Some(BOOTSTRAP), None).await;
            let list: Value = list.json().await.unwrap();
            list["keys"][0]["last_used_at"].as_str().map(|_| ())
        },
    )
    .await;
    let metrics = call(&app, reqwest::Method::GET, "/metrics", None, None).await;
    let metrics = metrics.text().await.unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("http_key_requests_total")
                && l.contains("key=\"counted\"")
                && l.contains("service=\"model-service\"")),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_service_that_missed_the_notification_drops_a_revoked_key_within_the_reload_interval() {
    let app = spawn_app_with(locked).await;
    // A second service over the same database that never hears the keys'
    // channel: only its reload interval can tell it.
    let deaf = spawn_app_with(|s| {
        locked(s);
        s.database = app.settings.database.clone();
        s.auth.notify_channel = "nobody_notifies_here".into();
        s.auth.reload_interval = Duration::from_millis(300);
    })
    .await;
    let (id, token) = create_key(&app, json!({"name": "r", "scopes": ["read"]})).await;
    until_models_answers(&deaf, &token, 200, "the deaf service loads the key").await;
    revoke(&app, &id).await;
    until_models_answers(&deaf, &token, 401, "the deaf service refuses it").await;
}

#[tokio::test]
async fn keys_past_max_keys_and_invalid_ones_are_refused() {
    let app = spawn_app_with(|s| {
        locked(s);
        s.auth.max_keys = 1;
    })
    .await;
    create_key(&app, json!({"name": "one", "scopes": ["read"]})).await;
    let post = |body: Value| {
        call(
            &app,
            reqwest::Method::POST,
            "/keys",
            Some(BOOTSTRAP),
            Some(body),
        )
    };
    let (status, code, _) = refusal(post(json!({"name": "two", "scopes": ["read"]})).await).await;
    assert_eq!((status, code.as_str()), (409, "too_many_keys"));
    for body in [
        json!({"name": "bootstrap", "scopes": ["read"]}),
        json!({"name": "Upper", "scopes": ["read"]}),
        json!({"name": "x", "scopes": []}),
        json!({"name": "x", "scopes": ["root"]}),
        json!({"name": "x", "scopes": ["read", "read", "read", "read"]}),
        json!({"name": "x", "scopes": ["read"], "rate_limit": 0}),
        json!({"name": "x", "scopes": ["read"], "rate_limit": 1.5}),
        json!({"name": "x", "scopes": ["read"], "rate_limit": 2147483648_u64}),
        json!({"name": "x", "scopes": ["read"], "rate_limit": -1}),
        json!({"name": "x", "scopes": ["read"], "extra": 1}),
    ] {
        let (status, _, _) = refusal(post(body.clone()).await).await;
        assert_eq!(status, 422, "{body}");
    }
}

#[tokio::test]
async fn with_keys_off_every_route_is_open_as_before() {
    let app = spawn_app().await;
    assert_eq!(app.get("/models").await.status(), 200);
    let response = app.put_json("/models/coin", &json!({})).await;
    assert_eq!(response.status(), 201);
    let deleted = call(&app, reqwest::Method::DELETE, "/models/coin", None, None).await;
    assert_eq!(deleted.status(), 204);
}
