//! The CSV format of an upload: the header ([`Columns`]) and one row
//! ([`Columns::parse_row`]), read with the domain's rules, so a row is
//! accepted exactly when the same observation sent as JSON would be.
//!
//! Columns (names trimmed, any case, any order): `model` (optional when the
//! request names one with `?model=`; an empty cell takes that one too),
//! either `outcome` (every form the wire parser accepts: `w`, `L`, `1`,
//! `success`, a run such as `WLWWL`) or `successes` and `trials`, and
//! optionally `id` (the record's id instead of `<upload>:<line>`) and
//! `observed_at` (RFC 3339). Any other column is refused, so a typo is an
//! error rather than a column silently ignored.

use chrono::{DateTime, Utc};
use csv::ByteRecord;
use domain::observation::{
    check_id, parse_text, single_outcome, upload_line_id, WireError, MAX_TRIALS_PER_RECORD,
};
use domain::ModelId;

/// Why a header or a row is refused: the column (when one is to blame) and
/// the message. The line is added by the reader, which knows it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CellError {
    pub column: Option<&'static str>,
    pub message: String,
}

impl CellError {
    fn new(column: &'static str, message: impl Into<String>) -> Self {
        Self {
            column: Some(column),
            message: message.into(),
        }
    }

    fn row(message: impl Into<String>) -> Self {
        Self {
            column: None,
            message: message.into(),
        }
    }
}

/// One valid row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row<'a> {
    pub model: &'a ModelId,
    pub successes: u64,
    pub failures: u64,
    /// The row's own `id`, when its cell is not empty.
    pub id: Option<&'a str>,
    pub observed_at: Option<DateTime<Utc>>,
}

/// How the outcome is given: one column, or binomial counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Outcome(usize),
    Counts { successes: usize, trials: usize },
}

/// Where each column is, read from the header row.
#[derive(Debug, Clone)]
pub struct Columns {
    fields: usize,
    model: Option<usize>,
    shape: Shape,
    id: Option<usize>,
    observed_at: Option<usize>,
    /// `?model=`: the model of the rows that name none.
    default_model: Option<ModelId>,
    /// The last model parsed and its cell: files hold long runs of one
    /// model, and this spares parsing (and allocating) it on every row.
    last_model: Option<(Vec<u8>, ModelId)>,
}

const KNOWN: &str = "model, outcome, successes, trials, id, observed_at";

impl Columns {
    /// Reads the header row. `default_model` is `?model=`, which makes the
    /// `model` column optional.
    pub fn from_header(
        header: &ByteRecord,
        default_model: Option<ModelId>,
    ) -> Result<Self, CellError> {
        let (mut model, mut outcome, mut successes, mut trials, mut id, mut observed_at) =
            (None, None, None, None, None, None);
        for (index, name) in header.iter().enumerate() {
            let name = std::str::from_utf8(name)
                .map_err(|_| CellError::row("the header row is not valid UTF-8"))?
                .trim()
                .to_ascii_lowercase();
            let slot = match name.as_str() {
                "model" => &mut model,
                "outcome" => &mut outcome,
                "successes" => &mut successes,
                "trials" => &mut trials,
                "id" => &mut id,
                "observed_at" => &mut observed_at,
                other => {
                    return Err(CellError::row(format!(
                        "unknown column {:?} in the header row: expected {KNOWN}",
                        truncate(other)
                    )))
                }
            };
            if slot.replace(index).is_some() {
                return Err(CellError::row(format!(
                    "column {name:?} appears twice in the header row"
                )));
            }
        }
        let shape = match (outcome, successes, trials) {
            (Some(outcome), None, None) => Shape::Outcome(outcome),
            (None, Some(successes), Some(trials)) => Shape::Counts { successes, trials },
            _ => {
                return Err(CellError::row(
                    "the header row needs either an `outcome` column or `successes` and `trials` columns",
                ))
            }
        };
        if model.is_none() && default_model.is_none() {
            return Err(CellError::row(
                "the header row has no `model` column: add one, or name the model with ?model=",
            ));
        }
        Ok(Self {
            fields: header.len(),
            model,
            shape,
            id,
            observed_at,
            default_model,
            last_model: None,
        })
    }

    /// Validates one data row.
    pub fn parse_row<'a>(&'a mut self, record: &'a ByteRecord) -> Result<Row<'a>, CellError> {
        if record.len() != self.fields {
            return Err(CellError::row(format!(
                "{} fields where the header has {}",
                record.len(),
                self.fields
            )));
        }
        let cell = |index: usize, column: &'static str| -> Result<&'a str, CellError> {
            let bytes = record.get(index).unwrap_or_default();
            std::str::from_utf8(bytes)
                .map(str::trim)
                .map_err(|_| CellError::new(column, "not valid UTF-8"))
        };
        let model_cell = match self.model {
            Some(index) => cell(index, "model")?,
            None => "",
        };
        let (successes, failures) = match self.shape {
            Shape::Outcome(index) => outcome_counts(cell(index, "outcome")?)?,
            Shape::Counts { successes, trials } => {
                let successes = count(cell(successes, "successes")?, "successes")?;
                let trials = count(cell(trials, "trials")?, "trials")?;
                if trials > MAX_TRIALS_PER_RECORD {
                    return Err(CellError::new(
                        "trials",
                        WireError::TooManyTrials { trials }.to_string(),
                    ));
                }
                if trials == 0 {
                    return Err(CellError::new("trials", WireError::NoTrials.to_string()));
                }
                if successes > trials {
                    return Err(CellError::new(
                        "successes",
                        WireError::SuccessesExceedTrials { successes, trials }.to_string(),
                    ));
                }
                (successes, trials - successes)
            }
        };
        let id = match self.id {
            Some(index) => match cell(index, "id")? {
                "" => None,
                id => {
                    check_id(id)
                        .map_err(|e| CellError::new("id", WireError::BadId(e).to_string()))?;
                    // The upload's own ids, `<upload>:<line>`, are kept apart
                    // by the consumer; a row may not take one.
                    if upload_line_id(id).is_some() {
                        return Err(CellError::new(
                            "id",
                            "has the form of an upload's line id (20 hex digits, optionally `-n`, then `:` and a line number); choose another",
                        ));
                    }
                    Some(id)
                }
            },
            None => None,
        };
        let observed_at = match self.observed_at {
            Some(index) => match cell(index, "observed_at")? {
                "" => None,
                text => Some(
                    DateTime::parse_from_rfc3339(text)
                        .map_err(|e| {
                            CellError::new(
                                "observed_at",
                                format!("{:?} is not an RFC 3339 time: {e}", truncate(text)),
                            )
                        })?
                        .with_timezone(&Utc),
                ),
            },
            None => None,
        };
        let model = self.model(model_cell)?;
        Ok(Row {
            model,
            successes,
            failures,
            id,
            observed_at,
        })
    }

    fn model(&mut self, cell: &str) -> Result<&ModelId, CellError> {
        if cell.is_empty() {
            return self
                .default_model
                .as_ref()
                .ok_or_else(|| CellError::new("model", "empty: name the model, or use ?model="));
        }
        let cached = matches!(&self.last_model, Some((bytes, _)) if bytes == cell.as_bytes());
        if !cached {
            let model = ModelId::parse(cell)
                .map_err(|e| CellError::new("model", WireError::from(e).to_string()))?;
            self.last_model = Some((cell.as_bytes().to_vec(), model));
        }
        match &self.last_model {
            Some((_, model)) => Ok(model),
            None => Err(CellError::new("model", "unreadable")),
        }
    }
}

fn outcome_counts(cell: &str) -> Result<(u64, u64), CellError> {
    // Nearly every row holds one outcome: decided without allocating.
    match single_outcome(cell) {
        Some(true) => Ok((1, 0)),
        Some(false) => Ok((0, 1)),
        None => {
            // Runs and separated tokens, by the wire parser itself; the
            // model does not matter here.
            let placeholder = ModelId::parse("m").map_err(|e| CellError::row(e.to_string()))?;
            parse_text(cell, placeholder)
                .map(|observation| (observation.successes, observation.failures))
                .map_err(|e| CellError::new("outcome", e.to_string()))
        }
    }
}

fn count(cell: &str, column: &'static str) -> Result<u64, CellError> {
    cell.parse::<u64>().map_err(|_| {
        CellError::new(
            column,
            format!("{:?} is not a whole number >= 0", truncate(cell)),
        )
    })
}

/// At most [`domain::observation::MAX_QUOTED_CHARS`] characters of `text`.
fn truncate(text: &str) -> String {
    const MAX: usize = domain::observation::MAX_QUOTED_CHARS;
    match text.char_indices().nth(MAX) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(fields: &[&str], model: Option<&str>) -> Result<Columns, CellError> {
        Columns::from_header(
            &ByteRecord::from(fields.to_vec()),
            model.map(|m| ModelId::parse(m).unwrap_or_else(|_| unreachable!())),
        )
    }

    fn row(columns: &mut Columns, cells: &[&str]) -> Result<(String, u64, u64), CellError> {
        let record = ByteRecord::from(cells.to_vec());
        columns
            .parse_row(&record)
            .map(|row| (row.model.to_string(), row.successes, row.failures))
    }

    #[test]
    fn every_outcome_form_of_the_wire_parser_is_a_row() {
        let Ok(mut columns) = header(&["model", "outcome"], None) else {
            panic!("valid header")
        };
        let cases = [
            ("w", (1, 0)),
            ("L", (0, 1)),
            ("1", (1, 0)),
            ("failure", (0, 1)),
            ("WLWWWLWLW", (6, 3)),
            ("w l w", (2, 1)),
        ];
        for (cell, (s, f)) in cases {
            assert_eq!(
                row(&mut columns, &["globe", cell]),
                Ok(("globe".into(), s, f)),
                "{cell}"
            );
        }
        let error = row(&mut columns, &["globe", "banana"]).err();
        assert_eq!(error.and_then(|e| e.column), Some("outcome"));
    }

    #[test]
    fn counts_are_checked_as_the_wire_parser_checks_them() {
        let Ok(mut columns) = header(&["Trials", " successes "], Some("coin")) else {
            panic!("valid header")
        };
        assert_eq!(row(&mut columns, &["9", "6"]), Ok(("coin".into(), 6, 3)));
        let too_many = row(&mut columns, &["9", "10"]).err();
        assert_eq!(
            too_many.map(|e| e.message),
            Some("successes (10) exceed trials (9)".into())
        );
        let negative = row(&mut columns, &["-1", "0"]).err();
        assert_eq!(negative.and_then(|e| e.column), Some("trials"));
    }

    #[test]
    fn a_header_without_a_model_needs_the_query_parameter() {
        assert!(header(&["outcome"], None).is_err());
        assert!(header(&["outcome"], Some("globe")).is_ok());
        assert!(header(&["model", "outcome", "trials"], None).is_err());
        assert!(header(&["model", "outcom"], None).is_err());
        assert!(header(&["model", "outcome", "model"], None).is_err());
    }

    #[test]
    fn ids_postgres_or_the_consumer_could_not_keep_apart_are_refused() {
        let Ok(mut columns) = header(&["model", "outcome", "id"], None) else {
            panic!("valid header")
        };
        for id in ["a\0b", "tab\there", "9f86d081884c7d659a2f:3"] {
            let error = row(&mut columns, &["globe", "w", id]).err();
            assert_eq!(error.and_then(|e| e.column), Some("id"), "{id:?}");
        }
        assert!(row(&mut columns, &["globe", "w", "order:17"]).is_ok());
        let Ok(mut counts) = header(&["model", "successes", "trials"], None) else {
            panic!("valid header")
        };
        let error = row(&mut counts, &["globe", "0", "0"]).err();
        assert_eq!(error.and_then(|e| e.column), Some("trials"));
    }

    #[test]
    fn ids_longer_than_the_domain_allows_are_refused() {
        let Ok(mut columns) = header(&["model", "outcome", "id"], None) else {
            panic!("valid header")
        };
        let long = "x".repeat(domain::observation::MAX_ID_LEN + 1);
        let error = row(&mut columns, &["globe", "w", &long]).err();
        assert_eq!(error.and_then(|e| e.column), Some("id"));
        let fits = "x".repeat(domain::observation::MAX_ID_LEN);
        assert!(row(&mut columns, &["globe", "w", &fits]).is_ok());
    }
}
