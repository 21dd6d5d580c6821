//! The ids of applied observations, written by the batch statement (see
//! [`super::apply_batch`]) and forgotten after the retention, in two tables:
//!
//! - `applied_id_bits` for an upload's line ids, `<upload>:<line>`
//!   (`domain::observation::upload_line_id`): one row holds
//!   [`ID_CHUNK_BITS`] consecutive lines of an upload as bits, so a file of
//!   50 million rows is some 50 000 rows here, written a chunk at a time. A
//!   bit is all that is kept: the upload's id is its file's hash, so the id
//!   alone fixes what the line holds, and clients may not use such ids;
//! - `applied_ids` for every other id, a row each with the model and counts
//!   it carried, so that the same id with other content is told from a
//!   retry (an id conflict, which the batch refuses: see
//!   [`stored_contents`]).
//!
//! Which table an id belongs to depends on its text alone, so a retry always
//! meets its first delivery in the same table.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use chrono::Utc;
use sea_orm::{ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, Statement};

use super::convert::{to_i64, to_u64};
use super::entities::applied_ids::{Column, Entity};
use super::IdentifiedDelta;
use super::StoreError;
use domain::bayes::Counts;

/// Numbers a row of `applied_id_bits` holds (its `BIT(1024)` columns).
pub const ID_CHUNK_BITS: i64 = 1024;
const MASK_WORDS: usize = (ID_CHUNK_BITS / 64) as usize;

/// `Some((upload, line))` when `id` is kept as a bit: an upload's line id.
pub(crate) fn upload_line(id: &str) -> Option<(&str, i64)> {
    domain::observation::upload_line_id(id)
}

/// A batch's upload lines, folded into one bit mask per upload,
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

/// An id of a batch that was applied before with other content: what was
/// applied under it (as far as it is known), for the dead letter's reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdConflict {
    pub id: String,
    /// `None` when the first observation's model is not known.
    pub applied_model: Option<String>,
    /// `None` when its counts are not known.
    pub applied_counts: Option<Counts>,
}

impl std::fmt::Display for IdConflict {
    /// Says what the id first carried, in a dead letter's reason.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let id = domain::observation::truncate_for_message(&self.id);
        write!(
            f,
            "id conflict: {id:?} was applied before with other content"
        )?;
        match (&self.applied_model, self.applied_counts) {
            (Some(model), Some(c)) => write!(
                f,
                " (model {model}, {} successes, {} failures)",
                c.successes, c.failures
            ),
            (Some(model), None) => write!(f, " (model {model})"),
            (None, Some(c)) => write!(f, " ({} successes, {} failures)", c.successes, c.failures),
            (None, None) => Ok(()),
        }
    }
}

/// The ids of `identified` that were applied before with other content, by
/// the same rule the batch statement refuses them with
/// (`id_content_differs`). A batch refused for its conflicts asks this to
/// learn which records to dead-letter. Upload line ids are never conflicts:
/// their upload's hash fixes what they hold.
pub async fn conflicting_ids(
    db: &impl ConnectionTrait,
    identified: &[IdentifiedDelta],
) -> Result<Vec<IdConflict>, StoreError> {
    let mut asked = Vec::new();
    for i in identified.iter().filter(|i| upload_line(&i.id).is_none()) {
        asked.push(serde_json::json!({
            "id": i.id,
            "model_id": i.delta.model.as_str(),
            "ds": to_i64(i.delta.counts.successes)?,
            "df": to_i64(i.delta.counts.failures)?,
        }));
    }
    if asked.is_empty() {
        return Ok(Vec::new());
    }
    let rows = db
        .query_all(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT a.id, a.model_id, a.successes, a.failures
             FROM jsonb_to_recordset($1::jsonb) AS i(id text, model_id text, ds bigint, df bigint)
             JOIN applied_ids a USING (id)
             WHERE id_content_differs(a.model_id, a.successes, a.failures, i.model_id, i.ds, i.df)
             ORDER BY a.id",
            [serde_json::Value::Array(asked).into()],
        ))
        .await?;
    rows.iter()
        .map(|row| {
            let model: String = row.try_get("", "model_id")?;
            let successes: Option<i64> = row.try_get("", "successes")?;
            let failures: Option<i64> = row.try_get("", "failures")?;
            let applied_counts = match (successes, failures) {
                (Some(s), Some(f)) => Some(Counts::new(to_u64(s)?, to_u64(f)?)),
                _ => None,
            };
            Ok(IdConflict {
                id: row.try_get("", "id")?,
                applied_model: (!model.is_empty()).then_some(model),
                applied_counts,
            })
        })
        .collect()
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
    fn only_an_uploads_line_ids_are_kept_as_bits() {
        assert_eq!(
            upload_line("9f86d081884c7d659a2f:17"),
            Some(("9f86d081884c7d659a2f", 17))
        );
        assert_eq!(
            upload_line("9f86d081884c7d659a2f-3:0"),
            Some(("9f86d081884c7d659a2f-3", 0))
        );
        for plain in [
            "a",
            "a:7",
            "order-1:1024",
            "9f86d081884c7d659a2f:07",
            "9f86d081884c7d659a2f",
            "9f86d081884c7d659a2:1",
        ] {
            assert_eq!(upload_line(plain), None, "{plain}");
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
