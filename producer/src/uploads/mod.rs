//! Bulk CSV uploads: a file is read once while it arrives (spooled to a
//! temporary file, hashed, validated: [`spool`]), refused whole with its
//! first invalid lines when any row is bad, recorded in Postgres, and then
//! produced in the background ([`produce`]) while the client polls
//! `GET /uploads/{id}`.
//!
//! Ids. An upload's id is the first [`ID_HEX_CHARS`] hex digits of the
//! SHA-256 of its CSV (decoded, if it came gzipped), and each record's id is
//! `<upload>:<line>` (the row's own `id` column wins when it has one). So the
//! same file re-sent after a crash gets the same id and its records the same
//! ids, and the consumer's deduplication (`applied_ids`, within
//! `consumer.dedup_retention`) skips the rows it already counted: the
//! re-send resumes the interrupted upload without counting any row twice.
//! What a new file with that hash meets:
//!
//! - no upload of it yet: a new upload;
//! - its newest upload `failed` (interrupted, or the broker gave up): that
//!   upload is resumed, under its own id;
//! - its newest upload still `producing`: 409 `upload_in_progress`;
//! - its newest upload `produced` or `applied`: 409 `duplicate_upload`
//!   (the first upload's id and time), unless `?force=true`, which counts
//!   the file again on purpose, as a new upload `<hash>-<n>` (n = the number
//!   of earlier uploads of it), whose record ids are new.

pub mod produce;
pub mod rows;
pub mod spool;
pub mod validating;

use axum::body::{Body, Bytes};
use chrono::Utc;
use domain::ModelId;
use futures::StreamExt;
use platform::store::{self, NewUpload, UploadRecord, UploadStatus};
use tokio::sync::mpsc;

pub use spool::LineError;

use crate::error::ApiError;
use crate::observability::UPLOAD_ROWS_VALIDATED;
use crate::state::AppState;
use spool::{BodyReader, SpoolError, Spooled};
use validating::Registration;

/// Hex digits of the SHA-256 in an upload's id: 80 bits, so two different
/// files never share one, and short enough that `<upload>:<line>` stays far
/// below the domain's longest id.
pub const ID_HEX_CHARS: usize = 20;
const _: () = assert!(
    ID_HEX_CHARS + "-18446744073709551615:18446744073709551615".len()
        <= domain::observation::MAX_ID_LEN
);

/// Chunks of the body waiting for the validating thread.
const CHUNKS_AHEAD: usize = 8;

/// Where the file comes from.
#[derive(Debug)]
pub enum Source {
    /// The request body is the file (`text/csv`, possibly gzipped).
    Body(Body),
    /// A `multipart/form-data` body: its first file part is the file.
    Multipart(axum::extract::Multipart),
}

/// What the client asked for besides the file.
#[derive(Debug, Clone)]
pub struct Request {
    pub filename: Option<String>,
    pub model: Option<ModelId>,
    pub force: bool,
}

/// Reads, validates and records an upload, and starts producing it.
/// Answers with the upload as recorded (status `producing`).
pub async fn accept(
    state: &AppState,
    source: Source,
    mut request: Request,
) -> Result<UploadRecord, ApiError> {
    let db = state.database_or_unavailable()?.clone();
    let received_at = Utc::now();
    // Listed as `validating` until this function returns, whatever it returns.
    let registration = state
        .validations()
        .register(request.filename.clone(), received_at);
    let settings = state.uploads().clone();
    let spool_dir = settings.spool_dir();
    let file = tempfile::tempfile_in(&spool_dir).map_err(|e| {
        ApiError::Internal(anyhow::anyhow!(
            "creating a spool file in {}: {e}",
            spool_dir.display()
        ))
    })?;
    let (tx, rx) = mpsc::channel(CHUNKS_AHEAD);
    let limit = settings.max_bytes;
    let model = request.model.clone();
    let validation = tokio::task::spawn_blocking(move || {
        spool::spool_and_validate(
            BodyReader::new(rx, limit),
            file,
            limit,
            settings.max_errors,
            model,
        )
    });
    // Feeds the validating thread; stops when it stops reading (it
    // finished early, or the limit was passed).
    let fed = feed(source, &tx, &mut request, &registration).await;
    drop(tx);
    let spooled = validation
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("the validating thread died: {e}")))?;
    fed?;
    let spooled = spooled.map_err(|error| match error {
        SpoolError::TooLarge { limit } => ApiError::PayloadTooLarge {
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
        },
        SpoolError::Body(_) | SpoolError::Gzip(_) => ApiError::BadRequest(error.to_string()),
        SpoolError::Disk(_) => ApiError::Internal(error.into()),
    })?;
    metrics::counter!(UPLOAD_ROWS_VALIDATED).increment(spooled.rows + spooled.error_count);
    let Spooled {
        file,
        columns,
        sha256,
        bytes,
        rows,
        trials,
        models,
        model_count,
        errors,
        error_count,
    } = spooled;
    let columns = match columns {
        Some(columns) if error_count == 0 => columns,
        _ => {
            return Err(ApiError::InvalidCsv {
                count: error_count.max(1),
                errors,
            })
        }
    };
    let (latest, uploads_of_it) = store::latest_upload_of(&db, &sha256).await?;
    let hash_id = &sha256[..ID_HEX_CHARS];
    let (id, resume) = match latest {
        None => (hash_id.to_owned(), false),
        Some(latest) => match latest.status {
            UploadStatus::Failed => (latest.file.id, true),
            // (A stored upload is never `validating`; treated as in progress.)
            UploadStatus::Validating | UploadStatus::Producing => {
                return Err(ApiError::UploadInProgress { id: latest.file.id })
            }
            UploadStatus::Produced | UploadStatus::Applied if request.force => {
                (format!("{hash_id}-{uploads_of_it}"), false)
            }
            UploadStatus::Produced | UploadStatus::Applied => {
                // The first upload of the file is the one to name.
                let first = first_upload(&db, hash_id).await?.unwrap_or(latest);
                return Err(ApiError::DuplicateUpload {
                    id: first.file.id,
                    at: first.file.validated_at,
                });
            }
        },
    };
    let upload = NewUpload {
        id: id.clone(),
        sha256,
        filename: request.filename,
        bytes,
        rows,
        trials,
        models,
        model_count,
        topic: state.publisher().topic().to_owned(),
        received_at,
        validated_at: Utc::now(),
    };
    let Some(record) = store::start_upload(&db, &upload, resume).await? else {
        return Err(ApiError::UploadInProgress { id });
    };
    tracing::info!(upload = %id, rows, bytes, resumed = resume, "upload validated; producing");
    produce::spawn(state.clone(), db, produce::Job { id, file, columns });
    Ok(record)
}

/// The upload whose id is the bare hash: the first of that file.
async fn first_upload(
    db: &sea_orm::DatabaseConnection,
    hash_id: &str,
) -> Result<Option<UploadRecord>, ApiError> {
    Ok(store::get_upload(db, hash_id).await?)
}

/// Sends the file's bytes to the validating thread.
async fn feed(
    source: Source,
    tx: &mpsc::Sender<Result<Bytes, String>>,
    request: &mut Request,
    registration: &Registration<'_>,
) -> Result<(), ApiError> {
    match source {
        Source::Body(body) => {
            let mut stream = body.into_data_stream();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| e.to_string());
                let failed = chunk.is_err();
                if let Ok(chunk) = &chunk {
                    registration.received(chunk.len());
                }
                if tx.send(chunk).await.is_err() || failed {
                    break;
                }
            }
            Ok(())
        }
        Source::Multipart(mut multipart) => loop {
            let field = multipart
                .next_field()
                .await
                .map_err(|e| ApiError::BadRequest(format!("reading the multipart body: {e}")))?;
            let Some(mut field) = field else {
                return Err(ApiError::BadRequest(
                        "the multipart body has no file part: send the CSV as a part with a filename (curl -F file=@data.csv)".into(),
                    ));
            };
            if field.file_name().is_none() && field.name() != Some("file") {
                continue;
            }
            if request.filename.is_none() {
                if let Some(name) = field.file_name() {
                    check_filename(name).map_err(ApiError::InvalidParameter)?;
                    request.filename = Some(name.to_owned());
                }
            }
            loop {
                let chunk = field.chunk().await.map_err(|e| e.to_string());
                let chunk = match chunk {
                    Ok(Some(chunk)) => Ok(chunk),
                    Ok(None) => return Ok(()),
                    Err(error) => Err(error),
                };
                let failed = chunk.is_err();
                if let Ok(chunk) = &chunk {
                    registration.received(chunk.len());
                }
                if tx.send(chunk).await.is_err() || failed {
                    return Ok(());
                }
            }
        },
    }
}

/// The longest file name kept, in characters (the column's width).
pub const MAX_FILENAME_CHARS: usize = 255;

/// Checks a file name before it is kept: at most [`MAX_FILENAME_CHARS`]
/// characters (the column's width) and no control character (NUL, which
/// Postgres text cannot hold, above all; the others would garble listings
/// and logs). The message names what is wrong.
pub fn check_filename(name: &str) -> Result<(), String> {
    if let Some((position, c)) = name.chars().enumerate().find(|(_, c)| c.is_control()) {
        return Err(format!(
            "filename must not hold control characters; found U+{:04X} at character {position}",
            u32::from(c)
        ));
    }
    let len = name.chars().count();
    if len > MAX_FILENAME_CHARS {
        return Err(format!(
            "filename must be at most {MAX_FILENAME_CHARS} characters; it has {len}"
        ));
    }
    Ok(())
}
