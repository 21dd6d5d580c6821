//! The charts, each as PNG and as SVG: a model's posterior and history, an
//! experiment's P(best) history and its arms' posteriors.

use axum::extract::State;
use axum::response::Response;
use platform::http::{ApiPath, ApiQuery};
use serde::Deserialize;

use super::images::{drawing, image_response, png_and_svg};
use super::params::{experiment_id, mass, model_id, ExperimentPath, ModelPath};
use crate::charts::{self, EXPERIMENT_HISTORY_POINTS};
use crate::error::{ApiError, ErrorBody};
use crate::plot::Format;
use crate::query::{self, TimeTravel};
use crate::state::{AppState, PlotKind};

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

png_and_svg! {
    query: PlotParams,
    params: (ModelPath, PlotParams),
    responses: (
        (status = 404, description = "Unknown model", body = ErrorBody),
        (status = 422, description = "Invalid size, mass, version or at", body = ErrorBody),
    ),
    draw: model_chart, PlotKind::Posterior;
    png: {
        /// The posterior (solid) and prior (dashed) on the display grid, HPDI shaded.
        fn posterior_png, path: "/models/{id}/posterior.png", operation_id: "getPosteriorPng"
    },
    svg: {
        /// The posterior plot as SVG.
        fn posterior_svg, path: "/models/{id}/posterior.svg", operation_id: "getPosteriorSvg"
    },
}

png_and_svg! {
    query: PlotParams,
    params: (ModelPath, PlotParams),
    responses: (
        (status = 404, description = "Unknown model", body = ErrorBody),
        (status = 422, description = "Invalid size, mass, version or at", body = ErrorBody),
    ),
    draw: model_chart, PlotKind::History;
    png: {
        /// The posterior mean and HPDI band against the number of observations.
        fn history_png, path: "/models/{id}/history.png", operation_id: "getHistoryPng"
    },
    svg: {
        /// The evolution plot as SVG.
        fn history_svg, path: "/models/{id}/history.svg", operation_id: "getHistorySvg"
    },
}

async fn model_chart(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(params): ApiQuery<PlotParams>,
    kind: PlotKind,
    format: Format,
) -> Result<Response, ApiError> {
    let id = model_id(&id)?;
    let drawing = drawing(&state, params.width, params.height, format)?;
    let mass = mass(params.mass)?;
    let travel = TimeTravel::new(params.version, params.at);
    let snapshot = query::models::model_at(&state, &id, &travel).await?;
    let image = charts::model_chart(&state, snapshot, kind, drawing, mass).await?;
    Ok(image_response(format, image))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryPlotParams {
    /// Width in pixels, 200..=`max_plot_width` (4000 unless configured; default 800).
    #[param(minimum = 200, maximum = 4000)]
    width: Option<u32>,
    /// Height in pixels, 150..=`max_plot_height` (4000 unless configured; default 600).
    #[param(minimum = 150, maximum = 4000)]
    height: Option<u32>,
}

png_and_svg! {
    query: HistoryPlotParams,
    params: (ExperimentPath, HistoryPlotParams),
    responses: (
        (status = 404, description = "Unknown experiment", body = ErrorBody),
        (status = 422, description = "Invalid size", body = ErrorBody),
    ),
    draw: experiment_history_chart;
    png: {
        /// P(best) of every arm over time, as PNG.
        fn experiment_history_png, path: "/experiments/{id}/history.png", operation_id: "getExperimentHistoryPng"
    },
    svg: {
        /// P(best) of every arm over time, as SVG.
        fn experiment_history_svg, path: "/experiments/{id}/history.svg", operation_id: "getExperimentHistorySvg"
    },
}

async fn experiment_history_chart(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(params): ApiQuery<HistoryPlotParams>,
    format: Format,
) -> Result<Response, ApiError> {
    let id = experiment_id(&id)?;
    let drawing = drawing(&state, params.width, params.height, format)?;
    let history =
        query::experiments::history_sample(&state, &id, EXPERIMENT_HISTORY_POINTS).await?;
    let image = charts::experiment_history_chart(&state, history, drawing).await?;
    Ok(image_response(format, image))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PosteriorsPlotParams {
    /// Width in pixels, 200..=`max_plot_width` (4000 unless configured; default 800).
    #[param(minimum = 200, maximum = 4000)]
    width: Option<u32>,
    /// Height in pixels, 150..=`max_plot_height` (4000 unless configured; default 600).
    #[param(minimum = 150, maximum = 4000)]
    height: Option<u32>,
    /// Draw as of this experiment version.
    #[param(minimum = 0, maximum = 9223372036854775807_i64)]
    version: Option<u64>,
    /// Draw as of this time (RFC 3339).
    #[param(format = DateTime)]
    at: Option<String>,
    /// Only the observations committed after this time (RFC 3339).
    #[param(format = DateTime)]
    since: Option<String>,
    /// Only the observations committed within this span: `7d`, `24h`.
    #[param(pattern = "^[1-9][0-9]{0,5}[smhdw]$")]
    window: Option<String>,
}

png_and_svg! {
    query: PosteriorsPlotParams,
    params: (ExperimentPath, PosteriorsPlotParams),
    responses: (
        (status = 404, description = "Unknown experiment or version", body = ErrorBody),
        (status = 422, description = "Invalid parameter", body = ErrorBody),
    ),
    draw: posteriors_chart;
    png: {
        /// The arms' posteriors overlaid on one axis zoomed onto their mass, as PNG.
        fn posteriors_png, path: "/experiments/{id}/posteriors.png", operation_id: "getExperimentPosteriorsPng"
    },
    svg: {
        /// The arms' posteriors overlaid on one axis zoomed onto their mass, as SVG.
        fn posteriors_svg, path: "/experiments/{id}/posteriors.svg", operation_id: "getExperimentPosteriorsSvg"
    },
}

async fn posteriors_chart(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(params): ApiQuery<PosteriorsPlotParams>,
    format: Format,
) -> Result<Response, ApiError> {
    let id = experiment_id(&id)?;
    let drawing = drawing(&state, params.width, params.height, format)?;
    let travel = TimeTravel::new(params.version, params.at).windowed(params.since, params.window);
    let (record, arms) = query::experiments::arms_of(&state, &id, &travel).await?;
    let image = charts::experiment_posteriors_chart(&state, record, arms, drawing).await?;
    Ok(image_response(format, image))
}
