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
    /// The service with `extra` settings in its environment.
    async fn start(extra: &[(&str, String)]) -> Self {
        let (database, _connection) = TestDatabase::create().await.expect("a test database");
        let mut settings = Settings::default();
        settings.database = database.settings.clone();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let log =
            std::env::temp_dir().join(format!("{}.log", test_support::unique("model-service")));
        let mut environment = vec![("BAYES__MODEL_SERVICE__PORT", port.to_string())];
        environment.extend(extra.iter().cloned());
        let binary = env!("CARGO_BIN_EXE_model-service");
        let child = spawn_service(binary, &settings, &environment, &log);
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

    /// Whether the process holds a TCP socket whose peer is `client_port`
    /// on this machine: its descriptors' socket inodes, looked up in the
    /// kernel's table of TCP sockets.
    fn holds_connection_from(&self, client_port: u16) -> bool {
        let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|fd| std::fs::read_link(fd.path()).ok())
            .filter_map(|link| {
                let link = link.to_string_lossy().into_owned();
                link.strip_prefix("socket:[")?
                    .strip_suffix(']')
                    .map(str::to_owned)
            })
            .collect();
        let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
        table.lines().skip(1).any(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let peer_port = fields
                .get(2)
                .and_then(|peer| peer.rsplit(':').next())
                .and_then(|port| u16::from_str_radix(port, 16).ok());
            peer_port == Some(client_port)
                && fields.get(9).is_some_and(|i| inodes.iter().any(|x| x == i))
        })
    }

    /// Sends one request on a connection of its own and reads the answer.
    async fn request(&self, head: &str, body: &str) -> RawResponse {
        let mut connection = RawConnection::open(self.port).await;
        let request = format!(
            "{head}\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        connection.send(request.as_bytes()).await.unwrap();
        connection.response_within(DEADLINE).await
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
    let service = ServiceProcess::start(&[(
        "BAYES__MODEL_SERVICE__MAX_EVENT_STREAMS_PER_CLIENT",
        "100".into(),
    )])
    .await;
    let before = service.open_files();
    let mut streams = Vec::new();
    for _ in 0..STREAMS {
        let (stream, answer) = open_stream(service.port, Ipv4Addr::LOCALHOST).await;
        assert!(answer.is_none(), "{answer:?}");
        streams.push(stream);
    }
    let during = service.open_files();
    // (The start-up probe's connection may still have been open before.)
    assert!(
        during + 1 >= before + STREAMS,
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

#[tokio::test]
async fn an_answer_the_client_never_reads_is_given_up_after_the_write_stall_timeout() {
    let service = ServiceProcess::start(&[
        ("BAYES__HTTP__WRITE_STALL_TIMEOUT", "500ms".into()),
        ("BAYES__MODEL_SERVICE__MAX_SAMPLES", "1000000".into()),
    ])
    .await;
    let created = service
        .request(
            "PUT /models/globe HTTP/1.1\r\nContent-Type: application/json",
            "{}",
        )
        .await;
    assert_eq!(created.status, 201, "{created:?}");
    // Once, so the pool holds the connections a request needs.
    let sampled = service
        .request("GET /models/globe/samples?n=1 HTTP/1.1", "")
        .await;
    assert_eq!(sampled.status, 200, "{sampled:?}");

    // Some 20 MB of samples, far more than the socket buffers hold, asked
    // for by a client that reads none of it.
    let mut reader = RawConnection::open_with_receive_buffer(service.port, 4_096).await;
    reader
        .send(b"GET /models/globe/samples?n=1000000 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let client_port = reader.local_port();
    eventually("the service holds the connection", async || {
        service.holds_connection_from(client_port).then_some(())
    })
    .await;
    eventually("the service gives the connection up", async || {
        (!service.holds_connection_from(client_port)).then_some(())
    })
    .await;
    // What the client finds when it reads at last: a cut-off answer.
    let seen = reader.closed_within(DEADLINE).await.expect("closed");
    let length: usize = seen
        .lines()
        .find_map(|line| line.strip_prefix("content-length: "))
        .and_then(|n| n.trim().parse().ok())
        .expect("a Content-Length");
    let body = seen
        .split_once("\r\n\r\n")
        .map_or(0, |(_, body)| body.len());
    assert!(
        seen.starts_with("HTTP/1.1 200"),
        "{}",
        &seen[..seen.len().min(200)]
    );
    assert!(body < length, "{body} of {length} bytes arrived");
}
