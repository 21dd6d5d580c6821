//! Sticky assignments at the speed of memory, without losing one.
//!
//! - A unit already assigned is answered from a bounded cache of the
//!   assignments this process has seen (`assignment_cache_entries`, least
//!   recently used first out). An assignment never changes while its
//!   experiment lives, so a cached answer is never wrong; the key holds the
//!   experiment's creation time, so one deleted and created again starts
//!   empty.
//! - A new unit is drawn by the current weights, then written with the
//!   other new units waiting at that moment in one statement (group
//!   commit, `store::assign_units`), and answered only once that statement
//!   committed: an answered assignment survives a SIGKILL a moment later.
//!   The database's primary key settles races, between requests and
//!   between replicas: whoever stored a unit first gives every replica its
//!   arm.
//!
//! One batch is written at a time: while it commits, the next one gathers,
//! so batches grow with the load and a commit's cost is shared.

use chrono::{DateTime, Utc};
use domain::ModelId;
use moka::future::Cache as Moka;
use moka::policy::EvictionPolicy;
use platform::store::{self, Assignment, NewAssignment, StoreError};
use sea_orm::DatabaseConnection;
use tokio::sync::{mpsc, oneshot};

use crate::error::ApiError;

/// The most units one statement writes.
const MAX_BATCH: usize = 1000;
/// New units waiting for a batch, at most; more wait to enter the queue.
const QUEUE: usize = 4 * MAX_BATCH;
/// Histogram: units written a statement.
const BATCH_UNITS: &str = "model_service_assignment_batch_units";

/// What identifies a unit's assignment: the experiment (and when it was
/// created) and the unit.
type Key = (ModelId, DateTime<Utc>, String);

/// A new unit waiting for its batch.
struct Waiting {
    wanted: NewAssignment,
    answer: oneshot::Sender<Result<Option<Assignment>, StoreError>>,
}

/// The cache of known assignments and the queue to the batch writer.
pub struct Assigner {
    known: Option<Moka<Key, (ModelId, DateTime<Utc>)>>,
    queue: mpsc::Sender<Waiting>,
}

impl std::fmt::Debug for Assigner {
    // Not moka's own `Debug`, which lists every entry.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Assigner")
            .field("known", &self.known.as_ref().map_or(0, Moka::entry_count))
            .finish()
    }
}

impl std::fmt::Debug for Waiting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waiting")
            .field("wanted", &self.wanted)
            .finish()
    }
}

impl Assigner {
    /// Starts the batch writer over `db`; `entries` bounds the cache (0: none).
    pub fn start(db: DatabaseConnection, notify_channel: String, entries: u64) -> Self {
        let (queue, waiting) = mpsc::channel(QUEUE);
        tokio::spawn(write_batches(db, notify_channel, waiting));
        let known = (entries > 0).then(|| {
            Moka::builder()
                .max_capacity(entries)
                .eviction_policy(EvictionPolicy::lru())
                .build()
        });
        Self { known, queue }
    }

    /// The arm `unit` has in the experiment created at `created_at`, if
    /// this process has seen it.
    pub async fn known(
        &self,
        experiment: &ModelId,
        created_at: DateTime<Utc>,
        unit: &str,
    ) -> Option<(ModelId, DateTime<Utc>)> {
        let known = self.known.as_ref()?;
        known
            .get(&(experiment.clone(), created_at, unit.to_owned()))
            .await
    }

    /// Gives the unit `wanted.arm` unless it has an arm; answers the arm it
    /// has once that is committed. `None`: the experiment is gone.
    pub async fn assign(
        &self,
        wanted: NewAssignment,
        created_at: DateTime<Utc>,
    ) -> Result<Option<Assignment>, ApiError> {
        let key = (wanted.experiment.clone(), created_at, wanted.unit.clone());
        let (answer, answered) = oneshot::channel();
        let stopped = || ApiError::Internal(anyhow::anyhow!("the assignment writer stopped"));
        self.queue
            .send(Waiting { wanted, answer })
            .await
            .map_err(|_| stopped())?;
        let assignment = answered.await.map_err(|_| stopped())??;
        if let (Some(known), Some(a)) = (&self.known, &assignment) {
            known.insert(key, (a.arm.clone(), a.assigned_at)).await;
        }
        Ok(assignment)
    }
}

/// Writes the waiting units a batch at a time until every sender is gone.
async fn write_batches(
    db: DatabaseConnection,
    channel: String,
    mut waiting: mpsc::Receiver<Waiting>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while waiting.recv_many(&mut batch, MAX_BATCH).await > 0 {
        metrics::histogram!(BATCH_UNITS).record(batch.len() as f64);
        let wanted: Vec<NewAssignment> = batch.iter().map(|w| w.wanted.clone()).collect();
        match store::assign_units(&db, &wanted, &channel).await {
            Ok(answers) => {
                for (w, answer) in batch.drain(..).zip(answers) {
                    let _ = w.answer.send(Ok(answer));
                }
            }
            // One unit the database refuses must not fail the others:
            // each alone, with its own answer.
            Err(_) => {
                for w in batch.drain(..) {
                    let one = store::assign_units(&db, std::slice::from_ref(&w.wanted), &channel)
                        .await
                        .map(|mut a| a.pop().flatten());
                    let _ = w.answer.send(one);
                }
            }
        }
    }
}
