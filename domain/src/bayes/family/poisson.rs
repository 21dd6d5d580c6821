//! The poisson family: counts `k >= 0` over exposures `t > 0`, a rate λ,
//! a Gamma(shape, rate) prior and the conjugate Gamma posterior
//! Gamma(shape + Σk, rate + Σt); its summaries, draws and the negative
//! binomial predictive of the count in a future exposure.
//!
//! The statistics are integers, so merging is exact and bitwise the same
//! in any order and any split into batches: the count is a `u64` (checked,
//! so counts up to 1.8e19 and any 1e12 of the issue), the exposure a `u128`
//! number of nano-units (1e-9 of an exposure unit; each record's exposure
//! is rounded to the nearest nano-unit once, when it is read, which keeps
//! every decimal with up to 9 places exact; totals up to 3.4e29 units).
//! Overflow is an error value, never a panic.
//!
//! The posterior's figures integrate its density in v = ln(λ/λ*), λ* =
//! shape/rate, where it is exp(−shape·(e^v − 1 − v)): smooth, log-concave,
//! of width 1/√shape, written without the ln Γ(shape) that loses all
//! precision at 10^12 events; see `line`.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::line::{window_end, Line, Shape};
use super::special::{ln_negative_binomial, phi};
use super::{FamilyError, FamilySummary};
use crate::bayes::{check_mass, Interval};

/// Nano-units per exposure unit.
const NANOS: f64 = 1e9;
/// The largest exposure of one record, in units.
pub const MAX_EXPOSURE: f64 = 1e18;
/// The valid range of a Gamma prior's shape.
pub const SHAPE_RANGE: (f64, f64) = (1e-3, 1e12);
/// The valid range of a Gamma prior's rate (in inverse exposure units).
pub const RATE_RANGE: (f64, f64) = (1e-12, 1e12);

/// A total exposure, in nano-units: exact integer sums.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Exposure(u128);

impl Exposure {
    /// One unit: the exposure of a record that does not give one.
    pub const ONE: Exposure = Exposure(1_000_000_000);

    /// An exposure in units, rounded to the nearest nano-unit: finite, at
    /// least 5e-10 (one nano-unit after rounding), at most [`MAX_EXPOSURE`].
    pub fn parse(units: f64) -> Result<Self, FamilyError> {
        if !(units.is_finite() && units <= MAX_EXPOSURE) {
            return Err(FamilyError::Exposure(units));
        }
        let nanos = (units * NANOS).round();
        if nanos < 1.0 {
            return Err(FamilyError::Exposure(units));
        }
        Ok(Exposure(nanos as u128))
    }

    /// An exposure of `nanos` nano-units.
    pub const fn from_nanos(nanos: u128) -> Self {
        Exposure(nanos)
    }

    /// The exposure in nano-units.
    pub const fn nanos(self) -> u128 {
        self.0
    }

    /// The exposure in units (one rounding).
    pub fn units(self) -> f64 {
        self.0 as f64 / NANOS
    }
}

/// The sufficient statistics of poisson data: Σk and Σt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PoissonStats {
    /// Σk, the events.
    pub count: u64,
    /// Σt, the exposure.
    pub exposure: Exposure,
}

impl PoissonStats {
    /// No observation.
    pub const ZERO: PoissonStats = PoissonStats {
        count: 0,
        exposure: Exposure(0),
    };

    /// One record: `count` events over `exposure` (use [`Exposure::ONE`]
    /// when the record gives none).
    pub const fn record(count: u64, exposure: Exposure) -> Self {
        PoissonStats { count, exposure }
    }

    /// The sum of two statistics: exact, or [`FamilyError::Overflow`].
    pub fn checked_add(self, other: PoissonStats) -> Result<PoissonStats, FamilyError> {
        Ok(PoissonStats {
            count: self
                .count
                .checked_add(other.count)
                .ok_or(FamilyError::Overflow)?,
            exposure: Exposure(
                self.exposure
                    .0
                    .checked_add(other.exposure.0)
                    .ok_or(FamilyError::Overflow)?,
            ),
        })
    }
}

/// A Gamma(shape, rate) prior on λ, valid by construction (both in
/// [`SHAPE_RANGE`] and [`RATE_RANGE`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GammaPrior {
    shape: f64,
    rate: f64,
}

impl GammaPrior {
    /// The default, Gamma(0.5, 1e-6): the Jeffreys prior λ^-1/2 made proper
    /// by a rate a millionth of one unit of exposure, so that the data
    /// speak from the first unit on.
    pub const DEFAULT: GammaPrior = GammaPrior {
        shape: 0.5,
        rate: 1e-6,
    };

    /// A Gamma(shape, rate) prior, shape in [`SHAPE_RANGE`], rate in
    /// [`RATE_RANGE`].
    pub fn parse(shape: f64, rate: f64) -> Result<Self, FamilyError> {
        let ok = |x: f64, (lo, hi): (f64, f64)| (lo..=hi).contains(&x);
        if !ok(shape, SHAPE_RANGE) {
            return Err(FamilyError::Parameter {
                name: "shape",
                value: shape,
            });
        }
        if !ok(rate, RATE_RANGE) {
            return Err(FamilyError::Parameter {
                name: "rate",
                value: rate,
            });
        }
        Ok(GammaPrior { shape, rate })
    }

    /// The prior's shape: pseudo-events.
    pub fn shape(&self) -> f64 {
        self.shape
    }

    /// The prior's rate: pseudo-exposure.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// The posterior after `stats`.
    pub fn posterior(&self, stats: PoissonStats) -> GammaPosterior {
        GammaPosterior::new(
            self.shape + stats.count as f64,
            self.rate + stats.exposure.units(),
        )
    }
}

impl Default for GammaPrior {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The density of v = ln(λ/λ*) of a Gamma(shape, ·).
#[derive(Debug, Clone, Copy)]
pub(super) struct GammaShape {
    pub(super) shape: f64,
}

impl Shape for GammaShape {
    fn log_density(&self, v: f64) -> f64 {
        -self.shape * phi(v)
    }

    fn window(&self) -> (f64, f64) {
        let step = self.shape.sqrt().recip().min(1.0);
        let f = |v: f64| self.log_density(v);
        (window_end(f, 0.0, -step), window_end(f, 0.0, step))
    }

    fn core(&self) -> (f64, f64) {
        // Two standard deviations of v (1/√shape) per piece where the
        // density is nearly Gaussian, one unit of v where the shape is small.
        (0.0, (2.0 / self.shape.sqrt()).min(1.0))
    }
}

/// The Gamma(shape, rate) posterior of λ.
#[derive(Debug, Clone)]
pub struct GammaPosterior {
    shape: f64,
    rate: f64,
    line: Line<GammaShape>,
}

impl GammaPosterior {
    /// Gamma(shape, rate): the caller keeps both positive and finite (a
    /// [`GammaPrior`] and any statistics do).
    pub(super) fn new(shape: f64, rate: f64) -> Self {
        GammaPosterior {
            shape,
            rate,
            line: Line::new(GammaShape { shape }),
        }
    }

    /// The posterior's shape: prior shape + Σk.
    pub fn shape(&self) -> f64 {
        self.shape
    }

    /// The posterior's rate: prior rate + Σt.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// λ* = shape/rate, where v = 0.
    fn center(&self) -> f64 {
        self.shape / self.rate
    }

    pub(super) fn line(&self) -> &Line<GammaShape> {
        &self.line
    }

    /// E[λ] = shape/rate.
    pub fn mean(&self) -> f64 {
        self.center()
    }

    /// sd(λ) = √shape/rate.
    pub fn sd(&self) -> f64 {
        self.shape.sqrt() / self.rate
    }

    /// The mode of the density of λ: (shape − 1)/rate, 0 when shape <= 1.
    pub fn mode(&self) -> f64 {
        ((self.shape - 1.0) / self.rate).max(0.0)
    }

    /// The median of λ.
    pub fn median(&self) -> f64 {
        self.center() * self.line.quantile(0.5).exp()
    }

    /// The `q`-quantile of λ.
    pub fn quantile(&self, q: f64) -> Result<f64, FamilyError> {
        if !(0.0..=1.0).contains(&q) {
            return Err(FamilyError::Probability(q));
        }
        if q == 0.0 {
            return Ok(0.0);
        }
        if q == 1.0 {
            return Ok(f64::INFINITY);
        }
        Ok(self.center() * self.line.quantile(q).exp())
    }

    /// P(λ <= x).
    pub fn cdf(&self, x: f64) -> f64 {
        if x <= 0.0 {
            return 0.0;
        }
        self.line.cdf((x / self.center()).ln())
    }

    /// The density of λ at `x`.
    pub fn pdf(&self, x: f64) -> f64 {
        if x <= 0.0 {
            return 0.0;
        }
        self.line.density((x / self.center()).ln()) / x
    }

    /// Central interval of λ holding `mass`.
    pub fn pi(&self, mass: f64) -> Result<Interval, FamilyError> {
        let mass = check_mass(mass)?;
        let tail = 0.5 * (1.0 - mass);
        Ok(Interval {
            lower: self.quantile(tail)?,
            upper: self.quantile(1.0 - tail)?,
        })
    }

    /// The narrowest interval of λ holding `mass` (from 0 when shape <= 1,
    /// where the density falls from λ = 0).
    pub fn hpdi(&self, mass: f64) -> Result<Interval, FamilyError> {
        let mass = check_mass(mass)?;
        // ln of λ's density at v: the v-density over dλ/dv = λ.
        let (lower, upper) = self.line.hpdi(mass, |v| self.line.shape.log_density(v) - v);
        let lower = if self.shape <= 1.0 {
            0.0
        } else {
            self.center() * lower.exp()
        };
        Ok(Interval {
            lower,
            upper: self.center() * upper.exp(),
        })
    }

    /// Every summary of λ at interval mass `mass`.
    pub fn summary(&self, mass: f64) -> Result<FamilySummary, FamilyError> {
        Ok(FamilySummary {
            mean: Some(self.mean()),
            sd: Some(self.sd()),
            mode: self.mode(),
            median: self.median(),
            mass,
            pi: self.pi(mass)?,
            hpdi: self.hpdi(mass)?,
        })
    }

    /// `n` draws of λ (inverse-CDF sampling), the same for the same `seed`.
    pub fn samples(&self, n: usize, seed: u64) -> Vec<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n)
            .map(|_| self.center() * self.line.quantile(rng.random::<f64>()).exp())
            .collect()
    }

    /// The predictive distribution of the count in a future `exposure`:
    /// negative binomial with r = shape, p = rate/(rate + exposure).
    pub fn predictive(&self, exposure: Exposure) -> Result<NegativeBinomial, FamilyError> {
        let t = exposure.units();
        if t <= 0.0 {
            return Err(FamilyError::Exposure(t));
        }
        Ok(NegativeBinomial {
            r: self.shape,
            // p and 1 − p each from its own ratio: no cancellation in 1 − p.
            p: self.rate / (self.rate + t),
            q: t / (self.rate + t),
        })
    }
}

/// The negative binomial distribution of a future count: P(k) =
/// Γ(r + k)/(Γ(r) k!) p^r (1 − p)^k, the Poisson mixed over the Gamma.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NegativeBinomial {
    r: f64,
    p: f64,
    q: f64,
}

impl NegativeBinomial {
    /// r, the posterior's shape.
    pub fn r(&self) -> f64 {
        self.r
    }

    /// p = rate/(rate + exposure), the chance of a "failure" in the
    /// Bernoulli-trials reading.
    pub fn p(&self) -> f64 {
        self.p
    }

    /// E[k] = r(1 − p)/p.
    pub fn mean(&self) -> f64 {
        self.r * self.q / self.p
    }

    /// Var[k] = r(1 − p)/p².
    pub fn variance(&self) -> f64 {
        self.r * self.q / (self.p * self.p)
    }

    /// ln P(k), by Loader's saddle-point form (no ln Γ of large numbers,
    /// so it keeps its relative precision at 10^12 events).
    pub fn ln_pmf(&self, k: u64) -> f64 {
        ln_negative_binomial(self.r, k as f64, self.p, self.q)
    }

    /// P(k).
    pub fn pmf(&self, k: u64) -> f64 {
        self.ln_pmf(k).exp()
    }
}
