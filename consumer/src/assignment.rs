//! Which partitions the consumer reads: the [`Assignment`] it is asked for,
//! and the partitions it [`Owned`] right now (written by the rebalance
//! callback, read by the polling loop).
//!
//! This module depends on no other module of the crate.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Which partitions the consumer reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assignment {
    /// Join the consumer group and take what it assigns (production).
    Subscribe,
    /// Read these partitions of the topic without a group's coordination
    /// (operations and tests: two instances on one partition make a zombie).
    Manual(Vec<i32>),
}

/// A partition this consumer owns, as of its assignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Assigned {
    /// `next_offset` in Postgres when it was assigned.
    pub stored: Option<i64>,
    /// Changes with every assignment, so the polling loop can tell a
    /// partition that was revoked and assigned again from one it kept.
    pub epoch: u64,
}

/// The partitions owned right now. The rebalance callback writes it; the
/// polling loop compares `generation` (one atomic load a record) and re-reads
/// the map only when it changed.
#[derive(Debug, Default)]
pub(crate) struct Owned {
    generation: AtomicU64,
    partitions: Mutex<BTreeMap<i32, Assigned>>,
}

impl Owned {
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn snapshot(&self) -> BTreeMap<i32, Assigned> {
        self.lock().clone()
    }

    /// Adds newly assigned partitions with their stored offsets.
    pub fn add(&self, stored: &[(i32, Option<i64>)]) {
        let mut partitions = self.lock();
        let epoch = self.generation.load(Ordering::Acquire) + 1;
        for &(partition, stored) in stored {
            partitions.insert(partition, Assigned { stored, epoch });
        }
        self.generation.store(epoch, Ordering::Release);
    }

    pub fn remove(&self, gone: &[i32]) {
        let mut partitions = self.lock();
        for partition in gone {
            partitions.remove(partition);
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    pub fn clear(&self) {
        let mut partitions = self.lock();
        partitions.clear();
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<i32, Assigned>> {
        self.partitions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}
