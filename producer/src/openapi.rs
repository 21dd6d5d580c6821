//! The OpenAPI description of the producer's HTTP API, generated from the
//! handlers' `#[utoipa::path]` annotations; merged into the workspace's
//! `openapi.json` together with the model service's.

use platform::http::auth::AuthResponses;
use platform::http::{Check, GuardResponses, Health, Readiness};
use utoipa::OpenApi;

use crate::error::{CsvErrorBody, CsvErrorDetail, ErrorBody, ErrorDetail};
use crate::routes::observations::{ObservationsPayload, OutcomesText};
use crate::routes::uploads::{CsvFile, Upload, UploadForm, UploadList};
use crate::routes::{health, observations, update_model, uploads, Accepted, PartitionRange};
use crate::uploads::LineError;

#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "Bayesian pipeline: producer",
        description = "Clients send Bernoulli observations (globe tosses: `w` water, `l` land; conversions; pass/fail tests). Each request is validated as a whole, written to Kafka (key = model id, value = canonical JSON, `trace-id` header) and answered `202` only after the broker acknowledged every record (`acks=all`, idempotent producer). Errors are `{\"error\":{\"code\",\"message\"}}`. With `auth.required` on, every route but `/healthz`, `/readyz` and `/metrics` needs an API key (`Authorization: Bearer <key>`): 401 `unauthorized` without one, 403 `insufficient_scope` without the route's scope (`ingest` to write, `read` to read), 429 `rate_limited` past the key's rate limit. A connection past `http.max_connections` is answered 503 `too_many_connections` with `Retry-After`.",
    ),
    paths(
        observations::post_observations,
        update_model::update_model,
        uploads::post_upload,
        uploads::list_uploads,
        uploads::get_upload,
        health::healthz,
        health::readyz,
        health::metrics,
    ),
    components(schemas(
        domain::observation::ObservationBody,
        ObservationsPayload,
        OutcomesText,
        Accepted,
        PartitionRange,
        ErrorBody,
        ErrorDetail,
        CsvErrorBody,
        CsvErrorDetail,
        LineError,
        CsvFile,
        UploadForm,
        Upload,
        UploadList,
        platform::store::UploadStatus,
        platform::store::UploadRange,
        Health,
        Readiness,
        Check,
    )),
    tags(
        (name = "observations", description = "Write observations into the pipeline."),
        (name = "uploads", description = "Bulk CSV uploads: validated whole, produced in the background, followed to `applied`."),
        (name = "operations", description = "Health, readiness and metrics."),
    ),
    modifiers(&GUARDS, &AUTH),
)]
struct ApiDoc;

/// What the request guards answer, on the operations they guard.
const GUARDS: GuardResponses = GuardResponses {
    state_changing_gets: &[crate::startup::UPDATE_MODEL_ROUTE],
};

/// The API keys' scheme, scopes and refusals, from the route table.
const AUTH: AuthResponses = AuthResponses {
    routes: crate::startup::ROUTES,
};

/// The producer's OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
