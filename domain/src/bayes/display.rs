//! The display grid: McElreath's grid approximation on G evenly spaced points.

use std::sync::OnceLock;

use serde::Serialize;

use super::grid_weights::GridWeights;
use super::posterior::Posterior;
use super::{GridSize, MAX_GRID_SIZE};
use crate::prior::Prior;

/// Prior and posterior probabilities at `p_i = i/(G-1)`, each summing to 1.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DisplayGrid {
    pub p: Vec<f64>,
    pub prior: Vec<f64>,
    pub posterior: Vec<f64>,
}

impl DisplayGrid {
    /// Evaluates prior × likelihood at every point, in log space, normalised
    /// with log-sum-exp (so 10^9 observations do not underflow). `0 · ln 0` is
    /// 0, so p = 0 with no successes keeps its prior. Where the density is
    /// infinite at an end (a Beta prior with a < 1 and no successes), the end
    /// point carries the average density of its half cell. Should every
    /// point carry zero (a support or mass that falls between points), each
    /// point gets the posterior mass of its cell instead.
    pub fn new(posterior: &Posterior<'_>, size: GridSize) -> Self {
        let g = size.get() as usize;
        let last = g - 1;
        let logs = ln_table();
        let ln_last = logs[last];
        let half_cell = 0.5 / last as f64;
        let prior = posterior.prior();
        let counts = posterior.counts();
        let (s, f) = (counts.successes as f64, counts.failures as f64);
        let (a1, b1) = match prior {
            Prior::Beta { a, b } => (a - 1.0, b - 1.0),
            _ => (0.0, 0.0),
        };

        let grid_weights = match prior {
            Prior::Grid { weights } => Some(GridWeights::new(weights)),
            _ => None,
        };
        let p: Vec<f64> = (0..g).map(|i| i as f64 / last as f64).collect();
        let mut log_prior = Vec::with_capacity(g);
        let mut log_post = Vec::with_capacity(g);
        for (i, &pi) in p.iter().enumerate() {
            // ln p and ln(1-p) from a table of ln i: no logarithm per point.
            let ln_p = logs[i] - ln_last;
            let ln_q = logs[last - i] - ln_last;
            let base = match prior {
                Prior::Uniform | Prior::Beta { .. } => 0.0,
                Prior::Step { lower, upper } => {
                    if (*lower..=*upper).contains(&pi) {
                        0.0
                    } else {
                        f64::NEG_INFINITY
                    }
                }
                Prior::Grid { .. } => {
                    let qi = (last - i) as f64 / last as f64;
                    grid_weights.map_or(0.0, |w| w.at(pi, qi).ln())
                }
            };
            log_prior
                .push(base + power_term(a1, ln_p, half_cell) + power_term(b1, ln_q, half_cell));
            log_post.push(
                base + power_term(a1 + s, ln_p, half_cell) + power_term(b1 + f, ln_q, half_cell),
            );
        }

        let prior_probs = normalise(&log_prior).unwrap_or_else(|| {
            let prior_only = Posterior::new(prior, super::Counts::ZERO);
            prior_only.map_or_else(|_| vec![0.0; g], |post| cell_masses(&post, &p))
        });
        let posterior_probs = normalise(&log_post).unwrap_or_else(|| cell_masses(posterior, &p));
        DisplayGrid {
            p,
            prior: prior_probs,
            posterior: posterior_probs,
        }
    }

    /// The point with the highest posterior probability (McElreath's MAP on the grid).
    pub fn map(&self) -> f64 {
        self.posterior
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map_or(0.0, |(i, _)| self.p[i])
    }
}

/// `c · ln x` with the conventions of a density at the grid's ends: at
/// x = 0 (`ln_x` = -inf) it is 0 for c = 0, -inf for c > 0, and for c < 0
/// (an integrable singularity) the log of the average of x^c over [0, half_cell].
fn power_term(c: f64, ln_x: f64, half_cell: f64) -> f64 {
    if ln_x.is_finite() {
        c * ln_x
    } else if c == 0.0 {
        0.0
    } else if c > 0.0 {
        f64::NEG_INFINITY
    } else {
        c * half_cell.ln() - (1.0 + c).ln()
    }
}

/// exp and normalise; `None` when every entry is -inf.
fn normalise(logs: &[f64]) -> Option<Vec<f64>> {
    let peak = logs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !peak.is_finite() {
        return None;
    }
    let mut probs: Vec<f64> = logs.iter().map(|l| (l - peak).exp()).collect();
    let total: f64 = probs.iter().sum();
    for x in &mut probs {
        *x /= total;
    }
    Some(probs)
}

/// The posterior mass of each point's cell [p_i - h/2, p_i + h/2].
fn cell_masses(posterior: &Posterior<'_>, p: &[f64]) -> Vec<f64> {
    let last = p.len() - 1;
    let half = 0.5 / last as f64;
    let edge = |i: usize| -> f64 {
        if i == 0 {
            0.0
        } else if i > last {
            1.0
        } else {
            posterior.cdf(p[i] - half).unwrap_or(0.0)
        }
    };
    (0..=last)
        .map(|i| (edge(i + 1) - edge(i)).max(0.0))
        .collect()
}

/// ln i for i in 0..=MAX_GRID_SIZE (ln 0 = -inf), computed once.
fn ln_table() -> &'static [f64] {
    static TABLE: OnceLock<Vec<f64>> = OnceLock::new();
    TABLE.get_or_init(|| (0..=MAX_GRID_SIZE).map(|i| f64::from(i).ln()).collect())
}
