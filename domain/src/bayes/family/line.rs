//! A smooth one-dimensional density integrated by composite Gauss–Legendre:
//! the normaliser, the CDF anywhere, quantiles and the HPDI of a unimodal
//! density. The families' posteriors and predictives are all such a
//! density in a variable where they are smooth and decay at least
//! exponentially (ln λ for the Gamma, asinh of the standardised value for
//! the Student t), so the rule converges geometrically and every figure is
//! exact to ~1e-14 of the mass, at any number of observations.

use crate::bayes::gauss_legendre::rule;

/// The pieces' widths grow away from the peak by this share of the
/// distance: the tails, where the log density is nearly linear, need few
/// pieces, and a window of thousands of units still costs a few dozen.
const GROWTH: f64 = 0.25;
/// The most root-finding steps of a quantile (Newton, kept inside a
/// shrinking bracket): it takes 5 or so.
const MAX_STEPS: usize = 100;

/// An unnormalised density in the integration variable `y`.
pub(super) trait Shape {
    /// ln of the density at `y`, 0 (or just below) at its peak.
    fn log_density(&self, y: f64) -> f64;
    /// Where the density is above e^-45 of its peak (every mass outside is
    /// below 1e-18).
    fn window(&self) -> (f64, f64);
    /// The peak's position and the width of a piece there: about one
    /// standard deviation of `y` near the peak, less where the density
    /// has a singularity close to the real line.
    fn core(&self) -> (f64, f64);
}

/// The solution of `log_density(y) = -45` between `from` (where it is above)
/// and the first `from + k·step` where it is below: bisection to the doubles.
pub(super) fn window_end(log_density: impl Fn(f64) -> f64, from: f64, step: f64) -> f64 {
    const EDGE: f64 = -45.0;
    let (mut inside, mut outside) = (from, from + step);
    let mut step = step;
    while log_density(outside) > EDGE {
        inside = outside;
        step *= 2.0;
        outside += step;
        if !outside.is_finite() {
            return inside;
        }
    }
    for _ in 0..200 {
        let mid = 0.5 * (inside + outside);
        if mid == inside || mid == outside {
            break;
        }
        if log_density(mid) > EDGE {
            inside = mid;
        } else {
            outside = mid;
        }
    }
    outside
}

/// The edges of the pieces covering [lo, hi]: as wide as the core's width
/// near the peak, wider by [`GROWTH`] of the distance from it away from it.
pub(super) fn edges(lo: f64, hi: f64, peak: f64, base: f64) -> Vec<f64> {
    let width = |y: f64| base + GROWTH * (y - peak).abs();
    let mut edges = vec![lo];
    let mut y = lo;
    while y < hi {
        // The narrower of the two ends, so the side nearer the peak decides.
        let w = width(y);
        let w = w.min(width(y + w));
        let mut next = y + w;
        if next >= hi - 1e-9 * w {
            next = hi;
        }
        edges.push(next);
        y = next;
    }
    edges
}

/// ∫_a^b exp(log_density) by the rule on one piece.
pub(super) fn integrate(log_density: &impl Fn(f64) -> f64, a: f64, b: f64) -> f64 {
    let rule = rule();
    let (mid, half) = (0.5 * (a + b), 0.5 * (b - a));
    rule.nodes
        .iter()
        .zip(&rule.weights)
        .map(|(x, w)| w * log_density(mid + half * x).exp())
        .sum::<f64>()
        * half
}

/// A density ready to answer CDF and quantile questions.
#[derive(Debug, Clone)]
pub(super) struct Line<S> {
    pub(super) shape: S,
    edges: Vec<f64>,
    /// The unnormalised mass left of each edge.
    before: Vec<f64>,
    total: f64,
}

impl<S: Shape> Line<S> {
    pub(super) fn new(shape: S) -> Self {
        let (lo, hi) = shape.window();
        let (peak, base) = shape.core();
        let edges = edges(lo, hi, peak, base);
        let log_density = |y: f64| shape.log_density(y);
        let mut before = Vec::with_capacity(edges.len());
        let mut acc = 0.0;
        before.push(0.0);
        for piece in edges.windows(2) {
            acc += integrate(&log_density, piece[0], piece[1]);
            before.push(acc);
        }
        Line {
            shape,
            edges,
            before,
            total: acc,
        }
    }

    /// The window's ends.
    pub(super) fn bounds(&self) -> (f64, f64) {
        (self.edges[0], self.edges[self.edges.len() - 1])
    }

    /// The normalised density at `y`.
    pub(super) fn density(&self, y: f64) -> f64 {
        self.shape.log_density(y).exp() / self.total
    }

    /// P(Y <= y).
    pub(super) fn cdf(&self, y: f64) -> f64 {
        let (lo, hi) = self.bounds();
        if y <= lo {
            return 0.0;
        }
        if y >= hi {
            return 1.0;
        }
        let j = self.edges.partition_point(|e| *e <= y) - 1;
        let log_density = |t: f64| self.shape.log_density(t);
        let part = integrate(&log_density, self.edges[j], y);
        ((self.before[j] + part) / self.total).clamp(0.0, 1.0)
    }

    /// The `q`-quantile of Y, 0 <= q <= 1 (the window's ends at 0 and 1).
    pub(super) fn quantile(&self, q: f64) -> f64 {
        let (lo, hi) = self.bounds();
        if q <= 0.0 {
            return lo;
        }
        if q >= 1.0 {
            return hi;
        }
        let target = q * self.total;
        let last = self.edges.len() - 2;
        let j = (self.before.partition_point(|b| *b <= target).max(1) - 1).min(last);
        let (mut a, mut b) = (self.edges[j], self.edges[j + 1]);
        let log_density = |t: f64| self.shape.log_density(t);
        // g(y) = mass in [edge_j, y] − (target − before_j): increasing, with
        // g(a) <= 0 <= g(b); Newton from the linear guess, kept in [a, b].
        let want = target - self.before[j];
        let piece = self.before[j + 1] - self.before[j];
        let mut y = if piece > 0.0 {
            a + (b - a) * (want / piece).clamp(0.0, 1.0)
        } else {
            0.5 * (a + b)
        };
        let left = self.edges[j];
        // Converged when a step moves y by less than 1e-15 of its piece:
        // below the doubles' spacing in the parameter.
        let resolution = 1e-15 * (b - a);
        for _ in 0..MAX_STEPS {
            let g = integrate(&log_density, left, y) - want;
            if g == 0.0 {
                return y;
            }
            if g < 0.0 {
                a = y;
            } else {
                b = y;
            }
            let slope = log_density(y).exp();
            let mut next = y - g / slope;
            if !(next > a && next < b) {
                next = 0.5 * (a + b);
            }
            let step = (next - y).abs();
            y = next;
            if step <= resolution || b - a <= resolution {
                break;
            }
        }
        y
    }

    /// The narrowest interval of the parameter x holding `mass`, given ln of
    /// x's density at y (up to a constant), for a unimodal x-density: the
    /// lower tail u where the density is equal at Q(u) and Q(u + mass), or
    /// an end of [0, 1 − mass] where it is monotone. Answers (Q(u), Q(u + mass)).
    pub(super) fn hpdi(&self, mass: f64, log_x_density: impl Fn(f64) -> f64) -> (f64, f64) {
        let span = 1.0 - mass;
        let g = |u: f64| log_x_density(self.quantile(u)) - log_x_density(self.quantile(u + mass));
        let (mut lo, mut hi) = (0.0, span);
        let (g_lo, g_hi) = (g(lo), g(hi));
        let u = if g_lo >= 0.0 || g_lo.is_nan() {
            lo
        } else if g_hi <= 0.0 || g_hi.is_nan() {
            hi
        } else {
            // g increases in u for a unimodal density: bisection with the
            // chord (Illinois) to the doubles.
            let (mut f_lo, mut f_hi) = (g_lo, g_hi);
            let mut side = 0i8;
            let mut u = 0.5 * (lo + hi);
            for _ in 0..MAX_STEPS {
                // g is steep at the window's ends (the tails' e^-45): bisect
                // until both ends' g are of order one, where the chord is good.
                u = if f_lo.abs().max(f_hi.abs()) > 1.0 {
                    0.5 * (lo + hi)
                } else {
                    (lo * f_hi - hi * f_lo) / (f_hi - f_lo)
                };
                if !(u > lo && u < hi) {
                    u = 0.5 * (lo + hi);
                }
                let f = g(u);
                // 1e-13 in log density is the noise of the quantiles that g
                // compares: past it the bracket only shrinks by bisection.
                if f.abs() <= 1e-13 || !f.is_finite() {
                    break;
                }
                if f < 0.0 {
                    (lo, f_lo) = (u, f);
                    if side == -1 {
                        f_hi *= 0.5;
                    }
                    side = -1;
                } else {
                    (hi, f_hi) = (u, f);
                    if side == 1 {
                        f_lo *= 0.5;
                    }
                    side = 1;
                }
                if hi - lo <= 1e-15 * span {
                    break;
                }
            }
            u
        };
        (self.quantile(u), self.quantile(u + mass))
    }
}
