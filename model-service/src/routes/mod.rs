//! The HTTP API: the router, who may call each route, and its OpenAPI
//! description.
//!
//! A handler reads its request (`params`), asks the query layer one
//! question (`crate::query`) and renders the answer (`crate::views`,
//! `crate::charts`): it never talks to the store itself.

mod dashboard;
mod experiments;
mod images;
mod keys;
mod models;
mod ops;
mod params;
mod plots;
mod posterior;

use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get};
use axum::Router;
use platform::http::auth::{Access, Auth, AuthResponses, RouteScopes, Scope};
use platform::http::{
    with_request_metrics, Check, GuardResponses, Health, Readiness, RequestGuards,
};
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;

use crate::error::{ApiError, ErrorBody, ErrorDetail};
use crate::state::AppState;
use crate::SERVICE;

const READ: Access = Access::Needs(Scope::Read);
const ADMIN: Access = Access::Needs(Scope::Admin);

/// Who may call each route when `auth.required` is on (the layer and the
/// OpenAPI document both read it). The two dashboard pages are static
/// files that hold no data: a browser cannot send a key when it opens a
/// page, so they answer without one and read everything with the key the
/// reader enters.
pub(crate) const ROUTES: RouteScopes = RouteScopes(&[
    ("GET", "/", Access::Public),
    ("GET", "/experiments/{id}/dashboard", Access::Public),
    ("GET", "/healthz", Access::Public),
    ("GET", "/readyz", Access::Public),
    ("GET", "/metrics", Access::Public),
    ("GET", "/events", READ),
    ("GET", "/posterior", READ),
    ("GET", "/models", READ),
    ("GET", "/models/{id}", READ),
    ("PUT", "/models/{id}", ADMIN),
    ("DELETE", "/models/{id}", ADMIN),
    ("GET", "/models/{id}/posterior", READ),
    ("GET", "/models/{id}/posterior.png", READ),
    ("GET", "/models/{id}/posterior.svg", READ),
    ("GET", "/models/{id}/history", READ),
    ("GET", "/models/{id}/history.png", READ),
    ("GET", "/models/{id}/history.svg", READ),
    ("GET", "/models/{id}/predictive", READ),
    ("GET", "/models/{id}/samples", READ),
    ("GET", "/compare", READ),
    ("GET", "/experiments", READ),
    ("GET", "/experiments/{id}", READ),
    ("PUT", "/experiments/{id}", ADMIN),
    ("DELETE", "/experiments/{id}", ADMIN),
    ("GET", "/experiments/{id}/history", READ),
    ("GET", "/experiments/{id}/history.png", READ),
    ("GET", "/experiments/{id}/history.svg", READ),
    ("GET", "/experiments/{id}/posteriors.png", READ),
    ("GET", "/experiments/{id}/posteriors.svg", READ),
    ("GET", "/experiments/{id}/weights", READ),
    // The application that assigns units to arms reports their outcomes
    // too: it holds an ingest key, never an admin one.
    (
        "POST",
        "/experiments/{id}/assignments",
        Access::Needs(Scope::Ingest),
    ),
    ("GET", "/openapi.json", READ),
    ("GET", "/keys", ADMIN),
    ("POST", "/keys", ADMIN),
    ("DELETE", "/keys/{id}", ADMIN),
]);

/// The service's routes over `state`. Tests drive it with `oneshot`.
pub fn router(state: AppState) -> Router {
    let body_limit = state.settings().max_body_bytes;
    let routes = Router::new()
        .route("/", get(dashboard::index))
        .route("/events", get(dashboard::events))
        .route("/posterior", get(posterior::default_posterior))
        .route("/models", get(models::list))
        .route(
            "/models/{id}",
            get(models::get).put(models::put).delete(models::delete),
        )
        .route("/models/{id}/posterior", get(posterior::posterior))
        .route("/models/{id}/posterior.png", get(plots::posterior_png))
        .route("/models/{id}/posterior.svg", get(plots::posterior_svg))
        .route("/models/{id}/history", get(posterior::history))
        .route("/models/{id}/history.png", get(plots::history_png))
        .route("/models/{id}/history.svg", get(plots::history_svg))
        .route("/models/{id}/predictive", get(posterior::predictive))
        .route("/models/{id}/samples", get(posterior::samples))
        .route("/compare", get(posterior::compare))
        .route("/experiments", get(experiments::list))
        .route(
            "/experiments/{id}",
            get(experiments::get)
                .put(experiments::put)
                .delete(experiments::delete),
        )
        .route("/experiments/{id}/history", get(experiments::history))
        .route(
            "/experiments/{id}/history.png",
            get(plots::experiment_history_png),
        )
        .route(
            "/experiments/{id}/history.svg",
            get(plots::experiment_history_svg),
        )
        .route(
            "/experiments/{id}/posteriors.png",
            get(plots::posteriors_png),
        )
        .route(
            "/experiments/{id}/posteriors.svg",
            get(plots::posteriors_svg),
        )
        .route("/experiments/{id}/dashboard", get(dashboard::experiment))
        .route("/experiments/{id}/weights", get(experiments::weights))
        .route(
            "/experiments/{id}/assignments",
            axum::routing::post(experiments::assign),
        )
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(ops::openapi_json))
        .route("/keys", get(keys::list).post(keys::create))
        .route("/keys/{id}", delete(keys::revoke))
        .fallback(|| async { ApiError::RouteNotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed });
    let routes = if state.auth().required {
        Auth::new(state.keys().clone(), ROUTES).apply(routes)
    } else {
        routes
    };
    let guards = RequestGuards::new(state.http());
    with_request_metrics(guards.apply(routes), SERVICE)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "model-service",
        description = "Posterior queries, plots and a live dashboard over the models kept in Postgres. \
                       Errors are `{\"error\": {\"code\", \"message\"}}` with 400 (malformed JSON, two \
                       Content-Type headers), 401 (`unauthorized`: no API key, or one not in force, when \
                       `auth.required` is on), 403 (`insufficient_scope`: the key lacks the route's scope; \
                       `cross_origin_request`: a state-changing request from another site's page), 404 (unknown model or experiment), 408 \
                       (`request_timeout`: the body did not arrive within `http.body_timeout`), 413, 415, 421 \
                       (`misdirected_request`: a Host not in `http.allowed_hosts`), 422 (invalid parameter or \
                       body), 429 (a model reconfigured too often; see `Retry-After`), 503 (database \
                       unavailable; `too_many_connections`; `too_many_streams` on /events)."
    ),
    paths(
        posterior::default_posterior,
        models::list,
        models::get,
        models::put,
        models::delete,
        posterior::posterior,
        posterior::history,
        posterior::predictive,
        posterior::samples,
        posterior::compare,
        experiments::list,
        experiments::put,
        experiments::delete,
        experiments::get,
        experiments::history,
        experiments::weights,
        experiments::assign,
        plots::posterior_png,
        plots::posterior_svg,
        plots::history_png,
        plots::history_svg,
        plots::experiment_history_png,
        plots::experiment_history_svg,
        plots::posteriors_png,
        plots::posteriors_svg,
        dashboard::experiment,
        dashboard::index,
        dashboard::events,
        ops::healthz,
        ops::readyz,
        ops::metrics,
        ops::openapi_json,
        keys::list,
        keys::create,
        keys::revoke,
    ),
    components(schemas(ErrorBody, ErrorDetail, Health, Readiness, Check, crate::views::ModelEvent,
        keys::KeyBody, keys::KeyInfo, keys::CreatedKey, keys::KeyList, Scope)),
    modifiers(&GUARDS, &AUTH),
    tags(
        (name = "models", description = "Posterior queries"),
        (name = "experiments", description = "A/B/n tests over models: exact P(best), expected loss, uplift, decisions, bandit allocation"),
        (name = "plots"),
        (name = "keys", description = "API keys (scope `admin`): tokens are shown once, at creation"),
        (name = "operations")
    )
)]
struct ApiDoc;

/// What the request guards answer, on the operations they guard.
const GUARDS: GuardResponses = GuardResponses {
    state_changing_gets: &[],
};

/// The API keys' scheme, scopes and refusals, from [`ROUTES`].
const AUTH: AuthResponses = AuthResponses { routes: ROUTES };

/// The OpenAPI description of every route of the service.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
