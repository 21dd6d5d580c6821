//! The current state in memory: every model with its counts and
//! configuration, every experiment, and how many units each of its arms
//! holds. Current-state reads are answered from here, without a database
//! round trip; time travel and windows still read Postgres.
//!
//! **Consistency rule.** An answer reflects every commit whose notification
//! this process has received and applied, and the live feed (`/events`)
//! announces a change only once it is applied. So a client that saw an
//! event, or that wrote through this process (writes answer once the
//! process has applied them), reads it back here. Between a commit and its
//! notification's arrival, answers are older by that delay (measured by
//! `model_service_current_lag_seconds`).
//!
//! **Nothing stays stale.** The listener (see [`sync`]) reloads what each
//! notification names. When notifications may have been lost (the
//! listening connection dropped, or a payload said `*`), and every
//! `model_service.audit_interval_seconds` in any case, it compares every
//! entry's stamp with the database and reloads the ones that differ
//! (`model_service_current_resyncs_total{reason}`, and entries repaired in
//! `model_service_current_repaired_total`). While it cannot listen or
//! reload, reads answer 503 and `/readyz` says why: a stale answer is never
//! given without bound.

pub mod assign;
pub mod sync;

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use domain::ModelId;
use platform::store::{ArmUnits, ExperimentRecord, ModelRecord};
use tokio::sync::watch;

use crate::error::ApiError;

/// Gauge: 1 while the memory is in sync with the database, else 0.
const IN_SYNC: &str = "model_service_current_in_sync";
/// Gauges: entries held.
const MODELS: &str = "model_service_current_models";
const EXPERIMENTS: &str = "model_service_current_experiments";

/// Whether the memory can be trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sync {
    /// Loaded, and every notification since has been applied.
    InSync,
    /// Notifications may have been missed and not yet made up for: why.
    Lost(String),
}

/// The memory itself. Reads take a read lock for as long as it takes to
/// clone an `Arc`; the listener takes the write lock to apply a batch.
#[derive(Debug)]
pub struct Current {
    models: RwLock<BTreeMap<ModelId, Arc<ModelRecord>>>,
    experiments: RwLock<BTreeMap<ModelId, Arc<ExperimentRecord>>>,
    /// Experiment -> arm -> units assigned.
    units: RwLock<HashMap<ModelId, HashMap<ModelId, u64>>>,
    sync: watch::Sender<Sync>,
    /// The last of this process's barriers the listener has seen (see
    /// [`sync::caught_up`]).
    barrier: watch::Sender<u64>,
}

/// Locks that only fail when a writer panicked mid-update; the maps are
/// then still whole (each update is a single insert or remove), so go on.
fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Default for Current {
    fn default() -> Self {
        Self::new()
    }
}

impl Current {
    /// Empty and not in sync: nothing is answered until the first load.
    pub fn new() -> Self {
        Self {
            models: RwLock::default(),
            experiments: RwLock::default(),
            units: RwLock::default(),
            sync: watch::Sender::new(Sync::Lost("not loaded yet".into())),
            barrier: watch::Sender::new(0),
        }
    }

    /// Err (503) while the memory may be stale without bound.
    fn check(&self) -> Result<(), ApiError> {
        match &*self.sync.borrow() {
            Sync::InSync => Ok(()),
            Sync::Lost(why) => Err(ApiError::NotInSync(why.clone())),
        }
    }

    /// Whether the memory is in sync, for `/readyz`.
    pub fn status(&self) -> Sync {
        self.sync.borrow().clone()
    }

    fn set_sync(&self, sync: Sync) {
        metrics::gauge!(IN_SYNC).set(f64::from(u8::from(sync == Sync::InSync)));
        self.sync.send_replace(sync);
    }

    /// The model now, if there is one.
    pub fn model(&self, id: &ModelId) -> Result<Option<Arc<ModelRecord>>, ApiError> {
        self.check()?;
        Ok(read(&self.models).get(id).cloned())
    }

    /// Up to `limit` models in id order after `after`.
    pub fn models_after(
        &self,
        after: Option<&ModelId>,
        limit: usize,
    ) -> Result<Vec<Arc<ModelRecord>>, ApiError> {
        self.check()?;
        Ok(page(&read(&self.models), after, limit))
    }

    /// The experiment now, if there is one.
    pub fn experiment(&self, id: &ModelId) -> Result<Option<Arc<ExperimentRecord>>, ApiError> {
        self.check()?;
        Ok(read(&self.experiments).get(id).cloned())
    }

    /// Up to `limit` experiments in id order after `after`.
    pub fn experiments_after(
        &self,
        after: Option<&ModelId>,
        limit: usize,
    ) -> Result<Vec<Arc<ExperimentRecord>>, ApiError> {
        self.check()?;
        Ok(page(&read(&self.experiments), after, limit))
    }

    /// The models named `ids`, in that order (`None` where there is none).
    pub fn models(&self, ids: &[ModelId]) -> Result<Vec<Option<Arc<ModelRecord>>>, ApiError> {
        self.check()?;
        let models = read(&self.models);
        Ok(ids.iter().map(|id| models.get(id).cloned()).collect())
    }

    /// How many units each of `arms` holds in the experiment.
    pub fn units(&self, experiment: &ModelId, arms: &[ModelId]) -> Result<Vec<u64>, ApiError> {
        self.check()?;
        let units = read(&self.units);
        let of = units.get(experiment);
        Ok(arms
            .iter()
            .map(|arm| of.and_then(|u| u.get(arm)).copied().unwrap_or(0))
            .collect())
    }

    /// Puts or removes models (`None`: gone); the ids of the entries that
    /// changed.
    fn put_models(&self, found: Vec<(ModelId, Option<ModelRecord>)>) -> Vec<ModelId> {
        let mut models = write(&self.models);
        let mut changed = Vec::new();
        for (id, record) in found {
            match record {
                Some(record) => {
                    if models.get(&id).is_none_or(|r| **r != record) {
                        models.insert(id.clone(), Arc::new(record));
                        changed.push(id);
                    }
                }
                None => {
                    if models.remove(&id).is_some() {
                        changed.push(id);
                    }
                }
            }
        }
        metrics::gauge!(MODELS).set(models.len() as f64);
        changed
    }

    /// Puts or removes experiments (`None`: gone); how many changed.
    fn put_experiments(&self, found: Vec<(ModelId, Option<ExperimentRecord>)>) -> usize {
        let mut experiments = write(&self.experiments);
        let mut changed = 0;
        for (id, record) in found {
            match record {
                Some(record) => {
                    if experiments.get(&id).is_none_or(|r| **r != record) {
                        experiments.insert(id, Arc::new(record));
                        changed += 1;
                    }
                }
                None => changed += usize::from(experiments.remove(&id).is_some()),
            }
        }
        metrics::gauge!(EXPERIMENTS).set(experiments.len() as f64);
        changed
    }

    /// Replaces every experiment's units with what was read.
    fn replace_units(&self, units: Vec<ArmUnits>) {
        let mut all = write(&self.units);
        all.clear();
        for u in units {
            all.entry(u.experiment).or_default().insert(u.arm, u.units);
        }
    }

    /// The versions held of the models named `ids` (`None`: not held).
    fn versions(&self, ids: &[ModelId]) -> Vec<Option<u64>> {
        let models = read(&self.models);
        ids.iter()
            .map(|id| models.get(id).map(|m| m.state.version))
            .collect()
    }

    /// How many models are held.
    pub fn model_count(&self) -> usize {
        read(&self.models).len()
    }

    /// Replaces the units of `experiments` with what was read.
    fn put_units(&self, experiments: &[ModelId], units: Vec<ArmUnits>) {
        let mut all = write(&self.units);
        for id in experiments {
            all.remove(id);
        }
        for u in units {
            all.entry(u.experiment).or_default().insert(u.arm, u.units);
        }
    }

    /// Every model's id with what its stamp compares, for a reconciliation.
    fn model_stamps(&self) -> HashMap<ModelId, (u64, chrono::DateTime<chrono::Utc>)> {
        read(&self.models)
            .iter()
            .map(|(id, r)| (id.clone(), (r.state.version, r.configured_at)))
            .collect()
    }

    fn experiment_stamps(
        &self,
    ) -> HashMap<ModelId, (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>)> {
        read(&self.experiments)
            .iter()
            .map(|(id, r)| (id.clone(), (r.created_at, r.updated_at)))
            .collect()
    }

    /// The experiment's version now: the commits its arms have between
    /// them (see `query::experiments`).
    pub fn experiment_version(&self, arms: &[ModelId]) -> u64 {
        let models = read(&self.models);
        arms.iter()
            .filter_map(|arm| models.get(arm))
            .fold(0u64, |sum, m| sum.saturating_add(m.state.version))
    }
}

/// Up to `limit` entries after `after`, in key order.
fn page<V: Clone>(map: &BTreeMap<ModelId, V>, after: Option<&ModelId>, limit: usize) -> Vec<V> {
    let start: Bound<&ModelId> = after.map_or(Bound::Unbounded, Bound::Excluded);
    map.range::<ModelId, _>((start, Bound::Unbounded))
        .take(limit)
        .map(|(_, v)| v.clone())
        .collect()
}
