//! `POST /observations`: one observation, a batch, or a text/plain run of
//! outcomes. The whole request is validated before anything is produced, so a
//! batch with one bad item writes nothing.
//!
//! The `Idempotency-Key` header becomes the records' `id`: as it is for a
//! single observation (JSON or text), and as `{key}:{index}` for item `index`
//! (0-based) of a batch, so that every record of a retried batch carries the
//! same id as before and no two records of one batch share one. An `id` in
//! the body wins over the header's.
//!
//! `?model=` names the model of a text body, and of the JSON observations
//! that name none; a `model` in the body wins.

use axum::extract::State;
use domain::observation::{parse_json, parse_text, ObjectBody, Observation, ObservationBody};
use domain::ModelId;
use platform::http::ApiQuery;
use serde::Deserialize;
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ErrorBody};
use crate::extract::{IdempotencyKey, ObservationsBody};
use crate::routes::{publish, Accepted};
use crate::state::AppState;

/// `?model=`: the model of a text/plain body, and of JSON observations
/// that name none.
#[derive(Debug, Default, Deserialize)]
pub struct ObservationsQuery {
    /// Model of a `text/plain` body, and of the JSON observations without a
    /// `model` (the default model when absent).
    pub model: Option<String>,
}

/// By hand, for the model-id pattern from `domain::schema`.
impl IntoParams for ObservationsQuery {
    fn into_params(
        _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
    ) -> Vec<utoipa::openapi::path::Parameter> {
        let description = "Model of a `text/plain` body, and of the JSON observations without a\n\
                           `model` (the default model when absent).";
        vec![platform::http::model_id_parameter(
            "model",
            utoipa::openapi::path::ParameterIn::Query,
            description,
            false,
        )
        .example(Some(serde_json::json!("globe")))
        .build()]
    }
}

/// A JSON request body: one observation, or an array of 1 to `max_batch`
/// (10 000 unless configured) of them (a batch). Only a schema: bodies are
/// read by [`decode`].
#[derive(Debug)]
pub struct ObservationsPayload;

impl utoipa::PartialSchema for ObservationsPayload {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        let default_max_batch = platform::settings::ProducerSettings::default().max_batch;
        utoipa::openapi::schema::OneOfBuilder::new()
            .item(utoipa::openapi::Ref::from_schema_name(
                <ObservationBody as ToSchema>::name(),
            ))
            .item(domain::schema::observation_batch(default_max_batch))
            .into()
    }
}

impl ToSchema for ObservationsPayload {}

/// A `text/plain` body: outcomes `w`/`l` (also `1`/`0`, `success`/`failure`)
/// or runs such as `WLWWWLWLW`, separated by white space or commas. Only a
/// schema.
#[derive(Debug)]
pub struct OutcomesText;

impl utoipa::PartialSchema for OutcomesText {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        domain::schema::outcomes_text().into()
    }
}

impl ToSchema for OutcomesText {}

/// Send observations. Answers only after the broker acknowledged every record.
#[utoipa::path(
    post,
    path = "/observations",
    tag = "observations",
    params(
        ObservationsQuery,
        ("Idempotency-Key" = Option<String>, Header,
            description = "Client's idempotency key (1 to 128 printable ASCII characters, no space at either end), written as the record's `id` unless the body has its own; item `i` of a batch gets `{key}:{i}`.",
            example = "order-4711", min_length = 1, max_length = 128, pattern = "^[!-~]([ -~]*[!-~])?$"),
    ),
    request_body(
        description = "JSON: one observation or an array of up to `max_batch` (10 000) of them. Text: outcomes `w`/`l` (also `1`/`0`, `success`/`failure`) or runs such as `WLWWWLWLW`, for `?model=`.",
        content(
            (ObservationsPayload = "application/json", examples(
                ("one outcome" = (value = json!({"model": "globe", "outcome": "w"}))),
                ("a run" = (value = json!({"model": "globe", "outcomes": "WLWWWLWLW"}))),
                ("binomial counts" = (value = json!({"model": "globe", "successes": 6, "trials": 9, "id": "survey-12", "observed_at": "2024-05-01T10:00:00Z"}))),
                ("a batch" = (value = json!([{"model": "globe", "outcome": "w"}, {"model": "coin", "successes": 3, "trials": 5}]))),
            )),
            (OutcomesText = "text/plain", example = "WLWWWLWLW"),
        ),
    ),
    responses(
        (status = 202, description = "Every record is acknowledged by the broker (acks=all).", body = Accepted,
            headers(("trace-id" = String, description = "The trace id written into the records' `trace-id` header."))),
        (status = 400, description = "The body is not JSON, the text is not UTF-8, or the Idempotency-Key header is malformed or repeated.", body = ErrorBody,
            example = json!({"error": {"code": "malformed_json", "message": "malformed JSON: EOF while parsing an object at line 1 column 11"}})),
        (status = 409, description = "The Idempotency-Key conflicts with its earlier use: `idempotency_key_in_use` (a request with it is still waiting for the broker; retry once that one has been answered) or `idempotency_key_reused` (it was used for other observations: use a new key). Nothing was produced.", body = ErrorBody,
            example = json!({"error": {"code": "idempotency_key_in_use", "message": "a request with this Idempotency-Key is still waiting for the broker; retry when it has been answered"}})),
        (status = 413, description = "The body is over `max_body_bytes`, or the batch over `max_batch`.", body = ErrorBody,
            example = json!({"error": {"code": "batch_too_large", "message": "10001 observations in one request; at most 10000 are allowed"}})),
        (status = 415, description = "Content-Type is neither application/json nor text/plain.", body = ErrorBody,
            example = json!({"error": {"code": "unsupported_media_type", "message": "Content-Type \"application/xml\" is not supported: send application/json (one observation or an array) or text/plain (w/l outcomes, with ?model=)"}})),
        (status = 422, description = "Well-formed but not observations (`invalid_observation`: a bad value, a repeated JSON key, an id of an upload's form; for a batch, the first bad item's index and why), or a query parameter that cannot be read (`invalid_parameter`). Nothing was produced.", body = ErrorBody,
            example = json!({"error": {"code": "invalid_observation", "message": "item 3: successes (10) exceed trials (9)", "item": 3}})),
        (status = 503, description = "The broker did not acknowledge within `ack_timeout`. Retry after `Retry-After` seconds with the same Idempotency-Key.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying.")),
            example = json!({"error": {"code": "broker_unavailable", "message": "the broker did not acknowledge the records (the broker did not acknowledge within 5000 ms); retry later with the same Idempotency-Key"}})),
    ),
)]
pub async fn post_observations(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ObservationsQuery>,
    IdempotencyKey(key): IdempotencyKey,
    body: ObservationsBody,
) -> Result<Accepted, ApiError> {
    let observations = decode(
        body,
        query.model,
        key.clone(),
        state.default_model(),
        state.settings().max_batch,
    )?;
    publish(&state, &observations, key.as_deref()).await
}

/// Turns a request into validated observations, or says what is wrong with it.
fn decode(
    body: ObservationsBody,
    model: Option<String>,
    key: Option<String>,
    default_model: &ModelId,
    max_batch: usize,
) -> Result<Vec<Observation>, ApiError> {
    match body {
        ObservationsBody::Text(bytes) => {
            let text = std::str::from_utf8(&bytes).map_err(|_| {
                ApiError::BadRequest("the text/plain body is not valid UTF-8".into())
            })?;
            let model = match model {
                Some(model) => ModelId::parse(model)
                    .map_err(|e| ApiError::Invalid(format!("invalid `model` parameter: {e}")))?,
                None => default_model.clone(),
            };
            let mut observation =
                parse_text(text, model).map_err(|e| ApiError::Invalid(e.to_string()))?;
            observation.id = key;
            Ok(vec![observation])
        }
        ObservationsBody::Json(bytes) => {
            let default_model = &match model {
                Some(model) => ModelId::parse(model)
                    .map_err(|e| ApiError::Invalid(format!("invalid `model` parameter: {e}")))?,
                None => default_model.clone(),
            };
            if let Some(observations) =
                decode_fast(&bytes, key.as_deref(), default_model, max_batch)
            {
                return Ok(observations);
            }
            // Strict: a repeated key is refused (422), never last-wins.
            let value = domain::json::from_slice(&bytes).map_err(|e| {
                if e.is_data() {
                    ApiError::Invalid(format!("invalid JSON: {e}"))
                } else {
                    ApiError::MalformedJson(e.to_string())
                }
            })?;
            match value {
                Value::Object(mut object) => {
                    if let Some(key) = key {
                        // `null` is no id: the header's applies.
                        let id = object.entry("id").or_insert(Value::Null);
                        if id.is_null() {
                            *id = Value::String(key);
                        }
                    }
                    let observation = parse_json(Value::Object(object), None, default_model)
                        .map_err(|e| ApiError::Invalid(e.to_string()))?;
                    Ok(vec![observation])
                }
                Value::Array(items) => decode_batch(items, key, default_model, max_batch),
                _ => Err(ApiError::Invalid(
                    "expected a JSON object such as {\"model\":\"globe\",\"outcome\":\"w\"} or an array of them".into(),
                )),
            }
        }
    }
}

/// The fast path for valid JSON: straight into the parser's body type, with no
/// intermediate `serde_json::Value`. It accepts exactly what the general path
/// below accepts, with the same result; anything it does not accept (or
/// cannot place) yields `None`, and the general path then finds the item and
/// the reason. Most requests are valid, so most never build a `Value` tree.
fn decode_fast(
    bytes: &[u8],
    key: Option<&str>,
    default_model: &ModelId,
    max_batch: usize,
) -> Option<Vec<Observation>> {
    match bytes.iter().find(|b| !b.is_ascii_whitespace())? {
        b'[' => {
            let bodies: Vec<ObjectBody> = serde_json::from_slice(bytes).ok()?;
            if bodies.is_empty() || bodies.len() > max_batch {
                return None;
            }
            bodies
                .into_iter()
                .enumerate()
                .map(|(index, ObjectBody(mut body))| {
                    if let Some(key) = key {
                        body.id.get_or_insert_with(|| format!("{key}:{index}"));
                    }
                    body.into_observation(None, default_model).ok()
                })
                .collect()
        }
        b'{' => {
            let mut body: ObservationBody = serde_json::from_slice(bytes).ok()?;
            if let Some(key) = key {
                body.id.get_or_insert_with(|| key.to_owned());
            }
            body.into_observation(None, default_model)
                .ok()
                .map(|observation| vec![observation])
        }
        _ => None,
    }
}

fn decode_batch(
    items: Vec<Value>,
    key: Option<String>,
    default_model: &ModelId,
    max_batch: usize,
) -> Result<Vec<Observation>, ApiError> {
    if items.is_empty() {
        return Err(ApiError::Invalid(
            "empty batch: send at least one observation".into(),
        ));
    }
    if items.len() > max_batch {
        return Err(ApiError::BatchTooLarge {
            count: items.len(),
            max: max_batch,
        });
    }
    items
        .into_iter()
        .enumerate()
        .map(|(index, mut item)| {
            if let (Some(key), Value::Object(object)) = (&key, &mut item) {
                let id = object.entry("id").or_insert(Value::Null);
                if id.is_null() {
                    *id = Value::String(format!("{key}:{index}"));
                }
            }
            parse_json(item, None, default_model).map_err(|e| ApiError::InvalidItem {
                index,
                message: e.to_string(),
            })
        })
        .collect()
}
