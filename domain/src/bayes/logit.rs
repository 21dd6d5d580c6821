//! The logistic function and its inverse, the map between a success
//! probability p and the logit t = ln(p / (1 - p)) in which the engine
//! integrates: stable for every t, exact where p or 1 - p is tiny.
//! A leaf: it depends on nothing else in the engine.

/// Logit bound: beyond ±T_MAX, p or 1-p is below 1e-300.
pub(super) const T_MAX: f64 = 700.0;

/// ln σ(t), stable for every t.
pub(super) fn ln_sigmoid(t: f64) -> f64 {
    if t >= 0.0 {
        -(-t).exp().ln_1p()
    } else {
        t - t.exp().ln_1p()
    }
}

/// σ(t) = 1 / (1 + e^-t).
pub(super) fn sigmoid(t: f64) -> f64 {
    if t >= 0.0 {
        1.0 / (1.0 + (-t).exp())
    } else {
        let e = t.exp();
        e / (1.0 + e)
    }
}

/// ln(p / (1-p)), ±T_MAX at the ends.
pub(super) fn logit(p: f64) -> f64 {
    if p <= 0.0 {
        -T_MAX
    } else if p >= 1.0 {
        T_MAX
    } else {
        (p.ln() - (-p).ln_1p()).clamp(-T_MAX, T_MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logit_and_sigmoid_are_inverse() {
        for p in [1e-300, 1e-9, 0.01, 0.5, 0.7, 0.999] {
            assert!(
                (sigmoid(logit(p)) - p).abs() <= 1e-15 * p.max(1e-300) + 1e-300,
                "{p}"
            );
            assert!((ln_sigmoid(logit(p)) - p.ln()).abs() < 1e-12, "{p}");
        }
    }
}
