//! `bayes upload <file>`: the file streamed from disk to the producer's
//! `POST /uploads` (never read into memory whole) with a byte progress bar,
//! then `GET /uploads/{id}` polled every 200 ms with a second bar following
//! the rows produced, until the consumer applied them all.
//!
//! A `.gz` file is sent as it is, `application/gzip`: the producer recognises
//! gzip by its magic bytes and hashes the decoded CSV, so the same file
//! gzipped or not is the same upload.

use std::path::Path;
use std::time::Duration;

use futures::TryStreamExt;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE};
use reqwest::Method;
use serde::Deserialize;
use tokio_util::io::ReaderStream;

use super::{print, progress_bar, CommandError};
use crate::client::{Service, Services};

/// How often the upload's status is read while waiting for `applied`.
const POLL_EVERY: Duration = Duration::from_millis(200);

/// Bytes read from the file per chunk sent.
const CHUNK_BYTES: usize = 256 * 1024;

/// What `bayes upload` was asked to do besides sending the file.
#[derive(Debug)]
pub struct UploadOptions {
    /// The model of rows that name none (`?model=`).
    pub model: Option<String>,
    /// Count a file uploaded before once more (`?force=true`).
    pub force: bool,
    /// Follow the upload until it is applied.
    pub wait: bool,
}

/// The parts of an upload this client shows.
#[derive(Debug, Deserialize)]
struct Upload {
    id: String,
    status: String,
    reason: Option<String>,
    rows: u64,
    trials: u64,
    models: Vec<String>,
    model_count: u64,
    rows_produced: u64,
}

pub async fn upload(
    services: &Services,
    path: &Path,
    options: UploadOptions,
) -> Result<(), CommandError> {
    let producer = &services.producer;
    let file_error = |source| CommandError::File {
        path: path.to_owned(),
        source,
    };
    let file = tokio::fs::File::open(path).await.map_err(file_error)?;
    let length = file.metadata().await.map_err(file_error)?.len();
    let gzip = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gz"));
    let filename = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();

    let bar = progress_bar(
        length,
        "{spinner} sending {msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
    );
    bar.set_message(filename.clone());
    let counter = bar.clone();
    let sent_all = format!("{filename}, validated by the producer");
    let chunks = ReaderStream::with_capacity(file, CHUNK_BYTES).inspect_ok(move |chunk| {
        counter.inc(chunk.len() as u64);
        // The producer validates the whole file before it answers.
        if counter.position() >= length {
            counter.set_message(sent_all.clone());
        }
    });

    let mut query = vec![("filename", filename.clone())];
    if let Some(model) = &options.model {
        query.push(("model", model.clone()));
    }
    if options.force {
        query.push(("force", "true".into()));
    }
    let request = producer
        .request(Method::POST, &["uploads"])
        .query(&query)
        .header(
            CONTENT_TYPE,
            if gzip { "application/gzip" } else { "text/csv" },
        )
        .header(CONTENT_LENGTH, length)
        .body(reqwest::Body::wrap_stream(chunks));
    let sent = producer.json::<Upload>(request).await;
    bar.finish_and_clear();
    let upload = sent?;
    let models = if upload.model_count > upload.models.len() as u64 {
        format!("{}, …", upload.models.join(", "))
    } else {
        upload.models.join(", ")
    };
    print(&format!(
        "upload {}: {} rows, {} trials, {} model(s) ({models})\n",
        upload.id, upload.rows, upload.trials, upload.model_count
    ))?;
    if !options.wait {
        return Ok(());
    }
    let applied = follow(producer, upload).await?;
    print(&format!(
        "upload {} applied: {} rows counted\n",
        applied.id, applied.rows_produced
    ))
}

/// Polls the upload until it is `applied` (or `failed`), its rows produced
/// shown on a bar.
async fn follow(producer: &Service, mut upload: Upload) -> Result<Upload, CommandError> {
    let bar = progress_bar(upload.rows, "{spinner} {msg} [{bar:30}] {pos}/{len} rows");
    loop {
        bar.set_position(upload.rows_produced);
        bar.set_message(upload.status.clone());
        match upload.status.as_str() {
            "applied" => {
                bar.finish_and_clear();
                return Ok(upload);
            }
            "failed" => {
                bar.finish_and_clear();
                return Err(CommandError::UploadFailed {
                    id: upload.id,
                    reason: upload.reason.unwrap_or_else(|| "no reason given".into()),
                });
            }
            _ => {}
        }
        tokio::time::sleep(POLL_EVERY).await;
        let request = producer.request(Method::GET, &["uploads", &upload.id]);
        upload = match producer.json(request).await {
            Ok(upload) => upload,
            Err(error) => {
                bar.finish_and_clear();
                return Err(error.into());
            }
        };
    }
}
