//! What a posterior predicts: draws of `p` from it, and the distribution of
//! the successes in the next trials.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{Kernel, Posterior};
use crate::bayes::{BayesError, Counts};

impl Posterior<'_> {
    /// `n` draws of `p` (inverse-CDF sampling), the same for the same `seed`.
    pub fn samples(&self, n: usize, seed: u64) -> Vec<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n)
            .map(|_| self.quantile_clamped(rng.random::<f64>()))
            .collect()
    }

    /// Posterior predictive distribution of the number of successes in the
    /// next `trials` trials: P(k) = C(n,k) Z(s+k, f+n-k) / Z(s, f), where Z is
    /// the normaliser of prior × likelihood. Exact up to quadrature, for any prior.
    pub fn predictive(&self, trials: u32) -> Result<Vec<f64>, BayesError> {
        let n = u64::from(trials);
        let mut log_p = Vec::with_capacity(trials as usize + 1);
        let mut log_choose = 0.0; // ln C(n, 0)
        for k in 0..=n {
            let future = Counts::new(k, n - k);
            let counts = self
                .counts
                .checked_add(future)
                .ok_or(BayesError::Overflow)?;
            let log_z = Kernel::new(self.prior, counts).log_normaliser();
            log_p.push(log_choose + log_z - self.log_z);
            if k < n {
                log_choose += ((n - k) as f64).ln() - ((k + 1) as f64).ln();
            }
        }
        // Quadrature leaves the sum a hair off 1: renormalise.
        let peak = log_p.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let mut probs: Vec<f64> = log_p.iter().map(|l| (l - peak).exp()).collect();
        let total: f64 = probs.iter().sum();
        for p in &mut probs {
            *p /= total;
        }
        Ok(probs)
    }
}
