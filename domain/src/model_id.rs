//! `ModelId`: the name of a model, valid by construction.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The longest model id accepted.
pub const MAX_LEN: usize = 64;

/// The name of a model: 1 to 64 characters of `[a-z0-9_.-]`, starting with a
/// letter or a digit. It is the Kafka record key and the Postgres primary key,
/// so anything that holds a `ModelId` holds a valid one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ModelId(String);

/// Why a string is not a model id; the message is shown to clients as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelIdError {
    #[error("model id is empty")]
    Empty,
    #[error("model id is {len} characters long; at most {MAX_LEN} are allowed")]
    TooLong { len: usize },
    #[error("model id must start with a lowercase letter or a digit, not {first:?}")]
    BadStart { first: char },
    #[error(
        "model id may only contain lowercase letters, digits, '_', '.' and '-'; found {found:?}"
    )]
    BadChar { found: char },
}

impl ModelId {
    /// Checks `s` and wraps it.
    pub fn parse(s: impl Into<String>) -> Result<Self, ModelIdError> {
        let s = s.into();
        let len = s.chars().count();
        let first = s.chars().next().ok_or(ModelIdError::Empty)?;
        if len > MAX_LEN {
            return Err(ModelIdError::TooLong { len });
        }
        if !(first.is_ascii_lowercase() || first.is_ascii_digit()) {
            return Err(ModelIdError::BadStart { first });
        }
        if let Some(found) = s.chars().find(|c| {
            !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-'))
        }) {
            return Err(ModelIdError::BadChar { found });
        }
        Ok(Self(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ModelId {
    type Error = ModelIdError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(s)
    }
}

impl From<ModelId> for String {
    fn from(id: ModelId) -> Self {
        id.0
    }
}

impl AsRef<str> for ModelId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ModelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for ModelId {
    type Err = ModelIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Result<&str, ModelIdError>) {
        assert_eq!(
            ModelId::parse(input).as_ref().map(ModelId::as_str),
            expected.as_ref().map(|s| *s)
        );
    }

    #[test]
    fn valid_ids_are_accepted() {
        for id in ["globe", "a", "0", "ab-test.v2_x", &"z".repeat(64)] {
            check(id, Ok(id));
        }
    }

    #[test]
    fn invalid_ids_are_rejected_with_a_reason() {
        check("", Err(ModelIdError::Empty));
        check(&"z".repeat(65), Err(ModelIdError::TooLong { len: 65 }));
        check("-globe", Err(ModelIdError::BadStart { first: '-' }));
        check(".globe", Err(ModelIdError::BadStart { first: '.' }));
        check("Globe", Err(ModelIdError::BadStart { first: 'G' }));
        check("glObe", Err(ModelIdError::BadChar { found: 'O' }));
        check("glo be", Err(ModelIdError::BadChar { found: ' ' }));
        check("globé", Err(ModelIdError::BadChar { found: 'é' }));
    }

    #[test]
    fn serde_refuses_an_invalid_id() {
        let err = serde_json::from_str::<ModelId>("\"Bad Id\"").unwrap_err();
        assert!(err.to_string().contains("must start with"), "{err}");
        let ok: ModelId = serde_json::from_str("\"globe\"").unwrap();
        assert_eq!(serde_json::to_string(&ok).unwrap(), "\"globe\"");
    }
}
