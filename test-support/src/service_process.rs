//! A service binary started as an operator would start it: settings in its
//! environment (and nothing else of the test's), output appended to a log
//! file, for the tests that SIGKILL it or read what it logs
//! ([`WatchedService`]).

use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use platform::settings::Settings;
use secrecy::ExposeSecret;

/// Starts `binary` with the variables every service of `settings` needs
/// (configuration directory, broker, topics, database, consumer group),
/// then `extra`, which may override them; stdout and stderr go to `log`.
pub fn spawn_service(
    binary: &str,
    settings: &Settings,
    extra: &[(&str, String)],
    log: &Path,
) -> Child {
    let out = File::options()
        .create(true)
        .append(true)
        .open(log)
        .expect("log file");
    let err = out.try_clone().expect("log file");
    let common: [(&str, String); 7] = [
        (
            "BAYES_CONFIG_DIR",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../config").to_owned(),
        ),
        ("BAYES__KAFKA__BROKERS", settings.kafka.brokers.clone()),
        ("BAYES__KAFKA__TOPIC", settings.kafka.topic.clone()),
        ("BAYES__KAFKA__DLQ_TOPIC", settings.kafka.dlq_topic.clone()),
        ("BAYES__KAFKA__CREATE_TOPICS", "false".into()),
        (
            "BAYES__DATABASE__URL",
            settings.database.url.expose_secret().to_owned(),
        ),
        (
            "BAYES__CONSUMER__GROUP_ID",
            settings.consumer.group_id.clone(),
        ),
    ];
    Command::new(binary)
        .env_clear()
        .envs(common)
        .envs(extra.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {binary}: {e}"))
}

/// A service binary started by [`spawn_service`] with JSON log lines, for
/// the tests that read what an operator would see: its answers while it
/// runs, and its log. Killed on drop.
#[derive(Debug)]
pub struct WatchedService {
    child: Child,
    log: std::path::PathBuf,
    client: reqwest::Client,
}

impl WatchedService {
    /// Starts `binary` as [`spawn_service`] does, logging JSON into `log`.
    pub fn start(binary: &str, settings: &Settings, extra: &[(&str, String)], log: &Path) -> Self {
        let mut env = vec![("BAYES__TELEMETRY__LOG_FORMAT", "json".to_owned())];
        env.extend(extra.iter().cloned());
        Self {
            child: spawn_service(binary, settings, &env, log),
            log: log.to_owned(),
            client: reqwest::Client::new(),
        }
    }

    /// Polls `url` until it answers `status` with a body that contains
    /// `needle`, and returns the body; fails the test, with the log, if the
    /// process exits first or the deadline passes.
    pub async fn wait_for_answer(&mut self, url: &str, status: u16, needle: &str) -> String {
        let client = self.client.clone();
        let what = format!("{url} answers {status} with {needle:?}");
        let mut last = String::new();
        let found = crate::eventually_within(crate::DEADLINE, &what, async || {
            if let Ok(Some(exit)) = self.child.try_wait() {
                panic!("the service exited ({exit}); its log:\n{}", self.log_text());
            }
            let response = client.get(url).send().await.ok()?;
            let code = response.status().as_u16();
            let body = response.text().await.ok()?;
            last = format!("{code} {body}");
            (code == status && body.contains(needle)).then_some(body)
        })
        .await;
        assert!(!found.is_empty(), "last answer: {last}");
        found
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The log's lines at `level` (`ERROR`, `WARN`, ...), as JSON objects.
    pub fn log_lines_at(&self, level: &str) -> Vec<serde_json::Value> {
        self.log_text()
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|line| line["level"] == level)
            .collect()
    }

    /// What an operator must see of a service waiting for a database that
    /// refuses it: one error line about the database naming `cause`, the
    /// process still running, and `database_waiting{service="<service>"}`
    /// at 1 on `metrics_url`.
    pub async fn assert_waiting_for_database(
        &mut self,
        metrics_url: &str,
        service: &str,
        cause: &str,
    ) {
        // Only the database's: librdkafka logs its own about a missing broker.
        let errors: Vec<String> = self
            .log_lines_at("ERROR")
            .iter()
            .map(serde_json::Value::to_string)
            .filter(|line| line.contains("database"))
            .collect();
        assert_eq!(errors.len(), 1, "{}", self.log_text());
        assert!(errors[0].contains(cause), "{}", errors[0]);
        assert!(self.is_running(), "{}", self.log_text());
        let gauge = format!("database_waiting{{service=\"{service}\"}} 1");
        self.wait_for_answer(metrics_url, 200, &gauge).await;
    }

    /// The whole log.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for WatchedService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
