//! The ids of applied observations, written by the batch statement (see
//! [`super::apply_batch`]) and forgotten after the retention, in two tables:
//!
//! - `applied_id_bits` for numbered ids, `<prefix>:<n>` ([`numbered_id`]):
//!   an upload's `<upload>:<line>`, or a client's own sequence. One row holds
//!   [`ID_CHUNK_BITS`] consecutive numbers of a prefix as bits, so a file of
//!   50 million rows is some 50 000 rows here, written a chunk at a time;
//! - `applied_ids` for every other id, a row each.
//!
//! Which table an id belongs to depends on its text alone, so a retry always
//! meets its first delivery in the same table.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use chrono::Utc;
use sea_orm::{ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, Statement};

use super::convert::to_i64;
use super::entities::applied_ids::{Column, Entity};
use super::StoreError;
use domain::bayes::Counts;

/// Numbers a row of `applied_id_bits` holds (its `BIT(1024)` columns).
pub const ID_CHUNK_BITS: i64 = 1024;
const MASK_WORDS: usize = (ID_CHUNK_BITS / 64) as usize;

/// The digits a numbered id's number has at most: below 10^18, so it fits a
/// signed 64-bit integer with room for the chunk arithmetic.
const MAX_NUMBER_DIGITS: usize = 18;

/// `Some((prefix, n))` when `id` is `<prefix>:<n>` with `n` written as a
/// canonical decimal (no sign, no leading zero, at most 18 digits), split at
/// the last colon. Canonical, so the pair names exactly one id: `a:7` and
/// `a:07` are different ids, and only the first is numbered. The migration
/// `m0007_applied_id_bits` matches the same ids with a regular expression.
pub(crate) fn numbered_id(id: &str) -> Option<(&str, i64)> {
    let (prefix, digits) = id.rsplit_once(':')?;
    let canonical = !digits.is_empty()
        && digits.len() <= MAX_NUMBER_DIGITS
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'));
    if !canonical {
        return None;
    }
    Some((prefix, digits.parse().ok()?))
}

/// A batch's numbered observations, folded into one bit mask per prefix,
/// chunk, model and counts: an upload's 5 000 rows become a few dozen
/// groups, and the statement's work per row is a bit in a mask.
#[derive(Debug, Default)]
pub(crate) struct NumberedGroups<'a> {
    groups: BTreeMap<GroupKey<'a>, ([u64; MASK_WORDS], i64)>,
}

/// Prefix, chunk, model, successes, failures.
type GroupKey<'a> = (&'a str, i64, &'a str, u64, u64);

impl<'a> NumberedGroups<'a> {
    /// Adds one observation of `model` with id `<prefix>:<number>`
    /// (`number >= 0`; ids distinct within the batch, which the consumer
    /// ensures) found at `offset`.
    pub fn add(
        &mut self,
        prefix: &'a str,
        number: i64,
        model: &'a str,
        counts: Counts,
        offset: i64,
    ) {
        let key = (
            prefix,
            number / ID_CHUNK_BITS,
            model,
            counts.successes,
            counts.failures,
        );
        let (mask, last_offset) = self.groups.entry(key).or_insert(([0; MASK_WORDS], offset));
        // Bit k counted from the left, as Postgres's get_bit counts; k is
        // below 1024 because number is not negative.
        let k = usize::try_from(number % ID_CHUNK_BITS).unwrap_or_default();
        mask[k / 64] |= 1 << (63 - k % 64);
        *last_offset = (*last_offset).max(offset);
    }

    /// The groups as the statement's `$13`, each mask in hexadecimal.
    pub fn into_json(self) -> Result<serde_json::Value, StoreError> {
        let mut groups = Vec::with_capacity(self.groups.len());
        for ((prefix, chunk, model, successes, failures), (mask, last_offset)) in self.groups {
            let mut hex = String::with_capacity(MASK_WORDS * 16);
            for word in mask {
                // Writing to a String cannot fail.
                let _ = write!(hex, "{word:016x}");
            }
            groups.push(serde_json::json!({
                "prefix": prefix,
                "chunk": chunk,
                "model_id": model,
                "ds": to_i64(successes)?,
                "df": to_i64(failures)?,
                "last_offset": last_offset,
                "mask": hex,
            }));
        }
        Ok(serde_json::Value::Array(groups))
    }
}

/// Forgets the ids applied more than `retention` ago; returns how many rows
/// went (an id each from `applied_ids`, a chunk of numbered ids each from
/// `applied_id_bits`, which goes a retention after its latest id). A retry
/// that arrives later than that is counted again.
pub async fn purge_applied_ids(
    db: &impl ConnectionTrait,
    retention: Duration,
) -> Result<u64, StoreError> {
    // A retention longer than the calendar reaches back keeps everything.
    let Some(cutoff) = chrono::Duration::from_std(retention)
        .ok()
        .and_then(|retention| Utc::now().checked_sub_signed(retention))
    else {
        return Ok(0);
    };
    let result = Entity::delete_many()
        .filter(Column::AppliedAt.lt(cutoff))
        .exec(db)
        .await?;
    let chunks = db
        .execute(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "DELETE FROM applied_id_bits WHERE applied_at < $1",
            [cutoff.into()],
        ))
        .await?;
    Ok(result.rows_affected + chunks.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_ids_are_split_at_the_last_colon_into_a_canonical_number() {
        assert_eq!(
            numbered_id("9f86d081884c7d659a2f:17"),
            Some(("9f86d081884c7d659a2f", 17))
        );
        assert_eq!(numbered_id("a:b:0"), Some(("a:b", 0)));
        assert_eq!(numbered_id(":5"), Some(("", 5)));
        assert_eq!(
            numbered_id("a:999999999999999999"),
            Some(("a", 999_999_999_999_999_999))
        );
        for plain in [
            "a",
            "a:",
            "a:07",
            "a:00",
            "a:-1",
            "a:+1",
            "a:1e3",
            "a:1 ",
            "a:１",
            "a:1000000000000000000",
        ] {
            assert_eq!(numbered_id(plain), None, "{plain}");
        }
    }

    #[test]
    fn masks_count_bits_from_the_left_as_postgres_does() {
        let mut groups = NumberedGroups::default();
        let counts = Counts::new(1, 0);
        for n in [0, 1, 63, 64, 1023, 1024] {
            groups.add("u", n, "m", counts, n);
        }
        let json = groups.into_json().unwrap();
        let groups = json.as_array().unwrap();
        assert_eq!(groups.len(), 2, "1024 starts the next chunk: {json}");
        let first = groups[0]["mask"].as_str().unwrap();
        assert_eq!(first.len(), 256);
        assert_eq!(&first[..32], "c0000000000000018000000000000000");
        assert!(first.ends_with('1'));
        assert_eq!(groups[0]["last_offset"], 1023);
        assert_eq!(groups[1]["chunk"], 1);
        assert!(groups[1]["mask"].as_str().unwrap().starts_with('8'));
    }
}
