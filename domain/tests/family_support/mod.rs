//! What the family tests share: the quantiles and the tolerance they
//! check, posteriors from a prior and data, Simpson's rule and the
//! brute-force Gamma it builds, and 2^k copies of a pair of values.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use domain::bayes::family::normal::NormalStats;
use domain::bayes::family::poisson::{Exposure, GammaPosterior, GammaPrior, PoissonStats};

pub const QS: [f64; 7] = [0.005, 0.05, 0.25, 0.5, 0.75, 0.95, 0.995];
pub const TOL: f64 = 1e-9;

pub fn gamma_posterior(shape: f64, rate: f64, count: u64, exposure: f64) -> GammaPosterior {
    GammaPrior::parse(shape, rate)
        .unwrap()
        .posterior(PoissonStats::record(
            count,
            Exposure::parse(exposure).unwrap(),
        ))
}

/// Simpson's rule for ∫ f on [a, b] with `n` (even) intervals.
pub fn simpson(f: impl Fn(f64) -> f64, a: f64, b: f64, n: usize) -> f64 {
    let h = (b - a) / n as f64;
    let mut sum = f(a) + f(b);
    for i in 1..n {
        sum += f(a + h * i as f64) * if i % 2 == 1 { 4.0 } else { 2.0 };
    }
    sum * h / 3.0
}

/// A brute-force Gamma CDF for shapes where statrs's series is out of its
/// depth: Simpson in λ over ±40 sd, the density written relative to the
/// mode m as (a − 1)(ln(1 + ε) − ε), ε = λ/m − 1.
pub fn brute_gamma_cdf(a: f64, b: f64, x: f64) -> f64 {
    let m = (a - 1.0) / b;
    let sd = a.sqrt() / b;
    let density = |l: f64| {
        let e = l / m - 1.0;
        ((a - 1.0) * (e.ln_1p() - e)).exp()
    };
    let (lo, hi) = ((m - 40.0 * sd).max(0.0), m + 40.0 * sd);
    let total = simpson(density, lo, hi, 20_000);
    simpson(density, lo, x, 20_000) / total
}

/// The density of the same brute force.
pub fn brute_gamma_pdf(a: f64, b: f64, x: f64) -> f64 {
    let m = (a - 1.0) / b;
    let sd = a.sqrt() / b;
    let density = |l: f64| {
        let e = l / m - 1.0;
        ((a - 1.0) * (e.ln_1p() - e)).exp()
    };
    let (lo, hi) = ((m - 40.0 * sd).max(0.0), m + 40.0 * sd);
    density(x) / simpson(density, lo, hi, 20_000)
}

/// 2^doublings copies of (center − delta, center + delta), merged by doubling.
pub fn doubled(center: f64, delta: f64, doublings: u32) -> NormalStats {
    let mut stats = NormalStats::record(center - delta)
        .unwrap()
        .checked_add(NormalStats::record(center + delta).unwrap())
        .unwrap();
    for _ in 1..doublings {
        stats = stats.checked_add(stats).unwrap();
    }
    stats
}
