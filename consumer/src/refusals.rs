//! When Postgres refuses a batch for what some of its records carry, which
//! records, and why: a record is dead-lettered with its reason and the rest
//! of the batch is written, so one record can never hold its partition.
//!
//! - An id applied before with other content: the batch statement raises
//!   (`StoreError::IdConflict`, nothing written), and the store names the
//!   ids by the same rule (`conflicting_ids`).
//! - A value the database cannot hold (`StoreError::Unstorable`: a
//!   character its encoding lacks, say): the statement is tried again on
//!   halves of the batch's identified records, in transactions that are
//!   rolled back, down to the single records it refuses. Only records with
//!   an id can be told apart this way; the others are folded into per-model
//!   sums whose strings are model ids, which the parser keeps to ASCII.
//! - With `models.auto_create` off, a model that does not exist: the batch
//!   statement raises (`StoreError::UnknownModels`, nothing written), and
//!   the store says which of the batch's models exist (`existing_models`):
//!   every record of the others is dead-lettered with reason
//!   `unknown_model`. A model deleted after this look-up makes the next
//!   attempt raise again; one created meanwhile is simply written.

use std::collections::{HashMap, HashSet};

use domain::ModelId;
use platform::settings::ModelDefaults;
use platform::store::{
    conflicting_ids, existing_models, try_batch, BatchWrite, IdentifiedDelta, StoreError,
};
use sea_orm::DatabaseConnection;

/// The ids of a refused batch to dead-letter, each with its reason.
pub(crate) type Reasons = HashMap<String, String>;

/// The ids of `identified` applied before with other content.
pub(crate) async fn id_conflicts(
    db: &DatabaseConnection,
    identified: &[IdentifiedDelta],
) -> Result<Reasons, StoreError> {
    Ok(conflicting_ids(db, identified)
        .await?
        .into_iter()
        .map(|conflict| (conflict.id.clone(), conflict.to_string()))
        .collect())
}

/// The models among `models` that do not exist now.
pub(crate) async fn unknown_models(
    db: &DatabaseConnection,
    models: &HashSet<ModelId>,
) -> Result<HashSet<ModelId>, StoreError> {
    let ids: Vec<&str> = models.iter().map(ModelId::as_str).collect();
    let existing = existing_models(db, &ids).await?;
    Ok(models
        .iter()
        .filter(|m| !existing.contains(m.as_str()))
        .cloned()
        .collect())
}

/// The dead letter's reason for a record of `model`, which does not exist.
pub(crate) fn unknown_model(model: &ModelId) -> String {
    format!(
        "unknown_model: no model named {model:?}, and models.auto_create is off: create it with PUT /models/{model}"
    )
}

/// The identified records of `write` that Postgres refuses on their own,
/// each with Postgres's reason. Empty when the refusal is not theirs (the
/// statement is refused without any of them, or only with all of them
/// together): then the partition is held as for any statement Postgres
/// refuses. A transient error is returned, so the caller retries.
pub(crate) async fn unstorable(
    db: &DatabaseConnection,
    write: &BatchWrite<'_>,
    defaults: &ModelDefaults,
    notify_channel: &str,
) -> Result<Reasons, StoreError> {
    let probe = Probe {
        db,
        write,
        defaults,
        notify_channel,
    };
    let mut reasons = Reasons::new();
    let Some(reason) = probe.refuses(write.identified).await? else {
        return Ok(reasons);
    };
    // Parts known to be refused; halved until single records remain.
    let mut refused = vec![(write.identified, reason)];
    while let Some((part, reason)) = refused.pop() {
        if let [record] = part {
            reasons.insert(record.id.clone(), reason);
            continue;
        }
        let (left, right) = part.split_at(part.len() / 2);
        for half in [left, right] {
            if let Some(reason) = probe.refuses(half).await? {
                refused.push((half, reason));
            }
        }
    }
    Ok(reasons)
}

/// Tries parts of one batch: its identified records only, or some of them.
struct Probe<'a> {
    db: &'a DatabaseConnection,
    write: &'a BatchWrite<'a>,
    defaults: &'a ModelDefaults,
    notify_channel: &'a str,
}

impl Probe<'_> {
    /// Whether Postgres refuses the batch's statement holding only
    /// `identified` (and why), in a transaction that is rolled back.
    async fn refuses(&self, identified: &[IdentifiedDelta]) -> Result<Option<String>, StoreError> {
        let part = BatchWrite {
            deltas: &[],
            identified,
            ..self.write.clone()
        };
        refusal(try_batch(self.db, &part, self.defaults, self.notify_channel).await)
    }
}

/// What a trial says: `Some(reason)` when Postgres refuses a value the
/// part carries, `None` when it takes the part (or refuses it for another
/// reason, which the real write meets again), the error when it may pass
/// later.
fn refusal(tried: Result<(), StoreError>) -> Result<Option<String>, StoreError> {
    match tried {
        Ok(()) => Ok(None),
        Err(StoreError::Unstorable(err)) => Ok(Some(format!(
            "the database cannot store this record: {err}"
        ))),
        Err(err) if err.is_transient() => Err(err),
        Err(_) => Ok(None),
    }
}
