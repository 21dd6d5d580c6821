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

use crate::number::Shown;

/// The most weights a `grid` prior may have.
pub const MAX_GRID_WEIGHTS: usize = 100_000;

/// The smallest and largest `a` and `b` of a beta prior: the engine answers
/// for every prior between them (outside, the prior's mass sits closer to 0
/// or 1 than a double can resolve).
pub const BETA_RANGE: std::ops::RangeInclusive<f64> = 1e-6..=1e6;

/// The smallest bound of a step prior other than 0. The engine works in
/// logit space, which it ends at ±700: p = e^-700 ≈ 1e-304 is as close to 0
/// as it resolves, so a step ending below that would hold no point of it
/// (a step on [0, 5e-324] is a posterior the engine cannot form).
pub const MIN_STEP_BOUND: f64 = 1e-300;

/// The narrowest step prior, as a share of its distance from the nearer of
/// 0 and 1 (`min(upper, 1 - lower)`): in logit space, where the engine
/// integrates, such a step is at least ~1e-9 wide, thousands of the
/// doubles there, so its quadrature has cells to place. A narrower one
/// would fall between two logits (a step one double wide at 0.3 does).
pub const MIN_STEP_WIDTH: f64 = 1e-9;

/// A prior density over `p` in [0, 1], known up to a constant.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", try_from = "PriorRepr")]
pub enum Prior {
    /// Flat on [0, 1]: Beta(1, 1).
    #[default]
    Uniform,
    /// Beta(a, b), 1e-6 <= a, b <= 1e6.
    Beta { a: f64, b: f64 },
    /// Flat on [lower, upper], zero elsewhere (Statistical Rethinking's step prior).
    Step { lower: f64, upper: f64 },
    /// Non-negative weights at evenly spaced points 0, 1/(K-1), ..., 1,
    /// linearly interpolated in between.
    Grid { weights: Vec<f64> },
}

/// The unchecked serde mirror of [`Prior`], and its OpenAPI schema: every
/// range a JSON Schema can state. The rules it cannot are in the variants'
/// descriptions: a step's `lower < upper`, its bounds and its width, and a
/// grid's weights not all zero, none negligible beside the largest.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum PriorRepr {
    /// Flat on [0, 1]: Beta(1, 1). A struct variant, so that serde refuses
    /// other fields here too.
    Uniform {},
    /// Beta(a, b).
    Beta {
        #[schema(minimum = 0.000001, maximum = 1000000)]
        a: f64,
        #[schema(minimum = 0.000001, maximum = 1000000)]
        b: f64,
    },
    /// Flat on [lower, upper], zero elsewhere (Statistical Rethinking's step
    /// prior); `lower < upper`, each bound 0 or at least 1e-300, and at
    /// least 1e-9 of its distance from the nearer of 0 and 1 wide.
    Step {
        #[schema(minimum = 0, maximum = 1)]
        lower: f64,
        #[schema(minimum = 0, maximum = 1)]
        upper: f64,
    },
    /// Non-negative weights at evenly spaced points 0, 1/(K-1), ..., 1,
    /// linearly interpolated in between, at any scale (only their ratios
    /// matter); not all zero, and none other than 0 below 2.2e-308 times
    /// the largest.
    Grid {
        #[schema(value_type = Vec<GridWeight>, min_items = 2, max_items = 100000)]
        weights: Vec<f64>,
    },
}

impl utoipa::PartialSchema for Prior {
    /// [`PriorRepr`]'s schema, each variant closed to other fields as the
    /// parser is (the derive does not say so for enum variants).
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{AdditionalProperties, Schema};
        use utoipa::openapi::RefOr;
        let mut schema = <PriorRepr as utoipa::PartialSchema>::schema();
        if let RefOr::T(Schema::OneOf(one_of)) = &mut schema {
            for item in &mut one_of.items {
                if let RefOr::T(Schema::Object(object)) = item {
                    object.additional_properties =
                        Some(Box::new(AdditionalProperties::FreeForm(false)));
                }
            }
        }
        schema
    }
}

impl utoipa::ToSchema for Prior {
    fn name() -> std::borrow::Cow<'static, str> {
        "Prior".into()
    }

    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        schemas.push((
            <GridWeight as utoipa::ToSchema>::name().into(),
            <GridWeight as utoipa::PartialSchema>::schema(),
        ));
    }
}

/// One weight of a `grid` prior: finite and non-negative. Only a schema: the
/// weights are plain numbers, checked by [`Prior::validate`].
#[derive(Debug)]
pub struct GridWeight;

impl utoipa::PartialSchema for GridWeight {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::Number)
            .format(Some(utoipa::openapi::schema::SchemaFormat::KnownFormat(
                utoipa::openapi::schema::KnownFormat::Double,
            )))
            .minimum(Some(0))
            .into()
    }
}

impl utoipa::ToSchema for GridWeight {}

/// Why a prior is invalid; the message is shown to clients as is (numbers
/// as [`Shown`] writes them).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PriorError {
    #[error(
        "beta prior needs 1e-6 <= a <= 1e6 and 1e-6 <= b <= 1e6, got a = {}, b = {}",
        Shown(*.a),
        Shown(*.b)
    )]
    BetaParameters { a: f64, b: f64 },
    #[error(
        "step prior needs 0 <= lower < upper <= 1, got lower = {}, upper = {}",
        Shown(*.lower),
        Shown(*.upper)
    )]
    StepBounds { lower: f64, upper: f64 },
    #[error(
        "step prior bounds must be 0 or at least {} (closer to 0 the engine cannot \
         place them), got {which} = {}",
        Shown(MIN_STEP_BOUND),
        Shown(*.value)
    )]
    StepTooSmall { which: &'static str, value: f64 },
    #[error(
        "step prior must be at least {} of its distance from 0 or 1 wide (narrower, the \
         engine cannot resolve it), got lower = {}, upper = {}",
        Shown(MIN_STEP_WIDTH),
        Shown(*.lower),
        Shown(*.upper)
    )]
    StepTooNarrow { lower: f64, upper: f64 },
    #[error("grid prior needs between 2 and {MAX_GRID_WEIGHTS} weights, got {len}")]
    GridLength { len: usize },
    #[error(
        "grid prior weights must be finite and non-negative; weight {index} is {}",
        Shown(*.value)
    )]
    GridWeight { index: usize, value: f64 },
    #[error("grid prior weights are all zero")]
    GridAllZero,
    #[error(
        "grid prior weight {index} is {}, less than {} times the largest weight ({}): \
         a double cannot hold it relative to the largest; make it 0 or larger",
        Shown(*.value),
        Shown(f64::MIN_POSITIVE),
        Shown(*.max)
    )]
    GridRange { index: usize, value: f64, max: f64 },
}

impl TryFrom<PriorRepr> for Prior {
    type Error = PriorError;

    fn try_from(repr: PriorRepr) -> Result<Self, Self::Error> {
        let prior = match repr {
            PriorRepr::Uniform {} => Prior::Uniform,
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
                let ok = |x: f64| BETA_RANGE.contains(&x);
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
                for (which, value) in [("lower", *lower), ("upper", *upper)] {
                    if value != 0.0 && value < MIN_STEP_BOUND {
                        return Err(PriorError::StepTooSmall { which, value });
                    }
                }
                if upper - lower < MIN_STEP_WIDTH * upper.min(1.0 - lower) {
                    return Err(PriorError::StepTooNarrow {
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
                // The engine divides every weight by the largest (a grid
                // prior means the same at any scale), so each ratio must be
                // a normal double: below, it would lose its digits or
                // vanish, turning a region the prior allows into one it
                // excludes.
                let max = weights.iter().copied().fold(0.0, f64::max);
                if let Some((index, &value)) = weights
                    .iter()
                    .enumerate()
                    .find(|(_, w)| **w > 0.0 && !(**w / max).is_normal())
                {
                    return Err(PriorError::GridRange { index, value, max });
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
        check(r#"{"type":"beta","a":0,"b":1}"#, Err("1e-6 <= a <= 1e6"));
        check(r#"{"type":"beta","a":1,"b":-2}"#, Err("1e-6 <= a <= 1e6"));
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
        check(r#"{"type":"uniform","c":1}"#, Err("unknown field"));
    }

    #[test]
    fn steps_the_engine_cannot_place_are_refused_with_their_numbers() {
        // A bound below 1e-300 lies past the engine's logit range: the
        // posterior could not be formed, so every read of the model failed.
        check(
            r#"{"type":"step","lower":0,"upper":5e-324}"#,
            Err("must be 0 or at least 1e-300 (closer to 0 the engine cannot place them), got upper = 5e-324"),
        );
        check(
            r#"{"type":"step","lower":1e-310,"upper":0.5}"#,
            Err("got lower = 1e-310"),
        );
        // One double wide at 0.3: narrower than the logits there.
        check(
            r#"{"type":"step","lower":0.3,"upper":0.30000000000000004}"#,
            Err("at least 1e-9 of its distance from 0 or 1 wide"),
        );
        // What stays: tiny but placeable bounds, and narrow steps near 1.
        for json in [
            r#"{"type":"step","lower":0,"upper":1e-300}"#,
            r#"{"type":"step","lower":1e-300,"upper":2e-300}"#,
            r#"{"type":"step","lower":0.9999999999999998,"upper":0.9999999999999999}"#,
            r#"{"type":"step","lower":0.3,"upper":0.3000000003}"#,
        ] {
            assert!(serde_json::from_str::<Prior>(json).is_ok(), "{json}");
        }
    }

    #[test]
    fn grid_weights_are_relative_so_only_a_ratio_a_double_cannot_hold_is_refused() {
        // Subnormal and huge weights are fine: the engine divides by the largest.
        check(
            r#"{"type":"grid","weights":[5e-324,0,0]}"#,
            Ok(Prior::Grid {
                weights: vec![5e-324, 0.0, 0.0],
            }),
        );
        check(
            r#"{"type":"grid","weights":[1e308,1.7976931348623157e308]}"#,
            Ok(Prior::Grid {
                weights: vec![1e308, f64::MAX],
            }),
        );
        // 1e-300 next to 1e10: the ratio, 1e-310, is below every normal double.
        check(
            r#"{"type":"grid","weights":[1e10,1e-300]}"#,
            Err("grid prior weight 1 is 1e-300, less than 2.2250738585072014e-308 times the largest weight (10000000000)"),
        );
    }

    #[test]
    fn messages_show_numbers_as_the_double_holds_them() {
        let err =
            serde_json::from_str::<Prior>(r#"{"type":"beta","a":1e300,"b":18446744073709551616}"#)
                .unwrap_err()
                .to_string();
        assert!(
            err.contains("got a = 1e300, b = 1.8446744073709552e19"),
            "{err}"
        );
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
