//! Keeping a service's [`KeyRing`] fresh: the keys in force are loaded at
//! start, again whenever `auth.notify_channel` announces a change (a key
//! created or revoked, by any replica: in effect within milliseconds of the
//! commit), again every `auth.reload_interval` (the bound when a
//! notification is lost), and the keys' last uses are written every
//! `auth.last_used_interval` and at shutdown.
//!
//! While Postgres does not answer, the keys last loaded stay in force: a
//! revocation cannot reach a service that cannot read it. A reload failing
//! for longer than three intervals is an error-level line, and the gauge
//! `http_keys_loaded_timestamp_seconds` says since when the keys are stale.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use sea_orm::DatabaseConnection;
use tokio::time::{interval, Instant, MissedTickBehavior};

use super::KeyRing;
use crate::listen::{follow, Heard};
use crate::settings::AuthSettings;
use crate::store::{keys_in_force, record_key_use};

/// How long a write of the last uses may take at shutdown.
const FINAL_WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// Runs until `shutdown`, then writes the last uses once more.
pub async fn keep_fresh(
    ring: Arc<KeyRing>,
    db: DatabaseConnection,
    settings: AuthSettings,
    shutdown: impl Future<Output = ()>,
) {
    let mut heard = follow(
        db.get_postgres_connection_pool().clone(),
        settings.notify_channel.clone(),
    );
    let mut reload = interval(settings.reload_interval);
    reload.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut write = interval(settings.last_used_interval);
    write.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut health = Health::new(settings.reload_interval);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut listening = true;
    loop {
        tokio::select! {
            () = shutdown.as_mut() => break,
            next = heard.recv(), if listening => match next {
                // Whatever was announced, and however much: one reload.
                Some(Heard::Gap | Heard::Payload(_)) => {
                    while heard.try_recv().is_some() {}
                    load(&ring, &db, &mut health).await;
                }
                None => listening = false,
            },
            _ = reload.tick() => load(&ring, &db, &mut health).await,
            _ = write.tick() => write_uses(&ring, &db).await,
        }
    }
    let _ = tokio::time::timeout(FINAL_WRITE_TIMEOUT, write_uses(&ring, &db)).await;
}

/// Since when reloading fails, and whether that was said at error level.
struct Health {
    reload_interval: Duration,
    failing_since: Option<Instant>,
    reported: bool,
}

impl Health {
    fn new(reload_interval: Duration) -> Self {
        Self {
            reload_interval,
            failing_since: None,
            reported: false,
        }
    }
}

async fn load(ring: &KeyRing, db: &DatabaseConnection, health: &mut Health) {
    match keys_in_force(db).await {
        Ok(records) => {
            ring.replace(&records);
            if health.reported {
                tracing::info!(keys = records.len(), "the API keys are loaded again");
            }
            health.failing_since = None;
            health.reported = false;
        }
        Err(error) => {
            let since = *health.failing_since.get_or_insert_with(Instant::now);
            let stale = since.elapsed();
            if !health.reported && stale > 3 * health.reload_interval {
                health.reported = true;
                tracing::error!(%error, ?stale, "cannot reload the API keys: the keys loaded last stay in force, and revocations wait");
            } else {
                tracing::warn!(%error, "cannot reload the API keys; retrying");
            }
        }
    }
}

async fn write_uses(ring: &KeyRing, db: &DatabaseConnection) {
    let uses = ring.unwritten_uses();
    if uses.is_empty() {
        return;
    }
    match record_key_use(db, &uses).await {
        Ok(()) => ring.written(&uses),
        // Kept in memory: the next write carries them.
        Err(error) => tracing::warn!(%error, "cannot write the API keys' last use; retrying"),
    }
}
