//! `experiments`: an experiment's arms, control and decision settings.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "experiments")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// The arms' model ids, in order (a JSON array of strings).
    pub arms: Json,
    pub control: String,
    pub threshold_of_caring: f64,
    pub rope: f64,
    /// One weight an arm, or null.
    pub planned_weights: Option<Json>,
    /// The bandit's settings (`min_trials`, `floor`, `top_two`).
    pub bandit: Json,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
