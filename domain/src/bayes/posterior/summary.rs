//! The summaries of a posterior at an interval mass: the central interval
//! (PI), the narrowest one (HPDI) and [`Summary`], which holds them with
//! the moments, the mode and the median.

use serde::Serialize;

use super::Posterior;
use crate::bayes::numeric::{find_root, golden_min, Finish, Root};
use crate::bayes::{check_mass, BayesError};

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

impl Posterior<'_> {
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
            (g_lo, g_hi) => {
                match find_root(g, lo, hi, g_lo, g_hi, 1e-12 * (hi - lo), Finish::Chord) {
                    Root::Found(u) => u,
                    Root::Undefined(_) => golden_min(width, lo, hi),
                }
            }
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
        let log_t = self.cells[j].log_density(u);
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
}
