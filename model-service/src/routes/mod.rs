//! The HTTP API: the router, its OpenAPI description, and what the handlers
//! share (loading a model, time travel, running the engine off the runtime).

mod dashboard;
mod experiments;
mod keys;
mod models;
mod ops;
mod plots;
mod posterior;

use std::time::Instant;

use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get};
use axum::Router;
use chrono::{DateTime, Utc};
use domain::bayes::{check_mass, Counts, DEFAULT_MASS};
use domain::ModelId;
use platform::http::auth::{Access, Auth, AuthResponses, RouteScopes, Scope};
use platform::http::{
    with_request_metrics, Check, GuardResponses, Health, Readiness, RequestGuards,
};
use platform::store::{self, ModelRecord};
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;

use crate::error::{ApiError, ErrorBody, ErrorDetail};
use crate::state::{AppState, DataKey};
use crate::views::{Snapshot, Window};

/// The `service` label of the common HTTP metrics.
pub(crate) const SERVICE: &str = "model-service";
/// Histogram: store queries, labelled `query`.
const QUERY_SECONDS: &str = "model_service_query_duration_seconds";
/// Histogram: plot rendering, labelled `plot` and `format`.
const RENDER_SECONDS: &str = "model_service_render_duration_seconds";
/// Counter: cache lookups, labelled `cache` and `result` (`hit` or `miss`).
const CACHE_LOOKUPS: &str = "model_service_cache_lookups_total";

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
            get(experiments::history_png),
        )
        .route(
            "/experiments/{id}/history.svg",
            get(experiments::history_svg),
        )
        .route(
            "/experiments/{id}/posteriors.png",
            get(experiments::posteriors_png),
        )
        .route(
            "/experiments/{id}/posteriors.svg",
            get(experiments::posteriors_svg),
        )
        .route("/experiments/{id}/dashboard", get(experiments::dashboard))
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
        experiments::history_png,
        experiments::history_svg,
        experiments::posteriors_png,
        experiments::posteriors_svg,
        experiments::dashboard,
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

/// `?version=` or `?at=`: answer as of that point in history; `?since=` or
/// `?window=`: from the observations committed after a time only.
#[derive(Debug, Clone, Default)]
pub struct TimeTravel {
    /// As of this version (0: the prior alone, before any data).
    pub version: Option<u64>,
    /// As of this time (RFC 3339, e.g. `2025-01-31T12:00:00Z`): the last
    /// version applied at or before it.
    pub at: Option<String>,
    /// Only the observations committed after this time (RFC 3339).
    pub since: Option<String>,
    /// Only the observations committed within this span before `at` (or
    /// now): `7d`, `24h`, `90m`.
    pub window: Option<String>,
}

impl TimeTravel {
    pub fn new(version: Option<u64>, at: Option<String>) -> Self {
        Self {
            version,
            at,
            ..Self::default()
        }
    }

    /// With a time window too.
    pub fn windowed(mut self, since: Option<String>, window: Option<String>) -> Self {
        self.since = since;
        self.window = window;
        self
    }

    /// Where the window starts, if one was asked for: `since`, or `window`
    /// before `at` (now when `at` is absent); with both, the later start.
    pub fn window_start(&self) -> Result<Option<DateTime<Utc>>, ApiError> {
        let since = self
            .since
            .as_deref()
            .map(|since| parse_time("since", since))
            .transpose()?;
        let by_span = match &self.window {
            Some(window) => {
                let span = parse_window(window)?;
                let end = match &self.at {
                    Some(at) => parse_time("at", at)?,
                    None => Utc::now(),
                };
                // Before year 1 nothing was committed (and Postgres's
                // timestamps end at 4713 BC): start there at the earliest.
                let earliest = DateTime::<Utc>::from_timestamp(-62_135_596_800, 0)
                    .unwrap_or(DateTime::<Utc>::MIN_UTC);
                Some(
                    end.checked_sub_signed(span)
                        .map_or(earliest, |t| t.max(earliest)),
                )
            }
            None => None,
        };
        match (since, by_span) {
            (Some(a), Some(b)) => Ok(Some(a.max(b))),
            (a, b) => Ok(a.or(b)),
        }
    }
}

/// A model id from a path: an id that cannot be valid names no model (404).
fn model_id(raw: &str) -> Result<ModelId, ApiError> {
    ModelId::parse(raw).map_err(|_| ApiError::ModelNotFound(raw.to_owned()))
}

/// Times a store query under `query`.
async fn timed<T>(
    query: &'static str,
    fut: impl std::future::Future<Output = Result<T, platform::store::StoreError>>,
) -> Result<T, ApiError> {
    let start = Instant::now();
    let result = fut.await;
    metrics::histogram!(QUERY_SECONDS, "query" => query).record(start.elapsed().as_secs_f64());
    Ok(result?)
}

/// The model named `id`, or 404.
async fn load_model(state: &AppState, id: &ModelId) -> Result<ModelRecord, ApiError> {
    timed("get_model", store::get_model(state.db(), id))
        .await?
        .ok_or_else(|| ApiError::ModelNotFound(id.to_string()))
}

/// The model now, or at `?version=` / `?at=`: the counts and the
/// configuration (prior, grid size) in force then. With both, the earlier
/// of the two points: the version asked for, unless it had not been
/// applied yet at `at`.
///
/// What "as of `at`" means: the writes of the model stamped at or before
/// `at`. Writers of one model queue on its lock and stamp under it, so the
/// stamps follow commit order, and an answer is always a state the model
/// really passed through (never version 6 without version 5, never a prior
/// set after a version it is paired with).
async fn snapshot(
    state: &AppState,
    record: &ModelRecord,
    travel: &TimeTravel,
) -> Result<Snapshot, ApiError> {
    if let Some(v) = travel.version {
        if i64::try_from(v).is_err() {
            return Err(ApiError::invalid(format!(
                "version must be at most {}, got {v}",
                i64::MAX
            )));
        }
        if v > record.state.version {
            return Err(ApiError::VersionNotFound {
                model: record.id.to_string(),
                version: v,
                current: record.state.version,
            });
        }
    }
    let since = travel.window_start()?;
    let end = as_of(state, record, travel).await?;
    match since {
        None => Ok(end),
        Some(since) => windowed(state, record, end, since).await,
    }
}

/// The counts committed after `since`, up to `end`: `end`'s cumulative
/// counts minus those of the last version applied at or before `since`,
/// under `end`'s prior.
async fn windowed(
    state: &AppState,
    record: &ModelRecord,
    end: Snapshot,
    since: DateTime<Utc>,
) -> Result<Snapshot, ApiError> {
    let (start, from_version) = timed(
        "history_at",
        store::history_at(state.db(), &record.id, since),
    )
    .await?
    .map_or((Counts::ZERO, 0), |row| (row.counts, row.version));
    let counts = window_counts(end.counts, start);
    let from_version = from_version.min(end.version);
    Ok(Snapshot {
        counts,
        window: Some(Window {
            since,
            from_version,
        }),
        ..end
    })
}

/// The counts committed between two points of one model: `end`'s
/// cumulative counts minus `start`'s. A window that starts after the point
/// answered holds nothing.
fn window_counts(end: Counts, start: Counts) -> Counts {
    end.successes
        .checked_sub(start.successes)
        .zip(end.failures.checked_sub(start.failures))
        .map_or(Counts::ZERO, |(s, f)| Counts::new(s, f))
}

/// The model at `?version=` / `?at=` (see [`snapshot`]).
async fn as_of(
    state: &AppState,
    record: &ModelRecord,
    travel: &TimeTravel,
) -> Result<Snapshot, ApiError> {
    let at = travel
        .at
        .as_deref()
        .map(|at| parse_time("at", at))
        .transpose()?;
    let by_time = match at {
        Some(at) => Some(
            timed("history_at", store::history_at(state.db(), &record.id, at))
                .await?
                .map_or(0, |row| row.version),
        ),
        None => None,
    };
    let (version, config) = match (travel.version, by_time, at) {
        (None, None, _) => return Ok(Snapshot::current(record)),
        // The version is the earlier point.
        (Some(v), by_time, _) if by_time.is_none_or(|t| v < t) => (
            v,
            timed(
                "config_at_version",
                store::config_at_version(state.db(), &record.id, v),
            )
            .await?,
        ),
        (_, Some(t), Some(at)) => (
            t,
            timed(
                "config_at_time",
                store::config_at_time(state.db(), &record.id, at),
            )
            .await?,
        ),
        // `by_time` is set exactly when `at` is.
        _ => return Ok(Snapshot::current(record)),
    };
    let counts = if version == 0 {
        Snapshot::prior_only(record)
    } else if version == record.state.version {
        Snapshot::current(record)
    } else {
        let row = timed(
            "history_version",
            store::history_version(state.db(), &record.id, version),
        )
        .await?
        .ok_or_else(|| ApiError::VersionNotFound {
            model: record.id.to_string(),
            version,
            current: record.state.version,
        })?;
        Snapshot::at(record, &row)
    };
    Ok(match config {
        Some(config) => counts.configured(config),
        None => counts,
    })
}

/// A window such as `7d`, `24h` or `90m`: a whole number from 1 to 999999
/// and one unit, `s`, `m` (minutes), `h`, `d` or `w`; the OpenAPI document
/// declares the same as the pattern `^[1-9][0-9]{0,5}[smhdw]$`, and
/// anything else is refused, so the schema and the service agree.
fn parse_window(raw: &str) -> Result<chrono::Duration, ApiError> {
    let invalid = || {
        ApiError::invalid(format!(
            "`window` must be a whole number from 1 to 999999 and a unit (s, m, h, d or w), \
             such as 7d, 24h or 90m; got {raw:?}"
        ))
    };
    let unit = raw.chars().last().ok_or_else(invalid)?;
    let digits = &raw[..raw.len() - unit.len_utf8()];
    let valid_digits = (1..=6).contains(&digits.len())
        && !digits.starts_with('0')
        && digits.bytes().all(|b| b.is_ascii_digit());
    if !valid_digits {
        return Err(invalid());
    }
    let n: i64 = digits.parse().map_err(|_| invalid())?;
    match unit {
        's' => Ok(chrono::Duration::seconds(n)),
        'm' => Ok(chrono::Duration::minutes(n)),
        'h' => Ok(chrono::Duration::hours(n)),
        'd' => Ok(chrono::Duration::days(n)),
        'w' => Ok(chrono::Duration::weeks(n)),
        _ => Err(invalid()),
    }
}

/// RFC 3339. A `+` of an offset arrives as a space when the client did not
/// percent-encode it; read it back as `+`.
fn parse_time(name: &str, raw: &str) -> Result<DateTime<Utc>, ApiError> {
    let fixed = raw.trim().replace(' ', "+");
    DateTime::parse_from_rfc3339(&fixed)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| ApiError::invalid(format!("`{name}` must be an RFC 3339 time: {e}")))
}

/// `?limit=` checked: 1..=1000, default 100 (the same in both services).
fn page_limit(raw: Option<u32>) -> Result<u32, ApiError> {
    platform::http::page_limit(raw).map_err(ApiError::invalid)
}

/// `?after=` of an id-ordered page: the id the previous page ended with.
fn page_after(raw: Option<&str>) -> Result<Option<ModelId>, ApiError> {
    raw.map(ModelId::parse)
        .transpose()
        .map_err(|e| ApiError::invalid(format!("after: {e}")))
}

/// A page read with one record more than `limit` (which tells whether
/// another page follows): the page itself, and `next_after`, the id to
/// continue from, when there is more.
fn page_of<T>(
    mut records: Vec<T>,
    limit: u32,
    id: impl Fn(&T) -> &ModelId,
) -> (Vec<T>, Option<String>) {
    let limit = limit as usize;
    let more = records.len() > limit;
    records.truncate(limit);
    let next_after = more
        .then(|| records.last().map(|r| id(r).to_string()))
        .flatten();
    (records, next_after)
}

/// A request body read as a JSON object first, then as `T`: serde would
/// also fill a struct from an array of its fields (`[null, null]`), which
/// no client means.
fn object_body<T: serde::de::DeserializeOwned>(
    body: serde_json::Map<String, serde_json::Value>,
) -> Result<T, ApiError> {
    serde_json::from_value(serde_json::Value::Object(body))
        .map_err(|e| ApiError::Rejected(platform::http::Rejection::InvalidBody(e.to_string())))
}

/// `?mass=` checked: strictly between 0 and 1, default 0.89.
fn mass(raw: Option<f64>) -> Result<f64, ApiError> {
    Ok(check_mass(raw.unwrap_or(DEFAULT_MASS))?)
}

fn data_key(snapshot: &Snapshot) -> DataKey {
    DataKey {
        model: snapshot.model.clone(),
        counts: snapshot.counts,
        version: snapshot.version,
        updated_at: snapshot.updated_at,
        configured_at: snapshot.configured_at,
        since: snapshot.window.map(|w| w.since),
    }
}

/// Runs CPU-bound work on the blocking pool, so request handling never stalls.
async fn blocking<T, F>(work: F) -> Result<T, ApiError>
where
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("blocking task failed")))?
}
