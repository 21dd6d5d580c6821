//! `model_history`: time travel (a model as of a version or a time), the
//! history pages of the model service, and the evolution plot's sample.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Condition, Expr};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Select};

use super::convert::{to_i64, to_u64};
use super::entities::model_history::{self, Column};
use super::StoreError;
use domain::bayes::Counts;
use domain::model_id::ModelId;

/// One row of `model_history`: the state after the `version`-th update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryRecord {
    pub version: u64,
    /// Cumulative counts after this update.
    pub counts: Counts,
    /// What this update added.
    pub delta: Counts,
    pub applied_at: DateTime<Utc>,
}

/// The history row of `version` (1-based; version 0 has no row: no data yet).
pub async fn history_version(
    db: &impl ConnectionTrait,
    id: &ModelId,
    version: u64,
) -> Result<Option<HistoryRecord>, StoreError> {
    let row = model_history::Entity::find_by_id((id.as_str().to_owned(), to_i64(version)?))
        .one(db)
        .await?;
    row.map(record).transpose()
}

/// The last version applied at or before `at`, or `None` when no data had
/// been applied by then.
pub async fn history_at(
    db: &impl ConnectionTrait,
    id: &ModelId,
    at: DateTime<Utc>,
) -> Result<Option<HistoryRecord>, StoreError> {
    let row = of_model(id)
        .filter(Column::AppliedAt.lte(at))
        .order_by_desc(Column::Version)
        .one(db)
        .await?;
    row.map(record).transpose()
}

/// Up to `limit` history rows in version order, starting after version `after`.
pub async fn history_page(
    db: &impl ConnectionTrait,
    id: &ModelId,
    after: Option<u64>,
    limit: u64,
) -> Result<Vec<HistoryRecord>, StoreError> {
    // The driver binds LIMIT as a BIGINT and panics on a larger one.
    to_i64(limit)?;
    let mut page = of_model(id).cursor_by(Column::Version);
    if let Some(after) = after {
        page.after(to_i64(after)?);
    }
    let rows = page.first(limit).all(db).await?;
    rows.into_iter().map(record).collect()
}

/// At most about `max_points` history rows spread evenly over versions
/// 1..=`up_to`, always including the last: what an evolution plot draws.
pub async fn history_sample(
    db: &impl ConnectionTrait,
    id: &ModelId,
    up_to: u64,
    max_points: u64,
) -> Result<Vec<HistoryRecord>, StoreError> {
    let step = up_to.div_ceil(max_points.max(1)).max(1);
    let up_to = to_i64(up_to)?;
    let rows = of_model(id)
        .filter(Column::Version.lte(up_to))
        .filter(
            Condition::any()
                .add(
                    Expr::col((model_history::Entity, Column::Version))
                        .modulo(to_i64(step)?)
                        .eq(0),
                )
                .add(Column::Version.eq(up_to)),
        )
        .order_by_asc(Column::Version)
        .all(db)
        .await?;
    rows.into_iter().map(record).collect()
}

/// The history rows of one model.
fn of_model(id: &ModelId) -> Select<model_history::Entity> {
    model_history::Entity::find().filter(Column::ModelId.eq(id.as_str()))
}

fn record(row: model_history::Model) -> Result<HistoryRecord, StoreError> {
    Ok(HistoryRecord {
        version: to_u64(row.version)?,
        counts: Counts::new(to_u64(row.successes)?, to_u64(row.failures)?),
        delta: Counts::new(to_u64(row.delta_successes)?, to_u64(row.delta_failures)?),
        applied_at: row.applied_at,
    })
}
