//! With `models.auto_create` off, the models the producer knows exist, so
//! that it can answer 422 `unknown_model` for one that does not, without a
//! database round trip for the ones that do.
//!
//! The ids are loaded once Postgres answers, then kept fresh: every commit
//! that changes models (the consumer's batches, `PUT` and `DELETE
//! /models/{id}`) names them on `database.notify_channel`, and the producer
//! asks Postgres which of those exist; a full reload runs every
//! `models.known_models_refresh` and whenever notifications may have been
//! missed. An id not in memory is asked of Postgres before a 422 (a model
//! created a moment ago, its notification on the way). When the producer
//! cannot tell (the ids not loaded yet, Postgres not answering), it
//! accepts: the consumer decides, and dead-letters the records of a model
//! that does not exist.

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use platform::listen::{follow, Heard};
use platform::store::{all_model_ids, existing_models, StoreError};
use sea_orm::DatabaseConnection;
use tokio::time::{interval, MissedTickBehavior};

/// How long a request waits for Postgres to say whether a model it does
/// not know exists; past it, the request is accepted (the consumer decides).
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(1);

/// The model ids known to exist.
#[derive(Debug, Default)]
pub struct KnownModels {
    ids: RwLock<HashSet<String>>,
    loaded: AtomicBool,
}

impl KnownModels {
    /// Whether `model` exists, as far as the producer can tell: `Some(true)`
    /// or `Some(false)` (asked of `db` when not in memory), `None` when it
    /// cannot tell.
    pub async fn exists(&self, model: &str, db: Option<&DatabaseConnection>) -> Option<bool> {
        if self.read().contains(model) {
            return Some(true);
        }
        if !self.loaded.load(Ordering::Acquire) {
            return None;
        }
        let db = db?;
        let found = tokio::time::timeout(LOOKUP_TIMEOUT, existing_models(db, &[model]))
            .await
            .ok()?
            .ok()?;
        let exists = found.contains(model);
        if exists {
            self.write().insert(model.to_owned());
        }
        Some(exists)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashSet<String>> {
        self.ids.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashSet<String>> {
        self.ids.write().unwrap_or_else(PoisonError::into_inner)
    }

    async fn reload(&self, db: &DatabaseConnection) -> Result<(), StoreError> {
        let ids = all_model_ids(db).await?;
        *self.write() = ids;
        self.loaded.store(true, Ordering::Release);
        Ok(())
    }

    /// Rechecks the models a notification named.
    async fn recheck(&self, db: &DatabaseConnection, named: &[&str]) -> Result<(), StoreError> {
        let found = existing_models(db, named).await?;
        let mut ids = self.write();
        for id in named {
            if found.contains(*id) {
                ids.insert((*id).to_owned());
            } else {
                ids.remove(*id);
            }
        }
        Ok(())
    }
}

/// Keeps `known` fresh until `shutdown` (see the module documentation).
pub async fn keep_fresh(
    known: Arc<KnownModels>,
    db: DatabaseConnection,
    channel: String,
    refresh: Duration,
    shutdown: impl Future<Output = ()>,
) {
    let mut heard = follow(db.get_postgres_connection_pool().clone(), channel);
    let mut tick = interval(refresh);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut listening = true;
    loop {
        let done = tokio::select! {
            () = shutdown.as_mut() => break,
            next = heard.recv(), if listening => match next {
                Some(Heard::Payload(payload)) if payload != "*" => {
                    let named: Vec<&str> = payload.split(',').filter(|id| !id.is_empty()).collect();
                    known.recheck(&db, &named).await
                }
                Some(_) => known.reload(&db).await,
                None => {
                    listening = false;
                    Ok(())
                }
            },
            _ = tick.tick() => known.reload(&db).await,
        };
        if let Err(error) = done {
            tracing::warn!(%error, "cannot refresh the known models; the consumer decides meanwhile");
        }
    }
}
