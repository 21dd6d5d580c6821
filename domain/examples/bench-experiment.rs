//! Benchmark of one experiment's figures (P(best), expected loss, P(arm >
//! control) and the relative uplift with its HPDI and P(in ROPE)) for 2, 10
//! and 20 arms at 10^4, 10^6 and 10^9 trials per arm, rates close together,
//! the arms' posteriors built beforehand; side by side, the same figures by
//! Monte Carlo with 10^6 draws per arm (what sampling engines do), its time
//! and its largest error against the exact figures.
//! Run with `scripts/bench-engine.sh` or
//! `cargo run --release -p domain --example bench-experiment`. Timings are
//! wall clock: on a shared machine the p99 mostly measures the scheduler,
//! so the load average is printed with them.

use std::hint::black_box;
use std::time::{Duration, Instant};

use domain::bayes::{experiment, Counts, ExperimentFigures, ExperimentOptions, Posterior};
use domain::Prior;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Monte Carlo draws per arm.
const DRAWS: usize = 1_000_000;
/// Timed calls per configuration: at least `MIN_CALLS`, and more until
/// `BUDGET` has passed (at most `MAX_CALLS`).
const MIN_CALLS: usize = 50;
const MAX_CALLS: usize = 5_000;
const BUDGET: Duration = Duration::from_secs(2);

/// Arm `i` at `n` trials: a rate of 5 % raised by 0.1 % of itself per arm,
/// the close rates of a real test.
fn counts(i: u64, n: u64) -> Counts {
    let rate = 0.05 * (1.0 + 0.001 * i as f64);
    let successes = (rate * n as f64).round() as u64;
    Counts::new(successes, n - successes)
}

/// The target time of one call with `k` arms.
fn target(k: usize) -> Duration {
    if k <= 10 {
        Duration::from_millis(1)
    } else {
        Duration::from_millis(3)
    }
}

fn main() {
    let prior = Prior::Uniform;
    let options = ExperimentOptions::default();
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        println!("load average at start: {}", load.trim());
    }
    println!(
        "{:>4} {:>11} {:>10} {:>10} {:>8} {:>6} | {:>10} {:>12}",
        "arms", "trials/arm", "median", "p99", "target", "calls", "MC 10^6", "MC max error"
    );
    for k in [2usize, 10, 20] {
        for n in [10_000u64, 1_000_000, 1_000_000_000] {
            let arms: Vec<Posterior<'_>> = (0..k as u64)
                .map(|i| Posterior::new(&prior, counts(i, n)).unwrap_or_else(|e| panic!("{e}")))
                .collect();
            let mut times = Vec::new();
            let start = Instant::now();
            while times.len() < MIN_CALLS || (start.elapsed() < BUDGET && times.len() < MAX_CALLS) {
                let t = Instant::now();
                black_box(
                    experiment(black_box(&arms), 0, &options).unwrap_or_else(|e| panic!("{e}")),
                );
                times.push(t.elapsed());
            }
            times.sort();
            let median = times[times.len() / 2];
            let p99 = times[(times.len() * 99).div_ceil(100) - 1];
            let exact = experiment(&arms, 0, &options).unwrap_or_else(|e| panic!("{e}"));
            let counts: Vec<Counts> = (0..k as u64).map(|i| counts(i, n)).collect();
            let t = Instant::now();
            let sampled = monte_carlo(&counts, options.rope, 7);
            let mc_time = t.elapsed();
            let error = largest_error(&exact, &sampled);
            println!(
                "{k:>4} {n:>11} {:>10} {:>10} {:>8} {:>6} | {:>10} {:>12.2e}",
                fmt(median),
                fmt(p99),
                fmt(target(k)),
                times.len(),
                fmt(mc_time),
                error
            );
        }
    }
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        println!("load average at end: {}", load.trim());
    }
}

/// The figures a sampling engine reports, one entry per arm: P(best),
/// expected loss, P(> control), P(uplift in ROPE), E[uplift]; and E[max].
struct Sampled {
    prob_best: Vec<f64>,
    loss: Vec<f64>,
    beats: Vec<f64>,
    in_rope: Vec<f64>,
    uplift_mean: Vec<f64>,
    expected_max: f64,
}

/// `DRAWS` draws from each arm's Beta(1 + s, 1 + f) posterior (arm 0 the
/// control), counted and averaged.
fn monte_carlo(counts: &[Counts], rope: f64, seed: u64) -> Sampled {
    let k = counts.len();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let draws: Vec<Vec<f64>> = counts
        .iter()
        .map(|c| {
            let (a, b) = (1.0 + c.successes as f64, 1.0 + c.failures as f64);
            (0..DRAWS).map(|_| beta(&mut rng, a, b)).collect()
        })
        .collect();
    let mut s = Sampled {
        prob_best: vec![0.0; k],
        loss: vec![0.0; k],
        beats: vec![0.0; k],
        in_rope: vec![0.0; k],
        uplift_mean: vec![0.0; k],
        expected_max: 0.0,
    };
    for d in 0..DRAWS {
        let (mut best, mut max) = (0, f64::NEG_INFINITY);
        for (i, arm) in draws.iter().enumerate() {
            if arm[d] > max {
                (best, max) = (i, arm[d]);
            }
        }
        s.prob_best[best] += 1.0;
        s.expected_max += max;
        let control = draws[0][d];
        for (i, arm) in draws.iter().enumerate() {
            let p = arm[d];
            s.loss[i] += max - p;
            s.beats[i] += f64::from(u8::from(p > control));
            let ratio = p / control;
            s.in_rope[i] += f64::from(u8::from((ratio - 1.0).abs() <= rope));
            s.uplift_mean[i] += ratio - 1.0;
        }
    }
    let n = DRAWS as f64;
    for v in [
        &mut s.prob_best,
        &mut s.loss,
        &mut s.beats,
        &mut s.in_rope,
        &mut s.uplift_mean,
    ] {
        for x in v.iter_mut() {
            *x /= n;
        }
    }
    s.expected_max /= n;
    s
}

/// The largest absolute difference between the exact and sampled figures.
fn largest_error(exact: &ExperimentFigures, sampled: &Sampled) -> f64 {
    let mut worst = (exact.expected_max - sampled.expected_max).abs();
    for (i, arm) in exact.arms.iter().enumerate() {
        let mut see = |a: f64, b: f64| worst = worst.max((a - b).abs());
        see(arm.prob_best, sampled.prob_best[i]);
        see(arm.expected_loss, sampled.loss[i]);
        if let Some(beats) = arm.prob_beats_control {
            see(beats, sampled.beats[i]);
        }
        if let Some(uplift) = arm.uplift {
            see(uplift.prob_in_rope, sampled.in_rope[i]);
            if let Some(mean) = uplift.mean {
                see(mean, sampled.uplift_mean[i]);
            }
        }
    }
    worst
}

/// A Beta(a, b) draw as X / (X + Y) of two Gamma draws.
fn beta(rng: &mut ChaCha8Rng, a: f64, b: f64) -> f64 {
    let x = gamma(rng, a);
    let y = gamma(rng, b);
    x / (x + y)
}

/// A Gamma(a, 1) draw by Marsaglia and Tsang's method (a >= 1; below, the
/// usual boost by U^(1/a)).
fn gamma(rng: &mut ChaCha8Rng, a: f64) -> f64 {
    if a < 1.0 {
        let u: f64 = rng.random();
        return gamma(rng, a + 1.0) * u.powf(1.0 / a);
    }
    let d = a - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        let x = normal(rng);
        let v = 1.0 + c * x;
        if v <= 0.0 {
            continue;
        }
        let v = v * v * v;
        let u: f64 = rng.random();
        if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
            return d * v;
        }
    }
}

/// A standard normal draw by the Box–Muller transform.
fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u: f64 = 1.0 - rng.random::<f64>();
    let v: f64 = rng.random();
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

fn fmt(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1e3;
    if ms >= 100.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{ms:.3} ms")
    }
}
