//! Observations and the wire format: the one parser used by the producer (HTTP
//! bodies) and the consumer (Kafka records), so both accept exactly the same
//! inputs and reject the rest with the same words.
//!
//! Accepted record values (the README's "Wire format" lists them too):
//! - plain text: one outcome `w`/`l`, `1`/`0`, `success`/`failure` in any case,
//!   or a run of w/l letters such as `WLWWWLWLW`; tokens may be separated by
//!   white space or commas (`W L W W`);
//! - JSON: `{"model":"globe","outcome":"w"}`, `{"model":"globe","outcomes":"wlw"}`
//!   or `{"model":"globe","successes":6,"trials":9}`, each with optional `id`
//!   (the client's idempotency key) and `observed_at` (RFC 3339).
//!
//! The canonical form, which the producer writes, is the third JSON form.

//!
//! The ids an observation may carry are in `id`, the cutting of error
//! messages to a few characters of the input in `quote`; both are
//! re-exported here.

mod id;
mod quote;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model_id::{ModelId, ModelIdError};
use quote::shorten_quotes;

pub use id::{
    check_id, is_upload_id, upload_line_id, IdError, MAX_IDEMPOTENCY_KEY_LEN, MAX_ID_LEN,
    UPLOAD_ID_HEX_CHARS,
};
pub use quote::{truncate_for_message, MAX_ERROR_CHARS, MAX_QUOTED_CHARS};

/// The most trials one record may carry (a run's length or `trials`).
pub const MAX_TRIALS_PER_RECORD: u64 = 1_000_000;

/// A validated batch of Bernoulli outcomes for one model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    pub model: ModelId,
    pub successes: u64,
    pub failures: u64,
    /// The client's idempotency key, if it gave one.
    pub id: Option<String>,
    pub observed_at: Option<DateTime<Utc>>,
}

/// Why a record or request item is not an observation. The message goes to
/// HTTP clients and into the `error` header of dead-letter records, so it says
/// exactly what is wrong, quoting at most [`MAX_QUOTED_CHARS`] characters of
/// any part of the input and at most [`MAX_ERROR_CHARS`] in all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("empty record: expected an outcome such as `w` or `l`, a run such as `WLWWL`, or a JSON object")]
    Empty,
    #[error("record is not valid UTF-8")]
    NotUtf8,
    #[error("unknown outcome {token:?}: expected w/l, 1/0, success/failure, or a run of w and l")]
    UnknownToken { token: String },
    /// serde's message, whose quotes of the input are cut (see [`WireError::json`]).
    #[error("invalid JSON: {0}")]
    Json(String),
    #[error("JSON must be an object such as {{\"model\":\"globe\",\"outcome\":\"w\"}}")]
    NotAnObject,
    #[error("give exactly one of `outcome`, `outcomes` or `successes` with `trials`")]
    OutcomeShape,
    #[error("successes ({successes}) exceed trials ({trials})")]
    SuccessesExceedTrials { successes: u64, trials: u64 },
    #[error("{trials} trials in one record; at most {MAX_TRIALS_PER_RECORD} are allowed")]
    TooManyTrials { trials: u64 },
    #[error("record key names model {key:?} but its body names model {body:?}")]
    ModelMismatch { key: String, body: String },
    #[error("invalid model id: {0}")]
    ModelId(#[from] ModelIdError),
    #[error("`id` {0}")]
    BadId(IdError),
    #[error("no trials: a record must carry at least one outcome (`trials` of 1 or more)")]
    NoTrials,
}

impl WireError {
    /// serde's message quotes the offending input whole (`invalid type:
    /// string "AAAA…", expected u64`, `unknown field `…``): keep each quote
    /// to its first [`MAX_QUOTED_CHARS`] characters.
    pub fn json(err: &serde_json::Error) -> Self {
        Self::Json(shorten_quotes(&err.to_string()))
    }
}

/// The JSON object form, as a client writes it. Unknown fields are refused so
/// that a typo (`"outcom"`) is an error rather than a silently different record.
/// Its OpenAPI schema is written out in [`schema`], with every rule of the
/// parser below that a JSON Schema can state.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObservationBody {
    /// Model id; the default model when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// One outcome: `w`/`l`, `1`/`0`, `success`/`failure` (any case), a boolean, or 1/0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// A run of outcomes such as `WLWWWLWLW`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcomes: Option<String>,
    /// Number of successes among `trials` (binomial counts).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::whole::option_u64"
    )]
    pub successes: Option<u64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::whole::option_u64"
    )]
    pub trials: Option<u64>,
    /// The client's idempotency key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// When the outcomes were observed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_at: Option<DateTime<Utc>>,
}

/// A single outcome as JSON allows it: a token, a boolean or 0/1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Outcome {
    Token(String),
    Bool(bool),
    Number(u64),
    /// `1.0` or `0.0`: JSON does not tell them from `1` and `0`.
    Fraction(f64),
}

impl Observation {
    pub fn trials(&self) -> u64 {
        self.successes + self.failures
    }

    /// The canonical record value the producer writes: an accepted JSON form.
    pub fn to_canonical_json(&self) -> String {
        let body = ObservationBody {
            model: Some(self.model.to_string()),
            successes: Some(self.successes),
            trials: Some(self.trials()),
            id: self.id.clone(),
            observed_at: self.observed_at,
            ..ObservationBody::default()
        };
        // Serialising a struct of strings and integers cannot fail.
        serde_json::to_string(&body).unwrap_or_default()
    }
}

/// Parses a Kafka record: `key` is the record key (a model id, or none), `value`
/// its payload. With neither a key nor a `model` field the default model is used.
pub fn parse_record(
    key: Option<&[u8]>,
    value: &[u8],
    default_model: &ModelId,
) -> Result<Observation, WireError> {
    let key = match key {
        Some(k) if !k.is_empty() => {
            // Not trimmed: " globe" is not `globe` but an invalid id, so a
            // stray space never moves a record into another model.
            let k = std::str::from_utf8(k).map_err(|_| WireError::NotUtf8)?;
            Some(ModelId::parse(k)?)
        }
        _ => None,
    };
    let text = std::str::from_utf8(value)
        .map_err(|_| WireError::NotUtf8)?
        .trim();
    if text.starts_with('{') {
        // Straight into the body type: the common case, a producer's
        // canonical record, builds no intermediate value. A derived struct
        // refuses a repeated field as the strict parser does; anything else
        // wrong goes the general way, which says precisely what.
        if let Ok(ObjectBody(body)) = serde_json::from_str(text) {
            return body.into_observation(key.as_ref(), default_model);
        }
    }
    if text.starts_with('{') || text.starts_with('[') || text.starts_with('"') {
        let value = crate::json::from_str(text).map_err(|e| WireError::json(&e))?;
        parse_json(value, key.as_ref(), default_model)
    } else {
        let model = key.unwrap_or_else(|| default_model.clone());
        parse_text(text, model)
    }
}

/// Parses the plain-text form (one outcome or w/l runs) for `model`.
pub fn parse_text(text: &str, model: ModelId) -> Result<Observation, WireError> {
    let (successes, failures) = count_outcomes(text)?;
    Ok(Observation {
        model,
        successes,
        failures,
        id: None,
        observed_at: None,
    })
}

/// Parses one JSON item: a record value, or an element of an HTTP batch.
/// `key_model` is the Kafka key's model, which the body must not contradict.
pub fn parse_json(
    value: serde_json::Value,
    key_model: Option<&ModelId>,
    default_model: &ModelId,
) -> Result<Observation, WireError> {
    if !value.is_object() {
        return Err(WireError::NotAnObject);
    }
    let body: ObservationBody = serde_json::from_value(value).map_err(|e| WireError::json(&e))?;
    body.into_observation(key_model, default_model)
}

impl ObservationBody {
    /// Validates the body; see [`parse_json`].
    pub fn into_observation(
        self,
        key_model: Option<&ModelId>,
        default_model: &ModelId,
    ) -> Result<Observation, WireError> {
        let model = match (self.model, key_model) {
            (Some(body), Some(key)) => {
                let body_id = ModelId::parse(body.clone())?;
                if &body_id != key {
                    return Err(WireError::ModelMismatch {
                        key: key.to_string(),
                        body,
                    });
                }
                body_id
            }
            (Some(body), None) => ModelId::parse(body)?,
            (None, Some(key)) => key.clone(),
            (None, None) => default_model.clone(),
        };
        let (successes, failures) = match (self.outcome, self.outcomes, self.successes, self.trials)
        {
            (Some(outcome), None, None, None) => outcome_counts(&outcome)?,
            (None, Some(run), None, None) => count_outcomes(&run)?,
            (None, None, Some(successes), Some(trials)) => {
                if trials > MAX_TRIALS_PER_RECORD {
                    return Err(WireError::TooManyTrials { trials });
                }
                if successes > trials {
                    return Err(WireError::SuccessesExceedTrials { successes, trials });
                }
                (successes, trials - successes)
            }
            _ => return Err(WireError::OutcomeShape),
        };
        if successes + failures == 0 {
            return Err(WireError::NoTrials);
        }
        if let Some(id) = &self.id {
            check_id(id).map_err(WireError::BadId)?;
        }
        Ok(Observation {
            model,
            successes,
            failures,
            id: self.id,
            observed_at: self.observed_at,
        })
    }
}

/// An [`ObservationBody`] read from a JSON object only: serde would also
/// fill the struct from an array of its fields (`["globe", "w"]`), which the
/// general path refuses, as every item must be an object.
#[derive(Debug)]
pub struct ObjectBody(pub ObservationBody);

impl<'de> Deserialize<'de> for ObjectBody {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectOnly;
        impl<'de> serde::de::Visitor<'de> for ObjectOnly {
            type Value = ObjectBody;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<ObjectBody, A::Error> {
                ObservationBody::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(ObjectBody)
            }
        }
        deserializer.deserialize_map(ObjectOnly)
    }
}

fn outcome_counts(outcome: &Outcome) -> Result<(u64, u64), WireError> {
    match outcome {
        Outcome::Bool(true) | Outcome::Number(1) => Ok((1, 0)),
        Outcome::Bool(false) | Outcome::Number(0) => Ok((0, 1)),
        Outcome::Fraction(x) if *x == 1.0 => Ok((1, 0)),
        Outcome::Fraction(x) if *x == 0.0 => Ok((0, 1)),
        Outcome::Fraction(x) => Err(WireError::UnknownToken {
            token: x.to_string(),
        }),
        Outcome::Number(n) => Err(WireError::UnknownToken {
            token: n.to_string(),
        }),
        Outcome::Token(token) => match single_outcome(token.trim()) {
            Some(success) => Ok(if success { (1, 0) } else { (0, 1) }),
            None => Err(WireError::UnknownToken {
                token: truncate_for_message(token),
            }),
        },
    }
}

/// `Some(true)` for a success word (`w`, `1`, `success`, in any case),
/// `Some(false)` for a failure word (`l`, `0`, `failure`), `None` for
/// anything else, white space included.
pub fn single_outcome(token: &str) -> Option<bool> {
    const SUCCESS: [&str; 3] = ["w", "1", "success"];
    const FAILURE: [&str; 3] = ["l", "0", "failure"];
    if SUCCESS.iter().any(|s| token.eq_ignore_ascii_case(s)) {
        Some(true)
    } else if FAILURE.iter().any(|s| token.eq_ignore_ascii_case(s)) {
        Some(false)
    } else {
        None
    }
}

/// Counts the outcomes in plain text: tokens separated by white space or
/// commas, each a single outcome word or a run of w/l letters.
fn count_outcomes(text: &str) -> Result<(u64, u64), WireError> {
    let (mut successes, mut failures) = (0u64, 0u64);
    let mut any = false;
    for token in text
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|t| !t.is_empty())
    {
        any = true;
        if let Some(success) = single_outcome(token) {
            if success {
                successes += 1;
            } else {
                failures += 1;
            }
        } else {
            for c in token.chars() {
                match c {
                    'w' | 'W' => successes += 1,
                    'l' | 'L' => failures += 1,
                    _ => {
                        return Err(WireError::UnknownToken {
                            token: truncate_for_message(token),
                        })
                    }
                }
            }
        }
        // Checked per token, so an oversized record is refused before it is
        // read to the end; counts never come near overflowing a u64.
        let trials = successes + failures;
        if trials > MAX_TRIALS_PER_RECORD {
            return Err(WireError::TooManyTrials { trials });
        }
    }
    if !any {
        return Err(WireError::Empty);
    }
    Ok((successes, failures))
}

#[cfg(test)]
mod tests;
