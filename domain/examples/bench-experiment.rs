//! Benchmark of one experiment's figures: P(best), expected loss and
//! P(arm > control) for 2, 5 and 20 arms, from small counts to 10^9
//! observations per arm, the arms' posteriors built beforehand.
//! Run with `cargo run --release -p domain --example bench-experiment`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use domain::bayes::{experiment, Counts, ExperimentOptions, Posterior};
use domain::Prior;

/// Arm `i` of `k`: rates a little apart around 0.5 at `n` observations each.
fn counts(i: u64, n: u64) -> Counts {
    let successes = n / 2 + i * (n / 200_000).max(1);
    Counts::new(successes.min(n), n - successes.min(n))
}

fn main() {
    let prior = Prior::Uniform;
    println!(
        "{:>5} {:>14} {:>12} {:>12}",
        "arms", "n/arm", "mean/call", "p99/call"
    );
    for k in [2u64, 5, 20] {
        for n in [100u64, 1_000_000, 1_000_000_000] {
            let arms: Vec<Posterior<'_>> = (0..k)
                .map(|i| Posterior::new(&prior, counts(i, n)).unwrap_or_else(|e| panic!("{e}")))
                .collect();
            let iterations = 200;
            let mut times = Vec::with_capacity(iterations);
            let start = Instant::now();
            for _ in 0..iterations {
                let t = Instant::now();
                black_box(
                    experiment(black_box(&arms), 0, &ExperimentOptions::default())
                        .unwrap_or_else(|e| panic!("{e}")),
                );
                times.push(t.elapsed());
            }
            let mean = start.elapsed() / iterations as u32;
            times.sort();
            let p99 = times[iterations * 99 / 100];
            println!("{k:>5} {n:>14} {:>12} {:>12}", fmt(mean), fmt(p99));
        }
    }
}

fn fmt(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}
