//! What a client can hold and grow, held to its limits on the real service:
//! slow request heads, idle keep-alive connections, trickling bodies and
//! uploads, the connection cap, invented methods in the metrics, two
//! `Content-Type` headers.

use std::time::Duration;

use test_support::eventually_within;
use test_support::raw_http::RawConnection;

use crate::helpers::{spawn_app_with, spawn_app_with_database, TestApp};

/// The short timeouts these tests configure.
const SHORT: Duration = Duration::from_millis(500);
/// How long a test waits for what a short timeout should bring about.
const DEADLINE: Duration = Duration::from_secs(10);

#[tokio::test]
async fn a_client_that_sends_half_a_request_head_is_disconnected_after_the_header_timeout() {
    let app = spawn_app_with(|s| s.http.header_read_timeout = SHORT).await;
    let mut connection = RawConnection::open(app.port).await;
    connection
        .send(b"POST /observations HTTP/1.1\r\nHost: localhost\r\nContent-Ty")
        .await
        .unwrap();
    let closed = connection.closed_within(DEADLINE).await;
    assert!(closed.is_ok(), "{closed:?}");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_header_timeout() {
    let app = spawn_app_with(|s| s.http.header_read_timeout = SHORT).await;
    let mut connection = RawConnection::open(app.port).await;
    connection
        .send(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let answer = connection.response_within(DEADLINE).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    // Kept alive for a next request that never comes.
    let closed = connection.closed_within(DEADLINE).await;
    assert!(closed.is_ok(), "{closed:?}");
}

/// Sends `head`, then `body` a byte every 50 ms (in the background, until
/// the server stops reading), and returns the connection to read from.
async fn trickle(port: u16, head: String, body: Vec<u8>) -> RawConnection {
    let mut connection = RawConnection::open(port).await;
    connection.send(head.as_bytes()).await.unwrap();
    let (mut writer, reader) = connection.split();
    tokio::spawn(async move {
        for byte in body {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if writer.send(&[byte]).await.is_err() {
                return;
            }
        }
    });
    reader
}

#[tokio::test]
async fn a_body_trickling_to_a_bounded_route_is_answered_408_and_produces_nothing() {
    let app = spawn_app_with(|s| s.http.body_timeout = SHORT).await;
    let body = b"wwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwww".to_vec();
    let head = format!(
        "POST /observations?model=globe HTTP/1.1\r\nHost: localhost\r\n\
         Content-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let mut connection = trickle(app.port, head, body).await;
    let answer = connection.response_within(DEADLINE).await;
    assert_eq!(answer.status, 408, "{answer:?}");
    assert_eq!(answer.error_code().as_deref(), Some("request_timeout"));
    assert_eq!(answer.header("connection"), Some("close"));
    app.assert_nothing_was_produced().await;
}

/// The provisional ids of the uploads being validated (`None` while the
/// database is not connected yet).
async fn validating(app: &TestApp) -> Option<Vec<String>> {
    let answer = app.get("/uploads").await;
    if answer.status != 200 {
        return None;
    }
    let list = answer.json();
    Some(
        list["uploads"]
            .as_array()?
            .iter()
            .filter(|u| u["status"] == "validating")
            .filter_map(|u| u["id"].as_str().map(str::to_owned))
            .collect(),
    )
}

async fn assert_cut_off_and_forgotten(app: &TestApp, connection: &mut RawConnection) {
    eventually_within(DEADLINE, "the upload is listed as validating", async || {
        validating(app)
            .await
            .filter(|ids| !ids.is_empty())
            .map(drop)
    })
    .await;
    let answer = connection.response_within(DEADLINE).await;
    assert_eq!(answer.status, 408, "{answer:?}");
    assert_eq!(answer.error_code().as_deref(), Some("request_timeout"));
    // Gone by the time the POST answered.
    assert_eq!(validating(app).await, Some(Vec::new()));
}

#[tokio::test]
async fn an_upload_whose_body_goes_silent_is_cut_off_and_no_longer_listed() {
    let app = spawn_app_with_database(|s| {
        s.uploads.body_idle_timeout = Duration::from_millis(1_500);
        s.uploads.min_bytes_per_second = 0;
    })
    .await;
    let mut connection = RawConnection::open(app.port).await;
    connection
        .send(
            b"POST /uploads HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/csv\r\n\
              Content-Length: 100000\r\n\r\nmodel,outcome\nglobe,w\n",
        )
        .await
        .unwrap();
    assert_cut_off_and_forgotten(&app, &mut connection).await;
}

#[tokio::test]
async fn a_multipart_upload_trickling_below_the_minimum_rate_is_cut_off_and_no_longer_listed() {
    let app = spawn_app_with_database(|s| {
        // Never silent for long, but 20 bytes a second is below the floor.
        s.uploads.body_idle_timeout = Duration::from_secs(5);
        s.uploads.min_bytes_per_second = 1_000;
        s.uploads.min_rate_grace = Duration::from_millis(1_500);
    })
    .await;
    let start = "--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.csv\"\r\n\
                 Content-Type: text/csv\r\n\r\nmodel,outcome\n";
    let body = "globe,w\n".repeat(1_000).into_bytes();
    let head = format!(
        "POST /uploads HTTP/1.1\r\nHost: localhost\r\n\
         Content-Type: multipart/form-data; boundary=b\r\nContent-Length: {}\r\n\r\n{start}",
        start.len() + body.len() + "\r\n--b--\r\n".len()
    );
    let mut connection = trickle(app.port, head, body).await;
    assert_cut_off_and_forgotten(&app, &mut connection).await;
}

#[tokio::test]
async fn connections_past_the_cap_are_answered_503_and_a_freed_place_is_taken_again() {
    let app = spawn_app_with(|s| {
        s.http.max_connections = 2;
        s.http.header_read_timeout = Duration::from_secs(60);
    })
    .await;
    // Two connections that hold their places (a head that never ends).
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut connection = RawConnection::open(app.port).await;
        connection.send(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
        held.push(connection);
    }
    let mut third = RawConnection::open(app.port).await;
    third
        .send(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let answer = third.response_within(DEADLINE).await;
    assert_eq!(answer.status, 503, "{answer:?}");
    assert_eq!(answer.error_code().as_deref(), Some("too_many_connections"));
    assert_eq!(answer.header("retry-after"), Some("1"));
    assert!(third.closed_within(DEADLINE).await.is_ok());

    drop(held.pop());
    eventually_within(DEADLINE, "a new connection is served", async || {
        let mut connection = RawConnection::open(app.port).await;
        connection
            .send(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let answer = connection.response_within(DEADLINE).await;
        (answer.status == 200).then_some(())
    })
    .await;
}

#[tokio::test]
async fn an_invented_method_is_counted_as_other_not_under_its_name() {
    let app = spawn_app_with(|_| {}).await;
    let invented = reqwest::Method::from_bytes(b"FOOBAR").unwrap();
    let answer = app.send(invented, "/healthz", None, &[], "").await;
    assert_eq!(answer.status, 405, "{}", answer.text);
    let metrics = app.get("/metrics").await.text;
    assert!(!metrics.contains("FOOBAR"), "{metrics}");
    assert!(
        metrics.contains(r#"method="other""#),
        "the request is counted: {metrics}"
    );
}

#[tokio::test]
async fn a_request_with_two_content_types_is_refused_with_400() {
    let app = spawn_app_with(|_| {}).await;
    let answer = app
        .send(
            reqwest::Method::POST,
            "/observations?model=globe",
            Some("text/plain"),
            &[("content-type", "application/json")],
            "w",
        )
        .await;
    answer.assert_error(400, "bad_request", "Content-Type");
    app.assert_nothing_was_produced().await;
}
