//! Short error messages: how much of a client's input an error may quote,
//! and the cutting of quotes (ours and serde's) to that.

/// The most characters of the offending input an error message quotes. A
/// record may be a megabyte long, and its error message travels in a
/// dead-letter header and in HTTP answers: it must say what is wrong, not
/// repeat the input.
pub const MAX_QUOTED_CHARS: usize = 40;
/// The longest error message, in characters: a second guard after
/// [`MAX_QUOTED_CHARS`], for messages that quote many parts of the input.
pub const MAX_ERROR_CHARS: usize = 200;

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
pub(super) fn shorten_quotes(message: &str) -> String {
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
}
