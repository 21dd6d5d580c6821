//! What to do with an experiment's figures: the decision rule (ship an arm,
//! stop for lack of a meaningful difference, or keep running), the sample
//! ratio mismatch check, the traffic weights of a Thompson-sampling
//! bandit, and the sticky draw that places a unit among them.
//!
//! - [`decide`]: Stucchio's rule ships the arm whose expected loss is below
//!   the threshold of caring; Kruschke's ROPE rule stops when every
//!   variant's uplift is inside the region of practical equivalence with
//!   probability at least `mass`. When both hold, the ROPE rule wins and the
//!   control stays: no variant is worth a change.
//! - [`srm`]: Pearson's chi-square of the observed counts against the planned
//!   split, its p-value the regularized upper incomplete gamma function
//!   Q(df/2, χ²/2), computed here by its series or continued fraction;
//!   flagged below [`SRM_THRESHOLD`] (gbstats's default). The planned
//!   weights may have any scale; a weight below [`MIN_PLANNED_WEIGHT_RATIO`]
//!   of the largest is refused. With no
//!   observations at all there is no evidence of a mismatch: χ² = 0,
//!   p-value 1, not flagged, as gbstats answers.
//! - [`bandit_weights`]: Thompson sampling allocates to each arm its P(best),
//!   here exactly from the experiment's integrals instead of gbstats's 10^4
//!   draws. Top-two Thompson sampling (Russo, β = 1/2) plays the leader drawn
//!   by Thompson sampling with probability β, otherwise redraws until
//!   another arm leads and plays that one: w_i = β·P_i + (1 − β)·Σ_{j≠i}
//!   P_j·P_i/(1 − P_j). (gbstats's `top_two` counts the best and second best
//!   of the same draw instead; that is a different allocation.) Then every
//!   arm gets at least `floor` and the others share the rest in proportion
//!   to their weights, so the floor holds after renormalising (gbstats raises
//!   small weights to its minimum and divides by the new sum, which leaves
//!   them a little below it).
//! - [`unit_draw`] and [`pick_arm`]: a unit's reproducible draw in [0, 1)
//!   and the arm it falls into, so the same unit gets the same arm.

use serde::Serialize;

use super::experiment::{ExperimentError, ExperimentFigures, MIN_ARMS, MIN_PLANNED_WEIGHT_RATIO};
use super::special::upper_incomplete_gamma;

/// The p-value below which a sample ratio mismatch is flagged.
pub const SRM_THRESHOLD: f64 = 0.001;
/// Top-two Thompson sampling's probability of playing the leader.
const TOP_TWO_BETA: f64 = 0.5;
/// How far the P(best) given to [`bandit_weights`] may sum from 1: they come
/// from a quadrature exact to ~1e-12, or from a client's rounding.
const PROB_BEST_SUM_TOLERANCE: f64 = 1e-6;

/// What to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Decision {
    /// Stop and ship this arm (it may be the control).
    Ship { arm: usize },
    /// Stop: every variant is practically equivalent to the control, keep it.
    NoMeaningfulDifference,
    /// Not enough evidence either way yet.
    KeepRunning,
}

/// A decision and why, in one sentence with the numbers.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Verdict {
    pub decision: Decision,
    pub reason: String,
}

/// Decides from an experiment's figures. `threshold_of_caring` is an expected
/// loss in absolute success probability (0.001 = a tenth of a percentage
/// point), `mass` the probability the uplift must be inside the ROPE with.
///
/// In order: no meaningful difference when every non-control arm's
/// P(uplift in ROPE) >= `mass`; else ship the arm with the smallest expected
/// loss if that loss is below the threshold; else keep running.
///
/// `names` name the arms in the reason (an arm without one is "arm <index>").
pub fn decide(
    figures: &ExperimentFigures,
    names: &[&str],
    control: usize,
    threshold_of_caring: f64,
    mass: f64,
) -> Verdict {
    let name = |arm: usize| -> String {
        names
            .get(arm)
            .map_or_else(|| format!("arm {arm}"), |n| (*n).to_owned())
    };
    let variants: Vec<(usize, f64)> = figures
        .arms
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != control)
        .filter_map(|(i, arm)| arm.uplift.map(|u| (i, u.prob_in_rope)))
        .collect();
    let least_in_rope = variants.iter().copied().min_by(|a, b| a.1.total_cmp(&b.1));
    if let Some((arm, prob)) = least_in_rope {
        if prob >= mass {
            return Verdict {
                decision: Decision::NoMeaningfulDifference,
                reason: format!(
                    "Every variant's uplift over the control is inside the ROPE with probability \
                     at least {prob:.4} ({} the least), which reaches {mass}: keep the control.",
                    name(arm)
                ),
            };
        }
    }
    let best = figures
        .arms
        .iter()
        .enumerate()
        .min_by(|a, b| a.1.expected_loss.total_cmp(&b.1.expected_loss));
    if let Some((arm, figures)) = best {
        if figures.expected_loss < threshold_of_caring {
            return Verdict {
                decision: Decision::Ship { arm },
                reason: format!(
                    "{} has the smallest expected loss, {}, below the threshold of \
                     caring {threshold_of_caring}, and P(best) {:.4}: ship it.",
                    name(arm),
                    small(figures.expected_loss),
                    figures.prob_best
                ),
            };
        }
    }
    let loss = best.map_or(f64::NAN, |(_, f)| f.expected_loss);
    let rope = least_in_rope.map_or(f64::NAN, |(_, p)| p);
    Verdict {
        decision: Decision::KeepRunning,
        reason: format!(
            "The smallest expected loss, {}, is not below the threshold of caring \
             {threshold_of_caring}, and the least P(uplift in ROPE), {rope:.4}, is below \
             {mass}: keep running.",
            small(loss)
        ),
    }
}

/// A loss as people read it: 0.0123, or 4.56e-5 when small.
fn small(x: f64) -> String {
    if x == 0.0 || !x.is_finite() || x >= 1e-3 {
        format!("{x:.4}")
    } else {
        format!("{x:.2e}")
    }
}

/// A sample ratio mismatch check.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Srm {
    pub chi_square: f64,
    pub degrees_of_freedom: u32,
    pub p_value: f64,
    /// p_value < [`SRM_THRESHOLD`].
    pub flagged: bool,
}

/// Checks a planned split: every weight finite and positive, and none
/// below [`MIN_PLANNED_WEIGHT_RATIO`] of the largest. Any scale is allowed
/// (`[1e308, 1e308]` is an even split): [`srm`] divides by the largest.
pub fn check_planned_weights(planned_weights: &[f64]) -> Result<(), ExperimentError> {
    if let Some((index, weight)) = planned_weights
        .iter()
        .copied()
        .enumerate()
        .find(|(_, w)| !(w.is_finite() && *w > 0.0))
    {
        return Err(ExperimentError::Weight { index, weight });
    }
    let largest = planned_weights.iter().copied().fold(0.0, f64::max);
    if let Some((index, weight)) = planned_weights
        .iter()
        .copied()
        .enumerate()
        .find(|(_, w)| w / largest < MIN_PLANNED_WEIGHT_RATIO)
    {
        return Err(ExperimentError::WeightRatio {
            index,
            weight,
            largest,
        });
    }
    Ok(())
}

/// Pearson's chi-square test of `observed` counts against the split
/// `planned_weights` (any positive scale). Refuses lengths that differ, fewer
/// than two groups and weights [`check_planned_weights`] refuses.
///
/// The weights are divided by the largest before they are summed, so the
/// expected counts are finite at any scale (summed as they were, two
/// weights of 1e308 made an infinite total, every expected count 0 and the
/// statistic NaN); with every share at least 1e-12 of the largest the
/// statistic stays below ~1e33 even at 20 arms of 2^63 observations.
pub fn srm(observed: &[u64], planned_weights: &[f64]) -> Result<Srm, ExperimentError> {
    if observed.len() != planned_weights.len() {
        return Err(ExperimentError::Lengths {
            first: "observed",
            first_len: observed.len(),
            second: "planned_weights",
            second_len: planned_weights.len(),
        });
    }
    if observed.len() < MIN_ARMS {
        return Err(ExperimentError::Groups(observed.len()));
    }
    check_planned_weights(planned_weights)?;
    let largest = planned_weights.iter().copied().fold(0.0, f64::max);
    let relative: Vec<f64> = planned_weights.iter().map(|w| w / largest).collect();
    let degrees_of_freedom = (observed.len() - 1) as u32;
    let total: f64 = observed.iter().map(|n| *n as f64).sum();
    if total == 0.0 {
        return Ok(Srm {
            chi_square: 0.0,
            degrees_of_freedom,
            p_value: 1.0,
            flagged: false,
        });
    }
    let weight_sum: f64 = relative.iter().sum();
    let chi_square: f64 = observed
        .iter()
        .zip(&relative)
        .map(|(n, w)| {
            let expected = total * w / weight_sum;
            let gap = *n as f64 - expected;
            gap * gap / expected
        })
        .sum();
    let p_value = upper_incomplete_gamma(f64::from(degrees_of_freedom) / 2.0, chi_square / 2.0);
    Ok(Srm {
        chi_square,
        degrees_of_freedom,
        p_value,
        flagged: p_value < SRM_THRESHOLD,
    })
}

/// How a bandit turns P(best) into traffic weights.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct BanditOptions {
    /// Equal weights until every arm has at least this many trials.
    pub min_trials: u64,
    /// The least weight any arm gets, 0 <= floor <= 1/arms.
    pub floor: f64,
    /// Top-two Thompson sampling (β = 1/2) rather than plain Thompson sampling.
    pub top_two: bool,
}

/// Traffic weights, one per arm, summing to 1.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct BanditWeights {
    pub weights: Vec<f64>,
    /// True while some arm has fewer than `min_trials` trials (equal weights).
    pub burn_in: bool,
}

/// The traffic weights of a Thompson-sampling bandit from the arms' exact
/// P(best) and their trial counts.
pub fn bandit_weights(
    prob_best: &[f64],
    trials: &[u64],
    options: &BanditOptions,
) -> Result<BanditWeights, ExperimentError> {
    let k = prob_best.len();
    if trials.len() != k {
        return Err(ExperimentError::Lengths {
            first: "prob_best",
            first_len: k,
            second: "trials",
            second_len: trials.len(),
        });
    }
    if k < MIN_ARMS {
        return Err(ExperimentError::Arms(k));
    }
    if let Some((index, value)) = prob_best
        .iter()
        .copied()
        .enumerate()
        .find(|(_, p)| !(0.0..=1.0).contains(p))
    {
        return Err(ExperimentError::ProbBest { index, value });
    }
    let sum: f64 = prob_best.iter().sum();
    if (sum - 1.0).abs() > PROB_BEST_SUM_TOLERANCE {
        return Err(ExperimentError::ProbBestSum(sum));
    }
    let floor = options.floor;
    if !(floor >= 0.0 && floor * k as f64 <= 1.0 + 1e-12) {
        return Err(ExperimentError::Floor { floor, arms: k });
    }
    if trials.iter().any(|n| *n < options.min_trials) {
        return Ok(BanditWeights {
            weights: vec![1.0 / k as f64; k],
            burn_in: true,
        });
    }
    let p: Vec<f64> = prob_best.iter().map(|p| p / sum).collect();
    let weights = if options.top_two { top_two(&p) } else { p };
    Ok(BanditWeights {
        weights: with_floor(weights, floor),
        burn_in: false,
    })
}

/// Top-two Thompson sampling's allocation from P(best). The chance that a
/// redraw makes arm i the leader, given that leader j is excluded, is
/// P_i / (1 − P_j), with 1 − P_j taken as Σ_{m≠j} P_m so that it stays exact
/// when P_j rounds to 1. A leader with P_j = 1 has no challenger (the redraws
/// would never end): its whole share stays with it.
fn top_two(p: &[f64]) -> Vec<f64> {
    let k = p.len();
    let mut weights: Vec<f64> = p.iter().map(|pi| TOP_TWO_BETA * pi).collect();
    for j in 0..k {
        let rest: f64 = (0..k).filter(|m| *m != j).map(|m| p[m]).sum();
        let share = (1.0 - TOP_TWO_BETA) * p[j];
        if rest > 0.0 {
            for i in (0..k).filter(|i| *i != j) {
                weights[i] += share * p[i] / rest;
            }
        } else {
            weights[j] += share;
        }
    }
    let sum: f64 = weights.iter().sum();
    weights.iter().map(|w| w / sum).collect()
}

/// Raises every weight to at least `floor`, the others scaled down in
/// proportion to share what is left; repeated, since scaling down can take
/// another arm below the floor (at most one round per arm).
fn with_floor(weights: Vec<f64>, floor: f64) -> Vec<f64> {
    let k = weights.len();
    let mut floored = vec![false; k];
    loop {
        let held = floored.iter().filter(|f| **f).count() as f64 * floor;
        let free: f64 = (0..k).filter(|i| !floored[*i]).map(|i| weights[i]).sum();
        let scale = if free > 0.0 { (1.0 - held) / free } else { 0.0 };
        let mut changed = false;
        for i in 0..k {
            if !floored[i] && weights[i] * scale < floor {
                floored[i] = true;
                changed = true;
            }
        }
        if !changed {
            let unfloored = floored.iter().filter(|f| !**f).count();
            return (0..k)
                .map(|i| {
                    if floored[i] {
                        floor
                    } else if free > 0.0 {
                        weights[i] * scale
                    } else {
                        (1.0 - held) / unfloored as f64
                    }
                })
                .collect();
        }
    }
}

/// A unit's draw for sticky assignment, uniform in [0, 1): FNV-1a over the
/// experiment and the unit (a 0 byte between them), finished with
/// SplitMix64's mixer. Fixed across versions and platforms, unlike `std`'s
/// hasher, so a unit draws the same number on every replica and release.
pub fn unit_draw(experiment: &str, unit: &str) -> f64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in experiment
        .bytes()
        .chain(std::iter::once(0))
        .chain(unit.bytes())
    {
        h ^= u64::from(byte);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// The arm a draw `u` in [0, 1) falls into under `weights` (summing to 1):
/// the first arm whose cumulative weight passes `u`, the last when rounding
/// leaves the sum just below `u`.
pub fn pick_arm(weights: &[f64], u: f64) -> usize {
    let mut cumulative = 0.0;
    for (i, weight) in weights.iter().enumerate() {
        cumulative += weight;
        if u < cumulative {
            return i;
        }
    }
    weights.len().saturating_sub(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_draws_are_uniform_and_stable() {
        let draws: Vec<f64> = (0..100_000)
            .map(|i| unit_draw("exp", &format!("user-{i}")))
            .collect();
        assert!(draws.iter().all(|u| (0.0..1.0).contains(u)));
        // Ten equal bins each hold 10 % ± 0.5 % (about 5 sd).
        let mut bins = [0u32; 10];
        for u in &draws {
            bins[(u * 10.0) as usize] += 1;
        }
        for (i, n) in bins.iter().enumerate() {
            assert!((9_500..=10_500).contains(n), "bin {i}: {n}");
        }
        assert_eq!(unit_draw("exp", "user-1"), draws[1]);
        // The separator keeps ("ab", "c") and ("a", "bc") apart.
        assert_ne!(unit_draw("ab", "c"), unit_draw("a", "bc"));
    }

    #[test]
    fn a_draw_falls_into_the_arm_whose_cumulative_weight_passes_it() {
        let weights = [0.25, 0.5, 0.25];
        assert_eq!(pick_arm(&weights, 0.0), 0);
        assert_eq!(pick_arm(&weights, 0.25), 1);
        assert_eq!(pick_arm(&weights, 0.74), 1);
        assert_eq!(pick_arm(&weights, 0.75), 2);
        // Weights that round to just below 1 still place every draw.
        assert_eq!(pick_arm(&[0.5, 0.499_999_999], 0.999_999_999_9), 1);
    }
}
