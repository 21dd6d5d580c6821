//! The names of the producer's own Prometheus metrics, following
//! `producer_<what>_<unit>`. Requests and errors are counted by the common
//! layer of `platform::http` (`http_requests_total`,
//! `http_request_duration_seconds`, `http_errors_total`).
//!
//! Names ending in `_seconds` get latency buckets and those ending in
//! `_records` size buckets (see `platform::telemetry::metrics_handle`).

/// The `service` label of the common HTTP metrics.
pub const SERVICE: &str = "producer";
/// Counter: records the broker acknowledged, labelled `topic`.
pub const RECORDS_PRODUCED: &str = "producer_records_produced_total";
/// Histogram: from the first record enqueued to the last one acknowledged, per request.
pub const PRODUCE_SECONDS: &str = "producer_produce_duration_seconds";
/// Histogram: records per accepted request.
pub const REQUEST_RECORDS: &str = "producer_request_size_records";
/// Counter: produce attempts that failed or timed out, labelled `reason`.
pub const PRODUCE_FAILURES: &str = "producer_produce_failures_total";
/// Counter: uploads whose producing ended, labelled `status` (`produced`, `failed`).
pub const UPLOADS_FINISHED: &str = "producer_uploads_finished_total";
/// Counter: rows of uploads validated (valid or not).
pub const UPLOAD_ROWS_VALIDATED: &str = "producer_upload_rows_validated_total";
