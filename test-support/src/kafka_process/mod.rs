//! An Apache Kafka broker of a test's own, started and stopped from Rust:
//! one KRaft node (broker and controller in one JVM) from the released jars,
//! in a throwaway directory on free local ports, for the tests that crash a
//! broker, start one with settings of their own, or need listeners with TLS
//! and SASL. The shared broker of `KAFKA_BROKERS` is never touched.
//!
//! [`KafkaProcess::builder`] says what the broker is made of (listeners,
//! users, certificates, a place in a cluster, see [`config`]); the process
//! writes its `server.properties`, formats the storage, starts `kafka.Kafka`
//! as a child in its own process group and returns once the broker answers
//! an ApiVersions request, or fails the test with the end of its logs.
//! scripts/lib/kafka.sh does the same for people; [`java`] builds the same
//! command lines.
//!
//! It needs Java and the jars `scripts/kafka.sh install` resolves; without
//! them it fails the test with that message rather than letting it pass
//! without having run.

mod cluster;
pub mod config;
mod java;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

pub use cluster::{cluster_properties, KafkaCluster, CLUSTER_PROPERTIES};
pub use config::{BrokerTls, KafkaBuilder, Listener, Protocol, SaslMechanism};

use self::config::{BoundListener, INTERNAL};
use self::java::Java;
use crate::{unique, TestEnvironment};

/// How long a broker may take to answer clients after its start.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a controlled shutdown (SIGTERM) may take.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// One broker in a directory of its own; dropping it kills the broker and
/// removes the directory.
#[derive(Debug)]
pub struct KafkaProcess {
    name: String,
    dir: PathBuf,
    java: Java,
    /// Every client listener, the internal PLAINTEXT one first.
    listeners: Vec<BoundListener>,
    /// Where readiness is asked: a PLAINTEXT listener.
    probe_port: u16,
    controller_port: u16,
    /// The running JVM and its watchdog, while there is one.
    running: Mutex<Option<Running>>,
}

#[derive(Debug)]
struct Running {
    broker: Child,
    /// Kills the broker and removes its directory when this test process
    /// ends without dropping the `KafkaProcess` (a broker shared through a
    /// `static`, a test aborted): it waits for the end of its standard
    /// input, which only this process holds open.
    watchdog: Child,
}

impl KafkaProcess {
    /// What a broker is made of, to be started with [`KafkaBuilder::start`].
    pub fn builder() -> KafkaBuilder {
        let dir = std::env::temp_dir().join(unique("test-kafka"));
        std::fs::create_dir_all(&dir).expect("creating the broker's directory");
        KafkaBuilder::new(dir)
    }

    /// Starts a broker with one PLAINTEXT listener on a free port and
    /// returns once it answers clients.
    pub fn start() -> Self {
        Self::builder().start()
    }

    /// Starts a broker with the configuration `config` writes, given the
    /// broker's directory (for `log.dirs`): it names every listener itself.
    /// `port` is a PLAINTEXT client listener of it (where readiness is asked)
    /// and `controller_port` its controller's; both must be free.
    pub fn start_with_config(
        port: u16,
        controller_port: u16,
        config: impl FnOnce(&Path) -> String,
    ) -> Self {
        let dir = std::env::temp_dir().join(unique("test-kafka"));
        let process = Self::new(
            dir,
            vec![BoundListener {
                name: INTERNAL.to_owned(),
                protocol: Protocol::Plaintext,
                port,
            }],
            port,
            controller_port,
        );
        let text = config(&process.dir);
        let data = text
            .lines()
            .filter_map(|l| l.strip_prefix("log.dirs="))
            .next_back()
            .and_then(|dirs| dirs.split(',').next())
            .map(PathBuf::from)
            .expect("the given configuration sets log.dirs");
        std::fs::write(process.dir.join("server.properties"), &text)
            .expect("writing the broker's configuration");
        // A quorum of fixed voters is formatted as it is; a dynamic one
        // starts with this node alone.
        let mut args = Vec::new();
        if !text
            .lines()
            .any(|l| l.starts_with("controller.quorum.voters="))
        {
            args.push("--standalone".to_owned());
        }
        args.extend([
            "--ignore-formatted".to_owned(),
            "-t".to_owned(),
            random_cluster_id(),
            "-c".to_owned(),
            process.dir.join("server.properties").display().to_string(),
        ]);
        if !data.join("meta.properties").exists() {
            process.java.format_storage(&process.dir, &args);
        }
        process.spawn();
        process
    }

    fn start_built(builder: KafkaBuilder) -> Self {
        let wanted = builder
            .listeners
            .iter()
            .filter(|l| l.port.is_none())
            .count()
            + usize::from(builder.internal_port.is_none())
            + usize::from(builder.controller_port.is_none());
        let mut ports = free_ports(wanted).into_iter();
        let internal = builder
            .internal_port
            .unwrap_or_else(|| ports.next().expect("a free port"));
        let controller = builder
            .controller_port
            .unwrap_or_else(|| ports.next().expect("a free port"));
        let listeners = builder.bound(internal, &mut ports);
        let process = Self::new(builder.dir.clone(), listeners, internal, controller);
        let data = process.dir.join("kraft-combined-logs");
        let properties = process.dir.join("server.properties");
        let text = builder.server_properties(&process.listeners, controller, &data);
        std::fs::write(&properties, text).expect("writing the broker's configuration");
        let cluster_id = builder.cluster_id.clone().unwrap_or_else(random_cluster_id);
        process
            .java
            .format_storage(&process.dir, &builder.format_args(&cluster_id, &properties));
        process.spawn();
        process
    }

    fn new(
        dir: PathBuf,
        listeners: Vec<BoundListener>,
        probe_port: u16,
        controller_port: u16,
    ) -> Self {
        crate::init_tracing();
        let home = TestEnvironment::from_env().kafka_home;
        check_java_and_jars(&home);
        let name = dir.file_name().map_or_else(
            || "test-kafka".to_owned(),
            |n| n.to_string_lossy().into_owned(),
        );
        std::fs::create_dir_all(&dir).expect("creating the broker's directory");
        Self {
            name,
            dir,
            java: Java { home },
            listeners,
            probe_port,
            controller_port,
            running: Mutex::new(None),
        }
    }

    /// `host:port` of the PLAINTEXT listener, for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.probe_port)
    }

    /// `host:port` of the listener named `name` (as given to [`Listener`]).
    pub fn bootstrap_of(&self, name: &str) -> String {
        let wanted = name.to_ascii_uppercase();
        let listener = self
            .listeners
            .iter()
            .find(|l| l.name == wanted)
            .unwrap_or_else(|| panic!("the broker has no listener {name}"));
        format!("127.0.0.1:{}", listener.port)
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
    /// once the process is gone (its last thread, and so its sockets).
    pub fn kill(&self) {
        let running = self
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(running) = running {
            running.stop();
        }
    }

    /// SIGTERM, as an operator's stop would: the broker hands its partition
    /// leaderships over (controlled shutdown) and exits. Returns once it is
    /// gone; SIGKILL after `STOP_TIMEOUT`, failing the test.
    pub fn stop(&self) {
        let running = self
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(mut running) = running else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &running.broker.id().to_string()])
            .status();
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Ok(Some(_)) = running.broker.try_wait() {
                let _ = kill_and_reap(running.watchdog);
                return;
            }
            if Instant::now() > deadline {
                running.stop();
                panic!(
                    "the broker in {} did not stop within {STOP_TIMEOUT:?} of SIGTERM (killed it){}",
                    self.dir.display(),
                    self.log_tail()
                );
            }
            // Polling a JVM's exit (a second or two): ends at the exit.
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// True while the broker's JVM runs.
    pub fn is_running(&self) -> bool {
        self.running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    /// Starts the broker again on the same directory and ports (its data kept)
    /// and returns once it answers clients. A running broker is left as is.
    pub fn restart(&self) {
        if self
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_none()
        {
            self.spawn();
        }
    }

    /// Starts the JVM and its watchdog, then waits until the broker answers.
    fn spawn(&self) {
        let mut ports: Vec<u16> = self.listeners.iter().map(|l| l.port).collect();
        ports.push(self.controller_port);
        check_ports_free(&ports);
        tracing::info!(name = %self.name, dir = %self.dir.display(), "starting Apache Kafka");
        let mut broker = self
            .java
            .broker_command(&self.dir)
            .spawn()
            .expect("running java (kafka.Kafka)");
        let watchdog = Command::new("sh")
            .arg("-c")
            .arg(
                r#"read -r _; kill -KILL "$0" 2>/dev/null
                   while kill -0 "$0" 2>/dev/null; do sleep 0.1; done; rm -rf "$1""#,
            )
            .arg(broker.id().to_string())
            .arg(&self.dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("running sh (the broker's watchdog)");
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = broker.try_wait().expect("asking after the broker") {
                let _ = kill_and_reap(watchdog);
                panic!(
                    "the broker in {} exited during start-up ({status}){}",
                    self.dir.display(),
                    self.log_tail()
                );
            }
            if answers(self.probe_port) {
                break;
            }
            if Instant::now() > deadline {
                Running { broker, watchdog }.stop();
                panic!(
                    "the broker in {} did not answer on 127.0.0.1:{} within {START_TIMEOUT:?} (killed it){}",
                    self.dir.display(),
                    self.probe_port,
                    self.log_tail()
                );
            }
            // Polling a starting JVM (seconds): the loop ends at its first answer.
            std::thread::sleep(Duration::from_millis(100));
        }
        tracing::info!(name = %self.name, bootstrap = %self.bootstrap(), "Apache Kafka is ready");
        *self.running.lock().unwrap_or_else(PoisonError::into_inner) =
            Some(Running { broker, watchdog });
    }

    /// The end of the broker's console and log, for a failure message.
    fn log_tail(&self) -> String {
        let mut text = String::new();
        for (file, lines) in [("kafka.out", 20), ("server.log", 40)] {
            let content = std::fs::read_to_string(self.dir.join(file)).unwrap_or_default();
            let all: Vec<&str> = content.lines().collect();
            let tail = &all[all.len().saturating_sub(lines)..];
            if !tail.is_empty() {
                text.push_str(&format!("\n--- {file}\n{}", tail.join("\n")));
            }
        }
        text
    }
}

impl Running {
    fn stop(mut self) {
        let _ = self.broker.kill();
        // `wait` returns once the last thread is gone, sockets closed.
        let _ = self.broker.wait();
        let _ = kill_and_reap(self.watchdog);
    }
}

fn kill_and_reap(mut child: Child) -> std::io::Result<()> {
    child.kill()?;
    child.wait().map(|_| ())
}

impl Drop for KafkaProcess {
    fn drop(&mut self) {
        // Killed rather than stopped: the data is thrown away, so there is
        // nothing a controlled shutdown would save, and it takes no time.
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// True when a broker on 127.0.0.1:`port` answers an ApiVersions request
/// (v0, correlation id 1, client id "probe") with correlation id 1 and no
/// error. A KRaft broker opens its client port only once it is unfenced, so
/// an answer means it is ready.
fn answers(port: u16) -> bool {
    let probe = || -> std::io::Result<bool> {
        let timeout = Duration::from_secs(2);
        let mut socket = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), timeout)?;
        socket.set_read_timeout(Some(timeout))?;
        socket.set_write_timeout(Some(timeout))?;
        socket.write_all(b"\x00\x00\x00\x0f\x00\x12\x00\x00\x00\x00\x00\x01\x00\x05probe")?;
        let mut reply = [0u8; 10];
        socket.read_exact(&mut reply)?;
        Ok(reply[4..10] == [0, 0, 0, 1, 0, 0])
    };
    probe().unwrap_or(false)
}

/// A random cluster id in Kafka's form (22 characters of URL-safe base64),
/// not starting with `-`, as `kafka-storage random-uuid` makes.
fn random_cluster_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = uuid::Uuid::new_v4().into_bytes();
    let mut bits: u128 = u128::from_be_bytes(bytes);
    let mut id = String::with_capacity(22);
    for _ in 0..22 {
        id.push(char::from(ALPHABET[(bits & 63) as usize]));
        bits >>= 6;
    }
    if id.starts_with('-') {
        id.replace_range(0..1, "A");
    }
    id
}

/// Fails the test, naming the port, when something listens there already.
fn check_ports_free(ports: &[u16]) {
    for port in ports {
        assert!(
            TcpListener::bind(("127.0.0.1", *port)).is_ok(),
            "port {port} is in use by another process: the broker needs it"
        );
    }
}

/// `count` local ports nobody listens on now, chosen by the kernel. The
/// broker binds them a moment later; another process taking one in between
/// is unlikely, and the start refuses a port in use with a clear message.
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

/// Fails the test, saying what to do, when Java or the Kafka jars are missing
/// (installing them is scripts/kafka.sh's job, not a test's).
fn check_java_and_jars(home: &Path) {
    let java = Command::new("java").arg("-version").output();
    assert!(
        java.is_ok_and(|out| out.status.success()),
        "this test starts its own Apache Kafka and needs Java 17 or later on PATH: \
         scripts/kafka.sh install installs it and the jars"
    );
    let libs = home.join("libs");
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
