//! The normal family against independent references: closed forms of the
//! conjugate updates, statrs's Student t (and the normal with its first
//! Edgeworth term past 1e6 degrees of freedom), from 3 values to 2^30,
//! values of 1e9 with a variance of 1e-12 and variances of 1e12.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod family_support;

use domain::bayes::family::normal::{NigPrior, NormalPrior, NormalStats, StudentT};
use domain::bayes::family::FamilyError;
use family_support::*;
use statrs::distribution::{Continuous, ContinuousCDF, StudentsT};

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
