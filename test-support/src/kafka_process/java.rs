//! The java command lines of a test broker, as scripts/lib/kafka.sh builds
//! them for people (`_kafka_java_cmd`, `kafka_start`): the jars of
//! `.dev/kafka/libs`, upstream's JVM options, logging into the broker's
//! directory, and the class-data sharing archive the scripts leave, which
//! cuts a broker's start-up CPU by about 40%.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, UNIX_EPOCH};

/// upstream's kafka-run-class.sh defaults.
const JVM_OPTIONS: [&str; 6] = [
    "-server",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-Djava.awt.headless=true",
];

/// The broker logs INFO to `server.log` in its directory and only WARN and
/// above to its console (`kafka.out`): the scripts' configuration.
const SERVER_LOG4J: &str = include_str!("../../../scripts/kafka/server-log4j2.properties");

/// Tools (the storage format) log WARN and above to stderr.
const TOOLS_LOG4J: &str = include_str!("../../../scripts/kafka/tools-log4j2.properties");

/// Where the jars are, and the commands made from them.
#[derive(Debug, Clone)]
pub(crate) struct Java {
    pub home: PathBuf,
}

impl Java {
    fn classpath(&self) -> String {
        format!("{}/libs/*", self.home.display())
    }

    /// Formats the storage the properties name: a short-lived JVM tuned to
    /// start fast rather than run fast, killed after a minute. The test fails
    /// with the tool's output when it does.
    pub fn format_storage(&self, dir: &Path, args: &[String]) {
        let log4j = dir.join("tools-log4j2.properties");
        std::fs::write(&log4j, TOOLS_LOG4J).expect("writing the tools' log configuration");
        let log = dir.join("format.log");
        let mut command = Command::new("java");
        command
            .args([
                "-Xmx128M",
                "-XX:+UseSerialGC",
                "-XX:TieredStopAtLevel=1",
                "-Djava.awt.headless=true",
            ])
            .arg(format!("-Dlog4j2.configurationFile={}", log4j.display()))
            .arg("-cp")
            .arg(self.classpath())
            .args(["kafka.tools.StorageTool", "format"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(log_file(&log))
            .stderr(log_file(&log));
        let mut child = command
            .spawn()
            .expect("running java (kafka-storage format)");
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = child.try_wait().expect("waiting for kafka-storage format") {
                break Some(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            // Polling a child process: it takes 2-3 s, so a coarse step.
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(
            status.is_some_and(|s| s.success()),
            "formatting the broker's storage in {} failed ({status:?}):\n{}",
            dir.display(),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// The broker's command line: `kafka.Kafka server.properties` with its
    /// logs in `dir`, its output in `dir/kafka.out`, in a process group of
    /// its own (so a Ctrl-C meant for the test runner does not reach it).
    pub fn broker_command(&self, dir: &Path) -> Command {
        let log4j = dir.join("server-log4j2.properties");
        std::fs::write(&log4j, SERVER_LOG4J).expect("writing the broker's log configuration");
        let out = dir.join("kafka.out");
        let mut command = Command::new("java");
        command
            .args(["-Xms128M", "-Xmx512M"])
            .args(JVM_OPTIONS)
            .args(self.class_data_sharing())
            .arg(format!("-XX:ErrorFile={}/hs_err_pid%p.log", dir.display()))
            .arg(format!("-Dlog4j2.configurationFile={}", log4j.display()))
            .arg(format!("-Dkafka.logs.dir={}", dir.display()))
            .arg("-cp")
            .arg(self.classpath())
            .arg("kafka.Kafka")
            .arg(dir.join("server.properties"))
            .stdin(Stdio::null())
            .stdout(log_file(&out))
            .stderr(log_file(&out));
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        command
    }

    /// The options that map the scripts' broker archive
    /// (`broker-<java's mtime>.jsa`, made when `scripts/kafka.sh` stops a
    /// broker) when there is one and this JVM maps it (checked once per test
    /// process: a bad archive would crash the broker). None otherwise: the
    /// tests kill their brokers, so they never make one themselves.
    fn class_data_sharing(&self) -> Vec<String> {
        static USABLE: OnceLock<Option<PathBuf>> = OnceLock::new();
        let archive = USABLE.get_or_init(|| {
            let archive = self.home.join(format!("broker-{}.jsa", java_mtime()?));
            let maps = Command::new("java")
                .arg("-Xshare:on")
                .arg(format!("-XX:SharedArchiveFile={}", archive.display()))
                .args(["-XX:ErrorFile=/dev/null", "-XX:-CreateCoredumpOnCrash"])
                .arg("-cp")
                .arg(self.classpath())
                .arg("-version")
                .output()
                .is_ok_and(|out| out.status.success());
            (archive.is_file() && maps).then_some(archive)
        });
        match archive {
            Some(archive) => vec![
                format!("-XX:SharedArchiveFile={}", archive.display()),
                "-Xlog:cds*=off".to_owned(),
                "-Xlog:cds*=error:stderr".to_owned(),
            ],
            None => Vec::new(),
        }
    }
}

/// The modification time (seconds) of the `java` binary on PATH, symbolic
/// links resolved: the scripts name the archives by it, so that a new JDK
/// never maps an old JDK's archive.
fn java_mtime() -> Option<u64> {
    let path = std::env::var_os("PATH")?;
    let java = std::env::split_paths(&path)
        .map(|dir| dir.join("java"))
        .find(|candidate| candidate.is_file())?;
    let modified = std::fs::metadata(std::fs::canonicalize(java).ok()?)
        .ok()?
        .modified()
        .ok()?;
    Some(modified.duration_since(UNIX_EPOCH).ok()?.as_secs())
}

fn log_file(path: &Path) -> Stdio {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map(Stdio::from)
        .expect("opening a log file")
}
