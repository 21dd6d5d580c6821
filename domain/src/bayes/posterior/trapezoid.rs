//! The trapezoid rule of the posterior's quadrature: the weight of each
//! node (with Gregory's end corrections), and the cells between nodes, in
//! which the log density is interpolated with a bend so that partial masses
//! and their inverse (the CDF and quantiles between nodes) are accurate to
//! O(h⁴).

/// The weight of node `j` of `nodes` (times the spacing) in the
/// quadrature's sums: the trapezoid rule with Gregory's end corrections
/// (3/8, 7/6, 23/24, 1, ..., 1, 23/24, 7/6, 3/8), exact to O(h⁴). Where
/// the density has fallen to e^-36 at both ends of the window (a support
/// wider than the posterior) the corrections weigh nothing and the rule is
/// the trapezoid's, whose error then falls geometrically; where a step or
/// grid prior cuts the posterior off near its peak, the plain trapezoid's
/// O(h²) would leave ~1e-3 of relative error in the mean.
pub(super) fn node_weight(j: usize, nodes: usize) -> f64 {
    const ENDS: [f64; 3] = [3.0 / 8.0, 7.0 / 6.0, 23.0 / 24.0];
    let from_end = j.min(nodes - 1 - j);
    ENDS.get(from_end).copied().unwrap_or(1.0)
}

/// One cell of the quadrature, in a unit coordinate u ∈ [0, 1]: the log
/// density is `l0 + (l1 - l0) u + q u (u - 1)`, where `q` (half the second
/// difference of the log density at the nodes) bends the log-linear
/// interpolation so that the CDF at the nodes is accurate to O(h⁴). The
/// density is taken as exp(linear) · (1 + q u (u - 1)); q stays below ~0.02.
#[derive(Debug, Clone, Copy)]
pub(super) struct Cell {
    l0: f64,
    l1: f64,
    q: f64,
}

impl Cell {
    /// Mass of the whole cell (unit width).
    pub(super) fn mass(&self) -> f64 {
        self.partial(1.0)
    }

    /// Mass of [0, x].
    pub(super) fn partial(&self, x: f64) -> f64 {
        let (l0, l1) = (self.l0, self.l1);
        match (l0.is_finite(), l1.is_finite()) {
            (false, false) => 0.0,
            // A zero at one end (a grid prior's hole): linear density.
            (false, true) | (true, false) => {
                let (d0, d1) = (l0.exp(), l1.exp());
                x * d0 + 0.5 * x * x * (d1 - d0)
            }
            (true, true) => {
                let d = l1 - l0;
                if d <= 0.0 {
                    l0.exp() * bent_integral(d, self.q, x)
                } else {
                    // Rising: integrate from the right end, where the density is
                    // largest, so nothing overflows; u(u-1) is symmetric.
                    l1.exp() * (bent_integral(-d, self.q, 1.0) - bent_integral(-d, self.q, 1.0 - x))
                }
            }
        }
    }

    /// ln of the density at `u`: the bent log-linear form above, or where
    /// one end is zero (a grid prior's hole), the log of the linear density.
    pub(super) fn log_density(&self, u: f64) -> f64 {
        if self.l0.is_finite() && self.l1.is_finite() {
            self.l0 + (self.l1 - self.l0) * u + self.q * u * (u - 1.0)
        } else {
            ((1.0 - u) * self.l0.exp() + u * self.l1.exp()).ln()
        }
    }

    /// The fraction x of the cell that holds share `r` of its mass.
    pub(super) fn inverse(&self, r: f64) -> f64 {
        let r = r.clamp(0.0, 1.0);
        let (l0, l1) = (self.l0, self.l1);
        let whole = self.mass();
        if whole.is_nan() || whole <= 0.0 {
            return r;
        }
        // Start from the log-linear (q = 0) solution, then polish with Newton.
        let mut x = match (l0.is_finite(), l1.is_finite()) {
            (false, false) => return r,
            (false, true) | (true, false) => {
                // Solve d0 x + (d1 - d0) x²/2 = r (d0 + d1)/2 exactly.
                let (d0, d1) = (l0.exp(), l1.exp());
                let slope = d1 - d0;
                if slope.abs() < 1e-300 {
                    return r;
                }
                let disc = (d0 * d0 + 2.0 * slope * r * whole).max(0.0);
                return ((disc.sqrt() - d0) / slope).clamp(0.0, 1.0);
            }
            (true, true) => {
                let d = l1 - l0;
                if d.abs() < 1e-9 {
                    r
                } else if d > 0.0 {
                    1.0 + ((-d).exp() + r * (-(-d).exp_m1())).ln() / d
                } else {
                    (r * d.exp_m1()).ln_1p() / d
                }
            }
        };
        let d = l1 - l0;
        for _ in 0..2 {
            let density = (l0 + d * x).exp() * (1.0 + self.q * x * (x - 1.0));
            if density.is_nan() || density <= 0.0 {
                break;
            }
            x = (x - (self.partial(x) - r * whole) / density).clamp(0.0, 1.0);
        }
        x
    }
}

/// ∫0^x e^(d u) (1 + q u (u - 1)) du, for d <= 0.
fn bent_integral(d: f64, q: f64, x: f64) -> f64 {
    let y = d * x;
    // ∫0^x u^k e^(d u) du = x^(k+1) · E_k(d x), with E_k(y) = ∫0^1 v^k e^(y v) dv.
    let (e0, e1, e2) = exp_moments(y);
    x * e0 + q * (x * x * x * e2 - x * x * e1)
}

/// E_k(y) = ∫0^1 v^k e^(y v) dv for k = 0, 1, 2.
fn exp_moments(y: f64) -> (f64, f64, f64) {
    if y.abs() < 0.25 {
        // Σ y^n / n! / (n + k + 1): no cancellation near 0.
        let (mut e0, mut e1, mut e2) = (0.0, 0.0, 0.0);
        let mut term = 1.0; // y^n / n!
        for n in 0..12 {
            let n = f64::from(n);
            e0 += term / (n + 1.0);
            e1 += term / (n + 2.0);
            e2 += term / (n + 3.0);
            term *= y / (n + 1.0);
        }
        (e0, e1, e2)
    } else {
        let ey = y.exp();
        let e0 = (ey - 1.0) / y;
        let e1 = (ey * (y - 1.0) + 1.0) / (y * y);
        let e2 = (ey * (y * y - 2.0 * y + 2.0) - 2.0) / (y * y * y);
        (e0, e1, e2)
    }
}

/// The cells between consecutive nodes, with each one's bend from the
/// second differences of the log density at its two nodes.
pub(super) fn cells(log_w: &[f64]) -> Vec<Cell> {
    let n = log_w.len();
    let second = |j: usize| -> f64 {
        let j = j.clamp(1, n.saturating_sub(2).max(1));
        if j + 1 >= n {
            return 0.0;
        }
        let dd = log_w[j - 1] - 2.0 * log_w[j] + log_w[j + 1];
        if dd.is_finite() {
            dd
        } else {
            0.0
        }
    };
    (0..n.saturating_sub(1))
        .map(|j| Cell {
            l0: log_w[j],
            l1: log_w[j + 1],
            q: 0.25 * (second(j) + second(j + 1)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cell_inverse_undoes_the_partial_mass() {
        let ends = [
            (0.0, 0.0),
            (0.0, -3.0),
            (-3.0, 0.0),
            (0.0, 40.0),
            (-40.0, 0.0),
            (-0.5, 0.0),
            (f64::NEG_INFINITY, 0.0),
            (0.0, f64::NEG_INFINITY),
        ];
        for (l0, l1) in ends {
            for q in [0.0, -0.02, 0.01] {
                let cell = Cell { l0, l1, q };
                for r in [0.0, 0.1, 0.5, 0.9, 1.0] {
                    let x = cell.inverse(r);
                    let got = cell.partial(x) / cell.mass();
                    assert!((got - r).abs() < 1e-9, "{cell:?} r={r}: x={x} gives {got}");
                }
            }
        }
    }

    #[test]
    fn a_bent_cell_integrates_its_density() {
        // Against a fine midpoint rule of exp(l0 + d u) (1 + q u (u - 1)).
        for (l0, l1, q) in [
            (0.0, -2.0, -0.02),
            (-1.0, 0.5, 0.01),
            (0.0, 0.0, -0.01),
            (-5.0, 0.0, 0.0),
        ] {
            let cell = Cell { l0, l1, q };
            let n = 100_000;
            let density = |u: f64| (l0 + (l1 - l0) * u).exp() * (1.0 + q * u * (u - 1.0));
            for x in [0.3, 1.0] {
                let fine = (0..n)
                    .map(|i| density((i as f64 + 0.5) / n as f64 * x))
                    .sum::<f64>()
                    * x
                    / n as f64;
                let got = cell.partial(x);
                assert!(
                    (got - fine).abs() < 1e-9 * fine,
                    "{cell:?} x={x}: {got} vs {fine}"
                );
            }
        }
    }
}
