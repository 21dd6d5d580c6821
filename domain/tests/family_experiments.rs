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
    brute_experiment_with(pdfs, cdfs, range, 40_000)
}

/// The same with `n` (even) intervals.
fn brute_experiment_with(
    pdfs: &[Box<dyn Fn(f64) -> f64 + '_>],
    cdfs: &[Box<dyn Fn(f64) -> f64 + '_>],
    range: (f64, f64),
    n: usize,
) -> (Vec<f64>, f64) {
    let k = pdfs.len();
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

#[test]
fn poisson_arms_of_very_different_sizes_match_brute_force() {
    // A handful of events next to thousands: windows of very different
    // widths on one axis.
    let arms = [
        gamma_posterior(0.5, 1e-6, 3, 1.0),
        gamma_posterior(0.5, 1e-6, 40, 10.0),
        gamma_posterior(0.5, 1e-6, 4_000, 1_000.0),
    ];
    let figures = family_experiment(FamilyArms::Poisson(&arms), 2).unwrap();
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
    // Gamma(3.5, 1) still has 1e-12 of its mass past 45.
    let (best, max) = brute_experiment_with(&pdfs, &cdfs, (0.0, 60.0), 400_000);
    assert!((figures.expected_max.unwrap() - max).abs() <= TOL);
    for (i, arm) in figures.arms.iter().enumerate() {
        assert!(
            (arm.prob_best - best[i]).abs() <= TOL,
            "arm {i}: P(best) {} vs {}",
            arm.prob_best,
            best[i]
        );
        let loss = max - arms[i].mean();
        assert!(
            (arm.expected_loss.unwrap() - loss).abs() <= TOL,
            "arm {i}: loss"
        );
        let relative = arm.relative_loss.unwrap();
        assert!((relative - loss / arms[i].mean()).abs() <= TOL);
    }
    let p = simpson(|x| dists[0].pdf(x) * dists[2].cdf(x), 0.0, 60.0, 400_000);
    assert!((figures.arms[0].prob_beats_control.unwrap() - p).abs() <= TOL);
}

#[test]
fn normal_arms_at_a_billion_values_agree_with_the_normal_limit() {
    // 2^30 values each: dof ≈ 1e9, where the t is the normal to O(1/ν), and
    // P(μ1 > μ0) = Φ((m1 − m0)/√(s0² + s1²)).
    let arms: Vec<StudentT> = [(5.0, 1.0), (5.00005, 1.2)]
        .iter()
        .map(|(m, d)| {
            let stats = doubled(*m, *d, 30);
            NormalPrior::Reference
                .posterior(&stats)
                .unwrap()
                .mu()
                .clone()
        })
        .collect();
    let figures = family_experiment(FamilyArms::Normal(&arms), 0).unwrap();
    let (m0, m1) = (arms[0].loc(), arms[1].loc());
    let (s0, s1) = (arms[0].sd().unwrap(), arms[1].sd().unwrap());
    let spread = (s0 * s0 + s1 * s1).sqrt();
    let z = (m1 - m0) / spread;
    let normal = statrs::distribution::Normal::new(0.0, 1.0).unwrap();
    let want = normal.cdf(z);
    let got = figures.arms[1].prob_beats_control.unwrap();
    assert!((got - want).abs() <= TOL, "P(> control) {got} vs {want}");
    assert!((figures.arms[1].prob_best - want).abs() <= TOL);
    // E[max(μ0, μ1)] − E[μ1] = E[max(μ0 − μ1, 0)] = σφ(z) − (m1 − m0)Φ(−z).
    let loss = spread * normal.pdf(z) - (m1 - m0) * normal.cdf(-z);
    let got = figures.arms[1].expected_loss.unwrap();
    assert!((got - loss).abs() <= TOL * spread, "loss {got} vs {loss}");
}

#[test]
fn an_arm_without_a_mean_has_no_loss_but_a_chance_to_be_best() {
    use domain::bayes::family::normal::{NigPrior, NormalStats};
    let cauchy = NormalPrior::Nig(NigPrior::parse(0.0, 1.0, 0.5, 1.0).unwrap())
        .posterior(&NormalStats::ZERO)
        .unwrap();
    let narrow = NormalPrior::Reference
        .posterior(&doubled(0.0, 1.0, 10))
        .unwrap();
    let arms = [cauchy.mu().clone(), narrow.mu().clone()];
    let figures = family_experiment(FamilyArms::Normal(&arms), 1).unwrap();
    assert_eq!(figures.expected_max, None);
    assert!(figures.arms.iter().all(|a| a.expected_loss.is_none()));
    assert_eq!(figures.arms[0].mean, None);
    // Both centred at 0 and symmetric: each is best half of the time.
    for arm in &figures.arms {
        assert!((arm.prob_best - 0.5).abs() <= TOL, "{}", arm.prob_best);
    }
}

#[test]
fn narrow_arms_inside_a_wide_arms_window_are_resolved() {
    // The control has 3 events; the other arms 10^6 events at λ = 4 (a
    // window 1/500 of the control's), 10^4 at λ = 40 and 10^6 at λ = 0.4
    // (far to either side).
    // Each narrow arm's figures integrate over its own ±15 sd, where
    // Simpson's rule resolves it and the control's CDF is smooth.
    let arms = [
        gamma_posterior(0.5, 1e-6, 3, 1.0),
        gamma_posterior(0.5, 1e-6, 1_000_000, 250_000.0),
        gamma_posterior(0.5, 1e-6, 10_000, 250.0),
        gamma_posterior(0.5, 1e-6, 1_000_000, 2_500_000.0),
    ];
    let figures = family_experiment(FamilyArms::Poisson(&arms), 0).unwrap();
    let dists: Vec<Gamma> = arms
        .iter()
        .map(|a| Gamma::new(a.shape(), a.rate()).unwrap())
        .collect();
    for i in 1..4 {
        let (lo, hi) = (
            arms[i].mean() - 15.0 * arms[i].sd(),
            arms[i].mean() + 15.0 * arms[i].sd(),
        );
        let beats = simpson(|x| dists[i].pdf(x) * dists[0].cdf(x), lo, hi, 20_000);
        let got = figures.arms[i].prob_beats_control.unwrap();
        assert!(
            (got - beats).abs() <= TOL,
            "arm {i}: P(> control) {got} vs {beats}"
        );
        let best = simpson(
            |x| {
                let others: f64 = (0..3)
                    .filter(|j| *j != i)
                    .map(|j| dists[j].cdf(x))
                    .product();
                dists[i].pdf(x) * others
            },
            lo,
            hi,
            20_000,
        );
        let got = figures.arms[i].prob_best;
        assert!(
            (got - best).abs() <= TOL,
            "arm {i}: P(best) {got} vs {best}"
        );
    }
}
