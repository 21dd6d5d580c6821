//! Prints the engine's figures with every bit (posteriors and their
//! summaries, quantiles, CDFs, predictives, samples and display grids over a
//! dozen priors and ten counts from 0 to 10^9; comparisons; experiments of 2
//! to 5 arms; the benchmark's close rates), so that a change meant to keep
//! the figures can be checked to: run it before and after, and `cmp` the two.
//! Long series are printed as a hash of their bits. Run with
//! `cargo run --release -p domain --example figures-dump > figures.txt`.
use domain::bayes::{
    compare, experiment, Counts, DisplayGrid, ExperimentOptions, GridSize, Posterior,
};
use domain::Prior;

/// FNV-1a over the bits of `xs`: equal exactly when every bit is.
fn hash(xs: &[f64]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for x in xs {
        for b in x.to_bits().to_le_bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x100000001b3);
        }
    }
    h
}

fn main() {
    let priors = vec![
        Prior::Uniform,
        Prior::Beta { a: 0.5, b: 0.5 },
        Prior::Beta { a: 2.0, b: 5.0 },
        Prior::Beta { a: 1e-6, b: 1e6 },
        Prior::Step {
            lower: 0.5,
            upper: 1.0,
        },
        Prior::Step {
            lower: 0.2,
            upper: 0.3,
        },
        Prior::Step {
            lower: 0.0,
            upper: 1e-20,
        },
        Prior::Grid {
            weights: vec![1.0, 0.0, 0.0, 0.0, 1.0],
        },
        Prior::Grid {
            weights: vec![0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0],
        },
        Prior::Grid {
            weights: vec![1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 2.0, 3.0],
        },
        Prior::Grid {
            weights: (0..100).map(|i| 1.0 + (i % 7) as f64).collect(),
        },
        Prior::Grid {
            weights: (0..50)
                .map(|i| if (i / 5) % 2 == 0 { 1.0 } else { 0.0 })
                .collect(),
        },
    ];
    let counts = [
        Counts::new(0, 0),
        Counts::new(1, 0),
        Counts::new(0, 1),
        Counts::new(6, 3),
        Counts::new(3, 30),
        Counts::new(700, 300),
        Counts::new(12, 88_000),
        Counts::new(700_000_000, 300_000_000),
        Counts::new(0, 1_000_000_000),
        Counts::new(1_000_000_000, 0),
    ];
    let mut posteriors = Vec::new();
    for (pi, prior) in priors.iter().enumerate() {
        for c in counts {
            let post = match Posterior::new(prior, c) {
                Ok(p) => p,
                Err(e) => {
                    println!("prior {pi} {c:?}: {e}");
                    continue;
                }
            };
            for mass in [0.5, 0.89, 0.99] {
                println!("prior {pi} {c:?} mass {mass}: {:?}", post.summary(mass));
            }
            let qs: Vec<f64> = [0.0, 1e-9, 0.01, 0.3, 0.77, 0.999, 1.0]
                .iter()
                .map(|q| post.quantile(*q).unwrap_or_else(|e| panic!("{e}")))
                .collect();
            let cdfs: Vec<f64> = [0.0, 1e-12, 0.1, 0.25, 0.5, 0.7, 0.999_999, 1.0]
                .iter()
                .map(|x| post.cdf(*x).unwrap_or_else(|e| panic!("{e}")))
                .collect();
            println!(
                "  quantiles {qs:?} cdf {cdfs:?} logz {:?}",
                post.log_normaliser()
            );
            println!("  predictive {:?}", post.predictive(12).map(|p| hash(&p)));
            println!("  samples {:?}", hash(&post.samples(50, 7)));
            for g in [2u32, 101, 1000] {
                let grid =
                    DisplayGrid::new(&post, GridSize::parse(g).unwrap_or_else(|e| panic!("{e}")));
                println!(
                    "  display {g}: {} {} {:?}",
                    hash(&grid.prior),
                    hash(&grid.posterior),
                    grid.map()
                );
            }
            posteriors.push((pi, c, post));
        }
    }
    // Comparisons of pairs, a sample of them.
    for (i, (pa, ca, a)) in posteriors.iter().enumerate().step_by(7) {
        for (pb, cb, b) in posteriors.iter().skip(i % 5).step_by(11) {
            println!(
                "compare {pa} {ca:?} vs {pb} {cb:?}: {:?}",
                compare(a, b, 0.89)
            );
        }
    }
    // Experiments.
    let sets: Vec<Vec<usize>> = vec![
        vec![0, 1],
        vec![3, 13],
        vec![5, 15, 25],
        vec![7, 17],
        vec![3, 4, 23, 33],
        vec![13, 43, 73],
        vec![5, 45, 75, 95, 105],
        vec![2, 1],
        vec![25, 35, 45],
        vec![60, 63, 65],
    ];
    for set in &sets {
        let arms: Vec<Posterior<'_>> = set
            .iter()
            .filter_map(|i| posteriors.get(*i).map(|x| x.2.clone()))
            .collect();
        let names: Vec<(usize, Counts)> = set
            .iter()
            .filter_map(|i| posteriors.get(*i).map(|x| (x.0, x.1)))
            .collect();
        for (mass, rope) in [(0.89, 0.01), (0.5, 0.0), (0.95, 0.5)] {
            for control in [0, arms.len() - 1] {
                let options = ExperimentOptions { mass, rope };
                println!(
                    "experiment {names:?} control {control} {options:?}: {:?}",
                    experiment(&arms, control, &options)
                );
            }
        }
    }
    // Rates close together, as the benchmark has them.
    for k in [2u64, 10, 20] {
        for n in [10_000u64, 1_000_000, 1_000_000_000] {
            let prior = Prior::Uniform;
            let arms: Vec<Posterior<'_>> = (0..k)
                .map(|i| {
                    let rate = 0.05 * (1.0 + 0.001 * i as f64);
                    let s = (rate * n as f64).round() as u64;
                    Posterior::new(&prior, Counts::new(s, n - s)).unwrap_or_else(|e| panic!("{e}"))
                })
                .collect();
            println!(
                "bench {k} {n}: {:?}",
                experiment(&arms, 0, &ExperimentOptions::default())
            );
        }
    }
}
