//! `model_configs`: every prior and grid size a model has had, with the
//! version from which each holds, for time travel.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "model_configs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub model_id: String,
    /// Commit order within the model (written under the model's lock).
    #[sea_orm(primary_key)]
    pub seq: i64,
    /// The model's version when this configuration was set.
    pub from_version: i64,
    /// The key of the prior in `priors`.
    pub prior_sha256: String,
    pub grid_size: i32,
    pub configured_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::priors::Entity",
        from = "Column::PriorSha256",
        to = "super::priors::Column::Sha256"
    )]
    Prior,
}

impl Related<super::priors::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Prior.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
