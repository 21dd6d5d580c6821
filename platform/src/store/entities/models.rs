//! `models`: a model's prior and grid size.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "models")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// The key of the model's prior in `priors`. (The table's `prior`
    /// column is only where the consumer's batch statement writes a new
    /// model's default prior; a trigger moves it to `priors`.)
    pub prior_sha256: String,
    pub grid_size: i32,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_one = "super::model_states::Entity")]
    State,
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

impl Related<super::model_states::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::State.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
