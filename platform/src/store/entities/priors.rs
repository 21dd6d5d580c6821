//! `priors`: every distinct prior once, keyed by the SHA-256 of its
//! canonical JSON (see the `m0009_priors` migration).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "priors")]
pub struct Model {
    /// Hex SHA-256 of the prior's `jsonb` text, computed by Postgres.
    #[sea_orm(primary_key, auto_increment = false)]
    pub sha256: String,
    /// The serde form of [`domain::Prior`].
    pub prior: Json,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
