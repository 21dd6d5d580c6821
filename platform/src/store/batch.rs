//! The consumer's exactly-once batch write, kept as one SQL statement.
//!
//! A batch's deltas, its history rows and the partition's new `next_offset`
//! commit in ONE transaction: a single SQL statement, so Postgres runs it as
//! one implicit transaction and the batch costs one round trip of its own
//! (sqlx adds a liveness ping when the pooled connection is taken, and
//! another, off the caller's path, when it is given back). The offset write is a compare-and-set on the value
//! the writer last saw and every other part of the statement reads its
//! result: it takes the row lock, so a zombie that lost its partition blocks
//! until the rightful owner commits, then finds the offset moved and applies
//! nothing.
//!
//! The statement text is fixed (the deltas travel as one JSON parameter), so
//! each pooled connection prepares it once and then only binds and executes.

use std::collections::BTreeMap;

use sea_orm::{ConnectionTrait, DbBackend, FromQueryResult, Statement, TransactionTrait};

use super::convert::{self, to_i64, to_u64};
use super::dedup::{upload_line, NumberedGroups};
use super::StoreError;
use crate::settings::ModelDefaults;
use domain::bayes::{Counts, ModelState};
use domain::model_id::ModelId;
use domain::prior::Prior;

/// What one batch adds to one model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelDelta {
    pub model: ModelId,
    pub counts: Counts,
    /// Offset of the batch's last record for this model (kept in history).
    pub last_offset: i64,
}

/// One observation that carries an `id`: applied only if no observation
/// with that id was applied before (within the retention), so a client's
/// retry is counted once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentifiedDelta {
    pub id: String,
    /// The observation's model and counts; `last_offset` is its own offset.
    pub delta: ModelDelta,
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
    /// Per-model deltas of the observations without an `id`; empty when
    /// every record was dead-lettered. A model listed twice is summed.
    pub deltas: &'a [ModelDelta],
    /// The observations with an `id`, one by one, ids distinct.
    pub identified: &'a [IdentifiedDelta],
}

/// What a committed batch did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchApplied {
    /// Every touched model's new state, sorted by model.
    pub states: Vec<Applied>,
    /// Identified observations skipped because their id had been applied.
    pub duplicates: u64,
    /// The trials those duplicates carried.
    pub duplicate_trials: u64,
}

/// A model's state after the batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub model: ModelId,
    pub state: ModelState,
}

/// A row of the statement's result: the compare-and-set's outcome, then one
/// touched model's new state (the model columns are NULL when none was).
#[derive(Debug, FromQueryResult)]
struct BatchRow {
    moved: i64,
    duplicates: i64,
    duplicate_trials: i64,
    model_id: Option<String>,
    successes: Option<i64>,
    failures: Option<i64>,
    version: Option<i64>,
}

/// The longest NOTIFY payload Postgres takes is 8000 bytes; past this the
/// payload is `*` ("many models changed").
const MAX_NOTIFY_PAYLOAD: i32 = 7_900;

/// The batch statement. Parameters: $1 group, $2 topic, $3 partition,
/// $4 expected next offset (NULL: no row yet), $5 new next offset, $6 the
/// deltas as a JSON array, $7 the default prior, $8 the default grid size,
/// $9 the notify channel, $10 the longest notify payload, $11 the
/// identified observations as a JSON array, $12 the model locks' class, $13
/// the numbered observations' groups as a JSON array, $14 whether data
/// creates the models it names (`models.auto_create`).
///
/// - `moved`/`inserted`: the compare-and-set. With an expected offset only the
///   UPDATE can match; without one only the INSERT can, and it does nothing
///   when a row appeared meanwhile (it waits for that row's transaction).
/// - `identified`/`fresh`: the observations with an id that is not an
///   upload's line, empty unless the offset moved; `fresh` are those whose
///   id was not applied before (the primary key of `applied_ids` decides,
///   waiting for a concurrent batch that holds the same id, so only one of
///   them counts it), each kept with its model and counts. Inserted in id
///   order, so two batches cannot wait for each other's ids.
/// - `conflicts`: an id applied before with other content (the database's
///   `id_content_differs` decides, on the newest row: `DO UPDATE` locks and
///   rereads it, where a plain read would miss one a concurrent batch just
///   committed) is returned by `fresh` with the stored content, not the
///   batch's. `refuse_id_conflicts` then raises (`unique_violation` on the
///   constraint name `applied_ids_content`), so the whole statement is
///   undone: the caller dead-letters those records and writes the rest.
///   An id whose stored content matches is a retry, returned by nothing.
/// - `numbered`/`marked`/`counted`: the observations with an upload's line
///   id (see [`upload_line`]), grouped by the caller into one bit mask per
///   upload, chunk of [`ID_CHUNK_BITS`] lines, model and counts. `marked`
///   ORs each chunk's bits into `applied_id_bits` and returns, in `fresh`,
///   the bits that were not set before: the upsert computes them under the
///   row lock from the newest row, so of two batches racing on one id only
///   the first counts it. Chunks are upserted in key order after every id
///   of `fresh`, so batches take ids, then chunks, then model locks, always
///   in that order. `counted` is each group's fresh observations: the
///   popcount of its mask AND the chunk's fresh bits.
/// - `d`: the deltas without id plus the fresh identified ones, per model.
///   Sorted by model so concurrent batches of different partitions lock
///   model rows in the same order and cannot deadlock.
/// - `locked`: the model locks (see [`super::models::MODEL_LOCK_CLASS`]),
///   taken in one global order before any model row is touched, so this
///   statement, a batch of another partition and `PUT /models/{id}` creating
///   or changing the same model wait for each other instead of deadlocking
///   on the rows of `models` and `model_states`, which one statement's CTEs
///   write in no fixed order. Ids come first: a batch that holds a model
///   lock waits for no id, so ids and locks cannot wait in a circle.
/// - `existing`/`unknown`: only with `models.auto_create` off ($14 false).
///   The batch's models that exist, read under the model locks with a row
///   lock (`FOR KEY SHARE`), which sees the newest committed row, not the
///   statement's snapshot: a model deleted after the statement began, by a
///   `DELETE /models/{id}` the batch waited for in `locked`, is not
///   returned, and none can be deleted from then until this commits. Any
///   model of `d` not among them makes `refuse_unknown_models` raise
///   (`foreign_key_violation` on the constraint name `models_unknown`), so
///   nothing is written and no model is created: the caller dead-letters
///   those models' records and writes the rest.
/// - `created`: with `models.auto_create` on, models that get data before
///   anyone configured them get the defaults. The foreign key from
///   `model_states` is checked at the end of the statement, when these rows
///   exist.
/// - `states`: adds the deltas (a new state row starts at version 1), then
///   `history` writes one row a model with the cumulative counts. Both are
///   stamped with `clock_timestamp()` read after `locked`, not `now()` (the
///   transaction's start): a batch that waited for another writer of the
///   model is stamped after that writer committed, so per model the stamps
///   follow commit order, as time travel's `?at=` needs.
/// - `notified`: `pg_notify` is delivered only when the statement commits.
const APPLY_BATCH_SQL: &str = "\
WITH moved AS (
    UPDATE consumer_offsets SET next_offset = $5, updated_at = now()
    WHERE group_id = $1 AND topic = $2 AND partition = $3 AND next_offset = $4
    RETURNING 1
), inserted AS (
    INSERT INTO consumer_offsets (group_id, topic, partition, next_offset)
    SELECT $1, $2, $3, $5 WHERE $4::bigint IS NULL
    ON CONFLICT DO NOTHING
    RETURNING 1
), cas AS MATERIALIZED (
    SELECT count(*) AS n FROM (SELECT 1 FROM moved UNION ALL SELECT 1 FROM inserted) x
), identified AS MATERIALIZED (
    SELECT i.id, i.model_id, i.ds, i.df, i.last_offset
    FROM jsonb_to_recordset($11::jsonb) AS i(id text, model_id text, ds bigint, df bigint, last_offset bigint), cas
    WHERE cas.n = 1
), fresh AS (
    INSERT INTO applied_ids AS a (id, model_id, successes, failures, source_partition, source_offset)
    SELECT id, model_id, ds, df, $3, last_offset FROM identified ORDER BY id
    ON CONFLICT (id) DO UPDATE SET source_offset = a.source_offset
    WHERE id_content_differs(a.model_id, a.successes, a.failures,
                             EXCLUDED.model_id, EXCLUDED.successes, EXCLUDED.failures)
    RETURNING a.id, a.model_id, a.successes, a.failures
), conflicts AS MATERIALIZED (
    SELECT refuse_id_conflicts(count(*)) AS n
    FROM fresh f JOIN identified i USING (id)
    WHERE (f.model_id, f.successes, f.failures) IS DISTINCT FROM (i.model_id, i.ds, i.df)
), numbered AS MATERIALIZED (
    SELECT g.prefix, g.chunk, g.model_id, g.ds, g.df, g.last_offset, ('x' || g.mask)::bit(1024) AS mask
    FROM jsonb_to_recordset($13::jsonb)
        AS g(prefix text, chunk bigint, model_id text, ds bigint, df bigint, last_offset bigint, mask text), cas
    WHERE cas.n = 1
), marked AS (
    INSERT INTO applied_id_bits AS b (prefix, chunk, bits, fresh)
    SELECT prefix, chunk, bit_or(mask), bit_or(mask)
    FROM numbered, (SELECT count(*) FROM fresh) ids_first
    GROUP BY prefix, chunk
    ORDER BY prefix, chunk
    ON CONFLICT (prefix, chunk) DO UPDATE SET
        fresh = EXCLUDED.bits & ~b.bits,
        bits = b.bits | EXCLUDED.bits,
        applied_at = now()
    RETURNING b.prefix, b.chunk, b.fresh
), counted AS MATERIALIZED (
    SELECT n.model_id, n.ds, n.df, n.last_offset,
           bit_count(n.mask & m.fresh) AS applied, bit_count(n.mask) AS observations
    FROM numbered n JOIN marked m USING (prefix, chunk)
), d AS MATERIALIZED (
    SELECT model_id, sum(ds)::bigint AS ds, sum(df)::bigint AS df, max(last_offset) AS last_offset
    FROM (
        SELECT d.model_id, d.ds, d.df, d.last_offset
        FROM jsonb_to_recordset($6::jsonb) AS d(model_id text, ds bigint, df bigint, last_offset bigint), cas
        WHERE cas.n = 1
        UNION ALL
        SELECT i.model_id, i.ds, i.df, i.last_offset FROM identified i JOIN fresh USING (id)
        UNION ALL
        SELECT c.model_id, c.ds * c.applied, c.df * c.applied, c.last_offset FROM counted c WHERE c.applied > 0
    ) u
    GROUP BY model_id
    ORDER BY model_id
), locked AS MATERIALIZED (
    SELECT count(pg_advisory_xact_lock($12, hashtext(o.model_id))) AS n
    FROM (SELECT model_id FROM d ORDER BY hashtext(model_id), model_id) o
), existing AS MATERIALIZED (
    SELECT m.id FROM models m, locked
    WHERE NOT $14::boolean AND m.id IN (SELECT model_id FROM d)
    FOR KEY SHARE OF m
), unknown AS MATERIALIZED (
    SELECT refuse_unknown_models(count(*)) AS n
    FROM d WHERE NOT $14::boolean AND model_id NOT IN (SELECT id FROM existing)
), created AS (
    INSERT INTO models (id, prior, grid_size)
    SELECT model_id, $7::jsonb, $8::integer FROM d, locked WHERE $14::boolean ORDER BY model_id
    ON CONFLICT (id) DO NOTHING
    RETURNING id
), states AS (
    INSERT INTO model_states AS s (model_id, successes, failures, version, updated_at)
    SELECT model_id, ds, df, 1, clock_timestamp() FROM d, locked, unknown ORDER BY model_id
    ON CONFLICT (model_id) DO UPDATE SET
        successes = s.successes + EXCLUDED.successes,
        failures = s.failures + EXCLUDED.failures,
        version = s.version + 1,
        updated_at = EXCLUDED.updated_at
    RETURNING s.model_id, s.successes, s.failures, s.version, s.updated_at
), history AS (
    INSERT INTO model_history
        (model_id, version, successes, failures, delta_successes, delta_failures, source_partition, source_offset, applied_at)
    SELECT s.model_id, s.version, s.successes, s.failures, d.ds, d.df, $3, d.last_offset, s.updated_at
    FROM states s JOIN d USING (model_id)
), notified AS MATERIALIZED (
    SELECT pg_notify($9, CASE WHEN length(p) > $10 THEN '*' ELSE p END) AS sent
    FROM (SELECT string_agg(model_id, ',' ORDER BY model_id) AS p FROM states) x
    WHERE p IS NOT NULL
)
SELECT cas.n AS moved, (SELECT count(*) FROM created) AS created,
       (SELECT n FROM conflicts) AS conflicts,
       (SELECT count(*) FROM identified) - (SELECT count(*) FROM fresh)
           + (SELECT coalesce(sum(observations - applied), 0) FROM counted)::bigint AS duplicates,
       (SELECT coalesce(sum(ds + df), 0) FROM identified WHERE id NOT IN (SELECT id FROM fresh))::bigint
           + (SELECT coalesce(sum((observations - applied) * (ds + df)), 0) FROM counted)::bigint
           AS duplicate_trials,
       (SELECT count(*) FROM notified) AS notified,
       s.model_id, s.successes, s.failures, s.version
FROM cas LEFT JOIN states s ON true
ORDER BY s.model_id";

/// Applies a batch exactly once, or not at all, in one statement (one
/// implicit transaction). Returns every touched model's new state, sorted by
/// model, and how many identified observations were duplicates. `StoreError::Conflict` means the offset moved under us (another
/// consumer owns the partition now): nothing was written and the caller must
/// reload its position. `notify_channel` receives the changed model ids,
/// comma-separated (`*` when too many for one payload), after the commit.
pub async fn apply_batch(
    db: &impl ConnectionTrait,
    batch: &BatchWrite<'_>,
    defaults: &ModelDefaults,
    notify_channel: &str,
) -> Result<BatchApplied, StoreError> {
    // Sum the deltas per model: the statement updates each model's row once.
    let mut per_model: BTreeMap<&str, (Counts, i64)> = BTreeMap::new();
    for d in batch.deltas {
        let entry = per_model
            .entry(d.model.as_str())
            .or_insert((Counts::ZERO, d.last_offset));
        entry.0 = entry.0.checked_add(d.counts).ok_or_else(|| {
            StoreError::Corrupt(format!("counts of {} overflow in one batch", d.model))
        })?;
        entry.1 = entry.1.max(d.last_offset);
    }
    let mut deltas = Vec::with_capacity(per_model.len());
    for (model, (counts, last_offset)) in &per_model {
        deltas.push(serde_json::json!({
            "model_id": model,
            "ds": to_i64(counts.successes)?,
            "df": to_i64(counts.failures)?,
            "last_offset": last_offset,
        }));
    }
    let mut identified = Vec::new();
    let mut numbered = NumberedGroups::default();
    for i in batch.identified {
        if let Some((prefix, number)) = upload_line(&i.id) {
            let d = &i.delta;
            numbered.add(prefix, number, d.model.as_str(), d.counts, d.last_offset);
            continue;
        }
        identified.push(serde_json::json!({
            "id": i.id,
            "model_id": i.delta.model.as_str(),
            "ds": to_i64(i.delta.counts.successes)?,
            "df": to_i64(i.delta.counts.failures)?,
            "last_offset": i.delta.last_offset,
        }));
    }
    let numbered = numbered.into_json()?;
    let prior = convert::prior_json(&Prior::default())?;
    let grid_size = convert::grid_size_i32(defaults.default_grid_size)?;

    let rows = BatchRow::find_by_statement(Statement::from_sql_and_values(
        DbBackend::Postgres,
        APPLY_BATCH_SQL,
        [
            batch.group_id.into(),
            batch.topic.into(),
            batch.partition.into(),
            batch.expected_next_offset.into(),
            batch.next_offset.into(),
            serde_json::Value::Array(deltas).into(),
            prior.into(),
            grid_size.into(),
            notify_channel.into(),
            MAX_NOTIFY_PAYLOAD.into(),
            serde_json::Value::Array(identified).into(),
            super::models::MODEL_LOCK_CLASS.into(),
            numbered.into(),
            defaults.auto_create.into(),
        ],
    ))
    .all(db)
    .await?;

    let moved = rows.first().map_or(0, |row| row.moved);
    let (duplicates, duplicate_trials) = rows
        .first()
        .map_or((0, 0), |row| (row.duplicates, row.duplicate_trials));
    if moved != 1 {
        return Err(StoreError::Conflict(format!(
            "offset of {}/{}/{} is no longer {:?}",
            batch.group_id, batch.topic, batch.partition, batch.expected_next_offset
        )));
    }

    let mut states = Vec::with_capacity(per_model.len() + batch.identified.len());
    for row in rows {
        let Some(model) = row.model_id else {
            continue;
        };
        let model = ModelId::parse(model).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let (Some(successes), Some(failures), Some(version)) =
            (row.successes, row.failures, row.version)
        else {
            return Err(StoreError::Corrupt(format!(
                "no state returned for {model}"
            )));
        };
        let state = ModelState {
            counts: Counts::new(to_u64(successes)?, to_u64(failures)?),
            version: to_u64(version)?,
        };
        states.push(Applied { model, state });
    }
    // Every model with a delta without id is touched (those with only
    // identified observations may all be duplicates). Cannot fail while the
    // statement upserts every model; checked so a future edit that breaks it
    // fails loudly instead of losing data.
    let missing = per_model
        .keys()
        .filter(|model| !states.iter().any(|a| a.model.as_str() == **model))
        .count();
    if missing > 0 {
        return Err(StoreError::Corrupt(format!(
            "{missing} of {} models were not updated",
            per_model.len()
        )));
    }
    Ok(BatchApplied {
        states,
        duplicates: to_u64(duplicates)?,
        duplicate_trials: to_u64(duplicate_trials)?,
    })
}

/// Runs the batch statement in a transaction that is always rolled back:
/// whether Postgres would take `batch`, with nothing written (no counts, no
/// offset, no NOTIFY, which is only sent on commit). The consumer asks this
/// of parts of a batch that Postgres refused for a value it carries
/// ([`StoreError::Unstorable`]) to find the records to blame.
pub async fn try_batch(
    db: &impl TransactionTrait,
    batch: &BatchWrite<'_>,
    defaults: &ModelDefaults,
    notify_channel: &str,
) -> Result<(), StoreError> {
    let txn = db.begin().await?;
    let tried = apply_batch(&txn, batch, defaults, notify_channel).await;
    txn.rollback().await?;
    tried.map(|_| ())
}
