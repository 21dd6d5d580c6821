//! Whole numbers read from JSON however they are written: `6` or `6.0`.
//! JSON has one number type and JSON Schema's `integer` is any number with
//! no fraction, so a client (or a schema-driven generator) may send `6.0`
//! where a count is expected; it means 6.

use std::fmt;

use serde::de::{Error, Visitor};
use serde::{Deserialize, Deserializer};

use crate::number::Shown;

/// `2^64`, the first `f64` above every `u64`.
const U64_END: f64 = 18_446_744_073_709_551_616.0;

/// A whole number however JSON writes it. A visitor rather than an untagged
/// enum, so a wrong type gets serde's own message ("invalid type: string
/// \"abc\", expected a non-negative whole number"), not "did not match any
/// variant".
struct Whole(u64);

impl<'de> Deserialize<'de> for Whole {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(WholeVisitor)
    }
}

struct WholeVisitor;

impl Visitor<'_> for WholeVisitor {
    type Value = Whole;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a non-negative whole number")
    }

    fn visit_u64<E: Error>(self, n: u64) -> Result<Whole, E> {
        Ok(Whole(n))
    }

    fn visit_i64<E: Error>(self, n: i64) -> Result<Whole, E> {
        u64::try_from(n)
            .map(Whole)
            .map_err(|_| E::custom(format!("expected a non-negative whole number, got {n}")))
    }

    /// A number JSON wrote with a fraction or exponent, or an integer
    /// beyond `u64` (which serde_json reads as a double). The message shows
    /// the double as [`Shown`] does: a double near 2^64 holds no digit past
    /// the 16th of what was sent, so it is never written as if it did.
    fn visit_f64<E: Error>(self, x: f64) -> Result<Whole, E> {
        if x.fract() == 0.0 && (0.0..U64_END).contains(&x) {
            // The cast is exact: the value is whole and within range.
            Ok(Whole(x as u64))
        } else if x >= U64_END {
            Err(E::custom(format!(
                "expected a whole number of at most {}, got {}",
                u64::MAX,
                Shown(x)
            )))
        } else {
            Err(E::custom(format!(
                "expected a non-negative whole number, got {}",
                Shown(x)
            )))
        }
    }
}

/// A non-negative whole number as a `u64`, or `None` for `null`/absent
/// (with `#[serde(default)]`).
pub fn option_u64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    Ok(Option::<Whole>::deserialize(deserializer)?.map(|w| w.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Count {
        #[serde(default, deserialize_with = "option_u64")]
        n: Option<u64>,
    }

    fn read(json: &str) -> Result<Option<u64>, String> {
        serde_json::from_str::<Count>(json)
            .map(|c| c.n)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn whole_numbers_are_read_however_they_are_written() {
        assert_eq!(read(r#"{"n": 6}"#), Ok(Some(6)));
        assert_eq!(read(r#"{"n": 6.0}"#), Ok(Some(6)));
        assert_eq!(read(r#"{"n": 1e6}"#), Ok(Some(1_000_000)));
        assert_eq!(read(r#"{"n": null}"#), Ok(None));
        assert_eq!(read(r#"{}"#), Ok(None));
    }

    #[test]
    fn a_number_past_u64_is_refused_without_inventing_its_digits() {
        // 2^64, and a number a double can only hold as a rounding.
        let err = read(r#"{"n": 18446744073709551616}"#).unwrap_err();
        assert!(err.contains("at most 18446744073709551615"), "{err}");
        assert!(err.contains("got 1.8446744073709552e19"), "{err}");
        assert!(!err.contains("18446744073709552000"), "{err}");
        let err = read(r#"{"n": 1e30}"#).unwrap_err();
        assert!(err.contains("got 1e30"), "{err}");
        let err = read(r#"{"n": -1e300}"#).unwrap_err();
        assert!(err.contains("got -1e300"), "{err}");
        assert_eq!(read(r#"{"n": 18446744073709551615}"#), Ok(Some(u64::MAX)));
    }

    #[test]
    fn fractions_negatives_and_strings_are_refused() {
        for json in [
            r#"{"n": 6.5}"#,
            r#"{"n": -1}"#,
            r#"{"n": -1.0}"#,
            r#"{"n": "6"}"#,
            r#"{"n": 1e30}"#,
        ] {
            assert!(read(json).is_err(), "{json}");
        }
    }
}
