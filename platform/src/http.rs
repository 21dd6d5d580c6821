//! The JSON body of every HTTP error, the same for both services.

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
