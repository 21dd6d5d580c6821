//! The JSON body of every HTTP error, and [`ErrorResponse`], which both
//! services' `ApiError`s use to answer with it.

use axum::http::header::{self, HeaderName};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// The body of every error response: `{"error":{"code","message"}}`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"error": {"code": "invalid_observation", "message": "item 3: successes (10) exceed trials (9)", "item": 3}}))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable, snake_case: `malformed_json`,
    /// `unsupported_media_type`, `payload_too_large`, `invalid_observation`,
    /// `invalid_parameter`, `model_not_found`, `unauthorized`,
    /// `broker_unavailable`, `database_unavailable`, ...
    #[schema(example = "invalid_observation")]
    pub code: &'static str,
    /// What a person needs to fix the request.
    #[schema(example = "item 3: successes (10) exceed trials (9)")]
    pub message: String,
    /// For a batch: the 0-based index of the first invalid item.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = 3)]
    pub item: Option<usize>,
}

/// The `error.code` of an error response, left in the response's extensions
/// so the request-metrics layer can count errors by code without parsing
/// the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorCode(pub &'static str);

/// One error answer: a status, an [`ErrorBody`] and optional headers.
#[derive(Debug)]
#[must_use]
pub struct ErrorResponse {
    status: StatusCode,
    body: ErrorBody,
    headers: HeaderMap,
}

impl ErrorResponse {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            body: ErrorBody {
                error: ErrorDetail {
                    code,
                    message: message.into(),
                    item: None,
                },
            },
            headers: HeaderMap::new(),
        }
    }

    /// A bug or broken data: logged here, once, in full and at error level;
    /// the client learns nothing of the internals.
    pub fn internal(error: &anyhow::Error) -> Self {
        tracing::error!(error = format!("{error:#}"), "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    }

    /// Names the 0-based index of the first bad item of a batch.
    pub fn item(mut self, index: Option<usize>) -> Self {
        self.body.error.item = index;
        self
    }

    /// `Retry-After: seconds`, for answers that a later retry may change.
    pub fn retry_after(self, seconds: u64) -> Self {
        self.header(header::RETRY_AFTER, HeaderValue::from(seconds))
    }

    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.insert(name, value);
        self
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn code(&self) -> &'static str {
        self.body.error.code
    }
}

impl IntoResponse for ErrorResponse {
    fn into_response(self) -> Response {
        // Client mistakes are routine: debug only. Server-side failures are
        // logged where they are known (`internal`, or the service's 503s).
        if self.status.is_client_error() {
            tracing::debug!(
                status = self.status.as_u16(),
                code = self.body.error.code,
                message = %self.body.error.message,
                "rejected request"
            );
        }
        let code = ErrorCode(self.body.error.code);
        let mut response = (self.status, self.headers, axum::Json(self.body)).into_response();
        response.extensions_mut().insert(code);
        response
    }
}
