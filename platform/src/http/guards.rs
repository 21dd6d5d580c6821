//! [`RequestGuards`]: the checks every request of both services passes
//! before its handler runs, in this order: the `Host` allow-list (421), one
//! `Content-Type` at most (400), cross-site protection (403), and the pace
//! of the body (408). Each refusal is the common JSON error.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;

use super::body::{run_paced, Pace};
use super::{host, origin, ErrorResponse};
use crate::settings::{HttpSettings, UploadSettings};

/// Routes that answer whatever `Host` says: probes and scrapers reach a
/// service by its address (a pod's IP changes), and these answers carry no
/// client's data, so a rebound name learns nothing worth the breakage.
pub const HOST_EXEMPT_ROUTES: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// The guards of one service; build with [`RequestGuards::new`], name the
/// service's exceptions, then [`RequestGuards::apply`] them.
#[derive(Debug, Clone)]
pub struct RequestGuards {
    allowed_hosts: Vec<String>,
    trusted_origins: Vec<String>,
    body_timeout: Duration,
    /// Route templates whose `GET` changes state.
    state_changing_gets: Vec<&'static str>,
    /// Routes whose bodies are streamed, with their pace.
    streaming: Vec<(Method, &'static str, Pace)>,
}

impl RequestGuards {
    pub fn new(settings: &HttpSettings) -> Self {
        Self {
            allowed_hosts: settings.allowed_hosts.clone(),
            trusted_origins: settings.trusted_origins.clone(),
            body_timeout: settings.body_timeout,
            state_changing_gets: Vec::new(),
            streaming: Vec::new(),
        }
    }

    /// `GET` (and so `HEAD`, which axum serves with the `GET` handler) of
    /// this route template changes state: cross-site browsers may not send it.
    pub fn state_changing_get(mut self, route: &'static str) -> Self {
        self.state_changing_gets.push(route);
        self
    }

    /// `method route`'s body is streamed at `pace` instead of having to be
    /// whole within `http.body_timeout`.
    pub fn streaming_body(mut self, method: Method, route: &'static str, pace: Pace) -> Self {
        self.streaming.push((method, route, pace));
        self
    }

    /// Wraps every route and fallback of `router` (so call it after adding
    /// them, and before the request metrics, which should count refusals).
    pub fn apply<S>(self, router: Router<S>) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        router.layer(middleware::from_fn_with_state(Arc::new(self), guard))
    }

    fn pace(&self, method: &Method, route: Option<&str>) -> Pace {
        self.streaming
            .iter()
            .find(|(m, r, _)| m == method && Some(*r) == route)
            .map_or(Pace::Deadline(self.body_timeout), |(_, _, pace)| *pace)
    }
}

/// The pace of an upload's body, from `[uploads]`.
pub fn upload_pace(settings: &UploadSettings) -> Pace {
    Pace::Streaming {
        idle: settings.body_idle_timeout,
        min_bytes_per_second: settings.min_bytes_per_second,
        grace: settings.min_rate_grace,
    }
}

async fn guard(State(guards): State<Arc<RequestGuards>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned());
    let route = route.as_deref();
    if !route.is_some_and(|r| HOST_EXEMPT_ROUTES.contains(&r)) {
        if let Err(refused) = host::check(request.uri(), request.headers(), &guards.allowed_hosts) {
            return ErrorResponse::new(
                StatusCode::MISDIRECTED_REQUEST,
                "misdirected_request",
                refused.to_string(),
            )
            .into_response();
        }
    }
    if request
        .headers()
        .get_all(CONTENT_TYPE)
        .iter()
        .nth(1)
        .is_some()
    {
        // Two declarations of one body: which one a parser believes is
        // anyone's guess, so neither is.
        return ErrorResponse::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "the request has more than one Content-Type header; send one",
        )
        .into_response();
    }
    let changes_state = matches!(*request.method(), Method::GET | Method::HEAD)
        && route.is_some_and(|r| guards.state_changing_gets.contains(&r));
    let source = origin::Source {
        method: request.method(),
        uri: request.uri(),
        headers: request.headers(),
        changes_state,
    };
    if let Err(refused) = origin::check(source, &guards.trusted_origins) {
        return ErrorResponse::new(
            StatusCode::FORBIDDEN,
            "cross_origin_request",
            refused.to_string(),
        )
        .into_response();
    }
    let pace = guards.pace(request.method(), route);
    run_paced(request, pace, next).await
}
