//! The wire format at its edges, as a hostile client would probe it: any
//! bytes, any string as an id or a model id (NUL, control characters, lone
//! surrogates written as JSON escapes, lengths around the limits), repeated
//! keys. The parser never panics, accepts exactly what the rules say, and
//! what it accepts is what Postgres and the dead-letter headers can hold.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use domain::observation::{check_id, parse_record, MAX_ID_LEN};
use domain::ModelId;
use proptest::prelude::*;

fn globe() -> ModelId {
    ModelId::parse("globe").unwrap()
}

/// Any character, with the ones that have broken pipelines overrepresented.
fn hostile_char() -> impl Strategy<Value = char> {
    prop_oneof![
        3 => any::<char>(),
        1 => prop_oneof![
            Just('\0'),
            Just('\u{1}'),
            Just('\t'),
            Just('\u{7f}'),
            Just('\u{85}'),
            Just('\u{9f}'),
            Just('\u{a0}'),
            Just('\u{2028}'),
            Just('\u{feff}'),
            Just('\u{fffe}'),
            Just('\u{10ffff}'),
            Just(' '),
            Just('"'),
            Just('\\'),
        ],
        3 => prop_oneof![Just('a'), Just('z'), Just('0'), Just('-'), Just('.'), Just('_')],
    ]
}

/// Strings short and long, up to past each limit.
fn hostile_string() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::collection::vec(hostile_char(), 0..6),
        proptest::collection::vec(hostile_char(), 60..70),
        proptest::collection::vec(hostile_char(), 155..165),
    ]
    .prop_map(|chars| chars.into_iter().collect())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn any_bytes_parse_or_are_refused_with_a_short_message(
        key in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..80)),
        value in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        if let Err(err) = parse_record(key.as_deref(), &value, &globe()) {
            let message = err.to_string();
            prop_assert!(!message.is_empty());
            prop_assert!(message.chars().count() <= domain::observation::MAX_ERROR_CHARS);
        }
    }

    #[test]
    fn an_id_is_accepted_exactly_when_it_holds_no_control_character_and_fits(id in hostile_string()) {
        let body = serde_json::json!({"outcome": "w", "id": id}).to_string();
        let parsed = parse_record(None, body.as_bytes(), &globe());
        let fits = !id.is_empty() && id.chars().count() <= MAX_ID_LEN;
        let clean = !id.chars().any(char::is_control);
        prop_assert_eq!(parsed.is_ok(), fits && clean, "{:?}: {:?}", id, parsed);
        prop_assert_eq!(check_id(&id).is_ok(), fits && clean);
        if let Ok(observation) = parsed {
            // What is accepted has no NUL, so Postgres text can hold it.
            prop_assert!(!observation.id.as_deref().unwrap_or_default().contains('\0'));
            prop_assert_eq!(observation.id.as_deref(), Some(id.as_str()));
        }
    }

    #[test]
    fn a_model_id_is_taken_as_it_is_in_the_key_and_in_the_body(model in hostile_string()) {
        let valid = ModelId::parse(model.clone()).is_ok();
        let by_key = parse_record(Some(model.as_bytes()), b"w", &globe());
        let body = serde_json::json!({"model": model, "outcome": "w"}).to_string();
        let by_body = parse_record(None, body.as_bytes(), &globe());
        // Empty key means "no key": the default model.
        if !model.is_empty() {
            prop_assert_eq!(by_key.is_ok(), valid, "{:?}", model);
        }
        prop_assert_eq!(by_body.is_ok(), valid, "{:?}", model);
        for observation in [by_key, by_body].into_iter().flatten() {
            if !model.is_empty() {
                prop_assert_eq!(observation.model.as_str(), model.as_str());
            }
        }
    }
}

#[test]
fn lone_surrogates_written_as_escapes_are_refused_wherever_they_are() {
    for body in [
        r#"{"outcome":"w","id":"\ud800"}"#,
        r#"{"outcome":"w","id":"a\udfffb"}"#,
        r#"{"model":"\ud83d","outcome":"w"}"#,
        r#"{"outcomes":"\udc00"}"#,
    ] {
        let err = parse_record(None, body.as_bytes(), &globe()).unwrap_err();
        let message = err.to_string();
        // serde_json says "lone leading surrogate" or "unexpected end of
        // hex escape", by what follows the escape.
        assert!(
            message.starts_with("invalid JSON")
                && (message.contains("surrogate") || message.contains("hex escape")),
            "{body}: {err}"
        );
    }
    // A pair is one character, and fine in an id.
    let ok = parse_record(None, br#"{"outcome":"w","id":"\ud83d\ude00"}"#, &globe()).unwrap();
    assert_eq!(ok.id.as_deref(), Some("\u{1f600}"));
}

#[test]
fn model_ids_of_64_characters_are_taken_and_of_65_refused() {
    let at_limit = "m".repeat(64);
    let past = "m".repeat(65);
    assert!(parse_record(Some(at_limit.as_bytes()), b"w", &globe()).is_ok());
    let err = parse_record(Some(past.as_bytes()), b"w", &globe()).unwrap_err();
    assert!(err.to_string().contains("65 characters"), "{err}");
}
