//! A model's charts: its posterior against its prior on the display grid
//! with the HPDI shaded, and the mean and HPDI against the observations.

use domain::bayes::{Counts, Interval};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::curve::{decimals_for, envelope, format_count, hpdi_band};
use super::{finish, font_sizes, framed, plot_error, Chart, PlotError, FAMILY};

const PRIOR_COLOUR: RGBColor = RGBColor(90, 90, 90);
const POSTERIOR_COLOUR: RGBColor = RGBColor(31, 119, 180);

/// What a posterior plot shows: the display grid's prior and posterior
/// probabilities and the HPDI, all computed by the engine.
#[derive(Debug, Clone, Copy)]
pub struct PosteriorPlot<'a> {
    pub model: &'a str,
    pub counts: Counts,
    pub version: u64,
    pub prior_label: &'a str,
    pub p: &'a [f64],
    pub prior: &'a [f64],
    pub posterior: &'a [f64],
    pub hpdi: Interval,
    pub mass: f64,
}

/// One point of an evolution plot: after `trials` observations, the mean and HPDI.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HistoryPlotPoint {
    pub trials: f64,
    pub mean: f64,
    pub hpdi: Interval,
}

/// What an evolution plot shows.
#[derive(Debug, Clone, Copy)]
pub struct HistoryPlot<'a> {
    pub model: &'a str,
    pub mass: f64,
    pub points: &'a [HistoryPlotPoint],
}

impl Chart for PosteriorPlot<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), PlotError> {
        draw_posterior(root, self)
    }
}

impl Chart for HistoryPlot<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), PlotError> {
        draw_history(root, self)
    }
}

fn draw_posterior<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    plot: &PosteriorPlot<'_>,
) -> Result<(), PlotError> {
    let (width, height) = root.dim_in_pixel();
    let (title_size, label_size) = font_sizes(width, height);
    // About one point every three pixels: plotters draws each segment of a
    // thick line on its own, so denser points make a ragged line.
    let points = (width as usize / 3).max(50);
    let prior = envelope(plot.p, plot.prior, points);
    let posterior = envelope(plot.p, plot.posterior, points);
    let peak = prior
        .iter()
        .chain(&posterior)
        .map(|(_, y)| *y)
        .fold(0.0f64, f64::max);
    let y_max = if peak > 0.0 { peak * 1.08 } else { 1.0 };

    let title = format!(
        "{}: {} successes in {} trials (version {})",
        plot.model,
        plot.counts.successes,
        plot.counts.successes.saturating_add(plot.counts.failures),
        plot.version
    );
    let mut chart = framed(root, &title, (title_size, label_size), 5.0)
        .build_cartesian_2d(0f64..1f64, 0f64..y_max)
        .map_err(plot_error)?;
    let decimals = decimals_for(y_max);
    chart
        .configure_mesh()
        .x_desc("proportion of successes p")
        .y_desc("probability")
        .label_style((FAMILY, label_size))
        .axis_desc_style((FAMILY, label_size * 1.1))
        .x_labels(11)
        .y_labels(8)
        .x_label_formatter(&|x| format!("{x:.1}"))
        .y_label_formatter(&|y| format!("{y:.decimals$}"))
        .light_line_style(WHITE.mix(0.0))
        .bold_line_style(BLACK.mix(0.08))
        .draw()
        .map_err(plot_error)?;

    // The HPDI: the area under the posterior between its bounds.
    let band = hpdi_band(plot.p, plot.posterior, plot.hpdi);
    let percent = plot.mass * 100.0;
    chart
        .draw_series(AreaSeries::new(band, 0.0, POSTERIOR_COLOUR.mix(0.25)))
        .map_err(plot_error)?
        .label(format!(
            "{percent:.0}% HPDI [{:.3}, {:.3}]",
            plot.hpdi.lower, plot.hpdi.upper
        ))
        .legend(|(x, y)| {
            Rectangle::new(
                [(x, y - 5), (x + 20, y + 5)],
                POSTERIOR_COLOUR.mix(0.25).filled(),
            )
        });
    let stroke = ((label_size / 6.0).round() as u32).max(2);
    chart
        .draw_series(DashedLineSeries::new(
            prior,
            (label_size * 0.7) as i32,
            (label_size * 0.45) as i32,
            PRIOR_COLOUR.stroke_width(stroke),
        ))
        .map_err(plot_error)?
        .label(format!("prior ({})", plot.prior_label))
        .legend(move |(x, y)| {
            PathElement::new(vec![(x, y), (x + 8, y)], PRIOR_COLOUR.stroke_width(stroke))
        });
    chart
        .draw_series(LineSeries::new(
            posterior,
            POSTERIOR_COLOUR.stroke_width(stroke),
        ))
        .map_err(plot_error)?
        .label("posterior")
        .legend(move |(x, y)| {
            PathElement::new(
                vec![(x, y), (x + 20, y)],
                POSTERIOR_COLOUR.stroke_width(stroke),
            )
        });
    finish(&mut chart, root, SeriesLabelPosition::UpperLeft, label_size)
}

fn draw_history<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    plot: &HistoryPlot<'_>,
) -> Result<(), PlotError> {
    let (width, height) = root.dim_in_pixel();
    let (title_size, label_size) = font_sizes(width, height);
    let x_max = plot
        .points
        .iter()
        .map(|p| p.trials)
        .fold(0.0f64, f64::max)
        .max(10.0);
    let percent = plot.mass * 100.0;
    let title = format!(
        "{}: posterior mean and {percent:.0}% HPDI by observations",
        plot.model
    );
    let mut chart = framed(root, &title, (title_size, label_size), 4.5)
        .build_cartesian_2d(0f64..x_max, 0f64..1f64)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc("number of observations")
        .y_desc("proportion of successes p")
        .label_style((FAMILY, label_size))
        .axis_desc_style((FAMILY, label_size * 1.1))
        .x_labels(8)
        .y_labels(11)
        .x_label_formatter(&|x| format_count(*x))
        .y_label_formatter(&|y| format!("{y:.1}"))
        .light_line_style(WHITE.mix(0.0))
        .bold_line_style(BLACK.mix(0.08))
        .draw()
        .map_err(plot_error)?;

    // The band as one polygon: upper bounds forwards, lower bounds backwards.
    let mut band: Vec<(f64, f64)> = plot
        .points
        .iter()
        .map(|p| (p.trials, p.hpdi.upper))
        .collect();
    band.extend(plot.points.iter().rev().map(|p| (p.trials, p.hpdi.lower)));
    if band.len() >= 3 {
        chart
            .draw_series(std::iter::once(Polygon::new(
                band,
                POSTERIOR_COLOUR.mix(0.25).filled(),
            )))
            .map_err(plot_error)?
            .label(format!("{percent:.0}% HPDI"))
            .legend(|(x, y)| {
                Rectangle::new(
                    [(x, y - 5), (x + 20, y + 5)],
                    POSTERIOR_COLOUR.mix(0.25).filled(),
                )
            });
    }
    let stroke = ((label_size / 6.0).round() as u32).max(2);
    chart
        .draw_series(LineSeries::new(
            plot.points.iter().map(|p| (p.trials, p.mean)),
            POSTERIOR_COLOUR.stroke_width(stroke),
        ))
        .map_err(plot_error)?
        .label("posterior mean")
        .legend(move |(x, y)| {
            PathElement::new(
                vec![(x, y), (x + 20, y)],
                POSTERIOR_COLOUR.stroke_width(stroke),
            )
        });
    chart
        .draw_series(
            plot.points
                .iter()
                .map(|p| Circle::new((p.trials, p.mean), stroke + 1, POSTERIOR_COLOUR.filled())),
        )
        .map_err(plot_error)?;
    finish(
        &mut chart,
        root,
        SeriesLabelPosition::UpperRight,
        label_size,
    )
}
