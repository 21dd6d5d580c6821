//! `consumer_offsets`: where each consumer group resumes, read when the
//! consumer is given a partition. The batch write moves the offset, in the
//! same statement as the data (see [`super::apply_batch`]); the only other
//! move is [`move_offset`], an operator's explicit decision after an offset
//! gap.
//!
//! `consumer_source`: which group and topic the stored state was built from
//! ([`claim_source`]), so a consumer started with another group or topic
//! cannot mix two logs into one set of counts.

use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect};

use super::entities::consumer_offsets::{self, Column};
use super::entities::consumer_source;
use super::StoreError;

/// Where `group_id` resumes on `topic`/`partition`, if it ever committed.
pub async fn load_offset(
    db: &impl ConnectionTrait,
    group_id: &str,
    topic: &str,
    partition: i32,
) -> Result<Option<i64>, StoreError> {
    let next_offset =
        consumer_offsets::Entity::find_by_id((group_id.to_owned(), topic.to_owned(), partition))
            .select_only()
            .column(Column::NextOffset)
            .into_tuple::<i64>()
            .one(db)
            .await?;
    Ok(next_offset)
}

/// Moves the partition's `next_offset` from `expected` to `to` without
/// applying the records in between: the resolution of an offset gap the
/// operator chose (`consumer.on_offset_gap`). A compare-and-set like the
/// batch write's: [`StoreError::Conflict`] when the stored offset is not
/// `expected` (another consumer wrote the partition).
pub async fn move_offset(
    db: &impl ConnectionTrait,
    group_id: &str,
    topic: &str,
    partition: i32,
    expected: i64,
    to: i64,
) -> Result<(), StoreError> {
    let moved = consumer_offsets::Entity::update_many()
        .col_expr(Column::NextOffset, Expr::value(to))
        .col_expr(Column::UpdatedAt, Expr::current_timestamp().into())
        .filter(Column::GroupId.eq(group_id))
        .filter(Column::Topic.eq(topic))
        .filter(Column::Partition.eq(partition))
        .filter(Column::NextOffset.eq(expected))
        .exec(db)
        .await?;
    if moved.rows_affected == 1 {
        Ok(())
    } else {
        Err(StoreError::Conflict(format!(
            "partition {partition} of {topic} is no longer stored at offset {expected}"
        )))
    }
}

/// The group and topic a database's state was built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub group_id: String,
    pub topic: String,
}

/// Records that this database's state comes from `group_id` reading
/// `topic`, or finds that it comes from another group or topic: then
/// `Ok(Err(that one))`, and the caller must refuse to run, since reading
/// another log into these counts would count records twice or mix two
/// streams. A database that already held offsets when the record was added
/// (before this check existed) is claimed by the group and topic of its
/// offsets; one holding several is not claimed by any of them.
pub async fn claim_source(
    db: &impl ConnectionTrait,
    group_id: &str,
    topic: &str,
) -> Result<Result<(), Source>, StoreError> {
    let ours = Source {
        group_id: group_id.to_owned(),
        topic: topic.to_owned(),
    };
    if let Some(stored) = load_source(db).await? {
        return Ok(if stored == ours { Ok(()) } else { Err(stored) });
    }
    let foreign = consumer_offsets::Entity::find()
        .select_only()
        .column(Column::GroupId)
        .column(Column::Topic)
        .filter(Column::GroupId.ne(group_id).or(Column::Topic.ne(topic)))
        .into_tuple::<(String, String)>()
        .one(db)
        .await?;
    if let Some((group_id, topic)) = foreign {
        return Ok(Err(Source { group_id, topic }));
    }
    // Two consumers of one group may start at once: the first insert wins
    // and both read back what it wrote.
    consumer_source::Entity::insert(consumer_source::ActiveModel {
        id: ActiveValue::Set(true),
        group_id: ActiveValue::Set(ours.group_id.clone()),
        topic: ActiveValue::Set(ours.topic.clone()),
        claimed_at: ActiveValue::NotSet,
    })
    .on_conflict(
        sea_orm::sea_query::OnConflict::column(consumer_source::Column::Id)
            .do_nothing()
            .to_owned(),
    )
    .do_nothing()
    .exec(db)
    .await?;
    let stored = load_source(db).await?;
    Ok(match stored {
        Some(stored) if stored != ours => Err(stored),
        _ => Ok(()),
    })
}

async fn load_source(db: &impl ConnectionTrait) -> Result<Option<Source>, StoreError> {
    let row = consumer_source::Entity::find_by_id(true).one(db).await?;
    Ok(row.map(|row| Source {
        group_id: row.group_id,
        topic: row.topic,
    }))
}
