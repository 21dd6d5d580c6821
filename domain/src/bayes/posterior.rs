//! The posterior as a quadrature in logit space, and everything computed from it.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::grid_weights::GridWeights;
use super::logit::{ln_sigmoid, logit, sigmoid, T_MAX};
use super::numeric::{find_root, golden_min, Root};
use super::{check_mass, BayesError, Counts};
use crate::prior::Prior;

/// How far below its peak (in nats) the log density may fall before the
/// window ends: e^-36 ≈ 2e-16, the resolution of `f64` itself.
const WINDOW_NATS: f64 = 36.0;
/// Cells of the quadrature. The trapezoid rule converges geometrically for
/// smooth densities, so this is generous; grid priors get more (see `cells_for`).
const CELLS: usize = 256;
/// The most cells a grid prior may ask for.
const MAX_CELLS: usize = 1 << 16;

/// A posterior over `p`, ready to answer questions.
#[derive(Debug, Clone)]
pub struct Posterior<'a> {
    prior: &'a Prior,
    counts: Counts,
    /// First node and spacing, in logit space.
    t0: f64,
    h: f64,
    /// The logit-space log density at each node, relative to `log_peak`.
    log_w: Vec<f64>,
    /// p at each node.
    ps: Vec<f64>,
    /// The cells between nodes, for interpolating inside them.
    cells: Vec<Cell>,
    /// Normalised CDF at each node (0 at the first, 1 at the last).
    cdf: Vec<f64>,
    /// ln of ∫ prior(p) p^s (1-p)^f dp, the prior taken unnormalised (a
    /// grid prior's weights relative to the largest, so that the prior and
    /// everything computed from it are the same at any scale).
    log_z: f64,
    mean: f64,
    sd: f64,
    mode: f64,
}

/// An interval of `p`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Interval {
    pub lower: f64,
    pub upper: f64,
}

/// The usual summaries of a posterior at one interval mass.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Summary {
    pub mean: f64,
    pub sd: f64,
    /// The posterior mode (maximum a posteriori) of the continuous density.
    pub mode: f64,
    pub median: f64,
    /// The mass of `pi` and `hpdi`.
    pub mass: f64,
    /// Central percentile interval.
    pub pi: Interval,
    /// Highest posterior density interval: the narrowest holding `mass`.
    pub hpdi: Interval,
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

impl<'a> Posterior<'a> {
    /// The posterior of `prior` after `counts`.
    pub fn new(prior: &'a Prior, counts: Counts) -> Result<Self, BayesError> {
        let kernel = Kernel::new(prior, counts);
        let (left, right) = kernel.window();
        let n_cells = kernel.cells_for(left, right);
        let h = (right - left) / n_cells as f64;
        let nodes = n_cells + 1;

        // One pass over the nodes: log density (logit space), log density in
        // p space (for the mode), and p itself.
        let mut log_w = Vec::with_capacity(nodes);
        let mut log_pdens = Vec::with_capacity(nodes);
        let mut ps = Vec::with_capacity(nodes);
        for j in 0..nodes {
            let t = left + h * j as f64;
            let e = kernel.eval(t);
            log_w.push(e.log_t);
            log_pdens.push(e.log_p);
            ps.push(e.p);
        }
        let peak = log_w.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if !peak.is_finite() {
            return Err(BayesError::NoMass);
        }

        // Trapezoid sums (with Gregory's end weights) for the normaliser,
        // the mean and the variance.
        let weights: Vec<f64> = log_w
            .iter()
            .enumerate()
            .map(|(j, l)| node_weight(j, nodes) * (l - peak).exp())
            .collect();
        let total: f64 = weights.iter().sum();
        let mean = weights.iter().zip(&ps).map(|(w, p)| w * p).sum::<f64>() / total;
        let var = weights
            .iter()
            .zip(&ps)
            .map(|(w, p)| w * (p - mean) * (p - mean))
            .sum::<f64>()
            / total;
        let log_z = kernel.log_offset + peak + (total * h).ln();

        // CDF with the log density interpolated linearly inside each cell.
        for l in &mut log_w {
            *l -= peak;
        }
        let cells = cells(&log_w);
        let mut cdf = Vec::with_capacity(nodes);
        let mut acc = 0.0f64;
        cdf.push(0.0);
        for cell in &cells {
            acc += cell.mass();
            cdf.push(acc);
        }
        if !(acc > 0.0 && acc.is_finite() && total > 0.0 && mean.is_finite()) {
            return Err(BayesError::NoMass);
        }
        for c in &mut cdf {
            *c /= acc;
        }

        let mode = kernel.mode(left, h, &log_pdens, &ps);
        Ok(Posterior {
            prior,
            counts,
            t0: left,
            h,
            log_w,
            ps,
            cells,
            cdf,
            log_z,
            mean,
            sd: var.max(0.0).sqrt(),
            mode,
        })
    }

    pub fn prior(&self) -> &'a Prior {
        self.prior
    }

    pub fn counts(&self) -> Counts {
        self.counts
    }

    pub fn mean(&self) -> f64 {
        self.mean
    }

    pub fn sd(&self) -> f64 {
        self.sd
    }

    /// The mode of the continuous posterior density.
    pub fn mode(&self) -> f64 {
        self.mode
    }

    pub fn median(&self) -> f64 {
        self.quantile_clamped(0.5)
    }

    /// The `q`-quantile of `p`.
    pub fn quantile(&self, q: f64) -> Result<f64, BayesError> {
        if (0.0..=1.0).contains(&q) {
            Ok(self.quantile_clamped(q))
        } else {
            Err(BayesError::Probability(q))
        }
    }

    fn quantile_clamped(&self, q: f64) -> f64 {
        sigmoid(self.quantile_t(q))
    }

    /// P(p <= x).
    pub fn cdf(&self, x: f64) -> Result<f64, BayesError> {
        if !(0.0..=1.0).contains(&x) {
            return Err(BayesError::Probability(x));
        }
        Ok(self.cdf_t(logit(x)))
    }

    /// Central interval holding `mass`.
    pub fn pi(&self, mass: f64) -> Result<Interval, BayesError> {
        let mass = check_mass(mass)?;
        let tail = (1.0 - mass) / 2.0;
        Ok(Interval {
            lower: self.quantile_clamped(tail),
            upper: self.quantile_clamped(1.0 - tail),
        })
    }

    /// The narrowest interval of `p` holding `mass`.
    pub fn hpdi(&self, mass: f64) -> Result<Interval, BayesError> {
        let mass = check_mass(mass)?;
        let span = 1.0 - mass;
        // 1. A sweep over the nodes finds the narrowest interval to within a
        //    cell, whatever the shape (a grid prior can be multimodal).
        let n = self.nodes();
        let (mut best, mut best_width) = (0, f64::INFINITY);
        let mut j = 0;
        for i in 0..n {
            let target = self.cdf[i] + mass;
            if target > 1.0 {
                break;
            }
            while j < n - 1 && self.cdf[j] < target {
                j += 1;
            }
            let right = if j == 0 {
                self.ps[0]
            } else {
                let (c0, c1) = (self.cdf[j - 1], self.cdf[j]);
                let frac = if c1 > c0 {
                    (target - c0) / (c1 - c0)
                } else {
                    1.0
                };
                self.ps[j - 1] + (self.ps[j] - self.ps[j - 1]) * frac
            };
            if right - self.ps[i] < best_width {
                (best, best_width) = (i, right - self.ps[i]);
            }
        }
        let lo = self.cdf[best.saturating_sub(1)].min(span);
        let hi = self.cdf[(best + 1).min(n - 1)].min(span);
        // 2. Inside that bracket the narrowest interval has equal density at
        //    both ends: find the root of g(u) = ln f(Q(u)) - ln f(Q(u + mass)),
        //    or the bracket's end when the density is monotone there.
        let g = |u: f64| {
            self.log_density_at(self.quantile_t(u)) - self.log_density_at(self.quantile_t(u + mass))
        };
        // Where both ends fall in a hole of a grid prior (zero density at
        // each), g is undefined: then minimise the width itself, whether
        // that is so at the bracket's ends or at a probe inside it.
        let width = |u: f64| self.quantile_clamped(u + mass) - self.quantile_clamped(u);
        let u = match (g(lo), g(hi)) {
            (g_lo, g_hi) if g_lo.is_nan() || g_hi.is_nan() => golden_min(width, lo, hi),
            (g_lo, _) if g_lo >= 0.0 => lo,
            (_, g_hi) if g_hi <= 0.0 => hi,
            (g_lo, g_hi) => match find_root(g, lo, hi, g_lo, g_hi, 1e-12 * (hi - lo)) {
                Root::Found(u) => u,
                Root::Undefined(_) => golden_min(width, lo, hi),
            },
        };
        let u = if u.is_nan() {
            golden_min(width, lo, hi)
        } else {
            u
        };
        // A multimodal posterior (a grid prior with holes) can fool the
        // refinement into a local optimum: the answer is never wider than the
        // sweep's best node, the central interval or either end.
        let u = [u, self.cdf[best].min(span), 0.5 * span, 0.0, span]
            .into_iter()
            .min_by(|a, b| width(*a).total_cmp(&width(*b)))
            .unwrap_or(u);
        Ok(Interval {
            lower: self.quantile_clamped(u),
            upper: self.quantile_clamped(u + mass),
        })
    }

    /// ln of the p-space density at logit `t` (up to the common constant).
    fn log_density_at(&self, t: f64) -> f64 {
        let last = self.nodes() - 1;
        let x = ((t - self.t0) / self.h).clamp(0.0, last as f64);
        let j = (x.floor() as usize).min(last - 1);
        let u = x - j as f64;
        let cell = &self.cells[j];
        let log_t = if cell.l0.is_finite() && cell.l1.is_finite() {
            cell.l0 + (cell.l1 - cell.l0) * u + cell.q * u * (u - 1.0)
        } else {
            ((1.0 - u) * cell.l0.exp() + u * cell.l1.exp()).ln()
        };
        // dp/dt = p (1 - p): ln p + ln(1 - p) = -(|t| + 2 ln(1 + e^-|t|)).
        log_t + t.abs() + 2.0 * (-t.abs()).exp().ln_1p()
    }

    /// Every summary at interval mass `mass`.
    pub fn summary(&self, mass: f64) -> Result<Summary, BayesError> {
        Ok(Summary {
            mean: self.mean,
            sd: self.sd,
            mode: self.mode,
            median: self.median(),
            mass,
            pi: self.pi(mass)?,
            hpdi: self.hpdi(mass)?,
        })
    }

    /// `n` draws of `p` (inverse-CDF sampling), the same for the same `seed`.
    pub fn samples(&self, n: usize, seed: u64) -> Vec<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n)
            .map(|_| self.quantile_clamped(rng.random::<f64>()))
            .collect()
    }

    /// Posterior predictive distribution of the number of successes in the
    /// next `trials` trials: P(k) = C(n,k) Z(s+k, f+n-k) / Z(s, f), where Z is
    /// the normaliser of prior × likelihood. Exact up to quadrature, for any prior.
    pub fn predictive(&self, trials: u32) -> Result<Vec<f64>, BayesError> {
        let n = u64::from(trials);
        let mut log_p = Vec::with_capacity(trials as usize + 1);
        let mut log_choose = 0.0; // ln C(n, 0)
        for k in 0..=n {
            let future = Counts::new(k, n - k);
            let counts = self
                .counts
                .checked_add(future)
                .ok_or(BayesError::Overflow)?;
            let log_z = Kernel::new(self.prior, counts).log_normaliser();
            log_p.push(log_choose + log_z - self.log_z);
            if k < n {
                log_choose += ((n - k) as f64).ln() - ((k + 1) as f64).ln();
            }
        }
        // Quadrature leaves the sum a hair off 1: renormalise.
        let peak = log_p.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let mut probs: Vec<f64> = log_p.iter().map(|l| (l - peak).exp()).collect();
        let total: f64 = probs.iter().sum();
        for p in &mut probs {
            *p /= total;
        }
        Ok(probs)
    }

    /// ln of the normaliser ∫ prior(p) p^s (1-p)^f dp (prior unnormalised;
    /// a grid prior's weights relative to the largest).
    pub fn log_normaliser(&self) -> f64 {
        self.log_z
    }

    fn nodes(&self) -> usize {
        self.log_w.len()
    }

    fn t_at(&self, j: usize) -> f64 {
        self.t0 + self.h * j as f64
    }

    /// The logit-space window that holds all but ~e^-36 of the mass, and the
    /// number of cells the quadrature needed to resolve it (more for a grid
    /// prior, whose density has a kink at every knot).
    pub(super) fn logit_window(&self) -> (f64, f64, usize) {
        (self.t0, self.t_at(self.nodes() - 1), self.nodes() - 1)
    }

    /// The unnormalised log density of this posterior in logit space.
    pub(super) fn kernel(&self) -> Kernel<'a> {
        Kernel::new(self.prior, self.counts)
    }

    /// Trapezoid weights of the nodes, normalised to sum to 1, with their logits.
    pub(super) fn weighted_nodes(&self) -> impl Iterator<Item = (f64, f64)> + '_ {
        let n = self.nodes();
        let raw = move |j: usize| node_weight(j, n) * self.log_w[j].exp();
        let total: f64 = (0..n).map(raw).sum();
        (0..n).map(move |j| (raw(j) / total, self.t_at(j)))
    }

    fn quantile_t(&self, q: f64) -> f64 {
        let last = self.nodes() - 1;
        if q <= 0.0 {
            return self.t0;
        }
        if q >= 1.0 {
            return self.t_at(last);
        }
        // The cell whose CDF range holds q.
        let j = self.cdf.partition_point(|c| *c <= q).clamp(1, last) - 1;
        let cell = self.cdf[j + 1] - self.cdf[j];
        if cell <= 0.0 {
            return self.t_at(j);
        }
        let frac = self.cells[j].inverse((q - self.cdf[j]) / cell);
        self.t_at(j) + frac * self.h
    }

    fn cdf_t(&self, t: f64) -> f64 {
        let last = self.nodes() - 1;
        if t <= self.t0 {
            return 0.0;
        }
        if t >= self.t_at(last) {
            return 1.0;
        }
        let x = (t - self.t0) / self.h;
        let j = (x.floor() as usize).min(last - 1);
        let frac = x - j as f64;
        let cell = &self.cells[j];
        let whole = cell.mass();
        if whole.is_nan() || whole <= 0.0 {
            return self.cdf[j];
        }
        let part = cell.partial(frac);
        self.cdf[j] + (self.cdf[j + 1] - self.cdf[j]) * (part / whole)
    }

    /// P(p <= x) for `x` given as a probability that may be outside [0, 1].
    pub(super) fn cdf_p(&self, x: f64) -> f64 {
        if x <= 0.0 {
            0.0
        } else if x >= 1.0 {
            1.0
        } else {
            self.cdf_t(logit(x))
        }
    }
}

/// The unnormalised posterior in logit space:
/// `ℓ(t) = A ln σ(t) + B ln σ(-t) + ln g(σ(t))` on the prior's support, where
/// A and B include the Jacobian dp/dt = p(1-p) and `g` is a grid prior's
/// interpolated weight (1 for the other priors). The first two terms are
/// concave, which is what places the window.
pub(super) struct Kernel<'a> {
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
    log_offset: f64,
}

/// One evaluation of the kernel.
pub(super) struct Eval {
    /// Log density in logit space, relative to the reference point.
    pub(super) log_t: f64,
    /// Log density in p space, relative likewise.
    log_p: f64,
    p: f64,
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

    pub(super) fn eval(&self, t: f64) -> Eval {
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
    fn window(&self) -> (f64, f64) {
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
    fn cells_for(&self, left: f64, right: f64) -> usize {
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
    fn log_normaliser(&self) -> f64 {
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
    fn mode(&self, left: f64, h: f64, log_pdens: &[f64], ps: &[f64]) -> f64 {
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

/// The weight of node `j` of `nodes` (times the spacing) in the
/// quadrature's sums: the trapezoid rule with Gregory's end corrections
/// (3/8, 7/6, 23/24, 1, ..., 1, 23/24, 7/6, 3/8), exact to O(h⁴). Where
/// the density has fallen to e^-36 at both ends of the window (a support
/// wider than the posterior) the corrections weigh nothing and the rule is
/// the trapezoid's, whose error then falls geometrically; where a step or
/// grid prior cuts the posterior off near its peak, the plain trapezoid's
/// O(h²) would leave ~1e-3 of relative error in the mean.
fn node_weight(j: usize, nodes: usize) -> f64 {
    const ENDS: [f64; 3] = [3.0 / 8.0, 7.0 / 6.0, 23.0 / 24.0];
    let from_end = j.min(nodes - 1 - j);
    ENDS.get(from_end).copied().unwrap_or(1.0)
}

/// One cell of the quadrature, in a unit coordinate u ∈ [0, 1]: the log
/// density is `l0 + (l1 - l0) u + q u (u - 1)`, where `q` (half the second
/// difference of the log density at the nodes) bends the log-linear
/// interpolation so that the CDF at the nodes is accurate to O(h⁴). The
/// density is taken as exp(linear) · (1 + q u (u - 1)); q stays below ~0.02.
#[derive(Debug, Clone, Copy)]
struct Cell {
    l0: f64,
    l1: f64,
    q: f64,
}

impl Cell {
    /// Mass of the whole cell (unit width).
    fn mass(&self) -> f64 {
        self.partial(1.0)
    }

    /// Mass of [0, x].
    fn partial(&self, x: f64) -> f64 {
        let (l0, l1) = (self.l0, self.l1);
        match (l0.is_finite(), l1.is_finite()) {
            (false, false) => 0.0,
            // A zero at one end (a grid prior's hole): linear density.
            (false, true) | (true, false) => {
                let (d0, d1) = (l0.exp(), l1.exp());
                x * d0 + 0.5 * x * x * (d1 - d0)
            }
            (true, true) => {
                let d = l1 - l0;
                if d <= 0.0 {
                    l0.exp() * bent_integral(d, self.q, x)
                } else {
                    // Rising: integrate from the right end, where the density is
                    // largest, so nothing overflows; u(u-1) is symmetric.
                    l1.exp() * (bent_integral(-d, self.q, 1.0) - bent_integral(-d, self.q, 1.0 - x))
                }
            }
        }
    }

    /// The fraction x of the cell that holds share `r` of its mass.
    fn inverse(&self, r: f64) -> f64 {
        let r = r.clamp(0.0, 1.0);
        let (l0, l1) = (self.l0, self.l1);
        let whole = self.mass();
        if whole.is_nan() || whole <= 0.0 {
            return r;
        }
        // Start from the log-linear (q = 0) solution, then polish with Newton.
        let mut x = match (l0.is_finite(), l1.is_finite()) {
            (false, false) => return r,
            (false, true) | (true, false) => {
                // Solve d0 x + (d1 - d0) x²/2 = r (d0 + d1)/2 exactly.
                let (d0, d1) = (l0.exp(), l1.exp());
                let slope = d1 - d0;
                if slope.abs() < 1e-300 {
                    return r;
                }
                let disc = (d0 * d0 + 2.0 * slope * r * whole).max(0.0);
                return ((disc.sqrt() - d0) / slope).clamp(0.0, 1.0);
            }
            (true, true) => {
                let d = l1 - l0;
                if d.abs() < 1e-9 {
                    r
                } else if d > 0.0 {
                    1.0 + ((-d).exp() + r * (-(-d).exp_m1())).ln() / d
                } else {
                    (r * d.exp_m1()).ln_1p() / d
                }
            }
        };
        let d = l1 - l0;
        for _ in 0..2 {
            let density = (l0 + d * x).exp() * (1.0 + self.q * x * (x - 1.0));
            if density.is_nan() || density <= 0.0 {
                break;
            }
            x = (x - (self.partial(x) - r * whole) / density).clamp(0.0, 1.0);
        }
        x
    }
}

/// ∫0^x e^(d u) (1 + q u (u - 1)) du, for d <= 0.
fn bent_integral(d: f64, q: f64, x: f64) -> f64 {
    let y = d * x;
    // ∫0^x u^k e^(d u) du = x^(k+1) · E_k(d x), with E_k(y) = ∫0^1 v^k e^(y v) dv.
    let (e0, e1, e2) = exp_moments(y);
    x * e0 + q * (x * x * x * e2 - x * x * e1)
}

/// E_k(y) = ∫0^1 v^k e^(y v) dv for k = 0, 1, 2.
fn exp_moments(y: f64) -> (f64, f64, f64) {
    if y.abs() < 0.25 {
        // Σ y^n / n! / (n + k + 1): no cancellation near 0.
        let (mut e0, mut e1, mut e2) = (0.0, 0.0, 0.0);
        let mut term = 1.0; // y^n / n!
        for n in 0..12 {
            let n = f64::from(n);
            e0 += term / (n + 1.0);
            e1 += term / (n + 2.0);
            e2 += term / (n + 3.0);
            term *= y / (n + 1.0);
        }
        (e0, e1, e2)
    } else {
        let ey = y.exp();
        let e0 = (ey - 1.0) / y;
        let e1 = (ey * (y - 1.0) + 1.0) / (y * y);
        let e2 = (ey * (y * y - 2.0 * y + 2.0) - 2.0) / (y * y * y);
        (e0, e1, e2)
    }
}

/// The cells between consecutive nodes, with each one's bend from the
/// second differences of the log density at its two nodes.
fn cells(log_w: &[f64]) -> Vec<Cell> {
    let n = log_w.len();
    let second = |j: usize| -> f64 {
        let j = j.clamp(1, n.saturating_sub(2).max(1));
        if j + 1 >= n {
            return 0.0;
        }
        let dd = log_w[j - 1] - 2.0 * log_w[j] + log_w[j + 1];
        if dd.is_finite() {
            dd
        } else {
            0.0
        }
    };
    (0..n.saturating_sub(1))
        .map(|j| Cell {
            l0: log_w[j],
            l1: log_w[j + 1],
            q: 0.25 * (second(j) + second(j + 1)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cell_inverse_undoes_the_partial_mass() {
        let ends = [
            (0.0, 0.0),
            (0.0, -3.0),
            (-3.0, 0.0),
            (0.0, 40.0),
            (-40.0, 0.0),
            (-0.5, 0.0),
            (f64::NEG_INFINITY, 0.0),
            (0.0, f64::NEG_INFINITY),
        ];
        for (l0, l1) in ends {
            for q in [0.0, -0.02, 0.01] {
                let cell = Cell { l0, l1, q };
                for r in [0.0, 0.1, 0.5, 0.9, 1.0] {
                    let x = cell.inverse(r);
                    let got = cell.partial(x) / cell.mass();
                    assert!((got - r).abs() < 1e-9, "{cell:?} r={r}: x={x} gives {got}");
                }
            }
        }
    }

    #[test]
    fn a_bent_cell_integrates_its_density() {
        // Against a fine midpoint rule of exp(l0 + d u) (1 + q u (u - 1)).
        for (l0, l1, q) in [
            (0.0, -2.0, -0.02),
            (-1.0, 0.5, 0.01),
            (0.0, 0.0, -0.01),
            (-5.0, 0.0, 0.0),
        ] {
            let cell = Cell { l0, l1, q };
            let n = 100_000;
            let density = |u: f64| (l0 + (l1 - l0) * u).exp() * (1.0 + q * u * (u - 1.0));
            for x in [0.3, 1.0] {
                let fine = (0..n)
                    .map(|i| density((i as f64 + 0.5) / n as f64 * x))
                    .sum::<f64>()
                    * x
                    / n as f64;
                let got = cell.partial(x);
                assert!(
                    (got - fine).abs() < 1e-9 * fine,
                    "{cell:?} x={x}: {got} vs {fine}"
                );
            }
        }
    }
}
