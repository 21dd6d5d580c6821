//! `api_keys`: creating, listing and revoking the HTTP API keys, reading the
//! ones in force for the services' memory, and writing their last use.
//!
//! Every change is announced on the keys' notify channel in its own
//! transaction (delivered on commit), so every replica reloads at once.
//! Tokens never reach this module: only their SHA-256.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Alias, Expr, Func, Query};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, Statement, TransactionTrait,
};

use super::entities::api_keys;
use super::StoreError;

/// The key of the advisory lock creating keys takes, so that the count of
/// keys in force and the name's uniqueness are checked against every other
/// creation.
const KEYS_LOCK: i64 = 0x6261_7965_735f_6b79; // "bayes_ky"

/// A key as stored: everything but the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    pub id: String,
    pub name: String,
    /// Space-separated scopes.
    pub scopes: String,
    /// Hex SHA-256 of the token.
    pub token_sha256: String,
    pub rate_limit: Option<u32>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A key to store.
#[derive(Debug, Clone, Copy)]
pub struct NewKey<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub scopes: &'a str,
    pub token_sha256: &'a str,
    pub rate_limit: Option<u32>,
}

/// What [`create_key`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyCreated {
    Created(KeyRecord),
    /// A key in force already has this name.
    NameTaken,
    /// `max_keys` keys are in force already.
    TooMany,
}

/// Stores a new key unless its name is taken or `max_keys` are in force.
pub async fn create_key(
    db: &DatabaseConnection,
    key: &NewKey<'_>,
    max_keys: usize,
    notify_channel: &str,
) -> Result<KeyCreated, StoreError> {
    let txn = db.begin().await?;
    let lock = Query::select()
        .expr(Func::cust(Alias::new("pg_advisory_xact_lock")).arg(KEYS_LOCK))
        .to_owned();
    txn.execute(txn.get_database_backend().build(&lock)).await?;
    let in_force = || api_keys::Entity::find().filter(api_keys::Column::RevokedAt.is_null());
    if in_force()
        .filter(api_keys::Column::Name.eq(key.name))
        .count(&txn)
        .await?
        > 0
    {
        return Ok(KeyCreated::NameTaken);
    }
    if in_force().count(&txn).await? >= max_keys as u64 {
        return Ok(KeyCreated::TooMany);
    }
    let rate_limit = key
        .rate_limit
        .map(|r| i32::try_from(r).map_err(|e| StoreError::Corrupt(e.to_string())))
        .transpose()?;
    api_keys::Entity::insert(api_keys::ActiveModel {
        id: Set(key.id.to_owned()),
        name: Set(key.name.to_owned()),
        scopes: Set(key.scopes.to_owned()),
        token_sha256: Set(key.token_sha256.to_owned()),
        rate_limit: Set(rate_limit),
        ..Default::default()
    })
    .exec_without_returning(&txn)
    .await?;
    notify(&txn, notify_channel, key.id).await?;
    let row = api_keys::Entity::find_by_id(key.id)
        .one(&txn)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("key {} vanished while created", key.id)))?;
    txn.commit().await?;
    Ok(KeyCreated::Created(record(row)?))
}

/// The keys in force (not revoked), by name.
pub async fn keys_in_force(db: &impl ConnectionTrait) -> Result<Vec<KeyRecord>, StoreError> {
    api_keys::Entity::find()
        .filter(api_keys::Column::RevokedAt.is_null())
        .order_by_asc(api_keys::Column::Name)
        .all(db)
        .await?
        .into_iter()
        .map(record)
        .collect()
}

/// Revokes the key `id`; `None` when no key in force has that id.
pub async fn revoke_key(
    db: &DatabaseConnection,
    id: &str,
    notify_channel: &str,
) -> Result<Option<KeyRecord>, StoreError> {
    let txn = db.begin().await?;
    let revoked = api_keys::Entity::update_many()
        .col_expr(api_keys::Column::RevokedAt, Expr::cust("now()"))
        .filter(api_keys::Column::Id.eq(id))
        .filter(api_keys::Column::RevokedAt.is_null())
        .exec(&txn)
        .await?;
    if revoked.rows_affected == 0 {
        txn.rollback().await?;
        return Ok(None);
    }
    notify(&txn, notify_channel, id).await?;
    let row = api_keys::Entity::find_by_id(id)
        .one(&txn)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("key {id} vanished while revoked")))?;
    txn.commit().await?;
    Ok(Some(record(row)?))
}

/// Writes when keys were last used (key id, time), in one statement; a
/// later time already stored is kept. Not announced: last use changes
/// nothing a service holds.
pub async fn record_key_use(
    db: &impl ConnectionTrait,
    uses: &[(String, DateTime<Utc>)],
) -> Result<(), StoreError> {
    if uses.is_empty() {
        return Ok(());
    }
    let uses: Vec<serde_json::Value> = uses
        .iter()
        .map(|(id, at)| serde_json::json!({"id": id, "at": at.to_rfc3339()}))
        .collect();
    db.execute(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "UPDATE api_keys k SET last_used_at = greatest(k.last_used_at, u.at)
         FROM jsonb_to_recordset($1::jsonb) AS u(id text, at timestamptz)
         WHERE k.id = u.id",
        [serde_json::Value::Array(uses).into()],
    ))
    .await?;
    Ok(())
}

/// Sends a key's id on `channel`; delivered only if the transaction commits.
async fn notify(txn: &impl ConnectionTrait, channel: &str, id: &str) -> Result<(), StoreError> {
    txn.execute(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT pg_notify($1, $2)",
        [channel.into(), id.into()],
    ))
    .await?;
    Ok(())
}

fn record(row: api_keys::Model) -> Result<KeyRecord, StoreError> {
    let rate_limit = row
        .rate_limit
        .map(|r| {
            u32::try_from(r)
                .map_err(|_| StoreError::Corrupt(format!("rate limit {r} of key {}", row.id)))
        })
        .transpose()?;
    Ok(KeyRecord {
        id: row.id,
        name: row.name,
        scopes: row.scopes,
        token_sha256: row.token_sha256,
        rate_limit,
        created_at: row.created_at,
        last_used_at: row.last_used_at,
        revoked_at: row.revoked_at,
    })
}
