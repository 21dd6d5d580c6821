//! Plots as PNG and SVG, rendered on the blocking pool and cached per
//! (model, data, size, mass, format), so a burst of requests renders once.

use std::time::Instant;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use domain::bayes::{DisplayGrid, Posterior};
use platform::http::{ApiPath, ApiQuery};
use platform::store;
use serde::Deserialize;

use super::{blocking, data_key, load_model, mass, model_id, snapshot, timed, TimeTravel};
use crate::error::{ApiError, ErrorBody};
use crate::plot::{self, Format, HistoryPlot, HistoryPlotPoint, PosteriorPlot};
use crate::state::{AppState, PlotKey, PlotKind};
use crate::views::Snapshot;

pub(super) const DEFAULT_WIDTH: u32 = 800;
pub(super) const DEFAULT_HEIGHT: u32 = 600;
/// Versions drawn in an evolution plot at most; longer histories are thinned evenly.
const HISTORY_PLOT_POINTS: u64 = 400;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PlotParams {
    /// Width in pixels, 200..=`max_plot_width` (4000 unless configured; default 800).
    #[param(minimum = 200, maximum = 4000)]
    width: Option<u32>,
    /// Height in pixels, 150..=`max_plot_height` (4000 unless configured; default 600).
    #[param(minimum = 150, maximum = 4000)]
    height: Option<u32>,
    /// Mass of the shaded HPDI, strictly between 0 and 1 (default 0.89).
    #[param(exclusive_minimum = 0, exclusive_maximum = 1)]
    mass: Option<f64>,
    /// Draw as of this version (0: the prior alone).
    #[param(minimum = 0, maximum = 9223372036854775807_i64)]
    version: Option<u64>,
    /// Draw as of this time (RFC 3339).
    #[param(format = DateTime)]
    at: Option<String>,
}

/// The posterior (solid) and prior (dashed) on the display grid, HPDI shaded.
#[utoipa::path(
    get,
    path = "/models/{id}/posterior.png",
    operation_id = "getPosteriorPng", tag = "plots",
    params(("id" = String, Path, description = "Model id: 1 to 64 of [a-z0-9_.-], starting with a letter or digit", pattern = "^[a-z0-9][a-z0-9_.-]{0,63}$"), PlotParams),
    responses(
        (status = 200, description = "PNG image", content_type = "image/png"),
        (status = 404, description = "Unknown model", body = ErrorBody),
        (status = 422, description = "Invalid size, mass, version or at", body = ErrorBody),
    )
)]
pub async fn posterior_png(
    state: State<AppState>,
    id: ApiPath<String>,
    params: ApiQuery<PlotParams>,
) -> Result<Response, ApiError> {
    plot_response(state, id, params, PlotKind::Posterior, Format::Png).await
}

/// The posterior plot as SVG.
#[utoipa::path(
    get,
    path = "/models/{id}/posterior.svg",
    operation_id = "getPosteriorSvg", tag = "plots",
    params(("id" = String, Path, description = "Model id: 1 to 64 of [a-z0-9_.-], starting with a letter or digit", pattern = "^[a-z0-9][a-z0-9_.-]{0,63}$"), PlotParams),
    responses(
        (status = 200, description = "SVG image", content_type = "image/svg+xml"),
        (status = 404, description = "Unknown model", body = ErrorBody),
        (status = 422, description = "Invalid size, mass, version or at", body = ErrorBody),
    )
)]
pub async fn posterior_svg(
    state: State<AppState>,
    id: ApiPath<String>,
    params: ApiQuery<PlotParams>,
) -> Result<Response, ApiError> {
    plot_response(state, id, params, PlotKind::Posterior, Format::Svg).await
}

/// The posterior mean and HPDI band against the number of observations.
#[utoipa::path(
    get,
    path = "/models/{id}/history.png",
    operation_id = "getHistoryPng", tag = "plots",
    params(("id" = String, Path, description = "Model id: 1 to 64 of [a-z0-9_.-], starting with a letter or digit", pattern = "^[a-z0-9][a-z0-9_.-]{0,63}$"), PlotParams),
    responses(
        (status = 200, description = "PNG image", content_type = "image/png"),
        (status = 404, description = "Unknown model", body = ErrorBody),
        (status = 422, description = "Invalid size, mass, version or at", body = ErrorBody),
    )
)]
pub async fn history_png(
    state: State<AppState>,
    id: ApiPath<String>,
    params: ApiQuery<PlotParams>,
) -> Result<Response, ApiError> {
    plot_response(state, id, params, PlotKind::History, Format::Png).await
}

/// The evolution plot as SVG.
#[utoipa::path(
    get,
    path = "/models/{id}/history.svg",
    operation_id = "getHistorySvg", tag = "plots",
    params(("id" = String, Path, description = "Model id: 1 to 64 of [a-z0-9_.-], starting with a letter or digit", pattern = "^[a-z0-9][a-z0-9_.-]{0,63}$"), PlotParams),
    responses(
        (status = 200, description = "SVG image", content_type = "image/svg+xml"),
        (status = 404, description = "Unknown model", body = ErrorBody),
        (status = 422, description = "Invalid size, mass, version or at", body = ErrorBody),
    )
)]
pub async fn history_svg(
    state: State<AppState>,
    id: ApiPath<String>,
    params: ApiQuery<PlotParams>,
) -> Result<Response, ApiError> {
    plot_response(state, id, params, PlotKind::History, Format::Svg).await
}

async fn plot_response(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(params): ApiQuery<PlotParams>,
    kind: PlotKind,
    format: Format,
) -> Result<Response, ApiError> {
    let id = model_id(&id)?;
    let settings = state.settings();
    let width = dimension(
        "width",
        params.width,
        DEFAULT_WIDTH,
        plot::MIN_WIDTH,
        settings.max_plot_width,
    )?;
    let height = dimension(
        "height",
        params.height,
        DEFAULT_HEIGHT,
        plot::MIN_HEIGHT,
        settings.max_plot_height,
    )?;
    let mass = mass(params.mass)?;
    let record = load_model(&state, &id).await?;
    let snapshot = snapshot(&state, &record, &TimeTravel::new(params.version, params.at)).await?;
    let key = PlotKey {
        kind,
        data: data_key(&snapshot),
        width,
        height,
        mass_bits: mass.to_bits(),
        format,
    };
    let spec = PlotSpec {
        kind,
        format,
        width,
        height,
        mass,
    };
    let (bytes, lookup) = state
        .plots()
        .get_or_try_insert(key, || render(&state, snapshot.clone(), spec))
        .await?;
    let result = lookup.as_str();
    metrics::counter!(super::CACHE_LOOKUPS, "cache" => "plot", "result" => result).increment(1);
    Ok((
        [
            (header::CONTENT_TYPE, format.content_type()),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        bytes,
    )
        .into_response())
}

/// What to draw, besides the data.
#[derive(Debug, Clone, Copy)]
struct PlotSpec {
    kind: PlotKind,
    format: Format,
    width: u32,
    height: u32,
    mass: f64,
}

/// Renders a plot of `snapshot` on the blocking pool, one render per core at a time.
async fn render(
    state: &AppState,
    snapshot: Snapshot,
    spec: PlotSpec,
) -> Result<axum::body::Bytes, ApiError> {
    // The rest queue here rather than pile bitmaps up in memory.
    let _permit = state
        .render_permits()
        .acquire()
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    let history = match spec.kind {
        PlotKind::Posterior => Vec::new(),
        PlotKind::History => {
            let rows = store::history_sample(
                state.db(),
                &snapshot.model,
                snapshot.version,
                HISTORY_PLOT_POINTS,
            );
            timed("history_sample", rows).await?
        }
    };
    blocking(move || {
        let start = Instant::now();
        let image = match spec.kind {
            PlotKind::Posterior => render_posterior(&snapshot, spec),
            PlotKind::History => render_history(&snapshot, &history, spec),
        }?;
        metrics::histogram!(
            super::RENDER_SECONDS,
            "plot" => spec.kind.as_str(),
            "format" => spec.format.as_str()
        )
        .record(start.elapsed().as_secs_f64());
        Ok(axum::body::Bytes::from(image))
    })
    .await
}

/// A width or height: the default when absent, else within bounds (422 outside).
pub(super) fn dimension(
    name: &str,
    raw: Option<u32>,
    default: u32,
    min: u32,
    max: u32,
) -> Result<u32, ApiError> {
    let value = raw.unwrap_or(default);
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(ApiError::invalid(format!(
            "{name} must be between {min} and {max} pixels, got {value}"
        )))
    }
}

fn render_posterior(snapshot: &Snapshot, spec: PlotSpec) -> Result<Vec<u8>, ApiError> {
    let PlotSpec {
        mass,
        width,
        height,
        format,
        ..
    } = spec;
    let posterior = snapshot.posterior()?;
    let hpdi = posterior.hpdi(mass)?;
    let grid = DisplayGrid::new(&posterior, snapshot.grid_size);
    let label = snapshot.prior.label();
    let plot = PosteriorPlot {
        model: snapshot.model.as_str(),
        counts: snapshot.counts,
        version: snapshot.version,
        prior_label: &label,
        p: &grid.p,
        prior: &grid.prior,
        posterior: &grid.posterior,
        hpdi,
        mass,
    };
    plot::render_posterior(&plot, width, height, format).map_err(|e| ApiError::Internal(e.into()))
}

fn render_history(
    snapshot: &Snapshot,
    history: &[store::HistoryRecord],
    spec: PlotSpec,
) -> Result<Vec<u8>, ApiError> {
    let PlotSpec {
        mass,
        width,
        height,
        format,
        ..
    } = spec;
    let point = |counts: domain::bayes::Counts| -> Result<HistoryPlotPoint, ApiError> {
        let posterior = Posterior::new(&snapshot.prior, counts)?;
        Ok(HistoryPlotPoint {
            trials: counts.successes as f64 + counts.failures as f64,
            mean: posterior.mean(),
            hpdi: posterior.hpdi(mass)?,
        })
    };
    let mut points = Vec::with_capacity(history.len() + 1);
    points.push(point(domain::bayes::Counts::ZERO)?);
    for row in history {
        points.push(point(row.counts)?);
    }
    let plot = HistoryPlot {
        model: snapshot.model.as_str(),
        mass,
        points: &points,
    };
    plot::render_history(&plot, width, height, format).map_err(|e| ApiError::Internal(e.into()))
}
