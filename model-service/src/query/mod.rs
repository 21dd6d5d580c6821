//! The query layer: every question the routes ask of the store, and every
//! write they make, goes through here. It resolves time travel (`?version=`,
//! `?at=`), windows (`?since=`, `?window=`), an experiment's arms at a
//! point of its merged history, and loads a model or an experiment with the
//! configuration in force then.
//!
//! One way only: `routes` -> `query` -> `platform::store`. Nothing here
//! knows HTTP beyond the [`ApiError`] it answers with.
//!
//! Current-state questions are answered from memory ([`crate::current`]);
//! a write answers once this process has applied it, so a client reads its
//! own writes from the same process.

pub mod experiments;
pub mod keys;
pub mod models;
mod travel;

use std::future::Future;
use std::time::Instant;

use platform::store::{self, StoreError};

pub use travel::{check_version, TimeTravel};

use crate::error::ApiError;
use crate::state::AppState;

/// Histogram: store queries, labelled `query`.
const QUERY_SECONDS: &str = "model_service_query_duration_seconds";

/// Times a store query under `query`.
async fn timed<T>(
    query: &'static str,
    fut: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, ApiError> {
    let start = Instant::now();
    let result = fut.await;
    metrics::histogram!(QUERY_SECONDS, "query" => query).record(start.elapsed().as_secs_f64());
    Ok(result?)
}

/// After a write: waits until this process's memory has applied it, so
/// the writer's next read sees it. The write itself is committed either
/// way, so a wait that fails is logged, not answered as an error.
async fn written(state: &AppState) {
    if let Err(err) = state.caught_up().await {
        tracing::warn!(error = %err, "a write was answered before this process applied it");
    }
}

/// Whether the database answers (readiness): the store's own error, for
/// `/readyz` to show.
pub async fn ping(state: &AppState) -> Result<(), StoreError> {
    store::ping(state.db()).await
}

/// A page read with one record more than `limit` (which tells whether
/// another page follows): the page itself, and `next_after`, the id to
/// continue from, when there is more.
fn page_of<T>(
    mut records: Vec<T>,
    limit: u32,
    id: impl Fn(&T) -> &domain::ModelId,
) -> (Vec<T>, Option<String>) {
    let limit = limit as usize;
    let more = records.len() > limit;
    records.truncate(limit);
    let next_after = more
        .then(|| records.last().map(|r| id(r).to_string()))
        .flatten();
    (records, next_after)
}
