//! A cluster of Apache Kafka nodes of a test's own, for the tests that kill
//! a partition leader or the active controller and restart nodes one by one.
//!
//! Every node is broker and controller in one JVM (`process.roles=broker,
//! controller`), as scripts/kafka.sh's `--nodes 3` runs them: three JVMs
//! rather than six keep a 2-core machine usable, and losing one node then
//! costs a broker and a voter at once, the harder case (the controller
//! failover comes before the broker's). The nodes share a cluster id and a
//! fixed list of voters and add scripts/kafka/cluster.properties (replication
//! factor 3, `min.insync.replicas=2`, the failure-detection settings) to the
//! one-node configuration. They are started in parallel: a voter does not
//! answer clients before a quorum has elected a leader, so one at a time
//! would never finish.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::ClientConfig;

use super::{free_ports, random_cluster_id, KafkaProcess};

/// The cluster-wide lines of every node's `server.properties`, shared with
/// scripts/lib/kafka.sh.
pub const CLUSTER_PROPERTIES: &str = include_str!("../../../scripts/kafka/cluster.properties");

/// How long the cluster may take to agree on leaders or to bring a replica
/// back into sync.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);

/// N nodes on free local ports, in directories of their own; dropping the
/// cluster kills them and removes the directories.
#[derive(Debug)]
pub struct KafkaCluster {
    /// Node `i + 1` at index `i`.
    nodes: Vec<KafkaProcess>,
}

impl KafkaCluster {
    /// Starts `count` nodes (ids 1..=count) and returns once every one
    /// answers clients.
    pub fn start(count: u32) -> Self {
        Self::start_with(count, &[])
    }

    /// [`Self::start`], with `server.properties` lines of the caller's after
    /// the cluster's (they win), e.g. other failure-detection settings to
    /// measure.
    pub fn start_with(count: u32, extra: &[(String, String)]) -> Self {
        assert!(count >= 1, "a cluster has at least one node");
        let ports = free_ports(2 * count as usize);
        let (clients, controllers) = ports.split_at(count as usize);
        let voters: Vec<String> = controllers
            .iter()
            .enumerate()
            .map(|(i, port)| format!("{}@127.0.0.1:{port}", i + 1))
            .collect();
        let voters = voters.join(",");
        let cluster_id = random_cluster_id();
        let builders: Vec<_> = (0..count as usize)
            .map(|i| {
                let mut builder = KafkaProcess::builder()
                    .node_id(i as u32 + 1)
                    .cluster_id(&cluster_id)
                    .voters(&voters)
                    .internal_port(clients[i])
                    .controller_port(controllers[i]);
                for (key, value) in cluster_properties() {
                    builder = builder.property(key, value);
                }
                for (key, value) in extra {
                    builder = builder.property(key, value);
                }
                builder
            })
            .collect();
        let nodes: Vec<KafkaProcess> = std::thread::scope(|scope| {
            let started: Vec<_> = builders
                .into_iter()
                .map(|builder| scope.spawn(move || builder.start()))
                .collect();
            started
                .into_iter()
                .map(|node| node.join().expect("a node of the cluster failed to start"))
                .collect()
        });
        Self { nodes }
    }

    /// `host:port` of every node, for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        let all: Vec<String> = self.nodes.iter().map(KafkaProcess::bootstrap).collect();
        all.join(",")
    }

    /// The node with id `id`.
    pub fn node(&self, id: u32) -> &KafkaProcess {
        self.nodes
            .get((id as usize).wrapping_sub(1))
            .unwrap_or_else(|| panic!("the cluster has no node {id}"))
    }

    /// The ids of the nodes, 1..=N.
    pub fn ids(&self) -> Vec<u32> {
        (1..=self.nodes.len() as u32).collect()
    }

    /// SIGKILL node `id`; returns once its process is gone.
    pub fn kill(&self, id: u32) {
        self.node(id).kill();
    }

    /// SIGTERM node `id` (controlled shutdown); returns once it has exited.
    pub fn stop(&self, id: u32) {
        self.node(id).stop();
    }

    /// Starts node `id` again on its data; returns once it answers clients.
    pub fn restart(&self, id: u32) {
        self.node(id).restart();
    }

    /// The node that leads `topic`/`partition`, as the running nodes'
    /// metadata says, waiting until there is one.
    pub fn leader_of(&self, topic: &str, partition: i32) -> u32 {
        self.settle(&format!("{topic}/{partition} has a leader"), || {
            let metadata = self
                .reader()?
                .fetch_metadata(Some(topic), Duration::from_secs(5))
                .ok()?;
            let leader = metadata
                .topics()
                .iter()
                .find(|t| t.name() == topic)?
                .partitions()
                .iter()
                .find(|p| p.id() == partition)?
                .leader();
            u32::try_from(leader)
                .ok()
                .filter(|id| self.ids().contains(id) && self.node(*id).is_running())
        })
    }

    /// The active controller (the quorum's leader), as every running voter's
    /// `quorum-state` file says, waiting until they agree on a running one.
    /// The file is the voter's own record of the election (rewritten at
    /// every change of leader), so no JVM tool is needed to ask.
    pub fn active_controller(&self) -> u32 {
        self.settle("the running voters agree on an active controller", || {
            let mut leaders = self
                .ids()
                .into_iter()
                .filter(|id| self.node(*id).is_running())
                .map(|id| quorum_leader(&self.quorum_state_file(id)));
            let first = leaders.next()??;
            let agreed = leaders.all(|l| l == Some(first));
            (agreed && self.node(first).is_running()).then_some(first)
        })
    }

    /// Waits until every partition of every topic (the internal ones too)
    /// has a leader and all its replicas in sync: the state in which the
    /// next node may go.
    pub fn wait_fully_replicated(&self) {
        self.settle("every partition has all its replicas in sync", || {
            let metadata = self
                .reader()?
                .fetch_metadata(None, Duration::from_secs(5))
                .ok()?;
            let complete = metadata.topics().iter().all(|t| {
                t.error().is_none()
                    && t.partitions().iter().all(|p| {
                        p.leader() >= 0
                            && p.error().is_none()
                            && p.isr().len() == p.replicas().len()
                            && p.replicas().len() == self.nodes.len()
                    })
            });
            complete.then_some(())
        });
    }

    fn quorum_state_file(&self, id: u32) -> PathBuf {
        self.node(id)
            .dir()
            .join("kraft-combined-logs/__cluster_metadata-0/quorum-state")
    }

    /// A metadata reader on the running nodes only: a bootstrap list with a
    /// dead node costs a connection timeout now and then.
    fn reader(&self) -> Option<BaseConsumer> {
        let running: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| n.is_running())
            .map(KafkaProcess::bootstrap)
            .collect();
        ClientConfig::new()
            .set("bootstrap.servers", running.join(","))
            .set("group.id", crate::unique("cluster-probe"))
            .create()
            .ok()
    }

    /// Polls `check` until it gives a value; fails the test after
    /// `SETTLE_TIMEOUT`, saying what was awaited.
    fn settle<T>(&self, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        loop {
            if let Some(value) = check() {
                return value;
            }
            assert!(
                Instant::now() < deadline,
                "after {SETTLE_TIMEOUT:?}: not yet {what}"
            );
            // Leader elections take seconds: a coarse poll.
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The `key=value` lines of [`CLUSTER_PROPERTIES`], comments skipped.
pub fn cluster_properties() -> impl Iterator<Item = (&'static str, &'static str)> {
    CLUSTER_PROPERTIES
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
}

/// The leader a voter's `quorum-state` file names (`"leaderId":N`), if any.
fn quorum_leader(file: &std::path::Path) -> Option<u32> {
    let text = std::fs::read_to_string(file).ok()?;
    let state: serde_json::Value = serde_json::from_str(&text).ok()?;
    state["leaderId"]
        .as_u64()
        .and_then(|id| u32::try_from(id).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cluster_settings_are_key_value_lines_with_rf_3_and_two_in_sync() {
        let settings: std::collections::BTreeMap<_, _> = cluster_properties().collect();
        assert_eq!(settings["default.replication.factor"], "3");
        assert_eq!(settings["min.insync.replicas"], "2");
        assert_eq!(settings["offsets.topic.replication.factor"], "3");
        assert!(CLUSTER_PROPERTIES
            .lines()
            .all(|l| l.is_empty() || l.starts_with('#') || l.contains('=')));
    }
}
