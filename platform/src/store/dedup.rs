//! `applied_ids`: the ids of applied observations, written by the batch
//! statement (see [`super::apply_batch`]) and forgotten after the retention.

use std::time::Duration;

use chrono::Utc;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};

use super::entities::applied_ids::{Column, Entity};
use super::StoreError;

/// Forgets the ids applied more than `retention` ago; returns how many.
/// A retry that arrives later than that is counted again.
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
    Ok(result.rows_affected)
}
