//! Where settings come from besides the files: librdkafka options from the
//! environment (normalised once, winning over the files' spelling),
//! `..._FILE` variables, and what `Debug` shows of the secrets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use platform::settings::{Settings, SettingsError};
use secrecy::ExposeSecret;

use test_support::settings_env as env;

fn write(dir: &Path, name: &str, content: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path.display().to_string()
}

#[test]
fn a_librdkafka_option_from_the_environment_is_stored_in_librdkafkas_spelling() {
    let settings = Settings::load_from(env(&[(
        "BAYES__KAFKA__LIBRDKAFKA__SESSION_TIMEOUT_MS",
        "6000",
    )]))
    .unwrap();
    assert!(settings.kafka.librdkafka.contains_key("session.timeout.ms"));
    assert_eq!(
        settings.kafka.librdkafka.get("session.timeout.ms"),
        Some("6000")
    );
    assert!(!settings.kafka.librdkafka.contains_key("session_timeout_ms"));
}

#[test]
fn the_environment_wins_over_an_overlay_file_for_a_librdkafka_option() {
    let dir = tempfile::tempdir().unwrap();
    let base = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../config/default.toml"
    ))
    .unwrap();
    write(dir.path(), "default.toml", &base);
    write(
        dir.path(),
        "prod.toml",
        "[kafka.librdkafka]\n\"session.timeout.ms\" = \"10000\"\nssl_ca_location = \"/etc/ca.pem\"\n",
    );
    let settings = Settings::load_from([
        (
            "BAYES_CONFIG_DIR".to_owned(),
            dir.path().display().to_string(),
        ),
        ("BAYES_ENV".to_owned(), "prod".to_owned()),
        (
            "BAYES__KAFKA__LIBRDKAFKA__SESSION_TIMEOUT_MS".to_owned(),
            "6000".to_owned(),
        ),
    ])
    .unwrap();
    let options: Vec<_> = settings.kafka.librdkafka_options().collect();
    assert_eq!(
        options,
        [
            ("session.timeout.ms", "6000"),
            ("ssl.ca.location", "/etc/ca.pem")
        ]
    );
}

#[test]
fn a_secret_can_come_from_a_file_as_compose_and_kubernetes_mount_them() {
    let dir = tempfile::tempdir().unwrap();
    let password = write(dir.path(), "kafka_password", "s3cret-pw\n");
    let url = write(
        dir.path(),
        "database_url",
        "postgres://app:db-pw@db:5432/bayes",
    );
    let settings = Settings::load_from(env(&[
        ("BAYES__KAFKA__LIBRDKAFKA__SASL_PASSWORD_FILE", &password),
        ("BAYES__DATABASE__URL_FILE", &url),
    ]))
    .unwrap();
    // The trailing line break `echo` writes is not part of the password.
    assert_eq!(
        settings.kafka.librdkafka.get("sasl.password"),
        Some("s3cret-pw")
    );
    assert_eq!(
        settings.database.url.expose_secret(),
        "postgres://app:db-pw@db:5432/bayes"
    );
}

#[test]
fn a_setting_given_both_directly_and_from_a_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let url = write(dir.path(), "database_url", "postgres://a@b/c");
    let err = Settings::load_from(env(&[
        ("BAYES__DATABASE__URL", "postgres://x@y/z"),
        ("BAYES__DATABASE__URL_FILE", &url),
    ]))
    .unwrap_err();
    assert!(matches!(err, SettingsError::SecretFile(_)), "{err}");
    assert!(err.to_string().contains("BAYES__DATABASE__URL"), "{err}");
}

#[test]
fn a_missing_secret_file_names_the_variable_and_the_path() {
    let err = Settings::load_from(env(&[(
        "BAYES__KAFKA__LIBRDKAFKA__SASL_PASSWORD_FILE",
        "/nonexistent/kafka_password",
    )]))
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("BAYES__KAFKA__LIBRDKAFKA__SASL_PASSWORD_FILE"),
        "{text}"
    );
    assert!(text.contains("/nonexistent/kafka_password"), "{text}");
}

#[test]
fn debug_of_the_settings_shows_no_secret() {
    let settings = Settings::load_from(env(&[
        (
            "BAYES__DATABASE__URL",
            "postgres://app:db-pw-123@db:5432/bayes",
        ),
        ("BAYES__KAFKA__LIBRDKAFKA__SECURITY_PROTOCOL", "SASL_SSL"),
        ("BAYES__KAFKA__LIBRDKAFKA__SASL_USERNAME", "app"),
        ("BAYES__KAFKA__LIBRDKAFKA__SASL_PASSWORD", "kafka-pw-123"),
        ("BAYES__KAFKA__LIBRDKAFKA__SSL_KEY_PASSWORD", "key-pw-123"),
        (
            "BAYES__KAFKA__LIBRDKAFKA__SSL_KEYSTORE_PASSWORD",
            "store-pw-123",
        ),
        (
            "BAYES__KAFKA__LIBRDKAFKA__SSL_KEY_PEM",
            "-----BEGIN PRIVATE KEY-----pem-123",
        ),
    ]))
    .unwrap();
    let printed = format!("{settings:?}");
    for secret in [
        "db-pw-123",
        "kafka-pw-123",
        "key-pw-123",
        "store-pw-123",
        "pem-123",
    ] {
        assert!(!printed.contains(secret), "Debug shows {secret}: {printed}");
    }
    assert!(printed.contains("SASL_SSL"), "{printed}");
}
