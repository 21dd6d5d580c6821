//! An A/B/C test streamed through Kafka: conversions go in through the
//! producer, one small request at a time, and the model service's experiment
//! answer matches an independent high-precision computation (statrs's Beta
//! functions, integrated here by brute force and, for two arms, Evan
//! Miller's closed form) to 1e-9.

use serde_json::{json, Value};
use statrs::distribution::{Beta, Continuous, ContinuousCDF};
use statrs::function::gamma::ln_gamma;
use system_tests::Stack;

/// (arm, conversions, visitors): what each arm saw.
const ARMS: [(&str, u64, u64); 3] = [
    ("landing-a", 96, 1000),
    ("landing-b", 131, 1000),
    ("landing-c", 104, 1000),
];

/// P(p_b > p_a) for Beta(a1, b1) and Beta(a2, b2) with integer a2: Evan
/// Miller's sum, in log space.
fn miller(a1: f64, b1: f64, a2: f64, b2: f64) -> f64 {
    let ln_beta = |x: f64, y: f64| ln_gamma(x) + ln_gamma(y) - ln_gamma(x + y);
    (0..a2 as u64)
        .map(|i| {
            let i = i as f64;
            (ln_beta(a1 + i, b1 + b2) - (b2 + i).ln() - ln_beta(1.0 + i, b2) - ln_beta(a1, b1))
                .exp()
        })
        .sum()
}

/// P(best) of each Beta arm: ∫ f_i Π_{j≠i} F_j by composite Simpson on
/// 600 000 intervals over [0.02, 0.3], where all but 1e-14 of the mass is.
fn brute_force_prob_best(arms: &[Beta]) -> Vec<f64> {
    let (lo, hi) = (0.02, 0.3);
    let n = 600_000;
    let h = (hi - lo) / n as f64;
    let mut sums = vec![0.0; arms.len()];
    for k in 0..=n {
        let p = lo + h * k as f64;
        let weight = if k == 0 || k == n {
            1.0
        } else if k % 2 == 1 {
            4.0
        } else {
            2.0
        };
        let cdfs: Vec<f64> = arms.iter().map(|a| a.cdf(p)).collect();
        for (i, arm) in arms.iter().enumerate() {
            let others: f64 = cdfs
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, c)| c)
                .product();
            sums[i] += weight * arm.pdf(p) * others;
        }
    }
    sums.iter().map(|s| s * h / 3.0).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_ab_test_streamed_through_kafka_matches_an_independent_computation() {
    let _machine = system_tests::share_the_machine().await;
    let stack = Stack::start().await;
    let response = stack
        .http
        .put(format!("{}/experiments/landing", stack.model))
        .json(
            &json!({"arms": ["landing-a", "landing-b", "landing-c"], "planned_weights": [1, 1, 1]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{:?}", response.text().await);
    // Visitors arrive in batches of 100, each batch its own request.
    for (arm, conversions, visitors) in ARMS {
        for batch in 0..visitors / 100 {
            let successes = conversions / 10 + u64::from(batch < conversions % 10);
            let response = stack
                .http
                .post(format!("{}/observations", stack.producer))
                .json(&json!({"model": arm, "successes": successes, "trials": 100}))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 202, "{:?}", response.text().await);
        }
    }
    for (arm, _, visitors) in ARMS {
        stack.model_with_trials(arm, visitors).await;
    }
    let served: Value = stack.get_json("/experiments/landing").await.unwrap();
    let results = served["results"].as_array().unwrap();
    for (got, (arm, conversions, visitors)) in results.iter().zip(ARMS) {
        assert_eq!(got["model"], arm);
        assert_eq!(got["successes"], conversions);
        assert_eq!(got["trials"], visitors);
    }

    // Uniform priors: each arm is exactly Beta(1 + s, 1 + f).
    let betas: Vec<Beta> = ARMS
        .iter()
        .map(|(_, s, n)| Beta::new(1.0 + *s as f64, 1.0 + (n - s) as f64).unwrap())
        .collect();
    let reference = brute_force_prob_best(&betas);
    for (i, want) in reference.iter().enumerate() {
        let got = results[i]["prob_best"].as_f64().unwrap();
        assert!(
            (got - want).abs() < 1e-9,
            "arm {i}: P(best) {got} vs {want}"
        );
    }
    // P(b > control a) against the closed form.
    let (a, b) = (&ARMS[0], &ARMS[1]);
    let want = miller(
        1.0 + a.1 as f64,
        1.0 + (a.2 - a.1) as f64,
        1.0 + b.1 as f64,
        1.0 + (b.2 - b.1) as f64,
    );
    let got = results[1]["prob_beats_control"].as_f64().unwrap();
    assert!((got - want).abs() < 1e-9, "P(b > a) {got} vs {want}");
    // The experiment's version counts the commits that touched an arm (the
    // consumer folds records into batches, so fewer than the requests).
    let mut commits = 0;
    for (arm, _, _) in ARMS {
        commits += stack.get_json(&format!("/models/{arm}")).await.unwrap()["version"]
            .as_u64()
            .unwrap();
    }
    assert_eq!(served["version"], commits);
    assert!(served["decision"]["reason"].as_str().unwrap().len() > 10);
    assert_eq!(served["srm"]["flagged"], false);
    stack.stop().await;
}
