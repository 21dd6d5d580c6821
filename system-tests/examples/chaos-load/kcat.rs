//! The chaos load's Kafka side, through kcat: publishing a chunk of records,
//! asking the broker for its end offsets, reading the whole topic. kcat
//! reaches the broker with the services' librdkafka options (`-F`, the file
//! scripts/chaos.sh writes), so a TLS or SASL broker needs nothing more here.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long one kcat publishing run may take before it is killed and its
/// chunk sent again: more than its message timeout (15 s) plus connecting.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(40);
/// How long asking for the end offsets may take.
const QUERY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long reading the whole topic may take.
const READ_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum KcatError {
    #[error("running kcat: {0}")]
    Spawn(#[from] std::io::Error),
    #[error("kcat took longer than {0:?} and was killed")]
    Timeout(Duration),
    #[error("kcat failed ({status}): {stderr}")]
    Failed { status: String, stderr: String },
}

/// The options naming the broker and the topic, shared by `run` and `verify`.
#[derive(Debug, clap::Args)]
pub struct KafkaArgs {
    #[arg(long)]
    pub brokers: String,
    /// A `kcat -F` file: the services' librdkafka options.
    #[arg(long)]
    pub kcat_config: Option<PathBuf>,
    #[arg(long, default_value = "observations")]
    pub topic: String,
}

impl KafkaArgs {
    /// kcat for these brokers.
    pub fn kcat(&self) -> Kcat {
        Kcat {
            brokers: self.brokers.clone(),
            config: self.kcat_config.clone(),
        }
    }
}

/// kcat and the broker it talks to.
#[derive(Debug, Clone)]
pub struct Kcat {
    pub brokers: String,
    /// A `kcat -F` file: the services' librdkafka options.
    pub config: Option<PathBuf>,
}

impl Kcat {
    fn command(&self) -> Command {
        let mut command = Command::new("kcat");
        command.arg("-b").arg(&self.brokers);
        if let Some(config) = &self.config {
            command.arg("-F").arg(config);
        }
        command
    }

    /// Publishes `chunk` (`key<TAB>value` lines) to `topic`; true when kcat
    /// says every record was delivered (it exits 1 when a delivery failed or
    /// the broker cannot be reached).
    pub async fn publish(&self, topic: &str, chunk: Vec<u8>) -> bool {
        let mut command = self.command();
        command.args(["-t", topic, "-P", "-K", "\t"]);
        command.args([
            "-X",
            "message.timeout.ms=15000",
            "-X",
            "socket.timeout.ms=10000",
        ]);
        run(command, Some(chunk), PUBLISH_TIMEOUT).await.is_ok()
    }

    /// The end offset (high watermark) of each of `topic`'s first
    /// `partitions` partitions that the broker reports.
    pub async fn end_offsets(
        &self,
        topic: &str,
        partitions: i32,
    ) -> Result<BTreeMap<i32, i64>, KcatError> {
        let mut command = self.command();
        command.arg("-Q");
        for partition in 0..partitions {
            command.arg("-t").arg(format!("{topic}:{partition}:-1"));
        }
        let output = run(command, None, QUERY_TIMEOUT).await?;
        // One line per partition: `observations [2] offset 1234`.
        Ok(String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(
                |line| match line.split_whitespace().collect::<Vec<_>>()[..] {
                    [_, partition, "offset", offset] => Some((
                        partition.trim_matches(['[', ']']).parse().ok()?,
                        offset.parse().ok()?,
                    )),
                    _ => None,
                },
            )
            .collect())
    }

    /// Every record value of `topic`, one a line, from the beginning to the
    /// end offsets of the moment.
    pub async fn read_values(&self, topic: &str) -> Result<String, KcatError> {
        let mut command = self.command();
        command.args([
            "-t",
            topic,
            "-C",
            "-o",
            "beginning",
            "-e",
            "-q",
            "-f",
            "%s\n",
        ]);
        let output = run(command, None, READ_TIMEOUT).await?;
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

/// Runs `command` with `input` on its standard input, killed after `timeout`;
/// its output when it exits 0.
async fn run(
    command: Command,
    input: Option<Vec<u8>>,
    timeout: Duration,
) -> Result<Output, KcatError> {
    // std's process, on a blocking thread: the workspace's tokio has no
    // `process` feature, and adding one would rebuild every crate.
    tokio::task::spawn_blocking(move || run_blocking(command, input, timeout))
        .await
        .unwrap_or_else(|e| Err(KcatError::Spawn(std::io::Error::other(e))))
}

fn run_blocking(
    mut command: Command,
    input: Option<Vec<u8>>,
    timeout: Duration,
) -> Result<Output, KcatError> {
    let mut child = command
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    // Each pipe on a thread of its own, so neither fills up while we wait.
    let stdin = child.stdin.take();
    let writer = std::thread::spawn(move || {
        if let (Some(mut stdin), Some(input)) = (stdin, input) {
            // A kcat that exits early closes the pipe: its status says why.
            let _ = stdin.write_all(&input);
        }
    });
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(KcatError::Timeout(timeout));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = writer.join();
    let output = Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    };
    if output.status.success() {
        Ok(output)
    } else {
        Err(KcatError::Failed {
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}
