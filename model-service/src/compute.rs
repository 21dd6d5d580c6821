//! Running the engine off the async runtime, and the caches of what it
//! computed: an experiment's figures are computed once per distinct data
//! and options however many requests ask.

use std::sync::Arc;

use domain::experiment::ExperimentSpec;

use crate::error::ApiError;
use crate::state::{AppState, DataKey, FiguresKey};
use crate::views::experiment::Figures;
use crate::views::Snapshot;

/// Counter: cache lookups, labelled `cache` and `result` (`hit` or `miss`).
const CACHE_LOOKUPS: &str = "model_service_cache_lookups_total";

/// Runs CPU-bound work on the blocking pool, so request handling never stalls.
pub async fn blocking<T, F>(work: F) -> Result<T, ApiError>
where
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("blocking task failed")))?
}

/// Counts a lookup of the cache named `cache`.
pub fn count_lookup(cache: &'static str, result: &'static str) {
    metrics::counter!(CACHE_LOOKUPS, "cache" => cache, "result" => result).increment(1);
}

/// What a snapshot's answers depend on: the key of every cache.
pub fn data_key(snapshot: &Snapshot) -> DataKey {
    DataKey {
        model: snapshot.model.clone(),
        counts: snapshot.counts,
        version: snapshot.version,
        updated_at: snapshot.updated_at,
        configured_at: snapshot.configured_at,
        since: snapshot.window.map(|w| w.since),
    }
}

/// The engine's figures for these snapshots, computed once per distinct
/// data and options (the cache is keyed by every arm's data).
pub async fn figures(
    state: &AppState,
    spec: &ExperimentSpec,
    snapshots: &[Snapshot],
    mass: f64,
) -> Result<Arc<Figures>, ApiError> {
    let key = FiguresKey {
        arms: snapshots.iter().map(data_key).collect(),
        control: spec.control.clone(),
        rope_bits: spec.rope.to_bits(),
        threshold_bits: spec.threshold_of_caring.to_bits(),
        mass_bits: mass.to_bits(),
    };
    let (figures, lookup) = state
        .figures()
        .get_or_try_insert(key, || {
            let spec = spec.clone();
            let snapshots = snapshots.to_vec();
            blocking(move || Ok(Arc::new(Figures::compute(&spec, &snapshots, mass)?)))
        })
        .await?;
    count_lookup("experiment", lookup.as_str());
    Ok(figures)
}
