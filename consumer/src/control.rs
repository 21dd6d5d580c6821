//! What the polling thread and the async side share: stop requests (graceful
//! or abrupt), whether the polling thread runs (for readiness), each owned
//! partition's stored offset (for the lag gauges), and the partitions that
//! cannot make progress ([`Stalls`]).
//!
//! This module depends on no other module of the crate but the leaf
//! `stalls`: everything above it (the bridge, the pipeline, the admin
//! server, the metrics) reads it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::watch;

use crate::stalls::Stalls;

const RUNNING: u8 = 0;
const STOPPING: u8 = 1;
const ABORTED: u8 = 2;

/// The consumer's shared switches and positions.
#[derive(Debug)]
pub(crate) struct Control {
    /// Only ever raised: running, then stopping, then aborted.
    level: AtomicU8,
    changed: watch::Sender<u8>,
    running: AtomicBool,
    positions: Mutex<BTreeMap<i32, Option<i64>>>,
    /// The partitions held back, and why (readiness, the gauge).
    pub stalls: Stalls,
}

impl Control {
    pub fn new(topic: String) -> Self {
        Self {
            level: AtomicU8::new(RUNNING),
            changed: watch::Sender::new(RUNNING),
            running: AtomicBool::new(false),
            positions: Mutex::new(BTreeMap::new()),
            stalls: Stalls::new(topic),
        }
    }

    /// Graceful: finish the batch, commit, leave the group.
    pub fn request_stop(&self) {
        self.raise(STOPPING);
    }

    /// Abrupt, like a killed process: stop at the next step, write nothing more.
    pub fn abort(&self) {
        self.raise(ABORTED);
    }

    fn raise(&self, level: u8) {
        let now = self.level.fetch_max(level, Ordering::AcqRel).max(level);
        self.changed.send_replace(now);
    }

    pub fn stop_requested(&self) -> bool {
        self.level.load(Ordering::Acquire) >= STOPPING
    }

    pub fn aborted(&self) -> bool {
        self.level.load(Ordering::Acquire) >= ABORTED
    }

    /// Completes once a stop (graceful or not) was requested.
    pub async fn stopping(&self) {
        self.reached(STOPPING).await;
    }

    /// Completes once an abrupt stop was requested.
    pub async fn aborting(&self) {
        self.reached(ABORTED).await;
    }

    async fn reached(&self, wanted: u8) {
        let mut level = self.changed.subscribe();
        // The sender lives as long as `self`, so this cannot fail.
        let _ = level.wait_for(|level| *level >= wanted).await;
    }

    /// Whether the polling thread is in its loop (readiness).
    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::Acquire)
    }

    pub fn set_running(&self, running: bool) {
        self.running.store(running, Ordering::Release);
    }

    /// Each owned partition's `next_offset` in Postgres (`None`: nothing stored yet).
    pub fn positions(&self) -> Vec<(i32, Option<i64>)> {
        self.lock_positions()
            .iter()
            .map(|(partition, offset)| (*partition, *offset))
            .collect()
    }

    pub fn set_positions(&self, stored: &[(i32, Option<i64>)]) {
        self.lock_positions().extend(stored.iter().copied());
    }

    /// The partitions left this consumer: their positions and stalls go.
    pub fn forget_positions(&self, partitions: &[i32]) {
        let mut positions = self.lock_positions();
        for partition in partitions {
            positions.remove(partition);
        }
        self.stalls.forget(partitions);
    }

    pub fn forget_all_positions(&self) {
        self.lock_positions().clear();
        self.stalls.forget_all();
    }

    fn lock_positions(&self) -> MutexGuard<'_, BTreeMap<i32, Option<i64>>> {
        self.positions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}
