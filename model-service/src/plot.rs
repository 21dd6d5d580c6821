//! Drawing posteriors and their evolution with plotters, as PNG or SVG.
//!
//! Pure and synchronous: callers run it on the blocking pool. Text is drawn
//! with DejaVu Sans, embedded in the binary (`assets/DejaVuSans.ttf`, Bitstream
//! Vera licence, see `assets/DejaVuSans-LICENSE.txt`), so PNGs render the same
//! in a container without a single system font. SVGs name the family
//! `sans-serif` and leave the glyphs to the viewer.

use std::sync::OnceLock;

use domain::bayes::{Counts, Interval};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

/// The embedded font.
static DEJAVU_SANS: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
/// The family name the plots ask for (and SVGs carry).
const FAMILY: &str = "sans-serif";

/// The smallest plot drawn; below it the axes and labels do not fit.
pub const MIN_WIDTH: u32 = 200;
pub const MIN_HEIGHT: u32 = 150;

/// The image formats served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Png,
    Svg,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Png => "png",
            Format::Svg => "svg",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Png => "image/png",
            Format::Svg => "image/svg+xml",
        }
    }
}

/// Why a plot could not be drawn: plotters or the PNG encoder failed. Never
/// the caller's fault (sizes are checked before), so it is an internal error.
#[derive(Debug, thiserror::Error)]
#[error("plot rendering failed: {0}")]
pub struct PlotError(String);

fn plot_error(e: impl std::fmt::Display) -> PlotError {
    PlotError(e.to_string())
}

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

/// What an experiment's history plot shows: P(best) of each arm after
/// each commit drawn (`prob_best[point][arm]`), against time.
#[derive(Debug, Clone, Copy)]
pub struct ExperimentPlot<'a> {
    pub experiment: &'a str,
    pub arms: &'a [&'a str],
    pub times: &'a [chrono::DateTime<chrono::Utc>],
    pub prob_best: &'a [Vec<f64>],
}

/// Draws an experiment's P(best) history of `width` x `height` pixels.
pub fn render_experiment_history(
    plot: &ExperimentPlot<'_>,
    width: u32,
    height: u32,
    format: Format,
) -> Result<Vec<u8>, PlotError> {
    ensure_font()?;
    match format {
        Format::Png => png(width, height, |root| draw_experiment(&root, plot)),
        Format::Svg => svg(width, height, |root| draw_experiment(&root, plot)),
    }
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

/// Draws the arms' posteriors overlaid, `width` x `height` pixels.
pub fn render_densities(
    plot: &DensitiesPlot<'_>,
    width: u32,
    height: u32,
    format: Format,
) -> Result<Vec<u8>, PlotError> {
    ensure_font()?;
    match format {
        Format::Png => png(width, height, |root| draw_densities(&root, plot)),
        Format::Svg => svg(width, height, |root| draw_densities(&root, plot)),
    }
}

/// Draws a posterior plot of `width` x `height` pixels.
pub fn render_posterior(
    plot: &PosteriorPlot<'_>,
    width: u32,
    height: u32,
    format: Format,
) -> Result<Vec<u8>, PlotError> {
    ensure_font()?;
    match format {
        Format::Png => png(width, height, |root| draw_posterior(&root, plot)),
        Format::Svg => svg(width, height, |root| draw_posterior(&root, plot)),
    }
}

/// Draws an evolution plot of `width` x `height` pixels.
pub fn render_history(
    plot: &HistoryPlot<'_>,
    width: u32,
    height: u32,
    format: Format,
) -> Result<Vec<u8>, PlotError> {
    ensure_font()?;
    match format {
        Format::Png => png(width, height, |root| draw_history(&root, plot)),
        Format::Svg => svg(width, height, |root| draw_history(&root, plot)),
    }
}

/// Registers the embedded font with plotters, once per process.
fn ensure_font() -> Result<(), PlotError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FAMILY, FontStyle::Normal, DEJAVU_SANS).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(PlotError(
            "the embedded font is not a valid TrueType font".into(),
        ))
    }
}

/// Draws on an RGB bitmap and encodes it as PNG.
fn png<F>(width: u32, height: u32, draw: F) -> Result<Vec<u8>, PlotError>
where
    F: for<'b> FnOnce(DrawingArea<BitMapBackend<'b>, Shift>) -> Result<(), PlotError>,
{
    let len = (width as usize) * (height as usize) * 3;
    let mut pixels = vec![0u8; len];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (width, height)).into_drawing_area();
        draw(root)?;
    }
    let mut out = Vec::with_capacity(len / 8);
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    // Measured on an 800x600 plot: zlib's default level with adaptive
    // filtering gives ~27 KB in ~4 ms; the fastest settings ~60-120 KB in
    // under 1 ms. Renders are cached, so the smaller picture wins.
    encoder.set_compression(png::Compression::Default);
    encoder.set_adaptive_filter(png::AdaptiveFilterType::Adaptive);
    let mut writer = encoder.write_header().map_err(plot_error)?;
    writer.write_image_data(&pixels).map_err(plot_error)?;
    writer.finish().map_err(plot_error)?;
    Ok(out)
}

/// Draws an SVG document.
fn svg<F>(width: u32, height: u32, draw: F) -> Result<Vec<u8>, PlotError>
where
    F: for<'b> FnOnce(DrawingArea<SVGBackend<'b>, Shift>) -> Result<(), PlotError>,
{
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (width, height)).into_drawing_area();
        draw(root)?;
    }
    Ok(out.into_bytes())
}

const PRIOR_COLOUR: RGBColor = RGBColor(90, 90, 90);
const POSTERIOR_COLOUR: RGBColor = RGBColor(31, 119, 180);

/// Font sizes that grow with the picture, within readable bounds.
/// Every plot ends alike: the legend in the `corner` the curves leave free,
/// then the image written out.
fn finish<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    root: &DrawingArea<DB, Shift>,
    corner: SeriesLabelPosition,
    label_size: f64,
) -> Result<(), PlotError> {
    chart
        .configure_series_labels()
        .position(corner)
        .label_font((FAMILY, label_size))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .draw()
        .map_err(plot_error)?;
    root.present().map_err(plot_error)
}

fn font_sizes(width: u32, height: u32) -> (f64, f64) {
    let base = f64::from(width.min(height * 4 / 3));
    let title = (base / 30.0).clamp(12.0, 40.0);
    let label = (base / 45.0).clamp(11.0, 28.0);
    (title, label)
}

fn draw_posterior<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    plot: &PosteriorPlot<'_>,
) -> Result<(), PlotError> {
    root.fill(&WHITE).map_err(plot_error)?;
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
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FAMILY, title_size))
        .margin((label_size * 0.8) as u32)
        .x_label_area_size((label_size * 3.2) as u32)
        .y_label_area_size((label_size * 5.0) as u32)
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
    root.fill(&WHITE).map_err(plot_error)?;
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
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FAMILY, title_size))
        .margin((label_size * 0.8) as u32)
        .x_label_area_size((label_size * 3.2) as u32)
        .y_label_area_size((label_size * 4.5) as u32)
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
    root.fill(&WHITE).map_err(plot_error)?;
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
    let mut chart = ChartBuilder::on(root)
        .caption(
            format!("{}: posterior of p for each arm", plot.experiment),
            (FAMILY, title_size),
        )
        .margin((label_size * 0.8) as u32)
        .x_label_area_size((label_size * 3.2) as u32)
        .y_label_area_size((label_size * 4.5) as u32)
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
    root.fill(&WHITE).map_err(plot_error)?;
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
    let mut chart = ChartBuilder::on(root)
        .caption(
            format!("{}: P(best) of each arm over time", plot.experiment),
            (FAMILY, title_size),
        )
        .margin((label_size * 0.8) as u32)
        .x_label_area_size((label_size * 3.2) as u32)
        .y_label_area_size((label_size * 4.5) as u32)
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

/// At most about `max_points` points that keep the curve's shape: each bin of
/// neighbouring grid points is drawn as its highest point, so a narrow peak
/// survives however many grid points share a pixel column.
fn envelope(p: &[f64], y: &[f64], max_points: usize) -> Vec<(f64, f64)> {
    let n = p.len().min(y.len());
    if n <= max_points.max(2) {
        return p.iter().copied().zip(y.iter().copied()).take(n).collect();
    }
    let bin = n.div_ceil(max_points.max(1));
    let mut out = Vec::with_capacity(n / bin + 2);
    out.push((p[0], y[0]));
    let mut start = 1;
    while start < n - 1 {
        let end = (start + bin).min(n - 1);
        let best = (start..end)
            .max_by(|a, b| y[*a].total_cmp(&y[*b]))
            .unwrap_or(start);
        out.push((p[best], y[best]));
        start = end;
    }
    out.push((p[n - 1], y[n - 1]));
    out
}

/// The posterior's points inside the HPDI, with the curve interpolated at its bounds.
fn hpdi_band(p: &[f64], y: &[f64], hpdi: Interval) -> Vec<(f64, f64)> {
    let n = p.len().min(y.len());
    let at = |x: f64| -> f64 {
        if n == 0 {
            return 0.0;
        }
        let i = p[..n].partition_point(|pi| *pi < x);
        if i == 0 {
            return y[0];
        }
        if i >= n {
            return y[n - 1];
        }
        let (x0, x1) = (p[i - 1], p[i]);
        let t = if x1 > x0 { (x - x0) / (x1 - x0) } else { 0.0 };
        y[i - 1] + t * (y[i] - y[i - 1])
    };
    let mut band = vec![(hpdi.lower, at(hpdi.lower))];
    band.extend(
        p.iter()
            .copied()
            .zip(y.iter().copied())
            .take(n)
            .filter(|(x, _)| *x > hpdi.lower && *x < hpdi.upper),
    );
    band.push((hpdi.upper, at(hpdi.upper)));
    band
}

/// Enough decimals to tell apart y labels about `y_max / 8` apart.
fn decimals_for(y_max: f64) -> usize {
    if y_max <= 0.0 || !y_max.is_finite() {
        return 2;
    }
    let step = y_max / 8.0;
    (-step.log10()).ceil().clamp(0.0, 12.0) as usize
}

/// 1234567 as "1.2M", small counts as they are.
fn format_count(x: f64) -> String {
    let a = x.abs();
    if a >= 1e9 {
        format!("{:.1}G", x / 1e9)
    } else if a >= 1e6 {
        format!("{:.1}M", x / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", x / 1e3)
    } else if a == a.round() {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_envelope_keeps_a_narrow_peak() {
        let n = 100_001;
        let p: Vec<f64> = (0..n).map(|i| i as f64 / (n - 1) as f64).collect();
        let mut y = vec![0.0; n];
        y[54_321] = 1.0;
        let env = envelope(&p, &y, 1600);
        assert!(env.len() <= 1603, "{}", env.len());
        assert!(env.contains(&(p[54_321], 1.0)));
        assert_eq!(env.first(), Some(&(0.0, 0.0)));
        assert_eq!(env.last(), Some(&(1.0, 0.0)));
    }

    #[test]
    fn the_hpdi_band_starts_and_ends_on_the_curve() {
        let p = [0.0, 0.5, 1.0];
        let y = [0.0, 1.0, 0.0];
        let band = hpdi_band(
            &p,
            &y,
            Interval {
                lower: 0.25,
                upper: 0.75,
            },
        );
        assert_eq!(band, vec![(0.25, 0.5), (0.5, 1.0), (0.75, 0.5)]);
    }

    /// The title is drawn with the embedded font: no system font is looked up.
    #[test]
    fn text_is_drawn_with_the_embedded_font() {
        let p: Vec<f64> = (0..11).map(|i| f64::from(i) / 10.0).collect();
        let flat = vec![1.0 / 11.0; 11];
        let plot = PosteriorPlot {
            model: "globe",
            counts: Counts::new(6, 3),
            version: 1,
            prior_label: "uniform",
            p: &p,
            prior: &flat,
            posterior: &flat,
            hpdi: Interval {
                lower: 0.2,
                upper: 0.8,
            },
            mass: 0.89,
        };
        let bytes = render_posterior(&plot, 400, 300, Format::Png).unwrap();
        let mut reader = png::Decoder::new(std::io::Cursor::new(bytes))
            .read_info()
            .unwrap();
        let mut pixels = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut pixels).unwrap();
        assert_eq!((info.width, info.height), (400, 300));
        // The caption is the only thing in the top rows: dark pixels there are glyphs.
        let title_rows = &pixels[..400 * 3 * 20];
        let dark = title_rows
            .chunks(3)
            .filter(|px| px.iter().all(|c| *c < 100))
            .count();
        assert!(
            dark > 50,
            "only {dark} dark pixels where the title should be"
        );
    }

    #[test]
    fn labels_have_enough_decimals() {
        assert_eq!(decimals_for(0.8), 1);
        assert_eq!(decimals_for(0.15), 2);
        assert_eq!(decimals_for(0.0042), 4);
        assert_eq!(format_count(2_500_000.0), "2.5M");
        assert_eq!(format_count(42.0), "42");
    }
}
