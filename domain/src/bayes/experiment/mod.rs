//! The figures of a Bayesian A/B/n experiment (P(best), expected loss,
//! P(arm > control), the relative uplift over the control), computed exactly
//! as one-dimensional integrals over the arms' posteriors rather than by
//! sampling.
//!
//! With `f_i` and `F_i` the density and CDF of arm i's success probability:
//!
//! - P(best)_i = ∫ f_i(p) Π_{j≠i} F_j(p) dp: GrowthBook's "chance to win"
//!   when there are two arms; with more, the chance of being the best of all
//!   (gbstats reports each variation against the control only, which is
//!   `prob_beats_control` here);
//! - E[max_j p_j] = ∫ (1 − Π_j F_j(p)) dp, computed in the equal form
//!   Σ_i ∫ p f_i(p) Π_{j≠i} F_j(p) dp (integration by parts), which keeps
//!   its relative precision when every p is tiny;
//! - the expected loss of choosing arm i, E[max_j p_j − p_i] (Stucchio's
//!   "threshold of caring" compares it with the smallest difference worth
//!   acting on), and relative to the arm's own mean, E[max_j p_j − p_i] / E[p_i].
//!   With two arms this is gbstats's "risk" of choosing the arm,
//!   E[max(p_other − p_i, 0)], exactly rather than from a normal
//!   approximation; with more arms the loss is against the best of all;
//! - P(p_i > p_control) = ∫ f_i F_control dp, the two-arm case;
//! - the relative uplift U_i = p_i / p_control − 1 (gbstats's relative
//!   "uplift"): its mean E[p_i]·E[1/p_control] − 1 (the arms are
//!   independent), its median and narrowest interval at `mass` (HPDI), and
//!   P(U_i in the ROPE) = P((1 − rope)·p_c <= p_i <= (1 + rope)·p_c), the
//!   region of practical equivalence (Kruschke) of half-width `rope`.
//!
//! Where things are: this file holds the public figures and [`experiment`];
//! `quadrature` the shared Gauss–Legendre nodes every integral runs on;
//! `uplift_rule` each arm's coarser rule for the uplift; `uplift` the
//! distribution of the uplift (median, HPDI, ROPE); `compare` the two-arm
//! [`compare`] and [`prob_greater`].

mod compare;
mod quadrature;
mod uplift;
mod uplift_rule;

use serde::{Deserialize, Serialize};

use super::{Interval, Posterior, DEFAULT_MASS};
use crate::number::Shown;
use crate::prior::Prior;
use quadrature::Quadrature;
use uplift::Ratio;

pub use compare::{compare, prob_greater, Comparison, DifferenceSummary};

/// The fewest arms an experiment has.
pub const MIN_ARMS: usize = 2;
/// The smallest planned weight, as a share of the largest: one unit in a
/// trillion, a share no experiment can tell from 0 (which is refused too).
/// It keeps the chi-square finite for any counts.
pub const MIN_PLANNED_WEIGHT_RATIO: f64 = 1e-12;
/// The most arms an experiment may have.
pub const MAX_ARMS: usize = 20;
/// The ROPE's relative half-width unless asked otherwise: ±1 % of the control.
pub const DEFAULT_ROPE: f64 = 0.01;

/// What an experiment (and the checks built on its figures) refuses.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ExperimentError {
    #[error("an experiment has between {MIN_ARMS} and {MAX_ARMS} arms, got {0}")]
    Arms(usize),
    #[error("the control arm {control} is not one of the {arms} arms")]
    Control { control: usize, arms: usize },
    #[error("mass must be strictly between 0 and 1, got {}", Shown(*.0))]
    Mass(f64),
    #[error("rope must be a finite relative half-width >= 0, got {}", Shown(*.0))]
    Rope(f64),
    #[error("{first} has {first_len} entries but {second} has {second_len}")]
    Lengths {
        first: &'static str,
        first_len: usize,
        second: &'static str,
        second_len: usize,
    },
    #[error("a sample ratio check needs at least 2 groups, got {0}")]
    Groups(usize),
    #[error("planned weight {index} must be finite and > 0, got {}", Shown(*.weight))]
    Weight { index: usize, weight: f64 },
    #[error(
        "planned weight {index} is {}, less than {} of the largest ({}): a share that \
         small cannot be told from 0",
        Shown(*.weight),
        Shown(MIN_PLANNED_WEIGHT_RATIO),
        Shown(*.largest)
    )]
    WeightRatio {
        index: usize,
        weight: f64,
        largest: f64,
    },
    #[error("P(best) of arm {index} must be between 0 and 1, got {}", Shown(*.value))]
    ProbBest { index: usize, value: f64 },
    #[error("the P(best) of all arms must sum to 1, got {}", Shown(*.0))]
    ProbBestSum(f64),
    #[error(
        "the floor must be between 0 and 1/{arms} (every arm gets it), got {}",
        Shown(*.floor)
    )]
    Floor { floor: f64, arms: usize },
}

/// What an experiment's figures are computed at.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ExperimentOptions {
    /// Mass of the uplift's HPDI, strictly between 0 and 1.
    pub mass: f64,
    /// Relative half-width of the region of practical equivalence: 0.01
    /// counts an uplift within ±1 % of the control as no difference.
    pub rope: f64,
}

impl Default for ExperimentOptions {
    fn default() -> Self {
        Self {
            mass: DEFAULT_MASS,
            rope: DEFAULT_ROPE,
        }
    }
}

/// The relative uplift of an arm over the control, U = p_arm / p_control − 1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Uplift {
    /// E[U] = E[p_arm]·E[1/p_control] − 1; `None` when E[1/p_control] is
    /// infinite: a control without a success whose prior has density at
    /// p = 0 (uniform, Beta with a <= 1, a step or grid prior from 0), where
    /// U has no mean. The median and the HPDI exist always.
    pub mean: Option<f64>,
    pub median: f64,
    /// The narrowest interval of U holding the experiment's `mass`.
    pub hpdi: Interval,
    /// P(1 − rope <= p_arm / p_control <= 1 + rope).
    pub prob_in_rope: f64,
}

/// The figures of one arm.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ArmFigures {
    /// E[p_i], from the same quadrature as the other figures.
    pub mean: f64,
    /// P(p_i is the largest of all arms).
    pub prob_best: f64,
    /// P(p_i > p_control); `None` for the control itself.
    pub prob_beats_control: Option<f64>,
    /// E[max_j p_j − p_i]: what choosing this arm costs on average, in
    /// absolute success probability.
    pub expected_loss: f64,
    /// E[max_j p_j − p_i] / E[p_i]: the same, as a fraction of this arm's mean.
    pub relative_loss: f64,
    /// The relative uplift over the control; `None` for the control itself.
    pub uplift: Option<Uplift>,
}

/// The figures of an experiment, one entry per arm in the order given.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ExperimentFigures {
    /// E[max_j p_j].
    pub expected_max: f64,
    pub arms: Vec<ArmFigures>,
}

/// The figures of an experiment whose arms are independent posteriors;
/// `control` indexes `arms`.
pub fn experiment(
    arms: &[Posterior<'_>],
    control: usize,
    options: &ExperimentOptions,
) -> Result<ExperimentFigures, ExperimentError> {
    if !(MIN_ARMS..=MAX_ARMS).contains(&arms.len()) {
        return Err(ExperimentError::Arms(arms.len()));
    }
    if control >= arms.len() {
        return Err(ExperimentError::Control {
            control,
            arms: arms.len(),
        });
    }
    if !(options.mass > 0.0 && options.mass < 1.0) {
        return Err(ExperimentError::Mass(options.mass));
    }
    if !(options.rope >= 0.0 && options.rope.is_finite()) {
        return Err(ExperimentError::Rope(options.rope));
    }
    let grid = Quadrature::over(arms);
    let k = arms.len();
    let mut prob_best = vec![0.0; k];
    let mut best_p = vec![0.0; k]; // ∫ p f_i Π_{j≠i} F_j
    let mut means = vec![0.0; k];
    let mut beats = vec![0.0; k];
    // Π_{j≠i} F_j from prefix and suffix products: no division, so an F_j
    // of exactly 0 costs nothing.
    let mut prefix = vec![1.0; k + 1];
    for (node, (&weight, &p)) in grid.weights.iter().zip(&grid.ps).enumerate() {
        for j in 0..k {
            prefix[j + 1] = prefix[j] * grid.arms[j].cdf[node];
        }
        let mut suffix = 1.0;
        for i in (0..k).rev() {
            let density = grid.arms[i].density[node] * weight;
            let others = prefix[i] * suffix;
            prob_best[i] += density * others;
            best_p[i] += density * others * p;
            means[i] += density * p;
            beats[i] += density * grid.arms[control].cdf[node];
            suffix *= grid.arms[i].cdf[node];
        }
    }
    let expected_max: f64 = best_p.iter().sum();
    let inverse_control = inverse_mean(&arms[control], &grid, control);
    let arms = (0..k)
        .map(|i| {
            let expected_loss = (expected_max - means[i]).max(0.0);
            let uplift = (i != control).then(|| {
                let ratio = Ratio::new(&grid, i, control);
                let median = ratio.quantile(0.5, ratio.start).y;
                Uplift {
                    mean: inverse_control.map(|inverse| means[i] * inverse - 1.0),
                    median: median.exp_m1(),
                    hpdi: ratio.hpdi(options.mass, median),
                    prob_in_rope: ratio.prob_within(options.rope),
                }
            });
            ArmFigures {
                mean: means[i],
                prob_best: prob_best[i].clamp(0.0, 1.0),
                prob_beats_control: (i != control).then(|| beats[i].clamp(0.0, 1.0)),
                expected_loss,
                relative_loss: if means[i] > 0.0 {
                    expected_loss / means[i]
                } else {
                    f64::INFINITY
                },
                uplift,
            }
        })
        .collect();
    Ok(ExperimentFigures { expected_max, arms })
}

/// E[1/p] of an arm, `None` when it is infinite. A Beta posterior has the
/// closed form (a + b − 1)/(a − 1), infinite for a <= 1; the other priors
/// integrate 1/p = 1 + e^-t over the arm's nodes (exact to the window's
/// e^-36 in density; with one success and a prior reaching p = 0 the tail
/// below the window bounds the error near 1e-8 relative).
fn inverse_mean(arm: &Posterior<'_>, grid: &Quadrature<'_>, index: usize) -> Option<f64> {
    let counts = arm.counts();
    let (s, f) = (counts.successes as f64, counts.failures as f64);
    let beta = |a: f64, b: f64| (a > 1.0).then(|| (a + b - 1.0) / (a - 1.0));
    match arm.prior() {
        Prior::Uniform => beta(1.0 + s, 1.0 + f),
        Prior::Beta { a, b } => beta(a + s, b + f),
        Prior::Step { lower, .. } if *lower <= 0.0 && counts.successes == 0 => None,
        Prior::Grid { weights }
            if weights.first().is_some_and(|w| *w > 0.0) && counts.successes == 0 =>
        {
            None
        }
        Prior::Step { .. } | Prior::Grid { .. } => Some(
            grid.uplift_rule(index)
                .nodes
                .iter()
                .map(|n| n.mass / n.sig)
                .sum(),
        ),
    }
}
