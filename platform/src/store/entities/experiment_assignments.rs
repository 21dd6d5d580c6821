//! `experiment_assignments`: the arm each unit was given, once and for good.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "experiment_assignments")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub experiment_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub unit: String,
    pub arm: String,
    pub assigned_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
