//! Partitions that cannot make progress, in one place: the polling thread
//! and the lag reporter register a partition with the reason it is held and
//! the records it holds; `/readyz` names each one, the
//! `consumer_stalled_partitions` gauge counts them, and one error-level line
//! is logged when a partition stalls (not one per retry).
//!
//! A stall clears when its partition progresses again (a batch commits), when
//! the partition is revoked, or when the condition is resolved explicitly.
//!
//! This module depends on no other module of the crate.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Partitions stalled now (gauge).
pub const STALLED_PARTITIONS: &str = "consumer_stalled_partitions";

/// Why a partition cannot make progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum StallKind {
    /// The stored offset lies outside the log (`consumer.on_offset_gap = "halt"`).
    OffsetGap,
    /// A batch the store refuses for good (rejected statement, corrupt data):
    /// retried, but only a person can make it pass.
    StoreError,
    /// Poison records the dead-letter topic refuses (too large for it, no
    /// permission): retried, but only a person can make them pass.
    DeadLetterRefused,
    /// Records wait, yet the stored offset has not moved for `consumer.stall_timeout`.
    NoProgress,
}

impl StallKind {
    fn name(self) -> &'static str {
        match self {
            StallKind::OffsetGap => "offset gap",
            StallKind::StoreError => "permanent store error",
            StallKind::DeadLetterRefused => "dead-letter topic refuses records",
            StallKind::NoProgress => "no progress",
        }
    }
}

/// One held partition: why, and which records wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stall {
    pub kind: StallKind,
    /// What a person needs to know to act, in a sentence.
    pub detail: String,
    /// The first record held back.
    pub first_offset: Option<i64>,
    /// One past the last record held back, when known.
    pub next_offset: Option<i64>,
}

impl fmt::Display for Stall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind.name())?;
        match (self.first_offset, self.next_offset) {
            (Some(first), Some(next)) => write!(f, " (records {first}..{next})")?,
            (Some(first), None) => write!(f, " (from record {first})")?,
            _ => {}
        }
        write!(f, ": {}", self.detail)
    }
}

/// The stalled partitions of the consumer's topic.
#[derive(Debug)]
pub(crate) struct Stalls {
    topic: String,
    held: Mutex<BTreeMap<(i32, StallKind), Stall>>,
}

impl Stalls {
    pub fn new(topic: String) -> Self {
        metrics::gauge!(STALLED_PARTITIONS, "topic" => topic.clone()).set(0.0);
        Self {
            topic,
            held: Mutex::new(BTreeMap::new()),
        }
    }

    /// Registers `partition` as held for `stall.kind`. Logs at error level
    /// only when the partition was not already held for that reason, so a
    /// condition retried every few seconds says so once.
    pub fn stall(&self, partition: i32, stall: Stall) {
        let mut held = self.lock();
        let key = (partition, stall.kind);
        if held.contains_key(&key) {
            return;
        }
        tracing::error!(
            topic = %self.topic,
            partition,
            first_offset = stall.first_offset,
            next_offset = stall.next_offset,
            reason = stall.kind.name(),
            "partition stalled: {}",
            stall.detail
        );
        held.insert(key, stall);
        self.publish(&held);
    }

    /// The partition's `kind` condition is over.
    pub fn clear(&self, partition: i32, kind: StallKind) {
        let mut held = self.lock();
        if let Some(stall) = held.remove(&(partition, kind)) {
            tracing::info!(
                topic = %self.topic,
                partition,
                reason = stall.kind.name(),
                "partition no longer stalled"
            );
            self.publish(&held);
        }
    }

    /// The partition progressed: whatever held it is over.
    pub fn progressed(&self, partition: i32) {
        for kind in [
            StallKind::OffsetGap,
            StallKind::StoreError,
            StallKind::DeadLetterRefused,
            StallKind::NoProgress,
        ] {
            self.clear(partition, kind);
        }
    }

    /// The partitions left this consumer: their next owner judges them afresh.
    pub fn forget(&self, partitions: &[i32]) {
        let mut held = self.lock();
        held.retain(|(partition, _), _| !partitions.contains(partition));
        self.publish(&held);
    }

    pub fn forget_all(&self) {
        let mut held = self.lock();
        held.clear();
        self.publish(&held);
    }

    pub fn is_stalled(&self, partition: i32, kind: StallKind) -> bool {
        self.lock().contains_key(&(partition, kind))
    }

    /// Every held partition with its reasons, for `/readyz`.
    pub fn snapshot(&self) -> Vec<(i32, Stall)> {
        self.lock()
            .iter()
            .map(|((partition, _), stall)| (*partition, stall.clone()))
            .collect()
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    fn publish(&self, held: &BTreeMap<(i32, StallKind), Stall>) {
        let mut partitions: Vec<i32> = held.keys().map(|(partition, _)| *partition).collect();
        partitions.dedup();
        metrics::gauge!(STALLED_PARTITIONS, "topic" => self.topic.clone())
            .set(partitions.len() as f64);
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<(i32, StallKind), Stall>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gap(detail: &str) -> Stall {
        Stall {
            kind: StallKind::OffsetGap,
            detail: detail.to_owned(),
            first_offset: Some(30),
            next_offset: None,
        }
    }

    #[test]
    fn a_stall_is_listed_until_its_partition_progresses() {
        let stalls = Stalls::new("t".to_owned());
        stalls.stall(2, gap("outside the log"));
        stalls.stall(2, gap("outside the log, again"));
        assert_eq!(stalls.snapshot(), vec![(2, gap("outside the log"))]);
        assert!(stalls.is_stalled(2, StallKind::OffsetGap));
        stalls.progressed(2);
        assert!(stalls.snapshot().is_empty());
    }

    #[test]
    fn revoking_a_partition_forgets_its_stalls_only() {
        let stalls = Stalls::new("t".to_owned());
        stalls.stall(1, gap("a"));
        stalls.stall(3, gap("b"));
        stalls.forget(&[1]);
        assert_eq!(stalls.snapshot(), vec![(3, gap("b"))]);
    }

    #[test]
    fn a_stall_reads_as_its_reason_records_and_detail() {
        let stall = Stall {
            kind: StallKind::StoreError,
            detail: "rejected".to_owned(),
            first_offset: Some(5),
            next_offset: Some(9),
        };
        assert_eq!(
            stall.to_string(),
            "permanent store error (records 5..9): rejected"
        );
    }
}
