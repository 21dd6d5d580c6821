//! `uploads`: the bulk CSV uploads the producer accepted. A row is written
//! once a file is validated (status `producing`), moved forward as its
//! records are acknowledged (`produced`), and found `applied` by
//! [`refresh_applied`] once the consumer's stored offsets pass its last
//! record in every partition it touched. A producer that stopped half-way
//! leaves `producing` behind; [`fail_interrupted_uploads`] turns those into
//! `failed` at the next start, so the crash is visible and the file can be
//! re-sent to resume.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, UpdateMany,
};
use serde::{Deserialize, Serialize};

use super::convert::{to_i64, to_u64};
use super::entities::uploads::{self, Column, Entity};
use super::offsets::load_offset;
use super::StoreError;

/// Where an upload stands. `applied` is never set by the producer itself:
/// it is what the consumer's stored offsets say (see [`refresh_applied`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UploadStatus {
    /// Its POST is still reading and validating the file (never stored: the
    /// producer lists such uploads from memory, under a provisional id).
    Validating,
    /// Validated; its records are being written to Kafka.
    Producing,
    /// Every record is acknowledged by the broker.
    Produced,
    /// The consumer has applied every record.
    Applied,
    /// Producing stopped; `reason` says why.
    Failed,
}

impl UploadStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Validating => "validating",
            Self::Producing => "producing",
            Self::Produced => "produced",
            Self::Applied => "applied",
            Self::Failed => "failed",
        }
    }

    fn parse(stored: &str) -> Result<Self, StoreError> {
        Ok(match stored {
            "producing" => Self::Producing,
            "produced" => Self::Produced,
            "applied" => Self::Applied,
            "failed" => Self::Failed,
            other => return Err(StoreError::Corrupt(format!("upload status {other:?}"))),
        })
    }
}

/// The records of an upload in one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UploadRange {
    pub partition: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    pub records: u64,
}

/// A validated file about to be produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUpload {
    pub id: String,
    pub sha256: String,
    pub filename: Option<String>,
    /// Bytes of CSV (after gzip decoding).
    pub bytes: u64,
    pub rows: u64,
    pub trials: u64,
    /// The models named, in the order first seen, at most the caller's cap.
    pub models: Vec<String>,
    /// How many distinct models the file names.
    pub model_count: u64,
    pub topic: String,
    pub received_at: DateTime<Utc>,
    pub validated_at: DateTime<Utc>,
}

/// An upload as stored: the file as validated, and where producing it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadRecord {
    pub file: NewUpload,
    pub status: UploadStatus,
    pub reason: Option<String>,
    pub rows_produced: u64,
    pub offsets: Vec<UploadRange>,
    pub produced_at: Option<DateTime<Utc>>,
    pub applied_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

fn record(row: uploads::Model) -> Result<UploadRecord, StoreError> {
    let corrupt = |what: &str, e: serde_json::Error| {
        StoreError::Corrupt(format!("{what} of upload {}: {e}", row.id))
    };
    Ok(UploadRecord {
        file: NewUpload {
            models: serde_json::from_value(row.models.clone()).map_err(|e| corrupt("models", e))?,
            bytes: to_u64(row.bytes)?,
            rows: to_u64(row.rows)?,
            trials: to_u64(row.trials)?,
            model_count: to_u64(row.model_count)?,
            id: row.id.clone(),
            sha256: row.sha256,
            filename: row.filename,
            topic: row.topic,
            received_at: row.received_at,
            validated_at: row.validated_at,
        },
        offsets: serde_json::from_value(row.offsets).map_err(|e| corrupt("offsets", e))?,
        status: UploadStatus::parse(&row.status)?,
        rows_produced: to_u64(row.rows_produced)?,
        reason: row.reason,
        produced_at: row.produced_at,
        applied_at: row.applied_at,
        updated_at: row.updated_at,
    })
}

fn json<T: Serialize>(value: &T) -> Result<serde_json::Value, StoreError> {
    serde_json::to_value(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// The newest upload of the content with this SHA-256, and how many uploads
/// of it there are (a forced repeat is one more).
pub async fn latest_upload_of(
    db: &impl ConnectionTrait,
    sha256: &str,
) -> Result<(Option<UploadRecord>, u64), StoreError> {
    let count = Entity::find()
        .filter(Column::Sha256.eq(sha256))
        .select_only()
        .column_as(Expr::col(Column::Id).count(), "count")
        .into_tuple::<i64>()
        .one(db)
        .await?
        .unwrap_or(0);
    let latest = Entity::find()
        .filter(Column::Sha256.eq(sha256))
        .order_by_desc(Column::ValidatedAt)
        .one(db)
        .await?;
    Ok((latest.map(record).transpose()?, to_u64(count)?))
}

/// Writes the row of a validated upload, status `producing`. With `resume`
/// the row exists and must be `failed` (an interrupted upload re-sent): it
/// starts again from nothing produced. `Ok(None)` when another request got
/// there first (the same file sent twice at once).
pub async fn start_upload(
    db: &impl ConnectionTrait,
    upload: &NewUpload,
    resume: bool,
) -> Result<Option<UploadRecord>, StoreError> {
    let row = uploads::ActiveModel {
        id: Set(upload.id.clone()),
        sha256: Set(upload.sha256.clone()),
        filename: Set(upload.filename.clone()),
        bytes: Set(to_i64(upload.bytes)?),
        rows: Set(to_i64(upload.rows)?),
        trials: Set(to_i64(upload.trials)?),
        models: Set(json(&upload.models)?),
        model_count: Set(to_i64(upload.model_count)?),
        topic: Set(upload.topic.clone()),
        status: Set(UploadStatus::Producing.as_str().to_owned()),
        reason: Set(None),
        rows_produced: Set(0),
        offsets: Set(serde_json::json!([])),
        received_at: Set(upload.received_at),
        validated_at: Set(upload.validated_at),
        produced_at: Set(None),
        applied_at: Set(None),
        updated_at: Set(Utc::now()),
    };
    let written = if resume {
        // Only a failed row is taken over: two re-sends at once, or a re-send
        // racing a live upload, find it changed and lose.
        Entity::update_many()
            .set(row)
            .filter(Column::Id.eq(&upload.id))
            .filter(Column::Status.eq(UploadStatus::Failed.as_str()))
            .exec(db)
            .await?
            .rows_affected
    } else {
        Entity::insert(row)
            .on_conflict(OnConflict::column(Column::Id).do_nothing().to_owned())
            .exec_without_returning(db)
            .await?
    };
    if written == 0 {
        return Ok(None);
    }
    get_upload(db, &upload.id).await
}

/// An update of upload `id` while it is `producing`, stamped `now`.
fn while_producing(id: &str, now: DateTime<Utc>) -> UpdateMany<Entity> {
    Entity::update_many()
        .col_expr(Column::UpdatedAt, Expr::value(now))
        .filter(Column::Id.eq(id))
        .filter(Column::Status.eq(UploadStatus::Producing.as_str()))
}

/// Records how far producing got: rows acknowledged and their offsets.
pub async fn record_progress(
    db: &impl ConnectionTrait,
    id: &str,
    rows_produced: u64,
    offsets: &[UploadRange],
) -> Result<(), StoreError> {
    while_producing(id, Utc::now())
        .col_expr(Column::RowsProduced, Expr::value(to_i64(rows_produced)?))
        .col_expr(Column::Offsets, Expr::value(json(&offsets)?))
        .exec(db)
        .await?;
    Ok(())
}

/// Every record is acknowledged: status `produced`, with the final offsets.
pub async fn finish_upload(
    db: &impl ConnectionTrait,
    id: &str,
    rows_produced: u64,
    offsets: &[UploadRange],
) -> Result<(), StoreError> {
    let now = Utc::now();
    while_producing(id, now)
        .col_expr(Column::Status, Expr::value(UploadStatus::Produced.as_str()))
        .col_expr(Column::RowsProduced, Expr::value(to_i64(rows_produced)?))
        .col_expr(Column::Offsets, Expr::value(json(&offsets)?))
        .col_expr(Column::ProducedAt, Expr::value(now))
        .exec(db)
        .await?;
    Ok(())
}

/// Producing stopped for `reason`: status `failed`.
pub async fn fail_upload(
    db: &impl ConnectionTrait,
    id: &str,
    reason: &str,
) -> Result<(), StoreError> {
    while_producing(id, Utc::now())
        .col_expr(Column::Status, Expr::value(UploadStatus::Failed.as_str()))
        .col_expr(Column::Reason, Expr::value(reason))
        .exec(db)
        .await?;
    Ok(())
}

/// At start-up: the uploads a previous run of the producer left `producing`
/// stopped with it. Marks them `failed` with `reason`; returns how many.
/// (One producer process per database writes uploads; see the README.)
pub async fn fail_interrupted_uploads(
    db: &impl ConnectionTrait,
    reason: &str,
) -> Result<u64, StoreError> {
    let result = Entity::update_many()
        .col_expr(Column::Status, Expr::value(UploadStatus::Failed.as_str()))
        .col_expr(Column::Reason, Expr::value(reason))
        .col_expr(Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(Column::Status.eq(UploadStatus::Producing.as_str()))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}

/// One upload, or `None`.
pub async fn get_upload(
    db: &impl ConnectionTrait,
    id: &str,
) -> Result<Option<UploadRecord>, StoreError> {
    Entity::find_by_id(id)
        .one(db)
        .await?
        .map(record)
        .transpose()
}

/// Up to `limit` uploads, newest first.
pub async fn list_uploads(
    db: &impl ConnectionTrait,
    limit: u64,
) -> Result<Vec<UploadRecord>, StoreError> {
    let rows = Entity::find()
        .order_by_desc(Column::ValidatedAt)
        .order_by_desc(Column::Id)
        .limit(limit)
        .all(db)
        .await?;
    rows.into_iter().map(record).collect()
}

/// Moves a `produced` upload to `applied` when the stored offsets of
/// `group_id` are past its last record in every partition it touched, and
/// returns the upload as it stands then. The consumer writes those offsets
/// in the transaction that applies the records, so once they are past, every
/// record of the upload is counted (or was a duplicate, skipped).
pub async fn refresh_applied(
    db: &impl ConnectionTrait,
    mut upload: UploadRecord,
    group_id: &str,
) -> Result<UploadRecord, StoreError> {
    if upload.status != UploadStatus::Produced {
        return Ok(upload);
    }
    for range in &upload.offsets {
        let next = load_offset(db, group_id, &upload.file.topic, range.partition).await?;
        if next.is_none_or(|next| next <= range.last_offset) {
            return Ok(upload);
        }
    }
    let now = Utc::now();
    Entity::update_many()
        .col_expr(Column::Status, Expr::value(UploadStatus::Applied.as_str()))
        .col_expr(Column::AppliedAt, Expr::value(now))
        .col_expr(Column::UpdatedAt, Expr::value(now))
        .filter(Column::Id.eq(&upload.file.id))
        .filter(Column::Status.eq(UploadStatus::Produced.as_str()))
        .exec(db)
        .await?;
    upload.status = UploadStatus::Applied;
    upload.applied_at = Some(now);
    upload.updated_at = now;
    Ok(upload)
}
