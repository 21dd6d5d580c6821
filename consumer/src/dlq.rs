//! The dead-letter topic: poison records go there with their original key,
//! value and headers, plus `error`, `source-topic`, `source-partition` and
//! `source-offset`.
//!
//! A batch's poison records are produced and acknowledged *before* the batch
//! commits in Postgres, so a crash can never lose one. The price: a crash (or
//! a lost partition) between the acknowledgement and the commit dead-letters
//! those records again when the batch is replayed. The DLQ is therefore
//! at-least-once; `source-partition` and `source-offset` identify duplicates.
//!
//! Every record the broker accepted must fit into the dead-letter topic too,
//! or its partition would wait forever: the `error` header is cut to
//! [`MAX_ERROR_BYTES`], and a record that would not fit whole with our headers
//! (one near the broker's limit, a megabyte key) goes as a truncated copy
//! with `truncated: true`, `original-key-bytes` and `original-value-bytes`;
//! the source headers say where the whole record sits.

use std::borrow::Cow;
use std::time::Duration;

use futures::future::join_all;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::FutureRecord;

use crate::batch::Poison;
use crate::kafka::{DlqProducer, MESSAGE_MAX_BYTES};
use crate::metrics::DEAD_LETTERS_REFUSED;

/// How long one send may wait for room in librdkafka's queue.
const QUEUE_TIMEOUT: Duration = Duration::from_secs(5);

/// What librdkafka and the broker count around a record's key, value and
/// headers: at most 36 bytes of record framing, 61 of batch header.
/// Generous on purpose: a byte too many stalls a partition.
const FRAMING_BYTES: usize = 1_024;

/// The most bytes of key, value and headers one dead-letter record holds.
pub(crate) const MAX_RECORD_BYTES: usize = MESSAGE_MAX_BYTES - FRAMING_BYTES;

/// The longest `error` header, in bytes: the parser's message says what is
/// wrong in far fewer, and must never repeat the record.
pub(crate) const MAX_ERROR_BYTES: usize = 256;

/// A truncated copy keeps at least this much of a long key and of a long
/// value (when the record holds that much), so that both can be recognised.
const MIN_KEPT_BYTES: usize = 1_024;

/// Why a batch's poison records were not all acknowledged.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DlqError {
    #[error(
        "{failed} of {total} dead-letter records were not acknowledged; \
         the first is partition {partition} offset {offset}: {first}"
    )]
    NotAcknowledged {
        failed: usize,
        total: usize,
        partition: i32,
        offset: i64,
        first: KafkaError,
    },
}

impl DlqError {
    /// Whether retrying cannot help: the broker or librdkafka refuses the
    /// record itself (too large, an invalid record) or the topic (missing
    /// permission, an invalid name), rather than being unreachable.
    pub fn is_refused(&self) -> bool {
        let Self::NotAcknowledged { first, .. } = self;
        matches!(
            first.rdkafka_error_code(),
            Some(
                RDKafkaErrorCode::MessageSizeTooLarge
                    | RDKafkaErrorCode::MessageBatchTooLarge
                    | RDKafkaErrorCode::InvalidMessageSize
                    | RDKafkaErrorCode::InvalidRecord
                    | RDKafkaErrorCode::InvalidTopic
                    | RDKafkaErrorCode::TopicAuthorizationFailed
                    | RDKafkaErrorCode::PolicyViolation
            )
        )
    }
}

/// Judges a failed send for the retry loop: a refusal is logged as an error
/// and counted, since only a person can fix it (a topic's
/// `max.message.bytes` set too low, an ACL); the batch waits all the same,
/// because skipping would lose the record.
pub(crate) fn refused(err: &DlqError) -> Option<&'static str> {
    if !err.is_refused() {
        return None;
    }
    metrics::counter!(DEAD_LETTERS_REFUSED).increment(1);
    Some("the dead-letter topic refuses the record; the partition waits until the topic or its permissions are fixed")
}

/// Produces poison records to the dead-letter topic.
pub(crate) struct DeadLetters<'a> {
    pub producer: &'a DlqProducer,
    pub dlq_topic: &'a str,
    pub source_topic: &'a str,
}

impl DeadLetters<'_> {
    /// Sends all of them and waits until the broker acknowledged every one.
    pub async fn send(&self, partition: i32, poison: &[Poison]) -> Result<(), DlqError> {
        // A new client if the last one had a fatal error.
        let producer = self.producer.get();
        let sends = poison.iter().map(|p| {
            let letter = DeadLetter::of(p, self.source_topic, partition, MAX_RECORD_BYTES);
            let mut record: FutureRecord<'_, [u8], [u8]> =
                FutureRecord::to(self.dlq_topic).headers(letter.headers);
            if let Some(key) = letter.key {
                record = record.key(key);
            }
            if let Some(value) = letter.value {
                record = record.payload(value);
            }
            producer.send(record, QUEUE_TIMEOUT)
        });
        let results = join_all(sends).await;
        let total = results.len();
        let mut failures = results
            .into_iter()
            .zip(poison)
            .filter_map(|(result, p)| result.err().map(|(err, _)| (err, p.record.offset)));
        match failures.next() {
            None => Ok(()),
            Some((first, offset)) => Err(DlqError::NotAcknowledged {
                failed: 1 + failures.count(),
                total,
                partition,
                offset,
                first,
            }),
        }
    }
}

/// A poison record as it goes to the dead-letter topic: whole, or cut to fit.
#[derive(Debug)]
pub(crate) struct DeadLetter<'a> {
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    /// The record's own headers (unless a truncated copy had to drop them),
    /// then ours.
    pub headers: OwnedHeaders,
}

impl<'a> DeadLetter<'a> {
    /// The dead-letter copy of `poison`, whose key, value and headers take
    /// at most `limit` bytes as librdkafka counts them. When the whole record
    /// does not fit, what is kept, in order: our headers, the record's own
    /// headers (all or none), at least [`MIN_KEPT_BYTES`] of the key and of
    /// the value, then as much of the value as fits, then of the key.
    pub fn of(poison: &'a Poison, source_topic: &str, partition: i32, limit: usize) -> Self {
        let (key, value) = (poison.record.key.as_deref(), poison.record.value.as_deref());
        let (key_len, value_len) = (key.map_or(0, <[u8]>::len), value.map_or(0, <[u8]>::len));
        let own_headers = poison.record.headers.as_ref();
        let own_headers_len = own_headers.map_or(0, |headers| {
            headers
                .iter()
                .map(|h| header_bytes(h.key, h.value.unwrap_or_default()))
                .sum()
        });
        let ours = [
            (
                "error",
                cut_on_char(&poison.error, MAX_ERROR_BYTES).into_owned(),
            ),
            ("source-topic", source_topic.to_owned()),
            ("source-partition", partition.to_string()),
            ("source-offset", poison.record.offset.to_string()),
        ];
        let ours_len: usize = ours
            .iter()
            .map(|(k, v)| header_bytes(k, v.as_bytes()))
            .sum();
        if key_len + value_len + own_headers_len + ours_len <= limit {
            return Self {
                key,
                value,
                headers: with_headers(own_headers.cloned(), &ours),
            };
        }

        let own_header_count = own_headers.map_or(0, Headers::count);
        let truncation = [
            ("truncated", "true".to_owned()),
            ("original-key-bytes", key_len.to_string()),
            ("original-value-bytes", value_len.to_string()),
            ("original-headers-dropped", own_header_count.to_string()),
        ];
        // Counted whole even when the last one is left out: a few bytes of
        // slack are better than a second computation.
        let truncation_len: usize = truncation
            .iter()
            .map(|(k, v)| header_bytes(k, v.as_bytes()))
            .sum();
        let room = limit.saturating_sub(ours_len + truncation_len);
        let (key_floor, value_floor) = (key_len.min(MIN_KEPT_BYTES), value_len.min(MIN_KEPT_BYTES));
        let keep_own_headers = own_headers_len + key_floor + value_floor <= room;
        let room = if keep_own_headers {
            room - own_headers_len
        } else {
            room
        };
        // The value first (it is what the parser refused), but never all of
        // the room while the key is long.
        let key_kept = key_len
            .min(room.saturating_sub(value_len).max(key_floor))
            .min(room);
        let value_kept = value_len.min(room - key_kept);

        let mut extra: Vec<(&str, String)> = ours.into_iter().collect();
        let dropped = !keep_own_headers && own_header_count > 0;
        extra.extend(
            truncation
                .into_iter()
                .filter(|(k, _)| dropped || *k != "original-headers-dropped"),
        );
        let base = if keep_own_headers {
            own_headers.cloned()
        } else {
            None
        };
        Self {
            key: key.map(|k| &k[..key_kept]),
            value: value.map(|v| &v[..value_kept]),
            headers: with_headers(base, &extra),
        }
    }
}

/// `base` (or no headers) with `extra` appended.
fn with_headers(base: Option<OwnedHeaders>, extra: &[(&str, String)]) -> OwnedHeaders {
    extra.iter().fold(
        base.unwrap_or_else(|| OwnedHeaders::new_with_capacity(extra.len())),
        |headers, (key, value)| {
            headers.insert(Header {
                key,
                value: Some(value.as_str()),
            })
        },
    )
}

/// A header's size as librdkafka counts it against `message.max.bytes`: its
/// name and value and two length varints (at most 5 bytes each below 2^31).
fn header_bytes(name: &str, value: &[u8]) -> usize {
    name.len() + value.len() + 10
}

/// `text` in at most `max` bytes: cut on a character boundary, with an
/// ellipsis, when it is longer.
pub(crate) fn cut_on_char(text: &str, max: usize) -> Cow<'_, str> {
    const ELLIPSIS: &str = "…";
    if text.len() <= max {
        return Cow::Borrowed(text);
    }
    let mut end = max.saturating_sub(ELLIPSIS.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}{ELLIPSIS}", &text[..end]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::Record;

    fn poison(key: Option<Vec<u8>>, value: Option<Vec<u8>>, headers: &[(&str, &str)]) -> Poison {
        let headers = (!headers.is_empty()).then(|| {
            headers.iter().fold(OwnedHeaders::new(), |h, (k, v)| {
                h.insert(Header {
                    key: k,
                    value: Some(*v),
                })
            })
        });
        Poison {
            record: Record {
                offset: 42,
                key,
                value,
                headers,
            },
            error: "unknown outcome \"x\": expected w/l".to_owned(),
        }
    }

    /// The letter's headers as text, in order.
    fn headers(letter: &DeadLetter<'_>) -> Vec<(String, String)> {
        letter
            .headers
            .iter()
            .map(|h| {
                let value = String::from_utf8_lossy(h.value.unwrap_or_default());
                (h.key.to_owned(), value.into_owned())
            })
            .collect()
    }

    fn header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Key, value and headers as librdkafka counts them.
    fn size(letter: &DeadLetter<'_>) -> usize {
        let headers: usize = letter
            .headers
            .iter()
            .map(|h| header_bytes(h.key, h.value.unwrap_or_default()))
            .sum();
        letter.key.map_or(0, <[u8]>::len) + letter.value.map_or(0, <[u8]>::len) + headers
    }

    #[test]
    fn the_error_header_is_cut_on_a_character_boundary_with_an_ellipsis() {
        assert_eq!(cut_on_char("short", 256), "short");
        let exact = "x".repeat(256);
        assert_eq!(cut_on_char(&exact, 256), exact.as_str());
        let accents = "é".repeat(1_000);
        let cut = cut_on_char(&accents, 256);
        assert!(cut.len() <= 256, "{} bytes", cut.len());
        assert!(cut.ends_with('…'));
        // 'é' is two bytes: 253 bytes of room hold 126 of them.
        assert_eq!(cut.trim_end_matches('…'), "é".repeat(126));

        let mut record = poison(None, Some(b"x".to_vec()), &[]);
        record.error = format!("invalid JSON: {}", "A".repeat(600_000));
        let letter = DeadLetter::of(&record, "observations", 0, MAX_RECORD_BYTES);
        let headers = headers(&letter);
        let error = header(&headers, "error").unwrap();
        assert!(error.len() <= MAX_ERROR_BYTES, "{} bytes", error.len());
        assert!(error.starts_with("invalid JSON: AAAA") && error.ends_with('…'));
        assert_eq!(
            header(&headers, "truncated"),
            None,
            "the record itself fits"
        );
    }

    #[test]
    fn a_record_that_fits_goes_whole_with_its_headers_and_ours() {
        let record = poison(
            Some(b"globe".to_vec()),
            Some(vec![b'x'; 900_000]),
            &[("trace-id", "abc")],
        );
        let letter = DeadLetter::of(&record, "observations", 3, MAX_RECORD_BYTES);
        assert_eq!(letter.key, Some(&b"globe"[..]));
        assert_eq!(letter.value.map(<[u8]>::len), Some(900_000));
        let headers = headers(&letter);
        let names: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "trace-id",
                "error",
                "source-topic",
                "source-partition",
                "source-offset"
            ]
        );
        assert_eq!(header(&headers, "source-partition"), Some("3"));
        assert_eq!(header(&headers, "source-offset"), Some("42"));
    }

    #[test]
    fn a_record_too_large_goes_as_a_truncated_copy_that_says_so() {
        let value: Vec<u8> = (0..1_048_000u32).map(|i| (i % 251) as u8).collect();
        let record = poison(None, Some(value.clone()), &[("trace-id", "abc")]);
        let letter = DeadLetter::of(&record, "observations", 0, MAX_RECORD_BYTES);
        assert!(size(&letter) <= MAX_RECORD_BYTES, "{} bytes", size(&letter));
        let kept = letter.value.unwrap();
        assert!(
            kept.len() > MAX_RECORD_BYTES - 2_000,
            "{} bytes kept",
            kept.len()
        );
        assert_eq!(kept, &value[..kept.len()], "a prefix of the value");
        assert_eq!(letter.key, None);
        let headers = headers(&letter);
        assert_eq!(header(&headers, "truncated"), Some("true"));
        assert_eq!(header(&headers, "original-value-bytes"), Some("1048000"));
        assert_eq!(header(&headers, "original-key-bytes"), Some("0"));
        assert_eq!(
            header(&headers, "trace-id"),
            Some("abc"),
            "small headers stay"
        );
        assert_eq!(header(&headers, "original-headers-dropped"), None);
        assert_eq!(header(&headers, "source-offset"), Some("42"));
    }

    #[test]
    fn a_million_character_key_is_truncated_too() {
        let key = "k".repeat(1_000_000).into_bytes();
        let record = poison(Some(key.clone()), Some(b"w".to_vec()), &[]);
        let letter = DeadLetter::of(&record, "observations", 0, MAX_RECORD_BYTES);
        assert!(size(&letter) <= MAX_RECORD_BYTES, "{} bytes", size(&letter));
        assert_eq!(letter.value, Some(&b"w"[..]), "the short value stays whole");
        let kept = letter.key.unwrap();
        assert!(
            kept.len() > MAX_RECORD_BYTES - 2_000,
            "{} bytes kept",
            kept.len()
        );
        assert_eq!(kept, &key[..kept.len()]);
        let headers = headers(&letter);
        assert_eq!(header(&headers, "truncated"), Some("true"));
        assert_eq!(header(&headers, "original-key-bytes"), Some("1000000"));
        assert_eq!(header(&headers, "original-value-bytes"), Some("1"));
    }

    #[test]
    fn a_long_key_and_a_long_value_both_keep_their_beginnings() {
        let record = poison(Some(vec![b'k'; 5_000]), Some(vec![b'v'; 5_000]), &[]);
        let letter = DeadLetter::of(&record, "observations", 0, 4_000);
        assert!(size(&letter) <= 4_000, "{} bytes", size(&letter));
        assert_eq!(letter.key.map(<[u8]>::len), Some(MIN_KEPT_BYTES));
        assert!(letter.value.map_or(0, <[u8]>::len) > MIN_KEPT_BYTES);
    }

    #[test]
    fn headers_too_large_to_keep_are_dropped_and_counted() {
        let big = "h".repeat(3_000);
        let record = poison(
            Some(b"globe".to_vec()),
            Some(vec![b'v'; 100]),
            &[("a", &big), ("b", "c")],
        );
        let letter = DeadLetter::of(&record, "observations", 0, 2_000);
        assert!(size(&letter) <= 2_000, "{} bytes", size(&letter));
        assert_eq!(letter.value.map(<[u8]>::len), Some(100));
        let headers = headers(&letter);
        assert_eq!(header(&headers, "a"), None);
        assert_eq!(header(&headers, "original-headers-dropped"), Some("2"));
        assert_eq!(header(&headers, "truncated"), Some("true"));
    }
}
