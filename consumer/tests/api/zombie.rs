//! Two consumers on one partition: the compare-and-set on the stored offset
//! rejects the stale one's batch, so nothing counts twice.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use consumer::{Action, Assignment, Checkpoint, FaultInjector, Stage};

use crate::helpers::{
    block_until, eventually, expected_counts, workload, Hook, Rec, Recorder, TestEnv,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zombie_with_a_stale_offset_is_rejected_and_counts_stay_exact() {
    let env = TestEnv::new(1).await;
    let records = workload(40, 9);
    let (first, second) = records.split_at(20);
    env.publish(first).await;

    // The zombie: holds its first batch, already dead-lettered, until the
    // other consumer has written all twenty records.
    let zombie_waiting = Arc::new(AtomicBool::new(false));
    let other_done = Arc::new(AtomicBool::new(false));
    let zombie_seen = Arc::new(Recorder::default());
    let zombie_hook = {
        let (waiting, done, seen) = (
            zombie_waiting.clone(),
            other_done.clone(),
            zombie_seen.clone(),
        );
        let held = AtomicBool::new(false);
        Hook(move |c: &Checkpoint| {
            seen.at(c);
            if c.stage == Stage::DeadLettered && !held.swap(true, Ordering::AcqRel) {
                waiting.store(true, Ordering::Release);
                block_until(&done);
            }
            Action::Continue
        })
    };
    let zombie = env
        .spawn(
            env.settings(),
            Assignment::Manual(vec![0]),
            Some(Arc::new(zombie_hook)),
        )
        .await;
    eventually("the zombie holds its first batch", async || {
        zombie_waiting.load(Ordering::Acquire).then_some(())
    })
    .await;

    // The owner: same partition, same (absent) stored offset.
    let owner_hook = {
        let done = other_done.clone();
        Hook(move |c: &Checkpoint| {
            if c.stage == Stage::Applied && c.next_offset == 20 {
                done.store(true, Ordering::Release);
            }
            Action::Continue
        })
    };
    let owner = env
        .spawn(
            env.settings(),
            Assignment::Manual(vec![0]),
            Some(Arc::new(owner_hook)),
        )
        .await;
    env.wait_for_offset(0, 20).await;

    // Released, the zombie's transaction is rejected: the offset moved.
    let conflict = eventually("the zombie's batch is rejected", async || {
        zombie_seen.seen(Stage::Conflict).into_iter().next()
    })
    .await;
    assert_eq!(conflict.first_offset, 0);
    assert!(
        zombie_seen.seen(Stage::Applied).is_empty(),
        "the zombie applied nothing"
    );
    assert_eq!(env.counts().await, expected_counts(first));

    // Both keep reading the partition: whoever loses a race is rejected.
    env.publish(second).await;
    env.wait_for_offset(0, 40).await;
    let all: Vec<Rec> = records.clone();
    assert_eq!(env.counts().await, expected_counts(&all));
    env.assert_history_consistent().await;
    zombie.stop().await.expect("graceful stop");
    owner.stop().await.expect("graceful stop");
}
