//! The JSON bodies of the API, and how each is computed from a model's stored
//! state by the engine (`domain::bayes`): this module calls the engine and
//! copies its numbers, it never computes a statistic of its own.

pub mod experiment;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use domain::bayes::{
    compare, BayesError, Comparison, Counts, DifferenceSummary, DisplayGrid, GridSize, Interval,
    Posterior, Summary,
};
use domain::{ModelId, Prior};
use platform::store::{ConfigRecord, HistoryRecord, ModelRecord};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A model's configuration and current counts.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ModelInfo {
    #[schema(value_type = String, example = "globe")]
    pub model: ModelId,
    pub prior: Prior,
    #[schema(value_type = u32, example = 1000)]
    pub grid_size: GridSize,
    pub successes: u64,
    pub failures: u64,
    pub trials: u64,
    /// Number of updates applied so far (0: no data yet).
    pub version: u64,
    pub created_at: DateTime<Utc>,
    /// When the prior or grid size last changed.
    pub configured_at: DateTime<Utc>,
    /// When the counts last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<&ModelRecord> for ModelInfo {
    fn from(r: &ModelRecord) -> Self {
        let counts = r.state.counts;
        ModelInfo {
            model: r.id.clone(),
            prior: Prior::clone(&r.prior),
            grid_size: r.grid_size,
            successes: counts.successes,
            failures: counts.failures,
            trials: trials(counts),
            version: r.state.version,
            created_at: r.created_at,
            configured_at: r.configured_at,
            updated_at: r.updated_at,
        }
    }
}

/// A page of models, in id order.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ModelList {
    pub models: Vec<ModelInfo>,
    /// Pass as `?after=` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_after: Option<String>,
}

/// The body of `PUT /models/{id}`: either field may be left out (it then
/// keeps its value, or takes the default when the model is created).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelConfigBody {
    pub prior: Option<Prior>,
    /// 2..=100000.
    #[schema(value_type = Option<u32>, minimum = 2, maximum = 100000, example = 1000)]
    #[serde(default, deserialize_with = "grid_size")]
    pub grid_size: Option<GridSize>,
}

/// A grid size written as `1000` or `1000.0` (JSON does not tell them apart).
fn grid_size<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<GridSize>, D::Error> {
    use serde::de::Error;
    domain::whole::option_u64(deserializer)?
        .map(|n| {
            u32::try_from(n)
                .map_err(|_| D::Error::custom(format!("grid size {n} is out of range")))
                .and_then(|n| GridSize::parse(n).map_err(D::Error::custom))
        })
        .transpose()
}

/// What a model was at one version: the current one or, when time
/// travelling, a past one, with the prior and grid size in force then.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub model: ModelId,
    pub prior: Arc<Prior>,
    pub grid_size: GridSize,
    pub counts: Counts,
    pub version: u64,
    /// When this version was applied (the model's creation for version 0).
    pub updated_at: DateTime<Utc>,
    /// When the configuration last changed: part of every cache key.
    pub configured_at: DateTime<Utc>,
    /// Set when the counts are those of a time window only.
    pub window: Option<Window>,
}

/// A time window: the counts answered are those committed after `since`,
/// up to the version answered, under the model's prior.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Window {
    pub since: DateTime<Utc>,
    /// The model's version at `since` (0: no data yet then): the counts
    /// are those of versions `from_version + 1 ..= version`.
    pub from_version: u64,
}

impl Snapshot {
    pub fn current(r: &ModelRecord) -> Self {
        Snapshot {
            model: r.id.clone(),
            prior: r.prior.clone(),
            grid_size: r.grid_size,
            counts: r.state.counts,
            version: r.state.version,
            updated_at: r.updated_at,
            configured_at: r.configured_at,
            window: None,
        }
    }

    /// The model before any data: its prior.
    pub fn prior_only(r: &ModelRecord) -> Self {
        Snapshot {
            counts: Counts::ZERO,
            version: 0,
            updated_at: r.created_at,
            ..Self::current(r)
        }
    }

    pub fn at(r: &ModelRecord, h: &HistoryRecord) -> Self {
        Snapshot {
            counts: h.counts,
            version: h.version,
            updated_at: h.applied_at,
            ..Self::current(r)
        }
    }

    /// The same counts under the configuration of another point in time.
    pub fn configured(self, config: ConfigRecord) -> Self {
        Snapshot {
            prior: Arc::new(config.prior),
            grid_size: config.grid_size,
            configured_at: config.configured_at,
            ..self
        }
    }

    pub fn posterior(&self) -> Result<Posterior<'_>, BayesError> {
        Posterior::new(&self.prior, self.counts)
    }
}

/// The display grid: `p_i = i/(G-1)` and the prior and posterior probability
/// of each point (each list sums to 1), plus the grid's MAP.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GridView {
    pub p: Vec<f64>,
    pub prior: Vec<f64>,
    pub posterior: Vec<f64>,
    /// The point of the grid with the highest posterior probability.
    pub map: f64,
}

/// A posterior: counts, version, prior, summaries and (unless `grid=false`) the display grid.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PosteriorView {
    #[schema(value_type = String, example = "globe")]
    pub model: ModelId,
    pub prior: Prior,
    #[schema(value_type = u32, example = 1000)]
    pub grid_size: GridSize,
    pub successes: u64,
    pub failures: u64,
    pub trials: u64,
    /// The version answered for (the current one unless `?version=` or `?at=`).
    pub version: u64,
    /// When that version was applied (the model's creation for version 0).
    pub updated_at: DateTime<Utc>,
    /// With `?since=` or `?window=`: the window the counts come from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<Window>,
    pub summary: Summary,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grid: Option<GridView>,
}

impl PosteriorView {
    /// The engine's summary at `mass` and, when `with_grid`, its display grid.
    pub fn compute(snapshot: &Snapshot, mass: f64, with_grid: bool) -> Result<Self, BayesError> {
        let posterior = snapshot.posterior()?;
        let summary = posterior.summary(mass)?;
        let grid = with_grid.then(|| {
            let grid = DisplayGrid::new(&posterior, snapshot.grid_size);
            let map = grid.map();
            GridView {
                p: grid.p,
                prior: grid.prior,
                posterior: grid.posterior,
                map,
            }
        });
        Ok(PosteriorView {
            model: snapshot.model.clone(),
            prior: Prior::clone(&snapshot.prior),
            grid_size: snapshot.grid_size,
            successes: snapshot.counts.successes,
            failures: snapshot.counts.failures,
            trials: trials(snapshot.counts),
            version: snapshot.version,
            updated_at: snapshot.updated_at,
            window: snapshot.window,
            summary,
            grid,
        })
    }
}

/// One version of a model's history with the posterior's mean and HPDI then.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HistoryPoint {
    pub version: u64,
    /// Cumulative counts after this version.
    pub successes: u64,
    pub failures: u64,
    pub trials: u64,
    /// What this version added.
    pub delta_successes: u64,
    pub delta_failures: u64,
    pub applied_at: DateTime<Utc>,
    pub mean: f64,
    pub hpdi: Interval,
}

impl HistoryPoint {
    pub fn compute(prior: &Prior, h: &HistoryRecord, mass: f64) -> Result<Self, BayesError> {
        let posterior = Posterior::new(prior, h.counts)?;
        Ok(HistoryPoint {
            version: h.version,
            successes: h.counts.successes,
            failures: h.counts.failures,
            trials: trials(h.counts),
            delta_successes: h.delta.successes,
            delta_failures: h.delta.failures,
            applied_at: h.applied_at,
            mean: posterior.mean(),
            hpdi: posterior.hpdi(mass)?,
        })
    }

    /// Version 0: the prior, before any data.
    pub fn origin(created_at: DateTime<Utc>) -> HistoryRecord {
        HistoryRecord {
            version: 0,
            counts: Counts::ZERO,
            delta: Counts::ZERO,
            applied_at: created_at,
        }
    }
}

/// A page of a model's history, in version order, computed with the current prior.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HistoryView {
    #[schema(value_type = String, example = "globe")]
    pub model: ModelId,
    pub prior: Prior,
    /// The mass of every `hpdi`.
    pub mass: f64,
    pub versions: Vec<HistoryPoint>,
    /// Pass as `?after=` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_after: Option<u64>,
}

/// The posterior predictive distribution of successes in the next `trials` trials.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PredictiveView {
    #[schema(value_type = String, example = "globe")]
    pub model: ModelId,
    pub version: u64,
    pub successes: u64,
    pub failures: u64,
    /// Future trials.
    pub trials: u32,
    /// `probabilities[k]` = P(k successes in `trials`), k = 0..=trials.
    pub probabilities: Vec<f64>,
    /// Expected successes: Σ k · P(k).
    pub mean: f64,
}

impl PredictiveView {
    pub fn compute(snapshot: &Snapshot, trials: u32) -> Result<Self, BayesError> {
        let probabilities = snapshot.posterior()?.predictive(trials)?;
        let mean = probabilities
            .iter()
            .enumerate()
            .map(|(k, p)| k as f64 * p)
            .sum();
        Ok(PredictiveView {
            model: snapshot.model.clone(),
            version: snapshot.version,
            successes: snapshot.counts.successes,
            failures: snapshot.counts.failures,
            trials,
            probabilities,
            mean,
        })
    }
}

/// Draws of `p` from the posterior; the same `seed` gives the same draws.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SamplesView {
    #[schema(value_type = String, example = "globe")]
    pub model: ModelId,
    pub version: u64,
    pub seed: u64,
    pub samples: Vec<f64>,
}

impl SamplesView {
    pub fn compute(snapshot: &Snapshot, n: usize, seed: u64) -> Result<Self, BayesError> {
        Ok(SamplesView {
            model: snapshot.model.clone(),
            version: snapshot.version,
            seed,
            samples: snapshot.posterior()?.samples(n, seed),
        })
    }
}

/// One side of a comparison.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CompareSide {
    #[schema(value_type = String, example = "globe")]
    pub model: ModelId,
    pub version: u64,
    pub successes: u64,
    pub failures: u64,
    /// With `?since=` or `?window=`: the window the counts come from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<Window>,
    pub summary: Summary,
}

/// P(p_a > p_b) and the distribution of p_a - p_b, for independent posteriors.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ComparisonView {
    pub a: CompareSide,
    pub b: CompareSide,
    pub prob_a_greater: f64,
    pub difference: DifferenceSummary,
}

impl ComparisonView {
    pub fn compute(a: &Snapshot, b: &Snapshot, mass: f64) -> Result<Self, BayesError> {
        let (pa, pb) = (a.posterior()?, b.posterior()?);
        let Comparison {
            prob_a_greater,
            difference,
        } = compare(&pa, &pb, mass)?;
        let side = |s: &Snapshot, p: &Posterior<'_>| -> Result<CompareSide, BayesError> {
            Ok(CompareSide {
                model: s.model.clone(),
                version: s.version,
                successes: s.counts.successes,
                failures: s.counts.failures,
                window: s.window,
                summary: p.summary(mass)?,
            })
        };
        Ok(ComparisonView {
            a: side(a, &pa)?,
            b: side(b, &pb)?,
            prob_a_greater,
            difference,
        })
    }
}

/// `successes + failures`; both are stored as BIGINT, so the sum fits a u64.
pub fn trials(counts: Counts) -> u64 {
    counts.trials().unwrap_or(u64::MAX)
}

/// What an `update` event says: these models changed, or all may have.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ModelEvent {
    #[schema(value_type = Vec<String>)]
    pub models: Vec<ModelId>,
    /// True when any model may have changed (reload everything).
    pub all: bool,
}

impl ModelEvent {
    pub fn everything() -> Self {
        ModelEvent {
            models: Vec::new(),
            all: true,
        }
    }

    /// Reads a NOTIFY payload; ids that do not parse are ignored.
    pub fn from_payload(payload: &str) -> Self {
        if payload.trim() == "*" {
            return Self::everything();
        }
        ModelEvent {
            models: payload
                .split(',')
                .filter_map(|id| ModelId::parse(id.trim()).ok())
                .collect(),
            all: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_name_models_or_everything() {
        assert_eq!(ModelEvent::from_payload("*"), ModelEvent::everything());
        let event = ModelEvent::from_payload("globe,coin,Not Valid");
        assert_eq!(
            event.models.iter().map(ModelId::as_str).collect::<Vec<_>>(),
            ["globe", "coin"]
        );
        assert!(!event.all);
    }
}
