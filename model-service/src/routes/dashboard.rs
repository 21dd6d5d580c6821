//! The live dashboards: two plain HTML pages (every model, one
//! experiment), and the server-sent events that tell them which models
//! changed.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::LazyLock;

use axum::extract::{ConnectInfo, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::Html;
use axum::Extension;
use futures::stream::{self, Stream, StreamExt};
use platform::http::ApiPath;
use tokio_stream::wrappers::BroadcastStream;

use super::params::{experiment_id, ExperimentPath};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use crate::streams::Client;
use crate::views::ModelEvent;

/// The JavaScript both pages share (the reader's API key, the plots and
/// the live feed read with it), put in place of `/*API_JS*/` once.
static API_JS: &str = include_str!("../../assets/api.js");
/// The style both pages share, put in place of `/*PAGE_CSS*/` once.
static PAGE_CSS: &str = include_str!("../../assets/page.css");
/// The key form and live status ending both pages' header, put in place of
/// `<!--KEY_FORM-->` once.
static KEY_FORM: &str = include_str!("../../assets/key-form.html");

/// `page` with the shared style, header end and JavaScript in place.
fn assemble(page: &str) -> String {
    page.replacen("/*PAGE_CSS*/", PAGE_CSS, 1)
        .replacen("<!--KEY_FORM-->", KEY_FORM, 1)
        .replacen("/*API_JS*/", API_JS, 1)
}

static PAGE: LazyLock<String> =
    LazyLock::new(|| assemble(include_str!("../../assets/dashboard.html")));
static EXPERIMENT_PAGE: LazyLock<String> =
    LazyLock::new(|| assemble(include_str!("../../assets/experiment.html")));

/// The dashboard: models, the selected model's plots and summaries, live.
/// A static page that holds no data, so it answers without a key; it asks
/// the reader for one when the API does.
#[utoipa::path(
    get,
    path = "/",
    operation_id = "getDashboard", tag = "operations",
    responses((status = 200, description = "HTML page", content_type = "text/html"))
)]
pub async fn index() -> Html<&'static str> {
    Html(PAGE.as_str())
}

/// The experiment's live page: the arms' posteriors overlaid, P(best),
/// expected loss and uplift per arm, the decision and SRM badges and the
/// P(best) history, redrawn when `/events` names an arm.
///
/// The page is the same static file for every experiment and holds no data
/// (it reads everything with the key the reader entered), so it answers
/// without a key and without asking the database: whether an experiment
/// exists is told by `GET /experiments/{id}`, to a key with scope `read`.
#[utoipa::path(
    get,
    path = "/experiments/{id}/dashboard",
    operation_id = "getExperimentDashboard", tag = "experiments",
    params(ExperimentPath),
    responses(
        (status = 200, description = "HTML page", content_type = "text/html"),
        (status = 404, description = "An id no experiment can have", body = ErrorBody),
    )
)]
pub async fn experiment(ApiPath(id): ApiPath<String>) -> Result<Html<&'static str>, ApiError> {
    experiment_id(&id)?;
    Ok(Html(EXPERIMENT_PAGE.as_str()))
}

/// Server-sent events: `ready` once subscribed, then `update` with a
/// [`ModelEvent`] (`{"models": [...], "all": false}`) whenever a commit
/// changed models. `all: true` means any model may have changed (the feed
/// fell behind or lost its database connection): reload everything.
///
/// Streams are capped in all (`model_service.max_event_streams`) and per
/// client (`model_service.max_event_streams_per_client`): past either, 503.
#[utoipa::path(
    get,
    path = "/events",
    operation_id = "getModelEvents", tag = "operations",
    responses(
        (status = 200, description = "text/event-stream of `ready` and `update` events", content_type = "text/event-stream"),
        (status = 503, description = "As many streams are open as allowed, in all or for this client (`too_many_streams`).", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying."))),
    )
)]
pub async fn events(
    State(state): State<AppState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let client = Client::of(peer.map(|Extension(ConnectInfo(address))| address.ip()));
    // Held by the stream below: freed when the stream ends or is dropped
    // (the client went away), with the broadcast receiver.
    let slot = state
        .streams()
        .open(client)
        .map_err(ApiError::TooManyStreams)?;
    // Subscribe before answering, so nothing published after the client
    // saw the response headers is missed.
    let updates = BroadcastStream::new(state.subscribe()).map(|item| {
        // A lagging receiver lost events: tell it to reload everything.
        let event = item.unwrap_or_else(|_| ModelEvent::everything());
        update_event(&event)
    });
    let ready = stream::once(async { Event::default().event("ready").data("{}") });
    // End the stream at shutdown, or graceful shutdown would wait forever.
    let stream = ready
        .chain(updates)
        .take_until(state.shutdown_signal())
        .map(move |event| {
            let _held = &slot;
            Ok(event)
        });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

fn update_event(event: &ModelEvent) -> Event {
    let data =
        serde_json::to_string(event).unwrap_or_else(|_| r#"{"models":[],"all":true}"#.to_owned());
    Event::default().event("update").data(data)
}
