//! Drawing posteriors, their evolution and experiments with plotters, as
//! PNG or SVG: [`render`] draws any [`Chart`] in either format.
//!
//! Pure and synchronous: callers run it on the blocking pool. Text is drawn
//! with DejaVu Sans, embedded in the binary (`assets/DejaVuSans.ttf`, Bitstream
//! Vera licence, see `assets/DejaVuSans-LICENSE.txt`), so PNGs render the same
//! in a container without a single system font. SVGs name the family
//! `sans-serif` and leave the glyphs to the viewer.
//!
//! `model` draws a model's posterior and history, `experiment` an
//! experiment's arms, `curve` thins and labels what they draw.

mod curve;
mod experiment;
mod model;

use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

pub use experiment::{DensitiesPlot, ExperimentPlot};
pub use model::{HistoryPlot, HistoryPlotPoint, PosteriorPlot};

/// The embedded font.
static DEJAVU_SANS: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");
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

/// Something drawn on a plot's whole area, whatever the backend.
pub trait Chart {
    /// Draws on `root`, already filled white, and presents it.
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), PlotError>;
}

/// Draws `chart` on `width` x `height` pixels as `format`.
pub fn render(
    chart: &impl Chart,
    width: u32,
    height: u32,
    format: Format,
) -> Result<Vec<u8>, PlotError> {
    ensure_font()?;
    match format {
        Format::Png => png(width, height, |root| draw_on(&root, chart)),
        Format::Svg => svg(width, height, |root| draw_on(&root, chart)),
    }
}

fn draw_on<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    chart: &impl Chart,
) -> Result<(), PlotError> {
    root.fill(&WHITE).map_err(plot_error)?;
    chart.draw(root)
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

/// Every chart's frame: `title` above at `title_size`, and the margin and
/// label areas scaled to `label_size`; the y labels take `y_label_widths`
/// label sizes (wider for densities, whose ticks carry more digits).
fn framed<'a, DB: DrawingBackend>(
    root: &'a DrawingArea<DB, Shift>,
    title: &str,
    (title_size, label_size): (f64, f64),
    y_label_widths: f64,
) -> ChartBuilder<'a, 'static, DB> {
    let mut builder = ChartBuilder::on(root);
    builder
        .caption(title, (FAMILY, title_size))
        .margin((label_size * 0.8) as u32)
        .x_label_area_size((label_size * 3.2) as u32)
        .y_label_area_size((label_size * y_label_widths) as u32);
    builder
}

/// Font sizes that grow with the picture, within readable bounds.
fn font_sizes(width: u32, height: u32) -> (f64, f64) {
    let base = f64::from(width.min(height * 4 / 3));
    let title = (base / 30.0).clamp(12.0, 40.0);
    let label = (base / 45.0).clamp(11.0, 28.0);
    (title, label)
}

#[cfg(test)]
mod tests {
    use domain::bayes::{Counts, Interval};

    use super::*;

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
        let bytes = render(&plot, 400, 300, Format::Png).unwrap();
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
}
