//! `ApiError`: every way a request can fail, and the one JSON shape
//! (`{"error":{"code","message"}}`) and status each one is answered with.

use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use platform::http::ErrorResponse;

pub use platform::http::{ErrorBody, ErrorDetail};

/// Every failure of a request. Client mistakes are 4xx with a message that
/// says what to fix; only the broker (503) and bugs (500) are not the client's.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not JSON at all.
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    /// Something outside the body is wrong (a header, the encoding).
    #[error("{0}")]
    BadRequest(String),
    #[error("request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("{count} observations in one request; at most {max} are allowed")]
    BatchTooLarge { count: usize, max: usize },
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// Well-formed, but not an observation (a single one, or the whole request).
    #[error("{0}")]
    Invalid(String),
    /// Item `index` of a batch is not an observation.
    #[error("item {index}: {message}")]
    InvalidItem { index: usize, message: String },
    #[error("no route for {0}")]
    NotFound(String),
    #[error("method {0} is not allowed here")]
    MethodNotAllowed(String),
    /// The broker did not acknowledge in time; nothing is promised.
    #[error("the broker did not acknowledge the records ({reason}); retry later with the same Idempotency-Key")]
    BrokerUnavailable {
        reason: String,
        retry_after: Duration,
    },
    /// A bug. Logged in full; the client sees an opaque message.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MalformedJson(_) | Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::PayloadTooLarge { .. } | Self::BatchTooLarge { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Invalid(_) | Self::InvalidItem { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::BrokerUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::MalformedJson(_) => "malformed_json",
            Self::BadRequest(_) => "bad_request",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::BatchTooLarge { .. } => "batch_too_large",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::Invalid(_) | Self::InvalidItem { .. } => "invalid_observation",
            Self::NotFound(_) => "not_found",
            Self::MethodNotAllowed(_) => "method_not_allowed",
            Self::BrokerUnavailable { .. } => "broker_unavailable",
            Self::Internal(_) => "internal",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let response = match &self {
            Self::Internal(error) => return ErrorResponse::internal(error).into_response(),
            Self::BrokerUnavailable {
                reason,
                retry_after,
            } => {
                tracing::warn!(%reason, "answering 503: the broker did not acknowledge");
                ErrorResponse::new(self.status(), self.code(), self.to_string())
                    .retry_after(retry_after.as_secs_f64().ceil().max(1.0) as u64)
            }
            Self::InvalidItem { index, .. } => {
                ErrorResponse::new(self.status(), self.code(), self.to_string()).item(Some(*index))
            }
            _ => ErrorResponse::new(self.status(), self.code(), self.to_string()),
        };
        response.into_response()
    }
}
