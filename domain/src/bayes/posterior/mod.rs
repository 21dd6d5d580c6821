//! A posterior over `p` as a quadrature in logit space: how it is built
//! (the nodes placed on the window holding the mass, the normaliser, the
//! moments, the mode) and how it answers the CDF and quantiles, which
//! everything else computed from it goes through.
//!
//! Start here; the other files of the module build on [`Posterior`]:
//! - `kernel`: the unnormalised log density in logit space, which places
//!   the window, counts the cells it needs and finds the mode;
//! - `trapezoid`: the rule's node weights, and the cells that interpolate
//!   the density between nodes (their partial masses and the inverse);
//! - `summary`: the intervals (central and HPDI) and [`Summary`];
//! - `predictive`: draws of `p` and the posterior predictive distribution.

mod kernel;
mod predictive;
mod summary;
mod trapezoid;

use super::logit::{logit, sigmoid};
use super::{BayesError, Counts};
use crate::prior::Prior;
pub(in crate::bayes) use kernel::Kernel;
pub use summary::{Interval, Summary};
use trapezoid::{cells, node_weight, Cell};

/// A posterior over `p`, ready to answer questions.
#[derive(Debug, Clone)]
pub struct Posterior<'a> {
    prior: &'a Prior,
    counts: Counts,
    /// First node and spacing, in logit space.
    t0: f64,
    h: f64,
    /// The logit-space log density at each node, relative to `log_peak`.
    log_w: Vec<f64>,
    /// p at each node.
    ps: Vec<f64>,
    /// The cells between nodes, for interpolating inside them.
    cells: Vec<Cell>,
    /// Normalised CDF at each node (0 at the first, 1 at the last).
    cdf: Vec<f64>,
    /// ln of ∫ prior(p) p^s (1-p)^f dp, the prior taken unnormalised (a
    /// grid prior's weights relative to the largest, so that the prior and
    /// everything computed from it are the same at any scale).
    log_z: f64,
    mean: f64,
    sd: f64,
    mode: f64,
}

impl<'a> Posterior<'a> {
    /// The posterior of `prior` after `counts`.
    pub fn new(prior: &'a Prior, counts: Counts) -> Result<Self, BayesError> {
        let kernel = Kernel::new(prior, counts);
        let (left, right) = kernel.window();
        let n_cells = kernel.cells_for(left, right);
        let h = (right - left) / n_cells as f64;
        let nodes = n_cells + 1;

        // One pass over the nodes: log density (logit space), log density in
        // p space (for the mode), and p itself.
        let mut log_w = Vec::with_capacity(nodes);
        let mut log_pdens = Vec::with_capacity(nodes);
        let mut ps = Vec::with_capacity(nodes);
        for j in 0..nodes {
            let t = left + h * j as f64;
            let e = kernel.eval(t);
            log_w.push(e.log_t);
            log_pdens.push(e.log_p);
            ps.push(e.p);
        }
        let peak = log_w.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if !peak.is_finite() {
            return Err(BayesError::NoMass);
        }

        // Trapezoid sums (with Gregory's end weights) for the normaliser,
        // the mean and the variance.
        let weights: Vec<f64> = log_w
            .iter()
            .enumerate()
            .map(|(j, l)| node_weight(j, nodes) * (l - peak).exp())
            .collect();
        let total: f64 = weights.iter().sum();
        let mean = weights.iter().zip(&ps).map(|(w, p)| w * p).sum::<f64>() / total;
        let var = weights
            .iter()
            .zip(&ps)
            .map(|(w, p)| w * (p - mean) * (p - mean))
            .sum::<f64>()
            / total;
        let log_z = kernel.log_offset + peak + (total * h).ln();

        // CDF with the log density interpolated linearly inside each cell.
        for l in &mut log_w {
            *l -= peak;
        }
        let cells = cells(&log_w);
        let mut cdf = Vec::with_capacity(nodes);
        let mut acc = 0.0f64;
        cdf.push(0.0);
        for cell in &cells {
            acc += cell.mass();
            cdf.push(acc);
        }
        if !(acc > 0.0 && acc.is_finite() && total > 0.0 && mean.is_finite()) {
            return Err(BayesError::NoMass);
        }
        for c in &mut cdf {
            *c /= acc;
        }

        let mode = kernel.mode(left, h, &log_pdens, &ps);
        Ok(Posterior {
            prior,
            counts,
            t0: left,
            h,
            log_w,
            ps,
            cells,
            cdf,
            log_z,
            mean,
            sd: var.max(0.0).sqrt(),
            mode,
        })
    }

    pub fn prior(&self) -> &'a Prior {
        self.prior
    }

    pub fn counts(&self) -> Counts {
        self.counts
    }

    pub fn mean(&self) -> f64 {
        self.mean
    }

    pub fn sd(&self) -> f64 {
        self.sd
    }

    /// The mode of the continuous posterior density.
    pub fn mode(&self) -> f64 {
        self.mode
    }

    pub fn median(&self) -> f64 {
        self.quantile_clamped(0.5)
    }

    /// The `q`-quantile of `p`.
    pub fn quantile(&self, q: f64) -> Result<f64, BayesError> {
        if (0.0..=1.0).contains(&q) {
            Ok(self.quantile_clamped(q))
        } else {
            Err(BayesError::Probability(q))
        }
    }

    fn quantile_clamped(&self, q: f64) -> f64 {
        sigmoid(self.quantile_t(q))
    }

    /// P(p <= x).
    pub fn cdf(&self, x: f64) -> Result<f64, BayesError> {
        if !(0.0..=1.0).contains(&x) {
            return Err(BayesError::Probability(x));
        }
        Ok(self.cdf_t(logit(x)))
    }

    /// ln of the normaliser ∫ prior(p) p^s (1-p)^f dp (prior unnormalised;
    /// a grid prior's weights relative to the largest).
    pub fn log_normaliser(&self) -> f64 {
        self.log_z
    }

    fn nodes(&self) -> usize {
        self.log_w.len()
    }

    fn t_at(&self, j: usize) -> f64 {
        self.t0 + self.h * j as f64
    }

    /// The logit-space window that holds all but ~e^-36 of the mass, and the
    /// number of cells the quadrature needed to resolve it (more for a grid
    /// prior, whose density has a kink at every knot).
    pub(super) fn logit_window(&self) -> (f64, f64, usize) {
        (self.t0, self.t_at(self.nodes() - 1), self.nodes() - 1)
    }

    /// The unnormalised log density of this posterior in logit space.
    pub(super) fn kernel(&self) -> Kernel<'a> {
        Kernel::new(self.prior, self.counts)
    }

    /// Trapezoid weights of the nodes, normalised to sum to 1, with their logits.
    pub(super) fn weighted_nodes(&self) -> impl Iterator<Item = (f64, f64)> + '_ {
        let n = self.nodes();
        let raw = move |j: usize| node_weight(j, n) * self.log_w[j].exp();
        let total: f64 = (0..n).map(raw).sum();
        (0..n).map(move |j| (raw(j) / total, self.t_at(j)))
    }

    fn quantile_t(&self, q: f64) -> f64 {
        let last = self.nodes() - 1;
        if q <= 0.0 {
            return self.t0;
        }
        if q >= 1.0 {
            return self.t_at(last);
        }
        // The cell whose CDF range holds q.
        let j = self.cdf.partition_point(|c| *c <= q).clamp(1, last) - 1;
        let cell = self.cdf[j + 1] - self.cdf[j];
        if cell <= 0.0 {
            return self.t_at(j);
        }
        let frac = self.cells[j].inverse((q - self.cdf[j]) / cell);
        self.t_at(j) + frac * self.h
    }

    fn cdf_t(&self, t: f64) -> f64 {
        let last = self.nodes() - 1;
        if t <= self.t0 {
            return 0.0;
        }
        if t >= self.t_at(last) {
            return 1.0;
        }
        let x = (t - self.t0) / self.h;
        let j = (x.floor() as usize).min(last - 1);
        let frac = x - j as f64;
        let cell = &self.cells[j];
        let whole = cell.mass();
        if whole.is_nan() || whole <= 0.0 {
            return self.cdf[j];
        }
        let part = cell.partial(frac);
        self.cdf[j] + (self.cdf[j + 1] - self.cdf[j]) * (part / whole)
    }

    /// P(p <= x) for `x` given as a probability that may be outside [0, 1].
    pub(super) fn cdf_p(&self, x: f64) -> f64 {
        if x <= 0.0 {
            0.0
        } else if x >= 1.0 {
            1.0
        } else {
            self.cdf_t(logit(x))
        }
    }
}
