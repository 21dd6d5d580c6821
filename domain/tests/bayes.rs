//! The Bayesian engine against exact references: Beta posteriors from statrs,
//! Statistical Rethinking's worked globe example, and properties that must
//! hold for every valid prior and count.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use domain::bayes::{compare, Counts, DisplayGrid, GridSize, ModelState, Posterior};
use domain::Prior;
use proptest::prelude::*;
use statrs::distribution::{Beta, ContinuousCDF};
use statrs::statistics::Distribution;

/// Checks every summary of the engine's posterior for `prior` after
/// (`s`, `f`) against the exact Beta(a + s, b + f), to within `1e-3` of the
/// exact posterior sd: a tolerance that scales with the width, so it is as
/// strict at 10^9 observations as at none.
fn check_exact(prior: &Prior, (a, b): (f64, f64), s: u64, f: u64) {
    let (alpha, beta) = (a + s as f64, b + f as f64);
    let exact = Beta::new(alpha, beta).unwrap();
    let sd = exact.std_dev().unwrap();
    let tol = 1e-3 * sd;
    let post = Posterior::new(prior, Counts::new(s, f)).unwrap();
    let case = format!("{prior:?} s={s} f={f} (sd {sd:e})");
    let close = |what: &str, got: f64, want: f64| {
        let off = (got - want).abs() / sd;
        assert!(
            (got - want).abs() <= tol,
            "{case}: {what} {got} vs exact {want}: off by {off:.2e} sd"
        );
    };
    close("mean", post.mean(), exact.mean().unwrap());
    close("sd", post.sd(), sd);
    let qs = [0.05, 0.5, 0.95];
    for (q, want) in qs.iter().zip(exact_quantiles(alpha, beta, &qs)) {
        close(&format!("quantile {q}"), post.quantile(*q).unwrap(), want);
    }
    close(
        "median",
        post.median(),
        exact_quantiles(alpha, beta, &[0.5])[0],
    );
}

/// Above this shape, statrs's regularised incomplete beta (a continued
/// fraction) loses digits: 3e-3 sd at Beta(5e5, 5e5), 0.1 sd at 5e8.
const STATRS_MAX_SHAPE: f64 = 1e5;

/// Quantiles of Beta(alpha, beta): bisection on statrs's CDF for moderate
/// shapes; beyond, a brute-force Simpson integration of the density.
fn exact_quantiles(alpha: f64, beta: f64, qs: &[f64]) -> Vec<f64> {
    if alpha.max(beta) <= STATRS_MAX_SHAPE {
        let dist = Beta::new(alpha, beta).unwrap();
        qs.iter().map(|q| bisect(|x| dist.cdf(x), *q)).collect()
    } else {
        brute_force_quantiles(alpha, beta, qs)
    }
}

fn bisect(cdf: impl Fn(f64) -> f64, q: f64) -> f64 {
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if mid <= lo || mid >= hi {
            break;
        }
        if cdf(mid) < q {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// Composite Simpson over 400 000 intervals of p, covering ±40 sd around
/// the mean. A shape below 1 makes the density infinite at its end; there the
/// variable is u = p^alpha, in which the density is smooth. (A right-end
/// singularity is the mirror image.)
fn brute_force_quantiles(alpha: f64, beta: f64, qs: &[f64]) -> Vec<f64> {
    if beta < 1.0 && alpha >= 1.0 {
        let mirrored: Vec<f64> = qs.iter().map(|q| 1.0 - q).collect();
        return brute_force_quantiles(beta, alpha, &mirrored)
            .into_iter()
            .map(|x| 1.0 - x)
            .collect();
    }
    let mean = alpha / (alpha + beta);
    let sd = (alpha * beta / ((alpha + beta).powi(2) * (alpha + beta + 1.0))).sqrt();
    let gamma = alpha.min(1.0);
    let (p_lo, p_hi) = ((mean - 40.0 * sd).max(0.0), (mean + 40.0 * sd).min(1.0));
    let (u_lo, u_hi) = (p_lo.powf(gamma), p_hi.powf(gamma));
    const N: usize = 400_000;
    let h = (u_hi - u_lo) / N as f64;
    // ln of the density in u, up to a constant: (alpha/gamma - 1) ln u + (beta - 1) ln(1 - p).
    let log_f = |u: f64| -> f64 {
        let p = u.powf(1.0 / gamma);
        let lead = if alpha / gamma - 1.0 == 0.0 {
            0.0
        } else {
            (alpha / gamma - 1.0) * u.ln()
        };
        let tail = if beta - 1.0 == 0.0 {
            0.0
        } else {
            (beta - 1.0) * (-p).ln_1p()
        };
        lead + tail
    };
    let logs: Vec<f64> = (0..=N).map(|i| log_f(u_lo + h * i as f64)).collect();
    let peak = logs
        .iter()
        .copied()
        .filter(|x| x.is_finite())
        .fold(f64::NEG_INFINITY, f64::max);
    let f: Vec<f64> = logs
        .iter()
        .map(|l| if l.is_finite() { (l - peak).exp() } else { 0.0 })
        .collect();
    // CDF at even nodes by Simpson's rule on each pair of intervals.
    let mut cdf = vec![0.0];
    for k in 0..N / 2 {
        let (a, m, b) = (f[2 * k], f[2 * k + 1], f[2 * k + 2]);
        cdf.push(cdf[k] + h / 3.0 * (a + 4.0 * m + b));
    }
    let total = cdf[N / 2];
    qs.iter()
        .map(|q| {
            let target = q * total;
            let k = cdf.partition_point(|c| *c < target).clamp(1, N / 2);
            let frac = (target - cdf[k - 1]) / (cdf[k] - cdf[k - 1]);
            let u = u_lo + h * 2.0 * ((k - 1) as f64 + frac);
            u.powf(1.0 / gamma)
        })
        .collect()
}

#[test]
fn the_brute_force_reference_agrees_with_statrs_where_statrs_is_exact() {
    for (alpha, beta) in [
        (7.0, 4.0),
        (1000.0, 300.0),
        (0.5, 50_000.5),
        (50_000.0, 0.5),
        (2.0, 90_000.0),
    ] {
        let qs = [0.05, 0.5, 0.95];
        let dist = Beta::new(alpha, beta).unwrap();
        let sd = dist.std_dev().unwrap();
        let brute = brute_force_quantiles(alpha, beta, &qs);
        for (q, got) in qs.iter().zip(brute) {
            let want = bisect(|x| dist.cdf(x), *q);
            assert!(
                (got - want).abs() < 1e-5 * sd,
                "Beta({alpha}, {beta}) q={q}: {got} vs {want}"
            );
        }
    }
}

const SIZES: [u64; 6] = [0, 1, 9, 1_000, 1_000_000, 1_000_000_000];
const TRUE_P: [f64; 4] = [0.01, 0.5, 0.7, 0.999];

fn priors() -> Vec<(Prior, (f64, f64))> {
    vec![
        (Prior::Uniform, (1.0, 1.0)),
        (Prior::Beta { a: 2.0, b: 2.0 }, (2.0, 2.0)),
        (Prior::Beta { a: 0.5, b: 0.5 }, (0.5, 0.5)),
        (Prior::Beta { a: 20.0, b: 3.0 }, (20.0, 3.0)),
    ]
}

#[test]
fn summaries_match_the_exact_beta_posterior_from_no_data_to_a_billion_observations() {
    for (prior, ab) in priors() {
        for n in SIZES {
            for p in TRUE_P {
                let s = (p * n as f64).round() as u64;
                check_exact(&prior, ab, s, n - s);
            }
        }
    }
}

#[test]
fn summaries_stay_exact_when_every_observation_is_a_success_or_every_one_a_failure() {
    for (prior, ab) in priors() {
        for n in SIZES {
            check_exact(&prior, ab, n, 0);
            check_exact(&prior, ab, 0, n);
        }
    }
}

#[test]
fn the_globe_tossing_example_of_statistical_rethinking() {
    // W L W W W L W L W: six waters in nine tosses, uniform prior.
    let mut state = ModelState::default();
    for toss in "WLWWWLWLW".chars() {
        let delta = if toss == 'W' {
            Counts::new(1, 0)
        } else {
            Counts::new(0, 1)
        };
        state = state.apply(delta).unwrap();
    }
    assert_eq!((state.counts, state.version), (Counts::new(6, 3), 9));
    let prior = Prior::Uniform;
    let post = Posterior::new(&prior, state.counts).unwrap();
    let grid = DisplayGrid::new(&post, GridSize::parse(20).unwrap());
    assert_eq!(grid.map(), 13.0 / 19.0);
    assert!((grid.map() - 0.6842).abs() < 5e-5);
    // The exact posterior is Beta(7, 4): mean 7/11, mode 6/9.
    assert!((post.mean() - 7.0 / 11.0).abs() < 1e-12, "{}", post.mean());
    assert!((post.mean() - 0.6364).abs() < 5e-5);
    assert!((post.mode() - 6.0 / 9.0).abs() < 1e-9, "{}", post.mode());
    // McElreath's grid of 20: the posterior at p = 13/19 relative to its sum.
    let weight = |p: f64| p.powi(6) * (1.0 - p).powi(3);
    let sum: f64 = (0..20).map(|i| weight(i as f64 / 19.0)).sum();
    assert!((grid.posterior[13] - weight(13.0 / 19.0) / sum).abs() < 1e-15);
}

#[test]
fn hpdi_is_the_narrowest_interval_and_pi_the_central_one() {
    // Beta(7, 4): check both intervals against the exact distribution.
    let exact = Beta::new(7.0, 4.0).unwrap();
    let prior = Prior::Uniform;
    let post = Posterior::new(&prior, Counts::new(6, 3)).unwrap();
    for mass in [0.5, 0.89, 0.95] {
        let pi = post.pi(mass).unwrap();
        assert!((exact.cdf(pi.lower) - (1.0 - mass) / 2.0).abs() < 1e-6);
        assert!((exact.cdf(pi.upper) - (1.0 + mass) / 2.0).abs() < 1e-6);
        let hpdi = post.hpdi(mass).unwrap();
        assert!(
            (exact.cdf(hpdi.upper) - exact.cdf(hpdi.lower) - mass).abs() < 1e-6,
            "{hpdi:?}"
        );
        // The narrowest interval has equal density at both ends.
        let density = |x: f64| statrs::distribution::Continuous::pdf(&exact, x);
        let (dl, du) = (density(hpdi.lower), density(hpdi.upper));
        assert!((dl - du).abs() < 1e-4 * dl, "{mass}: density {dl} vs {du}");
        assert!(hpdi.upper - hpdi.lower < pi.upper - pi.lower);
    }
    // All successes: the density rises to p = 1, so the HPDI ends there.
    let post = Posterior::new(&prior, Counts::new(1_000_000_000, 0)).unwrap();
    let hpdi = post.hpdi(0.89).unwrap();
    assert!(1.0 - hpdi.upper < 1e-12, "{hpdi:?}");
    let exact = Beta::new(1e9 + 1.0, 1.0).unwrap();
    let lower = exact_quantiles(1e9 + 1.0, 1.0, &[0.11])[0];
    assert!((lower - hpdi.lower).abs() < 1e-3 * exact.std_dev().unwrap());
}

#[test]
fn a_beta_prior_below_one_gives_finite_probabilities_at_the_ends() {
    let prior = Prior::Beta { a: 0.5, b: 0.5 };
    let post = Posterior::new(&prior, Counts::ZERO).unwrap();
    let grid = DisplayGrid::new(&post, GridSize::default());
    assert!(grid
        .prior
        .iter()
        .chain(&grid.posterior)
        .all(|x| x.is_finite()));
    assert!(
        grid.posterior[0] > grid.posterior[1],
        "the U shape keeps its ends highest"
    );
    assert!((grid.posterior.iter().sum::<f64>() - 1.0).abs() < 1e-12);
}

#[test]
fn predictive_is_beta_binomial() {
    // Uniform prior, no data: every count of successes is equally likely.
    let prior = Prior::Uniform;
    let post = Posterior::new(&prior, Counts::ZERO).unwrap();
    let pred = post.predictive(10).unwrap();
    for p in &pred {
        assert!((p - 1.0 / 11.0).abs() < 1e-9, "{pred:?}");
    }
    // After W L W W W L W L W, P(all 3 next are W) = B(10, 4) / B(7, 4) = (7·8·9)/(11·12·13).
    let post = Posterior::new(&prior, Counts::new(6, 3)).unwrap();
    let pred = post.predictive(3).unwrap();
    assert!((pred[3] - 504.0 / 1716.0).abs() < 1e-9, "{pred:?}");
    assert!((pred.iter().sum::<f64>() - 1.0).abs() < 1e-12);
}

#[test]
fn samples_are_seeded_and_follow_the_posterior() {
    let prior = Prior::Uniform;
    let post = Posterior::new(&prior, Counts::new(6, 3)).unwrap();
    let a = post.samples(20_000, 42);
    assert_eq!(a, post.samples(20_000, 42));
    assert_ne!(a, post.samples(20_000, 43));
    let mean = a.iter().sum::<f64>() / a.len() as f64;
    // Beta(7,4): sd 0.139, so the mean of 20 000 draws is within ~0.001 (3 sd: 0.003).
    assert!((mean - 7.0 / 11.0).abs() < 0.003, "{mean}");
    assert!(a.iter().all(|p| (0.0..=1.0).contains(p)));
}

#[test]
fn comparing_two_posteriors() {
    let prior = Prior::Uniform;
    let a = Posterior::new(&prior, Counts::new(6, 3)).unwrap();
    let same = compare(&a, &a, 0.89).unwrap();
    assert!((same.prob_a_greater - 0.5).abs() < 1e-6, "{same:?}");
    assert!(same.difference.median.abs() < 1e-6);
    // Beta(2,1) vs Beta(1,2): P(X > Y) = 5/6 exactly.
    let x = Posterior::new(&prior, Counts::new(1, 0)).unwrap();
    let y = Posterior::new(&prior, Counts::new(0, 1)).unwrap();
    let cmp = compare(&x, &y, 0.89).unwrap();
    assert!((cmp.prob_a_greater - 5.0 / 6.0).abs() < 1e-6, "{cmp:?}");
    assert!((cmp.difference.mean - 1.0 / 3.0).abs() < 1e-9);
    // Far apart and narrow: certainty either way, difference 0.2.
    let hi = Posterior::new(&prior, Counts::new(700_000_000, 300_000_000)).unwrap();
    let lo = Posterior::new(&prior, Counts::new(500_000, 500_000)).unwrap();
    let cmp = compare(&hi, &lo, 0.89).unwrap();
    assert!(cmp.prob_a_greater > 1.0 - 1e-12);
    assert!((cmp.difference.median - 0.2).abs() < 1e-3, "{cmp:?}");
    assert!(compare(&lo, &hi, 0.89).unwrap().prob_a_greater < 1e-12);
}

#[test]
fn a_step_prior_gives_zero_mass_outside_its_support() {
    let prior = Prior::Step {
        lower: 0.5,
        upper: 1.0,
    };
    // Data that favour p = 0.3 pile the mass at the step, and none leaks below it.
    let post = Posterior::new(&prior, Counts::new(300, 700)).unwrap();
    assert_eq!(post.cdf(0.4999).unwrap(), 0.0);
    assert!(post.quantile(0.0).unwrap() >= 0.5);
    assert!(post.mean() > 0.5 && post.mean() < 0.51, "{}", post.mean());
    let grid = DisplayGrid::new(&post, GridSize::default());
    for (p, q) in grid.p.iter().zip(&grid.posterior) {
        if *p < 0.5 {
            assert_eq!(*q, 0.0, "mass at {p}");
        }
    }
}

#[test]
fn a_support_between_display_points_still_gives_a_proper_grid() {
    let prior = Prior::Step {
        lower: 0.301,
        upper: 0.302,
    };
    let post = Posterior::new(&prior, Counts::new(3, 7)).unwrap();
    let grid = DisplayGrid::new(&post, GridSize::parse(11).unwrap());
    assert!(
        (grid.posterior.iter().sum::<f64>() - 1.0).abs() < 1e-12,
        "{:?}",
        grid.posterior
    );
    assert!(
        (grid.prior.iter().sum::<f64>() - 1.0).abs() < 1e-12,
        "{:?}",
        grid.prior
    );
    assert_eq!(grid.map(), 0.3);
}

#[test]
fn bad_arguments_are_errors() {
    let prior = Prior::Uniform;
    let post = Posterior::new(&prior, Counts::ZERO).unwrap();
    assert!(post.quantile(1.5).is_err());
    assert!(post.pi(0.0).is_err());
    assert!(post.hpdi(1.0).is_err());
    assert!(post.summary(f64::NAN).is_err());
    assert!(GridSize::parse(1).is_err());
    assert!(GridSize::parse(100_001).is_err());
    assert!(ModelState {
        counts: Counts::new(u64::MAX, 0),
        version: 1
    }
    .apply(Counts::new(1, 0))
    .is_err());
}

fn any_prior() -> impl Strategy<Value = Prior> {
    prop_oneof![
        Just(Prior::Uniform),
        (0.05f64..50.0, 0.05f64..50.0).prop_map(|(a, b)| Prior::Beta { a, b }),
        (0.0f64..1.0, 0.0f64..1.0)
            .prop_filter("lower < upper", |(x, y)| (x - y).abs() > 1e-6)
            .prop_map(|(x, y)| Prior::Step {
                lower: x.min(y),
                upper: x.max(y)
            }),
        prop::collection::vec(0.0f64..10.0, 2..50)
            .prop_filter("not all zero", |w| w.iter().any(|x| *x > 0.0))
            .prop_map(|weights| Prior::Grid { weights }),
    ]
}

fn any_count() -> impl Strategy<Value = u64> {
    prop_oneof![0u64..20, 0u64..100_000, 0u64..10_000_000_000]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn the_display_posterior_sums_to_one_and_holds_no_nan(
        prior in any_prior(), s in any_count(), f in any_count(), g in 2u32..2000,
    ) {
        let post = Posterior::new(&prior, Counts::new(s, f)).unwrap();
        let grid = DisplayGrid::new(&post, GridSize::parse(g).unwrap());
        for probs in [&grid.prior, &grid.posterior] {
            prop_assert!(probs.iter().all(|x| x.is_finite() && *x >= 0.0));
            prop_assert!((probs.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        }
        let summary = post.summary(0.89).unwrap();
        for x in [summary.mean, summary.sd, summary.mode, summary.median, summary.pi.lower, summary.pi.upper, summary.hpdi.lower, summary.hpdi.upper] {
            prop_assert!(x.is_finite() && (0.0..=1.0).contains(&x), "{summary:?}");
        }
        prop_assert!(summary.pi.lower <= summary.median && summary.median <= summary.pi.upper);
        prop_assert!(summary.hpdi.upper - summary.hpdi.lower <= summary.pi.upper - summary.pi.lower + 1e-9);
    }

    #[test]
    fn order_of_observations_never_changes_the_result(
        outcomes in prop::collection::vec(any::<bool>(), 0..200), seed in any::<u64>(),
    ) {
        let fold = |xs: &[bool]| xs.iter().fold(ModelState::default(), |st, w| {
            st.apply(if *w { Counts::new(1, 0) } else { Counts::new(0, 1) }).unwrap()
        });
        let mut shuffled = outcomes.clone();
        // A seeded Fisher-Yates shuffle.
        let mut x = seed | 1;
        for i in (1..shuffled.len()).rev() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            shuffled.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let (a, b) = (fold(&outcomes), fold(&shuffled));
        prop_assert_eq!(a, b);
        let prior = Prior::Beta { a: 2.0, b: 3.0 };
        let (pa, pb) = (Posterior::new(&prior, a.counts).unwrap(), Posterior::new(&prior, b.counts).unwrap());
        prop_assert_eq!(pa.summary(0.89).unwrap(), pb.summary(0.89).unwrap());
    }

    #[test]
    fn a_batch_equals_the_same_observations_one_by_one(
        runs in prop::collection::vec((0u64..1000, 0u64..1000), 1..20),
    ) {
        let one_by_one = runs.iter().fold(ModelState::default(), |st, (s, f)| {
            let st = (0..*s).fold(st, |st, _| st.apply(Counts::new(1, 0)).unwrap());
            (0..*f).fold(st, |st, _| st.apply(Counts::new(0, 1)).unwrap())
        });
        let batched = runs.iter().fold(ModelState::default(), |st, (s, f)| st.apply(Counts::new(*s, *f)).unwrap());
        prop_assert_eq!(one_by_one.counts, batched.counts);
        let prior = Prior::Uniform;
        let grid = |c| DisplayGrid::new(&Posterior::new(&prior, c).unwrap(), GridSize::default());
        prop_assert_eq!(grid(one_by_one.counts), grid(batched.counts));
    }

    #[test]
    fn a_step_prior_never_puts_mass_outside_its_support(
        lower in 0.0f64..0.9, width in 0.01f64..0.5, s in any_count(), f in any_count(),
    ) {
        let upper = (lower + width).min(1.0);
        let prior = Prior::Step { lower, upper };
        let post = Posterior::new(&prior, Counts::new(s, f)).unwrap();
        let grid = DisplayGrid::new(&post, GridSize::default());
        for (p, q) in grid.p.iter().zip(&grid.posterior) {
            if *p < lower || *p > upper {
                prop_assert_eq!(*q, 0.0);
            }
        }
        prop_assert!(post.quantile(0.0).unwrap() >= lower * (1.0 - 1e-12));
        prop_assert!(post.quantile(1.0).unwrap() <= upper * (1.0 + 1e-12));
    }
}
