//! What the chart routes share: one macro that declares a chart's PNG and
//! SVG operations over one handler taking the format, the size parameters'
//! bounds, and the image response.

use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::charts::Drawing;
use crate::error::ApiError;
use crate::plot::{self, Format};
use crate::state::AppState;

/// Pixels of a plot unless `?width=` / `?height=` say otherwise.
pub const DEFAULT_WIDTH: u32 = 800;
pub const DEFAULT_HEIGHT: u32 = 600;

/// Declares a chart's two operations, `.png` and `.svg`: utoipa needs one
/// `#[utoipa::path]` per operation, so each is a one-line handler over the
/// chart's one `draw` function, which takes the format. The operations
/// differ only in their path, id, summary and 200 answer.
macro_rules! png_and_svg {
    (
        query: $query:ty,
        params: $params:tt,
        responses: $responses:tt,
        draw: $draw:path $(, $arg:expr)*;
        png: { $(#[doc = $png_doc:tt])* fn $png:ident, path: $png_path:tt, operation_id: $png_op:tt },
        svg: { $(#[doc = $svg_doc:tt])* fn $svg:ident, path: $svg_path:tt, operation_id: $svg_op:tt } $(,)?
    ) => {
        png_and_svg!(@one $query, $params, $responses, $draw, [$($arg),*], Png, "PNG image", "image/png",
            $(#[doc = $png_doc])* fn $png, $png_path, $png_op);
        png_and_svg!(@one $query, $params, $responses, $draw, [$($arg),*], Svg, "SVG image", "image/svg+xml",
            $(#[doc = $svg_doc])* fn $svg, $svg_path, $svg_op);
    };
    (
        @one $query:ty, ($($params:tt)*), ($($responses:tt)*), $draw:path, [$($arg:expr),*],
        $format:ident, $what:tt, $content_type:tt,
        $(#[doc = $doc:tt])* fn $name:ident, $path:tt, $op:tt
    ) => {
        $(#[doc = $doc])*
        #[utoipa::path(
            get,
            path = $path,
            operation_id = $op, tag = "plots",
            params($($params)*),
            responses(
                (status = 200, description = $what, content_type = $content_type),
                $($responses)*
            )
        )]
        pub async fn $name(
            state: ::axum::extract::State<$crate::state::AppState>,
            id: ::platform::http::ApiPath<String>,
            params: ::platform::http::ApiQuery<$query>,
        ) -> Result<::axum::response::Response, $crate::error::ApiError> {
            $draw(state, id, params, $($arg,)* $crate::plot::Format::$format).await
        }
    };
}

pub(super) use png_and_svg;

/// An image, never cached by the client: the data behind it changes.
pub fn image_response(format: Format, image: axum::body::Bytes) -> Response {
    (
        [
            (header::CONTENT_TYPE, format.content_type()),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        image,
    )
        .into_response()
}

/// A chart in `format` of `?width=` x `?height=` pixels, within the
/// configured bounds.
pub fn drawing(
    state: &AppState,
    width: Option<u32>,
    height: Option<u32>,
    format: Format,
) -> Result<Drawing, ApiError> {
    let settings = state.settings();
    Ok(Drawing {
        format,
        width: dimension(
            "width",
            width,
            DEFAULT_WIDTH,
            plot::MIN_WIDTH,
            settings.max_plot_width,
        )?,
        height: dimension(
            "height",
            height,
            DEFAULT_HEIGHT,
            plot::MIN_HEIGHT,
            settings.max_plot_height,
        )?,
    })
}

/// A width or height: the default when absent, else within bounds (422 outside).
fn dimension(
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
