//! The normal family: real values with unknown mean μ and variance σ², a
//! Normal-inverse-gamma prior (or the reference prior p(μ, σ²) ∝ 1/σ²), and
//! the marginal posterior of μ, a Student t (location, scale, degrees of
//! freedom); the predictive of the next value is a Student t too.
//!
//! The statistics (n, Σx, Σx²) are exact integers: Σx in units of 2^-64 in
//! an `i128`, Σx² in units of 2^-128 in a 256-bit integer (`fixed`). Every
//! binary digit of a value of magnitude >= 2^-12 is kept (a smaller one is
//! rounded to 2^-65, far below what its variance could show), so merging
//! is exact and bitwise the same in any order and split, and the sum of
//! squared deviations M2 = Σx² − (Σx)²/n is computed exactly from the
//! integers before one rounding: no cancellation at values of 1e9 with a
//! variance of 1e-12 (a floating (n, mean, M2) merge would lose the
//! variance there). Range: |x| <= [`MAX_VALUE`]; Σx up to 2^63 (1e9 values
//! of 1e9 each); overflow is [`FamilyError::Overflow`], never a panic.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::fixed::{fixed_from_f64, n_times_m2, square, U256};
use super::line::{window_end, Line, Shape};
use super::{FamilyError, FamilySummary};
use crate::bayes::{check_mass, Interval};

/// The largest magnitude of one value.
pub const MAX_VALUE: f64 = 1e12;
/// The valid range of a Normal-inverse-gamma prior's κ, α and β, and of
/// its mean's magnitude.
pub const NIG_RANGE: (f64, f64) = (1e-12, 1e12);

/// The sufficient statistics of normal data: n, Σx, Σx² (exact, see the
/// module's documentation).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct NormalStats {
    n: u64,
    /// Σx in units of 2^-64.
    sum: i128,
    /// Σx² in units of 2^-128.
    sum_squares: U256,
}

impl NormalStats {
    /// No observation.
    pub const ZERO: NormalStats = NormalStats {
        n: 0,
        sum: 0,
        sum_squares: U256::ZERO,
    };

    /// One value: finite, |x| <= [`MAX_VALUE`].
    pub fn record(x: f64) -> Result<Self, FamilyError> {
        if !(x.is_finite() && x.abs() <= MAX_VALUE) {
            return Err(FamilyError::Value(x));
        }
        let q = fixed_from_f64(x).ok_or(FamilyError::Value(x))?;
        Ok(NormalStats {
            n: 1,
            sum: q,
            sum_squares: square(q),
        })
    }

    /// Pre-aggregated values, as a warehouse exports them: `n` values whose
    /// sum is `sum` and whose sum of squares is `sum_squares` (each rounded
    /// once to the fixed point). Refused unless n·Σx² >= (Σx)², as for any
    /// real values, and (Σx, Σx²) = (0, 0) when n = 0.
    pub fn aggregate(n: u64, sum: f64, sum_squares: f64) -> Result<Self, FamilyError> {
        let sum_q = fixed_from_f64(sum).ok_or(FamilyError::Aggregate)?;
        let squares = U256::from_scaled_f64(sum_squares).ok_or(FamilyError::Aggregate)?;
        if n == 0 && (sum_q != 0 || squares != U256::ZERO) {
            return Err(FamilyError::Aggregate);
        }
        n_times_m2(n, sum_q, squares).ok_or(FamilyError::Aggregate)?;
        Ok(NormalStats {
            n,
            sum: sum_q,
            sum_squares: squares,
        })
    }

    /// The sum of two statistics: exact, or [`FamilyError::Overflow`].
    pub fn checked_add(self, other: NormalStats) -> Result<NormalStats, FamilyError> {
        Ok(NormalStats {
            n: self.n.checked_add(other.n).ok_or(FamilyError::Overflow)?,
            sum: self
                .sum
                .checked_add(other.sum)
                .ok_or(FamilyError::Overflow)?,
            sum_squares: self
                .sum_squares
                .checked_add(other.sum_squares)
                .ok_or(FamilyError::Overflow)?,
        })
    }

    /// The number of values.
    pub fn n(&self) -> u64 {
        self.n
    }

    /// Σx, rounded once.
    pub fn sum(&self) -> f64 {
        self.sum as f64 / 2f64.powi(64)
    }

    /// Σx², rounded once.
    pub fn sum_squares(&self) -> f64 {
        self.sum_squares.to_f64() / 2f64.powi(128)
    }

    /// The mean of the values (0 when there are none).
    pub fn mean(&self) -> f64 {
        if self.n == 0 {
            return 0.0;
        }
        self.sum as f64 / 2f64.powi(64) / self.n as f64
    }

    /// M2 = Σ(x − mean)², computed exactly and rounded once; an overflow of
    /// the exact product (past 1e9 values of 1e9) is refused.
    pub fn m2(&self) -> Result<f64, FamilyError> {
        if self.n == 0 {
            return Ok(0.0);
        }
        let scaled = n_times_m2(self.n, self.sum, self.sum_squares).ok_or(FamilyError::Overflow)?;
        Ok(scaled.to_f64() / 2f64.powi(128) / self.n as f64)
    }
}

/// A Normal-inverse-gamma prior: σ² ~ Inv-Gamma(α, β), μ | σ² ~ N(m, σ²/κ).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct NigPrior {
    mean: f64,
    kappa: f64,
    alpha: f64,
    beta: f64,
}

impl NigPrior {
    /// The default: m = 0, κ = 0.01 (a hundredth of an observation), α = 1,
    /// β = 1: weakly informative for values of order one (σ² of order one, μ
    /// within ±10σ). It is not scale-free: for values in the thousands or
    /// with a variance far from 1, state a prior on their scale or use the
    /// reference prior.
    pub const DEFAULT: NigPrior = NigPrior {
        mean: 0.0,
        kappa: 0.01,
        alpha: 1.0,
        beta: 1.0,
    };

    /// A prior with κ and β in [`NIG_RANGE`], α in [0.5, 1e12] (so the
    /// Student t has at least one degree of freedom), |m| <= 1e12.
    pub fn parse(mean: f64, kappa: f64, alpha: f64, beta: f64) -> Result<Self, FamilyError> {
        let (lo, hi) = NIG_RANGE;
        if !(mean.is_finite() && mean.abs() <= hi) {
            return Err(FamilyError::Parameter {
                name: "mean",
                value: mean,
            });
        }
        if !(lo..=hi).contains(&kappa) {
            return Err(FamilyError::Parameter {
                name: "kappa",
                value: kappa,
            });
        }
        if !(0.5..=hi).contains(&alpha) {
            return Err(FamilyError::Parameter {
                name: "alpha",
                value: alpha,
            });
        }
        if !(lo..=hi).contains(&beta) {
            return Err(FamilyError::Parameter {
                name: "beta",
                value: beta,
            });
        }
        Ok(NigPrior {
            mean,
            kappa,
            alpha,
            beta,
        })
    }
}

impl Default for NigPrior {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A prior for the normal family.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum NormalPrior {
    /// Normal-inverse-gamma.
    Nig(NigPrior),
    /// The reference prior p(μ, σ²) ∝ 1/σ² (improper): the posterior of μ
    /// is t_{n−1}(mean, √(M2/(n(n−1)))), the classical t interval; it needs
    /// two values that differ.
    Reference,
}

impl Default for NormalPrior {
    fn default() -> Self {
        NormalPrior::Nig(NigPrior::DEFAULT)
    }
}

impl NormalPrior {
    /// The posterior after `stats`.
    pub fn posterior(&self, stats: &NormalStats) -> Result<NormalPosterior, FamilyError> {
        let n = stats.n as f64;
        let m2 = stats.m2()?;
        let mean = stats.mean();
        let (loc, kappa, alpha, beta) = match self {
            NormalPrior::Nig(p) => {
                let kappa = p.kappa + n;
                let d = mean - p.mean;
                let loc = p.mean + n * d / kappa;
                let beta = p.beta + 0.5 * m2 + 0.5 * p.kappa * n / kappa * d * d;
                (loc, kappa, p.alpha + 0.5 * n, beta)
            }
            NormalPrior::Reference => {
                if stats.n < 2 || m2 <= 0.0 {
                    return Err(FamilyError::Reference);
                }
                (mean, n, 0.5 * (n - 1.0), 0.5 * m2)
            }
        };
        let dof = 2.0 * alpha;
        Ok(NormalPosterior {
            mu: StudentT::new(loc, (beta / (alpha * kappa)).sqrt(), dof),
            next: StudentT::new(loc, (beta * (kappa + 1.0) / (alpha * kappa)).sqrt(), dof),
        })
    }
}

/// The posterior of a normal model: the marginal of μ and the predictive
/// of the next value, both Student t.
#[derive(Debug, Clone)]
pub struct NormalPosterior {
    mu: StudentT,
    next: StudentT,
}

impl NormalPosterior {
    /// The marginal posterior of μ (σ² integrated out).
    pub fn mu(&self) -> &StudentT {
        &self.mu
    }

    /// The predictive distribution of the next value.
    pub fn predictive(&self) -> &StudentT {
        &self.next
    }
}

/// The density of s = asinh((x − loc)/scale) of a Student t with `dof`
/// degrees of freedom: (1 + sinh²s/ν)^(−(ν+1)/2) cosh s, which decays like
/// e^(−ν|s|), so even the Cauchy's tails fit a window of ±50.
#[derive(Debug, Clone, Copy)]
pub(super) struct StudentShape {
    pub(super) dof: f64,
}

/// ln cosh s, without overflow.
pub(super) fn ln_cosh(s: f64) -> f64 {
    let a = s.abs();
    a + (-2.0 * a).exp().ln_1p() - std::f64::consts::LN_2
}

impl Shape for StudentShape {
    fn log_density(&self, s: f64) -> f64 {
        let sh = s.sinh();
        -0.5 * (self.dof + 1.0) * (sh * sh / self.dof).ln_1p() + ln_cosh(s)
    }

    fn window(&self) -> (f64, f64) {
        let hi = window_end(|s| self.log_density(s), 0.0, 1.0);
        (-hi, hi)
    }

    fn core(&self) -> (f64, f64) {
        // The density's poles (sinh s = ±i√ν) are at least π/2 from the real
        // axis for ν >= 1: pieces of width 1 keep the 16-point rule exact
        // to ~1e-16 there.
        (0.0, 1.0)
    }
}

/// A Student t distribution: x = loc + scale·T, T with `dof` degrees of
/// freedom.
#[derive(Debug, Clone)]
pub struct StudentT {
    loc: f64,
    scale: f64,
    dof: f64,
    line: Line<StudentShape>,
}

impl StudentT {
    /// loc finite, scale > 0 and dof >= 1 are the caller's (a prior's
    /// posterior always has them).
    pub(super) fn new(loc: f64, scale: f64, dof: f64) -> Self {
        StudentT {
            loc,
            scale,
            dof,
            line: Line::new(StudentShape { dof }),
        }
    }

    /// The location: the median and mode.
    pub fn loc(&self) -> f64 {
        self.loc
    }

    /// The scale: the sd of the standardised t times this is the sd.
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// The degrees of freedom (>= 1).
    pub fn dof(&self) -> f64 {
        self.dof
    }

    pub(super) fn line(&self) -> &Line<StudentShape> {
        &self.line
    }

    /// The mean, `None` for dof <= 1 (no mean).
    pub fn mean(&self) -> Option<f64> {
        (self.dof > 1.0).then_some(self.loc)
    }

    /// The sd, `None` for dof <= 2 (infinite variance).
    pub fn sd(&self) -> Option<f64> {
        (self.dof > 2.0).then(|| self.scale * (self.dof / (self.dof - 2.0)).sqrt())
    }

    /// The mode and median: the location.
    pub fn median(&self) -> f64 {
        self.loc
    }

    fn at(&self, s: f64) -> f64 {
        self.loc + self.scale * s.sinh()
    }

    /// The `q`-quantile.
    pub fn quantile(&self, q: f64) -> Result<f64, FamilyError> {
        if !(0.0..=1.0).contains(&q) {
            return Err(FamilyError::Probability(q));
        }
        Ok(if q == 0.0 {
            f64::NEG_INFINITY
        } else if q == 1.0 {
            f64::INFINITY
        } else if q == 0.5 {
            self.loc
        } else {
            self.at(self.line.quantile(q))
        })
    }

    /// P(X <= x).
    pub fn cdf(&self, x: f64) -> f64 {
        self.line.cdf(((x - self.loc) / self.scale).asinh())
    }

    /// The density at `x`.
    pub fn pdf(&self, x: f64) -> f64 {
        let s = ((x - self.loc) / self.scale).asinh();
        self.line.density(s) / (self.scale * ln_cosh(s).exp())
    }

    /// Central interval holding `mass`; the t is symmetric and unimodal, so
    /// this is its HPDI too.
    pub fn pi(&self, mass: f64) -> Result<Interval, FamilyError> {
        let mass = check_mass(mass)?;
        // The upper quantile by symmetry, so the interval is centred to the bit.
        let half = self.scale * self.line.quantile(0.5 + 0.5 * mass).sinh();
        Ok(Interval {
            lower: self.loc - half,
            upper: self.loc + half,
        })
    }

    /// Every summary at interval mass `mass` (mode and median: the location;
    /// HPDI: the central interval).
    pub fn summary(&self, mass: f64) -> Result<FamilySummary, FamilyError> {
        let pi = self.pi(mass)?;
        Ok(FamilySummary {
            mean: self.mean(),
            sd: self.sd(),
            mode: self.loc,
            median: self.loc,
            mass,
            pi,
            hpdi: pi,
        })
    }

    /// `n` draws (inverse-CDF sampling), the same for the same `seed`.
    pub fn samples(&self, n: usize, seed: u64) -> Vec<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n)
            .map(|_| self.at(self.line.quantile(rng.random::<f64>())))
            .collect()
    }
}
