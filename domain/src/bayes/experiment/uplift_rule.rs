//! Each arm's own coarser Gauss–Legendre rule for the uplift's integrals,
//! its nodes with what the scaled points need precomputed, and a short
//! series for ln(1 + z) that saves a libm call per node.

use crate::bayes::gauss_legendre::{rule, NODES};
use crate::bayes::logit::{ln_sigmoid, sigmoid};
use crate::bayes::posterior::Kernel;

/// The uplift rule's fewest pieces per window and widest piece: 16 nodes
/// on 2 sd of a near-Gaussian density, or on 4 units of logit for a wide
/// one (the logistic's poles at ±iπ still leave ~1e-17), are exact to f64.
const UPLIFT_PIECES: usize = 6;
const UPLIFT_PIECE: f64 = 4.0;

/// An arm's uplift rule: `pieces` pieces of width `step` from `lo`,
/// `NODES` nodes each, in order.
pub(super) struct UpliftRule {
    pub(super) lo: f64,
    pub(super) step: f64,
    pub(super) pieces: usize,
    /// The normaliser the masses were divided by.
    pub(super) total: f64,
    pub(super) nodes: Vec<UpliftNode>,
}

/// A node of an arm's uplift rule: σ(t), σ(−t), e^t, ln σ(t), ln σ(−t) at
/// its logit t, and its weight times the arm's density there (they sum to 1).
#[derive(Clone, Copy)]
pub(super) struct UpliftNode {
    pub(super) sig: f64,
    pub(super) sig_neg: f64,
    /// e^t = σ(t)/σ(−t).
    pub(super) odds: f64,
    pub(super) ln_sig: f64,
    pub(super) ln_sig_neg: f64,
    pub(super) mass: f64,
}

impl UpliftNode {
    fn at(t: f64, mass: f64) -> Self {
        UpliftNode {
            sig: sigmoid(t),
            sig_neg: sigmoid(-t),
            odds: t.exp(),
            ln_sig: ln_sigmoid(t),
            ln_sig_neg: ln_sigmoid(-t),
            mass,
        }
    }
}

/// ln(1 + z), by its series Σ (−1)^(k+1) z^k / k where |z| < 1/32, where
/// 12 terms are exact in f64 (the usual case: the uplift's scaled points move
/// little), which saves a libm call per node.
pub(super) fn ln_1p_near_zero(z: f64) -> f64 {
    if z.abs() < 1.0 / 32.0 {
        // Horner from the 12th term down: the first omitted term is below
        // (1/32)^12 / 13 ≈ 8e-20 of z.
        const INVERSES: [f64; 12] = [
            1.0,
            1.0 / 2.0,
            1.0 / 3.0,
            1.0 / 4.0,
            1.0 / 5.0,
            1.0 / 6.0,
            1.0 / 7.0,
            1.0 / 8.0,
            1.0 / 9.0,
            1.0 / 10.0,
            1.0 / 11.0,
            1.0 / 12.0,
        ];
        // z (1 − z (1/2 − z (1/3 − …))).
        z * INVERSES
            .iter()
            .rev()
            .fold(0.0, |sum, inverse| inverse - z * sum)
    } else {
        z.ln_1p()
    }
}

/// An arm's own rule for the uplift: 16-point Gauss–Legendre on pieces of
/// at most `UPLIFT_PIECE` across its window [`lo`, `hi`], at least
/// `UPLIFT_PIECES` of them, with the density from its kernel. Coarser than
/// the shared nodes (an integrand of one arm's density against another's
/// CDF needs no more), so each uplift integral is cheap.
pub(super) fn build(kernel: &Kernel<'_>, log_peak: f64, lo: f64, hi: f64) -> UpliftRule {
    let rule = rule();
    let width = hi - lo;
    let pieces = ((width / UPLIFT_PIECE).ceil() as usize).max(UPLIFT_PIECES);
    let step = width / pieces as f64;
    let mut nodes = Vec::with_capacity(pieces * NODES);
    for piece in 0..pieces {
        let left = lo + step * piece as f64;
        for (x, w) in rule.nodes.iter().zip(&rule.weights) {
            let t = left + 0.5 * step * (x + 1.0);
            let log = kernel.eval(t).log_t - log_peak;
            nodes.push(UpliftNode::at(t, 0.5 * step * w * log.exp()));
        }
    }
    let total: f64 = nodes.iter().map(|n| n.mass).sum();
    for n in &mut nodes {
        n.mass /= total;
        // What cannot matter is skipped by every integral.
        if n.mass < 1e-18 {
            n.mass = 0.0;
        }
    }
    UpliftRule {
        lo,
        step,
        pieces,
        total,
        nodes,
    }
}

/// An arm's uplift-rule nodes on [left, right], inside one piece of its
/// rule, with masses on the scale of the rule's (`total`, its normaliser).
pub(super) fn nodes_on(
    kernel: &Kernel<'_>,
    log_peak: f64,
    total: f64,
    left: f64,
    right: f64,
) -> [UpliftNode; NODES] {
    let rule = rule();
    let half = 0.5 * (right - left);
    std::array::from_fn(|m| {
        let t = left + half * (rule.nodes[m] + 1.0);
        let log = kernel.eval(t).log_t - log_peak;
        UpliftNode::at(t, half * rule.weights[m] * log.exp() / total)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_short_series_of_ln_1p_agrees_with_libm() {
        for z in [
            0.0, 1e-12, -3e-7, 1e-4, -0.002, 0.01, -0.0312, 0.0312, 0.2, -0.5,
        ] {
            let (got, want) = (ln_1p_near_zero(z), f64::ln_1p(z));
            assert!(
                (got - want).abs() <= 2.0 * f64::EPSILON * want.abs(),
                "{z}: {got} vs {want}"
            );
        }
    }
}
