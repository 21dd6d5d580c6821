//! The poisson family against independent references: statrs's Gamma and
//! negative binomial, a brute-force Gamma (Simpson's rule in λ, not the
//! engine's Gauss–Legendre in ln λ) where statrs loses digits, and a
//! recurrence for the negative binomial that needs no ln Γ; from no event
//! to 10^12, within 1e-9.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod family_support;

use domain::bayes::family::poisson::{Exposure, GammaPosterior, GammaPrior, PoissonStats};
use family_support::*;
use statrs::distribution::{Continuous, ContinuousCDF, Discrete, Gamma, NegativeBinomial};
use statrs::statistics::Distribution;

fn check_gamma(post: &GammaPosterior, reference_cdf: &dyn Fn(f64) -> f64, case: &str) {
    let (a, b) = (post.shape(), post.rate());
    let statrs = Gamma::new(a, b).unwrap();
    let rel = |got: f64, want: f64| (got - want).abs() <= 1e-12 * want.abs();
    assert!(rel(post.mean(), statrs.mean().unwrap()), "{case}: mean");
    assert!(rel(post.sd(), statrs.std_dev().unwrap()), "{case}: sd");
    assert!(rel(post.mode(), ((a - 1.0) / b).max(0.0)), "{case}: mode");
    for q in QS {
        let x = post.quantile(q).unwrap();
        let off = (reference_cdf(x) - q).abs();
        assert!(
            off <= TOL,
            "{case}: quantile {q} = {x}: reference CDF off by {off:e}"
        );
        // The round trip goes through λ = λ*·e^v, a double: at 10^12
        // events λ's spacing is 1e-10 of its sd.
        let back = (post.cdf(x) - q).abs();
        assert!(back <= 1e-10, "{case}: cdf(quantile({q})) off by {back:e}");
    }
    let median = post.median();
    assert!((reference_cdf(median) - 0.5).abs() <= TOL, "{case}: median");
    for mass in [0.5, 0.89, 0.99] {
        let pi = post.pi(mass).unwrap();
        let lower = reference_cdf(pi.lower);
        let upper = reference_cdf(pi.upper);
        assert!(
            (lower - 0.5 * (1.0 - mass)).abs() <= TOL,
            "{case}: PI {mass}"
        );
        assert!(
            (upper - 0.5 * (1.0 + mass)).abs() <= TOL,
            "{case}: PI {mass}"
        );
        let hpdi = post.hpdi(mass).unwrap();
        let held = reference_cdf(hpdi.upper) - reference_cdf(hpdi.lower);
        assert!(
            (held - mass).abs() <= TOL,
            "{case}: HPDI {mass} holds {held}"
        );
        // No wider than the central interval (to the doubles' spacing, where
        // the density is symmetric to 1e-6 and the two are one).
        let (h, p) = (hpdi.upper - hpdi.lower, pi.upper - pi.lower);
        assert!(h <= p * (1.0 + 1e-9), "{case}: HPDI {h} wider than PI {p}");
        if a > 1.0 {
            // The narrowest interval has equal density at both ends.
            let (l, u) = (post.pdf(hpdi.lower), post.pdf(hpdi.upper));
            assert!((l - u).abs() <= 1e-6 * l, "{case}: HPDI ends {l} {u}");
        } else {
            assert_eq!(
                hpdi.lower, 0.0,
                "{case}: a falling density's HPDI starts at 0"
            );
        }
    }
}

#[test]
fn the_gamma_posterior_is_the_conjugate_update_of_exact_statistics() {
    let prior = GammaPrior::parse(2.0, 0.5).unwrap();
    let stats = PoissonStats::record(3, Exposure::parse(0.1).unwrap())
        .checked_add(PoissonStats::record(4, Exposure::ONE))
        .unwrap();
    // Decimal exposures are exact in nano-units: 0.1 + 1 = 1.1 to the bit.
    assert_eq!(stats.exposure.nanos(), 1_100_000_000);
    // 8.2·1e9 is 8199999999.999999 as a double: rounded, not truncated.
    assert_eq!(Exposure::parse(8.2).unwrap().nanos(), 8_200_000_000);
    assert_eq!(stats.count, 7);
    let post = prior.posterior(stats);
    assert_eq!(post.shape(), 9.0);
    assert_eq!(post.rate(), 0.5 + 1.1);
    assert_eq!(GammaPrior::default(), GammaPrior::parse(0.5, 1e-6).unwrap());
}

/// The Gamma CDF from statrs, or where b·x < 1 (statrs answers 0 for
/// tiny x) from the series P(a, y) = y^a e^-y / Γ(a + 1) · Σ y^n /
/// ((a + 1)…(a + n)), y = b·x, to the doubles.
fn series_or_statrs_cdf(statrs: &Gamma, a: f64, b: f64, x: f64) -> f64 {
    let y = b * x;
    if y >= 1.0 {
        return statrs.cdf(x);
    }
    let (mut term, mut sum) = (1.0, 1.0);
    for n in 1..200 {
        term *= y / (a + f64::from(n));
        sum += term;
    }
    let ln_gamma = statrs::function::gamma::ln_gamma(a + 1.0);
    (a * y.ln() - y - ln_gamma).exp() * sum
}

#[test]
fn gamma_posteriors_match_statrs_from_no_event_to_a_million() {
    for (shape, rate, count, exposure) in [
        (0.05, 1.0, 0, 1.0),
        (0.5, 1e-6, 0, 1.0),
        (0.5, 1e-6, 3, 2.5),
        (1.0, 1.0, 7, 0.25),
        (2.0, 0.5, 120, 30.0),
        (0.5, 1e-6, 1_000_000, 1234.5),
    ] {
        let post = gamma_posterior(shape, rate, count, exposure);
        let statrs = Gamma::new(post.shape(), post.rate()).unwrap();
        let case = format!("Gamma({shape}, {rate}) after {count} over {exposure}");
        let (a, b) = (post.shape(), post.rate());
        check_gamma(&post, &|x| series_or_statrs_cdf(&statrs, a, b, x), &case);
        for q in QS {
            let x = post.quantile(q).unwrap();
            // statrs's density goes through ln Γ(shape), 1e-8 off at 1e6:
            // past 1e4 the reference is the brute-force density.
            let want = if post.shape() < 1e4 {
                statrs.pdf(x)
            } else {
                brute_gamma_pdf(post.shape(), post.rate(), x)
            };
            let got = post.pdf(x);
            assert!(
                (got - want).abs() <= TOL * want,
                "{case}: pdf at {x}: {got} vs {want}"
            );
        }
    }
}

#[test]
fn gamma_posteriors_stay_exact_at_a_billion_and_a_trillion_events() {
    for (count, exposure) in [(1_000_000_000u64, 3.0e7), (1_000_000_000_000, 1.0e9)] {
        let post = gamma_posterior(0.5, 1e-6, count, exposure);
        let (a, b) = (post.shape(), post.rate());
        let case = format!("{count} events over {exposure}");
        check_gamma(&post, &|x| brute_gamma_cdf(a, b, x), &case);
    }
}

/// ln P(k) for k = 0..=hi of the negative binomial of a Gamma(r, rate)
/// over exposure t, by the recurrence from ln P(0) = −r ln(1 + t/rate):
/// P(k + 1)/P(k) = (r + k)/(k + 1) · t/(rate + t). No ln Γ anywhere, so it
/// stays exact where statrs's ln Γ differences lose digits (r >= 1e5).
fn nb_by_recurrence(r: f64, rate: f64, t: f64, hi: u64) -> Vec<f64> {
    let q = t / (rate + t);
    let mut ln = -r * (t / rate).ln_1p();
    let mut out = Vec::with_capacity(hi as usize + 1);
    for k in 0..=hi {
        out.push(ln);
        ln += ((r + k as f64) / (k as f64 + 1.0) * q).ln();
    }
    out
}

#[test]
fn the_negative_binomial_predictive_matches_statrs_and_a_recurrence() {
    for (count, exposure, future) in [
        (3u64, 2.0, 1.0),
        (120, 30.0, 10.0),
        (1_000_000, 1e4, 1.0),
        (1_000_000_000, 1e7, 2.0),
        (1_000_000_000_000, 1e9, 1.0),
    ] {
        let post = gamma_posterior(0.5, 1e-6, count, exposure);
        let nb = post.predictive(Exposure::parse(future).unwrap()).unwrap();
        let mean = post.mean() * future;
        assert!((nb.mean() - mean).abs() <= 1e-12 * mean);
        let var = mean * (1.0 + future / post.rate());
        assert!((nb.variance() - var).abs() <= 1e-12 * var);
        let hi = (mean + 12.0 * var.sqrt()) as u64 + 10;
        let lo = (mean - 12.0 * var.sqrt()).max(0.0) as u64;
        let reference = nb_by_recurrence(post.shape(), post.rate(), future, hi);
        let statrs =
            NegativeBinomial::new(post.shape(), post.rate() / (post.rate() + future)).unwrap();
        let mut total = 0.0;
        for k in lo..=hi {
            let got = nb.pmf(k);
            total += got;
            let want = reference[k as usize].exp();
            assert!(
                (got - want).abs() <= TOL * want,
                "count {count}: P({k}) = {got} vs the recurrence's {want}"
            );
            if post.shape() < 1e4 {
                let s = statrs.pmf(k);
                assert!(
                    (got - s).abs() <= TOL * s,
                    "count {count}: P({k}) = {got} vs statrs {s}"
                );
            }
        }
        assert!(
            (total - 1.0).abs() <= TOL,
            "count {count}: the pmf sums to {total}"
        );
    }
}
