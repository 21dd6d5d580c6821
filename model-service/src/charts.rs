//! What each chart shows, computed by the engine from what the query layer
//! read, and drawn by `plot` on the blocking pool, one render per core at a
//! time. A model's charts are cached per (model, data, size, mass, format),
//! so a burst of requests renders once.

use std::time::Instant;

use axum::body::Bytes;
use chrono::{DateTime, Utc};
use domain::bayes::{Counts, DisplayGrid, Posterior, DEFAULT_MASS};
use domain::ModelId;
use platform::store::{ExperimentRecord, HistoryRecord};

use crate::compute::{blocking, count_lookup, data_key};
use crate::error::ApiError;
use crate::plot::{
    self, Chart, DensitiesPlot, ExperimentPlot, Format, HistoryPlot, HistoryPlotPoint,
    PosteriorPlot,
};
use crate::query;
use crate::query::experiments::{at_point, Arms, MergedRows};
use crate::state::{AppState, PlotKey, PlotKind};
use crate::views::experiment::Figures;
use crate::views::Snapshot;

/// Histogram: plot rendering, labelled `plot` and `format`.
const RENDER_SECONDS: &str = "model_service_render_duration_seconds";
/// Versions drawn in an evolution plot at most; longer histories are thinned evenly.
pub const MODEL_HISTORY_POINTS: u64 = 400;
/// Points drawn in an experiment's history plot at most.
pub const EXPERIMENT_HISTORY_POINTS: u64 = 200;
/// Bins of the overlaid posteriors.
const DENSITY_BINS: usize = 300;
/// The plot spans the arms' central 1 − 2·TAIL of mass.
const DENSITY_TAIL: f64 = 1e-4;

/// How a chart is drawn, besides its data.
#[derive(Debug, Clone, Copy)]
pub struct Drawing {
    pub format: Format,
    pub width: u32,
    pub height: u32,
}

/// Runs `work` (the engine's figures, then [`draw`]) on the blocking pool
/// under a render permit, and times it as `name`.
async fn rendered<F>(
    state: &AppState,
    name: &'static str,
    format: Format,
    work: F,
) -> Result<Bytes, ApiError>
where
    F: FnOnce() -> Result<Vec<u8>, ApiError> + Send + 'static,
{
    // The rest queue here rather than pile bitmaps up in memory.
    let _permit = state
        .render_permits()
        .acquire()
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    blocking(move || {
        let start = Instant::now();
        let image = work()?;
        metrics::histogram!(RENDER_SECONDS, "plot" => name, "format" => format.as_str())
            .record(start.elapsed().as_secs_f64());
        Ok(Bytes::from(image))
    })
    .await
}

/// `chart` drawn as `drawing` says.
fn draw(chart: &impl Chart, drawing: Drawing) -> Result<Vec<u8>, ApiError> {
    plot::render(chart, drawing.width, drawing.height, drawing.format)
        .map_err(|e| ApiError::Internal(e.into()))
}

/// A model's posterior or evolution plot of `snapshot`, from the cache
/// when the same data was drawn so before.
pub async fn model_chart(
    state: &AppState,
    snapshot: Snapshot,
    kind: PlotKind,
    drawing: Drawing,
    mass: f64,
) -> Result<Bytes, ApiError> {
    let key = PlotKey {
        kind,
        data: data_key(&snapshot),
        width: drawing.width,
        height: drawing.height,
        mass_bits: mass.to_bits(),
        format: drawing.format,
    };
    let (bytes, lookup) = state
        .plots()
        .get_or_try_insert(key, || async {
            match kind {
                PlotKind::Posterior => {
                    posterior_chart(state, snapshot.clone(), drawing, mass).await
                }
                PlotKind::History => history_chart(state, snapshot.clone(), drawing, mass).await,
            }
        })
        .await?;
    count_lookup("plot", lookup.as_str());
    Ok(bytes)
}

/// The posterior (solid) and prior (dashed) on the display grid, HPDI shaded.
async fn posterior_chart(
    state: &AppState,
    snapshot: Snapshot,
    drawing: Drawing,
    mass: f64,
) -> Result<Bytes, ApiError> {
    rendered(
        state,
        PlotKind::Posterior.as_str(),
        drawing.format,
        move || {
            let posterior = snapshot.posterior()?;
            let hpdi = posterior.hpdi(mass)?;
            let grid = DisplayGrid::new(&posterior, snapshot.grid_size);
            let label = snapshot.prior.label();
            draw(
                &PosteriorPlot {
                    model: snapshot.model.as_str(),
                    counts: snapshot.counts,
                    version: snapshot.version,
                    prior_label: &label,
                    p: &grid.p,
                    prior: &grid.prior,
                    posterior: &grid.posterior,
                    hpdi,
                    mass,
                },
                drawing,
            )
        },
    )
    .await
}

/// The posterior mean and HPDI band against the number of observations.
async fn history_chart(
    state: &AppState,
    snapshot: Snapshot,
    drawing: Drawing,
    mass: f64,
) -> Result<Bytes, ApiError> {
    let history: Vec<HistoryRecord> =
        query::models::history_sample(state, &snapshot, MODEL_HISTORY_POINTS).await?;
    rendered(
        state,
        PlotKind::History.as_str(),
        drawing.format,
        move || {
            let point = |counts: Counts| -> Result<HistoryPlotPoint, ApiError> {
                let posterior = Posterior::new(&snapshot.prior, counts)?;
                Ok(HistoryPlotPoint {
                    trials: counts.successes as f64 + counts.failures as f64,
                    mean: posterior.mean(),
                    hpdi: posterior.hpdi(mass)?,
                })
            };
            let mut points = Vec::with_capacity(history.len() + 1);
            points.push(point(Counts::ZERO)?);
            for row in &history {
                points.push(point(row.counts)?);
            }
            draw(
                &HistoryPlot {
                    model: snapshot.model.as_str(),
                    mass,
                    points: &points,
                },
                drawing,
            )
        },
    )
    .await
}

/// P(best) of every arm at each point of `history`, against time.
pub async fn experiment_history_chart(
    state: &AppState,
    history: MergedRows,
    drawing: Drawing,
) -> Result<Bytes, ApiError> {
    rendered(state, "experiment_history", drawing.format, move || {
        let MergedRows {
            record,
            models,
            rows,
        } = history;
        let spec = &record.spec;
        let mut times: Vec<DateTime<Utc>> = Vec::with_capacity(rows.len());
        let mut series: Vec<Vec<f64>> = Vec::with_capacity(rows.len());
        for row in &rows {
            let snapshots = at_point(&models, row);
            let figures = Figures::compute(spec, &snapshots, DEFAULT_MASS)?;
            times.push(row.applied_at);
            series.push(figures.figures.arms.iter().map(|a| a.prob_best).collect());
        }
        let names: Vec<&str> = spec.arms.iter().map(ModelId::as_str).collect();
        draw(
            &ExperimentPlot {
                experiment: record.id.as_str(),
                arms: &names,
                times: &times,
                prob_best: &series,
            },
            drawing,
        )
    })
    .await
}

/// The arms' posteriors overlaid on one axis zoomed onto their mass.
pub async fn experiment_posteriors_chart(
    state: &AppState,
    record: ExperimentRecord,
    arms: Arms,
    drawing: Drawing,
) -> Result<Bytes, ApiError> {
    rendered(state, "experiment_posteriors", drawing.format, move || {
        let posteriors = arms
            .snapshots
            .iter()
            .map(Snapshot::posterior)
            .collect::<Result<Vec<_>, _>>()?;
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for posterior in &posteriors {
            lo = lo.min(posterior.quantile(DENSITY_TAIL)?);
            hi = hi.max(posterior.quantile(1.0 - DENSITY_TAIL)?);
        }
        let step = ((hi - lo) / DENSITY_BINS as f64).max(f64::MIN_POSITIVE);
        let edges: Vec<f64> = (0..=DENSITY_BINS).map(|k| lo + step * k as f64).collect();
        // Each bin's probability from the engine's CDF, over its width: the
        // density, however narrow the posteriors are.
        let mut density = Vec::with_capacity(posteriors.len());
        for posterior in &posteriors {
            let cdf = edges
                .iter()
                .map(|x| posterior.cdf(*x))
                .collect::<Result<Vec<_>, _>>()?;
            density.push(
                cdf.windows(2)
                    .map(|c| (c[1] - c[0]) / step)
                    .collect::<Vec<_>>(),
            );
        }
        let centres: Vec<f64> = edges.windows(2).map(|e| 0.5 * (e[0] + e[1])).collect();
        let names: Vec<&str> = record.spec.arms.iter().map(ModelId::as_str).collect();
        draw(
            &DensitiesPlot {
                experiment: record.id.as_str(),
                arms: &names,
                p: &centres,
                density: &density,
            },
            drawing,
        )
    })
    .await
}
