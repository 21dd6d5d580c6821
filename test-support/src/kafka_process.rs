//! An Apache Kafka broker of a test's own, for the tests that crash it or
//! start it with settings of their own: one KRaft node from the released jars,
//! started and killed by the project's scripts (`scripts/lib/kafka.sh`), in a
//! throwaway directory on free local ports. The shared broker of
//! `KAFKA_BROKERS` is never touched.
//!
//! It needs Java and the jars `scripts/kafka.sh install` resolves; without
//! them it fails the test with that message rather than letting it pass
//! without having run.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{unique, TestEnvironment};

/// One broker in a directory of its own; dropping it kills the broker and
/// removes the directory.
#[derive(Debug)]
pub struct KafkaProcess {
    name: String,
    dir: PathBuf,
    port: u16,
    controller_port: u16,
    /// A configuration of the caller's (`KAFKA_SERVER_CONFIG`), used instead
    /// of the one the script writes.
    config: Option<PathBuf>,
}

impl KafkaProcess {
    /// Starts a broker with the scripts' configuration on two free ports and
    /// returns once it answers clients.
    pub fn start() -> Self {
        let ports = free_ports(2);
        let (port, controller_port) = (ports[0], ports[1]);
        let process = Self::new(port, controller_port, None);
        process.run_script("kafka_start");
        process
    }

    /// Starts a broker with the configuration `config` writes, given the
    /// broker's directory (for `log.dirs`): it names every listener itself.
    /// `port` is a client listener of it (where readiness is asked) and
    /// `controller_port` its controller's; both must be free.
    pub fn start_with_config(
        port: u16,
        controller_port: u16,
        config: impl FnOnce(&Path) -> String,
    ) -> Self {
        let mut process = Self::new(port, controller_port, None);
        let file = process.dir.join("given.properties");
        std::fs::write(&file, config(&process.dir)).expect("writing the broker's configuration");
        process.config = Some(file);
        process.run_script("kafka_start");
        process
    }

    fn new(port: u16, controller_port: u16, config: Option<PathBuf>) -> Self {
        crate::init_tracing();
        check_java_and_jars();
        let name = unique("test-kafka");
        let dir = std::env::temp_dir().join(&name);
        std::fs::create_dir_all(&dir).expect("creating the broker's directory");
        Self {
            name,
            dir,
            port,
            controller_port,
            config,
        }
    }

    /// `host:port` for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The broker's directory: its data, `server.properties` and `server.log`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The broker's log so far (`server.log`, INFO and above).
    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// SIGKILL, as a crash would: no controlled shutdown, no flush. Returns
    /// once the process is gone.
    pub fn kill(&self) {
        self.run_script("kafka_kill");
    }

    /// Starts the broker again on the same directory and ports (its data kept)
    /// and returns once it answers clients.
    pub fn restart(&self) {
        self.run_script("kafka_start");
    }

    /// Runs `FUNCTION NAME DIR PORT CONTROLLER_PORT` (or `FUNCTION DIR`) of
    /// scripts/lib/kafka.sh; the test fails with the script's output when it does.
    fn run_script(&self, function: &str) {
        let script = repo().join("scripts/lib/kafka.sh");
        let mut command = Command::new("bash");
        command
            .arg("-c")
            .arg(r#"source "$1" && shift && "$@""#)
            .arg("kafka-process")
            .arg(&script)
            .arg(function);
        if function == "kafka_start" {
            command.arg(&self.name);
        }
        command.arg(&self.dir);
        if function == "kafka_start" {
            command
                .arg(self.port.to_string())
                .arg(self.controller_port.to_string());
        }
        if let Some(config) = &self.config {
            command.env("KAFKA_SERVER_CONFIG", config);
        }
        let output = command.output().expect("running bash");
        assert!(
            output.status.success(),
            "{function} ({}) failed: {}\n{}",
            self.dir.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for KafkaProcess {
    fn drop(&mut self) {
        // Killed rather than stopped: the data is thrown away, so there is
        // nothing a controlled shutdown would save, and it takes no time.
        let script = repo().join("scripts/lib/kafka.sh");
        let _ = Command::new("bash")
            .arg("-c")
            .arg(r#"source "$1" && kafka_kill "$2""#)
            .arg("kafka-process")
            .arg(&script)
            .arg(&self.dir)
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `count` local ports nobody listens on now, chosen by the kernel. The
/// broker binds them a few seconds later; another process taking one in
/// between is unlikely, and the script refuses a port in use with a clear message.
pub fn free_ports(count: usize) -> Vec<u16> {
    // All held until all are chosen, so that no two are the same.
    let listeners: Vec<TcpListener> = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("binding a free port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("a bound port").port())
        .collect()
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Fails the test, saying what to do, when Java or the Kafka jars are missing
/// (the script would otherwise try to install them, which a test must not).
fn check_java_and_jars() {
    let java = Command::new("java").arg("-version").output();
    assert!(
        java.is_ok_and(|out| out.status.success()),
        "this test starts its own Apache Kafka and needs Java 17 or later on PATH: \
         scripts/kafka.sh install installs it and the jars"
    );
    let libs = TestEnvironment::from_env().kafka_home.join("libs");
    let jars = std::fs::read_dir(&libs)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "jar"))
                .count()
        })
        .unwrap_or(0);
    assert!(
        jars > 0,
        "this test starts its own Apache Kafka and finds no jars in {}: run scripts/kafka.sh install \
         (or set BAYES_KAFKA_HOME to a directory holding them)",
        libs.display()
    );
}
