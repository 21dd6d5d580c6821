//! The NODES-point Gauss–Legendre rule on [-1, 1], computed once, with
//! what the experiment's quadrature derives from it: the matrix that
//! integrates the interpolating polynomial through the nodes from -1 to
//! each node, the matrix from values at the nodes to Legendre coefficients,
//! and the Legendre recurrence's coefficients.
//! A leaf: it depends on nothing else in the engine.

use std::sync::OnceLock;

/// Gauss–Legendre nodes per piece: exact for polynomials of degree 31, and
/// geometric convergence for the smooth densities of logit space.
pub(super) const NODES: usize = 16;

/// The Gauss–Legendre rule on [-1, 1] and its integration matrix.
pub(super) struct Rule {
    pub(super) nodes: [f64; NODES],
    pub(super) weights: [f64; NODES],
    /// integration[k][m] = ∫_{-1}^{x_k} L_m(x) dx, L_m the Lagrange basis
    /// polynomial of node m: row k applied to values at the nodes integrates
    /// their interpolating polynomial from -1 to node k.
    pub(super) integration: [[f64; NODES]; NODES],
    /// legendre[n][m] = (2n + 1)/2 · w_m · P_n(x_m): row n applied to values
    /// at the nodes gives the coefficient of P_n in their interpolating
    /// polynomial (the rule is exact for the products, of degree < 2 NODES).
    pub(super) legendre: [[f64; NODES]; NODES],
    /// recurrence[n] = ((2n + 1)/(n + 1), n/(n + 1), 2n + 1): P_{n+1}(x) =
    /// a x P_n(x) − b P_{n−1}(x) and P'_{n+1} = P'_{n−1} + c P_n, without a
    /// division or a conversion per step.
    pub(super) recurrence: [(f64, f64, f64); NODES],
}

pub(super) fn rule() -> &'static Rule {
    static RULE: OnceLock<Rule> = OnceLock::new();
    RULE.get_or_init(|| {
        let (nodes, weights) = gauss_legendre();
        let lagrange = |m: usize, x: f64| -> f64 {
            (0..NODES)
                .filter(|j| *j != m)
                .map(|j| (x - nodes[j]) / (nodes[m] - nodes[j]))
                .product()
        };
        let mut integration = [[0.0; NODES]; NODES];
        for (k, row) in integration.iter_mut().enumerate() {
            // The rule itself on [-1, x_k] is exact for L_m (degree NODES - 1).
            let half = 0.5 * (nodes[k] + 1.0);
            for (m, entry) in row.iter_mut().enumerate() {
                *entry = nodes
                    .iter()
                    .zip(&weights)
                    .map(|(x, w)| half * w * lagrange(m, -1.0 + half * (x + 1.0)))
                    .sum();
            }
        }
        let mut legendre = [[0.0; NODES]; NODES];
        for (m, (x, w)) in nodes.iter().zip(&weights).enumerate() {
            let (mut p0, mut p1) = (1.0, *x);
            for (n, row) in legendre.iter_mut().enumerate() {
                let value = if n == 0 { 1.0 } else { p1 };
                row[m] = (2 * n + 1) as f64 / 2.0 * w * value;
                if n >= 1 {
                    let nf = n as f64;
                    (p0, p1) = (p1, ((2.0 * nf + 1.0) * x * p1 - nf * p0) / (nf + 1.0));
                }
            }
        }
        let recurrence = std::array::from_fn(|n| {
            let n = n as f64;
            ((2.0 * n + 1.0) / (n + 1.0), n / (n + 1.0), 2.0 * n + 1.0)
        });
        Rule {
            nodes,
            weights,
            integration,
            legendre,
            recurrence,
        }
    })
}

/// Nodes (ascending) and weights of the NODES-point Gauss–Legendre rule, by
/// Newton's method on the Legendre polynomial from Chebyshev-like guesses.
fn gauss_legendre() -> ([f64; NODES], [f64; NODES]) {
    let n = NODES as f64;
    let mut nodes = [0.0; NODES];
    let mut weights = [0.0; NODES];
    for i in 0..NODES {
        let mut x = -(std::f64::consts::PI * (i as f64 + 0.75) / (n + 0.5)).cos();
        let mut derivative = 1.0;
        for _ in 0..100 {
            // P_n(x) and P_n'(x) by the three-term recurrence.
            let (mut p0, mut p1) = (1.0, x);
            for k in 2..=NODES {
                let k = k as f64;
                (p0, p1) = (p1, ((2.0 * k - 1.0) * x * p1 - (k - 1.0) * p0) / k);
            }
            derivative = n * (x * p1 - p0) / (x * x - 1.0);
            let step = p1 / derivative;
            x -= step;
            if step.abs() < 1e-16 {
                break;
            }
        }
        nodes[i] = x;
        weights[i] = 2.0 / ((1.0 - x * x) * derivative * derivative);
    }
    (nodes, weights)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule_integrates_polynomials_and_its_matrix_their_antiderivatives() {
        let rule = rule();
        let total: f64 = rule.weights.iter().sum();
        assert!((total - 2.0).abs() < 1e-14, "{total}");
        // x^k for k up to 2 NODES - 1 is integrated exactly.
        for k in [2, 7, 30] {
            let got: f64 = rule
                .nodes
                .iter()
                .zip(&rule.weights)
                .map(|(x, w)| w * x.powi(k))
                .sum();
            let want = if k % 2 == 0 {
                2.0 / (k + 1) as f64
            } else {
                0.0
            };
            assert!((got - want).abs() < 1e-14, "x^{k}: {got} vs {want}");
        }
        // ∫_{-1}^{x_k} x^5 dx = (x_k^6 - 1) / 6.
        for (k, row) in rule.integration.iter().enumerate() {
            let got: f64 = row
                .iter()
                .zip(&rule.nodes)
                .map(|(s, x)| s * x.powi(5))
                .sum();
            let want = (rule.nodes[k].powi(6) - 1.0) / 6.0;
            assert!((got - want).abs() < 1e-14, "node {k}: {got} vs {want}");
        }
    }
}
