//! `consumer_offsets`: where each consumer group resumes, read when the
//! consumer is given a partition. The batch write moves the offset, in the
//! same statement as the data (see [`super::apply_batch`]).

use sea_orm::{ConnectionTrait, EntityTrait, QuerySelect};

use super::entities::consumer_offsets::{self, Column};
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
