//! The Postgres store (sea-orm): the connection pool, the migrations run at
//! start-up, the entities, and the queries the services share, one module a
//! table or use. `migration` holds the schema.
//!
//! Every query is built with sea-orm over the entities except the consumer's
//! batch write (`batch`), which must be one SQL statement. Every database
//! error becomes a [`StoreError`] classified once, in `error`.

mod api_keys;
mod batch;
mod convert;
mod dedup;
pub mod entities;
mod error;
mod experiments;
mod history;
mod lifecycle;
pub mod migration;
mod models;
mod notice;
mod offsets;
mod stamps;
mod uploads;

pub use api_keys::{
    create_key, keys_in_force, record_key_use, revoke_key, KeyCreated, KeyRecord, NewKey,
};
pub use batch::{
    apply_batch, try_batch, Applied, BatchApplied, BatchWrite, IdentifiedDelta, ModelDelta,
};
pub use dedup::{conflicting_ids, purge_applied_ids, IdConflict};
pub use error::StoreError;
pub use experiments::{
    arm_units, assign_units, assignment_counts, get_experiment, get_experiments, get_models,
    list_experiments, merged_history, put_experiment, ArmUnits, Assignment, BanditConfig,
    ExperimentRecord, ExperimentSpec, MergedPoint, NewAssignment, Points,
};
pub use history::{history_at, history_page, history_sample, history_version, HistoryRecord};
pub use lifecycle::{all_model_ids, delete_experiment, delete_model, existing_models, Deleted};
pub use models::{
    config_at_time, config_at_version, configure_model, get_model, list_models, ChangeLimit,
    ConfigRecord, Configured, ModelConfig, ModelRecord, PriorPool,
};
pub use notice::Notice;
pub use offsets::{claim_source, load_offset, move_offset, Source};
pub use stamps::{experiment_stamps, model_stamps, ExperimentStamp, ModelStamp};
pub use uploads::{
    fail_interrupted_uploads, fail_upload, finish_upload, get_upload, latest_upload_of,
    list_uploads, record_progress, refresh_applied, start_upload, NewUpload, UploadRange,
    UploadRecord, UploadStatus,
};

use sea_orm::sea_query::{Alias, Func, Query};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, TransactionTrait};
use sea_orm_migration::MigratorTrait;
use secrecy::ExposeSecret;

use crate::settings::DatabaseSettings;

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

/// Checks that the database answers.
pub async fn ping(db: &DatabaseConnection) -> Result<(), StoreError> {
    Ok(db.ping().await?)
}

/// Runs the pending migrations. The consumer and the model service both call
/// it at start-up; a transaction-scoped advisory lock makes the one that comes
/// second wait and then find nothing to do, and Postgres DDL is transactional,
/// so a crash half-way leaves no half-made schema.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), StoreError> {
    /// An arbitrary key for `pg_advisory_xact_lock`, the same in every process.
    const MIGRATION_LOCK: i64 = 0x6261_7965_735f_6d69; // "bayes_mi"
    let txn = db.begin().await?;
    let lock = Query::select()
        .expr(Func::cust(Alias::new("pg_advisory_xact_lock")).arg(MIGRATION_LOCK))
        .to_owned();
    txn.execute(txn.get_database_backend().build(&lock)).await?;
    migration::Migrator::up(&txn, None).await?;
    txn.commit().await?;
    Ok(())
}
