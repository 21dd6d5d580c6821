//! `uploads`: one accepted CSV upload, its figures, progress and offsets.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "uploads")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub sha256: String,
    pub filename: Option<String>,
    pub bytes: i64,
    pub rows: i64,
    pub trials: i64,
    /// A JSON array of model ids (at most `MAX_LISTED_MODELS`).
    pub models: Json,
    pub model_count: i64,
    pub topic: String,
    pub status: String,
    pub reason: Option<String>,
    pub rows_produced: i64,
    /// A JSON array of `{partition, first_offset, last_offset, records}`.
    pub offsets: Json,
    pub received_at: DateTimeUtc,
    pub validated_at: DateTimeUtc,
    pub produced_at: Option<DateTimeUtc>,
    pub applied_at: Option<DateTimeUtc>,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
