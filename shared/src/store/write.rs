//! Writes: the consumer's exactly-once batch transaction (DESIGN.md 6).
//!
//! A batch's deltas, its history rows and the partition's new `next_offset`
//! commit in ONE transaction. The offset write is a compare-and-set on the
//! value the writer last saw, and it runs first: it takes the row lock, so a
//! zombie that lost its partition blocks until the rightful owner commits,
//! then finds the offset moved and applies nothing.

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement, TransactionTrait, Value};

use super::StoreError;
use crate::bayes::{Counts, ModelState};
use crate::model_id::ModelId;
use crate::prior::Prior;
use crate::settings::ModelDefaults;

/// What one batch adds to one model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelDelta {
    pub model: ModelId,
    pub counts: Counts,
    /// Offset of the batch's last record for this model (kept in history).
    pub last_offset: i64,
}

/// One batch of one partition, folded per model.
#[derive(Debug, Clone)]
pub struct BatchWrite<'a> {
    pub group_id: &'a str,
    pub topic: &'a str,
    pub partition: i32,
    /// `consumer_offsets.next_offset` as the writer last read or wrote it;
    /// `None` when the partition has no row yet.
    pub expected_next_offset: Option<i64>,
    /// The offset after the batch's last record.
    pub next_offset: i64,
    /// Per-model deltas; empty when every record was dead-lettered.
    pub deltas: &'a [ModelDelta],
}

/// A model's state after the batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub model: ModelId,
    pub state: ModelState,
}

/// The longest NOTIFY payload Postgres takes is 8000 bytes; past this the
/// payload is `*` ("many models changed").
const MAX_NOTIFY_PAYLOAD: usize = 7_900;

/// Where `group_id` resumes on `topic`/`partition`, if it ever committed.
pub async fn load_offset(
    db: &impl ConnectionTrait,
    group_id: &str,
    topic: &str,
    partition: i32,
) -> Result<Option<i64>, StoreError> {
    let row = db
        .query_one(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT next_offset FROM consumer_offsets WHERE group_id = $1 AND topic = $2 AND partition = $3",
            [group_id.into(), topic.into(), partition.into()],
        ))
        .await?;
    Ok(match row {
        Some(row) => Some(row.try_get::<i64>("", "next_offset")?),
        None => None,
    })
}

/// Applies a batch exactly once, or not at all. Returns every touched model's
/// new state. `StoreError::Conflict` means the offset moved under us (another
/// consumer owns the partition now): nothing was written and the caller must
/// reload its position. `notify_channel` receives the changed model ids,
/// comma-separated, after the commit.
pub async fn apply_batch(
    db: &DatabaseConnection,
    batch: &BatchWrite<'_>,
    defaults: &ModelDefaults,
    notify_channel: &str,
) -> Result<Vec<Applied>, StoreError> {
    let txn = db.begin().await?;

    // 1. Compare-and-set the offset.
    let moved = match batch.expected_next_offset {
        None => txn
            .execute(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "INSERT INTO consumer_offsets (group_id, topic, partition, next_offset) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT DO NOTHING",
                [batch.group_id.into(), batch.topic.into(), batch.partition.into(), batch.next_offset.into()],
            ))
            .await?
            .rows_affected(),
        Some(expected) => txn
            .execute(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "UPDATE consumer_offsets SET next_offset = $5, updated_at = now() \
                 WHERE group_id = $1 AND topic = $2 AND partition = $3 AND next_offset = $4",
                [
                    batch.group_id.into(),
                    batch.topic.into(),
                    batch.partition.into(),
                    expected.into(),
                    batch.next_offset.into(),
                ],
            ))
            .await?
            .rows_affected(),
    };
    if moved != 1 {
        txn.rollback().await?;
        return Err(StoreError::Conflict(format!(
            "offset of {}/{}/{} is no longer {:?}",
            batch.group_id, batch.topic, batch.partition, batch.expected_next_offset
        )));
    }

    if batch.deltas.is_empty() {
        txn.commit().await?;
        return Ok(Vec::new());
    }

    // 2. Models that get data before anyone configured them get the defaults.
    let prior =
        serde_json::to_value(Prior::default()).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let grid_size = i32::try_from(defaults.default_grid_size)
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let mut values: Vec<Value> = vec![prior.into(), grid_size.into()];
    let rows: Vec<String> = batch
        .deltas
        .iter()
        .map(|d| {
            values.push(d.model.as_str().into());
            format!("(${}, $1, $2)", values.len())
        })
        .collect();
    txn.execute(Statement::from_sql_and_values(
        DbBackend::Postgres,
        format!(
            "WITH created AS (INSERT INTO models (id, prior, grid_size) VALUES {} ON CONFLICT (id) DO NOTHING RETURNING id) \
             INSERT INTO model_states (model_id, successes, failures, version) SELECT id, 0, 0, 0 FROM created \
             ON CONFLICT (model_id) DO NOTHING",
            rows.join(", ")
        ),
        values,
    ))
    .await?;

    // 3. Add the deltas and write the history rows, in one statement.
    let mut values: Vec<Value> = vec![batch.partition.into()];
    let mut rows = Vec::with_capacity(batch.deltas.len());
    for d in batch.deltas {
        let base = values.len();
        values.push(d.model.as_str().into());
        values.push(to_i64(d.counts.successes)?.into());
        values.push(to_i64(d.counts.failures)?.into());
        values.push(d.last_offset.into());
        rows.push(format!(
            "(${}, ${}::bigint, ${}::bigint, ${}::bigint)",
            base + 1,
            base + 2,
            base + 3,
            base + 4
        ));
    }
    let applied = txn
        .query_all(Statement::from_sql_and_values(
            DbBackend::Postgres,
            format!(
                "WITH d (model_id, ds, df, last_offset) AS (VALUES {}), \
                 upd AS ( \
                   UPDATE model_states s SET successes = s.successes + d.ds, failures = s.failures + d.df, \
                     version = s.version + 1, updated_at = now() \
                   FROM d WHERE s.model_id = d.model_id \
                   RETURNING s.model_id, s.successes, s.failures, s.version, d.ds, d.df, d.last_offset) \
                 INSERT INTO model_history \
                   (model_id, version, successes, failures, delta_successes, delta_failures, source_partition, source_offset) \
                 SELECT model_id, version, successes, failures, ds, df, $1, last_offset FROM upd \
                 RETURNING model_id, successes, failures, version",
                rows.join(", ")
            ),
            values,
        ))
        .await?;
    if applied.len() != batch.deltas.len() {
        txn.rollback().await?;
        return Err(StoreError::Corrupt(format!(
            "{} of {} models had no state row",
            batch.deltas.len() - applied.len(),
            batch.deltas.len()
        )));
    }

    let mut states = Vec::with_capacity(applied.len());
    for row in applied {
        let model: String = row.try_get("", "model_id")?;
        let model = ModelId::parse(model).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let state = ModelState {
            counts: Counts::new(
                to_u64(row.try_get("", "successes")?)?,
                to_u64(row.try_get("", "failures")?)?,
            ),
            version: to_u64(row.try_get("", "version")?)?,
        };
        states.push(Applied { model, state });
    }

    // 4. NOTIFY is delivered only when the transaction commits.
    let mut payload = states
        .iter()
        .map(|a| a.model.as_str())
        .collect::<Vec<_>>()
        .join(",");
    if payload.len() > MAX_NOTIFY_PAYLOAD {
        payload = "*".to_owned();
    }
    txn.execute(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT pg_notify($1, $2)",
        [notify_channel.into(), payload.into()],
    ))
    .await?;

    txn.commit().await?;
    Ok(states)
}

fn to_i64(x: u64) -> Result<i64, StoreError> {
    i64::try_from(x).map_err(|_| StoreError::Corrupt(format!("count {x} does not fit a BIGINT")))
}

pub(super) fn to_u64(x: i64) -> Result<u64, StoreError> {
    u64::try_from(x).map_err(|_| StoreError::Corrupt(format!("negative count {x} in the database")))
}
