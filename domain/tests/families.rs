//! The poisson and normal families against independent references: statrs
//! distributions, closed forms and brute-force quadrature (Simpson's rule in
//! the parameter itself, not the engine's Gauss–Legendre in a transformed
//! variable), from a handful of events to 10^9; experiments of 2 to 20 arms;
//! and properties that the order and batching of observations do not change
//! the statistics, to the bit.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use domain::bayes::family::normal::{NigPrior, NormalPrior, NormalStats, StudentT};
use domain::bayes::family::poisson::{Exposure, GammaPosterior, GammaPrior, PoissonStats};
use domain::bayes::family::{family_experiment, FamilyArms, FamilyError};
use proptest::prelude::*;
use statrs::distribution::{
    Continuous, ContinuousCDF, Discrete, Gamma, NegativeBinomial, StudentsT,
};
use statrs::statistics::Distribution;

const QS: [f64; 7] = [0.005, 0.05, 0.25, 0.5, 0.75, 0.95, 0.995];
const TOL: f64 = 1e-9;

fn gamma_posterior(shape: f64, rate: f64, count: u64, exposure: f64) -> GammaPosterior {
    GammaPrior::parse(shape, rate)
        .unwrap()
        .posterior(PoissonStats::record(
            count,
            Exposure::parse(exposure).unwrap(),
        ))
}

/// Simpson's rule for ∫ f on [a, b] with `n` (even) intervals.
fn simpson(f: impl Fn(f64) -> f64, a: f64, b: f64, n: usize) -> f64 {
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
fn brute_gamma_cdf(a: f64, b: f64, x: f64) -> f64 {
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
fn brute_gamma_pdf(a: f64, b: f64, x: f64) -> f64 {
    let m = (a - 1.0) / b;
    let sd = a.sqrt() / b;
    let density = |l: f64| {
        let e = l / m - 1.0;
        ((a - 1.0) * (e.ln_1p() - e)).exp()
    };
    let (lo, hi) = ((m - 40.0 * sd).max(0.0), m + 40.0 * sd);
    density(x) / simpson(density, lo, hi, 20_000)
}

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

#[test]
fn gamma_posteriors_match_statrs_from_no_event_to_a_million() {
    for (shape, rate, count, exposure) in [
        (0.5, 1e-6, 0, 1.0),
        (0.5, 1e-6, 3, 2.5),
        (1.0, 1.0, 7, 0.25),
        (2.0, 0.5, 120, 30.0),
        (0.5, 1e-6, 1_000_000, 1234.5),
    ] {
        let post = gamma_posterior(shape, rate, count, exposure);
        let statrs = Gamma::new(post.shape(), post.rate()).unwrap();
        let case = format!("Gamma({shape}, {rate}) after {count} over {exposure}");
        check_gamma(&post, &|x| statrs.cdf(x), &case);
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

/// statrs's Student t, or for more than 1e6 degrees of freedom (where its
/// incomplete beta loses digits) the normal with the first Edgeworth term,
/// F(t) = Φ(t) − φ(t)(t³ + t)/(4ν), exact to O(ν^-2).
fn t_cdf(loc: f64, scale: f64, dof: f64) -> impl Fn(f64) -> f64 {
    move |x: f64| {
        let t = (x - loc) / scale;
        if dof <= 1e6 {
            StudentsT::new(0.0, 1.0, dof).unwrap().cdf(t)
        } else {
            let n = statrs::distribution::Normal::new(0.0, 1.0).unwrap();
            n.cdf(t) - n.pdf(t) * (t * t * t + t) / (4.0 * dof)
        }
    }
}

fn check_t(t: &StudentT, case: &str) {
    let cdf = t_cdf(t.loc(), t.scale(), t.dof());
    // A quantile is a double: near 1e9 with a scale of 1e-5 the doubles are
    // a hundredth of a scale apart, and that spacing (times the standard
    // density, at most 0.4) is part of what the reference can ask.
    let spacing = |x: f64| 0.4 * 2.0 * f64::EPSILON * x.abs() / t.scale();
    for q in QS {
        let x = t.quantile(q).unwrap();
        let off = (cdf(x) - q).abs();
        assert!(
            off <= TOL + spacing(x),
            "{case}: quantile {q} = {x}: reference CDF off by {off:e}"
        );
    }
    assert_eq!(t.median(), t.loc());
    if t.dof() <= 1e6 {
        let statrs = StudentsT::new(t.loc(), t.scale(), t.dof()).unwrap();
        for z in [-3.0, -0.5, 0.0, 1.0, 4.0] {
            let x = t.loc() + z * t.scale();
            let (got, want) = (t.pdf(x), statrs.pdf(x));
            assert!(
                (got - want).abs() <= 1e-9 * want,
                "{case}: pdf {got} vs {want}"
            );
            assert!(
                (t.cdf(x) - statrs.cdf(x)).abs() <= TOL,
                "{case}: cdf at {z}"
            );
        }
    }
    for mass in [0.5, 0.89, 0.99] {
        let pi = t.pi(mass).unwrap();
        let off = (cdf(pi.upper) - cdf(pi.lower) - mass).abs();
        assert!(off <= TOL + 2.0 * spacing(pi.upper), "{case}: PI {mass}");
        let s = t.summary(mass).unwrap();
        assert_eq!(s.hpdi, pi, "{case}: a symmetric HPDI is the PI");
    }
    match t.sd() {
        Some(sd) => {
            let want = t.scale() * (t.dof() / (t.dof() - 2.0)).sqrt();
            assert!((sd - want).abs() <= 1e-12 * want);
        }
        None => assert!(t.dof() <= 2.0),
    }
}

/// `count` values around `center`: center ± spread·(i/count − 1/2) in a
/// shuffled order, recorded one by one.
fn values(center: f64, spread: f64, count: usize) -> Vec<f64> {
    (0..count)
        .map(|i| center + spread * (((i * 7919) % count) as f64 / count as f64 - 0.5))
        .collect()
}

#[test]
fn normal_posteriors_match_the_closed_forms_and_statrs() {
    for (center, spread, count) in [
        (0.0, 1.0, 3),
        (5.0, 2.0, 20),
        (-1e3, 10.0, 500),
        (1e9, 1e-3, 100),
    ] {
        let xs = values(center, spread, count);
        let stats = xs
            .iter()
            .map(|x| NormalStats::record(*x).unwrap())
            .fold(NormalStats::ZERO, |a, b| a.checked_add(b).unwrap());
        let n = count as f64;
        let mean = stats.mean();
        let m2: f64 = xs.iter().map(|x| (x - mean) * (x - mean)).sum();
        assert!((stats.m2().unwrap() - m2).abs() <= 1e-9 * m2, "M2");
        // The reference prior: the classical t.
        let post = NormalPrior::Reference.posterior(&stats).unwrap();
        let mu = post.mu();
        assert_eq!(mu.dof(), n - 1.0);
        let scale = (m2 / (n * (n - 1.0))).sqrt();
        assert!((mu.scale() - scale).abs() <= 1e-9 * scale);
        check_t(mu, &format!("reference, {count} around {center}"));
        check_t(
            post.predictive(),
            &format!("reference predictive, {count} around {center}"),
        );
        // The default NIG: κ_n = κ + n, α_n = α + n/2, the usual β_n.
        let p = NigPrior::DEFAULT;
        let post = NormalPrior::Nig(p).posterior(&stats).unwrap();
        let (k0, a0, b0) = (0.01, 1.0, 1.0);
        let kn = k0 + n;
        let an = a0 + n / 2.0;
        let bn = b0 + m2 / 2.0 + k0 * n * mean * mean / (2.0 * kn);
        let loc = n * mean / kn;
        assert!((post.mu().loc() - loc).abs() <= 1e-12 * loc.abs().max(1e-300));
        let scale = (bn / (an * kn)).sqrt();
        assert!((post.mu().scale() - scale).abs() <= 1e-12 * scale);
        let next = (bn * (kn + 1.0) / (an * kn)).sqrt();
        assert!((post.predictive().scale() - next).abs() <= 1e-12 * next);
        check_t(post.mu(), &format!("NIG, {count} around {center}"));
    }
}

/// 2^doublings copies of (center − delta, center + delta), merged by doubling.
fn doubled(center: f64, delta: f64, doublings: u32) -> NormalStats {
    let mut stats = NormalStats::record(center - delta)
        .unwrap()
        .checked_add(NormalStats::record(center + delta).unwrap())
        .unwrap();
    for _ in 1..doublings {
        stats = stats.checked_add(stats).unwrap();
    }
    stats
}

#[test]
fn a_billion_values_of_a_billion_with_a_variance_of_1e_minus_12_keep_their_variance() {
    // 2^30 values 1e9 ± 2^-20 (both exact doubles): mean 1e9, M2 = n·2^-40.
    let stats = doubled(1e9, 2f64.powi(-20), 30);
    let n = 2f64.powi(30);
    assert_eq!(stats.n(), 1 << 30);
    assert_eq!(stats.mean(), 1e9);
    let want = n * 2f64.powi(-40);
    assert!((stats.m2().unwrap() - want).abs() <= 1e-12 * want);
    let post = NormalPrior::Reference.posterior(&stats).unwrap();
    // √(M2/(n(n − 1))) = δ/√(n − 1).
    let scale = 2f64.powi(-20) / (n - 1.0).sqrt();
    assert!((post.mu().scale() - scale).abs() <= 1e-9 * scale);
    check_t(post.predictive(), "1e9 values, predictive");
    // Large variances at large counts too: 1e6 ± 1e6 (variance 1e12).
    let stats = doubled(1e6, 1e6, 30);
    let want = n * 1e12;
    assert!((stats.m2().unwrap() - want).abs() <= 1e-12 * want);
    check_t(
        NormalPrior::Reference.posterior(&stats).unwrap().mu(),
        "variance 1e12",
    );
}

#[test]
fn small_dof_student_ts_match_statrs_in_their_heavy_tails() {
    for dof in [1.0, 1.5, 2.0, 3.0, 7.5] {
        let stats = NormalStats::aggregate(0, 0.0, 0.0).unwrap();
        let prior = NigPrior::parse(2.0, 0.5, dof / 2.0, 3.0).unwrap();
        let post = NormalPrior::Nig(prior).posterior(&stats).unwrap();
        check_t(post.mu(), &format!("dof {dof}"));
        assert_eq!(post.mu().mean().is_some(), dof > 1.0);
    }
}

#[test]
fn pre_aggregated_input_equals_the_values_it_sums() {
    let xs = [1.5, -2.25, 3.0, 10.125];
    let one_by_one = xs
        .iter()
        .map(|x| NormalStats::record(*x).unwrap())
        .fold(NormalStats::ZERO, |a, b| a.checked_add(b).unwrap());
    let sum: f64 = xs.iter().sum();
    let squares: f64 = xs.iter().map(|x| x * x).sum();
    assert_eq!(NormalStats::aggregate(4, sum, squares).unwrap(), one_by_one);
    assert_eq!(
        NormalStats::aggregate(2, 4.0, 1.0),
        Err(FamilyError::Aggregate)
    );
    assert_eq!(
        NormalStats::aggregate(0, 1.0, 1.0),
        Err(FamilyError::Aggregate)
    );
    assert!(NormalStats::record(f64::NAN).is_err());
    assert!(NormalStats::record(2e12).is_err());
}

#[test]
fn overflow_is_an_error_value() {
    let big = PoissonStats::record(u64::MAX, Exposure::ONE);
    assert_eq!(big.checked_add(big), Err(FamilyError::Overflow));
    let huge = Exposure::from_nanos(u128::MAX);
    let e = PoissonStats::record(0, huge);
    assert_eq!(e.checked_add(e), Err(FamilyError::Overflow));
    let mut stats = NormalStats::record(1e12).unwrap();
    let mut overflowed = false;
    for _ in 0..80 {
        match stats.checked_add(stats) {
            Ok(s) => stats = s,
            Err(e) => {
                assert_eq!(e, FamilyError::Overflow);
                overflowed = true;
                break;
            }
        }
    }
    assert!(overflowed);
    // Opposite values: Σx stays 0 while Σx² doubles past 256 bits.
    let mut stats = NormalStats::record(1e12)
        .unwrap()
        .checked_add(NormalStats::record(-1e12).unwrap())
        .unwrap();
    let mut doublings = 0;
    let error = loop {
        match stats.checked_add(stats) {
            Ok(s) => {
                stats = s;
                doublings += 1;
            }
            Err(e) => break e,
        }
    };
    assert_eq!(error, FamilyError::Overflow);
    assert!(
        doublings < 60,
        "Σx² overflowed after {doublings} doublings, n before it"
    );
    assert_eq!(stats.sum(), 0.0);
    assert!(Exposure::parse(0.0).is_err());
    assert!(Exposure::parse(f64::INFINITY).is_err());
    assert!(GammaPrior::parse(0.0, 1.0).is_err());
    assert!(NigPrior::parse(0.0, 1.0, 0.25, 1.0).is_err());
}

#[test]
fn samples_are_the_same_for_the_same_seed_and_follow_the_posterior() {
    let post = gamma_posterior(0.5, 1e-6, 40, 8.0);
    let a = post.samples(20_000, 7);
    assert_eq!(a, post.samples(20_000, 7));
    assert_ne!(a, post.samples(20_000, 8));
    let below = a.iter().filter(|x| **x <= post.median()).count() as f64 / a.len() as f64;
    assert!((below - 0.5).abs() < 0.02, "{below}");
    let t = NormalPrior::default()
        .posterior(&NormalStats::aggregate(10, 25.0, 80.0).unwrap())
        .unwrap();
    let s = t.mu().samples(20_000, 1);
    let mean = s.iter().sum::<f64>() / s.len() as f64;
    assert!((mean - t.mu().loc()).abs() < 0.05 * t.mu().sd().unwrap() * 10.0);
}

/// Brute-force experiment figures: Simpson in the parameter over `range`,
/// P(best)_i = ∫ f_i Π F_j and E[max] = ∫ x Σ_i f_i Π_{j≠i} F_j.
fn brute_experiment(
    pdfs: &[Box<dyn Fn(f64) -> f64 + '_>],
    cdfs: &[Box<dyn Fn(f64) -> f64 + '_>],
    range: (f64, f64),
) -> (Vec<f64>, f64) {
    let k = pdfs.len();
    let n = 40_000;
    let h = (range.1 - range.0) / n as f64;
    let mut best = vec![0.0; k];
    let mut max = 0.0;
    for step in 0..=n {
        let x = range.0 + h * step as f64;
        let w = h / 3.0
            * if step == 0 || step == n {
                1.0
            } else if step % 2 == 1 {
                4.0
            } else {
                2.0
            };
        let cs: Vec<f64> = cdfs.iter().map(|c| c(x)).collect();
        for i in 0..k {
            let others: f64 = (0..k).filter(|j| *j != i).map(|j| cs[j]).product();
            let term = w * pdfs[i](x) * others;
            best[i] += term;
            max += term * x;
        }
    }
    (best, max)
}

#[test]
fn poisson_experiments_of_2_to_20_arms_match_brute_force() {
    for k in [2usize, 3, 5, 10, 20] {
        let arms: Vec<GammaPosterior> = (0..k)
            .map(|i| gamma_posterior(0.5, 1e-6, 4000 + 13 * i as u64, 1000.0 + 2.0 * i as f64))
            .collect();
        let figures = family_experiment(FamilyArms::Poisson(&arms), 0).unwrap();
        let dists: Vec<Gamma> = arms
            .iter()
            .map(|a| Gamma::new(a.shape(), a.rate()).unwrap())
            .collect();
        let pdfs: Vec<Box<dyn Fn(f64) -> f64 + '_>> = dists
            .iter()
            .map(|d| Box::new(move |x| d.pdf(x)) as Box<dyn Fn(f64) -> f64 + '_>)
            .collect();
        let cdfs: Vec<Box<dyn Fn(f64) -> f64 + '_>> = dists
            .iter()
            .map(|d| Box::new(move |x| d.cdf(x)) as Box<dyn Fn(f64) -> f64 + '_>)
            .collect();
        let lo = arms
            .iter()
            .map(|a| a.mean() - 12.0 * a.sd())
            .fold(f64::INFINITY, f64::min);
        let hi = arms
            .iter()
            .map(|a| a.mean() + 12.0 * a.sd())
            .fold(0.0, f64::max);
        let (best, max) = brute_experiment(&pdfs, &cdfs, (lo, hi));
        let sd = arms[0].sd();
        let got_max = figures.expected_max.unwrap();
        assert!(
            (got_max - max).abs() <= TOL * sd,
            "{k} arms: E[max] {got_max} vs {max}"
        );
        for (i, arm) in figures.arms.iter().enumerate() {
            assert!(
                (arm.prob_best - best[i]).abs() <= TOL,
                "{k} arms, arm {i}: P(best) {} vs {}",
                arm.prob_best,
                best[i]
            );
            let loss = max - arms[i].mean();
            assert!(
                (arm.expected_loss.unwrap() - loss).abs() <= TOL * sd,
                "{k} arms, arm {i}: loss"
            );
            if i > 0 {
                let p = simpson(|x| dists[i].pdf(x) * dists[0].cdf(x), lo, hi, 40_000);
                assert!(
                    (arm.prob_beats_control.unwrap() - p).abs() <= TOL,
                    "P(> control)"
                );
                let u = arm.uplift.unwrap();
                assert!(
                    (u.absolute.unwrap() - (arms[i].mean() - arms[0].mean())).abs()
                        <= 1e-12 * sd * 1e3
                );
                let rel = arms[i].mean() * arms[0].rate() / (arms[0].shape() - 1.0) - 1.0;
                assert!((u.relative.unwrap() - rel).abs() <= 1e-12);
            }
        }
        let total: f64 = figures.arms.iter().map(|a| a.prob_best).sum();
        assert!((total - 1.0).abs() <= TOL, "P(best) sums to {total}");
    }
}

#[test]
fn normal_experiments_of_2_to_20_arms_match_brute_force() {
    for k in [2usize, 3, 5, 10, 20] {
        let arms: Vec<StudentT> = (0..k)
            .map(|i| {
                let stats = doubled(
                    10.0 + 0.02 * i as f64,
                    1.0 + 0.01 * i as f64,
                    6 + (i % 3) as u32,
                );
                NormalPrior::Reference
                    .posterior(&stats)
                    .unwrap()
                    .mu()
                    .clone()
            })
            .collect();
        let figures = family_experiment(FamilyArms::Normal(&arms), 0).unwrap();
        let dists: Vec<StudentsT> = arms
            .iter()
            .map(|a| StudentsT::new(a.loc(), a.scale(), a.dof()).unwrap())
            .collect();
        let pdfs: Vec<Box<dyn Fn(f64) -> f64 + '_>> = dists
            .iter()
            .map(|d| Box::new(move |x| d.pdf(x)) as Box<dyn Fn(f64) -> f64 + '_>)
            .collect();
        let cdfs: Vec<Box<dyn Fn(f64) -> f64 + '_>> = dists
            .iter()
            .map(|d| Box::new(move |x| d.cdf(x)) as Box<dyn Fn(f64) -> f64 + '_>)
            .collect();
        let widest = arms.iter().map(|a| a.scale()).fold(0.0, f64::max);
        let (lo, hi) = (10.0 - 60.0 * widest, 10.5 + 60.0 * widest);
        let (best, max) = brute_experiment(&pdfs, &cdfs, (lo, hi));
        let sd = arms[0].sd().unwrap();
        assert!(
            (figures.expected_max.unwrap() - max).abs() <= TOL * sd,
            "{k} arms: E[max]"
        );
        for (i, arm) in figures.arms.iter().enumerate() {
            assert!(
                (arm.prob_best - best[i]).abs() <= TOL,
                "{k} arms, arm {i}: P(best) {} vs {}",
                arm.prob_best,
                best[i]
            );
            let loss = max - arms[i].loc();
            assert!(
                (arm.expected_loss.unwrap() - loss).abs() <= TOL * sd,
                "{k} arms, arm {i}: loss"
            );
            if i > 0 {
                let p = simpson(|x| dists[i].pdf(x) * dists[0].cdf(x), lo, hi, 40_000);
                assert!(
                    (arm.prob_beats_control.unwrap() - p).abs() <= TOL,
                    "P(> control)"
                );
                assert_eq!(arm.uplift.unwrap().relative, None);
            }
        }
    }
}

#[test]
fn experiments_at_a_billion_events_agree_with_the_two_arm_closed_form() {
    // Two Gamma arms: P(λ1 > λ0) = P(F > c) of the beta-prime ratio, here
    // by brute-force Simpson in λ with the stable density; the engine must
    // agree with its own P(> control) and P(best).
    let a = gamma_posterior(0.5, 1e-6, 1_000_000_000, 1e7);
    let b = gamma_posterior(0.5, 1e-6, 1_000_030_000, 1e7);
    let figures = family_experiment(FamilyArms::Poisson(&[a.clone(), b.clone()]), 0).unwrap();
    let (sa, ra, sb, rb) = (a.shape(), a.rate(), b.shape(), b.rate());
    let lo = a.mean() - 12.0 * a.sd();
    let hi = b.mean() + 12.0 * b.sd();
    let ma = (sa - 1.0) / ra;
    let mb = (sb - 1.0) / rb;
    let dens = |l: f64, s: f64, m: f64| {
        let e = l / m - 1.0;
        ((s - 1.0) * (e.ln_1p() - e)).exp()
    };
    let za = simpson(|l| dens(l, sa, ma), lo, hi, 4000);
    let zb = simpson(|l| dens(l, sb, mb), lo, hi, 4000);
    // P(λb > λa) = ∫ f_b(x) F_a(x) dx, F_a by an inner Simpson.
    let p = simpson(
        |x| dens(x, sb, mb) / zb * simpson(|l| dens(l, sa, ma), lo, x, 400) / za,
        lo,
        hi,
        400,
    );
    let got = figures.arms[1].prob_beats_control.unwrap();
    assert!(
        (got - p).abs() <= 1e-8,
        "P(> control) {got} vs brute force {p}"
    );
    assert!((figures.arms[1].prob_best - got).abs() <= 1e-12);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn poisson_statistics_do_not_depend_on_order_or_batching(
        records in prop::collection::vec((0u64..1_000_000_000_000, 1e-6f64..1e6), 1..40),
        seed in any::<u64>(),
        cut in 0usize..40,
    ) {
        let stats: Vec<PoissonStats> = records
            .iter()
            .map(|(k, t)| PoissonStats::record(*k, Exposure::parse(*t).unwrap()))
            .collect();
        let in_order = stats.iter().fold(PoissonStats::ZERO, |a, b| a.checked_add(*b).unwrap());
        let mut shuffled = stats.clone();
        let len = shuffled.len();
        for i in 0..len {
            shuffled.swap(i, (seed as usize).wrapping_add(i * 31) % len);
        }
        let cut = cut.min(len);
        let first = shuffled[..cut].iter().fold(PoissonStats::ZERO, |a, b| a.checked_add(*b).unwrap());
        let second = shuffled[cut..].iter().fold(PoissonStats::ZERO, |a, b| a.checked_add(*b).unwrap());
        prop_assert_eq!(second.checked_add(first).unwrap(), in_order);
    }

    #[test]
    fn normal_statistics_do_not_depend_on_order_or_batching(
        values in prop::collection::vec(-1e9f64..1e9, 1..40),
        seed in any::<u64>(),
        cut in 0usize..40,
    ) {
        let stats: Vec<NormalStats> = values.iter().map(|x| NormalStats::record(*x).unwrap()).collect();
        let in_order = stats.iter().fold(NormalStats::ZERO, |a, b| a.checked_add(*b).unwrap());
        let mut shuffled = stats.clone();
        let len = shuffled.len();
        for i in 0..len {
            shuffled.swap(i, (seed as usize).wrapping_add(i * 31) % len);
        }
        let cut = cut.min(len);
        let first = shuffled[..cut].iter().fold(NormalStats::ZERO, |a, b| a.checked_add(*b).unwrap());
        let second = shuffled[cut..].iter().fold(NormalStats::ZERO, |a, b| a.checked_add(*b).unwrap());
        let merged = second.checked_add(first).unwrap();
        prop_assert_eq!(merged, in_order);
        // The same posterior to the bit.
        let a = NormalPrior::default().posterior(&merged).unwrap();
        let b = NormalPrior::default().posterior(&in_order).unwrap();
        prop_assert_eq!(a.mu().loc().to_bits(), b.mu().loc().to_bits());
        prop_assert_eq!(a.mu().scale().to_bits(), b.mu().scale().to_bits());
    }
}
