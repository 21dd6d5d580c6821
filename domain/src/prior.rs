//! Priors over the success probability `p`, valid by construction.
//!
//! The serde form is stored in Postgres (`models.prior`) and sent over HTTP, so
//! it is part of the public contract:
//!
//! ```json
//! {"type": "uniform"}
//! {"type": "beta", "a": 2.0, "b": 2.0}
//! {"type": "step", "lower": 0.5, "upper": 1.0}
//! {"type": "grid", "weights": [0.0, 1.0, 3.0, 1.0]}
//! ```
//!
//! Deserialising goes through [`Prior::validate`], so an invalid prior cannot
//! be read from a request body or from the database.

use serde::{Deserialize, Serialize};

/// The most weights a `grid` prior may have.
pub const MAX_GRID_WEIGHTS: usize = 100_000;

/// A prior density over `p` in [0, 1], known up to a constant.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", try_from = "PriorRepr")]
pub enum Prior {
    /// Flat on [0, 1]: Beta(1, 1).
    #[default]
    Uniform,
    /// Beta(a, b), a > 0 and b > 0.
    Beta { a: f64, b: f64 },
    /// Flat on [lower, upper], zero elsewhere (Statistical Rethinking's step prior).
    Step { lower: f64, upper: f64 },
    /// Non-negative weights at evenly spaced points 0, 1/(K-1), ..., 1,
    /// linearly interpolated in between.
    Grid { weights: Vec<f64> },
}

/// The unchecked serde mirror of [`Prior`].
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum PriorRepr {
    Uniform,
    Beta { a: f64, b: f64 },
    Step { lower: f64, upper: f64 },
    Grid { weights: Vec<f64> },
}

/// Why a prior is invalid; the message is shown to clients as is.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PriorError {
    #[error("beta prior needs finite a > 0 and b > 0, got a = {a}, b = {b}")]
    BetaParameters { a: f64, b: f64 },
    #[error("step prior needs 0 <= lower < upper <= 1, got lower = {lower}, upper = {upper}")]
    StepBounds { lower: f64, upper: f64 },
    #[error("grid prior needs between 2 and {MAX_GRID_WEIGHTS} weights, got {len}")]
    GridLength { len: usize },
    #[error("grid prior weights must be finite and non-negative; weight {index} is {value}")]
    GridWeight { index: usize, value: f64 },
    #[error("grid prior weights are all zero")]
    GridAllZero,
}

impl TryFrom<PriorRepr> for Prior {
    type Error = PriorError;

    fn try_from(repr: PriorRepr) -> Result<Self, Self::Error> {
        let prior = match repr {
            PriorRepr::Uniform => Prior::Uniform,
            PriorRepr::Beta { a, b } => Prior::Beta { a, b },
            PriorRepr::Step { lower, upper } => Prior::Step { lower, upper },
            PriorRepr::Grid { weights } => Prior::Grid { weights },
        };
        prior.validate()
    }
}

impl Prior {
    /// Returns the prior if it is valid, or says what is wrong with it.
    pub fn validate(self) -> Result<Self, PriorError> {
        match &self {
            Prior::Uniform => {}
            Prior::Beta { a, b } => {
                let ok = |x: f64| x.is_finite() && x > 0.0;
                if !(ok(*a) && ok(*b)) {
                    return Err(PriorError::BetaParameters { a: *a, b: *b });
                }
            }
            Prior::Step { lower, upper } => {
                let ok = lower.is_finite()
                    && upper.is_finite()
                    && 0.0 <= *lower
                    && lower < upper
                    && *upper <= 1.0;
                if !ok {
                    return Err(PriorError::StepBounds {
                        lower: *lower,
                        upper: *upper,
                    });
                }
            }
            Prior::Grid { weights } => {
                if !(2..=MAX_GRID_WEIGHTS).contains(&weights.len()) {
                    return Err(PriorError::GridLength { len: weights.len() });
                }
                if let Some((index, &value)) = weights
                    .iter()
                    .enumerate()
                    .find(|(_, w)| !(w.is_finite() && **w >= 0.0))
                {
                    return Err(PriorError::GridWeight { index, value });
                }
                if weights.iter().all(|w| *w == 0.0) {
                    return Err(PriorError::GridAllZero);
                }
            }
        }
        Ok(self)
    }

    /// A short human label, for plot titles and logs.
    pub fn label(&self) -> String {
        match self {
            Prior::Uniform => "uniform".to_owned(),
            Prior::Beta { a, b } => format!("Beta({a}, {b})"),
            Prior::Step { lower, upper } => format!("step [{lower}, {upper}]"),
            Prior::Grid { weights } => format!("grid of {} weights", weights.len()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(json: &str, expected: Result<Prior, &str>) {
        let got = serde_json::from_str::<Prior>(json);
        match (got, expected) {
            (Ok(got), Ok(want)) => {
                assert_eq!(got, want);
                // The stored form reads back as the same prior.
                let back: Prior =
                    serde_json::from_str(&serde_json::to_string(&got).unwrap()).unwrap();
                assert_eq!(back, want);
            }
            (Err(err), Err(fragment)) => assert!(
                err.to_string().contains(fragment),
                "{err} lacks {fragment:?}"
            ),
            (got, want) => panic!("{json}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn valid_priors_round_trip() {
        check(r#"{"type":"uniform"}"#, Ok(Prior::Uniform));
        check(
            r#"{"type":"beta","a":2,"b":0.5}"#,
            Ok(Prior::Beta { a: 2.0, b: 0.5 }),
        );
        check(
            r#"{"type":"step","lower":0.5,"upper":1}"#,
            Ok(Prior::Step {
                lower: 0.5,
                upper: 1.0,
            }),
        );
        check(
            r#"{"type":"step","lower":0,"upper":0.25}"#,
            Ok(Prior::Step {
                lower: 0.0,
                upper: 0.25,
            }),
        );
        check(
            r#"{"type":"grid","weights":[0,1,0]}"#,
            Ok(Prior::Grid {
                weights: vec![0.0, 1.0, 0.0],
            }),
        );
    }

    #[test]
    fn invalid_priors_are_rejected_with_a_reason() {
        check(
            r#"{"type":"beta","a":0,"b":1}"#,
            Err("finite a > 0 and b > 0"),
        );
        check(
            r#"{"type":"beta","a":1,"b":-2}"#,
            Err("finite a > 0 and b > 0"),
        );
        check(
            r#"{"type":"step","lower":0.5,"upper":0.5}"#,
            Err("0 <= lower < upper <= 1"),
        );
        check(
            r#"{"type":"step","lower":-0.1,"upper":0.5}"#,
            Err("0 <= lower < upper <= 1"),
        );
        check(
            r#"{"type":"step","lower":0.1,"upper":1.5}"#,
            Err("0 <= lower < upper <= 1"),
        );
        check(r#"{"type":"grid","weights":[1]}"#, Err("between 2 and"));
        check(r#"{"type":"grid","weights":[1,-1]}"#, Err("weight 1 is -1"));
        check(r#"{"type":"grid","weights":[0,0,0]}"#, Err("all zero"));
        check(r#"{"type":"cauchy"}"#, Err("unknown variant"));
        check(r#"{"type":"beta","a":1,"b":1,"c":1}"#, Err("unknown field"));
    }

    #[test]
    fn non_finite_values_are_rejected_when_built_in_code() {
        assert!(Prior::Beta {
            a: f64::NAN,
            b: 1.0
        }
        .validate()
        .is_err());
        assert!(Prior::Beta {
            a: f64::INFINITY,
            b: 1.0
        }
        .validate()
        .is_err());
        assert!(Prior::Grid {
            weights: vec![1.0, f64::NAN]
        }
        .validate()
        .is_err());
        assert!(Prior::Step {
            lower: f64::NAN,
            upper: 1.0
        }
        .validate()
        .is_err());
    }
}
