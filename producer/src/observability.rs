//! Prometheus metrics of the producer: their names, and the middleware that
//! counts requests by route and status and times them.
//!
//! Names ending in `_seconds` get latency buckets and those ending in
//! `_records` size buckets (see `platform::telemetry::metrics_handle`).

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use tokio::time::Instant;

/// Counter: HTTP requests, labelled `route` (the route template) and `status`.
pub const REQUESTS: &str = "producer_http_requests_total";
/// Histogram: HTTP request latency, labelled `route`.
pub const REQUEST_SECONDS: &str = "producer_http_request_duration_seconds";
/// Counter: records the broker acknowledged, labelled `topic`.
pub const RECORDS_PRODUCED: &str = "producer_records_produced_total";
/// Histogram: from the first record enqueued to the last one acknowledged, per request.
pub const PRODUCE_SECONDS: &str = "producer_produce_duration_seconds";
/// Histogram: records per accepted request.
pub const REQUEST_RECORDS: &str = "producer_request_size_records";
/// Counter: error responses, labelled `code` (the `error.code` of the body).
pub const ERRORS: &str = "producer_errors_total";
/// Counter: produce attempts that failed or timed out, labelled `reason`.
pub const PRODUCE_FAILURES: &str = "producer_produce_failures_total";

/// The route label of requests that matched no route, so that scanners
/// cannot create one time series per path they try.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// Counts and times every request that reached a route.
pub async fn track_requests(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| UNMATCHED_ROUTE.to_owned(), |m| m.as_str().to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    record_request(route, response.status().as_u16(), started);
    response
}

/// Records one request; also used by the fallbacks, which no route layer wraps.
pub fn record_request(route: String, status: u16, started: Instant) {
    metrics::histogram!(REQUEST_SECONDS, "route" => route.clone())
        .record(started.elapsed().as_secs_f64());
    metrics::counter!(REQUESTS, "route" => route, "status" => status.to_string()).increment(1);
}
