//! `api_keys`: the HTTP API keys, each kept as the SHA-256 of its token
//! (see the `m0010_api_keys` migration and `platform::http::auth`).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "api_keys")]
pub struct Model {
    /// Public: the key's part of every token, so its row is found at once.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Unique among the keys that are not revoked; the per-key metric's label.
    pub name: String,
    /// Space-separated, as OAuth writes scopes: `ingest`, `read`, `admin`.
    pub scopes: String,
    /// Hex SHA-256 of the whole token.
    pub token_sha256: String,
    /// Requests a second (and the burst), or none.
    pub rate_limit: Option<i32>,
    pub created_at: DateTimeUtc,
    pub last_used_at: Option<DateTimeUtc>,
    pub revoked_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
