//! Producing a validated upload, in the background: a blocking thread reads
//! the spooled file again, in order, and turns rows into records (id
//! `<upload>:<line>` unless the row has its own) in batches sent through a
//! bounded channel; the async side enqueues them with librdkafka and keeps
//! at most `uploads.max_in_flight` delivery futures, awaiting the oldest
//! before it enqueues more. Memory is bounded whatever the file's size.
//!
//! Progress (rows acknowledged, offsets per partition) is written to the
//! upload's row every `uploads.progress_interval`; the end is `produced`, or
//! `failed` with the reason. A failure leaves records already acknowledged
//! in the log: re-sending the file resumes under the same ids, and the
//! consumer's deduplication skips the rows it already applied.

use std::collections::VecDeque;
use std::fs::File;
use std::io::BufReader;
use std::time::Duration;

use csv::ByteRecord;
use domain::observation::Observation;
use platform::retry::Backoff;
use platform::store::{self, UploadRange};
use rdkafka::error::KafkaError;
use rdkafka::producer::DeliveryFuture;
use sea_orm::DatabaseConnection;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::rows::Columns;
use super::spool::{csv_reader, header, line_of};
use crate::kafka::{enqueue, traced_record, MakeRoom, QUEUE_FULL_BACKOFF};
use crate::observability::{RECORDS_PRODUCED, UPLOADS_FINISHED};
use crate::state::AppState;

/// Records handed from the reading thread to the producing task at once.
const BATCH_RECORDS: usize = 2_048;
/// Batches waiting between the two: the reader stays a little ahead.
const BATCHES_AHEAD: usize = 4;

/// Why producing an upload stopped.
#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    #[error("the broker did not accept a record: {0}")]
    Kafka(#[from] KafkaError),
    #[error("the producer is shutting down")]
    Closed,
    #[error("reading the spooled file: {0}")]
    Spool(#[from] csv::Error),
    /// The file changed between validation and producing (it cannot: it
    /// is this process's own unnamed file), or a bug.
    #[error("line {line} no longer validates: {message}")]
    Row { line: u64, message: String },
}

/// A validated upload, ready to produce.
#[derive(Debug)]
pub struct Job {
    pub id: String,
    pub file: File,
    pub columns: Columns,
}

/// Produces `job` in a task of its own and records the outcome.
pub fn spawn(state: AppState, db: DatabaseConnection, job: Job) {
    tokio::spawn(async move {
        let id = job.id.clone();
        let started = Instant::now();
        let outcome = produce(&state, &db, job).await;
        let (result, label) = match outcome {
            Ok((rows, offsets)) => {
                tracing::info!(upload = %id, rows, seconds = started.elapsed().as_secs_f64(), "upload produced");
                let written = with_retries("recording the upload produced", || {
                    store::finish_upload(&db, &id, rows, &offsets)
                })
                .await;
                (written, "produced")
            }
            Err(error) => {
                tracing::error!(upload = %id, %error, "upload failed; re-send the file to resume");
                let reason = error.to_string();
                let written = with_retries("recording the upload failed", || {
                    store::fail_upload(&db, &id, &reason)
                })
                .await;
                (written, "failed")
            }
        };
        metrics::counter!(UPLOADS_FINISHED, "status" => label).increment(1);
        if let Err(error) = result {
            // The row stays `producing`; the next start marks it
            // interrupted, and a re-send resumes it.
            tracing::error!(upload = %id, %error, "recording the end of the upload failed");
        }
    });
}

async fn produce(
    state: &AppState,
    db: &DatabaseConnection,
    job: Job,
) -> Result<(u64, Vec<UploadRange>), ProduceError> {
    let Job { id, file, columns } = job;
    let (tx, mut batches) = mpsc::channel(BATCHES_AHEAD);
    let reader_id = id.clone();
    let reader = tokio::task::spawn_blocking(move || read_records(file, columns, &reader_id, &tx));

    let settings = &state.uploads().clone();
    let publisher = state.publisher();
    let topic = publisher.topic().to_owned();
    let mut acked = Acked::default();
    let mut next_progress = Instant::now() + settings.progress_interval;
    while let Some(batch) = batches.recv().await {
        // The current client, once a batch: a new one after a fatal error.
        let producer = publisher.client();
        for (key, payload) in &batch {
            if acked.in_flight.len() >= settings.max_in_flight.max(1) {
                acked.make_room().await?;
            }
            let record = traced_record(&topic, key, payload, &id);
            let delivery = enqueue(&producer, record, &mut acked).await?;
            acked.in_flight.push_back(delivery);
        }
        if Instant::now() >= next_progress {
            next_progress = Instant::now() + settings.progress_interval;
            acked.report(&topic);
            // Progress is for people watching; a database hiccup must not
            // stop the upload.
            if let Err(error) = store::record_progress(db, &id, acked.rows, &acked.ranges).await {
                tracing::warn!(upload = %id, %error, "recording progress failed");
            }
        }
    }
    while let Some(oldest) = acked.in_flight.pop_front() {
        acked.settle(oldest).await?;
    }
    acked.report(&topic);
    // The reader's own error, if it stopped early (the channel then closed).
    match reader.await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => return Err(error),
        Err(_) => return Err(ProduceError::Closed),
    }
    Ok((acked.rows, acked.ranges))
}

/// The records enqueued and not settled yet, oldest first, and those
/// acknowledged so far, by partition.
#[derive(Default)]
struct Acked {
    in_flight: VecDeque<DeliveryFuture>,
    rows: u64,
    reported: u64,
    ranges: Vec<UploadRange>,
}

impl Acked {
    async fn settle(&mut self, delivery: DeliveryFuture) -> Result<(), ProduceError> {
        let delivery = match delivery.await {
            Ok(Ok(delivery)) => delivery,
            Ok(Err((error, _message))) => return Err(error.into()),
            Err(_canceled) => return Err(ProduceError::Closed),
        };
        self.rows += 1;
        match self
            .ranges
            .iter_mut()
            .find(|r| r.partition == delivery.partition)
        {
            Some(range) => {
                range.first_offset = range.first_offset.min(delivery.offset);
                range.last_offset = range.last_offset.max(delivery.offset);
                range.records += 1;
            }
            None => self.ranges.push(UploadRange {
                partition: delivery.partition,
                first_offset: delivery.offset,
                last_offset: delivery.offset,
                records: 1,
            }),
        }
        Ok(())
    }

    fn report(&mut self, topic: &str) {
        metrics::counter!(RECORDS_PRODUCED, "topic" => topic.to_owned())
            .increment(self.rows - self.reported);
        self.reported = self.rows;
    }
}

/// librdkafka's queue is full: the oldest record's acknowledgement makes
/// room (or a short wait does, when none is in flight).
impl MakeRoom for Acked {
    type Error = ProduceError;

    async fn make_room(&mut self) -> Result<(), ProduceError> {
        match self.in_flight.pop_front() {
            Some(oldest) => self.settle(oldest).await,
            None => {
                tokio::time::sleep(QUEUE_FULL_BACKOFF).await;
                Ok(())
            }
        }
    }
}

/// The reading thread: rows to `(key, canonical JSON)` records, in file order.
fn read_records(
    file: File,
    mut columns: Columns,
    upload: &str,
    batches: &mpsc::Sender<Vec<(String, String)>>,
) -> Result<(), ProduceError> {
    let (mut reader, lines) = csv_reader(BufReader::new(file));
    header(&mut reader)?;
    let mut record = ByteRecord::new();
    let mut batch = Vec::with_capacity(BATCH_RECORDS);
    while reader.read_byte_record(&mut record)? {
        let line = line_of(&record, &lines);
        let row = columns.parse_row(&record).map_err(|e| ProduceError::Row {
            line,
            message: e.message,
        })?;
        let observation = Observation {
            model: row.model.clone(),
            successes: row.successes,
            failures: row.failures,
            id: Some(match row.id {
                Some(id) => id.to_owned(),
                None => format!("{upload}:{line}"),
            }),
            observed_at: row.observed_at,
        };
        batch.push((
            observation.model.as_str().to_owned(),
            observation.to_canonical_json(),
        ));
        if batch.len() == BATCH_RECORDS {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH_RECORDS));
            if batches.blocking_send(full).is_err() {
                // The producing side stopped (and says why).
                return Ok(());
            }
        }
    }
    if !batch.is_empty() {
        let _ = batches.blocking_send(batch);
    }
    Ok(())
}

/// Retries a store write that records an upload's state a few times: the
/// row is what people poll, worth a short wait for the database.
pub async fn with_retries<T, F, Fut>(what: &str, mut write: F) -> Result<T, store::StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, store::StoreError>>,
{
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
    let mut attempts = 0;
    loop {
        match write().await {
            Ok(value) => return Ok(value),
            Err(error) if error.is_transient() && attempts < 5 => {
                attempts += 1;
                tracing::warn!(%error, what, "retrying");
                tokio::time::sleep(backoff.next_delay()).await;
            }
            Err(error) => return Err(error),
        }
    }
}
