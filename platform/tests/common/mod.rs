//! What the store's test binaries (`store.rs`, `lifecycle.rs`) share: the
//! deltas and batches they hand to `apply_batch`, built one way.

use domain::bayes::Counts;
use domain::ModelId;
use platform::settings::ModelDefaults;
use platform::store::{apply_batch, BatchApplied, BatchWrite, ModelDelta, StoreError};
use sea_orm::ConnectionTrait;

/// `model`'s `s` successes and `f` failures, read up to `last_offset`.
pub fn delta(model: &str, s: u64, f: u64, last_offset: i64) -> ModelDelta {
    ModelDelta {
        model: ModelId::parse(model).unwrap(),
        counts: Counts::new(s, f),
        last_offset,
    }
}

/// A batch of `deltas` for partition 0 of `observations` in group `g`,
/// moving the stored offset from `expected` to `next`.
pub fn batch<'a>(expected: Option<i64>, next: i64, deltas: &'a [ModelDelta]) -> BatchWrite<'a> {
    BatchWrite {
        group_id: "g",
        topic: "observations",
        partition: 0,
        expected_next_offset: expected,
        next_offset: next,
        deltas,
        identified: &[],
    }
}

/// `apply_batch` with the default model settings (models created by their
/// first data), notifying `channel`.
pub async fn apply(
    db: &impl ConnectionTrait,
    batch: &BatchWrite<'_>,
    channel: &str,
) -> Result<BatchApplied, StoreError> {
    apply_batch(db, batch, &ModelDefaults::default(), channel).await
}
