//! `applied_ids`: the ids of the observations applied, with what each
//! carried, kept for the deduplication retention, so a client's retry is
//! counted once and the same id with other content is told apart.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "applied_ids")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Empty when not known (applied before contents were kept).
    pub model_id: String,
    /// `None` when not known.
    pub successes: Option<i64>,
    pub failures: Option<i64>,
    pub source_partition: i32,
    pub source_offset: i64,
    pub applied_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
