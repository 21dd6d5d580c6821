//! The experiment figures against exact references: Evan Miller's closed form
//! for two Beta arms, brute-force integration for three to five, the normal
//! approximation at a billion observations, and identities that must hold
//! for any arms; the relative uplift against the closed form of a ratio of
//! Beta(a, 1) variables and brute-force integration.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use domain::bayes::{
    compare, experiment, prob_greater, Counts, ExperimentError, ExperimentFigures,
    ExperimentOptions, Interval, Posterior, Uplift, MAX_ARMS,
};
use domain::Prior;
use proptest::prelude::*;
use statrs::distribution::{Beta, Continuous, ContinuousCDF, Normal};
use statrs::function::gamma::{digamma, ln_gamma};

const UNIFORM: Prior = Prior::Uniform;
const OPTIONS: ExperimentOptions = ExperimentOptions {
    mass: 0.89,
    rope: 0.01,
};

fn ln_beta(a: f64, b: f64) -> f64 {
    ln_gamma(a) + ln_gamma(b) - ln_gamma(a + b)
}

/// P(p_b > p_a) for p_a ~ Beta(alpha_a, beta_a), p_b ~ Beta(alpha_b, beta_b)
/// with an integer alpha_b (Evan Miller, "Formulas for Bayesian A/B Testing"):
/// Σ_{i<α_b} B(α_a+i, β_a+β_b) / ((β_b+i) B(1+i, β_b) B(α_a, β_a)), each term in log space.
fn evan_miller(alpha_a: f64, beta_a: f64, alpha_b: u64, beta_b: f64) -> f64 {
    (0..alpha_b)
        .map(|i| {
            let i = i as f64;
            (ln_beta(alpha_a + i, beta_a + beta_b)
                - (beta_b + i).ln()
                - ln_beta(1.0 + i, beta_b)
                - ln_beta(alpha_a, beta_a))
            .exp()
        })
        .sum()
}

fn arms(counts: &[(u64, u64)]) -> Vec<Posterior<'static>> {
    counts
        .iter()
        .map(|(s, f)| Posterior::new(&UNIFORM, Counts::new(*s, *f)).unwrap())
        .collect()
}

fn figures(counts: &[(u64, u64)], control: usize) -> ExperimentFigures {
    experiment(&arms(counts), control, &OPTIONS).unwrap()
}

/// The largest |got - want| over the pairs, with the case that gave it.
#[derive(Default)]
struct Worst {
    error: f64,
    case: String,
}

impl Worst {
    fn see(&mut self, got: f64, want: f64, case: impl FnOnce() -> String) {
        let error = (got - want).abs();
        if error.is_nan() || error > self.error {
            self.error = error;
            self.case = format!("{} (got {got}, want {want})", case());
        }
    }

    fn at_most(&self, tolerance: f64) {
        println!("largest error {:e}: {}", self.error, self.case);
        assert!(
            self.error <= tolerance,
            "off by {:e} > {tolerance:e}: {}",
            self.error,
            self.case
        );
    }
}

const SMALL_COUNTS: [u64; 8] = [0, 1, 2, 5, 9, 17, 33, 50];

#[test]
fn two_beta_arms_match_evan_millers_closed_form_to_1e_9() {
    let mut worst = Worst::default();
    for sa in SMALL_COUNTS {
        for fa in SMALL_COUNTS {
            for sb in SMALL_COUNTS {
                for fb in [0, 3, 20, 50] {
                    let want =
                        evan_miller(1.0 + sa as f64, 1.0 + fa as f64, 1 + sb, 1.0 + fb as f64);
                    let got = figures(&[(sa, fa), (sb, fb)], 0).arms[1]
                        .prob_beats_control
                        .unwrap();
                    worst.see(got, want, || format!("A=({sa},{fa}) B=({sb},{fb})"));
                }
            }
        }
    }
    worst.at_most(1e-9);
}

#[test]
fn compare_meets_the_closed_form_to_1e_9_and_keeps_its_other_outputs() {
    let mut worst = Worst::default();
    for sa in SMALL_COUNTS {
        for fa in SMALL_COUNTS {
            for (sb, fb) in [(0, 0), (4, 9), (50, 50), (50, 0), (0, 50), (12, 30)] {
                let pa = Posterior::new(&UNIFORM, Counts::new(sa, fa)).unwrap();
                let pb = Posterior::new(&UNIFORM, Counts::new(sb, fb)).unwrap();
                let cmp = compare(&pa, &pb, 0.89).unwrap();
                // P(p_a > p_b) is Evan Miller's P(p_B > p_A) with the roles swapped.
                let want = evan_miller(1.0 + sb as f64, 1.0 + fb as f64, 1 + sa, 1.0 + fa as f64);
                worst.see(cmp.prob_a_greater, want, || {
                    format!("a=({sa},{fa}) b=({sb},{fb})")
                });
                assert_eq!(cmp.prob_a_greater, prob_greater(&pa, &pb));
                assert!((cmp.difference.mean - (pa.mean() - pb.mean())).abs() < 1e-15);
            }
        }
    }
    worst.at_most(1e-9);
}

/// The figures by brute force: composite Simpson in p over [0, 1] with
/// statrs's Beta density and CDF, E[max] as ∫ (1 − Π F_j) dp.
fn brute_force(counts: &[(u64, u64)], control: usize) -> (Vec<f64>, f64, Vec<f64>) {
    let betas: Vec<Beta> = counts
        .iter()
        .map(|(s, f)| Beta::new(1.0 + *s as f64, 1.0 + *f as f64).unwrap())
        .collect();
    let n = 40_000;
    let h = 1.0 / n as f64;
    let k = betas.len();
    let (mut best, mut beats, mut max) = (vec![0.0; k], vec![0.0; k], 0.0);
    for step in 0..=n {
        let p = step as f64 * h;
        let simpson = simpson_weight(step, n, h);
        let cdfs: Vec<f64> = betas.iter().map(|b| b.cdf(p)).collect();
        max += simpson * (1.0 - cdfs.iter().product::<f64>());
        for i in 0..k {
            let pdf = betas[i].pdf(p);
            let others: f64 = (0..k).filter(|j| *j != i).map(|j| cdfs[j]).product();
            best[i] += simpson * pdf * others;
            beats[i] += simpson * pdf * cdfs[control];
        }
    }
    (best, max, beats)
}

#[test]
fn three_to_five_arms_match_brute_force_integration() {
    let cases: [&[(u64, u64)]; 4] = [
        &[(12, 40), (15, 38), (9, 44)],
        &[(3, 5), (4, 4), (6, 3), (5, 5)],
        &[(30, 70), (33, 67), (28, 72), (35, 65), (31, 69)],
        &[(1, 1), (40, 60), (2, 3), (10, 12)],
    ];
    let mut worst = Worst::default();
    for counts in cases {
        let got = figures(counts, 0);
        let (best, max, beats) = brute_force(counts, 0);
        worst.see(got.expected_max, max, || format!("{counts:?} E[max]"));
        for (i, arm) in got.arms.iter().enumerate() {
            let (s, f) = counts[i];
            let mean = (1.0 + s as f64) / (2.0 + (s + f) as f64);
            worst.see(arm.prob_best, best[i], || format!("{counts:?} P(best) {i}"));
            worst.see(arm.mean, mean, || format!("{counts:?} mean {i}"));
            worst.see(arm.expected_loss, max - mean, || {
                format!("{counts:?} loss {i}")
            });
            worst.see(arm.relative_loss, (max - mean) / mean, || {
                format!("{counts:?} relative loss {i}")
            });
            if i != 0 {
                worst.see(arm.prob_beats_control.unwrap(), beats[i], || {
                    format!("{counts:?} P(> control) {i}")
                });
            }
        }
    }
    worst.at_most(1e-9);
}

fn assert_sums_to_one(figures: &ExperimentFigures, tolerance: f64) {
    let total: f64 = figures.arms.iter().map(|a| a.prob_best).sum();
    assert!(
        (total - 1.0).abs() <= tolerance,
        "P(best) sums to {total}: {figures:?}"
    );
}

#[test]
fn prob_best_sums_to_one_from_two_to_twenty_arms() {
    for k in 2..=MAX_ARMS {
        let moderate: Vec<(u64, u64)> = (0..k as u64).map(|i| (20 + 3 * i, 80 - i)).collect();
        assert_sums_to_one(&figures(&moderate, 0), 1e-12);
        let mixed: Vec<(u64, u64)> = (0..k as u64)
            .map(|i| match i % 4 {
                0 => (0, 0),
                1 => (500_000_000 + i * 1000, 500_000_000),
                2 => (7 * i, 3),
                _ => (1, 1_000_000_000),
            })
            .collect();
        assert_sums_to_one(&figures(&mixed, k - 1), 1e-12);
    }
}

#[test]
fn identical_arms_are_each_best_with_probability_one_over_k() {
    for counts in [(0, 0), (3, 7), (400, 600), (500_000_000, 500_000_000)] {
        for k in [2, 3, 7, 20] {
            let got = figures(&vec![counts; k], 0);
            for arm in &got.arms {
                assert!(
                    (arm.prob_best - 1.0 / k as f64).abs() < 1e-12,
                    "{counts:?} x{k}: {got:?}"
                );
            }
            for arm in &got.arms[1..] {
                assert!((arm.prob_beats_control.unwrap() - 0.5).abs() < 1e-12);
            }
        }
    }
}

/// Arms at 10^9 observations against the normal approximation, whose error
/// there is of the order of 1/n.
#[test]
fn arms_at_a_billion_observations_match_the_normal_approximation() {
    let n: u64 = 1_000_000_000;
    // Two arms, rates 0.5 and 0.5 + 1e-5: P(b > a) = Φ(Δ / sqrt(sd_a² + sd_b²)).
    let counts = [(n / 2, n / 2), (n / 2 + 10_000, n / 2 - 10_000)];
    let moments = |(s, f): (u64, u64)| {
        let (a, b) = (1.0 + s as f64, 1.0 + f as f64);
        let mean = a / (a + b);
        (mean, (mean * (1.0 - mean) / (a + b + 1.0)).sqrt())
    };
    let (ma, sa) = moments(counts[0]);
    let (mb, sb) = moments(counts[1]);
    let want = Normal::standard().cdf((mb - ma) / (sa * sa + sb * sb).sqrt());
    let got = figures(&counts, 0);
    let beats = got.arms[1].prob_beats_control.unwrap();
    assert!((beats - want).abs() < 1e-6, "{beats} vs {want}");
    assert!((got.arms[1].prob_best - want).abs() < 1e-6);
    assert_sums_to_one(&got, 1e-12);

    // Twenty arms, each 10^9 observations, rates 1e-5 apart around 0.5,
    // against ∫ φ_i Π_{j≠i} Φ_j by Simpson over the normal approximations.
    let counts: Vec<(u64, u64)> = (0..20u64)
        .map(|i| {
            let s = n / 2 + 5_000 * i - 40_000;
            (s, n - s)
        })
        .collect();
    let normals: Vec<Normal> = counts
        .iter()
        .map(|c| {
            let (m, s) = moments(*c);
            Normal::new(m, s).unwrap()
        })
        .collect();
    let (lo, hi) = (0.5 - 2e-4, 0.5 + 2e-4);
    let steps = 20_000;
    let h = (hi - lo) / steps as f64;
    let mut want = [0.0; 20];
    for step in 0..=steps {
        let x = lo + h * step as f64;
        let simpson = simpson_weight(step, steps, h);
        let cdfs: Vec<f64> = normals.iter().map(|d| d.cdf(x)).collect();
        for i in 0..20 {
            let others: f64 = (0..20).filter(|j| *j != i).map(|j| cdfs[j]).product();
            want[i] += simpson * normals[i].pdf(x) * others;
        }
    }
    let got = figures(&counts, 0);
    let mut worst = Worst::default();
    for (i, arm) in got.arms.iter().enumerate() {
        worst.see(arm.prob_best, want[i], || format!("arm {i}"));
    }
    worst.at_most(1e-6);
    assert_sums_to_one(&got, 1e-12);
}

#[test]
fn an_arm_with_no_data_beats_another_with_probability_one_minus_its_mean() {
    // A uniform arm U beats X with P(U > X) = E[1 - X], exactly, whatever X.
    for other in [
        (0, 0),
        (3, 17),
        (300_000_000, 700_000_000),
        (0, 1_000_000_000),
    ] {
        let got = figures(&[other, (0, 0)], 0);
        let (s, f) = other;
        let mean = (1.0 + s as f64) / (2.0 + (s + f) as f64);
        let beats = got.arms[1].prob_beats_control.unwrap();
        assert!((beats - (1.0 - mean)).abs() < 1e-9, "{other:?}: {beats}");
        assert_sums_to_one(&got, 1e-12);
    }
}

#[test]
fn the_expected_loss_of_a_certain_winner_is_nothing() {
    let got = figures(&[(700_000_000, 300_000_000), (500_000, 500_000)], 1);
    assert!(got.arms[0].prob_best > 1.0 - 1e-12);
    assert!(got.arms[0].expected_loss < 1e-12, "{got:?}");
    assert!((got.arms[1].expected_loss - 0.2).abs() < 1e-6, "{got:?}");
    assert!((got.expected_max - got.arms[0].mean).abs() < 1e-12);
}

#[test]
fn too_few_or_too_many_arms_and_a_missing_control_are_errors() {
    let one = arms(&[(1, 1)]);
    assert_eq!(
        experiment(&one, 0, &OPTIONS).unwrap_err(),
        ExperimentError::Arms(1)
    );
    let many = arms(&[(1, 1); MAX_ARMS + 1]);
    assert_eq!(
        experiment(&many, 0, &OPTIONS).unwrap_err(),
        ExperimentError::Arms(MAX_ARMS + 1)
    );
    let two = arms(&[(1, 1), (2, 2)]);
    assert_eq!(
        experiment(&two, 2, &OPTIONS).unwrap_err(),
        ExperimentError::Control {
            control: 2,
            arms: 2
        }
    );
}

fn any_arm() -> impl Strategy<Value = (u64, u64)> {
    let count = prop_oneof![0u64..20, 0u64..100_000, 0u64..1_000_000_000];
    (count.clone(), count)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn prob_best_sums_to_one_and_follows_the_arms_when_they_are_reordered(
        counts in prop::collection::vec(any_arm(), 2..=8),
    ) {
        let got = figures(&counts, 0);
        let total: f64 = got.arms.iter().map(|a| a.prob_best).sum();
        prop_assert!((total - 1.0).abs() <= 1e-12, "{total}");
        let mut reversed = counts.clone();
        reversed.reverse();
        let back = figures(&reversed, counts.len() - 1);
        for (i, arm) in got.arms.iter().enumerate() {
            let twin = back.arms[counts.len() - 1 - i];
            prop_assert!((arm.prob_best - twin.prob_best).abs() < 1e-12);
            prop_assert!((arm.expected_loss - twin.expected_loss).abs() < 1e-12);
            prop_assert!(arm.expected_loss >= 0.0);
        }
    }

    #[test]
    fn the_uplift_is_finite_and_its_median_lies_inside_its_hpdi(
        counts in prop::collection::vec(any_arm(), 2..=6),
    ) {
        let got = figures(&counts, 0);
        for arm in &got.arms[1..] {
            let u = arm.uplift.unwrap();
            prop_assert!((0.0..=1.0).contains(&u.prob_in_rope), "{u:?}");
            prop_assert!(u.mean.is_none_or(f64::is_finite), "{u:?}");
            prop_assert!(u.median.is_finite() && u.hpdi.lower.is_finite(), "{u:?}");
            prop_assert!(u.hpdi.upper.is_finite() && u.hpdi.lower >= -1.0, "{u:?}");
            // Half the mass is on each side of the median, and only 11 %
            // outside the HPDI: the median is inside it.
            let slack = 1e-9 * (1.0 + u.median.abs());
            prop_assert!(
                u.hpdi.lower - slack <= u.median && u.median <= u.hpdi.upper + slack,
                "{counts:?}: {u:?}"
            );
        }
    }
}

#[test]
fn every_kind_of_prior_gives_figures_that_sum_to_one() {
    let beta = Prior::Beta { a: 2.0, b: 3.0 };
    let tiny = Prior::Beta { a: 1e-6, b: 1e-6 };
    let step = Prior::Step {
        lower: 0.2,
        upper: 0.6,
    };
    let grid = Prior::Grid {
        weights: vec![0.0, 1.0, 3.0, 1.0, 0.5],
    };
    let priors = [&UNIFORM, &beta, &tiny, &step, &grid];
    for counts in [(0, 0), (4, 6), (300, 700), (400_000_000, 600_000_000)] {
        let arms: Vec<Posterior<'_>> = priors
            .iter()
            .map(|prior| Posterior::new(prior, Counts::new(counts.0, counts.1)).unwrap())
            .collect();
        let got = experiment(&arms, 0, &OPTIONS).unwrap();
        assert_sums_to_one(&got, 1e-12);
        // Every prior as the control: the uplift of every other is finite,
        // its median inside its HPDI.
        for control in 0..arms.len() {
            let figures = experiment(&arms, control, &OPTIONS).unwrap();
            for (i, arm) in figures.arms.iter().enumerate() {
                let Some(u) = arm.uplift else {
                    assert_eq!(i, control);
                    continue;
                };
                let case = format!("{counts:?} arm {i} over {control}: {u:?}");
                assert!((0.0..=1.0).contains(&u.prob_in_rope), "{case}");
                assert!(u.mean.is_none_or(f64::is_finite), "{case}");
                assert!(u.hpdi.lower >= -1.0 && u.hpdi.upper.is_finite(), "{case}");
                let slack = 1e-9 * (1.0 + u.median.abs());
                assert!(
                    u.hpdi.lower - slack <= u.median && u.median <= u.hpdi.upper + slack,
                    "{case}"
                );
            }
        }
        // The Beta(2, 3) prior arm against the uniform one, by the closed form.
        let (s, f) = counts;
        if s + f < 10_000 {
            let want = evan_miller(1.0 + s as f64, 1.0 + f as f64, 2 + s, 3.0 + f as f64);
            let beats = got.arms[1].prob_beats_control.unwrap();
            assert!((beats - want).abs() < 1e-9, "{counts:?}: {beats} vs {want}");
        }
        // A step prior holds no mass outside its support, nor does its arm.
        if counts == (0, 0) {
            let below = Posterior::new(&UNIFORM, Counts::new(0, 0)).unwrap();
            let pair = experiment(&[arms[3].clone(), below], 1, &OPTIONS).unwrap();
            // P(U(0.2, 0.6) > U(0, 1)) = E[p] of the step = 0.4.
            let beats = pair.arms[0].prob_beats_control.unwrap();
            assert!((beats - 0.4).abs() < 1e-9, "{beats}");
            // With X the step arm and Y uniform, P(X/R <= Y) = 1 − E[X]/R for
            // R >= 0.6: the median ratio is 0.8, and P(0.99 <= X/Y <= 1.01)
            // = E[X] (1/0.99 − 1/1.01).
            let uplift = pair.arms[0].uplift.unwrap();
            assert!((uplift.median + 0.2).abs() < 1e-9, "{uplift:?}");
            let rope = 0.4 * (1.0 / 0.99 - 1.0 / 1.01);
            assert!((uplift.prob_in_rope - rope).abs() < 1e-9, "{uplift:?}");
            assert_eq!(uplift.mean, None, "a uniform control has no E[1/p]");
        }
    }
}

/// The uplift of `arm` over arm 0 under `options`.
fn uplift(counts: &[(u64, u64)], arm: usize, options: &ExperimentOptions) -> Uplift {
    experiment(&arms(counts), 0, options).unwrap().arms[arm]
        .uplift
        .unwrap()
}

/// Solves `f(x) = 0` for an increasing `f` on [lo, hi] by bisection.
fn bisect(f: impl Fn(f64) -> f64, mut lo: f64, mut hi: f64) -> f64 {
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if f(mid) < 0.0 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// For X ~ Beta(a, 1) and Y ~ Beta(b, 1), the ratio R = X / Y has
/// P(R <= r) = r^a b/(a + b) below 1 and 1 − r^-b a/(a + b) above, and
/// density ab/(a + b) r^(a−1) below 1 and ab/(a + b) r^(−b−1) above.
struct PowerRatio {
    a: f64,
    b: f64,
}

impl PowerRatio {
    fn cdf(&self, r: f64) -> f64 {
        let (a, b) = (self.a, self.b);
        if r <= 0.0 {
            0.0
        } else if r <= 1.0 {
            r.powf(a) * b / (a + b)
        } else {
            1.0 - r.powf(-b) * a / (a + b)
        }
    }

    /// The HPDI of R at `mass` for a >= 2 (the density rises to its mode at
    /// 1, then falls): the lower end r1 < 1 fixes the upper end r2 > 1 of
    /// equal density, and the mass between them falls as r1 rises.
    fn hpdi(&self, mass: f64) -> (f64, f64) {
        let upper = |r1: f64| (r1.powf(self.a - 1.0)).powf(-1.0 / (self.b + 1.0));
        let r1 = bisect(|r1| mass - (self.cdf(upper(r1)) - self.cdf(r1)), 1e-12, 1.0);
        (r1, upper(r1))
    }
}

#[test]
fn the_uplift_of_arms_without_failures_meets_the_closed_form_of_their_ratio() {
    let options = |rope| ExperimentOptions { mass: 0.89, rope };
    let mut worst = Worst::default();
    let mut worst_hpdi = Worst::default();
    for (sa, sc) in [(1, 1), (4, 2), (2, 4), (9, 30), (40, 7), (1, 200)] {
        let ratio = PowerRatio {
            a: (sa + 1) as f64,
            b: (sc + 1) as f64,
        };
        let counts = [(sc, 0), (sa, 0)];
        let case = || format!("arm Beta({}, 1) over control Beta({}, 1)", sa + 1, sc + 1);
        for rope in [0.01, 0.2, 1.5] {
            let got = uplift(&counts, 1, &options(rope));
            let want = ratio.cdf(1.0 + rope) - ratio.cdf(1.0 - rope);
            worst.see(got.prob_in_rope, want, || format!("{} rope {rope}", case()));
        }
        let got = uplift(&counts, 1, &options(0.01));
        let median = bisect(|r| ratio.cdf(r) - 0.5, 0.0, 1e6) - 1.0;
        worst.see(got.median, median, || format!("{} median", case()));
        // E[U] = E[X] E[1/Y] − 1, with E[1/Y] = (b + 1 − 1)/(b − 1).
        let mean = ratio.a / (ratio.a + 1.0) * ratio.b / (ratio.b - 1.0) - 1.0;
        worst.see(got.mean.unwrap(), mean, || format!("{} mean", case()));
        let (lower, upper) = ratio.hpdi(0.89);
        worst_hpdi.see(got.hpdi.lower, lower - 1.0, || {
            format!("{} HPDI lower", case())
        });
        worst_hpdi.see(got.hpdi.upper, upper - 1.0, || {
            format!("{} HPDI upper", case())
        });
    }
    worst.at_most(1e-9);
    worst_hpdi.at_most(1e-6);
}

#[test]
fn two_arms_with_no_data_have_the_uplift_of_a_ratio_of_uniforms() {
    // R = X/Y for uniform X, Y: P(R <= r) = r/2 below 1, 1 − 1/(2r) above.
    // Its density is flat below 1 and falls above: the HPDI is [0, r*]
    // with 1 − 1/(2 r*) = mass.
    let counts = [(0, 0), (0, 0)];
    let got = uplift(&counts, 1, &OPTIONS);
    assert_eq!(got.mean, None, "E[1/Y] is infinite for a uniform control");
    assert!(got.median.abs() < 1e-9, "{got:?}");
    let rope = 1.0 - 1.0 / (2.0 * 1.01) - 0.99 / 2.0;
    assert!((got.prob_in_rope - rope).abs() < 1e-9, "{got:?} vs {rope}");
    let upper = 1.0 / (2.0 * (1.0 - OPTIONS.mass)) - 1.0;
    assert!((got.hpdi.lower + 1.0).abs() < 1e-6, "{got:?}");
    assert!(
        (got.hpdi.upper - upper).abs() < 1e-6 * upper,
        "{got:?} vs {upper}"
    );
}

/// P(p_arm / p_control <= r) and its density, by composite Simpson in x
/// over [0, min(1, 1/r)] with statrs's Beta density and CDF:
/// ∫ f_c(x) F_a(r x) dx + P(p_control > 1/r), and ∫ f_c(x) x f_a(r x) dx.
fn brute_ratio(control: &Beta, arm: &Beta, r: f64) -> (f64, f64) {
    let end = (1.0 / r).min(1.0);
    let n = 40_000;
    let h = end / n as f64;
    let (mut cdf, mut density) = (0.0, 0.0);
    for step in 0..=n {
        let x = step as f64 * h;
        let simpson = simpson_weight(step, n, h);
        let fc = control.pdf(x);
        if fc.is_finite() {
            cdf += simpson * fc * arm.cdf((r * x).min(1.0));
            density += simpson * fc * x * arm.pdf((r * x).min(1.0));
        }
    }
    (cdf + 1.0 - control.cdf(end), density)
}

#[test]
fn the_uplift_of_any_two_beta_arms_meets_brute_force_integration() {
    let cases: [[(u64, u64); 2]; 5] = [
        [(12, 40), (15, 38)],
        [(3, 5), (4, 4)],
        [(30, 70), (33, 67)],
        [(40, 60), (1, 1)],
        [(10, 12), (0, 0)],
    ];
    let mut worst = Worst::default();
    let mut worst_density = Worst::default();
    for counts in cases {
        let beta = |(s, f): (u64, u64)| Beta::new(1.0 + s as f64, 1.0 + f as f64).unwrap();
        let (control, arm) = (beta(counts[0]), beta(counts[1]));
        for rope in [0.01, 0.1] {
            let got = uplift(&counts, 1, &ExperimentOptions { mass: 0.89, rope });
            let want = brute_ratio(&control, &arm, 1.0 + rope).0
                - brute_ratio(&control, &arm, 1.0 - rope).0;
            worst.see(got.prob_in_rope, want, || format!("{counts:?} rope {rope}"));
        }
        let got = uplift(&counts, 1, &OPTIONS);
        // The median and the HPDI by what defines them, against brute force:
        // half the mass below the median; `mass` between the HPDI's ends,
        // where the density of U is the same.
        let at = |u: f64| brute_ratio(&control, &arm, 1.0 + u);
        worst.see(at(got.median).0, 0.5, || format!("{counts:?} F(median)"));
        let (lower, upper) = (at(got.hpdi.lower), at(got.hpdi.upper));
        worst.see(upper.0 - lower.0, OPTIONS.mass, || {
            format!("{counts:?} mass of the HPDI {:?}", got.hpdi)
        });
        if got.hpdi.lower + 1.0 < 1e-6 {
            // At U = −1 (p_arm = 0) the interval meets the end of the range,
            // where the density only has to be at least the other end's.
            assert!(lower.1 >= upper.1, "{counts:?}: {:?}", got.hpdi);
        } else {
            worst_density.see(lower.1 / upper.1, 1.0, || {
                format!("{counts:?} density at the HPDI's ends {:?}", got.hpdi)
            });
        }
        let (s, f) = counts[0];
        let (a, b) = (1.0 + s as f64, 1.0 + f as f64);
        let mean = (1.0 + counts[1].0 as f64) / (2.0 + (counts[1].0 + counts[1].1) as f64)
            * (a + b - 1.0)
            / (a - 1.0)
            - 1.0;
        match got.mean {
            Some(got) => worst.see(got, mean, || format!("{counts:?} mean")),
            None => assert_eq!(s, 0, "{counts:?}: the mean exists"),
        }
    }
    worst.at_most(1e-9);
    worst_density.at_most(1e-5);
}

#[test]
fn the_uplift_mean_of_a_grid_prior_meets_the_closed_form_of_its_uniform_twin() {
    // A flat grid prior is the uniform prior; E[1/p] comes from the
    // quadrature for it and from (a + b − 1)/(a − 1) for the uniform one.
    let flat = Prior::Grid {
        weights: vec![1.0, 1.0],
    };
    for (s, f) in [(3, 9), (5, 9), (40, 2), (300, 700)] {
        let control = Posterior::new(&flat, Counts::new(s, f)).unwrap();
        let arm = Posterior::new(&UNIFORM, Counts::new(7, 3)).unwrap();
        let got = experiment(&[control, arm], 0, &OPTIONS).unwrap().arms[1]
            .uplift
            .unwrap();
        let (a, b) = (1.0 + s as f64, 1.0 + f as f64);
        let want = 8.0 / 12.0 * (a + b - 1.0) / (a - 1.0) - 1.0;
        let mean = got.mean.unwrap();
        assert!((mean - want).abs() < 1e-9, "({s}, {f}): {mean} vs {want}");
    }
    // Without a success, a grid prior with weight at p = 0 has no E[1/p].
    let control = Posterior::new(&flat, Counts::new(0, 9)).unwrap();
    let arm = Posterior::new(&UNIFORM, Counts::new(7, 3)).unwrap();
    let got = experiment(&[control, arm], 0, &OPTIONS).unwrap();
    assert_eq!(got.arms[1].uplift.unwrap().mean, None);
}

#[test]
fn the_uplift_at_a_billion_observations_meets_the_exact_mean_and_the_normal_approximation() {
    let n: u64 = 1_000_000_000;
    let counts = [(n / 2, n / 2), (n / 2 + 10_000, n / 2 - 10_000)];
    let beta = |(s, f): (u64, u64)| (1.0 + s as f64, 1.0 + f as f64);
    let ((ac, bc), (aa, ba)) = (beta(counts[0]), beta(counts[1]));
    let got = uplift(
        &counts,
        1,
        &ExperimentOptions {
            mass: 0.89,
            rope: 1e-5,
        },
    );
    let mean = aa / (aa + ba) * (ac + bc - 1.0) / (ac - 1.0) - 1.0;
    let off = (got.mean.unwrap() - mean).abs();
    assert!(off < 1e-12, "mean {:?} vs {mean}: off by {off:e}", got.mean);
    // ln R is the difference of two near-normal ln p, with mean
    // ψ(a) − ψ(a + b) and variance ≈ b / (a (a + b)) each.
    let moments = |a: f64, b: f64| (digamma(a) - digamma(a + b), b / (a * (a + b)));
    let ((mc, vc), (ma, va)) = (moments(ac, bc), moments(aa, ba));
    let normal = Normal::new(ma - mc, (va + vc).sqrt()).unwrap();
    let rope = normal.cdf(1e-5f64.ln_1p()) - normal.cdf((-1e-5f64).ln_1p());
    assert!((got.prob_in_rope - rope).abs() < 1e-6, "{got:?} vs {rope}");
    let median = (ma - mc).exp_m1();
    assert!(
        (got.median - median).abs() < 1e-4 * median,
        "{got:?} vs {median}"
    );
    // Swapping the arms inverts the ratio: the median of 1/R is 1/median(R),
    // exactly, whatever the reference.
    let swapped = uplift(&[counts[1], counts[0]], 1, &OPTIONS);
    let back = 1.0 / (1.0 + got.median) - 1.0;
    assert!(
        (swapped.median - back).abs() < 1e-12,
        "{swapped:?} vs {back}"
    );
}

#[test]
fn identical_arms_have_an_uplift_median_of_zero_at_any_count() {
    for counts in [
        (3, 7),
        (400, 600),
        (20_000, 980_000),
        (500_000_000, 500_000_000),
    ] {
        for k in [2, 5] {
            let got = figures(&vec![counts; k], 0);
            for arm in &got.arms[1..] {
                let uplift = arm.uplift.unwrap();
                assert!(uplift.median.abs() < 1e-12, "{counts:?}: {uplift:?}");
                assert!(uplift.hpdi.lower < 0.0 && uplift.hpdi.upper > 0.0);
            }
            assert_eq!(got.arms[0].uplift, None);
        }
    }
}

#[test]
fn a_mass_outside_the_open_unit_interval_or_a_bad_rope_is_an_error() {
    let two = arms(&[(1, 1), (2, 2)]);
    for mass in [0.0, 1.0, -0.5, f64::NAN] {
        let options = ExperimentOptions { mass, rope: 0.01 };
        assert!(matches!(
            experiment(&two, 0, &options).unwrap_err(),
            ExperimentError::Mass(_)
        ));
    }
    for rope in [-0.01, f64::INFINITY, f64::NAN] {
        let options = ExperimentOptions { mass: 0.89, rope };
        assert!(matches!(
            experiment(&two, 0, &options).unwrap_err(),
            ExperimentError::Rope(_)
        ));
    }
}

#[test]
fn each_arms_uplift_among_twenty_mixed_arms_is_its_uplift_against_the_control_alone() {
    // No data, small counts, 10^6 and 10^9 observations side by side: the
    // shared pieces differ from a two-arm experiment's, the figures must not.
    // The two-arm figures are the ones checked against closed forms and
    // brute force above.
    let n = 1_000_000_000u64;
    let counts: Vec<(u64, u64)> = (0..20u64)
        .map(|i| match i % 5 {
            0 => (0, 0),
            1 => (3 + i, 9),
            2 => (50_000 + 100 * i, 950_000),
            3 => (n / 2 + 1_000 * i, n / 2),
            _ => (1, 1_000 + i),
        })
        .collect();
    for control in [1, 2, 3] {
        let all = figures(&counts, control);
        let mut worst = Worst::default();
        let mut worst_hpdi = Worst::default();
        for (i, arm) in all.arms.iter().enumerate() {
            if i == control {
                assert_eq!(arm.uplift, None);
                continue;
            }
            let pair = figures(&[counts[control], counts[i]], 0).arms[1];
            let (got, want) = (arm.uplift.unwrap(), pair.uplift.unwrap());
            let case = || format!("arm {i} {:?} over {:?}", counts[i], counts[control]);
            worst.see(got.prob_in_rope, want.prob_in_rope, || {
                format!("{} ROPE", case())
            });
            worst.see(
                arm.prob_beats_control.unwrap(),
                pair.prob_beats_control.unwrap(),
                || format!("{} P(> control)", case()),
            );
            let scale = 1.0 + want.median.abs();
            worst.see(got.median / scale, want.median / scale, || {
                format!("{} median", case())
            });
            match (got.mean, want.mean) {
                (Some(a), Some(b)) => worst.see(a / (1.0 + b.abs()), b / (1.0 + b.abs()), || {
                    format!("{} mean", case())
                }),
                (a, b) => assert_eq!(a.is_some(), b.is_some(), "{}", case()),
            }
            // The HPDI's width: where U's density is flat (a uniform arm
            // over a narrow control: U is uniform-like up to 1/p_c − 1) its
            // place is not unique, its width is.
            let width = |i: Interval| i.upper - i.lower;
            worst_hpdi.see(width(got.hpdi) / width(want.hpdi), 1.0, || {
                format!("{} HPDI {:?} vs {:?}", case(), got.hpdi, want.hpdi)
            });
        }
        worst.at_most(1e-9);
        worst_hpdi.at_most(1e-6);
        assert_sums_to_one(&all, 1e-12);
    }
}

/// The weight of point `step` of composite Simpson's rule on `n` intervals
/// of width `h` (1, 4, 2, 4, ..., 4, 1, times h/3), for the brute-force
/// integrals the engine's figures are checked against.
fn simpson_weight(step: usize, n: usize, h: f64) -> f64 {
    let weight = if step == 0 || step == n {
        1.0
    } else if step % 2 == 1 {
        4.0
    } else {
        2.0
    };
    weight * h / 3.0
}
