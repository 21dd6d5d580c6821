//! The request-metrics layer both HTTP services wrap their routers in:
//! requests counted and timed by route template, errors counted by code.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;

use super::ErrorCode;

/// Counter: requests, labelled `service`, `method` (one of [`METHODS`], or
/// [`OTHER_METHOD`]), `route` (the matched route template) and `status`.
pub const REQUESTS: &str = "http_requests_total";
/// Histogram: request latency, labelled `service`, `method` and `route`.
pub const REQUEST_SECONDS: &str = "http_request_duration_seconds";
/// Counter: error responses, labelled `service` and `code` (the body's `error.code`).
pub const ERRORS: &str = "http_errors_total";

/// The methods that are a `method` label of their own.
pub const METHODS: [Method; 7] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::DELETE,
    Method::PATCH,
    Method::OPTIONS,
];
/// The `method` label of every other method: HTTP lets a client invent
/// method names, and each would otherwise be a time series of its own.
pub const OTHER_METHOD: &str = "other";

/// The route label of requests that matched no route, so that scanners
/// cannot create one time series per path they try.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// Wraps every route and fallback of `router` (so call it after adding
/// them) in the request metrics, labelled `service`.
pub fn with_request_metrics<S>(router: Router<S>, service: &'static str) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    router.layer(middleware::from_fn_with_state(service, track_requests))
}

async fn track_requests(
    State(service): State<&'static str>,
    request: Request,
    next: Next,
) -> Response {
    // The route template ("/models/{id}"), not the path: the number of
    // time series stays bounded whatever paths clients send.
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED_ROUTE, MatchedPath::as_str)
        .to_owned();
    let method = method_label(request.method());
    let started = Instant::now();
    let response = next.run(request).await;
    metrics::histogram!(REQUEST_SECONDS, "service" => service, "method" => method, "route" => route.clone())
        .record(started.elapsed().as_secs_f64());
    let status = response.status().as_u16().to_string();
    metrics::counter!(REQUESTS, "service" => service, "method" => method, "route" => route, "status" => status)
        .increment(1);
    if let Some(ErrorCode(code)) = response.extensions().get::<ErrorCode>() {
        metrics::counter!(ERRORS, "service" => service, "code" => *code).increment(1);
    }
    response
}

/// The `method` label of a request: bounded whatever the client sends.
pub fn method_label(method: &Method) -> &'static str {
    METHODS
        .iter()
        .find(|known| *known == method)
        .map_or(OTHER_METHOD, Method::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_methods_are_their_own_label_and_invented_ones_are_other() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::OPTIONS), "OPTIONS");
        assert_eq!(method_label(&Method::TRACE), OTHER_METHOD);
        let invented = Method::from_bytes(b"FOOBAR").unwrap();
        assert_eq!(method_label(&invented), OTHER_METHOD);
    }
}
