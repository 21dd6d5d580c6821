//! Experiments of one family (2 to 20 poisson or normal arms) against
//! brute force: Simpson's rule in the parameter with statrs's densities and
//! CDFs, within 1e-9 for P(best), P(> control) and (in sd) E[max] and the
//! expected loss; and two arms at 10^9 events.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod family_support;

use domain::bayes::family::normal::{NormalPrior, StudentT};
use domain::bayes::family::poisson::GammaPosterior;
use domain::bayes::family::{family_experiment, FamilyArms};
use family_support::*;
use statrs::distribution::{Continuous, ContinuousCDF, Gamma, StudentsT};

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
