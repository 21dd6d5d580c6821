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

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model_id::{ModelId, ModelIdError};

/// The most trials one record may carry (a run's length or `trials`).
pub const MAX_TRIALS_PER_RECORD: u64 = 1_000_000;
/// The longest `id` an observation may carry, in characters.
pub const MAX_ID_LEN: usize = 160;
/// The longest client idempotency key (the producer's `Idempotency-Key`
/// header), in characters. Shorter than [`MAX_ID_LEN`] so that the id derived
/// for item `i` of a batch, `{key}:{i}`, always fits, whatever the index.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 128;
const _: () =
    assert!(MAX_IDEMPOTENCY_KEY_LEN + ":".len() + "18446744073709551615".len() <= MAX_ID_LEN);
/// Hex digits of the SHA-256 in an upload's id (80 bits). An upload's
/// records carry the ids `<upload>:<line>`, where `<upload>` is that many
/// lowercase hex digits, optionally followed by `-<n>` for the n-th forced
/// re-upload of the same file (see [`upload_line_id`]).
pub const UPLOAD_ID_HEX_CHARS: usize = 20;
/// The digits a line number of an upload line id has at most: below 10^18,
/// so it fits a signed 64-bit integer with room for arithmetic.
const MAX_LINE_DIGITS: usize = 18;
/// The most characters of the offending input an error message quotes. A
/// record may be a megabyte long, and its error message travels in a
/// dead-letter header and in HTTP answers: it must say what is wrong, not
/// repeat the input.
pub const MAX_QUOTED_CHARS: usize = 40;
/// The longest error message, in characters: a second guard after
/// [`MAX_QUOTED_CHARS`], for messages that quote many parts of the input.
pub const MAX_ERROR_CHARS: usize = 200;

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

/// Why a string cannot be an observation's id. An id is stored in Postgres
/// and travels in logs and dead-letter headers, so it holds no control
/// character (NUL above all, which Postgres text cannot hold).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("must be 1 to {MAX_ID_LEN} characters; it is empty")]
    Empty,
    #[error("must be 1 to {MAX_ID_LEN} characters; it has {len}")]
    TooLong { len: usize },
    #[error("must not hold control characters; found U+{code:04X} at character {position}")]
    ControlCharacter { code: u32, position: usize },
}

/// Checks that `id` can name an observation: 1 to [`MAX_ID_LEN`]
/// characters, none of them a control character (Unicode's Cc: U+0000 to
/// U+001F and U+007F to U+009F). Any other Unicode scalar value is allowed.
pub fn check_id(id: &str) -> Result<(), IdError> {
    if id.is_empty() {
        return Err(IdError::Empty);
    }
    let mut len = 0;
    for (position, c) in id.chars().enumerate() {
        if c.is_control() {
            return Err(IdError::ControlCharacter {
                code: u32::from(c),
                position,
            });
        }
        len += 1;
    }
    if len > MAX_ID_LEN {
        return Err(IdError::TooLong { len });
    }
    Ok(())
}

/// `Some((upload, line))` when `id` is an upload's line id,
/// `<upload>:<line>`: `<upload>` is [`UPLOAD_ID_HEX_CHARS`] lowercase hex
/// digits, optionally with `-<n>` (`n` a canonical decimal), and `<line>` a
/// canonical decimal (no sign, no leading zero) of at most 18 digits.
///
/// The producer writes such ids for the rows of an upload, whose id is the
/// hash of its file, so the id alone fixes what the record holds; clients may
/// not send ids of this form (the producer refuses them).
pub fn upload_line_id(id: &str) -> Option<(&str, i64)> {
    let (upload, line) = id.rsplit_once(':')?;
    if !canonical_decimal(line, MAX_LINE_DIGITS) || !is_upload_id(upload) {
        return None;
    }
    Some((upload, line.parse().ok()?))
}

/// Whether `upload` is an upload's id: [`UPLOAD_ID_HEX_CHARS`] lowercase hex
/// digits, optionally followed by `-<n>` (`n` a canonical decimal from 1).
pub fn is_upload_id(upload: &str) -> bool {
    let (hash, copy) = match upload.split_once('-') {
        Some((hash, n)) => (hash, Some(n)),
        None => (upload, None),
    };
    hash.len() == UPLOAD_ID_HEX_CHARS
        && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        && copy.is_none_or(|n| canonical_decimal(n, 20) && n != "0")
}

/// A non-empty decimal of at most `max_digits` digits, without sign or
/// leading zero, so that each number has exactly one spelling.
fn canonical_decimal(digits: &str, max_digits: usize) -> bool {
    !digits.is_empty()
        && digits.len() <= max_digits
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
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

/// `token` cut to [`MAX_QUOTED_CHARS`] characters with an ellipsis: error
/// messages quote a client's input, and must stay short when it is huge.
pub fn truncate_for_message(token: &str) -> String {
    if token.chars().nth(MAX_QUOTED_CHARS).is_none() {
        token.to_owned()
    } else {
        format!(
            "{}…",
            token.chars().take(MAX_QUOTED_CHARS).collect::<String>()
        )
    }
}

/// `message` with every quoted part (`"…"`, with backslash escapes, or
/// `` `…` ``) cut to [`MAX_QUOTED_CHARS`] characters and an ellipsis, and
/// the whole cut to [`MAX_ERROR_CHARS`].
fn shorten_quotes(message: &str) -> String {
    let mut out = String::new();
    let mut chars = message.chars();
    while let Some(c) = chars.next() {
        out.push(c);
        if c != '"' && c != '`' {
            continue;
        }
        let close = c;
        let (mut kept, mut cut, mut escaped) = (0, false, false);
        loop {
            let Some(inner) = chars.next() else {
                // An unterminated quote runs to the end of the message.
                if cut {
                    out.push('…');
                }
                break;
            };
            if inner == close && !escaped {
                if cut {
                    out.push('…');
                }
                out.push(close);
                break;
            }
            escaped = close == '"' && inner == '\\' && !escaped;
            if kept < MAX_QUOTED_CHARS {
                out.push(inner);
                kept += 1;
            } else {
                cut = true;
            }
        }
    }
    if out.chars().nth(MAX_ERROR_CHARS).is_some() {
        out = out.chars().take(MAX_ERROR_CHARS - 1).collect();
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn globe() -> ModelId {
        ModelId::parse("globe").unwrap()
    }

    /// Parses `value` under `key` and compares with `(model, successes, failures)`
    /// or with a fragment of the error message.
    fn check(key: Option<&str>, value: &str, expected: Result<(&str, u64, u64), &str>) {
        let got = parse_record(key.map(str::as_bytes), value.as_bytes(), &globe());
        match (&got, &expected) {
            (Ok(obs), Ok((model, s, f))) => {
                assert_eq!(
                    (obs.model.as_str(), obs.successes, obs.failures),
                    (*model, *s, *f),
                    "{value:?}"
                )
            }
            (Err(err), Err(fragment)) => {
                assert!(
                    err.to_string().contains(fragment),
                    "{value:?}: {err} lacks {fragment:?}"
                )
            }
            _ => panic!("{value:?}: got {got:?}, want {expected:?}"),
        }
    }

    #[test]
    fn single_outcomes_in_any_case() {
        for s in ["w", "W", "1", "success", "SUCCESS", "Success", " w\n"] {
            check(None, s, Ok(("globe", 1, 0)));
        }
        for f in ["l", "L", "0", "failure", "FAILURE", "l\r\n"] {
            check(None, f, Ok(("globe", 0, 1)));
        }
    }

    #[test]
    fn runs_of_letters_and_separated_tokens() {
        check(None, "WLWWWLWLW", Ok(("globe", 6, 3)));
        check(None, "w l w w w l w l w", Ok(("globe", 6, 3)));
        check(None, "w,l,W", Ok(("globe", 2, 1)));
        check(None, "success failure 1 0 wwl", Ok(("globe", 4, 3)));
    }

    #[test]
    fn the_key_names_the_model() {
        check(Some("coin"), "w", Ok(("coin", 1, 0)));
        check(Some("coin"), r#"{"outcome":"l"}"#, Ok(("coin", 0, 1)));
        check(
            Some("coin"),
            r#"{"model":"coin","outcome":"l"}"#,
            Ok(("coin", 0, 1)),
        );
        check(Some(""), "w", Ok(("globe", 1, 0)));
    }

    #[test]
    fn the_three_json_forms() {
        check(
            None,
            r#"{"model":"globe","outcome":"w"}"#,
            Ok(("globe", 1, 0)),
        );
        check(
            None,
            r#"{"model":"m1","outcome":"FAILURE"}"#,
            Ok(("m1", 0, 1)),
        );
        check(
            None,
            r#"{"model":"globe","outcome":true}"#,
            Ok(("globe", 1, 0)),
        );
        check(
            None,
            r#"{"model":"globe","outcome":0}"#,
            Ok(("globe", 0, 1)),
        );
        check(
            None,
            r#"{"model":"globe","outcomes":"wlw"}"#,
            Ok(("globe", 2, 1)),
        );
        check(
            None,
            r#"{"model":"globe","successes":6,"trials":9}"#,
            Ok(("globe", 6, 3)),
        );
    }

    #[test]
    fn a_record_without_trials_is_refused_in_every_form() {
        check(None, r#"{"successes":0,"trials":0}"#, Err("no trials"));
        check(
            Some("coin"),
            r#"{"successes":0,"trials":0,"id":"x"}"#,
            Err("no trials"),
        );
    }

    #[test]
    fn a_key_is_never_trimmed_into_another_model() {
        check(
            Some(" globe"),
            "w",
            Err("must start with a lowercase letter"),
        );
        check(Some("globe "), "w", Err("may only contain"));
        check(Some("globe\n"), "w", Err("may only contain"));
    }

    #[test]
    fn a_repeated_json_key_is_refused_whichever_value_comes_last() {
        check(
            None,
            r#"{"model":"a","model":"b","outcome":"w"}"#,
            Err("duplicate"),
        );
        check(
            None,
            r#"{"model":"a","outcome":"w","outcome":"l"}"#,
            Err("duplicate"),
        );
        // The general path, for a record the fast path does not take.
        check(
            None,
            r#"{"model":"a","outcome":"x","model":"b"}"#,
            Err("duplicate"),
        );
    }

    #[test]
    fn ids_hold_any_character_but_control_characters() {
        for id in [
            "a",
            "order 17",
            "é-日本-😀",
            "\u{2028}",
            &"x".repeat(MAX_ID_LEN),
        ] {
            assert_eq!(check_id(id), Ok(()), "{id:?}");
        }
        assert_eq!(check_id(""), Err(IdError::Empty));
        assert_eq!(
            check_id(&"é".repeat(MAX_ID_LEN + 1)),
            Err(IdError::TooLong {
                len: MAX_ID_LEN + 1
            })
        );
        for (id, code, position) in [
            ("a\0b", 0, 1),
            ("\tx", 9, 0),
            ("x\u{7f}", 0x7f, 1),
            ("x\u{9f}", 0x9f, 1),
        ] {
            assert_eq!(
                check_id(id),
                Err(IdError::ControlCharacter { code, position }),
                "{id:?}"
            );
        }
        check(None, r#"{"outcome":"w","id":"a\u0000b"}"#, Err("U+0000"));
        check(
            None,
            r#"{"outcome":"w","id":"\ud800"}"#,
            Err("invalid JSON"),
        );
    }

    #[test]
    fn upload_line_ids_are_the_hash_form_with_a_canonical_line() {
        let hash = "9f86d081884c7d659a2f";
        assert_eq!(upload_line_id(&format!("{hash}:17")), Some((hash, 17)));
        assert_eq!(
            upload_line_id(&format!("{hash}-2:0")),
            Some((&*format!("{hash}-2"), 0))
        );
        assert_eq!(
            upload_line_id(&format!("{hash}:999999999999999999")),
            Some((hash, 999_999_999_999_999_999))
        );
        for other in [
            format!("{hash}:07"),
            format!("{hash}:"),
            format!("{hash}:1000000000000000000"),
            format!("{hash}-0:1"),
            format!("{hash}-01:1"),
            format!("{}:1", &hash[1..]),
            format!("{hash}0:1"),
            format!("{}:1", hash.to_uppercase()),
            format!("x{hash}:1"),
            "order:17".to_owned(),
            "a:b:0".to_owned(),
            hash.to_owned(),
        ] {
            assert_eq!(upload_line_id(&other), None, "{other}");
        }
    }

    #[test]
    fn id_and_observed_at_are_kept() {
        let value = r#"{"model":"globe","outcome":"w","id":"abc-1","observed_at":"2024-05-01T12:00:00+02:00"}"#;
        let obs = parse_record(None, value.as_bytes(), &globe()).unwrap();
        assert_eq!(obs.id.as_deref(), Some("abc-1"));
        assert_eq!(
            obs.observed_at.unwrap().to_rfc3339(),
            "2024-05-01T10:00:00+00:00"
        );
    }

    #[test]
    fn every_rejection_says_what_is_wrong() {
        check(None, "", Err("empty record"));
        check(None, "  \n ", Err("empty record"));
        check(None, "x", Err("unknown outcome \"x\""));
        check(None, "wlx", Err("unknown outcome \"wlx\""));
        check(None, "2", Err("unknown outcome \"2\""));
        check(None, "{\"outcome\":", Err("invalid JSON"));
        check(None, "[1,2]", Err("must be an object"));
        check(None, "\"w\"", Err("must be an object"));
        check(
            None,
            r#"{"outcome":"maybe"}"#,
            Err("unknown outcome \"maybe\""),
        );
        check(None, r#"{"outcome":2}"#, Err("unknown outcome \"2\""));
        check(None, r#"{"outcom":"w"}"#, Err("unknown field `outcom`"));
        check(None, r#"{"model":"globe"}"#, Err("exactly one of"));
        check(
            None,
            r#"{"outcome":"w","outcomes":"ww"}"#,
            Err("exactly one of"),
        );
        check(None, r#"{"successes":3}"#, Err("exactly one of"));
        check(
            None,
            r#"{"successes":10,"trials":9}"#,
            Err("successes (10) exceed trials (9)"),
        );
        check(None, r#"{"successes":-1,"trials":9}"#, Err("invalid JSON"));
        check(
            None,
            r#"{"successes":1,"trials":1000001}"#,
            Err("1000001 trials in one record"),
        );
        check(
            Some("coin"),
            r#"{"model":"globe","outcome":"w"}"#,
            Err("key names model \"coin\" but its body names model \"globe\""),
        );
        check(
            None,
            r#"{"model":"Globe!","outcome":"w"}"#,
            Err("invalid model id"),
        );
        check(Some("BAD KEY"), "w", Err("invalid model id"));
        check(None, r#"{"outcome":"w","id":""}"#, Err("`id` must be"));
        check(
            None,
            r#"{"outcome":"w","observed_at":"yesterday"}"#,
            Err("invalid JSON"),
        );
        let long_run = "w".repeat(1_000_001);
        check(None, &long_run, Err("1000001 trials in one record"));
        check(None, &"w".repeat(1_000_000), Ok(("globe", 1_000_000, 0)));
        let err = parse_record(None, &[0xff, 0xfe], &globe()).unwrap_err();
        assert_eq!(err, WireError::NotUtf8);
    }

    #[test]
    fn error_messages_quote_at_most_a_few_characters_of_a_huge_input() {
        let huge = "A".repeat(600_000);
        let too_much = "A".repeat(MAX_QUOTED_CHARS + 1);
        for (key, value, fragment) in [
            (
                None,
                format!(r#"{{"model":"x","successes":"{huge}","trials":1}}"#),
                "invalid JSON: invalid type: string \"AAAA",
            ),
            (
                None,
                format!(r#"{{"successes":"\"{huge}","trials":1}}"#),
                "…\", expected a non-negative whole number",
            ),
            (None, format!(r#"{{"{huge}":"w"}}"#), "unknown field `AAAA"),
            (
                None,
                format!(r#"{{"outcome":"{huge}"}}"#),
                "unknown outcome",
            ),
            (
                None,
                format!(r#"{{"outcomes":"{huge}"}}"#),
                "unknown outcome",
            ),
            (
                None,
                format!(r#"{{"model":"{huge}","outcome":"w"}}"#),
                "600000 characters long",
            ),
            (None, format!(r#"{{"id":"{huge}","outcome":"w"}}"#), "`id`"),
            (None, huge.clone(), "unknown outcome \"AAAA"),
            (
                Some(huge.as_str()),
                "w".to_owned(),
                "600000 characters long",
            ),
        ] {
            let err = parse_record(key.map(str::as_bytes), value.as_bytes(), &globe())
                .unwrap_err()
                .to_string();
            assert!(
                err.chars().count() <= MAX_ERROR_CHARS,
                "{} characters: {err}",
                err.chars().count()
            );
            assert!(!err.contains(&too_much), "quotes too much: {err}");
            assert!(err.contains(fragment), "{err} lacks {fragment:?}");
        }
    }

    #[test]
    fn quotes_are_cut_with_an_ellipsis_and_the_rest_of_the_message_is_kept() {
        let quoted = "b".repeat(MAX_QUOTED_CHARS);
        assert_eq!(
            shorten_quotes(&format!(
                r#"invalid type: string "{quoted}bbb", expected u64"#
            )),
            format!(r#"invalid type: string "{quoted}…", expected u64"#)
        );
        assert_eq!(
            shorten_quotes(&format!("unknown field `{quoted}x`, expected `id`")),
            format!("unknown field `{quoted}…`, expected `id`")
        );
        // An escaped quote does not end the quote; a short quote is left alone.
        assert_eq!(
            shorten_quotes(r#"string "a\"b", expected "c""#),
            r#"string "a\"b", expected "c""#
        );
        assert_eq!(
            shorten_quotes(&format!(r#"unterminated "{quoted}bbb"#)),
            format!(r#"unterminated "{quoted}…"#)
        );
        // Multi-byte characters are cut whole.
        let long = shorten_quotes(&"é".repeat(1_000));
        assert_eq!(long.chars().count(), MAX_ERROR_CHARS);
        assert!(long.ends_with('…'));
    }

    #[test]
    fn canonical_json_parses_back_to_the_same_observation() {
        let obs = Observation {
            model: ModelId::parse("coin.v2").unwrap(),
            successes: 6,
            failures: 3,
            id: Some("k-1".into()),
            observed_at: Some("2024-05-01T10:00:00Z".parse().unwrap()),
        };
        let json = obs.to_canonical_json();
        assert_eq!(
            json,
            r#"{"model":"coin.v2","successes":6,"trials":9,"id":"k-1","observed_at":"2024-05-01T10:00:00Z"}"#
        );
        assert_eq!(
            parse_record(Some(b"coin.v2"), json.as_bytes(), &globe()).unwrap(),
            obs
        );
    }
}
