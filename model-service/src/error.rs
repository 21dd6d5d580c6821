//! The one error type of the HTTP API, answered in the common shape of
//! `platform::http`: `{"error": {"code": "...", "message": "..."}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use domain::bayes::BayesError;
use platform::http::{ErrorResponse, Rejection};
use platform::store::StoreError;

use crate::streams::StreamRefusal;

/// How long a client refused a stream is asked to wait: streams end when
/// their clients leave, which a few seconds often sees.
const STREAM_RETRY_AFTER_SECONDS: u64 = 5;

/// Everything a handler can answer other than success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 404: the model does not exist (or its id could not name one).
    #[error("no model named {0:?}")]
    ModelNotFound(String),
    /// 404: the model exists but never had this version.
    #[error("unknown version {version} of model {model}: it is at version {current}")]
    VersionNotFound {
        model: String,
        version: u64,
        current: u64,
    },
    /// 404: the experiment does not exist (or its id could not name one).
    #[error("no experiment named {0:?}")]
    ExperimentNotFound(String),
    /// 404: the experiment never reached this version.
    #[error("unknown version {version} of experiment {experiment}: it is at version {current}")]
    ExperimentVersionNotFound {
        experiment: String,
        version: u64,
        current: u64,
    },
    /// 404: no such route.
    #[error("no such resource")]
    RouteNotFound,
    /// 405: the route exists but not for this method.
    #[error("method not allowed on this resource")]
    MethodNotAllowed,
    /// 422: a path or query parameter is invalid.
    #[error("{0}")]
    InvalidParameter(String),
    /// 422: the engine cannot answer for this prior and data.
    #[error("{0}")]
    Unanswerable(BayesError),
    /// A request refused the way `platform::http` refuses it before a
    /// handler runs (a body that is JSON but not the expected value: 422).
    #[error("{0}")]
    Rejected(Rejection),
    /// 409: the model is an arm of experiments.
    #[error("model {model} is an arm of experiments {}: delete them first", experiments.join(", "))]
    ModelInExperiments {
        model: String,
        experiments: Vec<String>,
    },
    /// 409: a key in force has this name.
    #[error("a key named {0:?} is in force already: revoke it, or choose another name")]
    KeyNameTaken(String),
    /// 409: `auth.max_keys` keys are in force.
    #[error("{0} keys are in force, the most allowed (auth.max_keys): revoke one first")]
    TooManyKeys(usize),
    /// 404: no key in force has this id.
    #[error("no key in force has id {0:?}")]
    KeyNotFound(String),
    /// 503: as many `/events` streams are open as allowed, in all or for
    /// this client.
    #[error("{0}")]
    TooManyStreams(StreamRefusal),
    /// 429: the model's configuration changed as often as
    /// `model_service.max_config_changes_per_hour` allows within the last hour.
    #[error(
        "model {model} was reconfigured {per_hour} times within the last hour, the most \
         allowed (model_service.max_config_changes_per_hour); it may change again in {} s",
        retry_after.as_secs()
    )]
    TooManyChanges {
        model: String,
        per_hour: u32,
        retry_after: std::time::Duration,
    },
    /// 503: the database does not answer.
    #[error("database unavailable")]
    Unavailable(#[source] StoreError),
    /// 503: the in-memory current state may have missed changes and is
    /// being reloaded (see `current`); the reason.
    #[error("the current state is being reloaded from the database: {0}")]
    NotInSync(String),
    /// 500: a bug or corrupt data; logged, answered opaquely.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

pub use platform::http::{ErrorBody, ErrorDetail};

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::ModelNotFound(_)
            | ApiError::VersionNotFound { .. }
            | ApiError::ExperimentNotFound(_)
            | ApiError::ExperimentVersionNotFound { .. }
            | ApiError::RouteNotFound
            | ApiError::KeyNotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::InvalidParameter(_) | ApiError::Unanswerable(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::Rejected(rejection) => rejection.status(),
            ApiError::ModelInExperiments { .. }
            | ApiError::KeyNameTaken(_)
            | ApiError::TooManyKeys(_) => StatusCode::CONFLICT,
            ApiError::TooManyChanges { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) | ApiError::NotInSync(_) | ApiError::TooManyStreams(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::ModelNotFound(_) => "model_not_found",
            ApiError::VersionNotFound { .. } | ApiError::ExperimentVersionNotFound { .. } => {
                "version_not_found"
            }
            ApiError::ExperimentNotFound(_) => "experiment_not_found",
            ApiError::RouteNotFound => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::InvalidParameter(_) => "invalid_parameter",
            ApiError::Unanswerable(_) => "unanswerable",
            ApiError::Rejected(rejection) => rejection.code(),
            ApiError::ModelInExperiments { .. } => "model_in_experiment",
            ApiError::KeyNameTaken(_) => "key_name_taken",
            ApiError::TooManyKeys(_) => "too_many_keys",
            ApiError::KeyNotFound(_) => "key_not_found",
            ApiError::TooManyChanges { .. } => "too_many_changes",
            ApiError::Unavailable(_) | ApiError::NotInSync(_) => "database_unavailable",
            ApiError::TooManyStreams(_) => "too_many_streams",
            ApiError::Internal(_) => "internal",
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        ApiError::InvalidParameter(message.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let answer = match &self {
            ApiError::Internal(error) => ErrorResponse::internal(error),
            ApiError::Unavailable(source) => {
                tracing::warn!(error = %source, "database unavailable");
                ErrorResponse::new(
                    self.status(),
                    self.code(),
                    "the database is unavailable; try again shortly",
                )
                .retry_after(1)
            }
            ApiError::NotInSync(_) => {
                ErrorResponse::new(self.status(), self.code(), self.to_string()).retry_after(1)
            }
            ApiError::TooManyStreams(_) => {
                ErrorResponse::new(self.status(), self.code(), self.to_string())
                    .retry_after(STREAM_RETRY_AFTER_SECONDS)
            }
            ApiError::TooManyChanges { retry_after, .. } => {
                ErrorResponse::new(self.status(), self.code(), self.to_string())
                    .retry_after(retry_after.as_secs().max(1))
            }
            other => ErrorResponse::new(other.status(), other.code(), other.to_string()),
        };
        answer.into_response()
    }
}

impl From<StoreError> for ApiError {
    /// The store classifies its errors: a transient one is 503 (try again
    /// shortly); a value the database cannot hold is the request's, 422; a
    /// rejected statement, a conflict or corrupt data is a fault on this
    /// side, 500.
    fn from(err: StoreError) -> Self {
        match err {
            // A refused connection (certificates, login) is as unavailable
            // to the client as a database that is down.
            err if err.is_transient() || err.is_refused() => ApiError::Unavailable(err),
            // A value of the request the database cannot hold: the client's.
            StoreError::Unstorable(_) => ApiError::InvalidParameter(err.to_string()),
            err => ApiError::Internal(err.into()),
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

impl From<domain::bayes::ExperimentError> for ApiError {
    /// The engine refuses options or counts the request gave.
    fn from(err: domain::bayes::ExperimentError) -> Self {
        ApiError::InvalidParameter(err.to_string())
    }
}

impl From<crate::views::experiment::FiguresError> for ApiError {
    fn from(err: crate::views::experiment::FiguresError) -> Self {
        use crate::views::experiment::FiguresError;
        match err {
            FiguresError::Posterior(e) => e.into(),
            FiguresError::Experiment(e) => e.into(),
        }
    }
}
