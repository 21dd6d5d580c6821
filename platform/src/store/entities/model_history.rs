//! `model_history`: cumulative counts after every update, for time travel and evolution plots.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "model_history")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub model_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub version: i64,
    pub successes: i64,
    pub failures: i64,
    pub delta_successes: i64,
    pub delta_failures: i64,
    pub source_partition: i32,
    pub source_offset: i64,
    pub applied_at: DateTimeUtc,
}

/// Read by model id alone, never joined.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
