//! Timing of one experiment's figures (P(best), expected loss, P(> control),
//! uplift) for poisson and normal arms at 2, 3 and 10 arms, from 10^3 to
//! 10^9 events per arm, the arms' posteriors built beforehand; and of
//! building one posterior with its summary. The target is under 1 ms for 10
//! arms.
//! Run with `scripts/bench-engine.sh` or
//! `cargo run --release -p domain --example bench-families`. Timings are
//! wall clock; the load average is printed with them.

use std::hint::black_box;
use std::time::{Duration, Instant};

use domain::bayes::family::normal::{NormalPrior, NormalStats, StudentT};
use domain::bayes::family::poisson::{Exposure, GammaPosterior, GammaPrior, PoissonStats};
use domain::bayes::family::{family_experiment, FamilyArms};

/// Timed calls per configuration: at least `MIN_CALLS`, more until `BUDGET`.
const MIN_CALLS: usize = 50;
const MAX_CALLS: usize = 5_000;
const BUDGET: Duration = Duration::from_millis(500);

/// Median and p99 of `f`'s wall time.
fn time(mut f: impl FnMut()) -> (Duration, Duration) {
    let start = Instant::now();
    let mut times = Vec::new();
    while times.len() < MIN_CALLS || (start.elapsed() < BUDGET && times.len() < MAX_CALLS) {
        let t = Instant::now();
        f();
        times.push(t.elapsed());
    }
    times.sort();
    (times[times.len() / 2], times[times.len() * 99 / 100])
}

/// Poisson arm `i` with `n` events: rates 2 % apart over an exposure of n/5.
fn poisson_arm(i: usize, n: u64) -> GammaPosterior {
    let count = (n as f64 * (1.0 + 0.002 * i as f64)).round() as u64;
    let exposure = Exposure::parse(n as f64 / 5.0).unwrap_or(Exposure::ONE);
    GammaPrior::DEFAULT.posterior(PoissonStats::record(count, exposure))
}

/// Normal arm `i` with `n` values: means 0.2 % of an sd apart, sd 3,
/// around 40 (pre-aggregated, as a warehouse sends them).
fn normal_arm(i: usize, n: u64) -> Option<StudentT> {
    let nf = n as f64;
    let mean = 40.0 + 0.006 * i as f64;
    let stats = NormalStats::aggregate(n, nf * mean, nf * (9.0 + mean * mean)).ok()?;
    Some(NormalPrior::Reference.posterior(&stats).ok()?.mu().clone())
}

fn main() {
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        println!("load average at start: {}", load.trim());
    }
    println!(
        "{:<8} {:>5} {:>12} {:>12} {:>12} {:>10}",
        "family", "arms", "events/arm", "median", "p99", "P(best)_0"
    );
    for n in [1_000u64, 1_000_000, 1_000_000_000] {
        for k in [2usize, 3, 10] {
            let arms: Vec<GammaPosterior> = (0..k).map(|i| poisson_arm(i, n)).collect();
            let (median, p99) = time(|| {
                black_box(family_experiment(FamilyArms::Poisson(black_box(&arms)), 0).ok());
            });
            let best = family_experiment(FamilyArms::Poisson(&arms), 0)
                .map(|f| f.arms[0].prob_best)
                .unwrap_or(f64::NAN);
            println!(
                "{:<8} {:>5} {:>12} {:>12?} {:>12?} {:>10.3e}",
                "poisson", k, n, median, p99, best
            );
            let arms: Vec<StudentT> = (0..k).filter_map(|i| normal_arm(i, n)).collect();
            let (median, p99) = time(|| {
                black_box(family_experiment(FamilyArms::Normal(black_box(&arms)), 0).ok());
            });
            let best = family_experiment(FamilyArms::Normal(&arms), 0)
                .map(|f| f.arms[0].prob_best)
                .unwrap_or(f64::NAN);
            println!(
                "{:<8} {:>5} {:>12} {:>12?} {:>12?} {:>10.3e}",
                "normal", k, n, median, p99, best
            );
        }
    }
    // One posterior built and summarised (what a model's page costs).
    for n in [1_000u64, 1_000_000_000] {
        let (median, _) = time(|| {
            black_box(poisson_arm(0, black_box(n)).summary(0.89).ok());
        });
        println!("poisson posterior + summary at {n} events: {median:?}");
        let (median, _) = time(|| {
            black_box(normal_arm(0, black_box(n)).map(|t| t.summary(0.89).ok()));
        });
        println!("normal posterior + summary at {n} values: {median:?}");
    }
}
