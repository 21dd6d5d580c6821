//! What a client can hold and grow on the model service, held to its
//! limits: `/events` streams (in all, per client, released when they
//! close), invented methods in the metrics, cross-site writes, the `Host`
//! allow-list, two `Content-Type` headers, a slow request head.

use std::net::Ipv4Addr;
use std::process::Child;
use std::time::Duration;

use platform::settings::Settings;
use serde_json::json;
use test_support::database::TestDatabase;
use test_support::eventually;
use test_support::raw_http::{RawConnection, RawResponse};
use test_support::service_process::spawn_service;

use crate::helpers::{spawn_app_with, TestApp};

/// How long a test waits for what should happen at once.
const DEADLINE: Duration = Duration::from_secs(10);

fn port_of(app: &TestApp) -> u16 {
    app.address
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a port")
}

/// Opens `/events` from `from` and reads the head of the answer: the
/// connection stays open (a stream) when it is 200.
async fn open_stream(port: u16, from: Ipv4Addr) -> (RawConnection, Option<RawResponse>) {
    let mut connection = RawConnection::open_from(from, port).await;
    connection
        .send(b"GET /events HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let answer = connection.head_within(DEADLINE).await;
    (connection, answer)
}

#[track_caller]
fn assert_refused(answer: Option<RawResponse>, fragment: &str) {
    let answer = answer.expect("a complete answer");
    assert_eq!(answer.status, 503, "{answer:?}");
    assert_eq!(answer.error_code().as_deref(), Some("too_many_streams"));
    assert_eq!(answer.header("retry-after"), Some("5"));
    assert!(answer.body.contains(fragment), "{answer:?}");
}

#[tokio::test]
async fn event_streams_are_capped_per_client_and_in_all_and_a_closed_one_frees_its_place() {
    let app = spawn_app_with(|s| {
        s.model_service.max_event_streams = 3;
        s.model_service.max_event_streams_per_client = 2;
    })
    .await;
    let port = port_of(&app);
    let (a, b, c) = (
        Ipv4Addr::new(127, 0, 0, 1),
        Ipv4Addr::new(127, 0, 0, 2),
        Ipv4Addr::new(127, 0, 0, 3),
    );
    let mut streams = Vec::new();
    for _ in 0..2 {
        let (stream, answer) = open_stream(port, a).await;
        assert_eq!(answer.map(|a| a.status), None, "a stream, not an answer");
        streams.push(stream);
    }
    let (_, answer) = open_stream(port, a).await;
    assert_refused(answer, "this client");

    let (from_b, answer) = open_stream(port, b).await;
    assert_eq!(answer.map(|a| a.status), None);
    let (_, answer) = open_stream(port, c).await;
    assert_refused(answer, "3 event streams are open");

    // One of a's streams closes: a new one, of c, is accepted again.
    drop(streams.pop());
    eventually("a closed stream frees its place", async || {
        let (stream, answer) = open_stream(port, c).await;
        answer.is_none().then_some(stream)
    })
    .await;
    drop(from_b);
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("model_service_event_streams"), "{metrics}");
}

/// A model service of its own process, whose descriptors can be counted.
struct ServiceProcess {
    child: Child,
    port: u16,
    _database: TestDatabase,
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ServiceProcess {
    async fn start() -> Self {
        let (database, _connection) = TestDatabase::create().await.expect("a test database");
        let mut settings = Settings::default();
        settings.database = database.settings.clone();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let log =
            std::env::temp_dir().join(format!("{}.log", test_support::unique("model-service")));
        let extra = [
            ("BAYES__MODEL_SERVICE__PORT", port.to_string()),
            (
                "BAYES__MODEL_SERVICE__MAX_EVENT_STREAMS_PER_CLIENT",
                "100".into(),
            ),
        ];
        let child = spawn_service(env!("CARGO_BIN_EXE_model-service"), &settings, &extra, &log);
        let service = Self {
            child,
            port,
            _database: database,
        };
        eventually("the service answers /healthz", async || {
            let connected = tokio::net::TcpStream::connect(("127.0.0.1", port)).await;
            drop(connected.ok()?);
            let mut connection = RawConnection::open(port).await;
            connection
                .send(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .await
                .ok()?;
            (connection.response_within(DEADLINE).await.status == 200).then_some(())
        })
        .await;
        service
    }

    fn open_files(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .expect("the process's descriptors")
            .count()
    }

    /// The value of the open-streams gauge.
    async fn open_streams(&self) -> Option<u64> {
        let mut connection = RawConnection::open(self.port).await;
        connection
            .send(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let answer = connection.response_within(DEADLINE).await;
        answer
            .body
            .lines()
            .find_map(|line| line.strip_prefix("model_service_event_streams "))
            .and_then(|value| value.trim().parse::<f64>().ok())
            .map(|value| value as u64)
    }
}

#[tokio::test]
async fn a_closed_event_stream_gives_back_its_descriptors_and_its_place() {
    const STREAMS: usize = 40;
    let service = ServiceProcess::start().await;
    let before = service.open_files();
    let mut streams = Vec::new();
    for _ in 0..STREAMS {
        let (stream, answer) = open_stream(service.port, Ipv4Addr::LOCALHOST).await;
        assert!(answer.is_none(), "{answer:?}");
        streams.push(stream);
    }
    let during = service.open_files();
    assert!(
        during >= before + STREAMS,
        "{STREAMS} streams hold a socket each: {before} descriptors before, {during} during"
    );
    assert_eq!(service.open_streams().await, Some(STREAMS as u64));
    drop(streams);
    eventually("the streams' descriptors are closed", async || {
        // The gauge's own request holds one connection while it runs.
        let open = service.open_streams().await?;
        let files = service.open_files();
        (open == 0 && files <= before + 1).then_some(())
    })
    .await;
}

#[tokio::test]
async fn an_invented_method_is_counted_as_other_not_under_its_name() {
    let app = spawn_app_with(|_| {}).await;
    let invented = reqwest::Method::from_bytes(b"FOOBAR").unwrap();
    let response = app
        .client
        .request(invented, app.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 405);
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(!metrics.contains("FOOBAR"), "{metrics}");
    assert!(metrics.contains(r#"method="other""#), "{metrics}");
}

async fn put_model(app: &TestApp, headers: &[(&str, &str)]) -> (u16, serde_json::Value) {
    let mut request = app
        .client
        .put(app.url("/models/coin"))
        .header("content-type", "application/json")
        .body(json!({"grid_size": 10}).to_string());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn a_put_from_another_site_is_refused_and_from_curl_accepted() {
    let app = spawn_app_with(|_| {}).await;
    for headers in [
        &[("sec-fetch-site", "cross-site")][..],
        &[("sec-fetch-site", "same-site")][..],
        &[("origin", "https://evil.example")][..],
    ] {
        let (status, body) = put_model(&app, headers).await;
        assert_eq!(status, 403, "{headers:?}: {body}");
        assert_eq!(body["error"]["code"], "cross_origin_request");
    }
    app.get_error("/models/coin", 404, "model_not_found").await;
    let (status, body) = put_model(&app, &[]).await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn a_request_with_two_content_types_is_refused_with_400() {
    let app = spawn_app_with(|_| {}).await;
    let (status, body) = put_model(&app, &[("content-type", "text/plain")]).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "bad_request");
    app.get_error("/models/coin", 404, "model_not_found").await;
}

#[tokio::test]
async fn a_host_outside_the_allow_list_is_refused_with_421_except_on_the_probes() {
    let app = spawn_app_with(|s| s.http.allowed_hosts = vec!["models.example.com".into()]).await;
    let get = async |path: &str, host: &str| {
        app.client
            .get(app.url(path))
            .header("host", host)
            .send()
            .await
            .unwrap()
    };
    let refused = get("/models", "evil.example").await;
    assert_eq!(refused.status().as_u16(), 421);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "misdirected_request");
    assert_eq!(
        get("/models", "models.example.com").await.status().as_u16(),
        200
    );
    for probe in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(
            get(probe, "evil.example").await.status().as_u16(),
            200,
            "{probe}"
        );
    }
}

#[tokio::test]
async fn a_client_that_sends_half_a_request_head_is_disconnected_after_the_header_timeout() {
    let app = spawn_app_with(|s| s.http.header_read_timeout = Duration::from_millis(500)).await;
    let mut connection = RawConnection::open(port_of(&app)).await;
    connection
        .send(b"GET /models HTTP/1.1\r\nHo")
        .await
        .unwrap();
    let closed = connection.closed_within(DEADLINE).await;
    assert!(closed.is_ok(), "{closed:?}");
}
