//! Offset gaps: a partition whose stored offset lies outside the log, below
//! its start (retention deleted records before they were applied) or beyond
//! its end (the topic was deleted and recreated, or the log truncated).
//!
//! librdkafka never resets a position on its own here
//! (`auto.offset.reset=error`): it stops fetching the partition and reports
//! `AutoOffsetReset`, but rust-rdkafka hands that error over without its
//! partition. So the polling loop writes what it holds, then asks the broker
//! for each owned partition's watermarks and compares them with the
//! partition's position. What happens next is the operator's choice,
//! `consumer.on_offset_gap`:
//!
//! - `halt` (default): the partition is paused and registered as stalled
//!   (one error-level line naming the stored offset and the watermarks, the
//!   gauge, `/readyz`); nothing is skipped;
//! - `earliest` / `latest`: the stored offset is moved in Postgres to the
//!   log's start or end (a compare-and-set, like a batch's), the number of
//!   records that skips (or may count again) is logged and counted, and the
//!   partition goes on from there.

use std::time::Duration;

use platform::settings::OnOffsetGap;
use platform::store::{move_offset, StoreError};
use rdkafka::consumer::{Consumer, RebalanceProtocol};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use crate::batch_writer::{count_retry, BatchWriter, PartitionOffsets, PollingConsumer};
use crate::halt::Halt;
use crate::metrics::{OFFSET_GAPS, OFFSET_GAP_RECORDS_SKIPPED};
use crate::stalls::{Stall, StallKind};

/// How long one watermark request may take.
const BROKER_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a position lies outside the log `low..=high`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    BelowStart,
    BeyondEnd,
}

impl Side {
    fn of(position: i64, low: i64, high: i64) -> Option<Self> {
        if position < low {
            Some(Side::BelowStart)
        } else if position > high {
            Some(Side::BeyondEnd)
        } else {
            None
        }
    }

    fn label(self) -> &'static str {
        match self {
            Side::BelowStart => "below_start",
            Side::BeyondEnd => "beyond_end",
        }
    }
}

/// One partition found outside its log.
#[derive(Debug, Clone, Copy)]
struct Gap {
    partition: i32,
    position: i64,
    low: i64,
    high: i64,
    side: Side,
}

impl Gap {
    /// What a person reads in the log line and in `/readyz`.
    fn explain(&self) -> String {
        let Gap {
            position,
            low,
            high,
            ..
        } = *self;
        match self.side {
            Side::BelowStart => format!(
                "the stored offset {position} is below the log's start (low watermark {low}, \
                 high watermark {high}): records {position}..{low} were deleted before they were \
                 applied. Nothing is skipped; the partition is held. To skip the {} lost records \
                 and go on, set consumer.on_offset_gap = \"earliest\" and restart",
                low - position
            ),
            Side::BeyondEnd => format!(
                "the stored offset {position} is beyond the log's end (low watermark {low}, high \
                 watermark {high}): the topic was probably deleted and recreated. Nothing is \
                 read; the partition is held. To count the new log from its start ({} records \
                 now), set consumer.on_offset_gap = \"earliest\"; to skip them, \"latest\"; \
                 then restart",
                high - low
            ),
        }
    }
}

/// Where an explicit resolution moves the stored offset, and how many
/// records that skips.
fn resolution(gap: &Gap, policy: OnOffsetGap) -> Option<(i64, i64)> {
    match (policy, gap.side) {
        (OnOffsetGap::Halt, _) => None,
        (OnOffsetGap::Earliest, Side::BelowStart) => Some((gap.low, gap.low - gap.position)),
        (OnOffsetGap::Earliest, Side::BeyondEnd) => Some((gap.low, 0)),
        (OnOffsetGap::Latest, Side::BelowStart) => Some((gap.high, gap.high - gap.position)),
        (OnOffsetGap::Latest, Side::BeyondEnd) => Some((gap.high, gap.high - gap.low)),
    }
}

/// What became of a partition found outside its log.
enum Outcome {
    Held,
    /// The stored offset was moved (or found moved by another consumer):
    /// fetching must start again from the partition's new position.
    Moved,
}

/// After librdkafka reported an offset outside the log: finds the owned
/// partitions whose position is outside it and holds or moves each. The
/// caller has written every buffered record, so each position is the
/// stored offset.
pub(crate) fn handle_gaps(
    writer: &BatchWriter<'_>,
    consumer: &PollingConsumer,
    mut partitions: Vec<(i32, &mut PartitionOffsets)>,
) -> Result<(), Halt> {
    let topic = &writer.settings.kafka.topic;
    let stalls = &writer.bridge.control().stalls;
    let (mut found, mut moved) = (0, 0);
    for (partition, offsets) in &mut partitions {
        let partition = *partition;
        if stalls.is_stalled(partition, StallKind::OffsetGap) {
            continue;
        }
        // Nothing stored: it started at the log's beginning, which moved
        // before the first fetch; fetching from the beginning again skips
        // nothing this group ever had.
        let Some(position) = offsets.position else {
            continue;
        };
        match consumer.fetch_watermarks(topic, partition, BROKER_TIMEOUT) {
            Ok((low, high)) => {
                if let Some(side) = Side::of(position, low, high) {
                    found += 1;
                    let gap = Gap {
                        partition,
                        position,
                        low,
                        high,
                        side,
                    };
                    if let Outcome::Moved = on_gap(writer, consumer, offsets, &gap)? {
                        moved += 1;
                    }
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, partition, "cannot read the partition's watermarks");
            }
        }
    }
    if found == 0 {
        // The log moved back into range since the error, or the broker did
        // not answer: librdkafka stopped fetching the partition all the
        // same. Fetching every partition again from where it stands makes
        // one still outside its log report again.
        tracing::warn!(
            "librdkafka reported an offset outside the log, but no partition is outside it now; fetching again"
        );
    }
    if found == 0 || moved > 0 {
        refetch(writer, consumer, &partitions)?;
    }
    Ok(())
}

/// Starts fetching every owned partition again at its position. librdkafka
/// stopped fetching the partition that was outside its log and refuses to
/// seek it, so the partitions are assigned again, each at its position,
/// never at Kafka's committed offset. Held partitions stay paused.
fn refetch(
    writer: &BatchWriter<'_>,
    consumer: &PollingConsumer,
    partitions: &[(i32, &mut PartitionOffsets)],
) -> Result<(), Halt> {
    let topic = &writer.settings.kafka.topic;
    let mut tpl = TopicPartitionList::with_capacity(partitions.len());
    let mut held = TopicPartitionList::new();
    let stalls = &writer.bridge.control().stalls;
    for (partition, offsets) in partitions {
        let offset = offsets.position.map_or(Offset::Beginning, Offset::Offset);
        tpl.add_partition_offset(topic, *partition, offset)
            .map_err(Halt::Fatal)?;
        if stalls.is_stalled(*partition, StallKind::OffsetGap) {
            held.add_partition(topic, *partition);
        }
    }
    let assigned = match consumer.rebalance_protocol() {
        RebalanceProtocol::Cooperative => consumer
            .incremental_unassign(&tpl)
            .and_then(|()| consumer.incremental_assign(&tpl)),
        _ => consumer.assign(&tpl),
    };
    // If that fails, a restart resumes from the offsets in Postgres.
    assigned.map_err(|err| {
        tracing::error!(error = %err, "cannot fetch the partitions again");
        Halt::Fatal(err)
    })?;
    if held.count() > 0 {
        if let Err(err) = consumer.pause(&held) {
            tracing::warn!(error = %err, "cannot pause the held partitions");
        }
    }
    Ok(())
}

fn on_gap(
    writer: &BatchWriter<'_>,
    consumer: &PollingConsumer,
    offsets: &mut PartitionOffsets,
    gap: &Gap,
) -> Result<Outcome, Halt> {
    let topic = &writer.settings.kafka.topic;
    let partition = gap.partition;
    metrics::counter!(
        OFFSET_GAPS,
        "topic" => topic.clone(),
        "partition" => partition.to_string(),
        "side" => gap.side.label(),
    )
    .increment(1);
    let policy = writer.settings.consumer.on_offset_gap;
    let (Some((target, skipped)), Some(stored)) = (resolution(gap, policy), offsets.stored) else {
        hold(writer, consumer, gap);
        return Ok(Outcome::Held);
    };
    let settings = writer.settings;
    let db = writer.db;
    let moved = tracing::warn_span!("move_offset", partition).in_scope(|| {
        writer.bridge.retry(
            &mut writer.backoff(),
            "cannot move the stored offset past the gap",
            move || async move {
                match move_offset(
                    db,
                    &settings.consumer.group_id,
                    topic,
                    partition,
                    stored,
                    target,
                )
                .await
                {
                    Ok(()) => Ok(true),
                    // Another consumer wrote the partition: it is theirs.
                    Err(StoreError::Conflict(_)) => Ok(false),
                    Err(err) => Err(err),
                }
            },
            |_| None,
            count_retry,
        )
    })?;
    let now_at = if moved {
        report_move(topic, gap, policy, target, skipped);
        Some(target)
    } else {
        tracing::warn!(
            partition,
            "the stored offset moved while resolving the gap; continuing from Postgres"
        );
        writer.reload_offset(partition)?
    };
    *offsets = PartitionOffsets {
        stored: now_at,
        position: now_at,
    };
    writer
        .bridge
        .control()
        .set_positions(&[(partition, now_at)]);
    Ok(Outcome::Moved)
}

/// The log line and the metric of an explicit move past a gap.
fn report_move(topic: &str, gap: &Gap, policy: OnOffsetGap, target: i64, skipped: i64) {
    metrics::counter!(
        OFFSET_GAP_RECORDS_SKIPPED,
        "topic" => topic.to_owned(),
        "partition" => gap.partition.to_string(),
    )
    .increment(skipped.max(0) as u64);
    let Gap {
        partition,
        position,
        low,
        high,
        ..
    } = *gap;
    // The same fields at the level the move deserves.
    macro_rules! moved {
        ($level:ident, $($message:tt)+) => {
            tracing::$level!(
                %topic,
                partition,
                stored_offset = position,
                low_watermark = low,
                high_watermark = high,
                new_offset = target,
                skipped,
                policy = ?policy,
                $($message)+
            )
        };
    }
    if skipped > 0 {
        moved!(
            error,
            "offset gap resolved by moving the stored offset: {skipped} records are skipped and never counted"
        );
    } else {
        moved!(
            warn,
            "offset gap resolved by moving the stored offset back to the log's start: its {} records are read; \
             if the topic was recreated they are new, if the log was truncated some may count a second time",
            high - low
        );
    }
}

/// `halt`: pause the partition and report it; nothing is skipped.
fn hold(writer: &BatchWriter<'_>, consumer: &PollingConsumer, gap: &Gap) {
    let topic = &writer.settings.kafka.topic;
    let mut tpl = TopicPartitionList::with_capacity(1);
    tpl.add_partition(topic, gap.partition);
    // librdkafka already stopped fetching it; pausing keeps it so whatever
    // else happens until a person decides.
    if let Err(err) = consumer.pause(&tpl) {
        tracing::warn!(error = %err, partition = gap.partition, "cannot pause the partition");
    }
    writer.bridge.control().stalls.stall(
        gap.partition,
        Stall {
            kind: StallKind::OffsetGap,
            detail: gap.explain(),
            first_offset: Some(gap.position),
            next_offset: None,
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gap(position: i64, low: i64, high: i64) -> Gap {
        Gap {
            partition: 0,
            position,
            low,
            high,
            side: Side::of(position, low, high).expect("a gap"),
        }
    }

    #[test]
    fn a_position_inside_the_log_or_at_its_end_is_no_gap() {
        assert_eq!(Side::of(5, 5, 10), None);
        assert_eq!(Side::of(10, 5, 10), None);
        assert_eq!(Side::of(4, 5, 10), Some(Side::BelowStart));
        assert_eq!(Side::of(11, 5, 10), Some(Side::BeyondEnd));
    }

    #[test]
    fn each_resolution_says_where_it_moves_and_what_it_skips() {
        // Retention deleted 20..50 before they were applied; 50..80 remain.
        let below = gap(20, 50, 80);
        assert_eq!(resolution(&below, OnOffsetGap::Halt), None);
        assert_eq!(resolution(&below, OnOffsetGap::Earliest), Some((50, 30)));
        assert_eq!(resolution(&below, OnOffsetGap::Latest), Some((80, 60)));
        // Recreated: the new log holds 0..5, we stood at 30.
        let beyond = gap(30, 0, 5);
        assert_eq!(resolution(&beyond, OnOffsetGap::Earliest), Some((0, 0)));
        assert_eq!(resolution(&beyond, OnOffsetGap::Latest), Some((5, 5)));
    }

    #[test]
    fn the_explanation_names_the_offsets_and_the_way_out() {
        let text = gap(30, 0, 5).explain();
        for part in ["30", "low watermark 0", "high watermark 5", "on_offset_gap"] {
            assert!(text.contains(part), "{text}");
        }
    }
}
