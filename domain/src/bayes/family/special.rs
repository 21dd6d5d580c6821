//! The families' special functions, each written to keep its relative
//! precision where the textbook form cancels: φ(v) = e^v − 1 − v (the Gamma's
//! log density in ln λ) and the negative binomial's ln P(k) by Loader's
//! saddle-point form (as R's `dnbinom` computes it).

use std::f64::consts::PI;

use crate::bayes::special::ln_gamma;

/// φ(v) = e^v − 1 − v >= 0: by its Taylor series for |v| < 0.1, where
/// expm1(v) − v would lose the leading digits.
pub(super) fn phi(v: f64) -> f64 {
    if v.abs() < 0.1 {
        // v²/2! + v³/3! + … to v^18/18!, below 1e-34 of the first term past it.
        let mut term = v * v / 2.0;
        let mut sum = term;
        for n in 3..=18 {
            term *= v / f64::from(n);
            sum += term;
        }
        sum
    } else {
        v.exp_m1() - v
    }
}

/// δ(n) = ln Γ(n + 1) − [(n + ½) ln n − n + ½ ln 2π], Stirling's error:
/// directly for small n, by its asymptotic series above 15.
fn stirling_error(n: f64) -> f64 {
    const S0: f64 = 1.0 / 12.0;
    const S1: f64 = 1.0 / 360.0;
    const S2: f64 = 1.0 / 1260.0;
    const S3: f64 = 1.0 / 1680.0;
    const S4: f64 = 1.0 / 1188.0;
    if n <= 15.0 {
        return ln_gamma(n + 1.0) - (n + 0.5) * n.ln() + n - 0.5 * (2.0 * PI).ln();
    }
    let nn = n * n;
    (S0 - (S1 - (S2 - (S3 - S4 / nn) / nn) / nn) / nn) / n
}

/// bd0(x, m) = x ln(x/m) + m − x, the deviance term, by its series where
/// x and m are close.
fn deviance(x: f64, m: f64) -> f64 {
    if (x - m).abs() < 0.1 * (x + m) {
        let v = (x - m) / (x + m);
        let mut s = (x - m) * v;
        let mut ej = 2.0 * x * v;
        let v2 = v * v;
        for j in 1..1000 {
            ej *= v2;
            let next = s + ej / f64::from(2 * j + 1);
            if next == s {
                return next;
            }
            s = next;
        }
        s
    } else {
        x * (x / m).ln() + m - x
    }
}

/// ln of the binomial probability of x successes in n (real) trials with
/// success chance p, failure chance q = 1 − p given separately, and the
/// failures n − x too (from the caller's exact count: at n = 10^12 the
/// difference of the doubles would keep 3 digits of 1000 failures).
fn ln_binomial_raw(x: f64, n: f64, failures: f64, p: f64, q: f64) -> f64 {
    if x == 0.0 {
        return if p < 0.1 {
            -deviance(n, n * q) - n * p
        } else {
            n * q.ln()
        };
    }
    if failures == 0.0 {
        return if q < 0.1 {
            -deviance(n, n * p) - n * q
        } else {
            n * p.ln()
        };
    }
    let lc = stirling_error(n)
        - stirling_error(x)
        - stirling_error(failures)
        - deviance(x, n * p)
        - deviance(failures, n * q);
    let lf = (2.0 * PI).ln() + x.ln() + failures.ln() - n.ln();
    lc - 0.5 * lf
}

/// ln P(k) of the negative binomial Γ(r + k)/(Γ(r) k!) p^r q^k, q = 1 − p.
pub(super) fn ln_negative_binomial(r: f64, k: f64, p: f64, q: f64) -> f64 {
    // P(k) = r/(r + k) · Binomial(r successes in r + k trials).
    (r / (r + k)).ln() + ln_binomial_raw(r, r + k, k, p, q)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phi_is_continuous_where_the_series_hands_over() {
        for v in [0.1f64, -0.1] {
            // Just inside the series' range, where expm1(v) − v still keeps
            // 14 digits: the two forms agree.
            let v = v * (1.0 - 1e-12);
            let below = phi(v);
            let exact = v.exp_m1() - v;
            assert!(
                (below - exact).abs() <= 1e-13 * exact,
                "{v}: {below} {exact}"
            );
        }
    }

    #[test]
    fn the_negative_binomial_of_shape_one_is_geometric() {
        // r = 1: P(k) = p q^k.
        let (p, q) = (0.3f64, 0.7f64);
        for k in [0u32, 1, 5, 40] {
            let want = p * q.powi(i32::try_from(k).unwrap_or(0));
            let got = ln_negative_binomial(1.0, f64::from(k), p, q).exp();
            assert!((got - want).abs() <= 1e-13 * want, "{k}: {got} {want}");
        }
    }
}
