//! A grid prior's weights as a function of p: interpolated linearly between
//! knots, relative to the largest weight, with the holes (runs of zero
//! weight) the posterior's window must step around. Both the posterior's
//! quadrature and the display grid read a grid prior through it.

/// A grid prior's weights, read relative to the largest so that the prior
/// is the same at any scale: each weight is divided by the largest before
/// it is interpolated, which keeps subnormal weights exact (5e-324 / 5e-324
/// is 1, where 5e-324 · 0.75 rounds back to 5e-324) and huge ones finite.
#[derive(Debug, Clone, Copy)]
pub(super) struct GridWeights<'a> {
    weights: &'a [f64],
    max: f64,
}

impl<'a> GridWeights<'a> {
    pub(super) fn new(weights: &'a [f64]) -> Self {
        let max = weights.iter().copied().fold(0.0, f64::max);
        Self { weights, max }
    }

    /// The intervals between the knots: one fewer than the weights.
    pub(super) fn intervals(&self) -> usize {
        self.weights.len() - 1
    }

    /// The weight at `p` relative to the largest, interpolated linearly
    /// between knots; `q` is 1 - p. Above 1/2 the position is measured from
    /// p = 1 with `q`, which keeps its digits where p has rounded to 1: a
    /// prior that falls to 0 at p = 1 is then still positive just below it.
    pub(super) fn at(&self, p: f64, q: f64) -> f64 {
        let weights = self.weights;
        let k = weights.len() - 1;
        // (knot on the near side, knot on the far side, fraction of the way).
        let (near, far, frac) = if p <= 0.5 {
            let x = (p * k as f64).clamp(0.0, k as f64);
            let i = (x.floor() as usize).min(k - 1);
            (i, i + 1, x - i as f64)
        } else {
            let y = (q * k as f64).clamp(0.0, k as f64);
            let j = (y.floor() as usize).min(k - 1);
            (k - j, k - j - 1, y - j as f64)
        };
        (weights[near] / self.max) * (1.0 - frac) + (weights[far] / self.max) * frac
    }

    /// The hole around `p` (`q` = 1 - p), if the prior is zero there
    /// because a run of at least two weights is, with non-zero weights on
    /// both sides (the zeros before the first and after the last are the
    /// ends of the support instead): its ends (k_a/K, k_b/K).
    pub(super) fn hole_at(&self, p: f64, q: f64) -> Option<(f64, f64)> {
        let weights = self.weights;
        let k = weights.len() - 1;
        let i = if p <= 0.5 {
            ((p * k as f64).clamp(0.0, k as f64).floor() as usize).min(k - 1)
        } else {
            let j = ((q * k as f64).clamp(0.0, k as f64).floor() as usize).min(k - 1);
            k - j - 1
        };
        if weights[i] != 0.0 || weights[i + 1] != 0.0 {
            return None;
        }
        let first = weights[..=i].iter().rposition(|w| *w != 0.0)? + 1;
        let last = i + weights[i + 1..].iter().position(|w| *w != 0.0)?;
        Some((first as f64 / k as f64, last as f64 / k as f64))
    }
}
