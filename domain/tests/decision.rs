//! The decision layer against exact references: the decision rule on
//! experiments built to reach each outcome, the sample ratio check against
//! known chi-square p-values and statrs, and the bandit's weights against
//! their definitions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use domain::bayes::{
    bandit_weights, decide, experiment, srm, BanditOptions, Counts, Decision, ExperimentError,
    ExperimentFigures, ExperimentOptions, Posterior, SRM_THRESHOLD,
};
use domain::Prior;
use proptest::prelude::*;
use statrs::distribution::{ChiSquared, ContinuousCDF};

const UNIFORM: Prior = Prior::Uniform;

fn figures(counts: &[(u64, u64)], rope: f64) -> ExperimentFigures {
    let arms: Vec<Posterior<'_>> = counts
        .iter()
        .map(|(s, f)| Posterior::new(&UNIFORM, Counts::new(*s, *f)).unwrap())
        .collect();
    experiment(&arms, 0, &ExperimentOptions { mass: 0.95, rope }).unwrap()
}

#[test]
fn a_clear_winner_below_the_threshold_of_caring_is_shipped() {
    let got = figures(&[(1_000, 9_000), (1_500, 8_500), (1_020, 8_980)], 0.01);
    let verdict = decide(&got, &["old", "new", "other"], 0, 0.001, 0.95);
    assert_eq!(verdict.decision, Decision::Ship { arm: 1 }, "{verdict:?}");
    assert!(verdict.reason.starts_with("new has"), "{}", verdict.reason);
    // Arms without a name are called by their index.
    let unnamed = decide(&got, &[], 0, 0.001, 0.95);
    assert!(
        unnamed.reason.starts_with("arm 1 has"),
        "{}",
        unnamed.reason
    );
}

#[test]
fn arms_inside_the_rope_keep_the_control_even_when_a_loss_is_below_the_threshold() {
    // A billion observations each, rates 1e-5 apart: every uplift sits well
    // inside ±1 %, and every expected loss is far below 0.001 too; the ROPE
    // rule comes first.
    let n = 1_000_000_000u64;
    let got = figures(&[(n / 2, n / 2), (n / 2 + 5_000, n / 2 - 5_000)], 0.01);
    assert!(got.arms[1].expected_loss < 0.001);
    let verdict = decide(&got, &[], 0, 0.001, 0.95);
    assert_eq!(
        verdict.decision,
        Decision::NoMeaningfulDifference,
        "{verdict:?}"
    );
    assert!(
        verdict.reason.contains("keep the control"),
        "{}",
        verdict.reason
    );
}

#[test]
fn an_experiment_short_of_evidence_keeps_running() {
    let got = figures(&[(3, 5), (4, 4)], 0.01);
    let verdict = decide(&got, &[], 0, 0.001, 0.95);
    assert_eq!(verdict.decision, Decision::KeepRunning, "{verdict:?}");
    assert!(
        verdict.reason.contains("keep running"),
        "{}",
        verdict.reason
    );
}

#[test]
fn a_decision_serialises_with_its_kind() {
    let json = serde_json::to_value(Decision::Ship { arm: 2 }).unwrap();
    assert_eq!(json, serde_json::json!({"kind": "ship", "arm": 2}));
    let json = serde_json::to_value(Decision::NoMeaningfulDifference).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"kind": "no_meaningful_difference"})
    );
}

#[test]
fn srm_meets_known_chi_square_p_values() {
    // 5100 vs 4900 on a 50/50 split: χ² = 2 · 100²/5000 = 4, and
    // P(χ²₁ > 4) = erfc(√2).
    let got = srm(&[5_100, 4_900], &[1.0, 1.0]).unwrap();
    assert!((got.chi_square - 4.0).abs() < 1e-12, "{got:?}");
    assert_eq!(got.degrees_of_freedom, 1);
    assert!(
        (got.p_value - 0.045_500_263_896_358_41).abs() < 1e-12,
        "{got:?}"
    );
    assert!(!got.flagged);
    // The textbook critical values: P(χ²₁ > 10.828) = 0.001, P(χ²₂ > 5.991) = 0.05.
    // 100 + d and 100 − d on 50/50 give χ² = d²/50.
    let d = (10.827_566_170_662_733f64 * 50.0).sqrt();
    let n = 1e6;
    let got = srm(&[(n + d * 1e2) as u64, (n - d * 1e2) as u64], &[1.0, 1.0]).unwrap();
    let want = ChiSquared::new(1.0).unwrap().sf(got.chi_square);
    assert!((got.p_value - want).abs() < 1e-12, "{got:?} vs {want}");
    // Unequal weights: 3000/1000/1000 expected, observed 3100/950/950:
    // χ² = 100²/3000 + 2 · 50²/1000.
    let got = srm(&[3_100, 950, 950], &[0.6, 0.2, 0.2]).unwrap();
    let chi = 100.0f64.powi(2) / 3000.0 + 2.0 * 50.0f64.powi(2) / 1000.0;
    assert!((got.chi_square - chi).abs() < 1e-9, "{got:?}");
    assert!(
        (got.p_value - (-chi / 2.0).exp()).abs() < 1e-12,
        "χ²₂ sf is e^-x/2: {got:?}"
    );
}

#[test]
fn srm_p_values_match_statrs_for_every_number_of_groups_up_to_twenty() {
    for groups in 2..=20u64 {
        for skew in [0u64, 7, 40, 300, 2_000] {
            let observed: Vec<u64> = (0..groups).map(|i| 10_000 + skew * (i % 3)).collect();
            let weights = vec![1.0; groups as usize];
            let got = srm(&observed, &weights).unwrap();
            let df = (groups - 1) as f64;
            let want = ChiSquared::new(df).unwrap().sf(got.chi_square);
            assert!(
                (got.p_value - want).abs() < 1e-12,
                "{groups} groups, skew {skew}: {got:?} vs {want}"
            );
            assert_eq!(got.flagged, want < SRM_THRESHOLD);
        }
    }
}

#[test]
fn a_gross_mismatch_is_flagged_and_no_observations_are_no_evidence() {
    let got = srm(&[5_300, 4_700], &[1.0, 1.0]).unwrap();
    assert!(got.flagged && got.p_value < 1e-8, "{got:?}");
    let got = srm(&[0, 0, 0], &[1.0, 2.0, 1.0]).unwrap();
    assert_eq!(
        (got.p_value, got.flagged, got.chi_square),
        (1.0, false, 0.0)
    );
}

#[test]
fn srm_refuses_mismatched_lengths_one_group_and_bad_weights() {
    assert!(matches!(
        srm(&[1, 2], &[1.0]).unwrap_err(),
        ExperimentError::Lengths { .. }
    ));
    assert_eq!(srm(&[5], &[1.0]).unwrap_err(), ExperimentError::Groups(1));
    for weight in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        assert!(matches!(
            srm(&[5, 5], &[1.0, weight]).unwrap_err(),
            ExperimentError::Weight { index: 1, .. }
        ));
    }
}

#[test]
fn an_even_split_is_an_even_split_at_any_scale() {
    // Summed as they were, two weights of 1e308 made an infinite total:
    // every expected count 0, χ² NaN (`null` in JSON), p-value 0, flagged.
    let even = srm(&[5_100, 4_900], &[1.0, 1.0]).unwrap();
    for weights in [
        [1e308, 1e308],
        [f64::MAX, f64::MAX],
        [5e-324, 5e-324],
        [1e-300, 1e-300],
    ] {
        let got = srm(&[5_100, 4_900], &weights).unwrap();
        assert_eq!(got, even, "{weights:?}");
    }
    // And an uneven one: 1:2 however it is written.
    let want = srm(&[3_000, 7_000], &[1.0, 2.0]).unwrap();
    for weights in [[5e-324, 1e-323], [0.5e308, 1e308]] {
        let got = srm(&[3_000, 7_000], &weights).unwrap();
        assert!(
            (got.chi_square - want.chi_square).abs() < 1e-9,
            "{weights:?}: {got:?}"
        );
        assert!(
            (got.p_value - want.p_value).abs() < 1e-12,
            "{weights:?}: {got:?}"
        );
    }
}

#[test]
fn a_planned_weight_a_trillion_times_below_the_largest_is_refused() {
    assert!(matches!(
        srm(&[5, 5], &[1e308, 1.0]).unwrap_err(),
        ExperimentError::WeightRatio { index: 1, .. }
    ));
    let message = srm(&[5, 5], &[1.0, 1e-13]).unwrap_err().to_string();
    assert!(
        message.contains("planned weight 1 is 1e-13, less than 1e-12 of the largest (1)"),
        "{message}"
    );
    // At the bound the statistic is finite even for the largest counts.
    let big = u64::MAX / 20;
    let got = srm(&[big, 0, big], &[1.0, 1.0, 1e-12]).unwrap();
    assert!(got.chi_square.is_finite() && got.flagged, "{got:?}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn srm_is_finite_for_every_split_it_accepts(
        observed in prop::collection::vec(prop_oneof![0u64..1_000, 0u64..=u64::MAX / 20], 2..=20),
        exponents in prop::collection::vec(-12.0f64..=0.0, 20),
        scale in -300.0f64..300.0,
    ) {
        let weights: Vec<f64> = observed
            .iter()
            .zip(&exponents)
            .map(|(_, e)| 10f64.powf(e + scale))
            .collect();
        if let Ok(got) = srm(&observed, &weights) {
            prop_assert!(got.chi_square.is_finite() && got.chi_square >= 0.0, "{got:?}");
            prop_assert!((0.0..=1.0).contains(&got.p_value), "{got:?}");
        }
    }
}

fn options(min_trials: u64, floor: f64, top_two: bool) -> BanditOptions {
    BanditOptions {
        min_trials,
        floor,
        top_two,
    }
}

fn assert_sums_to_one(weights: &[f64]) {
    let total: f64 = weights.iter().sum();
    assert!((total - 1.0).abs() < 1e-12, "{weights:?} sum to {total}");
}

#[test]
fn a_bandit_in_burn_in_splits_traffic_equally() {
    let got = bandit_weights(&[0.7, 0.2, 0.1], &[500, 99, 300], &options(100, 0.0, false)).unwrap();
    assert!(got.burn_in);
    assert_eq!(got.weights, vec![1.0 / 3.0; 3]);
    let got = bandit_weights(
        &[0.7, 0.2, 0.1],
        &[500, 100, 300],
        &options(100, 0.0, false),
    )
    .unwrap();
    assert!(!got.burn_in);
}

#[test]
fn thompson_sampling_weights_are_the_probabilities_of_being_best() {
    let prob_best = [0.55, 0.3, 0.15];
    let got = bandit_weights(&prob_best, &[1_000; 3], &options(100, 0.0, false)).unwrap();
    for (w, p) in got.weights.iter().zip(prob_best) {
        assert!((w - p).abs() < 1e-15, "{got:?}");
    }
}

#[test]
fn the_floor_holds_after_the_others_are_renormalised() {
    // Two arms below a floor of 0.05: both get it, the leader keeps the rest.
    let got = bandit_weights(&[0.98, 0.015, 0.005], &[1_000; 3], &options(0, 0.05, false)).unwrap();
    let want = [0.9, 0.05, 0.05];
    for (w, x) in got.weights.iter().zip(want) {
        assert!((w - x).abs() < 1e-12, "{got:?}");
    }
    // Raising one arm can push another below: 0.06 scaled by 0.95/0.96 stays
    // above 0.05 here, and the proportions of the free arms are kept.
    let got = bandit_weights(&[0.9, 0.06, 0.04], &[1_000; 3], &options(0, 0.05, false)).unwrap();
    assert!((got.weights[2] - 0.05).abs() < 1e-15, "{got:?}");
    assert!(
        (got.weights[0] / got.weights[1] - 15.0).abs() < 1e-12,
        "{got:?}"
    );
    assert_sums_to_one(&got.weights);
    // A cascade: 0.052 falls below 0.05 once 0.001 is raised.
    let got = bandit_weights(
        &[0.897, 0.052, 0.05, 0.001],
        &[1_000; 4],
        &options(0, 0.05, false),
    )
    .unwrap();
    assert_sums_to_one(&got.weights);
    for w in &got.weights {
        assert!(*w >= 0.05 - 1e-15, "{got:?}");
    }
    assert!((got.weights[0] - 0.85).abs() < 1e-12, "{got:?}");
}

#[test]
fn top_two_sampling_follows_its_definition_and_sums_to_one() {
    // Two arms: the leader is played half the time, the other arm the rest.
    for p in [0.5, 0.8, 0.999] {
        let got = bandit_weights(&[p, 1.0 - p], &[1_000; 2], &options(0, 0.0, true)).unwrap();
        for w in &got.weights {
            assert!((w - 0.5).abs() < 1e-12, "{p}: {got:?}");
        }
    }
    // Three arms against β P_i + (1 − β) Σ_{j≠i} P_j P_i / (1 − P_j).
    let p = [0.5, 0.3, 0.2];
    let got = bandit_weights(&p, &[1_000; 3], &options(0, 0.0, true)).unwrap();
    for i in 0..3 {
        let challenger: f64 = (0..3)
            .filter(|j| *j != i)
            .map(|j| p[j] * p[i] / (1.0 - p[j]))
            .sum();
        let want = 0.5 * p[i] + 0.5 * challenger;
        assert!((got.weights[i] - want).abs() < 1e-12, "{i}: {got:?}");
    }
    assert_sums_to_one(&got.weights);
    assert!(got.weights[0] < p[0], "the leader gives some traffic away");
}

#[test]
fn a_certain_leader_keeps_its_traffic_under_top_two_sampling() {
    // With P_j = 1 no redraw ever finds another leader.
    let got = bandit_weights(&[0.0, 1.0, 0.0], &[1_000; 3], &options(0, 0.0, true)).unwrap();
    assert_eq!(got.weights, vec![0.0, 1.0, 0.0]);
    let got = bandit_weights(&[0.0, 1.0, 0.0], &[1_000; 3], &options(0, 0.01, true)).unwrap();
    let want = [0.01, 0.98, 0.01];
    for (w, x) in got.weights.iter().zip(want) {
        assert!((w - x).abs() < 1e-12, "{got:?}");
    }
    // A leader that rounds to 1 next to a tiny challenger still sums to 1.
    let got = bandit_weights(&[1.0, 1e-17, 0.0], &[1_000; 3], &options(0, 0.0, true)).unwrap();
    assert_sums_to_one(&got.weights);
    assert!((got.weights[1] - 0.5).abs() < 1e-12, "{got:?}");
}

#[test]
fn bandit_weights_refuse_bad_probabilities_lengths_and_floors() {
    let ok = options(0, 0.0, false);
    assert!(matches!(
        bandit_weights(&[0.5, 0.5], &[1], &ok).unwrap_err(),
        ExperimentError::Lengths { .. }
    ));
    assert!(matches!(
        bandit_weights(&[1.2, -0.2], &[1, 1], &ok).unwrap_err(),
        ExperimentError::ProbBest { index: 0, .. }
    ));
    assert!(matches!(
        bandit_weights(&[0.5, 0.4], &[1, 1], &ok).unwrap_err(),
        ExperimentError::ProbBestSum(_)
    ));
    assert!(matches!(
        bandit_weights(&[0.5, 0.5], &[1, 1], &options(0, 0.6, false)).unwrap_err(),
        ExperimentError::Floor { .. }
    ));
}
