//! The one error type of the HTTP API, and the extractors that turn axum's
//! rejections into it, so every error a client sees has the same shape:
//! `{"error": {"code": "...", "message": "..."}}`.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use domain::bayes::BayesError;
use platform::store::StoreError;
use serde::Serialize;

/// Everything a handler can answer other than success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 404: the model does not exist (or its id could not name one).
    #[error("no model named {0:?}")]
    ModelNotFound(String),
    /// 404: no such route.
    #[error("no such resource")]
    RouteNotFound,
    /// 405: the route exists but not for this method.
    #[error("method not allowed on this resource")]
    MethodNotAllowed,
    /// 400: the body is not JSON.
    #[error("{0}")]
    MalformedJson(String),
    /// 415: the body is not declared as JSON.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 413: the body is larger than `max_body_bytes`.
    #[error("request body too large")]
    PayloadTooLarge,
    /// 422: the body is JSON but not a valid value.
    #[error("{0}")]
    InvalidBody(String),
    /// 422: a path or query parameter is invalid.
    #[error("{0}")]
    InvalidParameter(String),
    /// 422: the engine cannot answer for this prior and data.
    #[error("{0}")]
    Unanswerable(BayesError),
    /// 401: a bearer token is required and was missing or wrong.
    #[error("a valid bearer token is required")]
    Unauthorized,
    /// 503: the database does not answer.
    #[error("database unavailable")]
    Unavailable(#[source] StoreError),
    /// 500: a bug or corrupt data; logged, answered opaquely.
    #[error("internal error: {0}")]
    Internal(String),
}

pub use platform::http::{ErrorBody, ErrorDetail};

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::ModelNotFound(_) | ApiError::RouteNotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::MalformedJson(_) => StatusCode::BAD_REQUEST,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::InvalidBody(_)
            | ApiError::InvalidParameter(_)
            | ApiError::Unanswerable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::ModelNotFound(_) => "model_not_found",
            ApiError::RouteNotFound => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::MalformedJson(_) => "malformed_json",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::InvalidBody(_) => "invalid_body",
            ApiError::InvalidParameter(_) => "invalid_parameter",
            ApiError::Unanswerable(_) => "unanswerable",
            ApiError::Unauthorized => "unauthorized",
            ApiError::Unavailable(_) => "database_unavailable",
            ApiError::Internal(_) => "internal",
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        ApiError::InvalidParameter(message.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        // Logged here and only here; the client gets an opaque message.
        let message = match &self {
            ApiError::Internal(detail) => {
                tracing::error!(error = %detail, "internal error");
                "internal error".to_owned()
            }
            ApiError::Unavailable(source) => {
                tracing::warn!(error = %source, "database unavailable");
                "the database is unavailable; try again shortly".to_owned()
            }
            other => other.to_string(),
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message,
                item: None,
            },
        };
        let mut response = (status, axum::Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    /// The store classifies its errors: a transient one is 503 (try again
    /// shortly); a rejected statement, a conflict or corrupt data is a fault
    /// on this side, 500.
    fn from(err: StoreError) -> Self {
        if err.is_transient() {
            ApiError::Unavailable(err)
        } else {
            ApiError::Internal(err.to_string())
        }
    }
}

impl From<BayesError> for ApiError {
    fn from(err: BayesError) -> Self {
        match err {
            BayesError::Mass(_) | BayesError::GridSize(_) | BayesError::Probability(_) => {
                ApiError::InvalidParameter(err.to_string())
            }
            BayesError::Overflow | BayesError::NoMass => ApiError::Unanswerable(err),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::JsonDataError(e) => ApiError::InvalidBody(e.body_text()),
            JsonRejection::JsonSyntaxError(e) => ApiError::MalformedJson(e.body_text()),
            JsonRejection::MissingJsonContentType(e) => {
                ApiError::UnsupportedMediaType(e.body_text())
            }
            other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
            other => ApiError::MalformedJson(other.body_text()),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::InvalidParameter(rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::InvalidParameter(rejection.body_text())
    }
}

/// `axum::Json` whose rejections are [`ApiError`]s; also a JSON response.
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

impl<T: Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// `axum::extract::Query` whose rejections are [`ApiError`]s (422).
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

/// `axum::extract::Path` whose rejections are [`ApiError`]s.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);
