//! `POST /uploads` (a CSV file, streamed: see `crate::uploads`),
//! `GET /uploads/{id}` and `GET /uploads`. Uploads need Postgres: while it
//! does not answer they are 503 `database_unavailable`, and everything else
//! of the producer goes on.

use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use domain::ModelId;
use platform::http::{ApiPath, ApiQuery};
use platform::store::{self, UploadRange, UploadRecord, UploadStatus};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, CsvErrorBody, ErrorBody};
use crate::state::AppState;
use crate::uploads::validating::{Validating, ID_PREFIX};
use crate::uploads::{self, Source};
use domain::observation::is_upload_id;

/// `?model=` of `POST /uploads`, as the OpenAPI document describes it: by
/// hand, for the model-id pattern from `domain::schema`.
#[derive(Debug)]
pub struct UploadModel;

impl IntoParams for UploadModel {
    fn into_params(
        _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
    ) -> Vec<utoipa::openapi::path::Parameter> {
        vec![platform::http::model_id_parameter(
            "model",
            utoipa::openapi::path::ParameterIn::Query,
            "The model of rows that name none (then the `model` column is optional).",
            false,
        )
        .example(Some(serde_json::json!("globe")))
        .build()]
    }
}

/// `POST /uploads` parameters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadQuery {
    /// The model of rows that name none (then the `model` column is
    /// optional); documented by [`UploadModel`], with the model-id pattern.
    #[param(ignore)]
    pub model: Option<String>,
    /// Count a file that was uploaded before once more, as a new upload.
    #[param(example = false)]
    pub force: Option<bool>,
    /// The file's name, kept with the upload (a multipart part's own name wins):
    /// at most 255 characters, none a control character.
    #[param(
        example = "conversions-2024-05.csv",
        max_length = 255,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"
    )]
    pub filename: Option<String>,
}

/// `GET /uploads` parameters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// The most uploads listed (newest first); 100 by default.
    #[param(minimum = 1, maximum = 1000, example = 20)]
    pub limit: Option<u32>,
}

/// An upload's id (`GET /uploads/{id}`).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct UploadPath {
    /// As `POST /uploads` answered it: 20 hex digits (with `-n` for a forced
    /// re-upload), or `validating-n` while its POST reads the file.
    #[param(
        example = "3f2a9c1b7d4e5f608192",
        max_length = 64,
        pattern = "^([0-9a-f]{20}(-[1-9][0-9]*)?|validating-(0|[1-9][0-9]*))$"
    )]
    pub id: String,
}

/// An upload: what the file held, where producing it stands, and where its
/// records are.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"id": "3f2a9c1b7d4e5f608192", "status": "applied", "filename": "conversions.csv", "sha256": "3f2a9c1b7d4e5f6081920a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f", "bytes": 1048576, "rows": 50000, "trials": 50000, "models": ["checkout"], "model_count": 1, "rows_produced": 50000, "offsets": [{"partition": 0, "first_offset": 100, "last_offset": 50099, "records": 50000}], "received_at": "2024-05-01T10:00:00Z", "validated_at": "2024-05-01T10:00:01Z", "produced_at": "2024-05-01T10:00:02Z", "applied_at": "2024-05-01T10:00:05Z"}))]
pub struct Upload {
    /// Derived from the file's SHA-256; records carry `<id>:<line>`. While
    /// `validating`, a provisional `validating-<n>` of this producer process.
    pub id: String,
    pub status: UploadStatus,
    /// Why producing stopped (status `failed`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    /// SHA-256 of the CSV (after gzip decoding), in hex; absent while
    /// `validating`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Bytes of CSV (while `validating`: the bytes received so far, as sent).
    pub bytes: u64,
    /// Data rows: one record each.
    pub rows: u64,
    /// Trials in all rows.
    pub trials: u64,
    /// The models named (the first 100).
    pub models: Vec<String>,
    /// How many distinct models (counted up to 100 000).
    pub model_count: u64,
    /// Rows acknowledged by the broker so far.
    pub rows_produced: u64,
    /// The records' offsets, per partition.
    pub offsets: Vec<UploadRange>,
    pub received_at: DateTime<Utc>,
    /// Absent while `validating`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validated_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub produced_at: Option<DateTime<Utc>>,
    /// When a reader first found every record applied by the consumer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applied_at: Option<DateTime<Utc>>,
}

impl From<UploadRecord> for Upload {
    fn from(record: UploadRecord) -> Self {
        let file = record.file;
        Self {
            id: file.id,
            status: record.status,
            reason: record.reason,
            filename: file.filename,
            sha256: Some(file.sha256),
            bytes: file.bytes,
            rows: file.rows,
            trials: file.trials,
            models: file.models,
            model_count: file.model_count,
            rows_produced: record.rows_produced,
            offsets: record.offsets,
            received_at: file.received_at,
            validated_at: Some(file.validated_at),
            produced_at: record.produced_at,
            applied_at: record.applied_at,
        }
    }
}

impl From<Validating> for Upload {
    fn from(upload: Validating) -> Self {
        Self {
            id: upload.id,
            status: UploadStatus::Validating,
            reason: None,
            filename: upload.filename,
            sha256: None,
            bytes: upload.bytes_received,
            rows: 0,
            trials: 0,
            models: Vec::new(),
            model_count: 0,
            rows_produced: 0,
            offsets: Vec::new(),
            received_at: upload.received_at,
            validated_at: None,
            produced_at: None,
            applied_at: None,
        }
    }
}

/// `GET /uploads`: newest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UploadList {
    pub uploads: Vec<Upload>,
}

/// The answer to an accepted upload: 202, `Location: /uploads/{id}`.
#[derive(Debug)]
pub struct UploadAccepted(Upload);

impl IntoResponse for UploadAccepted {
    fn into_response(self) -> Response {
        let location = HeaderValue::from_str(&format!("/uploads/{}", self.0.id)).ok();
        let mut response = (StatusCode::ACCEPTED, Json(self.0)).into_response();
        if let Some(location) = location {
            response.headers_mut().insert(header::LOCATION, location);
        }
        response
    }
}

/// A CSV file (only a schema: the body is streamed).
#[derive(Debug)]
pub struct CsvFile;

impl utoipa::PartialSchema for CsvFile {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some("CSV with a header row: `model` (optional with ?model=), `outcome` or `successes` and `trials`, optional `id` and `observed_at`. May be gzip-compressed."))
            .into()
    }
}

impl ToSchema for CsvFile {}

/// A multipart form whose file part is the CSV (only a schema).
#[derive(Debug, ToSchema)]
pub struct UploadForm {
    /// The CSV file (possibly gzip-compressed).
    #[schema(value_type = String, format = Binary)]
    pub file: Vec<u8>,
}

/// Upload a CSV file of observations. The whole file is validated before
/// anything is produced; the records are then produced in the background.
#[utoipa::path(
    post,
    path = "/uploads",
    tag = "uploads",
    params(UploadModel, UploadQuery),
    request_body(
        description = "The CSV, as the body (`text/csv`, gzip-compressed or not) or as the file part of a `multipart/form-data` form. Up to `uploads.max_bytes` (1 GiB), before and after decoding.",
        content(
            (CsvFile = "text/csv", example = "model,outcome\nglobe,w\nglobe,l\nglobe,WLWWL\n"),
            (UploadForm = "multipart/form-data"),
        ),
    ),
    responses(
        (status = 202, description = "Validated and recorded; its records are being produced. Poll `Location`.", body = Upload,
            headers(("Location" = String, description = "`/uploads/{id}`"))),
        (status = 400, description = "The body could not be read (cut off, not valid gzip, a multipart form without a file part).", body = ErrorBody),
        (status = 409, description = "The same file was uploaded before (`duplicate_upload`: its first upload's id and time; `?force=true` counts it again) or is being produced now (`upload_in_progress`).", body = ErrorBody,
            headers(("Location" = String, description = "`/uploads/{id}` of the earlier upload"))),
        (status = 413, description = "Larger than `uploads.max_bytes`, as sent or decoded.", body = ErrorBody),
        (status = 415, description = "Neither `text/csv` nor `multipart/form-data`.", body = ErrorBody),
        (status = 422, description = "Invalid rows or header, or an empty file (`invalid_csv`, the first `uploads.max_errors` lines listed), or an invalid parameter (`invalid_parameter`: a model id, a file name with control characters). Nothing was produced.", body = CsvErrorBody),
        (status = 503, description = "The database, which uploads need, is unavailable.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying."))),
    ),
)]
pub async fn post_upload(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<UploadQuery>,
    request: Request,
) -> Result<UploadAccepted, ApiError> {
    // Refused before a byte of the body is read.
    state.database_or_unavailable()?;
    let model = query
        .model
        .map(ModelId::parse)
        .transpose()
        .map_err(|e| ApiError::Invalid(format!("invalid `model` parameter: {e}")))?;
    let source = match media_type(request.headers())? {
        Kind::Csv => Source::Body(request.into_body()),
        Kind::Multipart => Source::Multipart(
            Multipart::from_request(request, &state)
                .await
                .map_err(|e| ApiError::BadRequest(e.body_text()))?,
        ),
    };
    if let Some(name) = &query.filename {
        uploads::check_filename(name).map_err(ApiError::InvalidParameter)?;
    }
    let request = uploads::Request {
        filename: query.filename,
        model,
        force: query.force.unwrap_or(false),
    };
    let record = uploads::accept(&state, source, request).await?;
    Ok(UploadAccepted(record.into()))
}

/// One upload. A `produced` upload turns `applied` once the consumer's
/// stored offsets pass its last record in every partition it touched. An
/// upload whose POST is still validating the file is found under its
/// provisional id (`validating-<n>`, as `GET /uploads` lists it) until the
/// POST answers.
#[utoipa::path(
    get,
    path = "/uploads/{id}",
    tag = "uploads",
    params(UploadPath),
    responses(
        (status = 200, description = "The upload.", body = Upload),
        (status = 404, description = "No such upload (and none can have an id of another form).", body = ErrorBody),
        (status = 503, description = "The database is unavailable.", body = ErrorBody),
    ),
)]
pub async fn get_upload(
    State(state): State<AppState>,
    ApiPath(path): ApiPath<UploadPath>,
) -> Result<Json<Upload>, ApiError> {
    if path.id.starts_with(ID_PREFIX) {
        // Only the validating list is asked: nothing of the id reaches Postgres.
        return match state.validations().get(&path.id) {
            Some(upload) => Ok(Json(upload.into())),
            None => Err(ApiError::UploadNotFound(path.id.clone())),
        };
    }
    // No upload has an id of another form; nothing of it reaches Postgres
    // (which cannot even hold some strings, a NUL among them).
    if !is_upload_id(&path.id) {
        return Err(ApiError::UploadNotFound(
            domain::observation::truncate_for_message(&path.id),
        ));
    }
    let db = connection(&state)?;
    let record = store::get_upload(db, &path.id)
        .await?
        .ok_or_else(|| ApiError::UploadNotFound(path.id.clone()))?;
    let record = store::refresh_applied(db, record, state.consumer_group()).await?;
    Ok(Json(record.into()))
}

/// The uploads, newest first: first those whose POST is still validating
/// the file (status `validating`), then the recorded ones.
#[utoipa::path(
    get,
    path = "/uploads",
    tag = "uploads",
    params(ListQuery),
    responses(
        (status = 200, description = "Newest first.", body = UploadList),
        (status = 422, description = "`limit` is out of range.", body = ErrorBody),
        (status = 503, description = "The database is unavailable.", body = ErrorBody),
    ),
)]
pub async fn list_uploads(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<UploadList>, ApiError> {
    let limit = platform::http::page_limit(query.limit).map_err(ApiError::InvalidParameter)?;
    let db = connection(&state)?;
    // The ones still validating are the newest.
    let mut uploads: Vec<Upload> = state
        .validations()
        .list()
        .into_iter()
        .take(limit as usize)
        .map(Upload::from)
        .collect();
    let stored = u64::from(limit).saturating_sub(uploads.len() as u64);
    let records = if stored == 0 {
        Vec::new()
    } else {
        store::list_uploads(db, stored).await?
    };
    for record in records {
        let record = store::refresh_applied(db, record, state.consumer_group()).await?;
        uploads.push(record.into());
    }
    Ok(Json(UploadList { uploads }))
}

fn connection(state: &AppState) -> Result<&sea_orm::DatabaseConnection, ApiError> {
    state.database_or_unavailable()
}

enum Kind {
    Csv,
    Multipart,
}

const ACCEPTED_TYPES: &str =
    "send text/csv (gzip-compressed or not) or multipart/form-data with the file as a part";

fn media_type(headers: &HeaderMap) -> Result<Kind, ApiError> {
    let value = headers
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or_default().to_ascii_lowercase());
    let Some(value) = value else {
        return Err(ApiError::UnsupportedMediaType(format!(
            "no Content-Type: {ACCEPTED_TYPES}"
        )));
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    match essence {
        "text/csv" | "application/csv" | "application/gzip" | "application/x-gzip" => Ok(Kind::Csv),
        "multipart/form-data" => Ok(Kind::Multipart),
        _ => Err(ApiError::UnsupportedMediaType(format!(
            "Content-Type {value:?} is not supported: {ACCEPTED_TYPES}"
        ))),
    }
}
