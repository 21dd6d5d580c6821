//! Waiting for the database at start-up while answering probes: a service
//! whose database cannot be reached, or refuses it (a certificate the TLS
//! handshake does not accept, a login `pg_hba.conf` refuses), keeps its
//! port and says why instead of exiting into a crash loop. Until the
//! database answers, the port serves `/healthz` (200), `/readyz` (503, a
//! `database` check naming the last error), `/metrics`, and 503
//! `database_unavailable` for everything else; the wait is logged once at
//! error level per distinct refusal (a warning per retry after that) and
//! shown by the gauge `database_waiting{service}`.
//!
//! Certificate files are read again at every connection attempt, so
//! replacing them ends the wait without a restart.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;

use crate::http::{Check, ErrorResponse, Health, Readiness};
use crate::retry::{retry, Backoff, RetryError, Verdict};
use crate::settings::HttpSettings;

/// The first pause between attempts; it doubles up to the caller's cap.
const INITIAL_BACKOFF: Duration = Duration::from_millis(200);
/// Set to 1 while a service waits for its database at start-up, else 0.
pub const WAITING_GAUGE: &str = "database_waiting";

/// Why [`wait_for_database`] returned without a value.
#[derive(Debug, thiserror::Error)]
pub enum WaitError<E> {
    /// Asked to stop while waiting.
    #[error("stopped while waiting for the database")]
    Stopped,
    /// An error that waiting cannot cure (a failed migration, a setting).
    #[error(transparent)]
    GaveUp(E),
}

/// What the probes answer while the service waits.
#[derive(Clone)]
struct Waiting {
    last_error: Arc<Mutex<String>>,
}

/// Calls `attempt` until it succeeds, serving the probes on `listener`
/// (the service's own port) from the first failure until then; `judge`
/// says which errors are worth waiting out ([`Verdict::Transient`] logs a
/// warning, [`Verdict::Stuck`] an error line first) and which end the
/// wait ([`Verdict::Permanent`]). Returns the listener, free again, with
/// the outcome.
pub async fn wait_for_database<T, E, F>(
    listener: TcpListener,
    service: &'static str,
    http: &HttpSettings,
    backoff_max: Duration,
    stop: impl Future<Output = ()>,
    mut attempt: impl FnMut() -> F,
    judge: impl Fn(&E) -> Verdict,
) -> (std::io::Result<TcpListener>, Result<T, WaitError<E>>)
where
    F: Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    let first = match attempt().await {
        Ok(value) => return (Ok(listener), Ok(value)),
        Err(err) => err,
    };
    let waiting = Waiting {
        last_error: Arc::new(Mutex::new(first.to_string())),
    };
    let mut logged = String::new();
    let mut report = |err: &E| -> Verdict {
        let verdict = judge(err);
        let shown = err.to_string();
        if let Verdict::Stuck(reason) = verdict {
            // One error line per distinct refusal; `retry` adds a warning
            // per attempt.
            if shown != logged {
                tracing::error!(service, error = %shown, "cannot connect to the database: {reason}; waiting for it");
                logged = shown.clone();
            }
        }
        *waiting
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = shown;
        verdict
    };
    if report(&first) == Verdict::Permanent {
        return (Ok(listener), Err(WaitError::GaveUp(first)));
    }
    // The probe server gets a second handle on the same socket, so the
    // service keeps its port (and its place in the accept queue) after.
    let (listener, probes) = match share(listener) {
        Ok(pair) => pair,
        Err(err) => return (Err(err), Err(WaitError::Stopped)),
    };
    // The recorder must be in place before the gauge is set, or the value
    // goes nowhere (the services install it later, when they serve).
    let handle = crate::telemetry::metrics_handle();
    metrics::gauge!(WAITING_GAUGE, "service" => service).set(1.0);
    let (done, finished) = tokio::sync::oneshot::channel::<()>();
    let (http, probe_router) = (http.clone(), router(waiting.clone(), handle));
    let server = tokio::spawn(async move {
        crate::http::serve(probes, probe_router, &http, service, async move {
            let _ = finished.await;
        })
        .await;
    });
    let mut stop = std::pin::pin!(stop);
    let mut backoff = Backoff::new(INITIAL_BACKOFF, backoff_max);
    // Wait before the next attempt, as between any two.
    let outcome = if backoff.sleep(stop.as_mut()).await {
        retry(
            &mut backoff,
            "cannot connect to the database yet",
            stop.as_mut(),
            &mut attempt,
            &mut report,
            || {},
        )
        .await
    } else {
        Err(RetryError::Stopped)
    };
    let _ = done.send(());
    let _ = server.await;
    metrics::gauge!(WAITING_GAUGE, "service" => service).set(0.0);
    let outcome = match outcome {
        Ok(value) => {
            tracing::info!(service, "the database answers: starting");
            Ok(value)
        }
        Err(RetryError::Stopped) => Err(WaitError::Stopped),
        Err(RetryError::GaveUp(err)) => Err(WaitError::GaveUp(err)),
    };
    (Ok(listener), outcome)
}

/// Two tokio listeners on one socket (a duplicated descriptor).
fn share(listener: TcpListener) -> std::io::Result<(TcpListener, TcpListener)> {
    let std = listener.into_std()?;
    let copy = std.try_clone()?;
    Ok((TcpListener::from_std(std)?, TcpListener::from_std(copy)?))
}

fn router(waiting: Waiting, handle: PrometheusHandle) -> Router {
    Router::new()
        .route("/healthz", get(|| async { Health::OK }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(move || async move { handle.render() }))
        .fallback(unavailable)
        .with_state(waiting)
}

impl Waiting {
    fn last_error(&self) -> String {
        self.last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

async fn readyz(State(waiting): State<Waiting>) -> Readiness {
    Readiness::new(vec![Check::new("database", Err(waiting.last_error()))])
}

async fn unavailable(State(waiting): State<Waiting>) -> impl IntoResponse {
    ErrorResponse::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "database_unavailable",
        format!(
            "starting: waiting for the database ({})",
            waiting.last_error()
        ),
    )
    .retry_after(5)
}
