//! The wire format's tests: every accepted form, every refusal and its
//! words, and the canonical form parsing back to the same observation.

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
    for (record, expected) in [
        (r#"{"model":"globe","outcome":"w"}"#, ("globe", 1, 0)),
        (r#"{"model":"m1","outcome":"FAILURE"}"#, ("m1", 0, 1)),
        (r#"{"model":"globe","outcome":true}"#, ("globe", 1, 0)),
        (r#"{"model":"globe","outcome":0}"#, ("globe", 0, 1)),
        (r#"{"model":"globe","outcomes":"wlw"}"#, ("globe", 2, 1)),
        (
            r#"{"model":"globe","successes":6,"trials":9}"#,
            ("globe", 6, 3),
        ),
    ] {
        check(None, record, Ok(expected));
    }
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
fn a_client_id_is_checked_where_the_record_is_parsed() {
    check(None, r#"{"outcome":"w","id":"a\u0000b"}"#, Err("U+0000"));
    check(
        None,
        r#"{"outcome":"w","id":"\ud800"}"#,
        Err("invalid JSON"),
    );
}

#[test]
fn id_and_observed_at_are_kept() {
    let value =
        r#"{"model":"globe","outcome":"w","id":"abc-1","observed_at":"2024-05-01T12:00:00+02:00"}"#;
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
