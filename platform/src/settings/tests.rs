//! The settings loader's unit tests: layers, validation, the repository's
//! config/default.toml against the defaults in code.
use std::time::Duration;

use super::*;

/// The repository's settings with `pairs` (`BAYES__...` variables) on top.
fn load_with(pairs: &[(&str, &str)]) -> Result<Settings, SettingsError> {
    let dir = ("BAYES_CONFIG_DIR".to_owned(), repo_config_dir());
    let pairs = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()));
    Settings::load_from(std::iter::once(dir).chain(pairs))
}

fn repo_config_dir() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/../config").to_owned()
}

#[test]
fn default_toml_says_exactly_what_the_code_defaults_are() {
    let from_file = load_with(&[]).unwrap();
    // Compared as serialized values, so a field added later cannot escape.
    let as_value = |settings: &Settings| serde_json::to_value(settings).unwrap();
    assert_eq!(as_value(&from_file), as_value(&Settings::default()));
}

#[test]
fn environment_variables_override_the_file() {
    let settings = load_with(&[
        ("BAYES__KAFKA__BROKERS", "kafka:29092"),
        ("BAYES__PRODUCER__PORT", "9100"),
        ("BAYES__KAFKA__LIBRDKAFKA__SOCKET_TIMEOUT_MS", "3000"),
        ("BAYES__MODELS__DEFAULT_MODEL", "coin"),
    ])
    .unwrap();
    assert_eq!(settings.kafka.brokers, "kafka:29092");
    assert_eq!(settings.producer.port, 9100);
    assert_eq!(settings.models.default_model.as_str(), "coin");
    let options: Vec<_> = settings.kafka.librdkafka_options().collect();
    assert_eq!(options, vec![("socket.timeout.ms", "3000")]);
}

#[test]
fn an_invalid_value_is_an_error_not_a_default() {
    let err = load_with(&[("BAYES__MODELS__DEFAULT_MODEL", "Not Valid")]).unwrap_err();
    assert!(err.to_string().contains("model id"), "{err}");
    let err = load_with(&[("BAYES__PRODUCER__PORT", "eighty")]).unwrap_err();
    assert!(err.to_string().contains("port"), "{err}");
}

/// The setting a refused value names, or `None` when it is accepted.
fn refused(change: impl FnOnce(&mut Settings)) -> Option<&'static str> {
    let mut settings = Settings::default();
    change(&mut settings);
    match settings.validate() {
        Ok(()) => None,
        Err(SettingsError::Invalid { setting, .. }) => Some(setting),
        Err(other) => panic!("not a validation error: {other}"),
    }
}

#[test]
fn the_defaults_are_valid() {
    assert_eq!(refused(|_| {}), None);
}

#[test]
fn values_no_service_can_run_with_are_refused_with_the_settings_name() {
    let long = |n: usize| "a".repeat(n);
    type Change = Box<dyn FnOnce(&mut Settings)>;
    let cases: Vec<(&str, Change)> = vec![
        (
            "models.default_grid_size",
            Box::new(|s| s.models.default_grid_size = 1),
        ),
        (
            "models.default_grid_size",
            Box::new(|s| s.models.default_grid_size = 100_001),
        ),
        ("kafka.brokers", Box::new(|s| s.kafka.brokers = " ".into())),
        ("kafka.topic", Box::new(|s| s.kafka.topic = String::new())),
        (
            "kafka.topic",
            Box::new(|s| s.kafka.topic = "obs ervations".into()),
        ),
        ("kafka.topic", Box::new(move |s| s.kafka.topic = long(250))),
        (
            "kafka.dlq_topic",
            Box::new(|s| s.kafka.dlq_topic = "observations".into()),
        ),
        ("kafka.partitions", Box::new(|s| s.kafka.partitions = 0)),
        (
            "kafka.replication_factor",
            Box::new(|s| s.kafka.replication_factor = 0),
        ),
        (
            "kafka.min_insync_replicas",
            Box::new(|s| s.kafka.min_insync_replicas = 2),
        ),
        (
            "kafka.min_insync_replicas",
            Box::new(|s| s.kafka.min_insync_replicas = 0),
        ),
        (
            "database.max_connections",
            Box::new(|s| s.database.max_connections = 0),
        ),
        (
            "database.notify_channel",
            Box::new(|s| s.database.notify_channel = String::new()),
        ),
        (
            "database.notify_channel",
            Box::new(move |s| s.database.notify_channel = long(64)),
        ),
        // 63 bytes, but more characters would not fit: bytes count.
        (
            "database.notify_channel",
            Box::new(|s| s.database.notify_channel = "é".repeat(32)),
        ),
        ("producer.max_batch", Box::new(|s| s.producer.max_batch = 0)),
        (
            "consumer.group_id",
            Box::new(|s| s.consumer.group_id = String::new()),
        ),
        (
            "consumer.group_id",
            Box::new(move |s| s.consumer.group_id = long(256)),
        ),
        (
            "consumer.batch_size",
            Box::new(|s| s.consumer.batch_size = 0),
        ),
        (
            "consumer.lag_refresh",
            Box::new(|s| s.consumer.lag_refresh = Duration::ZERO),
        ),
        (
            "http.header_read_timeout",
            Box::new(|s| s.http.header_read_timeout = Duration::ZERO),
        ),
        (
            "http.body_timeout",
            Box::new(|s| s.http.body_timeout = Duration::ZERO),
        ),
        (
            "http.write_stall_timeout",
            Box::new(|s| s.http.write_stall_timeout = Duration::ZERO),
        ),
        (
            "http.max_connections",
            Box::new(|s| s.http.max_connections = 0),
        ),
        (
            "http.trusted_origins",
            Box::new(|s| s.http.trusted_origins = vec!["https://a.example/path".into()]),
        ),
        (
            "http.trusted_origins",
            Box::new(|s| s.http.trusted_origins = vec!["a.example".into()]),
        ),
        (
            "http.allowed_hosts",
            Box::new(|s| s.http.allowed_hosts = vec!["https://a.example".into()]),
        ),
        (
            "uploads.body_idle_timeout",
            Box::new(|s| s.uploads.body_idle_timeout = Duration::ZERO),
        ),
        (
            "model_service.max_event_streams",
            Box::new(|s| s.model_service.max_event_streams = 0),
        ),
        (
            "model_service.max_event_streams_per_client",
            Box::new(|s| s.model_service.max_event_streams_per_client = 0),
        ),
        (
            "auth.bootstrap_admin_key",
            Box::new(|s| s.auth.bootstrap_admin_key = Some("k".repeat(31).into())),
        ),
        (
            "auth.bootstrap_admin_key",
            Box::new(|s| s.auth.bootstrap_admin_key = Some(format!("{} x", "k".repeat(32)).into())),
        ),
        (
            "auth.notify_channel",
            Box::new(|s| s.auth.notify_channel = String::new()),
        ),
        (
            "auth.reload_interval",
            Box::new(|s| s.auth.reload_interval = Duration::ZERO),
        ),
        (
            "auth.last_used_interval",
            Box::new(|s| s.auth.last_used_interval = Duration::ZERO),
        ),
        ("auth.max_keys", Box::new(|s| s.auth.max_keys = 0)),
        (
            "models.known_models_refresh",
            Box::new(|s| s.models.known_models_refresh = Duration::ZERO),
        ),
    ];
    for (setting, change) in cases {
        assert_eq!(refused(change), Some(setting));
    }
}

#[test]
fn values_at_the_limits_are_accepted() {
    assert_eq!(refused(|s| s.models.default_grid_size = 2), None);
    assert_eq!(
        refused(|s| s.database.notify_channel = "a".repeat(63)),
        None
    );
    assert_eq!(refused(|s| s.consumer.group_id = "g".repeat(255)), None);
    assert_eq!(refused(|s| s.kafka.topic = "t.-_9".repeat(49)), None);
    assert_eq!(
        refused(|s| s.auth.bootstrap_admin_key = Some("k".repeat(32).into())),
        None
    );
}

#[test]
fn loading_refuses_an_invalid_value_and_names_the_setting() {
    let err = load_with(&[("BAYES__MODELS__DEFAULT_GRID_SIZE", "1")]).unwrap_err();
    assert!(
        err.to_string().contains("models.default_grid_size"),
        "{err}"
    );
}

#[test]
fn http_lists_read_from_one_comma_separated_environment_variable() {
    let settings = load_with(&[
        (
            "BAYES__HTTP__ALLOWED_HOSTS",
            "api.example.com, localhost:8000,",
        ),
        ("BAYES__HTTP__TRUSTED_ORIGINS", "https://app.example.com"),
    ])
    .unwrap();
    assert_eq!(
        settings.http.allowed_hosts,
        ["api.example.com", "localhost:8000"]
    );
    assert_eq!(settings.http.trusted_origins, ["https://app.example.com"]);
    assert_eq!(
        refused(|s| s.http.trusted_origins = vec!["http://localhost:8000".into()]),
        None
    );
}

#[test]
fn the_offset_gap_policy_reads_from_its_name() {
    let settings = load_with(&[("BAYES__CONSUMER__ON_OFFSET_GAP", "earliest")]).unwrap();
    assert_eq!(settings.consumer.on_offset_gap, OnOffsetGap::Earliest);
}
