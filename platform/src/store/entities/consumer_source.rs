//! `consumer_source`: the one consumer group and topic the stored state was
//! built from (a single row).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "consumer_source")]
pub struct Model {
    /// Always `true`: the table holds one row.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: bool,
    pub group_id: String,
    pub topic: String,
    pub claimed_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
