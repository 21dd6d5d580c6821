//! The Bayesian engine: Binomial likelihood on a success probability `p`,
//! grid approximation, "new prior = old posterior".
//!
//! Pure math over plain data: no I/O, no async, no logging.
//!
//! The state of a model is its sufficient statistic, the counts of successes
//! and failures ([`Counts`]), plus a version. Folding an observation in is an
//! O(1) checked addition, and the posterior is always
//! `prior(p) · p^s · (1-p)^f`, so no datum is ever counted twice.
//!
//! Two grids serve two purposes:
//! - the *display grid* ([`DisplayGrid`]): G points `p_i = i/(G-1)` whose
//!   probabilities sum to 1, McElreath's grid approximation, for plots;
//! - the *quadrature* inside [`Posterior`]: nodes in logit space `t = ln(p/(1-p))`
//!   placed on the window that holds all but ~e^-36 of the mass, whatever the
//!   posterior's width. Summaries come from it, so they stay exact to the
//!   precision of `f64` at 10^9 observations, where the whole posterior sits
//!   between two display points. In logit space a Beta posterior is smooth and
//!   log-concave with no endpoint singularity, so the trapezoid rule converges
//!   geometrically; quantiles interpolate the density log-linearly inside a cell.
//!
//! Experiments over several posteriors ([`experiment`], [`compare`]) integrate
//! the arms' exact densities with composite Gauss–Legendre on the union of
//! their windows, so P(best), expected loss, P(a > b) and the relative
//! uplift's distribution are one-dimensional integrals accurate to ~1e-12,
//! not samples. [`decide`], [`srm`] and [`bandit_weights`] turn those figures
//! into what to do: stop or keep running, trust the split or not, and how to
//! share the traffic.

mod decision;
mod display;
mod experiment;
pub mod family;
mod gauss_legendre;
mod grid_weights;
mod logit;
mod numeric;
mod posterior;
mod special;

pub use decision::{
    bandit_weights, check_planned_weights, decide, pick_arm, srm, unit_draw, BanditOptions,
    BanditWeights, Decision, Srm, Verdict, SRM_THRESHOLD,
};
pub use display::DisplayGrid;
pub use experiment::{
    compare, experiment, prob_greater, ArmFigures, Comparison, DifferenceSummary, ExperimentError,
    ExperimentFigures, ExperimentOptions, Uplift, DEFAULT_ROPE, MAX_ARMS, MIN_ARMS,
    MIN_PLANNED_WEIGHT_RATIO,
};
pub use posterior::{Interval, Posterior, Summary};

use serde::{Deserialize, Serialize};

use crate::number::Shown;

/// The grid size a model gets unless configured otherwise.
pub const DEFAULT_GRID_SIZE: u32 = 1000;
/// The smallest allowed grid size.
pub const MIN_GRID_SIZE: u32 = 2;
/// The largest allowed grid size.
pub const MAX_GRID_SIZE: u32 = 100_000;
/// The probability mass of intervals unless asked otherwise.
pub const DEFAULT_MASS: f64 = 0.89;

/// Successes and failures: the sufficient statistic of Bernoulli data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Counts {
    pub successes: u64,
    pub failures: u64,
}

impl Counts {
    pub const ZERO: Counts = Counts {
        successes: 0,
        failures: 0,
    };

    pub const fn new(successes: u64, failures: u64) -> Self {
        Self {
            successes,
            failures,
        }
    }

    /// successes + failures, or `None` on overflow.
    pub fn trials(&self) -> Option<u64> {
        self.successes.checked_add(self.failures)
    }

    /// Adds two counts, or `None` on overflow.
    pub fn checked_add(self, other: Counts) -> Option<Counts> {
        Some(Counts {
            successes: self.successes.checked_add(other.successes)?,
            failures: self.failures.checked_add(other.failures)?,
        })
    }
}

/// A model's state: its counts and how many updates made them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelState {
    pub counts: Counts,
    pub version: u64,
}

impl ModelState {
    /// Folds one update into the state: O(1), exact, refused on overflow.
    pub fn apply(self, delta: Counts) -> Result<ModelState, BayesError> {
        Ok(ModelState {
            counts: self.counts.checked_add(delta).ok_or(BayesError::Overflow)?,
            version: self.version.checked_add(1).ok_or(BayesError::Overflow)?,
        })
    }
}

/// A display grid size, valid by construction (2..=100000).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct GridSize(u32);

impl GridSize {
    pub fn parse(size: u32) -> Result<Self, BayesError> {
        if (MIN_GRID_SIZE..=MAX_GRID_SIZE).contains(&size) {
            Ok(Self(size))
        } else {
            Err(BayesError::GridSize(size))
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

impl Default for GridSize {
    fn default() -> Self {
        Self(DEFAULT_GRID_SIZE)
    }
}

impl TryFrom<u32> for GridSize {
    type Error = BayesError;

    fn try_from(size: u32) -> Result<Self, Self::Error> {
        Self::parse(size)
    }
}

impl From<GridSize> for u32 {
    fn from(size: GridSize) -> Self {
        size.0
    }
}

/// What the engine refuses; messages are shown to clients as they are.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BayesError {
    #[error("counts overflow a 64-bit integer")]
    Overflow,
    #[error("grid size must be between {MIN_GRID_SIZE} and {MAX_GRID_SIZE}, got {0}")]
    GridSize(u32),
    #[error("mass must be strictly between 0 and 1, got {}", Shown(*.0))]
    Mass(f64),
    #[error("probability must be between 0 and 1, got {}", Shown(*.0))]
    Probability(f64),
    #[error("the posterior has no mass: the prior excludes everything the data allows")]
    NoMass,
}

/// Checks an interval mass: 0 < mass < 1.
pub fn check_mass(mass: f64) -> Result<f64, BayesError> {
    if mass > 0.0 && mass < 1.0 {
        Ok(mass)
    } else {
        Err(BayesError::Mass(mass))
    }
}
