//! Benchmark of one posterior query as the model service answers it: the
//! posterior, every summary at mass 0.89, and the display grid.
//! Run with `scripts/bench-engine.sh` (a release build).

use std::hint::black_box;
use std::time::{Duration, Instant};

use domain::bayes::{Counts, DisplayGrid, GridSize, Posterior};
use domain::Prior;

fn query(prior: &Prior, counts: Counts, grid: GridSize) -> f64 {
    let post = Posterior::new(prior, counts).unwrap_or_else(|e| panic!("{e}"));
    let summary = post.summary(0.89).unwrap_or_else(|e| panic!("{e}"));
    let display = DisplayGrid::new(&post, grid);
    summary.hpdi.lower + display.posterior[0]
}

fn main() {
    let priors = [
        ("uniform", Prior::Uniform),
        ("beta(2,2)", Prior::Beta { a: 2.0, b: 2.0 }),
        (
            "step[0.5,1]",
            Prior::Step {
                lower: 0.5,
                upper: 1.0,
            },
        ),
        (
            "grid(100 weights)",
            Prior::Grid {
                weights: (0..100).map(|i| 1.0 + (i % 7) as f64).collect(),
            },
        ),
    ];
    let counts = [
        Counts::new(6, 3),
        Counts::new(700, 300),
        Counts::new(700_000_000, 300_000_000),
    ];
    println!(
        "{:<18} {:>8} {:>14} {:>12} {:>12}",
        "prior", "G", "n", "mean/query", "p99/query"
    );
    for grid in [1_000u32, 100_000] {
        let size = GridSize::parse(grid).unwrap_or_default();
        for (name, prior) in &priors {
            for c in counts {
                let iterations = if grid >= 100_000 { 200 } else { 20_000 };
                let mut times = Vec::with_capacity(iterations);
                let start = Instant::now();
                for _ in 0..iterations {
                    let t = Instant::now();
                    black_box(query(prior, black_box(c), size));
                    times.push(t.elapsed());
                }
                let mean = start.elapsed() / iterations as u32;
                times.sort();
                let p99 = times[iterations * 99 / 100];
                let n = c.successes + c.failures;
                println!(
                    "{name:<18} {grid:>8} {n:>14} {:>12} {:>12}",
                    fmt(mean),
                    fmt(p99)
                );
            }
        }
    }
}

fn fmt(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}
