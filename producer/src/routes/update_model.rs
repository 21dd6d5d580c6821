//! `POST /update_model/{outcome}`: the seed project's API, kept so that its
//! clients can switch without changes. One outcome for the default model;
//! unlike the seed, it answers only once the broker acknowledged the record.

use axum::extract::State;
use domain::observation::parse_text;
use platform::http::ApiPath;

use crate::error::{ApiError, ErrorBody};
use crate::extract::IdempotencyKey;
use crate::routes::{publish, Accepted};
use crate::state::AppState;

/// Record one outcome for the default model (seed-compatible).
#[utoipa::path(
    post,
    path = "/update_model/{outcome}",
    tag = "observations",
    params(
        ("outcome" = String, Path, description = "`w` (water, success) or `l` (land, failure); also `1`/`0`, `success`/`failure`, in any case.", example = "w"),
        ("Idempotency-Key" = Option<String>, Header, description = "Client's idempotency key, written as the record's `id`.", example = "toss-17"),
    ),
    responses(
        (status = 202, description = "The record is acknowledged by the broker.", body = Accepted,
            headers(("trace-id" = String, description = "The trace id written into the record's `trace-id` header."))),
        (status = 400, description = "The Idempotency-Key header is malformed.", body = ErrorBody,
            example = json!({"error": {"code": "bad_request", "message": "the Idempotency-Key header must be 1 to 128 visible ASCII characters"}})),
        (status = 422, description = "The outcome is not one of `w` or `l`.", body = ErrorBody,
            example = json!({"error": {"code": "invalid_observation", "message": "expected one outcome, `w` or `l`; got \"x\""}})),
        (status = 503, description = "The broker did not acknowledge within `ack_timeout`.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying.")),
            example = json!({"error": {"code": "broker_unavailable", "message": "the broker did not acknowledge the records (the broker did not acknowledge within 5000 ms); retry later with the same Idempotency-Key"}})),
    ),
)]
pub async fn update_model(
    State(state): State<AppState>,
    ApiPath(outcome): ApiPath<String>,
    IdempotencyKey(key): IdempotencyKey,
) -> Result<Accepted, ApiError> {
    let invalid =
        || ApiError::Invalid(format!("expected one outcome, `w` or `l`; got {outcome:?}"));
    let mut observation =
        parse_text(&outcome, state.default_model().clone()).map_err(|_| invalid())?;
    // The parser also takes runs ("wlw"); this route is for one outcome.
    if observation.trials() != 1 {
        return Err(invalid());
    }
    observation.id = key;
    publish(&state, &[observation]).await
}
