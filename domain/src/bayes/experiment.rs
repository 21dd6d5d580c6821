//! The figures of a Bayesian A/B/n experiment (P(best), expected loss,
//! P(arm > control)), computed exactly as one-dimensional integrals over the
//! arms' posteriors rather than by sampling.
//!
//! With `f_i` and `F_i` the density and CDF of arm i's success probability:
//!
//! - P(best)_i = ∫ f_i(p) Π_{j≠i} F_j(p) dp;
//! - E[max_j p_j] = ∫ (1 − Π_j F_j(p)) dp, computed in the equal form
//!   Σ_i ∫ p f_i(p) Π_{j≠i} F_j(p) dp (integration by parts), which keeps
//!   its relative precision when every p is tiny;
//! - the expected loss of choosing arm i, E[max_j p_j − p_i] (Stucchio's
//!   "threshold of caring" compares it with the smallest difference worth
//!   acting on), and relative to the arm's own mean, E[max_j p_j − p_i] / E[p_i];
//! - P(p_i > p_control) = ∫ f_i F_control dp, the two-arm case.
//!
//! The integrals run in logit space, where each density is smooth, on the
//! union of the arms' own windows (the regions `Posterior` found to hold
//! their mass), each cut into pieces narrow on the arm's own scale, and the
//! gaps between windows cut too. Each piece gets an n-point Gauss–Legendre
//! rule; a CDF inside a piece comes from integrating the density's
//! interpolating polynomial through the same nodes (a spectral integration
//! matrix), so no density is evaluated twice. Every arm is normalised by the
//! same quadrature, so an arm's density integrates to 1 exactly as used.

use std::sync::OnceLock;

use serde::Serialize;

use super::posterior::sigmoid;
use super::{check_mass, BayesError, Comparison, DifferenceSummary, Interval, Posterior};

/// The fewest arms an experiment has.
pub const MIN_ARMS: usize = 2;
/// The most arms an experiment may have.
pub const MAX_ARMS: usize = 20;

/// Gauss–Legendre nodes per piece: exact for polynomials of degree 31, and
/// geometric convergence for the smooth densities of logit space.
const NODES: usize = 16;
/// Pieces per arm window: each piece spans about half a posterior sd.
const PIECES_PER_WINDOW: usize = 32;
/// The widest piece in logit space, so that gaps between windows (where the
/// integrands follow the logistic p(1-p), with poles at distance π) and very
/// wide windows stay resolved.
const MAX_PIECE: f64 = 1.0;

/// What an experiment refuses.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ExperimentError {
    #[error("an experiment has between {MIN_ARMS} and {MAX_ARMS} arms, got {0}")]
    Arms(usize),
    #[error("the control arm {control} is not one of the {arms} arms")]
    Control { control: usize, arms: usize },
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
            prefix[j + 1] = prefix[j] * grid.cdf[j][node];
        }
        let mut suffix = 1.0;
        for i in (0..k).rev() {
            let density = grid.density[i][node] * weight;
            let others = prefix[i] * suffix;
            prob_best[i] += density * others;
            best_p[i] += density * others * p;
            means[i] += density * p;
            beats[i] += density * grid.cdf[control][node];
            suffix *= grid.cdf[i][node];
        }
    }
    let expected_max: f64 = best_p.iter().sum();
    let arms = (0..k)
        .map(|i| {
            let expected_loss = (expected_max - means[i]).max(0.0);
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
            }
        })
        .collect();
    Ok(ExperimentFigures { expected_max, arms })
}

/// P(p_a > p_b) for independent posteriors, by the same integral.
pub fn prob_greater(a: &Posterior<'_>, b: &Posterior<'_>) -> f64 {
    let grid = Quadrature::over(&[a.clone(), b.clone()]);
    grid.weights
        .iter()
        .enumerate()
        .map(|(node, w)| w * grid.density[0][node] * grid.cdf[1][node])
        .sum::<f64>()
        .clamp(0.0, 1.0)
}

/// Compares two independent posteriors: P(p_a > p_b) and the distribution of
/// p_a - p_b. P(p_a > p_b) is [`prob_greater`]; the difference's integrals
/// run over the narrower posterior's nodes, against the wider one's CDF,
/// which is smooth on that scale.
pub fn compare(a: &Posterior<'_>, b: &Posterior<'_>, mass: f64) -> Result<Comparison, BayesError> {
    let mass = check_mass(mass)?;
    let a_narrower = a.sd() <= b.sd();
    // F_D(d) = P(p_a - p_b <= d).
    let cdf_diff = |d: f64| -> f64 {
        if a_narrower {
            a.weighted_nodes()
                .map(|(w, t)| w * (1.0 - b.cdf_p(sigmoid(t) - d)))
                .sum()
        } else {
            b.weighted_nodes()
                .map(|(w, t)| w * a.cdf_p(sigmoid(t) + d))
                .sum()
        }
    };
    // P(p_a > p_b) by the experiment's integral, accurate to ~1e-12 where
    // the trapezoid nodes against an interpolated CDF gave ~1e-6.
    let prob_a_greater = prob_greater(a, b);
    let quantile = |q: f64| -> f64 {
        let (mut lo, mut hi) = (-1.0f64, 1.0f64);
        for _ in 0..80 {
            let mid = 0.5 * (lo + hi);
            if cdf_diff(mid) < q {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        0.5 * (lo + hi)
    };
    let tail = (1.0 - mass) / 2.0;
    Ok(Comparison {
        prob_a_greater: prob_a_greater.clamp(0.0, 1.0),
        difference: DifferenceSummary {
            mean: a.mean() - b.mean(),
            sd: (a.sd() * a.sd() + b.sd() * b.sd()).sqrt(),
            median: quantile(0.5),
            mass,
            pi: Interval {
                lower: quantile(tail),
                upper: quantile(1.0 - tail),
            },
        },
    })
}

/// Every arm's normalised logit-space density and CDF at the nodes of one
/// composite Gauss–Legendre rule.
struct Quadrature {
    /// The rule's weight at each node (the piece's half-width included).
    weights: Vec<f64>,
    /// p = σ(t) at each node.
    ps: Vec<f64>,
    /// density[arm][node], normalised so that Σ weights · density = 1.
    density: Vec<Vec<f64>>,
    /// cdf[arm][node], P(p_arm <= p at the node).
    cdf: Vec<Vec<f64>>,
}

impl Quadrature {
    fn over(arms: &[Posterior<'_>]) -> Self {
        let rule = rule();
        let windows: Vec<(f64, f64, usize)> = arms.iter().map(Posterior::logit_window).collect();
        let edges = piece_edges(&windows);
        let pieces = edges.len() - 1;
        let nodes = pieces * NODES;
        let mut ts = Vec::with_capacity(nodes);
        let mut weights = Vec::with_capacity(nodes);
        for piece in edges.windows(2) {
            let (mid, half) = (0.5 * (piece[0] + piece[1]), 0.5 * (piece[1] - piece[0]));
            for (x, w) in rule.nodes.iter().zip(&rule.weights) {
                ts.push(mid + half * x);
                weights.push(half * w);
            }
        }
        let ps = ts.iter().map(|t| sigmoid(*t)).collect();
        let mut density = Vec::with_capacity(arms.len());
        let mut cdf = Vec::with_capacity(arms.len());
        for (arm, (lo, hi, _)) in arms.iter().zip(&windows) {
            let kernel = arm.kernel();
            // Outside its window an arm has no mass (none at all for a step
            // prior, below e^-36 otherwise); its window's ends are edges, so
            // no piece straddles them.
            let logs: Vec<f64> = ts
                .iter()
                .map(|t| {
                    if t < lo || t > hi {
                        f64::NEG_INFINITY
                    } else {
                        kernel.eval(*t).log_t
                    }
                })
                .collect();
            let peak = logs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let mut values: Vec<f64> = logs.iter().map(|l| (l - peak).exp()).collect();
            let total: f64 = values.iter().zip(&weights).map(|(v, w)| v * w).sum();
            for v in &mut values {
                *v /= total;
            }
            // The CDF: whole pieces summed, and inside a piece the integral
            // of the density's interpolating polynomial up to each node.
            let mut arm_cdf = Vec::with_capacity(nodes);
            let mut before = 0.0f64;
            for piece in 0..pieces {
                let start = piece * NODES;
                let half = weights[start] / rule.weights[0];
                let slice = &values[start..start + NODES];
                for row in &rule.integration {
                    let part: f64 = row.iter().zip(slice).map(|(s, v)| s * v).sum();
                    arm_cdf.push((before + half * part).clamp(0.0, 1.0));
                }
                before += slice
                    .iter()
                    .zip(&weights[start..start + NODES])
                    .map(|(v, w)| v * w)
                    .sum::<f64>();
            }
            density.push(values);
            cdf.push(arm_cdf);
        }
        Quadrature {
            weights,
            ps,
            density,
            cdf,
        }
    }
}

/// The edges of the pieces: each window cut into pieces on its own scale
/// (more for a grid prior, as many as its posterior needed cells / 8), the
/// union of all the cuts sorted, and any piece wider than `MAX_PIECE` split.
fn piece_edges(windows: &[(f64, f64, usize)]) -> Vec<f64> {
    let mut cuts = Vec::new();
    for (lo, hi, cells) in windows {
        let pieces = PIECES_PER_WINDOW.max(cells / 8);
        let width = (hi - lo) / pieces as f64;
        cuts.extend((0..pieces).map(|j| lo + width * j as f64));
        cuts.push(*hi);
    }
    cuts.sort_by(f64::total_cmp);
    cuts.dedup();
    let mut edges = Vec::with_capacity(cuts.len());
    for pair in cuts.windows(2) {
        let gap = pair[1] - pair[0];
        let split = (gap / MAX_PIECE).ceil().max(1.0) as usize;
        edges.extend((0..split).map(|j| pair[0] + gap * j as f64 / split as f64));
    }
    if let Some(last) = cuts.last() {
        edges.push(*last);
    }
    edges
}

/// The Gauss–Legendre rule on [-1, 1] and its integration matrix.
struct Rule {
    nodes: [f64; NODES],
    weights: [f64; NODES],
    /// integration[k][m] = ∫_{-1}^{x_k} L_m(x) dx, L_m the Lagrange basis
    /// polynomial of node m: row k applied to values at the nodes integrates
    /// their interpolating polynomial from -1 to node k.
    integration: [[f64; NODES]; NODES],
}

fn rule() -> &'static Rule {
    static RULE: OnceLock<Rule> = OnceLock::new();
    RULE.get_or_init(|| {
        let (nodes, weights) = gauss_legendre();
        let lagrange = |m: usize, x: f64| -> f64 {
            (0..NODES)
                .filter(|j| *j != m)
                .map(|j| (x - nodes[j]) / (nodes[m] - nodes[j]))
                .product()
        };
        let mut integration = [[0.0; NODES]; NODES];
        for (k, row) in integration.iter_mut().enumerate() {
            // The rule itself on [-1, x_k] is exact for L_m (degree NODES - 1).
            let half = 0.5 * (nodes[k] + 1.0);
            for (m, entry) in row.iter_mut().enumerate() {
                *entry = nodes
                    .iter()
                    .zip(&weights)
                    .map(|(x, w)| half * w * lagrange(m, -1.0 + half * (x + 1.0)))
                    .sum();
            }
        }
        Rule {
            nodes,
            weights,
            integration,
        }
    })
}

/// Nodes (ascending) and weights of the NODES-point Gauss–Legendre rule, by
/// Newton's method on the Legendre polynomial from Chebyshev-like guesses.
fn gauss_legendre() -> ([f64; NODES], [f64; NODES]) {
    let n = NODES as f64;
    let mut nodes = [0.0; NODES];
    let mut weights = [0.0; NODES];
    for i in 0..NODES {
        let mut x = -(std::f64::consts::PI * (i as f64 + 0.75) / (n + 0.5)).cos();
        let mut derivative = 1.0;
        for _ in 0..100 {
            // P_n(x) and P_n'(x) by the three-term recurrence.
            let (mut p0, mut p1) = (1.0, x);
            for k in 2..=NODES {
                let k = k as f64;
                (p0, p1) = (p1, ((2.0 * k - 1.0) * x * p1 - (k - 1.0) * p0) / k);
            }
            derivative = n * (x * p1 - p0) / (x * x - 1.0);
            let step = p1 / derivative;
            x -= step;
            if step.abs() < 1e-16 {
                break;
            }
        }
        nodes[i] = x;
        weights[i] = 2.0 / ((1.0 - x * x) * derivative * derivative);
    }
    (nodes, weights)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule_integrates_polynomials_and_its_matrix_their_antiderivatives() {
        let rule = rule();
        let total: f64 = rule.weights.iter().sum();
        assert!((total - 2.0).abs() < 1e-14, "{total}");
        // x^k for k up to 2 NODES - 1 is integrated exactly.
        for k in [2, 7, 30] {
            let got: f64 = rule
                .nodes
                .iter()
                .zip(&rule.weights)
                .map(|(x, w)| w * x.powi(k))
                .sum();
            let want = if k % 2 == 0 {
                2.0 / (k + 1) as f64
            } else {
                0.0
            };
            assert!((got - want).abs() < 1e-14, "x^{k}: {got} vs {want}");
        }
        // ∫_{-1}^{x_k} x^5 dx = (x_k^6 - 1) / 6.
        for (k, row) in rule.integration.iter().enumerate() {
            let got: f64 = row
                .iter()
                .zip(&rule.nodes)
                .map(|(s, x)| s * x.powi(5))
                .sum();
            let want = (rule.nodes[k].powi(6) - 1.0) / 6.0;
            assert!((got - want).abs() < 1e-14, "node {k}: {got} vs {want}");
        }
    }
}
