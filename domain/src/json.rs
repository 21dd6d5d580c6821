//! Strict JSON: a document whose objects repeat a key is refused.
//!
//! RFC 8259 leaves duplicate names undefined, and parsers disagree (serde's
//! `Value` keeps the last, others the first, derived structs refuse them).
//! A record `{"model":"a","model":"b",...}` could then mean one model to the
//! producer and another to a different reader, so every JSON the pipeline
//! accepts (HTTP bodies, Kafka records) goes through one rule: a repeated
//! key is an error that names it.

use std::fmt;

use serde::de::{DeserializeSeed, Error as _, MapAccess, SeqAccess, Visitor};
use serde::Deserializer;
use serde_json::{Map, Number, Value};

/// Parses `text` as one JSON value, refusing any object with a repeated key.
pub fn from_str(text: &str) -> Result<Value, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let value = StrictValue.deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(value)
}

/// Parses `bytes` as one JSON value, refusing any object with a repeated key.
pub fn from_slice(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = StrictValue.deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(value)
}

/// A `serde_json::Value` that checks its objects' keys as it is built.
struct StrictValue;

impl<'de> DeserializeSeed<'de> for StrictValue {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Value, E> {
        Ok(Value::Number(n.into()))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Value, E> {
        Ok(Value::Number(n.into()))
    }

    fn visit_f64<E>(self, x: f64) -> Result<Value, E> {
        // JSON text has no NaN or infinity, so this is always a number.
        Ok(Number::from_f64(x).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_owned()))
    }

    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<Value, A::Error> {
        let mut values = Vec::with_capacity(items.size_hint().unwrap_or(0).min(4_096));
        while let Some(value) = items.next_element_seed(StrictValue)? {
            values.push(value);
        }
        Ok(Value::Array(values))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = entries.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(A::Error::custom(format_args!("duplicate key `{key}`")));
            }
            let value = entries.next_value_seed(StrictValue)?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_key_is_refused_at_any_depth_and_named() {
        for (text, key) in [
            (r#"{"model":"a","model":"b"}"#, "model"),
            (r#"[{"x":1},{"y":{"z":1,"z":2}}]"#, "z"),
            (r#"{"a":{"b":[{"c":1,"c":1}]}}"#, "c"),
        ] {
            let err = from_str(text).unwrap_err().to_string();
            assert!(
                err.contains(&format!("duplicate key `{key}`")),
                "{text}: {err}"
            );
            let err = from_slice(text.as_bytes()).unwrap_err().to_string();
            assert!(
                err.contains(&format!("duplicate key `{key}`")),
                "{text}: {err}"
            );
        }
    }

    #[test]
    fn everything_else_parses_as_serde_json_parses_it() {
        for text in [
            r#"{"model":"globe","successes":6,"trials":9,"id":"k","observed_at":null}"#,
            r#"[1, -2, 3.5, 1e300, true, false, null, "s", [], {}]"#,
            r#"{"a":{"a":{"a":1}}}"#,
            r#""\u00e9\ud83d\ude00""#,
            "18446744073709551615",
            "-9223372036854775808",
        ] {
            let strict = from_str(text).unwrap();
            let loose: Value = serde_json::from_str(text).unwrap();
            assert_eq!(strict, loose, "{text}");
        }
    }

    #[test]
    fn what_serde_json_refuses_stays_refused() {
        for text in [r#"{"a":1"#, r#""\ud800""#, "[1,]", "{} {}", "NaN"] {
            assert!(from_str(text).is_err(), "{text}");
        }
    }
}
