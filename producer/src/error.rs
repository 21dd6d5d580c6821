//! `ApiError`: every way a request can fail, and the one JSON shape
//! (`{"error":{"code","message"}}`) and status each one is answered with.

use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use platform::http::{ErrorCode, ErrorResponse};
use platform::store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

use crate::idempotency::KeyError;
use crate::uploads::spool::LineError;

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
    /// `models.auto_create` is off and the model does not exist; `index`:
    /// the first such item of a batch.
    #[error("{}no model named {model}: models.auto_create is off, so only PUT /models/{model} (scope admin) creates one", .index.map(|i| format!("item {i}: ")).unwrap_or_default())]
    UnknownModel { model: String, index: Option<usize> },
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
    /// An uploaded file has invalid rows (or no valid header): the first
    /// `errors` of `count`. Nothing was produced.
    #[error("{count} invalid line(s) in the CSV; nothing was produced")]
    InvalidCsv { count: u64, errors: Vec<LineError> },
    /// The same file (by SHA-256) was uploaded before and completed.
    #[error("this file was uploaded as {id} at {}; add ?force=true to count its rows again", .at.to_rfc3339_opts(SecondsFormat::Millis, true))]
    DuplicateUpload { id: String, at: DateTime<Utc> },
    /// The same file is being produced right now.
    #[error("this file is being produced as upload {id}; poll GET /uploads/{id}")]
    UploadInProgress { id: String },
    /// A query parameter out of its range.
    #[error("{0}")]
    InvalidParameter(String),
    #[error("no upload {0:?}")]
    UploadNotFound(String),
    /// Postgres, which uploads need, does not answer.
    #[error("the database is unavailable ({0}); retry later")]
    DatabaseUnavailable(String),
    /// The Idempotency-Key is in use by a request in progress, or was used
    /// for other observations: 409 either way.
    #[error("{0}")]
    IdempotencyKey(#[from] crate::idempotency::KeyError),
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
            Self::Invalid(_)
            | Self::UnknownModel { .. }
            | Self::InvalidItem { .. }
            | Self::InvalidCsv { .. }
            | Self::InvalidParameter(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::NotFound(_) | Self::UploadNotFound(_) => StatusCode::NOT_FOUND,
            Self::DuplicateUpload { .. } | Self::UploadInProgress { .. } => StatusCode::CONFLICT,
            // Both: the request is valid, but conflicts with the key's
            // earlier use (which a schema cannot know about).
            Self::IdempotencyKey(_) => StatusCode::CONFLICT,
            Self::DatabaseUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
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
            Self::InvalidCsv { .. } => "invalid_csv",
            Self::UnknownModel { .. } => "unknown_model",
            Self::InvalidParameter(_) => "invalid_parameter",
            Self::DuplicateUpload { .. } => "duplicate_upload",
            Self::UploadInProgress { .. } => "upload_in_progress",
            Self::UploadNotFound(_) => "upload_not_found",
            Self::DatabaseUnavailable(_) => "database_unavailable",
            Self::NotFound(_) => "not_found",
            Self::MethodNotAllowed(_) => "method_not_allowed",
            Self::BrokerUnavailable { .. } => "broker_unavailable",
            Self::IdempotencyKey(KeyError::InUse) => "idempotency_key_in_use",
            Self::IdempotencyKey(KeyError::Reused) => "idempotency_key_reused",
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
            Self::InvalidCsv { count, errors } => {
                return invalid_csv(self.code(), self.to_string(), *count, errors)
            }
            Self::DuplicateUpload { id, .. } | Self::UploadInProgress { id } => {
                let response = ErrorResponse::new(self.status(), self.code(), self.to_string());
                match HeaderValue::from_str(&format!("/uploads/{id}")) {
                    Ok(location) => response.header(header::LOCATION, location),
                    Err(_) => response,
                }
            }
            Self::DatabaseUnavailable(reason) => {
                tracing::warn!(%reason, "answering 503: the database is unavailable");
                ErrorResponse::new(self.status(), self.code(), self.to_string()).retry_after(5)
            }
            Self::UnknownModel { index, .. } => {
                ErrorResponse::new(self.status(), self.code(), self.to_string()).item(*index)
            }
            Self::InvalidItem { index, .. } => {
                ErrorResponse::new(self.status(), self.code(), self.to_string()).item(Some(*index))
            }
            _ => ErrorResponse::new(self.status(), self.code(), self.to_string()),
        };
        response.into_response()
    }
}

impl From<StoreError> for ApiError {
    /// A database that does not answer is a 503, a value it cannot hold a
    /// 422; anything else the store says is not the client's doing.
    fn from(error: StoreError) -> Self {
        match error {
            error if error.is_transient() || error.is_refused() => {
                Self::DatabaseUnavailable(error.to_string())
            }
            // A value of the request the database cannot hold: the client's.
            StoreError::Unstorable(_) => Self::InvalidParameter(error.to_string()),
            error => Self::Internal(error.into()),
        }
    }
}

/// The body of a 422 for an invalid CSV: the common error shape, with the
/// first invalid lines listed.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"error": {"code": "invalid_csv", "message": "2 invalid line(s) in the CSV; nothing was produced", "count": 2, "errors": [{"line": 3, "column": "outcome", "message": "unknown outcome \"x\": expected w/l, 1/0, success/failure, or a run of w and l"}, {"line": 7, "message": "3 fields where the header has 2"}]}}))]
pub struct CsvErrorBody {
    pub error: CsvErrorDetail,
}

/// What is wrong with an uploaded CSV.
#[derive(Debug, Serialize, ToSchema)]
pub struct CsvErrorDetail {
    /// `invalid_csv`.
    #[schema(example = "invalid_csv")]
    pub code: &'static str,
    pub message: String,
    /// How many lines are invalid in all (only for `invalid_csv`: other
    /// 422s, such as `invalid_parameter`, have the common shape).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// The first of them (at most `uploads.max_errors`), in line order
    /// (only for `invalid_csv`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<LineError>>,
}

fn invalid_csv(code: &'static str, message: String, count: u64, errors: &[LineError]) -> Response {
    let body = CsvErrorBody {
        error: CsvErrorDetail {
            code,
            count: Some(count),
            message,
            errors: Some(errors.to_vec()),
        },
    };
    let mut response = (StatusCode::UNPROCESSABLE_ENTITY, axum::Json(body)).into_response();
    response.extensions_mut().insert(ErrorCode(code));
    response
}
