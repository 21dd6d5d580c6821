//! HTTP handlers, and what the write endpoints share: publishing validated
//! observations and answering `202 Accepted` once the broker acknowledged them.

pub mod health;
pub mod observations;
pub mod update_model;
pub mod uploads;

use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use domain::observation::{upload_line_id, Observation};
use serde::Serialize;
use tokio::time::Instant;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::ApiError;
use crate::idempotency::Fingerprint;
use crate::kafka::{Acked, PublishError};
use crate::observability::{PRODUCE_FAILURES, PRODUCE_SECONDS, RECORDS_PRODUCED, REQUEST_RECORDS};
use crate::state::AppState;

/// The response header that echoes the trace id written into the records' `trace-id` header.
pub const TRACE_ID_RESPONSE_HEADER: HeaderName = HeaderName::from_static("trace-id");

/// The answer to an accepted write: every record is stored by the broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[schema(example = json!({"accepted": 3, "partition": 0, "offset": 41, "last_offset": 43, "trace_id": "8a1c3c1e-2f5e-4d7b-9a59-5e0f6b7d2c11"}))]
pub struct Accepted {
    /// Records written: one per observation (a run or binomial counts is one record).
    #[schema(example = 3)]
    pub accepted: usize,
    /// The partition of the first record.
    #[schema(example = 0)]
    pub partition: i32,
    /// The offset of the request's first record in `partition`.
    #[schema(example = 41)]
    pub offset: i64,
    /// The offset of the request's last record in `partition` (equal to
    /// `offset` for one record). Records of concurrent requests may lie between.
    #[schema(example = 43)]
    pub last_offset: i64,
    /// Only when the records went to more than one partition (models hash to
    /// different partitions of a multi-partition topic): the range in each.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub partitions: Vec<PartitionRange>,
    /// The id in every record's `trace-id` Kafka header, for following the
    /// records through the pipeline's logs.
    #[schema(example = "8a1c3c1e-2f5e-4d7b-9a59-5e0f6b7d2c11")]
    pub trace_id: String,
}

/// The records of one request in one partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct PartitionRange {
    pub partition: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    pub records: usize,
}

impl Accepted {
    fn from_acks(acked: &[Acked], trace_id: String) -> Option<Self> {
        let mut ranges: Vec<PartitionRange> = Vec::new();
        for ack in acked {
            match ranges.iter_mut().find(|r| r.partition == ack.partition) {
                Some(range) => {
                    range.first_offset = range.first_offset.min(ack.offset);
                    range.last_offset = range.last_offset.max(ack.offset);
                    range.records += 1;
                }
                None => ranges.push(PartitionRange {
                    partition: ack.partition,
                    first_offset: ack.offset,
                    last_offset: ack.offset,
                    records: 1,
                }),
            }
        }
        let first = ranges.first()?.clone();
        if ranges.len() == 1 {
            ranges.clear();
        }
        Some(Self {
            accepted: acked.len(),
            partition: first.partition,
            offset: first.first_offset,
            last_offset: first.last_offset,
            partitions: ranges,
            trace_id,
        })
    }
}

impl IntoResponse for Accepted {
    fn into_response(self) -> Response {
        let trace_id = HeaderValue::from_str(&self.trace_id).ok();
        let mut response = (StatusCode::ACCEPTED, Json(self)).into_response();
        if let Some(value) = trace_id {
            response
                .headers_mut()
                .insert(TRACE_ID_RESPONSE_HEADER, value);
        }
        response
    }
}

/// Publishes validated observations under a fresh trace id and answers once
/// the broker acknowledged all of them, or with 503 when it did not in time.
/// `key` is the request's `Idempotency-Key`: claimed for these observations
/// while they are published, and bound to them after (see [`crate::idempotency`]).
pub(crate) async fn publish(
    state: &AppState,
    observations: &[Observation],
    key: Option<&str>,
) -> Result<Accepted, ApiError> {
    refuse_upload_ids(observations)?;
    refuse_unknown_models(state, observations).await?;
    let _claimed = key
        .map(|key| state.keys().claim(key, Fingerprint::of(observations)))
        .transpose()?;
    let trace_id = Uuid::new_v4().to_string();
    let publisher = state.publisher();
    let started = Instant::now();
    let acked = match publisher.publish(observations, &trace_id).await {
        Ok(acked) => acked,
        Err(error) => {
            let reason = match &error {
                PublishError::Timeout(_) => "timeout",
                PublishError::Kafka(_) => "kafka",
                PublishError::Closed => "closed",
            };
            metrics::counter!(PRODUCE_FAILURES, "reason" => reason).increment(1);
            tracing::warn!(%trace_id, records = observations.len(), %error, "records not acknowledged");
            return Err(ApiError::BrokerUnavailable {
                reason: error.to_string(),
                retry_after: state.ack_timeout().min(std::time::Duration::from_secs(5)),
            });
        }
    };
    metrics::histogram!(PRODUCE_SECONDS).record(started.elapsed().as_secs_f64());
    metrics::histogram!(REQUEST_RECORDS).record(acked.len() as f64);
    metrics::counter!(RECORDS_PRODUCED, "topic" => publisher.topic().to_owned())
        .increment(acked.len() as u64);
    let accepted = Accepted::from_acks(&acked, trace_id).ok_or_else(|| {
        ApiError::Internal(anyhow::anyhow!("a request with no records was published"))
    })?;
    // Debug, not info: at tens of thousands of requests a second one line
    // each would drown everything else.
    tracing::debug!(
        trace_id = %accepted.trace_id,
        records = accepted.accepted,
        partition = accepted.partition,
        offset = accepted.offset,
        last_offset = accepted.last_offset,
        "observations acknowledged"
    );
    Ok(accepted)
}

/// Ids of the form `<upload>:<line>` are an upload's own: the consumer keeps
/// them apart, as the upload's hash fixes what each line holds, so a
/// client's record under one would be taken for that line (see
/// `domain::observation::upload_line_id`).
fn refuse_upload_ids(observations: &[Observation]) -> Result<(), ApiError> {
    let reserved = |o: &Observation| {
        o.id.as_deref()
            .is_some_and(|id| upload_line_id(id).is_some())
    };
    let Some(index) = observations.iter().position(reserved) else {
        return Ok(());
    };
    let message = "`id` has the form of an upload's line id (20 hex digits, optionally `-n`, then `:` and a line number), which only uploads use; choose another id or Idempotency-Key".to_owned();
    Err(if observations.len() == 1 {
        ApiError::Invalid(message)
    } else {
        ApiError::InvalidItem { index, message }
    })
}

/// With `models.auto_create` off, a model the producer knows does not exist
/// is refused (422 `unknown_model`, naming the first such item of a batch);
/// one it cannot tell about is accepted, and the consumer decides (see
/// [`crate::known_models`]).
async fn refuse_unknown_models(
    state: &AppState,
    observations: &[Observation],
) -> Result<(), ApiError> {
    let Some(known) = state.known_models() else {
        return Ok(());
    };
    let mut asked: Vec<&str> = Vec::new();
    for (index, observation) in observations.iter().enumerate() {
        let model = observation.model.as_str();
        if asked.contains(&model) {
            continue;
        }
        asked.push(model);
        if known.exists(model, state.database()).await == Some(false) {
            return Err(ApiError::UnknownModel {
                model: model.to_owned(),
                index: (observations.len() > 1).then_some(index),
            });
        }
    }
    Ok(())
}
