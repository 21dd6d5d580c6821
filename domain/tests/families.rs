//! Properties of both families' statistics: the order and batching of
//! observations do not change them (bitwise), overflow is an error value,
//! and draws are reproducible from their seed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod family_support;

use domain::bayes::family::normal::{NigPrior, NormalPrior, NormalStats};
use domain::bayes::family::poisson::{Exposure, GammaPrior, PoissonStats};
use domain::bayes::family::FamilyError;
use family_support::*;
use proptest::prelude::*;

#[test]
fn overflow_is_an_error_value() {
    let big = PoissonStats::record(u64::MAX, Exposure::ONE);
    assert_eq!(big.checked_add(big), Err(FamilyError::Overflow));
    let huge = Exposure::from_nanos(u128::MAX);
    let e = PoissonStats::record(0, huge);
    assert_eq!(e.checked_add(e), Err(FamilyError::Overflow));
    let mut stats = NormalStats::record(1e12).unwrap();
    let mut overflowed = false;
    for _ in 0..80 {
        match stats.checked_add(stats) {
            Ok(s) => stats = s,
            Err(e) => {
                assert_eq!(e, FamilyError::Overflow);
                overflowed = true;
                break;
            }
        }
    }
    assert!(overflowed);
    // Opposite values: Σx stays 0 while Σx² doubles past 256 bits.
    let mut stats = NormalStats::record(1e12)
        .unwrap()
        .checked_add(NormalStats::record(-1e12).unwrap())
        .unwrap();
    let mut doublings = 0;
    let error = loop {
        match stats.checked_add(stats) {
            Ok(s) => {
                stats = s;
                doublings += 1;
            }
            Err(e) => break e,
        }
    };
    assert_eq!(error, FamilyError::Overflow);
    assert!(
        doublings < 60,
        "Σx² overflowed after {doublings} doublings, n before it"
    );
    assert_eq!(stats.sum(), 0.0);
    assert!(Exposure::parse(0.0).is_err());
    assert!(Exposure::parse(f64::INFINITY).is_err());
    assert!(GammaPrior::parse(0.0, 1.0).is_err());
    assert!(NigPrior::parse(0.0, 1.0, 0.25, 1.0).is_err());
}

#[test]
fn samples_are_the_same_for_the_same_seed_and_follow_the_posterior() {
    let post = gamma_posterior(0.5, 1e-6, 40, 8.0);
    let a = post.samples(20_000, 7);
    assert_eq!(a, post.samples(20_000, 7));
    assert_ne!(a, post.samples(20_000, 8));
    let below = a.iter().filter(|x| **x <= post.median()).count() as f64 / a.len() as f64;
    assert!((below - 0.5).abs() < 0.02, "{below}");
    let t = NormalPrior::default()
        .posterior(&NormalStats::aggregate(10, 25.0, 80.0).unwrap())
        .unwrap();
    let s = t.mu().samples(20_000, 1);
    let mean = s.iter().sum::<f64>() / s.len() as f64;
    assert!((mean - t.mu().loc()).abs() < 0.05 * t.mu().sd().unwrap() * 10.0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn poisson_statistics_do_not_depend_on_order_or_batching(
        records in prop::collection::vec((0u64..1_000_000_000_000, 1e-6f64..1e6), 1..40),
        seed in any::<u64>(),
        cut in 0usize..40,
    ) {
        let stats: Vec<PoissonStats> = records
            .iter()
            .map(|(k, t)| PoissonStats::record(*k, Exposure::parse(*t).unwrap()))
            .collect();
        let in_order = stats.iter().fold(PoissonStats::ZERO, |a, b| a.checked_add(*b).unwrap());
        let mut shuffled = stats.clone();
        let len = shuffled.len();
        for i in 0..len {
            shuffled.swap(i, (seed as usize).wrapping_add(i * 31) % len);
        }
        let cut = cut.min(len);
        let first = shuffled[..cut].iter().fold(PoissonStats::ZERO, |a, b| a.checked_add(*b).unwrap());
        let second = shuffled[cut..].iter().fold(PoissonStats::ZERO, |a, b| a.checked_add(*b).unwrap());
        prop_assert_eq!(second.checked_add(first).unwrap(), in_order);
    }

    #[test]
    fn normal_statistics_do_not_depend_on_order_or_batching(
        values in prop::collection::vec(-1e9f64..1e9, 1..40),
        seed in any::<u64>(),
        cut in 0usize..40,
    ) {
        let stats: Vec<NormalStats> = values.iter().map(|x| NormalStats::record(*x).unwrap()).collect();
        let in_order = stats.iter().fold(NormalStats::ZERO, |a, b| a.checked_add(*b).unwrap());
        let mut shuffled = stats.clone();
        let len = shuffled.len();
        for i in 0..len {
            shuffled.swap(i, (seed as usize).wrapping_add(i * 31) % len);
        }
        let cut = cut.min(len);
        let first = shuffled[..cut].iter().fold(NormalStats::ZERO, |a, b| a.checked_add(*b).unwrap());
        let second = shuffled[cut..].iter().fold(NormalStats::ZERO, |a, b| a.checked_add(*b).unwrap());
        let merged = second.checked_add(first).unwrap();
        prop_assert_eq!(merged, in_order);
        // The same posterior to the bit.
        let a = NormalPrior::default().posterior(&merged).unwrap();
        let b = NormalPrior::default().posterior(&in_order).unwrap();
        prop_assert_eq!(a.mu().loc().to_bits(), b.mu().loc().to_bits());
        prop_assert_eq!(a.mu().scale().to_bits(), b.mu().scale().to_bits());
    }
}
