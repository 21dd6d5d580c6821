//! The relative uplift U = p_arm / p_control − 1 of one arm over the
//! control: the distribution of Y = ln(p_arm / p_control) on the shared
//! quadrature, its quantiles, U's HPDI and P(U in the ROPE).
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

use super::quadrature::Quadrature;
use super::uplift_rule::{ln_1p_near_zero, UpliftNode};
use crate::bayes::gauss_legendre::NODES;
use crate::bayes::logit::ln_sigmoid;
use crate::bayes::numeric::{find_root, Finish, Root};
use crate::bayes::special::upper_incomplete_gamma;
use crate::bayes::Interval;

/// Newton's method on the uplift stops after a step below this many of Y's
/// spreads: its error squares at each step, so what is left is ~1e-12 of
/// the spread or less.
const NEWTON_DONE: f64 = 1e-7;

/// The distribution of Y = ln(p_num / p_den) for two arms of a quadrature.
pub(super) struct Ratio<'q, 'a> {
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
    pub(super) start: f64,
    spread: f64,
}

/// F_Y, f_Y and f_Y' at one y.
#[derive(Clone, Copy)]
pub(super) struct YPoint {
    pub(super) y: f64,
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
    pub(super) fn new(grid: &'q Quadrature<'a>, num: usize, den: usize) -> Self {
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
    pub(super) fn quantile(&self, q: f64, start: f64) -> YPoint {
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
    pub(super) fn hpdi(&self, mass: f64, median: f64) -> Interval {
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
            match find_root(g, 0.0, span, g_lo, g_hi, 1e-10, Finish::Midpoint) {
                Root::Found(s) | Root::Undefined(s) => s,
            }
        };
        let (lower, upper) = ends(s);
        (lower.y, upper.y)
    }

    /// P(1 − rope <= p_num / p_den <= 1 + rope).
    pub(super) fn prob_within(&self, rope: f64) -> f64 {
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
