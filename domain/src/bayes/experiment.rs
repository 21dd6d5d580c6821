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
//! The integrals run in logit space, where each density is smooth, over the
//! union of the arms' own windows (the regions `Posterior` found to hold
//! their mass), cut into pieces as narrow as the narrowest arm covering them
//! needs, and the gaps between windows cut too; an arm is evaluated only on
//! the pieces that meet its window. Each piece gets an n-point Gauss–Legendre
//! rule; a CDF inside a piece comes from integrating the density's
//! interpolating polynomial through the same nodes (a spectral integration
//! matrix), so no density is evaluated twice. Every arm is normalised by the
//! same quadrature, so an arm's density integrates to 1 exactly as used.
//!
//! The uplift's distribution is that of Y = ln(p_i / p_c):
//! F_Y(y) = P(p_i <= e^y p_c) = ∫ f_c(x) F_i(e^y x) dx, integrated over the
//! narrower arm's own 96-node rule against the wider arm's CDF at the scaled
//! points (the Legendre series through a piece's nodes, evaluated anywhere;
//! where a scaled point passes p = 1 the rule stops at the kink), with f_Y
//! and f_Y' alongside. The median solves F_Y(y) = 1/2 by Newton's method
//! inside a bracket, from the mean corrected for skewness: exact to ~1e-12 of
//! Y's spread, as the quadrature. The HPDI of U solves for both ends at once
//! (mass between them, equal density of U at both) by Newton's method from
//! the normal approximation, to ~1e-6 of U's spread at worst (small counts;
//! ~1e-9 and better at typical ones); where that fails (a density monotone
//! up to an end of the range, as for a uniform arm) a bracketed search over
//! the lower tail's probability decides. Y is log-concave for Beta
//! posteriors with b >= 1 (every arm with a uniform prior: ln p of a
//! Beta(a, b) has a log-concave density then, and so has a difference of
//! independent log-concave variables), so U is unimodal and its HPDI one
//! interval. Where U's density is flat (a uniform arm over a narrow control:
//! U is uniform-like from −1 up to about 1/p_c − 1) the HPDI's width is
//! exact but its place is one of many. About seven integrals per arm, so an
//! experiment's cost is the shared quadrature plus ~700 series evaluations
//! per arm.

use std::cell::OnceCell;

use serde::{Deserialize, Serialize};

use super::gauss_legendre::{rule, NODES};
use super::logit::{ln_sigmoid, sigmoid};
use super::numeric::{find_root, Root};
use super::posterior::Kernel;
use super::special::upper_incomplete_gamma;
use super::{check_mass, BayesError, Interval, Posterior, DEFAULT_MASS};
use crate::number::Shown;
use crate::prior::Prior;

/// The fewest arms an experiment has.
pub const MIN_ARMS: usize = 2;
/// The most arms an experiment may have.
pub const MAX_ARMS: usize = 20;
/// The ROPE's relative half-width unless asked otherwise: ±1 % of the control.
pub const DEFAULT_ROPE: f64 = 0.01;

/// Pieces per arm window: each piece spans about half a posterior sd.
const PIECES_PER_WINDOW: usize = 8;
/// The uplift rule's fewest pieces per window and widest piece: 16 nodes
/// on 2 sd of a near-Gaussian density, or on 4 units of logit for a wide
/// one (the logistic's poles at ±iπ still leave ~1e-17), are exact to f64.
const UPLIFT_PIECES: usize = 6;
const UPLIFT_PIECE: f64 = 4.0;
/// Newton's method on the uplift stops after a step below this many of Y's
/// spreads: its error squares at each step, so what is left is ~1e-12 of
/// the spread or less.
const NEWTON_DONE: f64 = 1e-7;
/// The widest piece in logit space, so that gaps between windows (where the
/// integrands follow the logistic p(1-p), with poles at distance π) and very
/// wide windows stay resolved.
const MAX_PIECE: f64 = 1.0;

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
        Shown(super::decision::MIN_PLANNED_WEIGHT_RATIO),
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

/// The distribution of Y = ln(p_num / p_den) for two arms of a quadrature.
struct Ratio<'q, 'a> {
    grid: &'q Quadrature<'a>,
    num: usize,
    den: usize,
    /// Integrate over the denominator's nodes (it is the narrower in logit
    /// space) against the numerator's CDF, or the other way round.
    over_den: bool,
    /// Y's range: beyond it F_Y is 0 or 1 to e^-36.
    lo: f64,
    hi: f64,
    /// Where the searches start (about the median) and their scale (Y's sd).
    start: f64,
    spread: f64,
}

/// F_Y, f_Y and f_Y' at one y.
#[derive(Clone, Copy)]
struct YPoint {
    y: f64,
    cdf: f64,
    density: f64,
    slope: f64,
}

impl YPoint {
    /// d/dy of ln f_U(e^y − 1) = ln f_Y(y) − y, the log density of U.
    fn log_density_u(&self) -> f64 {
        self.density.ln() - self.y
    }

    fn log_density_u_slope(&self) -> f64 {
        self.slope / self.density - 1.0
    }
}

impl<'q, 'a> Ratio<'q, 'a> {
    fn new(grid: &'q Quadrature<'a>, num: usize, den: usize) -> Self {
        let (n, d) = (&grid.arms[num], &grid.arms[den]);
        let over_den = d.hi - d.lo <= n.hi - n.lo;
        let (mean_num, var_num, third_num) = grid.log_moments(num);
        let (mean_den, var_den, third_den) = grid.log_moments(den);
        let (lo, hi) = (
            ln_sigmoid(n.lo) - ln_sigmoid(d.hi),
            ln_sigmoid(n.hi) - ln_sigmoid(d.lo),
        );
        let spread = (var_num + var_den).sqrt();
        let spread = if spread > 0.0 { spread } else { 1e-300 };
        // Cumulants of independent variables add (the third changes sign
        // with the denominator's); for a near-normal Y the median sits about
        // skewness · sd / 6 below the mean.
        let skewness = (third_num - third_den) / (spread * spread * spread);
        let mean = mean_num - mean_den;
        Ratio {
            grid,
            num,
            den,
            over_den,
            lo,
            hi,
            start: (mean - skewness.clamp(-1.0, 1.0) * spread / 6.0).clamp(lo, hi),
            spread,
        }
    }

    /// F_Y(y), f_Y(y) and, if `SLOPE`, f_Y'(y) (else 0).
    fn at<const SLOPE: bool>(&self, y: f64) -> YPoint {
        let grid = self.grid;
        // Over the narrower arm's nodes x: F_Y(y) = Σ w F_num(e^y x) or
        // 1 − Σ w F_den(e^-y x). With shift = ±y and q = e^shift σ(t), the
        // scaled point's logit is t' = shift + ln σ(t) − ln(1 − q),
        // dt'/dshift = 1/(1 − q), so each node adds g(t')/(1 − q) to f_Y and
        // ±(g'(t') + g(t') q)/(1 − q)² to f_Y'.
        let (over, other, sign) = if self.over_den {
            (self.den, self.num, 1.0)
        } else {
            (self.num, self.den, -1.0)
        };
        let shift = sign * y;
        let grow = shift.exp_m1();
        let (mut cdf, mut density, mut slope) = (0.0, 0.0, 0.0);
        let mut cursor = 0;
        let series = grid.series(other);
        let mut add = |node: &UpliftNode| {
            if node.mass == 0.0 {
                return;
            }
            // 1 − q = σ(−t) (1 − e^t (e^shift − 1)), and its log without
            // cancellation.
            let z = -node.odds * grow;
            if z > -1.0 {
                let one_minus = node.sig_neg * (1.0 + z);
                let t = shift + node.ln_sig - node.ln_sig_neg - ln_1p_near_zero(z);
                let point = grid.point_in::<SLOPE>(other, series, t, &mut cursor);
                let inverse = 1.0 / one_minus;
                let q = node.sig * (1.0 + grow);
                cdf += node.mass * point.cdf;
                density += node.mass * point.density * inverse;
                slope += node.mass * (point.slope + point.density * q) * inverse * inverse;
            } else {
                cdf += node.mass;
            }
        };
        // Scaled up (shift > 0), the point passes p = 1 at t_k = logit(e^-shift),
        // beyond which the CDF is 1: a kink the rule must not straddle. The
        // piece holding it gets its own rule up to t_k; past it, all is mass.
        let rule = grid.uplift_rule(over);
        let kink = if shift > 0.0 {
            -shift - (-(-shift).exp_m1()).ln()
        } else {
            f64::INFINITY
        };
        let whole = ((kink - rule.lo) / rule.step).floor();
        let whole = if whole >= rule.pieces as f64 {
            rule.pieces
        } else if whole > 0.0 {
            whole as usize
        } else {
            0
        };
        for node in &rule.nodes[..whole * NODES] {
            add(node);
        }
        if whole < rule.pieces {
            let left = rule.lo + rule.step * whole as f64;
            let mut below = 0.0;
            if kink > left {
                for node in &grid.uplift_nodes_on(over, left, kink) {
                    add(node);
                    below += node.mass;
                }
            }
            let beyond: f64 = rule.nodes[whole * NODES..].iter().map(|n| n.mass).sum();
            cdf += (beyond - below).max(0.0);
        }
        let cdf = if self.over_den { cdf } else { 1.0 - cdf };
        YPoint {
            y,
            cdf: cdf.clamp(0.0, 1.0),
            density: density.max(0.0),
            slope: sign * slope,
        }
    }

    /// The `q`-quantile of Y: Newton's method from `start`, kept inside a
    /// bracket that bisection shrinks when a step leaves it.
    fn quantile(&self, q: f64, start: f64) -> YPoint {
        if q <= 0.0 {
            return self.at::<false>(self.lo);
        }
        if q >= 1.0 {
            return self.at::<false>(self.hi);
        }
        let (mut lo, mut hi) = (self.lo, self.hi);
        let mut y = start.clamp(lo, hi);
        let mut point = self.at::<false>(y);
        for _ in 0..200 {
            let gap = point.cdf - q;
            if gap == 0.0 {
                break;
            }
            if gap < 0.0 {
                lo = y;
            } else {
                hi = y;
            }
            let newton = y - gap / point.density;
            if newton > lo && newton < hi {
                let step = (newton - y).abs();
                y = newton;
                // Newton's error squares at each step: after a small enough
                // step, what is left is far below the tolerance.
                if step <= NEWTON_DONE * self.spread {
                    break;
                }
            } else {
                y = 0.5 * (lo + hi);
                if hi - lo <= 1e-12 * self.spread {
                    break;
                }
            }
            point = self.at::<false>(y);
        }
        YPoint { y, ..point }
    }

    /// The HPDI of U = e^Y − 1 at `mass`: the interval [y1, y2] of Y with
    /// F_Y(y2) − F_Y(y1) = mass where U's density f_U = f_Y(y) e^-y is the
    /// same at both ends. Newton's method on the two ends at once, from the
    /// normal approximation, converges in a few steps when U is near normal;
    /// otherwise (the density monotone at an end, small counts) the robust
    /// search over the lower tail's probability decides.
    fn hpdi(&self, mass: f64, median: f64) -> Interval {
        let (lower, upper) = self
            .hpdi_by_newton(mass, median)
            .unwrap_or_else(|| self.hpdi_by_search(mass, median));
        Interval {
            lower: lower.exp_m1(),
            upper: upper.exp_m1(),
        }
    }

    fn hpdi_by_newton(&self, mass: f64, median: f64) -> Option<(f64, f64)> {
        // For a normal Y, ln f_U = −(y − μ)²/2σ² − y peaks at μ − σ².
        let z = normal_upper_quantile((1.0 - mass) / 2.0);
        let centre = median - self.spread * self.spread;
        let (mut y1, mut y2) = (centre - z * self.spread, centre + z * self.spread);
        for _ in 0..12 {
            if !(self.lo < y1 && y1 < y2 && y2 < self.hi) {
                return None;
            }
            let (a, b) = (self.at::<true>(y1), self.at::<true>(y2));
            if !(a.density > 0.0 && b.density > 0.0) {
                return None;
            }
            let e1 = b.cdf - a.cdf - mass;
            let e2 = a.log_density_u() - b.log_density_u();
            let (s1, s2) = (a.log_density_u_slope(), b.log_density_u_slope());
            // J = [[−f1, f2], [φ1', −φ2']] times (d1, d2) = −(e1, e2).
            let det = a.density * s2 - b.density * s1;
            if !(det.is_finite() && det != 0.0) {
                return None;
            }
            let d1 = (e1 * s2 + b.density * e2) / det;
            let d2 = (a.density * e2 + s1 * e1) / det;
            if !(d1.is_finite() && d2.is_finite()) {
                return None;
            }
            y1 += d1;
            y2 += d2;
            // The HPDI is asked to ~1e-6 of the spread, not the median's
            // 1e-12: after a step of 1e-4 spreads, Newton's error is of the
            // order of its square (~1e-8, far less for near-normal U), and
            // each further step costs two integrals.
            if d1.abs().max(d2.abs()) <= 1e-4 * self.spread {
                return (self.lo < y1 && y1 < y2 && y2 < self.hi).then_some((y1, y2));
            }
        }
        None
    }

    fn hpdi_by_search(&self, mass: f64, median: f64) -> (f64, f64) {
        let span = 1.0 - mass;
        let ends = |s: f64| {
            let lower = self.quantile(s, median);
            let upper = self.quantile(s + mass, lower.y.max(median));
            (lower, upper)
        };
        let g = |s: f64| {
            let (lower, upper) = ends(s);
            lower.log_density_u() - upper.log_density_u()
        };
        // g rises with s for a unimodal U: the lower end climbs the density
        // while the upper end descends it.
        let (g_lo, g_hi) = (g(0.0), g(span));
        let s = if g_lo.is_nan() || g_hi.is_nan() {
            0.5 * span
        } else if g_lo >= 0.0 {
            0.0
        } else if g_hi <= 0.0 {
            span
        } else {
            // Where g is undefined at a probe, that probe is as good a
            // place as the search can tell.
            match find_root(g, 0.0, span, g_lo, g_hi, 1e-10) {
                Root::Found(s) | Root::Undefined(s) => s,
            }
        };
        let (lower, upper) = ends(s);
        (lower.y, upper.y)
    }

    /// P(1 − rope <= p_num / p_den <= 1 + rope).
    fn prob_within(&self, rope: f64) -> f64 {
        let upper = self.at::<false>(rope.ln_1p()).cdf;
        let lower = if rope < 1.0 {
            self.at::<false>((-rope).ln_1p()).cdf
        } else {
            0.0
        };
        (upper - lower).clamp(0.0, 1.0)
    }
}

/// z with P(Z > z) = `tail` for a standard normal Z (0 < tail <= 1/2), by
/// Newton's method on P(Z > z) = Q(1/2, z²/2)/2: a starting point, so a few
/// steps are plenty.
fn normal_upper_quantile(tail: f64) -> f64 {
    let mut z = (-2.0 * tail.ln()).sqrt().min(8.0);
    for _ in 0..20 {
        let upper = 0.5 * upper_incomplete_gamma(0.5, 0.5 * z * z);
        let density = (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt();
        let step = (upper - tail) / density;
        z = (z + step).max(0.0);
        if step.abs() < 1e-12 {
            break;
        }
    }
    z
}

/// P(p_a > p_b) and a summary of p_a - p_b, for independent posteriors.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Comparison {
    pub prob_a_greater: f64,
    pub difference: DifferenceSummary,
}

/// Summary of p_a - p_b.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DifferenceSummary {
    pub mean: f64,
    pub sd: f64,
    pub median: f64,
    pub mass: f64,
    /// Central interval of the difference at `mass`.
    pub pi: Interval,
}

/// P(p_a > p_b) for independent posteriors, by the same integral.
pub fn prob_greater(a: &Posterior<'_>, b: &Posterior<'_>) -> f64 {
    let grid = Quadrature::over(&[a.clone(), b.clone()]);
    grid.weights
        .iter()
        .enumerate()
        .map(|(node, w)| w * grid.arms[0].density[node] * grid.arms[1].cdf[node])
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
/// composite Gauss–Legendre rule, and what it takes to evaluate an arm's
/// density and CDF anywhere else (the uplift needs them at scaled points).
struct Quadrature<'a> {
    /// The pieces' edges in logit space.
    edges: Vec<f64>,
    /// The rule's weight at each node (the piece's half-width included).
    weights: Vec<f64>,
    /// p = σ(t) at each node.
    ps: Vec<f64>,
    /// ln p at each node.
    ln_ps: Vec<f64>,
    /// 1 / half-width of each piece.
    inverse_halves: Vec<f64>,
    arms: Vec<ArmQuadrature<'a>>,
}

/// One arm on the shared nodes.
struct ArmQuadrature<'a> {
    kernel: Kernel<'a>,
    /// The kernel's largest value at the nodes: the density is
    /// exp(log kernel(t) − log_peak), normalised.
    log_peak: f64,
    /// The arm's window: no mass outside.
    lo: f64,
    hi: f64,
    /// The pieces inside the window.
    pieces: std::ops::Range<usize>,
    /// density[node], normalised so that Σ weights · density = 1.
    density: Vec<f64>,
    /// cdf[node], P(p_arm <= p at the node).
    cdf: Vec<f64>,
    /// before[piece], the CDF at the piece's left edge.
    before: Vec<f64>,
    /// The Legendre series of the density and of its integral on each piece
    /// inside the window, made when first asked for.
    series: OnceCell<Vec<Series>>,
    /// The arm's own coarser rule, for the uplift's integrals, made when
    /// first asked for.
    uplift_rule: OnceCell<UpliftRule>,
}

/// An arm's uplift rule: `pieces` pieces of width `step` from `lo`,
/// `NODES` nodes each, in order.
struct UpliftRule {
    lo: f64,
    step: f64,
    pieces: usize,
    /// The normaliser the masses were divided by.
    total: f64,
    nodes: Vec<UpliftNode>,
}

/// An arm's CDF, logit-space density and the density's slope at one point.
#[derive(Clone, Copy, Default)]
struct Point {
    cdf: f64,
    density: f64,
    slope: f64,
}

/// An arm's density on one piece as a Legendre series in the piece's
/// coordinate x ∈ [-1, 1], and its integral from the piece's left edge.
struct Series {
    density: [f64; NODES],
    integral: [f64; NODES + 1],
}

/// A node of an arm's uplift rule: σ(t), σ(−t), e^t, ln σ(t), ln σ(−t) at
/// its logit t, and its weight times the arm's density there (they sum to 1).
#[derive(Clone, Copy)]
struct UpliftNode {
    sig: f64,
    sig_neg: f64,
    /// e^t = σ(t)/σ(−t).
    odds: f64,
    ln_sig: f64,
    ln_sig_neg: f64,
    mass: f64,
}

impl UpliftNode {
    fn at(t: f64, mass: f64) -> Self {
        UpliftNode {
            sig: sigmoid(t),
            sig_neg: sigmoid(-t),
            odds: t.exp(),
            ln_sig: ln_sigmoid(t),
            ln_sig_neg: ln_sigmoid(-t),
            mass,
        }
    }
}

/// ln(1 + z), by its series Σ (−1)^(k+1) z^k / k where |z| < 1/32, where
/// 12 terms are exact in f64 (the usual case: the uplift's scaled points move
/// little), which saves a libm call per node.
fn ln_1p_near_zero(z: f64) -> f64 {
    if z.abs() < 1.0 / 32.0 {
        // Horner from the 12th term down: the first omitted term is below
        // (1/32)^12 / 13 ≈ 8e-20 of z.
        const INVERSES: [f64; 12] = [
            1.0,
            1.0 / 2.0,
            1.0 / 3.0,
            1.0 / 4.0,
            1.0 / 5.0,
            1.0 / 6.0,
            1.0 / 7.0,
            1.0 / 8.0,
            1.0 / 9.0,
            1.0 / 10.0,
            1.0 / 11.0,
            1.0 / 12.0,
        ];
        // z (1 − z (1/2 − z (1/3 − …))).
        z * INVERSES
            .iter()
            .rev()
            .fold(0.0, |sum, inverse| inverse - z * sum)
    } else {
        z.ln_1p()
    }
}

impl<'a> Quadrature<'a> {
    fn over(arms: &[Posterior<'a>]) -> Self {
        let rule = rule();
        let windows: Vec<Window> = arms
            .iter()
            .map(|arm| {
                let (lo, hi, cells) = arm.logit_window();
                // A grid prior's density has a kink at every knot: as many
                // pieces as its posterior needed cells / 8.
                let pieces = match arm.prior() {
                    Prior::Grid { .. } => PIECES_PER_WINDOW.max(cells / 8),
                    _ => PIECES_PER_WINDOW,
                };
                Window {
                    lo,
                    hi,
                    width: (hi - lo) / pieces as f64,
                    // A step or grid prior's window can end where its support
                    // does, where the density jumps to 0.
                    hard: matches!(arm.prior(), Prior::Step { .. } | Prior::Grid { .. }),
                }
            })
            .collect();
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
        let ln_ps = ts.iter().map(|t| ln_sigmoid(*t)).collect();
        let inverse_halves = edges.windows(2).map(|e| 2.0 / (e[1] - e[0])).collect();
        let arms = arms
            .iter()
            .zip(&windows)
            .map(|(arm, window)| ArmQuadrature::new(arm.kernel(), window, &edges, &ts, &weights))
            .collect();
        Quadrature {
            edges,
            weights,
            ps,
            ln_ps,
            inverse_halves,
            arms,
        }
    }

    /// (mean, variance, third central moment) of ln p for arm `arm`, over
    /// its nodes.
    fn log_moments(&self, arm: usize) -> (f64, f64, f64) {
        let q = &self.arms[arm];
        let nodes = q.pieces.start * NODES..q.pieces.end * NODES;
        let mass = |n: usize| self.weights[n] * q.density[n];
        let mean: f64 = nodes.clone().map(|n| mass(n) * self.ln_ps[n]).sum();
        let (mut var, mut third) = (0.0, 0.0);
        for n in nodes {
            let d = self.ln_ps[n] - mean;
            var += mass(n) * d * d;
            third += mass(n) * d * d * d;
        }
        (mean, var.max(0.0), third)
    }

    /// The Legendre series of arm `arm` on the pieces inside its window.
    fn series(&self, arm: usize) -> &[Series] {
        let q = &self.arms[arm];
        q.series.get_or_init(|| {
            let rule = rule();
            q.pieces
                .clone()
                .map(|piece| {
                    let values = &q.density[piece * NODES..(piece + 1) * NODES];
                    let mut density = [0.0; NODES];
                    for (c, row) in density.iter_mut().zip(&rule.legendre) {
                        *c = row.iter().zip(values).map(|(l, v)| l * v).sum();
                    }
                    // ∫_{-1}^x P_0 = P_1 + P_0 and ∫_{-1}^x P_n = (P_{n+1} − P_{n−1})/(2n + 1).
                    let c = |n: usize| density.get(n).copied().unwrap_or(0.0);
                    let mut integral = [0.0; NODES + 1];
                    integral[0] = c(0) - c(1) / 3.0;
                    for (m, e) in integral.iter_mut().enumerate().skip(1) {
                        *e = c(m - 1) / (2 * m - 1) as f64 - c(m + 1) / (2 * m + 3) as f64;
                    }
                    Series { density, integral }
                })
                .collect()
        })
    }

    /// Arm `arm`'s CDF, logit-space density and its slope at `t`, from the
    /// Legendre series through its nodes (`series`, from [`Self::series`])
    /// on the piece holding `t`: the same
    /// polynomial the nodes' CDF integrates, so the two agree at the nodes.
    /// `cursor` is a piece to start looking from (the points of one integral
    /// come in increasing order).
    fn point_in<const SLOPE: bool>(
        &self,
        arm: usize,
        series: &[Series],
        t: f64,
        cursor: &mut usize,
    ) -> Point {
        let q = &self.arms[arm];
        if t <= q.lo {
            return Point::default();
        }
        if t >= q.hi {
            return Point {
                cdf: 1.0,
                ..Point::default()
            };
        }
        let mut piece = (*cursor).clamp(q.pieces.start, q.pieces.end - 1);
        while piece > q.pieces.start && self.edges[piece] > t {
            piece -= 1;
        }
        while piece + 1 < q.pieces.end && self.edges[piece + 1] <= t {
            piece += 1;
        }
        *cursor = piece;
        let inverse_half = self.inverse_halves[piece];
        let x = ((t - self.edges[piece]) * inverse_half - 1.0).clamp(-1.0, 1.0);
        let series = &series[piece - q.pieces.start];
        let recurrence = &rule().recurrence;
        // P_n(x) by the three-term recurrence and P_n'(x) by
        // P'_{n+1} = P'_{n−1} + (2n + 1) P_n, summed as they come: step n
        // makes P_{n+1}, which the density's series has up to n + 1 = NODES − 1
        // and the integral's up to NODES.
        let (mut p0, mut p1) = (1.0, x);
        let (mut d0, mut d1) = (0.0, 1.0);
        let mut density = series.density[0] + series.density[1] * x;
        let mut slope = series.density[1];
        let mut integral = series.integral[0] + series.integral[1] * x;
        let steps = recurrence[1..NODES - 1]
            .iter()
            .zip(&series.density[2..])
            .zip(&series.integral[2..NODES]);
        for ((&(a, b, c), density_n), integral_n) in steps {
            let next = a * x * p1 - b * p0;
            if SLOPE {
                (d0, d1) = (d1, d0 + c * p1);
                slope += density_n * d1;
            }
            (p0, p1) = (p1, next);
            density += density_n * p1;
            integral += integral_n * p1;
        }
        let (a, b, _) = recurrence[NODES - 1];
        integral += series.integral[NODES] * (a * x * p1 - b * p0);
        Point {
            cdf: (q.before[piece] + integral / inverse_half).clamp(0.0, 1.0),
            density: density.max(0.0),
            slope: slope * inverse_half,
        }
    }

    /// Arm `arm`'s own rule for the uplift: 16-point Gauss–Legendre on
    /// pieces of at most `UPLIFT_PIECE` across its window, at least
    /// `UPLIFT_PIECES` of them, with the density from its kernel. Coarser
    /// than the shared nodes (an integrand of one arm's density against
    /// another's CDF needs no more), so each uplift integral is cheap.
    fn uplift_rule(&self, arm: usize) -> &UpliftRule {
        let q = &self.arms[arm];
        q.uplift_rule.get_or_init(|| {
            let rule = rule();
            let width = q.hi - q.lo;
            let pieces = ((width / UPLIFT_PIECE).ceil() as usize).max(UPLIFT_PIECES);
            let step = width / pieces as f64;
            let mut nodes = Vec::with_capacity(pieces * NODES);
            for piece in 0..pieces {
                let left = q.lo + step * piece as f64;
                for (x, w) in rule.nodes.iter().zip(&rule.weights) {
                    let t = left + 0.5 * step * (x + 1.0);
                    let log = q.kernel.eval(t).log_t - q.log_peak;
                    nodes.push(UpliftNode::at(t, 0.5 * step * w * log.exp()));
                }
            }
            let total: f64 = nodes.iter().map(|n| n.mass).sum();
            for n in &mut nodes {
                n.mass /= total;
                // What cannot matter is skipped by every integral.
                if n.mass < 1e-18 {
                    n.mass = 0.0;
                }
            }
            UpliftRule {
                lo: q.lo,
                step,
                pieces,
                total,
                nodes,
            }
        })
    }

    /// Arm `arm`'s uplift-rule nodes on [left, right], inside one piece of
    /// its rule, with masses on the same scale as the rule's.
    fn uplift_nodes_on(&self, arm: usize, left: f64, right: f64) -> [UpliftNode; NODES] {
        let q = &self.arms[arm];
        let total = self.uplift_rule(arm).total;
        let rule = rule();
        let half = 0.5 * (right - left);
        std::array::from_fn(|m| {
            let t = left + half * (rule.nodes[m] + 1.0);
            let log = q.kernel.eval(t).log_t - q.log_peak;
            UpliftNode::at(t, half * rule.weights[m] * log.exp() / total)
        })
    }
}

impl<'a> ArmQuadrature<'a> {
    fn new(
        kernel: Kernel<'a>,
        window: &Window,
        edges: &[f64],
        ts: &[f64],
        weights: &[f64],
    ) -> Self {
        let rule = rule();
        let pieces = edges.len() - 1;
        let nodes = ts.len();
        // Outside its window an arm has no mass (none at all for a step
        // prior, below e^-36 otherwise). Its pieces are those that meet the
        // window; a hard window end is an edge, so none straddles it, and
        // past a soft one the kernel is still exact (and below e^-36).
        let first = edges
            .partition_point(|e| *e <= window.lo)
            .saturating_sub(1)
            .min(pieces - 1);
        let last = edges
            .partition_point(|e| *e < window.hi)
            .clamp(first + 1, pieces);
        let (lo, hi) = (edges[first], edges[last]);
        // Only the nodes of its own pieces are evaluated: elsewhere the
        // density is 0 and the CDF 0 before the window, 1 after it.
        let inside = first * NODES..last * NODES;
        let mut values = vec![0.0; nodes];
        for n in inside.clone() {
            values[n] = kernel.eval(ts[n]).log_t;
        }
        let log_peak = values[inside.clone()]
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max);
        for v in &mut values[inside.clone()] {
            *v = (*v - log_peak).exp();
        }
        let total: f64 = values[inside.clone()]
            .iter()
            .zip(&weights[inside.clone()])
            .map(|(v, w)| v * w)
            .sum();
        for v in &mut values[inside.clone()] {
            *v /= total;
        }
        // The CDF: whole pieces summed, and inside a piece the integral
        // of the density's interpolating polynomial up to each node.
        let mut cdf = vec![0.0; first * NODES];
        cdf.reserve(nodes - first * NODES);
        let mut before = vec![0.0; first];
        before.reserve(pieces + 1 - first);
        let mut sum = 0.0f64;
        for piece in first..last {
            before.push(sum);
            let start = piece * NODES;
            let half = weights[start] / rule.weights[0];
            let slice = &values[start..start + NODES];
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
        let sum = sum.clamp(0.0, 1.0);
        cdf.resize(nodes, sum);
        before.resize(pieces + 1, sum);
        ArmQuadrature {
            kernel,
            log_peak,
            lo,
            hi,
            pieces: first..last,
            density: values,
            cdf,
            before,
            series: OnceCell::new(),
            uplift_rule: OnceCell::new(),
        }
    }
}

/// An arm's window in logit space, the widest piece it needs, and whether
/// its ends must be edges.
struct Window {
    lo: f64,
    hi: f64,
    width: f64,
    hard: bool,
}

/// The edges of the pieces, from the leftmost window's start to the
/// rightmost's end: each piece as wide as the narrowest arm whose window
/// holds its left edge needs (its window cut into `PIECES_PER_WINDOW`, more
/// for a grid prior: as many as its posterior needed cells / 8), never wider
/// than `MAX_PIECE` nor than any arm whose window it meets, and never
/// stepping over a hard window end or far into a much narrower window. Where arms overlap, that costs the narrowest arm's
/// pieces, not the union of every arm's cuts; a soft window end (a density
/// down to e^-36) may fall inside a piece.
fn piece_edges(windows: &[Window]) -> Vec<f64> {
    let start = windows.iter().map(|w| w.lo).fold(f64::INFINITY, f64::min);
    let end = windows
        .iter()
        .map(|w| w.hi)
        .fold(f64::NEG_INFINITY, f64::max);
    let mut edges = vec![start];
    let mut t = start;
    while t < end {
        let width = windows
            .iter()
            .filter(|w| w.lo <= t && t < w.hi)
            .fold(MAX_PIECE, |narrowest, w| narrowest.min(w.width));
        let mut next = t + width;
        for w in windows {
            // A window starting inside the piece: a much narrower one (the
            // next arm across a gap) starts a piece of its own; one of
            // about the same width only caps this piece's width, so that
            // arms starting a little apart do not leave slivers.
            if w.lo > t && w.lo < next {
                if w.hard || w.width < 0.5 * width {
                    next = w.lo;
                } else {
                    next = next.min(t + w.width);
                }
            }
            if w.hard && w.hi > t && w.hi < next {
                next = w.hi;
            }
        }
        // No sliver of a piece at the end.
        if next >= end - 1e-9 * width {
            next = end;
        }
        edges.push(next);
        t = next;
    }
    edges
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_short_series_of_ln_1p_agrees_with_libm() {
        for z in [
            0.0, 1e-12, -3e-7, 1e-4, -0.002, 0.01, -0.0312, 0.0312, 0.2, -0.5,
        ] {
            let (got, want) = (ln_1p_near_zero(z), f64::ln_1p(z));
            assert!(
                (got - want).abs() <= 2.0 * f64::EPSILON * want.abs(),
                "{z}: {got} vs {want}"
            );
        }
    }
}
