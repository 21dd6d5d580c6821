//! Numbers as error messages show them: what the double holds, never a
//! rounding dressed up as an exact integer.
//!
//! `f64`'s own `Display` writes the shortest digits that read back as the
//! same double and pads them with zeros: 2^64 becomes `18446744073709552000`
//! and 1e300 a 301-digit integer, neither of which is the number a client
//! sent nor the one the double holds. [`Shown`] writes a whole number as
//! its digits only where a double holds every integer (up to 2^53), and in
//! scientific notation beyond that and for the very small, where the
//! notation itself says "a double near this".

use std::fmt;

/// 2^53: up to here a double holds every integer exactly.
const EXACT_INTEGERS: f64 = 9_007_199_254_740_992.0;
/// Below this magnitude plain decimals turn into runs of zeros.
const SMALL: f64 = 1e-5;

/// A double as a message shows it: `6`, `-1`, `0.25`, `1e300`,
/// `1.8446744073709552e19`, `5e-324`, `NaN`, `inf`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shown(pub f64);

impl fmt::Display for Shown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let x = self.0;
        let magnitude = x.abs();
        if !x.is_finite() || magnitude == 0.0 {
            // `NaN`, `inf`, `-inf`, `0`, `-0`.
            write!(f, "{x}")
        } else if !(SMALL..EXACT_INTEGERS).contains(&magnitude) {
            write!(f, "{x:e}")
        } else {
            // Whole numbers print without a fraction (`6`), others with the
            // shortest digits that read back as the same double.
            write!(f, "{x}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_digits_only_where_a_double_holds_them_all() {
        let cases: [(f64, &str); 12] = [
            (6.0, "6"),
            (-1.0, "-1"),
            (0.25, "0.25"),
            (0.0, "0"),
            (9_007_199_254_740_991.0, "9007199254740991"),
            (9_007_199_254_740_992.0, "9.007199254740992e15"),
            (18_446_744_073_709_551_616.0, "1.8446744073709552e19"),
            (1e300, "1e300"),
            (5e-324, "5e-324"),
            (1e-300, "1e-300"),
            (f64::INFINITY, "inf"),
            (f64::NAN, "NaN"),
        ];
        for (x, want) in cases {
            assert_eq!(Shown(x).to_string(), want);
        }
    }
}
