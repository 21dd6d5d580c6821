//! Priors at the edges of what a double holds: every prior the parser
//! accepts yields a valid posterior whatever the counts, and a grid prior
//! means the same at any scale (its weights are relative).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use domain::bayes::{Counts, DisplayGrid, GridSize, Posterior};
use domain::Prior;
use proptest::prelude::*;
use serde_json::json;
use statrs::distribution::{Beta, ContinuousCDF};

/// The prior a client's JSON parses to, or `None` when the parser refuses it.
fn parse(value: serde_json::Value) -> Option<Prior> {
    serde_json::from_value(value).ok()
}

/// Checks everything a client reads about a posterior: it forms, every
/// summary is a finite probability in order, the display grid's prior and
/// posterior each sum to 1, the predictive distribution too, and the mass
/// stays inside a step prior's support.
fn assert_valid(prior: &Prior, counts: Counts, grid_size: u32) -> Result<(), TestCaseError> {
    let case = format!("{prior:?} after {counts:?}");
    let post =
        Posterior::new(prior, counts).map_err(|e| TestCaseError::fail(format!("{case}: {e}")))?;
    let summary = post
        .summary(0.89)
        .map_err(|e| TestCaseError::fail(format!("{case}: {e}")))?;
    let s = summary;
    // The estimates and bounds a step prior's support must hold; the mode
    // is only held to [0, 1].
    let points = [
        s.mean,
        s.median,
        s.pi.lower,
        s.pi.upper,
        s.hpdi.lower,
        s.hpdi.upper,
    ];
    for x in points.into_iter().chain([s.mode]) {
        prop_assert!(
            x.is_finite() && (0.0..=1.0).contains(&x),
            "{case}: {summary:?}"
        );
    }
    prop_assert!(s.sd.is_finite() && s.sd >= 0.0, "{case}: {summary:?}");
    prop_assert!(
        s.pi.lower <= s.median && s.median <= s.pi.upper,
        "{case}: {summary:?}"
    );
    prop_assert!(s.hpdi.lower <= s.hpdi.upper, "{case}: {summary:?}");
    if let Prior::Step { lower, upper } = prior {
        // Within the support, to the rounding of the logit it is placed by.
        let slack = 1e-9 * (upper - lower) + 1e-12 * upper;
        for x in points {
            prop_assert!(
                *lower - slack <= x && x <= *upper + slack,
                "{case}: {x} outside the support: {summary:?}"
            );
        }
    }
    let grid = DisplayGrid::new(&post, GridSize::parse(grid_size).unwrap());
    for probs in [&grid.prior, &grid.posterior] {
        prop_assert!(probs.iter().all(|x| x.is_finite() && *x >= 0.0), "{case}");
        let sum: f64 = probs.iter().sum();
        prop_assert!((sum - 1.0).abs() < 1e-9, "{case}: the grid sums to {sum}");
    }
    if counts.trials().is_some_and(|n| n < u64::MAX - 10) {
        let predictive = post
            .predictive(10)
            .map_err(|e| TestCaseError::fail(format!("{case}: {e}")))?;
        prop_assert!(
            predictive.iter().all(|x| x.is_finite() && *x >= 0.0),
            "{case}"
        );
        let sum: f64 = predictive.iter().sum();
        prop_assert!((sum - 1.0).abs() < 1e-9, "{case}: predictive sums to {sum}");
    }
    Ok(())
}

/// A probability from where doubles are dense and where they are not: 0,
/// 1, tiny ones down to below the smallest normal double, ones a few ulps
/// below 1, and plain ones.
fn any_bound() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(0.0),
        Just(1.0),
        Just(5e-324),
        Just(1e-300),
        (-323.0f64..-1.0).prop_map(|e| 10f64.powf(e)),
        (1u64..1000).prop_map(|ulps| 1.0 - ulps as f64 * f64::EPSILON / 2.0),
        0.0f64..1.0,
    ]
}

/// A bound's neighbour: the next few doubles, or a little or a lot further.
fn near(x: f64) -> impl Strategy<Value = f64> {
    prop_oneof![
        (1u64..4).prop_map(move |ulps| f64::from_bits(x.to_bits() + ulps)),
        (1e-15f64..1.0).prop_map(move |d| x + d * (1.0 - x)),
        any_bound(),
    ]
}

/// A weight of a grid prior from anywhere in the doubles' range.
fn any_weight() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(0.0),
        Just(5e-324),
        Just(f64::MAX),
        (-323.0f64..308.0).prop_map(|e| 10f64.powf(e)),
        0.0f64..10.0,
    ]
}

/// A count from none to 10^13 (ten million records of the most trials one
/// record may carry). Far beyond, a posterior pressed against a zero of a
/// grid prior is narrower than the doubles near that zero, and the engine
/// answers that it has no mass.
fn any_count() -> impl Strategy<Value = u64> {
    prop_oneof![
        0u64..20,
        0u64..100_000,
        0u64..10_000_000_000,
        1_000_000_000_000u64..=10_000_000_000_000,
    ]
}

/// Any prior JSON a client could send with numbers at the edges, accepted
/// or not.
fn any_prior_json() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        Just(json!({"type": "uniform"})),
        (
            prop_oneof![Just(1e-6), Just(1e6), 1e-6f64..1e6],
            prop_oneof![Just(1e-6), Just(1e6), 1e-6f64..1e6]
        )
            .prop_map(|(a, b)| json!({"type": "beta", "a": a, "b": b})),
        any_bound()
            .prop_flat_map(|lower| (Just(lower), near(lower)))
            .prop_map(|(lower, upper)| json!({"type": "step", "lower": lower, "upper": upper})),
        prop::collection::vec(any_weight(), 2..40)
            .prop_map(|weights| json!({"type": "grid", "weights": weights})),
        (
            -323.0f64..308.0,
            prop::collection::vec(prop_oneof![Just(0.0), 0.0f64..10.0], 2..40)
        )
            .prop_map(|(e, weights)| {
                let scale = 10f64.powf(e);
                let weights: Vec<f64> = weights.iter().map(|w| w * scale).collect();
                json!({"type": "grid", "weights": weights})
            }),
    ]
}

/// Checks that two priors give the same posterior after `counts`, to
/// 1e-12: each summary relative to the larger of itself and the mean (a
/// posterior 1e-13 wide at p = 0.23 has an sd the doubles near 0.23 hold to
/// ~1e-9 of itself only), the display grid and the predictive absolutely.
fn assert_same(a: &Prior, b: &Prior, counts: Counts, grid_size: u32) -> Result<(), TestCaseError> {
    let case = format!("{a:?} vs {b:?} after {counts:?}");
    let (pa, pb) = (Posterior::new(a, counts), Posterior::new(b, counts));
    let (pa, pb) = match (pa, pb) {
        (Ok(pa), Ok(pb)) => (pa, pb),
        (pa, pb) => {
            return Err(TestCaseError::fail(format!(
                "{case}: {:?} vs {:?}",
                pa.err(),
                pb.err()
            )))
        }
    };
    let (sa, sb) = (pa.summary(0.89).unwrap(), pb.summary(0.89).unwrap());
    let scale = sa.mean.abs().max(sb.mean.abs());
    let close = |x: f64, y: f64| (x - y).abs() <= 1e-12 * x.abs().max(y.abs()).max(scale);
    let pairs = [
        (sa.mean, sb.mean),
        (sa.sd, sb.sd),
        (sa.median, sb.median),
        (sa.pi.lower, sb.pi.lower),
        (sa.pi.upper, sb.pi.upper),
        (sa.hpdi.lower, sb.hpdi.lower),
        (sa.hpdi.upper, sb.hpdi.upper),
    ];
    for (x, y) in pairs {
        prop_assert!(close(x, y), "{case}: {sa:?} vs {sb:?}");
    }
    // The mode is an argmax: at a smooth peak the density is flat to
    // second order, so a change of one part in 10^16 in it (the weights'
    // rounding) may move the argmax by one in 10^8.
    let mode_scale = sa.mode.abs().max(sb.mode.abs()).max(scale);
    prop_assert!(
        (sa.mode - sb.mode).abs() <= 1e-7 * mode_scale,
        "{case}: {sa:?} vs {sb:?}"
    );
    let size = GridSize::parse(grid_size).unwrap();
    let (ga, gb) = (DisplayGrid::new(&pa, size), DisplayGrid::new(&pb, size));
    for (x, y) in ga
        .prior
        .iter()
        .zip(&gb.prior)
        .chain(ga.posterior.iter().zip(&gb.posterior))
    {
        prop_assert!((x - y).abs() <= 1e-12, "{case}: grid {x} vs {y}");
    }
    for (x, y) in pa
        .predictive(5)
        .unwrap()
        .iter()
        .zip(&pb.predictive(5).unwrap())
    {
        prop_assert!((x - y).abs() <= 1e-12, "{case}: predictive {x} vs {y}");
    }
    Ok(())
}

/// Weights of a grid prior within seven orders of magnitude of 1, some
/// zero: scaled by 1e300 or 1e-300 every one is still a normal double.
fn moderate_weights() -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec(
        prop_oneof![Just(0.0), (-7.0f64..7.0).prop_map(|e| 10f64.powf(e))],
        2..60,
    )
    .prop_filter("not all zero", |w| w.iter().any(|x| *x > 0.0))
}

#[test]
fn a_grid_prior_of_the_smallest_double_is_the_prior_of_its_ratios() {
    // A hostile client's prior: before, its posterior mean was 0.125 where
    // [1, 0, 0] gives 0.166, because 5e-324 · 0.75 rounds to 5e-324.
    let tiny = parse(json!({"type": "grid", "weights": [5e-324, 0, 0]})).unwrap();
    let one = parse(json!({"type": "grid", "weights": [1, 0, 0]})).unwrap();
    for (s, f) in [(0, 0), (1, 4), (3, 4), (60, 900)] {
        let (a, b) = (
            Posterior::new(&tiny, Counts::new(s, f)).unwrap(),
            Posterior::new(&one, Counts::new(s, f)).unwrap(),
        );
        assert_eq!(
            a.summary(0.89).unwrap(),
            b.summary(0.89).unwrap(),
            "s={s} f={f}"
        );
    }
}

#[test]
fn a_step_prior_away_from_the_data_is_the_truncated_beta() {
    // The mean of Beta(α, β) cut to [l, u]: α/(α+β) · ΔI(α+1, β) / ΔI(α, β),
    // ΔI the regularised incomplete beta's increase from l to u. Before, a
    // step far below the data had no mass (every read failed) and a cut
    // posterior's mean was off by up to 5e-3 of itself.
    let truncated_mean = |l: f64, u: f64, a: f64, b: f64| {
        // From the tail the interval lies in: there the CDF (or 1 - CDF)
        // keeps the digits the other rounds away.
        let between = |a: f64, b: f64| {
            let beta = Beta::new(a, b).unwrap();
            if u <= a / (a + b) {
                beta.cdf(u) - beta.cdf(l)
            } else {
                beta.sf(l) - beta.sf(u)
            }
        };
        a / (a + b) * between(a + 1.0, b) / between(a, b)
    };
    for (lower, upper, s, f) in [
        (0.9, 1.0, 0, 0),
        (0.9, 1.0, 5, 5),
        (0.9, 1.0, 30, 10),
        (0.0, 0.1, 50, 50),
        (0.2, 0.6, 4, 6),
        (0.0, 1e-20, 0, 0),
        (0.0, 1e-20, 5, 5),
        (0.0, 1e-300, 7, 3_000),
    ] {
        let prior = parse(json!({"type": "step", "lower": lower, "upper": upper})).unwrap();
        let got = Posterior::new(&prior, Counts::new(s, f)).unwrap().mean();
        let (a, b) = (1.0 + s as f64, 1.0 + f as f64);
        // Below 1e-20, (1 - p)^f is 1 to within 1e-16: the cut Beta is
        // the power law p^s, whose mean on [0, u] is u (s + 1)/(s + 2).
        let want = if upper <= 1e-20 {
            upper * a / (a + 1.0)
        } else {
            truncated_mean(lower, upper, a, b)
        };
        assert!(
            (got - want).abs() <= 1e-6 * (upper - lower),
            "step [{lower}, {upper}] after {s}/{f}: mean {got}, want {want}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn a_grid_prior_means_the_same_at_any_scale(
        weights in moderate_weights(), s in any_count(), f in any_count(), g in 2u32..1000,
    ) {
        let at = |scale: f64| {
            let scaled: Vec<f64> = weights.iter().map(|w| w * scale).collect();
            parse(json!({"type": "grid", "weights": scaled})).expect("a normal-range grid prior parses")
        };
        let prior = at(1.0);
        for scale in [1e300, 1e-300] {
            assert_same(&prior, &at(scale), Counts::new(s, f), g)?;
        }
    }

    #[test]
    fn a_grid_prior_of_subnormal_weights_means_what_its_ratios_say(
        units in prop::collection::vec(prop_oneof![Just(0u32), 1u32..1000], 2..60)
            .prop_filter("not all zero", |u| u.iter().any(|x| *x > 0)),
        s in 0u64..10_000, f in 0u64..10_000,
    ) {
        // Multiples of the smallest double are exact: the same ratios.
        let smallest = f64::from_bits(1);
        let plain: Vec<f64> = units.iter().map(|u| f64::from(*u)).collect();
        let tiny: Vec<f64> = units.iter().map(|u| f64::from(*u) * smallest).collect();
        let a = parse(json!({"type": "grid", "weights": plain})).unwrap();
        let b = parse(json!({"type": "grid", "weights": tiny})).unwrap();
        assert_same(&a, &b, Counts::new(s, f), 100)?;
    }

    #[test]
    fn every_prior_the_parser_accepts_yields_a_valid_posterior(
        json in any_prior_json(), s in any_count(), f in any_count(), g in 2u32..1000,
    ) {
        if let Some(prior) = parse(json) {
            assert_valid(&prior, Counts::new(s, f), g)?;
        }
    }
}
