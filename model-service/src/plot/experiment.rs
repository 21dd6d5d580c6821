//! An experiment's charts: the arms' posteriors overlaid on one axis, and
//! each arm's P(best) over time.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::curve::{decimals_for, format_count};
use super::{finish, font_sizes, framed, plot_error, Chart, PlotError, FAMILY};

/// What an experiment's history plot shows: P(best) of each arm after
/// each commit drawn (`prob_best[point][arm]`), against time.
#[derive(Debug, Clone, Copy)]
pub struct ExperimentPlot<'a> {
    pub experiment: &'a str,
    pub arms: &'a [&'a str],
    pub times: &'a [chrono::DateTime<chrono::Utc>],
    pub prob_best: &'a [Vec<f64>],
}

/// What an experiment's posterior plot shows: each arm's posterior density
/// of p on one shared axis (`density[arm][k]` at `p[k]`).
#[derive(Debug, Clone, Copy)]
pub struct DensitiesPlot<'a> {
    pub experiment: &'a str,
    pub arms: &'a [&'a str],
    pub p: &'a [f64],
    pub density: &'a [Vec<f64>],
}

impl Chart for ExperimentPlot<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), PlotError> {
        draw_experiment(root, self)
    }
}

impl Chart for DensitiesPlot<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), PlotError> {
        draw_densities(root, self)
    }
}

/// One colour an arm, in order (Tableau 10); the 11th arm starts over.
const ARM_COLOURS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

fn draw_densities<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    plot: &DensitiesPlot<'_>,
) -> Result<(), PlotError> {
    let (width, height) = root.dim_in_pixel();
    let (title_size, label_size) = font_sizes(width, height);
    let x_min = plot.p.first().copied().unwrap_or(0.0);
    let x_max = plot.p.last().copied().unwrap_or(1.0).max(x_min + 1e-12);
    let y_max = plot
        .density
        .iter()
        .flatten()
        .copied()
        .filter(|d| d.is_finite())
        .fold(0.0f64, f64::max)
        .max(1e-12)
        * 1.08;
    let decimals = decimals_for(x_max - x_min) + 1;
    let mut chart = framed(
        root,
        &format!("{}: posterior of p for each arm", plot.experiment),
        (title_size, label_size),
        4.5,
    )
    .build_cartesian_2d(x_min..x_max, 0f64..y_max)
    .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc("proportion of successes p")
        .y_desc("density")
        .label_style((FAMILY, label_size))
        .axis_desc_style((FAMILY, label_size * 1.1))
        .x_labels(7)
        .y_labels(6)
        .x_label_formatter(&|x| format!("{x:.decimals$}"))
        .y_label_formatter(&|y| format_count(*y))
        .light_line_style(WHITE.mix(0.0))
        .bold_line_style(BLACK.mix(0.08))
        .draw()
        .map_err(plot_error)?;
    let stroke = ((label_size / 6.0).round() as u32).max(2);
    for (arm, name) in plot.arms.iter().enumerate() {
        let colour = ARM_COLOURS[arm % ARM_COLOURS.len()];
        let Some(density) = plot.density.get(arm) else {
            continue;
        };
        let curve: Vec<(f64, f64)> = plot
            .p
            .iter()
            .copied()
            .zip(density.iter().copied())
            .collect();
        chart
            .draw_series(AreaSeries::new(curve.clone(), 0.0, colour.mix(0.12)))
            .map_err(plot_error)?;
        chart
            .draw_series(LineSeries::new(curve, colour.stroke_width(stroke)))
            .map_err(plot_error)?
            .label(name.to_string())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(stroke))
            });
    }
    finish(
        &mut chart,
        root,
        SeriesLabelPosition::UpperRight,
        label_size,
    )
}

fn draw_experiment<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    plot: &ExperimentPlot<'_>,
) -> Result<(), PlotError> {
    let (width, height) = root.dim_in_pixel();
    let (title_size, label_size) = font_sizes(width, height);
    // Seconds since the first point: f64 keeps plotters' numeric axis, and
    // the labels turn back into times.
    let origin = plot.times.first().copied().unwrap_or_else(chrono::Utc::now);
    let xs: Vec<f64> = plot
        .times
        .iter()
        .map(|t| (*t - origin).num_milliseconds() as f64 / 1000.0)
        .collect();
    let x_max = xs.last().copied().unwrap_or(0.0).max(1.0);
    let span = x_max;
    let mut chart = framed(
        root,
        &format!("{}: P(best) of each arm over time", plot.experiment),
        (title_size, label_size),
        4.5,
    )
    .build_cartesian_2d(0f64..x_max, 0f64..1f64)
    .map_err(plot_error)?;
    let label_time = |x: &f64| -> String {
        let t = origin + chrono::Duration::milliseconds((*x * 1000.0) as i64);
        if span > 2.0 * 86_400.0 {
            t.format("%m-%d %H:%M").to_string()
        } else {
            t.format("%H:%M:%S").to_string()
        }
    };
    chart
        .configure_mesh()
        .x_desc("time (UTC)")
        .y_desc("P(best)")
        .label_style((FAMILY, label_size))
        .axis_desc_style((FAMILY, label_size * 1.1))
        .x_labels(6)
        .y_labels(11)
        .x_label_formatter(&label_time)
        .y_label_formatter(&|y| format!("{y:.1}"))
        .light_line_style(WHITE.mix(0.0))
        .bold_line_style(BLACK.mix(0.08))
        .draw()
        .map_err(plot_error)?;
    let stroke = ((label_size / 6.0).round() as u32).max(2);
    for (arm, name) in plot.arms.iter().enumerate() {
        let colour = ARM_COLOURS[arm % ARM_COLOURS.len()];
        // A step line: P(best) holds from one commit until the next.
        let mut points: Vec<(f64, f64)> = Vec::with_capacity(2 * xs.len());
        for (x, row) in xs.iter().zip(plot.prob_best) {
            if let Some(p) = row.get(arm) {
                if let Some(&(_, before)) = points.last() {
                    points.push((*x, before));
                }
                points.push((*x, *p));
            }
        }
        chart
            .draw_series(LineSeries::new(points, colour.stroke_width(stroke)))
            .map_err(plot_error)?
            .label(name.to_string())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(stroke))
            });
    }
    finish(&mut chart, root, SeriesLabelPosition::UpperLeft, label_size)
}
