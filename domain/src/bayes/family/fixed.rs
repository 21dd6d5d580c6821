//! The exact arithmetic of the normal family's statistics: values as
//! binary fixed-point integers (multiples of 2^-64), their squares as
//! multiples of 2^-128 in a 256-bit unsigned integer, and the one place the
//! sum of squared deviations is computed, n·Σx² − (Σx)², exactly before a
//! single rounding to `f64`.

/// A 256-bit unsigned integer, four little-endian 64-bit limbs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct U256([u64; 4]);

impl U256 {
    pub(super) const ZERO: U256 = U256([0; 4]);

    pub(super) fn from_u128(x: u128) -> Self {
        U256([x as u64, (x >> 64) as u64, 0, 0])
    }

    /// The limbs, most significant last.
    #[cfg(test)]
    fn limbs(self) -> [u64; 4] {
        self.0
    }

    pub(super) fn checked_add(self, other: U256) -> Option<U256> {
        let mut out = [0u64; 4];
        let mut carry = false;
        for (i, slot) in out.iter_mut().enumerate() {
            let (s, c1) = self.0[i].overflowing_add(other.0[i]);
            let (s, c2) = s.overflowing_add(u64::from(carry));
            *slot = s;
            carry = c1 || c2;
        }
        (!carry).then_some(U256(out))
    }

    pub(super) fn checked_sub(self, other: U256) -> Option<U256> {
        let mut out = [0u64; 4];
        let mut borrow = false;
        for (i, slot) in out.iter_mut().enumerate() {
            let (s, b1) = self.0[i].overflowing_sub(other.0[i]);
            let (s, b2) = s.overflowing_sub(u64::from(borrow));
            *slot = s;
            borrow = b1 || b2;
        }
        (!borrow).then_some(U256(out))
    }

    pub(super) fn checked_mul(self, other: U256) -> Option<U256> {
        let mut out = [0u128; 8];
        for i in 0..4 {
            let mut carry = 0u128;
            for j in 0..4 {
                let t = u128::from(self.0[i]) * u128::from(other.0[j]) + out[i + j] + carry;
                out[i + j] = t & u128::from(u64::MAX);
                carry = t >> 64;
            }
            out[i + 4] += carry;
        }
        if out[4..].iter().any(|l| *l != 0) {
            return None;
        }
        Some(U256([
            out[0] as u64,
            out[1] as u64,
            out[2] as u64,
            out[3] as u64,
        ]))
    }

    /// The nearest `f64` (the top 128 significant bits rounded once).
    pub(super) fn to_f64(self) -> f64 {
        let top = (0..4).rev().find(|i| self.0[*i] != 0);
        match top {
            None => 0.0,
            Some(0) => self.0[0] as f64,
            Some(i) => {
                let high = (u128::from(self.0[i]) << 64) | u128::from(self.0[i - 1]);
                high as f64 * 2f64.powi(64 * (i as i32 - 1))
            }
        }
    }

    /// `x`·2^128 rounded to an integer, for 0 <= x < 2^128.
    pub(super) fn from_scaled_f64(x: f64) -> Option<U256> {
        if !(x >= 0.0 && x < 2f64.powi(128)) {
            return None;
        }
        let whole = x.floor();
        // Both parts are exact: x − floor(x) loses nothing, and scaling by
        // a power of two neither.
        let fraction = ((x - whole) * 2f64.powi(128)).round();
        let (whole, fraction) = (whole as u128, fraction as u128);
        Some(U256([
            fraction as u64,
            (fraction >> 64) as u64,
            whole as u64,
            (whole >> 64) as u64,
        ]))
    }
}

/// `x`·2^64 rounded to an integer: exact for any |x| >= 2^-12 (whose
/// binary digits all sit above 2^-64), within 2^-65 below; `None` beyond
/// ±2^63.
pub(super) fn fixed_from_f64(x: f64) -> Option<i128> {
    let scaled = (x * 2f64.powi(64)).round();
    (scaled.is_finite() && scaled.abs() < 2f64.powi(127)).then_some(scaled as i128)
}

/// The square of a fixed-point value, in units of 2^-128: exact.
pub(super) fn square(q: i128) -> U256 {
    let a = U256::from_u128(q.unsigned_abs());
    // Two factors below 2^128 never overflow 256 bits.
    a.checked_mul(a).unwrap_or(U256::ZERO)
}

/// n·Σx² − (Σx)², in units of 2^-128, exactly; `None` if negative (no
/// set of values has that) or past 256 bits.
pub(super) fn n_times_m2(n: u64, sum: i128, sum_squares: U256) -> Option<U256> {
    let scaled = U256::from_u128(u128::from(n)).checked_mul(sum_squares)?;
    scaled.checked_sub(square(sum))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_and_differences_are_exact_past_128_bits() {
        let a = U256::from_u128(u128::MAX);
        let sq = a.checked_mul(a).unwrap();
        // (2^128 − 1)² = 2^256 − 2^129 + 1.
        assert_eq!(sq.limbs(), [1, 0, u64::MAX - 1, u64::MAX]);
        assert_eq!(sq.checked_add(sq), None);
        assert_eq!(U256::ZERO.checked_sub(U256::from_u128(1)), None);
        assert_eq!(
            sq.checked_sub(sq).unwrap(),
            U256::ZERO,
            "x − x is 0 whatever its size"
        );
        assert!((sq.to_f64() / 2f64.powi(256) - 1.0).abs() < 1e-15);
    }

    #[test]
    fn fixed_point_keeps_every_binary_digit_of_ordinary_values() {
        for x in [1e9 + 0.125, -3.75, 1e-3, 123_456.789] {
            let q = fixed_from_f64(x).unwrap();
            assert_eq!(q as f64 / 2f64.powi(64), x);
        }
        assert_eq!(fixed_from_f64(1e20), None);
    }
}
