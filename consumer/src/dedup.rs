//! Forgetting the ids of applied observations once the deduplication
//! retention (`consumer.dedup_retention`) has passed, so `applied_ids` stays
//! bounded. Every consumer of the group does it; the deletes are idempotent.

use std::time::Duration;

use platform::store::purge_applied_ids;
use std::sync::Arc;

use sea_orm::DatabaseConnection;

use crate::control::Control;

/// The longest pause between two purges.
const MAX_INTERVAL: Duration = Duration::from_secs(3600);

/// Purges at start and then every hour (or every quarter of the retention,
/// when shorter) until the consumer stops. A failed purge is retried at the
/// next tick: the ids only stay a little longer.
pub(crate) async fn forget_old_ids(
    db: DatabaseConnection,
    control: Arc<Control>,
    retention: Duration,
) {
    let every = (retention / 4).clamp(Duration::from_secs(1), MAX_INTERVAL);
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = control.stopping() => return,
            _ = ticks.tick() => {}
        }
        match purge_applied_ids(&db, retention).await {
            Ok(0) => {}
            Ok(forgotten) => tracing::info!(
                forgotten,
                ?retention,
                "forgot the ids of observations applied before the deduplication retention"
            ),
            Err(error) => {
                tracing::warn!(%error, "cannot purge old observation ids; retrying later")
            }
        }
    }
}
