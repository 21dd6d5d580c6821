//! The unnormalised posterior density in logit space, evaluated without
//! cancellation at any counts: where its mass lies (the window), how many
//! cells the quadrature needs there, its normaliser alone (for the
//! predictive) and its mode.

use super::trapezoid::node_weight;
use crate::bayes::grid_weights::GridWeights;
use crate::bayes::logit::{ln_sigmoid, logit, sigmoid, T_MAX};
use crate::bayes::numeric::golden_min;
use crate::bayes::Counts;
use crate::prior::Prior;

/// How far below its peak (in nats) the log density may fall before the
/// window ends: e^-36 ≈ 2e-16, the resolution of `f64` itself.
const WINDOW_NATS: f64 = 36.0;
/// Cells of the quadrature. The trapezoid rule converges geometrically for
/// smooth densities, so this is generous; grid priors get more (see `cells_for`).
const CELLS: usize = 256;
/// The most cells a grid prior may ask for.
const MAX_CELLS: usize = 1 << 16;

/// The unnormalised posterior in logit space:
/// `ℓ(t) = A ln σ(t) + B ln σ(-t) + ln g(σ(t))` on the prior's support, where
/// A and B include the Jacobian dp/dt = p(1-p) and `g` is a grid prior's
/// interpolated weight (1 for the other priors). The first two terms are
/// concave, which is what places the window.
pub(in crate::bayes) struct Kernel<'a> {
    a: f64,
    b: f64,
    /// Support in logit space.
    lo: f64,
    hi: f64,
    grid: Option<GridWeights<'a>>,
    /// Extra nats for the window when `g` varies (a grid prior).
    extra_nats: f64,
    /// The reference point that keeps evaluations accurate at huge
    /// counts: the kernel's mode ln(A/B), or where the posterior piles up
    /// when the prior excludes that mode (see `new`).
    t_ref: f64,
    sig_ref: f64,
    sig_neg_ref: f64,
    /// ℓ(t) = `log_offset` + the relative value `eval` returns.
    pub(super) log_offset: f64,
}

/// One evaluation of the kernel.
pub(in crate::bayes) struct Eval {
    /// Log density in logit space, relative to the reference point.
    pub(in crate::bayes) log_t: f64,
    /// Log density in p space, relative likewise.
    pub(super) log_p: f64,
    pub(super) p: f64,
}

impl<'a> Kernel<'a> {
    pub(super) fn new(prior: &'a Prior, counts: Counts) -> Self {
        let (s, f) = (counts.successes as f64, counts.failures as f64);
        let (a0, b0) = match prior {
            Prior::Beta { a, b } => (*a, *b),
            _ => (1.0, 1.0),
        };
        let (a, b) = (a0 + s, b0 + f);
        let (lo, hi, grid, extra_nats) = match prior {
            Prior::Uniform | Prior::Beta { .. } => (-T_MAX, T_MAX, None, 0.0),
            Prior::Step { lower, upper } => (logit(*lower), logit(*upper), None, 0.0),
            Prior::Grid { weights } => {
                let k = weights.len() - 1;
                let first = weights.iter().position(|w| *w > 0.0).unwrap_or(0);
                let last = weights.iter().rposition(|w| *w > 0.0).unwrap_or(k);
                let lower = first.saturating_sub(1) as f64 / k as f64;
                let upper = (last + 1).min(k) as f64 / k as f64;
                let max = weights.iter().copied().fold(0.0, f64::max);
                let min = weights
                    .iter()
                    .copied()
                    .filter(|w| *w > 0.0)
                    .fold(f64::INFINITY, f64::min);
                (
                    logit(lower),
                    logit(upper),
                    Some(GridWeights::new(weights)),
                    (max / min).ln().min(30.0),
                )
            }
        };
        let (mut lo, mut hi) = (lo.max(-T_MAX), hi.min(T_MAX));
        // The concave part's mode on the support: where a step or grid
        // prior excludes the unconstrained mode ln(A/B), the posterior piles
        // up against the support's edge, and evaluations there must be
        // relative to a point nearby, not many nats away.
        let mut t_ref = (a / b).ln().clamp(lo, hi);
        // Likewise where a grid prior's run of zero weights (a hole inside
        // its support) holds that mode: the posterior piles up against one
        // edge of the hole, the one nearer in likelihood, and the window is
        // placed from there (from inside the hole it may miss the mass
        // altogether when the counts are large). When the other edge is
        // far below in likelihood, the support ends at the hole, so that
        // the quadrature's cells go to the pile and not across the hole.
        if let Some((below, above)) = grid.and_then(|g| g.hole_at(sigmoid(t_ref), sigmoid(-t_ref)))
        {
            let (t_below, t_above) = (logit(below), logit(above));
            let concave = |t: f64| a * ln_sigmoid(t) + b * ln_sigmoid(-t);
            let (c_below, c_above) = (concave(t_below), concave(t_above));
            let negligible = 2.0 * WINDOW_NATS + extra_nats;
            if c_above >= c_below {
                t_ref = t_above;
                if c_below < c_above - negligible {
                    lo = t_above;
                }
            } else {
                t_ref = t_below;
                if c_above < c_below - negligible {
                    hi = t_below;
                }
            }
        }
        let log_offset = a * ln_sigmoid(t_ref) + b * ln_sigmoid(-t_ref);
        Kernel {
            a,
            b,
            lo,
            hi,
            grid,
            extra_nats,
            t_ref,
            sig_ref: sigmoid(t_ref),
            sig_neg_ref: sigmoid(-t_ref),
            log_offset,
        }
    }

    /// (ln σ(t) - ln σ(t_ref), ln σ(-t) - ln σ(-t_ref), σ(t)), computed from
    /// δ = t - t_ref so that nothing cancels when A and B are huge. Far from
    /// the reference (|δ| > 1) the δ form cancels instead (1 + (e^δ - 1)
    /// loses every digit of e^δ once δ < -37), while the plain differences
    /// are as exact as their terms: there they are used.
    fn log_sigmoids(&self, t: f64) -> (f64, f64, f64) {
        let delta = t - self.t_ref;
        if delta.abs() > 1.0 {
            return (
                ln_sigmoid(t) - ln_sigmoid(self.t_ref),
                ln_sigmoid(-t) - ln_sigmoid(-self.t_ref),
                sigmoid(t),
            );
        }
        let em = delta.exp_m1(); // e^δ - 1
        let em_neg = -em / (1.0 + em); // e^-δ - 1
        let d_pos = -(self.sig_neg_ref * em_neg).ln_1p();
        let d_neg = -(self.sig_ref * em).ln_1p();
        let p = self.sig_ref * (1.0 + em) / (1.0 + self.sig_ref * em);
        // Rounding can carry the ratio a hair past 1.
        let p = if p.is_finite() {
            p.clamp(0.0, 1.0)
        } else {
            sigmoid(t)
        };
        (d_pos, d_neg, p)
    }

    /// The concave part, relative to the reference point.
    fn concave(&self, t: f64) -> f64 {
        let (d_pos, d_neg, _) = self.log_sigmoids(t);
        self.a * d_pos + self.b * d_neg
    }

    pub(in crate::bayes) fn eval(&self, t: f64) -> Eval {
        let (d_pos, d_neg, p) = self.log_sigmoids(t);
        let g = match self.grid {
            // 1 - p from the logit, where p itself has rounded to 1.
            Some(grid) => grid.at(p, sigmoid(-t)).ln(),
            None => 0.0,
        };
        Eval {
            log_t: self.a * d_pos + self.b * d_neg + g,
            log_p: (self.a - 1.0) * d_pos + (self.b - 1.0) * d_neg + g,
            p,
        }
    }

    /// The interval of the support where the concave part is within
    /// `WINDOW_NATS` (+ a grid prior's spread) of its maximum on the support.
    pub(super) fn window(&self) -> (f64, f64) {
        let centre = self.t_ref.clamp(self.lo, self.hi);
        let target = self.concave(centre) - WINDOW_NATS - self.extra_nats;
        let sd = (1.0 / self.a + 1.0 / self.b).sqrt();
        let left = self.edge(centre, self.lo, target, sd);
        let right = self.edge(centre, self.hi, target, sd);
        if right > left {
            (left, right)
        } else {
            // A support narrower than f64 can split: widen by a hair.
            (left - 1e-12, right + 1e-12)
        }
    }

    /// Walks from `centre` towards `bound` to where the concave part drops to `target`.
    fn edge(&self, centre: f64, bound: f64, target: f64, sd: f64) -> f64 {
        if self.concave(bound) >= target {
            return bound;
        }
        let dir = (bound - centre).signum();
        let (mut inside, mut outside) = (centre, bound);
        let mut step = sd;
        loop {
            let t = centre + dir * step;
            if dir * (t - bound) >= 0.0 {
                break;
            }
            if self.concave(t) < target {
                outside = t;
                break;
            }
            inside = t;
            step *= 2.0;
        }
        // Bisection, until the bracket is a small part of the window found so
        // far (the window can be far narrower than `sd` at a support's edge).
        for _ in 0..200 {
            if (outside - inside).abs() <= 1e-2 * (inside - centre).abs() {
                break;
            }
            let mid = 0.5 * (inside + outside);
            if self.concave(mid) >= target {
                inside = mid;
            } else {
                outside = mid;
            }
        }
        outside
    }

    /// Enough cells to resolve a grid prior's knots inside the window, and
    /// four times as many where a step or grid prior's support cuts the
    /// window: there the density is largest at the cut, so the sums
    /// converge as h⁴ only, not geometrically.
    pub(super) fn cells_for(&self, left: f64, right: f64) -> usize {
        let cut = (left <= self.lo && self.lo > -T_MAX) || (right >= self.hi && self.hi < T_MAX);
        let base = if cut { 4 * CELLS } else { CELLS };
        match self.grid {
            None => base,
            Some(grid) => {
                let knots = (sigmoid(right) - sigmoid(left)) * grid.intervals() as f64;
                ((4.0 * knots).ceil() as usize).clamp(base, MAX_CELLS)
            }
        }
    }

    /// ln Z for these counts, without the rest of a [`Posterior`].
    pub(super) fn log_normaliser(&self) -> f64 {
        let (left, right) = self.window();
        let cells = self.cells_for(left, right);
        let h = (right - left) / cells as f64;
        let logs: Vec<f64> = (0..=cells)
            .map(|j| self.eval(left + h * j as f64).log_t)
            .collect();
        let peak = logs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let total: f64 = logs
            .iter()
            .enumerate()
            .map(|(j, l)| node_weight(j, cells + 1) * (l - peak).exp())
            .sum();
        self.log_offset + peak + (total * h).ln()
    }

    /// The mode in p space: the best node, refined by golden-section search.
    pub(super) fn mode(&self, left: f64, h: f64, log_pdens: &[f64], ps: &[f64]) -> f64 {
        let best = log_pdens
            .iter()
            .enumerate()
            .max_by(|x, y| x.1.total_cmp(y.1))
            .map_or(0, |(j, _)| j);
        let last = log_pdens.len() - 1;
        if best == 0 || best == last {
            // The density rises towards the window's edge: the mode is the
            // edge of the support (or p = 0 or 1 beyond f64's reach).
            return ps[best];
        }
        let lo = left + h * (best - 1) as f64;
        let hi = left + h * (best + 1) as f64;
        let t = golden_min(|t| -self.eval(t).log_p, lo, hi);
        self.eval(t).p
    }
}
