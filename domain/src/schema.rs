//! OpenAPI schemas of the wire types whose rules a derive cannot state: the
//! observation body (exactly one of three shapes, each field's pattern and
//! range) and the text form of outcomes. They are what a schema-driven
//! fuzzer generates from, so they say exactly what the parser accepts.
//!
//! The one rule no JSON Schema can state is that `successes` may not exceed
//! `trials`; the schema says so in words.

use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, KnownFormat, ObjectBuilder, OneOfBuilder, Schema,
    SchemaFormat, SchemaType, Type,
};
use utoipa::openapi::RefOr;

use crate::model_id::MAX_LEN;
use crate::observation::{ObservationBody, MAX_ID_LEN, MAX_TRIALS_PER_RECORD};

/// A model id (`ModelId::parse`): 1 to 64 of `[a-z0-9_.-]`, starting with a
/// letter or digit.
pub const MODEL_ID_PATTERN: &str = "^[a-z0-9][a-z0-9_.-]{0,63}$";

/// An observation's id (`observation::check_id`): no control character.
/// Written with `\u` escapes, which every JSON Schema dialect's regular
/// expressions read the same way.
pub const ID_PATTERN: &str = "^[^\\u0000-\\u001F\\u007F-\\u009F]+$";

/// What `str::trim` and `char::is_whitespace` call white space (Unicode's
/// White_Space), spelled out: `\s` means slightly different sets in
/// different regex dialects.
const SPACE: &str =
    "\\t\\n\\x0B\\x0C\\r \\x85\\xA0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000";

/// One outcome word, in any case.
const WORD: &str = "[wWlL10]|[sS][uU][cC][cC][eE][sS][sS]|[fF][aA][iI][lL][uU][rR][eE]";

/// One outcome as a JSON string: a word, with white space around it allowed.
pub fn outcome_token_pattern() -> String {
    format!("^[{SPACE}]*(?:{WORD})[{SPACE}]*$")
}

/// Outcomes as text (a `text/plain` body, a run in `outcomes`): at least one
/// token, tokens separated by white space or commas, each a word or a run of
/// w/l letters.
pub fn outcomes_text_pattern() -> String {
    let token = format!("(?:[wWlL]+|{WORD})");
    format!("^[{SPACE},]*{token}(?:[{SPACE},]+{token})*[{SPACE},]*$")
}

/// The text form of outcomes, as a schema.
pub fn outcomes_text() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(outcomes_text_pattern()))
}

fn nullable(kind: Type) -> SchemaType {
    SchemaType::from_iter([kind, Type::Null])
}

fn absent() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::Null)
}

fn count(description: &str, minimum: u64) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
        .minimum(Some(minimum))
        .maximum(Some(MAX_TRIALS_PER_RECORD))
        .description(Some(description))
}

/// One of the three shapes: the fields every shape has, plus `own` (present
/// and not null), with the other shapes' fields absent or null.
fn shape(title: &str, own: Vec<(&str, RefOr<Schema>)>, others: &[&str]) -> Schema {
    let mut object = ObjectBuilder::new()
        .title(Some(title))
        .schema_type(Type::Object)
        .additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(false)))
        .property(
            "model",
            ObjectBuilder::new()
                .schema_type(nullable(Type::String))
                .pattern(Some(MODEL_ID_PATTERN))
                .max_length(Some(MAX_LEN))
                .description(Some("Model id; the default model when absent."))
                .examples([serde_json::json!("globe")]),
        )
        .property(
            "id",
            ObjectBuilder::new()
                .schema_type(nullable(Type::String))
                .min_length(Some(1))
                .max_length(Some(MAX_ID_LEN))
                .pattern(Some(ID_PATTERN))
                .description(Some(
                    "The client's idempotency key: no control characters, and not of the form \
                     of an upload's line ids (20 hex digits, optionally `-n`, then `:` and a \
                     line number), which the producer refuses.",
                )),
        )
        .property(
            "observed_at",
            ObjectBuilder::new()
                .schema_type(nullable(Type::String))
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
                .description(Some("When the outcomes were observed (RFC 3339).")),
        );
    for (name, schema) in own {
        object = object.property(name, schema).required(name);
    }
    for name in others {
        object = object.property(*name, absent());
    }
    object.into()
}

impl utoipa::PartialSchema for ObservationBody {
    fn schema() -> RefOr<Schema> {
        let outcome = OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(outcome_token_pattern())),
            )
            .item(ObjectBuilder::new().schema_type(Type::Boolean))
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .enum_values(Some([0, 1])),
            )
            .description(Some(
                "One outcome: `w`/`l`, `1`/`0`, `success`/`failure` (any case), a boolean, or 1/0.",
            ));
        let one = shape(
            "one outcome",
            vec![("outcome", outcome.into())],
            &["outcomes", "successes", "trials"],
        );
        let run = shape(
            "a run",
            vec![(
                "outcomes",
                outcomes_text()
                    .description(Some("A run of outcomes such as `WLWWWLWLW`."))
                    .into(),
            )],
            &["outcome", "successes", "trials"],
        );
        let counts = shape(
            "binomial counts",
            vec![
                (
                    "successes",
                    count("Successes among `trials`: at most `trials`.", 0).into(),
                ),
                (
                    "trials",
                    count("Trials in this record: at least 1.", 1).into(),
                ),
            ],
            &["outcome", "outcomes"],
        );
        OneOfBuilder::new()
            .item(one)
            .item(run)
            .item(counts)
            .description(Some(
                "One observation: exactly one of `outcome`, `outcomes`, or `successes` with \
                 `trials` (successes at most trials, trials from 1 to 1000000).",
            ))
            .into()
    }
}

impl utoipa::ToSchema for ObservationBody {
    fn name() -> std::borrow::Cow<'static, str> {
        "ObservationBody".into()
    }
}

/// A batch: 1 to `max` observations.
pub fn observation_batch(max: usize) -> ArrayBuilder {
    ArrayBuilder::new()
        .items(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
            "ObservationBody",
        )))
        .min_items(Some(1))
        .max_items(Some(max))
}
