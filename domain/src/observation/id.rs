//! Observation ids: what a client's id may hold, and the form of the ids
//! the producer writes for an upload's rows (`<upload>:<line>`), which
//! clients may not send.

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
