//! The Postgres store (sea-orm): entities, migrations run at start-up, and the
//! queries the services share. DESIGN.md 5 describes the tables.

pub mod entities;
pub mod migration;
pub mod read;
pub mod write;

use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr, TransactionTrait};
use sea_orm_migration::MigratorTrait;
use secrecy::ExposeSecret;

use crate::settings::DatabaseSettings;

/// A store failure. `Unavailable` is transient (retry or answer 503);
/// `Conflict` means another writer moved first.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database unavailable: {0}")]
    Unavailable(#[source] DbErr),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
}

impl From<DbErr> for StoreError {
    fn from(err: DbErr) -> Self {
        StoreError::Unavailable(err)
    }
}

/// Opens the connection pool.
pub async fn connect(settings: &DatabaseSettings) -> Result<DatabaseConnection, StoreError> {
    let mut options = ConnectOptions::new(settings.url.expose_secret().to_owned());
    options
        .max_connections(settings.max_connections)
        .connect_timeout(settings.connect_timeout)
        .acquire_timeout(settings.connect_timeout)
        .sqlx_logging(false)
        // No ping each time a connection leaves the pool: the consumer's
        // batch would wait for it, and a dead connection fails the
        // statement anyway, which the callers retry.
        .test_before_acquire(false);
    Ok(Database::connect(options).await?)
}

/// Runs the pending migrations. The consumer and the model service both call
/// it at start-up; a transaction-scoped advisory lock makes the one that comes
/// second wait and then find nothing to do, and Postgres DDL is transactional,
/// so a crash half-way leaves no half-made schema.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), StoreError> {
    /// An arbitrary key for `pg_advisory_xact_lock`, the same in every process.
    const MIGRATION_LOCK: i64 = 0x6261_7965_735f_6d69; // "bayes_mi"
    let txn = db.begin().await?;
    sea_orm::ConnectionTrait::execute(
        &txn,
        sea_orm::Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            "SELECT pg_advisory_xact_lock($1)",
            [MIGRATION_LOCK.into()],
        ),
    )
    .await?;
    migration::Migrator::up(&txn, None).await?;
    txn.commit().await?;
    Ok(())
}
