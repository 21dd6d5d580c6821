//! The serving loop both services run instead of `axum::serve`: HTTP/1.1
//! connections with a header read timeout, a cap on open connections, the
//! peer's address for handlers (`ConnectInfo`), and graceful shutdown.
//!
//! What a client can hold here, and for how long:
//!
//! - a connection that has not sent a whole request head: at most
//!   `http.header_read_timeout`. hyper (1.12) starts that timer whenever it
//!   waits for a head, on a new connection and on a keep-alive connection
//!   that went idle after a response, so the same timeout closes idle
//!   keep-alive connections and no separate idle timeout is needed (the
//!   tests hold both cases to it);
//! - a request body: see [`super::body`];
//! - an answer it does not read: at most `http.write_stall_timeout` without
//!   any progress ([`super::stall`]);
//! - a connection at all: one of `http.max_connections`. A client that
//!   connects past the cap is answered `503 too_many_connections` with
//!   `Retry-After` on a connection that is then closed, so it learns why
//!   instead of waiting in the kernel's backlog; at most
//!   [`REFUSALS_AT_ONCE`] such answers are being written at once, and past
//!   that too the connection is closed without one.
//!
//! Only HTTP/1.1 is spoken, as before (axum's `http2` feature is off):
//! cleartext HTTP/2, which no browser uses, would bypass the header timeout.
//!
//! Shutdown, as `axum::serve`'s and hyper-util's graceful example do it: stop
//! accepting, tell every connection to finish the request in flight and
//! close, and wait for them. Streams that never end by themselves (the model
//! service's `/events`) must be ended by the caller's shutdown future.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::header::CONNECTION;
use axum::http::{HeaderValue, Request, StatusCode};
use axum::response::IntoResponse;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::ServiceExt;

use super::stall::WriteStallGuard;
use super::ErrorResponse;
use crate::settings::HttpSettings;

/// Gauge: connections open, labelled `service`.
pub const OPEN_CONNECTIONS: &str = "http_open_connections";
/// Counter: connections refused because `http.max_connections` were open,
/// labelled `service`.
pub const REFUSED_CONNECTIONS: &str = "http_connections_refused_total";

/// How many connections past the cap are being answered 503 at once; each
/// lasts at most the header read timeout.
pub const REFUSALS_AT_ONCE: usize = 64;
/// Descriptors a service needs besides its connections: the database pool,
/// the Kafka clients' sockets, spool files, the listener, logs.
const RESERVED_FILES: u64 = 256;
/// How long to wait after an accept error that is not the peer's fault (out
/// of file descriptors), as hyper and axum do, so the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_secs(1);

/// Serves `router` on `listener` within the limits of `settings` until
/// `shutdown` completes; then stops accepting, lets every request in flight
/// finish, and returns when the last connection closed. Handlers can read
/// the peer's address with `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    settings: &HttpSettings,
    service: &'static str,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    raise_open_file_limit(settings.max_connections, service);
    let connections = Arc::new(Semaphore::new(settings.max_connections));
    let refusals = Arc::new(Semaphore::new(REFUSALS_AT_ONCE));
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout);
    let graceful = GracefulShutdown::new();
    let mut shutdown = pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) if is_connection_error(&error) => continue,
            Err(error) => {
                tracing::error!(%error, service, "accepting a connection failed; pausing");
                // Still stop at once when told to.
                tokio::select! {
                    () = tokio::time::sleep(ACCEPT_ERROR_PAUSE) => continue,
                    () = &mut shutdown => break,
                }
            }
        };
        let stream = WriteStallGuard::new(stream, settings.write_stall_timeout);
        match connections.clone().try_acquire_owned() {
            Ok(permit) => {
                let connection = http.serve_connection(TokioIo::new(stream), app(&router, peer));
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    let open = Open::new(service, permit);
                    if let Err(error) = connection.await {
                        // Timeouts and clients that went away: routine.
                        tracing::debug!(%error, %peer, "connection ended with an error");
                    }
                    drop(open);
                });
            }
            Err(_) => refuse(stream, peer, &refusals, &http, service),
        }
    }
    // Not accepting any more: new clients are refused by the kernel at once.
    drop(listener);
    tracing::debug!(
        connections = graceful.count(),
        service,
        "waiting for open connections"
    );
    graceful.shutdown().await;
}

/// The router as one connection's hyper service: every request carries the
/// peer's address.
fn app(
    router: &Router,
    peer: SocketAddr,
) -> TowerToHyperService<
    impl tower::Service<
            Request<Incoming>,
            Response = axum::response::Response,
            Error = Infallible,
            Future: Send,
        > + Clone
        + Send
        + 'static,
> {
    TowerToHyperService::new(
        router
            .clone()
            .map_request(move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request.map(Body::new)
            }),
    )
}

/// One open connection: holds its place under the cap and the gauge up.
struct Open {
    service: &'static str,
    _permit: OwnedSemaphorePermit,
}

impl Open {
    fn new(service: &'static str, permit: OwnedSemaphorePermit) -> Self {
        metrics::gauge!(OPEN_CONNECTIONS, "service" => service).increment(1.0);
        Self {
            service,
            _permit: permit,
        }
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        metrics::gauge!(OPEN_CONNECTIONS, "service" => self.service).decrement(1.0);
    }
}

/// Answers a connection past the cap with 503 and closes it; drops it
/// without an answer when [`REFUSALS_AT_ONCE`] answers are under way.
fn refuse(
    stream: WriteStallGuard<TcpStream>,
    peer: SocketAddr,
    refusals: &Arc<Semaphore>,
    http: &http1::Builder,
    service: &'static str,
) {
    metrics::counter!(REFUSED_CONNECTIONS, "service" => service).increment(1);
    tracing::warn!(%peer, service, "refusing a connection: http.max_connections are open");
    let Ok(permit) = refusals.clone().try_acquire_owned() else {
        return;
    };
    let mut http = http.clone();
    // One answer, then the connection closes.
    http.keep_alive(false);
    let answer = tower::service_fn(|_request: Request<Incoming>| async {
        let response = ErrorResponse::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_connections",
            "the service has as many connections open as it allows; retry later",
        )
        .retry_after(1)
        .header(CONNECTION, HeaderValue::from_static("close"));
        Ok::<_, Infallible>(response.into_response())
    });
    let connection = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(answer));
    tokio::spawn(async move {
        let _ = connection.await;
        drop(permit);
    });
}

/// Errors of one connection that was reset before it was accepted: nothing
/// to wait for (the same list as hyper's and axum's).
fn is_connection_error(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

/// Raises the soft open-file limit to the hard limit (a connection is a
/// file descriptor), and warns when `max_connections` still does not fit
/// under it: past the limit `accept` fails for every client, `/healthz`
/// included, before the cap is reached.
fn raise_open_file_limit(max_connections: usize, service: &'static str) {
    let needed = u64::try_from(max_connections)
        .unwrap_or(u64::MAX)
        .saturating_add(REFUSALS_AT_ONCE as u64)
        .saturating_add(RESERVED_FILES);
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) if limit < needed => tracing::warn!(
            limit,
            max_connections,
            needed,
            service,
            "the open-file limit is below what http.max_connections needs: \
             lower http.max_connections or raise the hard limit (ulimit -Hn)"
        ),
        Ok(limit) => tracing::debug!(limit, service, "open-file limit"),
        Err(error) => tracing::warn!(%error, service, "could not raise the open-file limit"),
    }
}
