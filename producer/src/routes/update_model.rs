//! `GET|POST /update_model/{outcome}`: the seed project's API, kept so that
//! its clients can switch without changes (they use GET: the seed's README
//! gives the URLs as plain links). One outcome for the default model; both
//! methods do the same, and unlike the seed they answer only once the broker
//! acknowledged the record.

use axum::extract::State;
use domain::observation::{single_outcome, Observation};
use platform::http::ApiPath;

use crate::error::{ApiError, ErrorBody};
use crate::extract::IdempotencyKey;
use crate::routes::{publish, Accepted};
use crate::state::AppState;

/// Record one outcome for the default model (seed-compatible; GET does the same as POST).
#[utoipa::path(
    method(get, post),
    path = "/update_model/{outcome}",
    tag = "observations",
    params(
        ("outcome" = String, Path, description = "`w` (water, success) or `l` (land, failure); also `1`/`0`, `success`/`failure`, in any case.", example = "w",
            pattern = "^([wWlL10]|[sS][uU][cC][cC][eE][sS][sS]|[fF][aA][iI][lL][uU][rR][eE])$"),
        ("Idempotency-Key" = Option<String>, Header, description = "Client's idempotency key (1 to 128 printable ASCII characters, no space at either end), written as the record's `id`.", example = "toss-17",
            min_length = 1, max_length = 128, pattern = "^[!-~]([ -~]*[!-~])?$"),
    ),
    responses(
        (status = 202, description = "The record is acknowledged by the broker.", body = Accepted,
            headers(("trace-id" = String, description = "The trace id written into the record's `trace-id` header."))),
        (status = 400, description = "The Idempotency-Key header is malformed or repeated.", body = ErrorBody,
            example = json!({"error": {"code": "bad_request", "message": "the Idempotency-Key header must be 1 to 128 printable ASCII characters, with no space at either end"}})),
        (status = 409, description = "The Idempotency-Key conflicts with its earlier use: `idempotency_key_in_use` (its request still waits for the broker) or `idempotency_key_reused` (it was used for another outcome).", body = ErrorBody),
        (status = 422, description = "The outcome is not one of `w` or `l`, or the Idempotency-Key has the form of an upload's line id (`invalid_observation`).", body = ErrorBody,
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
    // One outcome word exactly, as the path's pattern says: not a run, no
    // white space.
    let success = single_outcome(&outcome).ok_or_else(|| {
        ApiError::Invalid(format!("expected one outcome, `w` or `l`; got {outcome:?}"))
    })?;
    let observation = Observation {
        model: state.default_model().clone(),
        successes: u64::from(success),
        failures: u64::from(!success),
        id: key.clone(),
        observed_at: None,
    };
    publish(&state, &[observation], key.as_deref()).await
}
