//! What the chart routes share: one macro that declares a chart's PNG and
//! SVG operations over one handler taking the format, the size parameters'
//! bounds, and the image response.

use axum::http::header;
use axum::response::{IntoResponse, Response};

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
        params: ($($params:tt)*),
        responses: ($($responses:tt)*),
        draw: $draw:path,
        png: { $(#[doc = $png_doc:tt])* fn $png:ident, path: $png_path:tt, operation_id: $png_op:tt },
        svg: { $(#[doc = $svg_doc:tt])* fn $svg:ident, path: $svg_path:tt, operation_id: $svg_op:tt } $(,)?
    ) => {
        $(#[doc = $png_doc])*
        #[utoipa::path(
            get,
            path = $png_path,
            operation_id = $png_op, tag = "plots",
            params($($params)*),
            responses(
                (status = 200, description = "PNG image", content_type = "image/png"),
                $($responses)*
            )
        )]
        pub async fn $png(
            state: ::axum::extract::State<$crate::state::AppState>,
            id: ::platform::http::ApiPath<String>,
            params: ::platform::http::ApiQuery<$query>,
        ) -> Result<::axum::response::Response, $crate::error::ApiError> {
            $draw(state, id, params, $crate::plot::Format::Png).await
        }

        $(#[doc = $svg_doc])*
        #[utoipa::path(
            get,
            path = $svg_path,
            operation_id = $svg_op, tag = "plots",
            params($($params)*),
            responses(
                (status = 200, description = "SVG image", content_type = "image/svg+xml"),
                $($responses)*
            )
        )]
        pub async fn $svg(
            state: ::axum::extract::State<$crate::state::AppState>,
            id: ::platform::http::ApiPath<String>,
            params: ::platform::http::ApiQuery<$query>,
        ) -> Result<::axum::response::Response, $crate::error::ApiError> {
            $draw(state, id, params, $crate::plot::Format::Svg).await
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

/// `?width=` and `?height=` within the configured bounds.
pub fn plot_size(
    state: &AppState,
    width: Option<u32>,
    height: Option<u32>,
) -> Result<(u32, u32), ApiError> {
    let settings = state.settings();
    Ok((
        dimension(
            "width",
            width,
            DEFAULT_WIDTH,
            plot::MIN_WIDTH,
            settings.max_plot_width,
        )?,
        dimension(
            "height",
            height,
            DEFAULT_HEIGHT,
            plot::MIN_HEIGHT,
            settings.max_plot_height,
        )?,
    ))
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
