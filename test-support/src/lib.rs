//! What the test suites and benchmarks share; a dev-dependency only, so no
//! production crate carries test code.
//!
//! - [`TestEnvironment`]: where the services are (`DATABASE_URL`, `KAFKA_BROKERS`);
//! - [`broker::TestBroker`]: the broker named by `KAFKA_BROKERS`, or
//!   librdkafka's mock cluster in-process, with topic creation and a reader;
//! - [`kafka_process::KafkaProcess`]: an Apache Kafka of a test's own, to
//!   kill and restart or to start with listeners (TLS, SASL) and settings
//!   of the test's;
//! - [`certs::CertificateAuthority`]: a private CA and the certificates a
//!   TLS broker, a TLS Postgres and their clients present, made by the test;
//! - [`database::TestDatabase`]: a fresh, migrated database per test;
//! - [`postgres_process::PostgresProcess`]: a TLS-only Postgres of a test
//!   binary's own, with certificates made on the spot;
//! - [`proxy::PgProxy`]: a TCP proxy in front of Postgres that fails on cue;
//! - [`raw_http::RawConnection`]: HTTP/1.1 by hand on a socket, for the
//!   tests of slow, partial and odd requests;
//! - [`eventually`] and [`unique`]: waiting by polling with a deadline, and
//!   names no other test uses;
//! - [`settings_with`]: the repository's settings with environment
//!   variables of the test's on top;
//! - [`bench`]: the benchmarks' HTTP load loop and latency histograms.

#![allow(clippy::expect_used, clippy::unwrap_used)]

pub mod bench;
pub mod broker;
pub mod certs;
pub mod database;
pub mod kafka_process;
pub mod postgres_process;
pub mod proxy;
pub mod raw_http;
pub mod service_process;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tracing_subscriber::{fmt, EnvFilter};

/// The longest any wait in a test may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Where the test suites find their services: `DATABASE_URL` (a server on
/// which tests may create databases; default the local Postgres) and
/// `KAFKA_BROKERS` (an external broker; when unset, tests start librdkafka's
/// mock cluster in-process).
#[derive(Debug, Clone)]
pub struct TestEnvironment {
    pub database_url: String,
    pub kafka_brokers: Option<String>,
    /// Where the Apache Kafka jars are (`BAYES_KAFKA_HOME`, as
    /// scripts/lib/kafka.sh reads it; default `.dev/kafka` in the repository).
    pub kafka_home: PathBuf,
    /// `UPDATE_OPENAPI` is set: the OpenAPI test rewrites `openapi.json`
    /// instead of comparing with it.
    pub update_openapi: bool,
}

impl TestEnvironment {
    pub fn from_env() -> Self {
        Self {
            database_url: std::env::var("DATABASE_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned()),
            kafka_brokers: std::env::var("KAFKA_BROKERS")
                .ok()
                .filter(|b| !b.is_empty()),
            kafka_home: std::env::var_os("BAYES_KAFKA_HOME")
                .filter(|h| !h.is_empty())
                .map_or_else(
                    || Path::new(env!("CARGO_MANIFEST_DIR")).join("../.dev/kafka"),
                    PathBuf::from,
                ),
            update_openapi: std::env::var_os("UPDATE_OPENAPI").is_some(),
        }
    }
}

/// Quiet tracing for tests, unless `TEST_LOG` is set (then everything at debug).
pub fn init_tracing() {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = fmt()
            .with_env_filter(EnvFilter::new("debug"))
            .with_test_writer()
            .try_init();
    }
}

/// Polls `check` until it returns `Some`, failing the test after [`DEADLINE`]
/// with `what` in the message.
pub async fn eventually<T>(what: &str, check: impl AsyncFnMut() -> Option<T>) -> T {
    eventually_within(DEADLINE, what, check).await
}

/// [`eventually`] with a deadline of the caller's.
pub async fn eventually_within<T>(
    deadline: Duration,
    what: &str,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> T {
    let until = Instant::now() + deadline;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < until,
            "timed out after {deadline:?} waiting until {what}"
        );
        // A short pause between polls, not a synchronisation: the loop ends
        // as soon as the condition holds.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `prefix-<uuid>`: a topic, group or channel name no other test uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// The variables `Settings::load_from` reads for the repository's
/// `config/` with `pairs` (`BAYES__...` variables) on top.
pub fn settings_env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/../config");
    std::iter::once(("BAYES_CONFIG_DIR", config))
        .chain(pairs.iter().copied())
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// The repository's settings with `pairs` (`BAYES__...` variables) on top,
/// as a service would load them.
pub fn settings_with(pairs: &[(&str, &str)]) -> platform::settings::Settings {
    platform::settings::Settings::load_from(settings_env(pairs))
        .unwrap_or_else(|e| panic!("loading settings with {pairs:?}: {e}"))
}
