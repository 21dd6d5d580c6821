//! Whole numbers read from JSON however they are written: `6` or `6.0`.
//! JSON has one number type and JSON Schema's `integer` is any number with
//! no fraction, so a client (or a schema-driven generator) may send `6.0`
//! where a count is expected; it means 6.

use serde::de::Error;
use serde::{Deserialize, Deserializer};

#[derive(Deserialize)]
#[serde(untagged)]
enum Raw {
    Integer(u64),
    Number(f64),
}

/// `2^64`, the first `f64` above every `u64`.
const U64_END: f64 = 18_446_744_073_709_551_616.0;

/// A non-negative whole number as a `u64`, or `None` for `null`/absent
/// (with `#[serde(default)]`).
pub fn option_u64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    Option::<Raw>::deserialize(deserializer)?
        .map(|raw| match raw {
            Raw::Integer(n) => Ok(n),
            // The cast is exact: the value is whole and within range.
            Raw::Number(x) if x.fract() == 0.0 && (0.0..U64_END).contains(&x) => Ok(x as u64),
            Raw::Number(x) => Err(D::Error::custom(format!(
                "expected a non-negative whole number, got {x}"
            ))),
        })
        .transpose()
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
