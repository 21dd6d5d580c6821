//! The poisson and normal families, beside the Bernoulli engine: their
//! exact sufficient statistics, conjugate priors and posteriors, summaries,
//! predictives, draws and experiments.
//!
//! - [`poisson`]: counts over exposures; λ with a Gamma prior, a Gamma
//!   posterior and a negative binomial predictive.
//! - [`normal`]: real values; μ (σ² integrated out) with a
//!   Normal-inverse-gamma or the reference prior, a Student t posterior
//!   and a Student t predictive.
//! - [`family_experiment`]: P(best), expected loss, P(> control) and the
//!   uplift of arms of one family, as exact one-dimensional integrals.
//!
//! Both posteriors are conjugate, so no grid prior is offered: a grid over
//! λ or μ would give up the closed forms that keep every figure exact at
//! 10^12 events (left for later, if asked for). Each posterior is
//! integrated in a variable where its density is smooth and decays at
//! least exponentially (`line`): ln λ for the Gamma, asinh of the
//! standardised value for the Student t. Composite Gauss–Legendre
//! converges geometrically there, so quantiles, intervals and the
//! experiment's figures are exact to ~1e-13 at any sample size.

mod experiment;
mod fixed;
mod line;
pub mod normal;
pub mod poisson;
mod special;

use serde::Serialize;

use super::{BayesError, Interval};
use crate::number::Shown;

pub use experiment::{
    family_experiment, FamilyArmFigures, FamilyArms, FamilyExperimentFigures, FamilyUplift,
};

/// What the families refuse; messages are shown to clients as they are.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FamilyError {
    /// A sum past its exact integer.
    #[error("the statistics overflow their exact integers")]
    Overflow,
    #[error("exposure must be finite, at least 5e-10 and at most 1e18, got {}", Shown(*.0))]
    /// An exposure that is not finite or out of range.
    Exposure(f64),
    #[error("a value must be finite and at most 1e12 in magnitude, got {}", Shown(*.0))]
    /// A value that is not finite or out of range.
    Value(f64),
    #[error("pre-aggregated values need n >= 0, finite sums and n·Σx² >= (Σx)²")]
    /// Pre-aggregated input no set of values could have.
    Aggregate,
    /// A prior's parameter out of its range.
    #[error("prior parameter {name} is out of range: {}", Shown(*.value))]
    Parameter {
        /// Which parameter.
        name: &'static str,
        /// Its value.
        value: f64,
    },
    #[error("the reference prior needs at least two values that differ")]
    /// The reference prior before two different values.
    Reference,
    /// A probability outside [0, 1].
    #[error("probability must be between 0 and 1, got {}", Shown(*.0))]
    Probability(f64),
    #[error("mass must be strictly between 0 and 1, got {}", Shown(*.0))]
    /// An interval mass outside (0, 1).
    Mass(f64),
}

impl From<BayesError> for FamilyError {
    fn from(error: BayesError) -> Self {
        match error {
            BayesError::Mass(m) => FamilyError::Mass(m),
            BayesError::Probability(p) => FamilyError::Probability(p),
            _ => FamilyError::Overflow,
        }
    }
}

/// The summaries of a family's parameter at one interval mass, as
/// [`super::Summary`] for p, with the mean and sd absent where they do not
/// exist (a Student t with dof <= 1 has no mean, <= 2 no variance).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FamilySummary {
    /// E[x], if it exists.
    pub mean: Option<f64>,
    /// sd(x), if it exists.
    pub sd: Option<f64>,
    /// The mode of the continuous density.
    pub mode: f64,
    /// The median.
    pub median: f64,
    /// The mass of `pi` and `hpdi`.
    pub mass: f64,
    /// Central percentile interval.
    pub pi: Interval,
    /// Highest posterior density interval: the narrowest holding `mass`.
    pub hpdi: Interval,
}
