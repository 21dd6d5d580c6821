//! The consumer as it is deployed: separate processes in one group on a real
//! broker, killed with SIGKILL (not stopped in-process) and started again.
//! These tests need a real broker: the mock cluster has no group coordinator
//! worth the name, so they fail (never skip) without `KAFKA_BROKERS`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Child;
use std::time::Duration;

use test_support::eventually_within;
use test_support::service_process::spawn_service;

use crate::helpers::{unique, Rec, TestEnv};

/// Models the records spread over, and records per model.
const MODELS: usize = 50;
const PER_MODEL: usize = 2_000;
const TOTAL: i64 = (MODELS * PER_MODEL) as i64;
const PARTITIONS: i32 = 4;

/// The `j`-th record of a model: `j + 1` trials, all successes for even `j`,
/// all failures for odd `j`. Its cumulative counts after `n` records tell
/// `n` apart from any other prefix, so a history row whose counts are not
/// those of a prefix of the model's records shows records applied out of order.
fn record(model: usize, j: usize) -> Rec {
    let trials = j + 1;
    let successes = if j % 2 == 0 { trials } else { 0 };
    Rec::new(
        Some(&model_name(model)),
        &format!(r#"{{"successes":{successes},"trials":{trials}}}"#),
    )
}

fn model_name(model: usize) -> String {
    format!("m{model:02}")
}

/// The records in publishing order: models interleaved, each model's in order.
fn all_records() -> Vec<Rec> {
    (0..PER_MODEL)
        .flat_map(|j| (0..MODELS).map(move |m| record(m, j)))
        .collect()
}

/// A consumer process with its log file; SIGKILLed when dropped.
struct ConsumerProcess {
    child: Child,
    log: PathBuf,
}

/// What the processes of one test share.
struct Group<'a> {
    env: &'a TestEnv,
    strategy: &'a str,
    session_timeout: &'a str,
    batch_size: usize,
    logs: PathBuf,
}

impl Group<'_> {
    /// Starts the consumer binary with the settings in its environment, as
    /// an operator would, with `instance` as its `group.instance.id`.
    fn start(&self, instance: &str) -> ConsumerProcess {
        let settings = self.env.settings();
        let log = self.logs.join(format!("{instance}.log"));
        let extra = [
            (
                "BAYES__KAFKA__LIBRDKAFKA__PARTITION_ASSIGNMENT_STRATEGY",
                self.strategy.into(),
            ),
            (
                "BAYES__KAFKA__LIBRDKAFKA__HEARTBEAT_INTERVAL_MS",
                "500".into(),
            ),
            (
                "BAYES__DATABASE__NOTIFY_CHANNEL",
                settings.database.notify_channel.clone(),
            ),
            ("BAYES__CONSUMER__BATCH_SIZE", self.batch_size.to_string()),
            ("BAYES__CONSUMER__ADMIN_PORT", "0".into()),
            ("BAYES__CONSUMER__INSTANCE_ID", instance.into()),
            (
                "BAYES__CONSUMER__SESSION_TIMEOUT",
                self.session_timeout.into(),
            ),
        ];
        let child = spawn_service(env!("CARGO_BIN_EXE_consumer"), &settings, &extra, &log);
        ConsumerProcess { child, log }
    }

    /// The records counted so far: the sum of the offsets stored in Postgres.
    async fn progress(&self) -> i64 {
        let mut sum = 0;
        for partition in 0..PARTITIONS {
            sum += self.env.stored_offset(partition).await.unwrap_or(0);
        }
        sum
    }

    /// Waits until `progress` passes `at_least`, failing after `deadline`
    /// with the processes' logs in the message, or at once when one of them
    /// exits.
    async fn wait_for_progress(
        &self,
        at_least: i64,
        deadline: Duration,
        processes: &mut [&mut ConsumerProcess],
    ) -> i64 {
        let what = format!(
            "{at_least} records counted (logs: {})",
            processes
                .iter()
                .map(|p| p.log.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        eventually_within(deadline, &what, async || {
            for process in processes.iter_mut() {
                process.assert_running();
            }
            let progress = self.progress().await;
            (progress >= at_least).then_some(progress)
        })
        .await
    }

    /// Every count exact, every model's history a sequence of prefixes of its records.
    async fn assert_exact_and_in_order(&self) {
        let records = all_records();
        let env = self.env;
        assert_eq!(
            env.counts().await,
            crate::helpers::expected_counts(&records)
        );
        env.assert_history_consistent().await;
        // (trials so far -> successes so far) for every prefix of a model's records.
        // Every model's records follow the same pattern.
        let (mut s, mut t) = (0, 0);
        let prefixes: HashMap<i64, i64> = (0..PER_MODEL)
            .map(|j| {
                let trials = j as i64 + 1;
                t += trials;
                if j % 2 == 0 {
                    s += trials;
                }
                (t, s)
            })
            .collect();
        let mut checked = 0;
        for (model, version, successes, failures, _, _) in env.history().await {
            let trials = successes + failures;
            assert_eq!(
                prefixes.get(&trials),
                Some(&successes),
                "{model} v{version}: ({successes}, {failures}) are not the counts of a prefix \
                 of its records, so some were applied out of order"
            );
            checked += 1;
        }
        assert!(checked >= MODELS, "every model has a history");
    }
}

impl ConsumerProcess {
    /// Fails the test with the process's log when it exited by itself.
    fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().expect("process status") {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            panic!("the consumer exited by itself ({status}); its log:\n{log}");
        }
    }

    /// SIGKILL: no batch finished, no group left, nothing flushed.
    fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }
}

impl Drop for ConsumerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn logs_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(unique("consumer-processes"));
    std::fs::create_dir_all(&dir).expect("log directory");
    dir
}

/// An environment on a real broker, or a clear failure.
async fn real_broker_env() -> TestEnv {
    let env = TestEnv::new(PARTITIONS).await;
    assert!(
        !env.kafka.is_mock(),
        "this test needs a real Kafka broker: set KAFKA_BROKERS (scripts/test.sh starts one)"
    );
    env
}

/// Publishes the records in 100 slices, paced over a few seconds, so the
/// consumers work while records keep arriving.
async fn publish_paced(env: &TestEnv, records: &[Rec]) {
    for slice in records.chunks(records.len() / 100) {
        env.publish_to(None, slice).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn three_processes_with_one_killed_and_one_added(strategy: &str) {
    let env = real_broker_env().await;
    let group = Group {
        env: &env,
        strategy,
        // The group's minimum: the killed member's partitions move on soon.
        session_timeout: "6s",
        batch_size: 1_000,
        logs: logs_dir(),
    };
    let id = |name: &str| format!("{}-{name}", env.group);
    let mut a = group.start(&id("a"));
    let mut b = group.start(&id("b"));
    let mut c = group.start(&id("c"));
    let records = all_records();
    let publishing = publish_paced(&env, &records);
    let scaling = async {
        let at_kill = group
            .wait_for_progress(
                TOTAL / 5,
                Duration::from_secs(120),
                &mut [&mut a, &mut b, &mut c],
            )
            .await;
        a.kill();
        let d = group.start(&id("d"));
        (at_kill, d)
    };
    let ((), (at_kill, mut d)) = tokio::join!(publishing, scaling);
    assert!(
        at_kill < TOTAL,
        "the kill came after the last record ({at_kill} of {TOTAL} counted): it tested nothing"
    );
    let done = group
        .wait_for_progress(
            TOTAL,
            Duration::from_secs(180),
            &mut [&mut b, &mut c, &mut d],
        )
        .await;
    assert_eq!(done, TOTAL, "no offset past the end of the log");
    group.assert_exact_and_in_order().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_with_the_range_strategy_count_exactly_through_a_sigkill_and_a_new_member()
{
    three_processes_with_one_killed_and_one_added("range").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_with_cooperative_sticky_count_exactly_through_a_sigkill_and_a_new_member()
{
    three_processes_with_one_killed_and_one_added("cooperative-sticky").await;
}

/// With static membership the coordinator hands a restarted member its
/// partitions at once. Without it, the dead member's session would have to
/// time out first: a minute here, far past each wait below.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_sigkilled_twenty_times_takes_its_partitions_back_at_once_and_counts_exactly() {
    const KILLS: i64 = 20;
    let env = real_broker_env().await;
    let group = Group {
        env: &env,
        strategy: "range",
        session_timeout: "60s",
        batch_size: 200,
        logs: logs_dir(),
    };
    let instance = format!("{}-only", env.group);
    env.publish_to(None, &all_records()).await;
    let mut process = group.start(&instance);
    let mut last = 0;
    for kill in 1..=KILLS {
        // Progress since the last restart, so every kill follows a takeback.
        let threshold = (TOTAL * kill / (KILLS + 2)).max(last + 1);
        let at_kill = group
            .wait_for_progress(threshold, Duration::from_secs(30), &mut [&mut process])
            .await;
        assert!(
            at_kill < TOTAL,
            "kill {kill} came after the last record ({at_kill} counted): lower the batch size"
        );
        process.kill();
        last = group.progress().await;
        process = group.start(&instance);
    }
    group
        .wait_for_progress(TOTAL, Duration::from_secs(30), &mut [&mut process])
        .await;
    group.assert_exact_and_in_order().await;
}
