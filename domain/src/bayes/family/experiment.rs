//! The figures of an experiment whose arms share a family (poisson or
//! normal): P(best), expected loss (absolute and relative), P(arm > control)
//! and the uplift over the control, each an exact one-dimensional integral
//! as for Bernoulli arms (`bayes::experiment`), with f_i and F_i the density
//! and CDF of arm i's parameter x:
//!
//! - P(best)_i = ∫ f_i Π_{j≠i} F_j;
//! - E[max_j x_j] = Σ_i ∫ x f_i Π_{j≠i} F_j, and the expected loss of arm i,
//!   E[max_j x_j − x_i], computed with x measured from the control's centre
//!   so that it keeps its precision when the arms' values are large and
//!   close; relative to the arm's mean where that is positive;
//! - P(x_i > x_control) = ∫ f_i F_control;
//! - the uplift x_i − x_control: its mean E[x_i] − E[x_control]; relative,
//!   E[x_i/x_control] − 1 = E[x_i]·E[1/λ_control] − 1 for poisson arms
//!   (E[1/λ] = rate/(shape − 1), finite for shape > 1); for normal arms μ
//!   has mass on both sides of 0, so x_i/x_control has no mean and the
//!   relative uplift is `None`.
//!
//! The integrals run on one axis y where every arm's density is smooth:
//! y = ln(λ/λ*_control) for poisson arms (each arm's own v shifted),
//! y = asinh((μ − loc_control)/scale_control) for normal arms. The axis is
//! cut into pieces as narrow as the narrowest arm covering them needs (each
//! arm's own pieces, mapped to y), each with the 16-point Gauss–Legendre
//! rule; an arm's CDF at the nodes integrates its interpolating polynomial
//! (the same matrices as the Bernoulli experiment), so every arm is
//! evaluated once per node of its own window.

use serde::Serialize;

use super::line::Shape;
use super::normal::{ln_cosh, StudentShape, StudentT};
use super::poisson::{GammaPosterior, GammaShape};
use crate::bayes::gauss_legendre::{rule, NODES};
use crate::bayes::{ExperimentError, MAX_ARMS, MIN_ARMS};

/// The arms of one experiment, all of one family.
#[derive(Debug, Clone, Copy)]
pub enum FamilyArms<'a> {
    /// Each arm's posterior of λ.
    Poisson(&'a [GammaPosterior]),
    /// Each arm's marginal posterior of μ.
    Normal(&'a [StudentT]),
}

impl FamilyArms<'_> {
    fn len(&self) -> usize {
        match self {
            FamilyArms::Poisson(arms) => arms.len(),
            FamilyArms::Normal(arms) => arms.len(),
        }
    }
}

/// The uplift of an arm over the control.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FamilyUplift {
    /// E[x_arm − x_control]; `None` where a mean does not exist.
    pub absolute: Option<f64>,
    /// E[x_arm / x_control] − 1; `None` where it does not exist.
    pub relative: Option<f64>,
}

/// The figures of one arm.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FamilyArmFigures {
    /// E[x_i] (closed form); `None` where it does not exist.
    pub mean: Option<f64>,
    /// P(x_i is the largest of all arms).
    pub prob_best: f64,
    /// P(x_i > x_control); `None` for the control itself.
    pub prob_beats_control: Option<f64>,
    /// E[max_j x_j − x_i]; `None` where an arm has no mean.
    pub expected_loss: Option<f64>,
    /// The loss as a fraction of E[x_i], where that is positive.
    pub relative_loss: Option<f64>,
    /// The uplift over the control; `None` for the control itself.
    pub uplift: Option<FamilyUplift>,
}

/// The figures of an experiment, one entry per arm in the order given.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FamilyExperimentFigures {
    /// E[max_j x_j]; `None` where an arm has no mean.
    pub expected_max: Option<f64>,
    /// Each arm's figures, in the order given.
    pub arms: Vec<FamilyArmFigures>,
}

/// One arm's density on the shared axis.
enum Kernel {
    /// −shape·φ(y − shift).
    Gamma { shape: GammaShape, shift: f64 },
    /// The t's s = asinh(offset + ratio·sinh y).
    Student {
        shape: StudentShape,
        offset: f64,
        ratio: f64,
    },
}

impl Kernel {
    /// ln of the density at a node y, given sinh y and ln cosh y (shared by
    /// every arm at that node).
    fn log_density(&self, y: f64, sinh_y: f64, ln_cosh_y: f64) -> f64 {
        match self {
            Kernel::Gamma { shape, shift } => shape.log_density(y - shift),
            Kernel::Student {
                shape,
                offset,
                ratio,
            } => {
                // The s-density (1 + sinh²s/ν)^(−(ν+1)/2) cosh s times
                // ds/dy = ratio·cosh y / cosh s, with sinh s = offset +
                // ratio·sinh y: the cosh s cancels, and the constant ratio is
                // dropped (every arm is normalised).
                let u = offset + ratio * sinh_y;
                -0.5 * (shape.dof + 1.0) * (u * u / shape.dof).ln_1p() + ln_cosh_y
            }
        }
    }

    /// The width of a piece at y: the arm's own piece there, mapped.
    fn width(&self, y: f64) -> f64 {
        match self {
            Kernel::Gamma { shape, shift } => {
                let (_, base) = shape.core();
                base + 0.25 * (y - shift).abs()
            }
            Kernel::Student {
                shape,
                offset,
                ratio,
            } => {
                let (_, base) = shape.core();
                let s = (offset + ratio * y.sinh()).asinh();
                (base + 0.25 * s.abs()) * (ln_cosh(s) - ln_cosh(y)).exp() / ratio
            }
        }
    }
}

/// A node of the shared axis, with what every normal arm needs there.
struct Node {
    y: f64,
    sinh: f64,
    ln_cosh: f64,
}

/// The arms on the shared axis, x − x_control's centre at y, each arm's
/// closed-form mean and relative uplift.
type Axis<'a> = (
    Vec<Arm>,
    Box<dyn Fn(f64) -> f64 + 'a>,
    Vec<Option<f64>>,
    Vec<Option<f64>>,
);

struct Arm {
    kernel: Kernel,
    lo: f64,
    hi: f64,
}

/// The figures of an experiment of one family; `control` indexes the arms.
pub fn family_experiment(
    arms: FamilyArms<'_>,
    control: usize,
) -> Result<FamilyExperimentFigures, ExperimentError> {
    let k = arms.len();
    if !(MIN_ARMS..=MAX_ARMS).contains(&k) {
        return Err(ExperimentError::Arms(k));
    }
    if control >= k {
        return Err(ExperimentError::Control { control, arms: k });
    }
    // The axis, each arm on it, x − x0 at y, the closed-form means and
    // whether every arm has one.
    let (axis, offset_at, means, relative): Axis<'_> = match arms {
        FamilyArms::Poisson(arms) => {
            let c = &arms[control];
            let center = c.shape() / c.rate();
            let inverse = (c.shape() > 1.0).then(|| c.rate() / (c.shape() - 1.0));
            let axis = arms
                .iter()
                .map(|arm| {
                    let shift = (arm.shape() / arm.rate() / center).ln();
                    let (lo, hi) = arm.line().bounds();
                    Arm {
                        kernel: Kernel::Gamma {
                            shape: arm.line().shape,
                            shift,
                        },
                        lo: lo + shift,
                        hi: hi + shift,
                    }
                })
                .collect();
            let means = arms.iter().map(|a| Some(a.mean())).collect();
            let relative = arms
                .iter()
                .map(|a| inverse.map(|inv| a.mean() * inv - 1.0))
                .collect();
            (
                axis,
                Box::new(move |y: f64| center * y.exp_m1()),
                means,
                relative,
            )
        }
        FamilyArms::Normal(arms) => {
            let c = &arms[control];
            let (loc, scale) = (c.loc(), c.scale());
            let axis = arms
                .iter()
                .map(|arm| {
                    let offset = (loc - arm.loc()) / arm.scale();
                    let ratio = scale / arm.scale();
                    let (lo, hi) = arm.line().bounds();
                    let to_y = |s: f64| ((s.sinh() - offset) / ratio).asinh();
                    Arm {
                        kernel: Kernel::Student {
                            shape: arm.line().shape,
                            offset,
                            ratio,
                        },
                        lo: to_y(lo),
                        hi: to_y(hi),
                    }
                })
                .collect();
            let means = arms.iter().map(StudentT::mean).collect();
            (
                axis,
                Box::new(move |y: f64| scale * y.sinh()),
                means,
                vec![None; k],
            )
        }
    };
    let edges = piece_edges(&axis);
    let rule = rule();
    let mut ys = Vec::with_capacity((edges.len() - 1) * NODES);
    let mut weights = Vec::with_capacity(ys.capacity());
    for piece in edges.windows(2) {
        let (mid, half) = (0.5 * (piece[0] + piece[1]), 0.5 * (piece[1] - piece[0]));
        for (x, w) in rule.nodes.iter().zip(&rule.weights) {
            ys.push(mid + half * x);
            weights.push(half * w);
        }
    }
    let offsets: Vec<f64> = ys.iter().map(|y| offset_at(*y)).collect();
    let nodes: Vec<Node> = ys
        .iter()
        .map(|&y| Node {
            y,
            sinh: y.sinh(),
            ln_cosh: ln_cosh(y),
        })
        .collect();
    let on_nodes: Vec<(Vec<f64>, Vec<f64>)> = axis
        .iter()
        .map(|arm| density_and_cdf(arm, &edges, &nodes, &weights))
        .collect();

    let mut prob_best = vec![0.0; k];
    let mut best_d = vec![0.0; k];
    let mut mean_d = vec![0.0; k];
    let mut beats = vec![0.0; k];
    let mut prefix = vec![1.0; k + 1];
    for (node, (&weight, &d)) in weights.iter().zip(&offsets).enumerate() {
        for j in 0..k {
            prefix[j + 1] = prefix[j] * on_nodes[j].1[node];
        }
        let mut suffix = 1.0;
        for i in (0..k).rev() {
            let density = on_nodes[i].0[node] * weight;
            let others = prefix[i] * suffix;
            prob_best[i] += density * others;
            best_d[i] += density * others * d;
            mean_d[i] += density * d;
            beats[i] += density * on_nodes[control].1[node];
            suffix *= on_nodes[i].1[node];
        }
    }
    let all_means = means.iter().all(Option::is_some);
    let max_d: f64 = best_d.iter().sum();
    let control_mean = means[control];
    let figures = (0..k)
        .map(|i| {
            let loss = all_means.then(|| (max_d - mean_d[i]).max(0.0));
            FamilyArmFigures {
                mean: means[i],
                prob_best: prob_best[i].clamp(0.0, 1.0),
                prob_beats_control: (i != control).then(|| beats[i].clamp(0.0, 1.0)),
                expected_loss: loss,
                relative_loss: match (loss, means[i]) {
                    (Some(l), Some(m)) if m > 0.0 => Some(l / m),
                    _ => None,
                },
                uplift: (i != control).then(|| FamilyUplift {
                    absolute: means[i].zip(control_mean).map(|(m, c)| m - c),
                    relative: relative[i],
                }),
            }
        })
        .collect();
    // The offsets are measured from the control's centre (y = 0), so
    // E[max] = centre + Σ best_d.
    let center = match arms {
        FamilyArms::Poisson(arms) => arms[control].shape() / arms[control].rate(),
        FamilyArms::Normal(arms) => arms[control].loc(),
    };
    Ok(FamilyExperimentFigures {
        expected_max: all_means.then_some(center + max_d),
        arms: figures,
    })
}

/// An arm's normalised density and its CDF at every node (0 before its
/// window, 1 after it, and only its own pieces evaluated).
fn density_and_cdf(arm: &Arm, edges: &[f64], ys: &[Node], weights: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let rule = rule();
    let pieces = edges.len() - 1;
    let nodes = ys.len();
    let first = edges
        .partition_point(|e| *e <= arm.lo)
        .saturating_sub(1)
        .min(pieces - 1);
    let last = edges
        .partition_point(|e| *e < arm.hi)
        .clamp(first + 1, pieces);
    let inside = first * NODES..last * NODES;
    let mut density = vec![0.0; nodes];
    for n in inside.clone() {
        let node = &ys[n];
        density[n] = arm.kernel.log_density(node.y, node.sinh, node.ln_cosh);
    }
    let peak = density[inside.clone()]
        .iter()
        .copied()
        .fold(f64::NEG_INFINITY, f64::max);
    for v in &mut density[inside.clone()] {
        *v = (*v - peak).exp();
    }
    let total: f64 = density[inside.clone()]
        .iter()
        .zip(&weights[inside.clone()])
        .map(|(v, w)| v * w)
        .sum();
    for v in &mut density[inside] {
        *v /= total;
    }
    let mut cdf = vec![0.0; first * NODES];
    cdf.reserve(nodes - first * NODES);
    let mut sum = 0.0f64;
    for piece in first..last {
        let start = piece * NODES;
        let half = weights[start] / rule.weights[0];
        let slice = &density[start..start + NODES];
        for row in &rule.integration {
            let part: f64 = row.iter().zip(slice).map(|(s, v)| s * v).sum();
            cdf.push((sum + half * part).clamp(0.0, 1.0));
        }
        sum += slice
            .iter()
            .zip(&weights[start..start + NODES])
            .map(|(v, w)| v * w)
            .sum::<f64>();
    }
    cdf.resize(nodes, sum.clamp(0.0, 1.0));
    (density, cdf)
}

/// The pieces' edges from the leftmost window's start to the rightmost's
/// end: each as wide as the narrowest arm covering its start needs (at its
/// start and at its end), a much narrower arm's window starting a piece of
/// its own, and gaps between windows (no mass) one piece each.
fn piece_edges(arms: &[Arm]) -> Vec<f64> {
    let start = arms.iter().map(|a| a.lo).fold(f64::INFINITY, f64::min);
    let end = arms.iter().map(|a| a.hi).fold(f64::NEG_INFINITY, f64::max);
    let mut edges = vec![start];
    let mut t = start;
    while t < end {
        let mut width = f64::INFINITY;
        for arm in arms.iter().filter(|a| a.lo <= t && t < a.hi) {
            let w = arm.kernel.width(t);
            width = width.min(w.min(arm.kernel.width(t + w)));
        }
        let mut next = if width.is_finite() && width > 0.0 {
            t + width
        } else {
            // A gap: on to the next window.
            arms.iter()
                .map(|a| a.lo)
                .filter(|lo| *lo > t)
                .fold(end, f64::min)
        };
        for arm in arms {
            if arm.lo > t && arm.lo < next && arm.kernel.width(arm.lo) < 0.5 * (next - t) {
                next = arm.lo;
            }
        }
        // No sliver at the end, and always a step forward.
        let step = next - t;
        if next >= end - 1e-9 * step || step <= 1e-12 * t.abs().max(1e-300) {
            next = if next >= end - 1e-9 * step {
                end
            } else {
                t + step.max(f64::EPSILON * t.abs())
            };
        }
        edges.push(next);
        t = next;
    }
    edges
}
