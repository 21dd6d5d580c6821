//! Keeping [`Current`] in sync: Postgres `LISTEN` on the notify channel,
//! each batch of notifications reloaded (the entries named, in one query a
//! kind) and then announced on the live feed; a reconciliation against the
//! database's stamps at start-up, whenever notifications may have been
//! lost, and every `audit_interval_seconds`; and [`caught_up`], the barrier
//! a write waits on before it answers.
//!
//! One task applies everything, in the order Postgres delivered it (commit
//! order), so an older reload never overwrites a newer one.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use domain::ModelId;
use platform::retry::{retry, Backoff, Verdict};
use platform::store::{self, Notice, PriorPool, StoreError};
use sea_orm::sqlx::postgres::{PgListener, PgPool};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};

use super::{Current, Sync};
use crate::error::ApiError;
use crate::state::AppState;
use crate::views::ModelEvent;

/// Counter: reconciliations with the database, labelled `reason`: `start`,
/// `reconnect` (the listener was lost), `everything` (a `*` payload),
/// `audit` (the periodic check).
const RESYNCS: &str = "model_service_current_resyncs_total";
/// Counter: entries a reconciliation found stale (a notification that never
/// arrived), labelled `reason` as above.
const REPAIRED: &str = "model_service_current_repaired_total";
/// Gauge: how long the last reconciliation took.
const RESYNC_SECONDS: &str = "model_service_current_resync_seconds";
/// Histogram: from a model's commit (its `updated_at`) to the change being
/// applied here: the staleness of a read.
const LAG_SECONDS: &str = "model_service_current_lag_seconds";

/// The first pause before listening or reloading again; doubles up to [`MAX_BACKOFF`].
const INITIAL_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Ids reloaded a query.
const CHUNK: usize = 1000;
/// How long a write waits for its own change to be applied here.
const CATCH_UP: Duration = Duration::from_secs(5);

/// Why a reconciliation runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Start,
    Reconnect,
    Everything,
    Audit,
}

impl Reason {
    fn as_str(self) -> &'static str {
        match self {
            Reason::Start => "start",
            Reason::Reconnect => "reconnect",
            Reason::Everything => "everything",
            Reason::Audit => "audit",
        }
    }
}

/// The listening connection and what the loop keeps between batches.
#[derive(Debug)]
pub struct Listener {
    notifications: PgListener,
    priors: PriorPool,
}

impl Listener {
    /// Starts listening on `channel`. Returns once `LISTEN` succeeded, so
    /// anything committed after this returns is notified to the loop.
    pub async fn connect(pool: &PgPool, channel: &str) -> Result<Self, sea_orm::sqlx::Error> {
        let mut notifications = PgListener::connect_with(pool).await?;
        notifications.listen(channel).await?;
        Ok(Self {
            notifications,
            priors: PriorPool::default(),
        })
    }

    /// Loads the memory (after `LISTEN`, so nothing committed in between
    /// is missed).
    pub async fn load(
        &mut self,
        db: &DatabaseConnection,
        current: &Current,
    ) -> Result<(), StoreError> {
        reconcile(db, current, &mut self.priors, Reason::Start).await?;
        Ok(())
    }
}

/// This process's barrier tokens: `<instance>-<n>`.
#[derive(Debug)]
pub struct Barriers {
    instance: String,
    next: AtomicU64,
}

impl Default for Barriers {
    fn default() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        Self {
            instance: format!("{:x}.{nanos:x}", std::process::id()),
            next: AtomicU64::new(1),
        }
    }
}

impl Barriers {
    /// The barrier number of a token of this process.
    fn mine(&self, token: &str) -> Option<u64> {
        let (instance, n) = token.rsplit_once('-')?;
        (instance == self.instance)
            .then(|| n.parse().ok())
            .flatten()
    }
}

/// Returns once everything committed before this call is applied here
/// (and on the live feed): it notifies a barrier and waits for the loop
/// to reach it. 503 when that takes longer than [`CATCH_UP`].
pub async fn caught_up(state: &AppState) -> Result<(), ApiError> {
    let barriers = state.barriers();
    let n = barriers.next.fetch_add(1, Ordering::Relaxed);
    let token = Notice::Sync(format!("{}-{n}", barriers.instance)).to_string();
    let mut seen = state.current().barrier.subscribe();
    state
        .db()
        .execute(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_notify($1, $2)",
            [state.notify_channel().into(), token.into()],
        ))
        .await
        .map_err(StoreError::from)?;
    let waited = tokio::time::timeout(CATCH_UP, seen.wait_for(|last| *last >= n))
        .await
        .map(|r| r.is_ok());
    match waited {
        Ok(true) => Ok(()),
        _ => Err(ApiError::NotInSync(format!(
            "a change was not applied within {CATCH_UP:?}"
        ))),
    }
}

/// Applies notifications until shutdown, reconnecting with a bounded
/// back-off whenever the connection fails, reconciling after every gap and
/// every `audit` interval.
pub async fn run(mut listener: Listener, pool: PgPool, state: AppState, audit: Duration) {
    let shutdown = state.shutdown_signal();
    tokio::pin!(shutdown);
    let channel = state.notify_channel().to_owned();
    let mut backoff = Backoff::new(INITIAL_BACKOFF, MAX_BACKOFF);
    let mut audits = tokio::time::interval_at(tokio::time::Instant::now() + audit, audit);
    audits.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let gap = tokio::select! {
            () = &mut shutdown => return,
            _ = audits.tick() => Some(Reason::Audit),
            next = listener.notifications.try_recv() => match next {
                Ok(Some(first)) => {
                    backoff.reset();
                    let mut notices = Notice::parse(first.payload());
                    // Apply what else has arrived in one go.
                    while let Some(more) = listener.notifications.next_buffered() {
                        notices.extend(Notice::parse(more.payload()));
                    }
                    match apply(&state, &mut listener.priors, notices).await {
                        Ok(gap) => gap,
                        Err(err) => {
                            lost(&state, format!("cannot reload what was notified: {err}"));
                            Some(Reason::Reconnect)
                        }
                    }
                }
                // The connection dropped and sqlx listened again on a new
                // one; whatever was notified in between is lost.
                Ok(None) => {
                    lost(&state, "the notification listener reconnected".into());
                    Some(Reason::Reconnect)
                }
                Err(err) => {
                    lost(&state, format!("lost the notification listener: {err}"));
                    if !backoff.sleep(&mut shutdown).await {
                        return;
                    }
                    let again = retry(
                        &mut backoff,
                        "cannot listen for model updates yet",
                        &mut shutdown,
                        || Listener::connect(&pool, &channel),
                        |_| Verdict::Transient,
                        || {},
                    )
                    .await;
                    let Ok(again) = again else { return };
                    tracing::info!(channel = %channel, "listening for model updates again");
                    listener.notifications = again.notifications;
                    Some(Reason::Reconnect)
                }
            },
        };
        if let Some(reason) = gap {
            if !resync(
                &state,
                &mut listener.priors,
                reason,
                &mut backoff,
                &mut shutdown,
            )
            .await
            {
                return;
            }
        }
    }
}

/// Marks the memory stale, and says so.
fn lost(state: &AppState, why: String) {
    tracing::error!(reason = %why, "reads answer 503 until the current state is reloaded");
    state.current().set_sync(Sync::Lost(why));
}

/// Reconciles until it succeeds (false: shutdown came first).
async fn resync(
    state: &AppState,
    priors: &mut PriorPool,
    reason: Reason,
    backoff: &mut Backoff,
    mut shutdown: impl Future<Output = ()> + Unpin,
) -> bool {
    loop {
        match reconcile(state.db(), state.current(), priors, reason).await {
            Ok(changed) => {
                backoff.reset();
                if reason != Reason::Audit || !changed.is_empty() {
                    state.publish(if reason == Reason::Audit {
                        ModelEvent {
                            models: changed,
                            all: false,
                        }
                    } else {
                        ModelEvent::everything()
                    });
                }
                return true;
            }
            Err(err) => {
                lost(state, format!("cannot reload the current state: {err}"));
                if !backoff.sleep(&mut shutdown).await {
                    return false;
                }
            }
        }
    }
}

/// Reloads what a batch of notifications names, then announces it. Some
/// reason when a reconciliation is needed instead (`*`).
async fn apply(
    state: &AppState,
    priors: &mut PriorPool,
    notices: Vec<Notice>,
) -> Result<Option<Reason>, StoreError> {
    let current = state.current();
    let (mut models, mut experiments, mut assigned) = (Vec::new(), Vec::new(), Vec::new());
    let mut barrier = None;
    for notice in notices {
        match notice {
            Notice::Everything => return Ok(Some(Reason::Everything)),
            Notice::Model(id) => models.push(id),
            Notice::Experiment(id) => experiments.push(id),
            Notice::Assigned(id) => assigned.push(id),
            Notice::Sync(token) => barrier = barrier.max(state.barriers().mine(&token)),
        }
    }
    for ids in [&mut models, &mut experiments, &mut assigned] {
        ids.sort_unstable();
        ids.dedup();
    }
    let now = Utc::now();
    for chunk in models.chunks(CHUNK) {
        let found = store::get_models(state.db(), chunk, priors).await?;
        let held = current.versions(chunk);
        for (record, held) in found.iter().zip(held) {
            // Only a new version has a commit to measure the lag from.
            if let Some(record) = record.as_ref().filter(|r| held < Some(r.state.version)) {
                let lag = (now - record.updated_at).to_std().unwrap_or_default();
                metrics::histogram!(LAG_SECONDS).record(lag.as_secs_f64());
            }
        }
        current.put_models(chunk.iter().cloned().zip(found).collect());
    }
    if !experiments.is_empty() {
        reload_experiments(state.db(), current, &experiments).await?;
    }
    // Units of an experiment reloaded above are fresh already.
    assigned.retain(|id| experiments.binary_search(id).is_err());
    if !assigned.is_empty() {
        let units = store::arm_units(state.db(), Some(&assigned)).await?;
        current.put_units(&assigned, units);
    }
    if let Some(n) = barrier {
        current.barrier.send_if_modified(|last| {
            let newer = n > *last;
            *last = (*last).max(n);
            newer
        });
    }
    if !models.is_empty() {
        state.publish(ModelEvent { models, all: false });
    }
    Ok(None)
}

/// Reloads the experiments named, and their units.
async fn reload_experiments(
    db: &DatabaseConnection,
    current: &Current,
    ids: &[ModelId],
) -> Result<usize, StoreError> {
    let mut found: HashMap<ModelId, _> = HashMap::new();
    let mut units = Vec::new();
    for chunk in ids.chunks(CHUNK) {
        found.extend(
            store::get_experiments(db, chunk)
                .await?
                .into_iter()
                .map(|r| (r.id.clone(), r)),
        );
        units.extend(store::arm_units(db, Some(chunk)).await?);
    }
    let changed = current.put_experiments(
        ids.iter()
            .map(|id| (id.clone(), found.remove(id)))
            .collect(),
    );
    current.put_units(ids, units);
    Ok(changed)
}

/// Compares every entry's stamp with the database and reloads those that
/// differ; the ids of the models that changed.
async fn reconcile(
    db: &DatabaseConnection,
    current: &Current,
    priors: &mut PriorPool,
    reason: Reason,
) -> Result<Vec<ModelId>, StoreError> {
    let started = Instant::now();
    let stamps = store::model_stamps(db).await?;
    let mut mine = current.model_stamps();
    let mut stale: Vec<ModelId> = Vec::new();
    for stamp in stamps {
        if mine.remove(&stamp.id) != Some((stamp.version, stamp.configured_at)) {
            stale.push(stamp.id);
        }
    }
    // What is left in memory is gone from the database.
    let gone: Vec<ModelId> = mine.into_keys().collect();
    let mut changed = Vec::new();
    for chunk in stale.chunks(CHUNK) {
        let found = store::get_models(db, chunk, priors).await?;
        changed.extend(current.put_models(chunk.iter().cloned().zip(found).collect()));
    }
    changed.extend(current.put_models(gone.into_iter().map(|id| (id, None)).collect()));

    let experiment_stamps = store::experiment_stamps(db).await?;
    let mut mine = current.experiment_stamps();
    let present: HashSet<ModelId> = experiment_stamps.iter().map(|s| s.id.clone()).collect();
    let mut stale_experiments: Vec<ModelId> = experiment_stamps
        .into_iter()
        .filter(|s| mine.remove(&s.id) != Some((s.created_at, s.updated_at)))
        .map(|s| s.id)
        .collect();
    stale_experiments.extend(mine.into_keys().filter(|id| !present.contains(id)));
    let experiments_changed = reload_experiments(db, current, &stale_experiments).await?;
    // Units change without a stamp: read them all (a row an arm).
    let units = store::arm_units(db, None).await?;
    current.replace_units(units);
    priors.prune();

    let repaired = changed.len() + experiments_changed;
    metrics::counter!(RESYNCS, "reason" => reason.as_str()).increment(1);
    metrics::gauge!(RESYNC_SECONDS).set(started.elapsed().as_secs_f64());
    if reason != Reason::Start && repaired > 0 {
        metrics::counter!(REPAIRED, "reason" => reason.as_str()).increment(repaired as u64);
        tracing::warn!(
            reason = reason.as_str(),
            repaired,
            "reloaded entries whose notification never arrived"
        );
    }
    tracing::info!(
        reason = reason.as_str(),
        models = current.model_count(),
        seconds = started.elapsed().as_secs_f64(),
        "current state reconciled with the database"
    );
    current.set_sync(Sync::InSync);
    Ok(changed)
}
