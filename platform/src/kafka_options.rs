//! The librdkafka pass-through options (`kafka.librdkafka`), with their keys
//! normalised once, when the settings load: environment variables cannot
//! hold `.` and spell `session.timeout.ms` as `SESSION_TIMEOUT_MS`, so every
//! key is stored in librdkafka's own spelling (lower case, `.` for `_`) and
//! every client, and every `contains_key` asking after one, sees one name.
//! (No librdkafka option that takes a string has `_` in its name.)
//!
//! The secret ones (a SASL password, a key's password, a PEM key) are
//! printed as `[redacted]` by `Debug`, so a logged `Settings` shows none.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// librdkafka options whose value is a secret: never logged, never in an
/// error. librdkafka marks the same ones `_RK_SENSITIVE` in its own dumps.
pub const SECRET_OPTIONS: [&str; 7] = [
    "sasl.password",
    "ssl.key.password",
    "ssl.keystore.password",
    "ssl.truststore.password",
    "ssl.key.pem",
    "sasl.oauthbearer.client.secret",
    "sasl.oauthbearer.config",
];

/// What a secret value is printed as.
pub const REDACTED: &str = "[redacted]";

/// librdkafka's spelling of an option key given in any of the accepted
/// forms: `SESSION_TIMEOUT_MS`, `session_timeout_ms`, `session.timeout.ms`.
pub fn normalise_key(key: &str) -> String {
    key.trim().to_ascii_lowercase().replace('_', ".")
}

/// Whether `key` (normalised) names a secret.
pub fn is_secret(key: &str) -> bool {
    SECRET_OPTIONS.contains(&key)
}

/// The options, keyed in librdkafka's spelling.
#[derive(Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct LibrdkafkaOptions(BTreeMap<String, String>);

impl LibrdkafkaOptions {
    /// Sets `key` (in any accepted spelling) to `value`, replacing what was there.
    pub fn insert(&mut self, key: &str, value: impl Into<String>) {
        self.0.insert(normalise_key(key), value.into());
    }

    /// Whether `key` (librdkafka's spelling) is set.
    pub fn contains_key(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// Every option, key (librdkafka's spelling) and value.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<K: AsRef<str>, V: Into<String>> FromIterator<(K, V)> for LibrdkafkaOptions {
    /// Normalises every key; a later spelling of an option wins.
    fn from_iter<I: IntoIterator<Item = (K, V)>>(pairs: I) -> Self {
        let mut options = Self::default();
        for (key, value) in pairs {
            options.insert(key.as_ref(), value);
        }
        options
    }
}

impl fmt::Debug for LibrdkafkaOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(
                self.iter()
                    .map(|(k, v)| (k, if is_secret(k) { REDACTED } else { v })),
            )
            .finish()
    }
}

impl<'de> Deserialize<'de> for LibrdkafkaOptions {
    /// Normalises every key; two spellings of one option in the same layer
    /// are refused rather than one silently winning.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let given = BTreeMap::<String, String>::deserialize(deserializer)?;
        let mut options = BTreeMap::new();
        for (key, value) in given {
            let normal = normalise_key(&key);
            if options.insert(normal.clone(), value).is_some() {
                return Err(serde::de::Error::custom(format!(
                    "kafka.librdkafka sets {normal:?} twice (as {key:?} and in another spelling)"
                )));
            }
        }
        Ok(Self(options))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_of_a_key_becomes_librdkafkas() {
        for key in [
            "SESSION_TIMEOUT_MS",
            "session_timeout_ms",
            "session.timeout.ms",
        ] {
            assert_eq!(normalise_key(key), "session.timeout.ms");
        }
    }

    #[test]
    fn debug_hides_every_secret_and_shows_the_rest() {
        let mut options = LibrdkafkaOptions::default();
        options.insert("security.protocol", "SASL_SSL");
        for key in SECRET_OPTIONS {
            options.insert(key, "hunter2");
        }
        let printed = format!("{options:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("SASL_SSL"), "{printed}");
    }

    #[test]
    fn two_spellings_of_one_option_in_one_layer_are_refused() {
        let err = serde_json::from_str::<LibrdkafkaOptions>(
            r#"{"session.timeout.ms": "1", "session_timeout_ms": "2"}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("twice"), "{err}");
    }
}
