//! A service binary started as an operator would start it: settings in its
//! environment (and nothing else of the test's), output appended to a log
//! file, for the tests that SIGKILL it.

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
