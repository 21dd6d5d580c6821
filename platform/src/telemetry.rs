//! Logs (`tracing-subscriber`) and metrics (Prometheus) set-up shared by the services.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::{fmt, EnvFilter};

use crate::settings::{LogFormat, TelemetrySettings};

/// Installs the global tracing subscriber: `RUST_LOG` when set, else the
/// configured filter; human or JSON lines on stdout. Calling it again is harmless.
pub fn init_tracing(settings: &TelemetrySettings) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.log_filter));
    let builder = fmt().with_env_filter(filter).with_target(true);
    // `try_init` fails only when a subscriber is already set (tests that start
    // several services in one process); the first one stays.
    let _ = match settings.log_format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Buckets for latencies in seconds, from 50 µs to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0,
];

/// Buckets for batch sizes, in records.
const SIZE_BUCKETS: &[f64] = &[1.0, 10.0, 100.0, 1_000.0, 5_000.0, 10_000.0, 50_000.0];

/// Installs the process-wide Prometheus recorder once and returns its handle,
/// which renders `/metrics`. Metrics ending in `_seconds` are histograms with
/// latency buckets, those ending in `_records` histograms of batch sizes.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Suffix("_seconds".into()),
                    LATENCY_BUCKETS,
                )
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        metrics_exporter_prometheus::Matcher::Suffix("_records".into()),
                        SIZE_BUCKETS,
                    )
                })
                .unwrap_or_else(|_| PrometheusBuilder::new());
            match builder.install_recorder() {
                Ok(handle) => handle,
                // Another recorder is already installed (a test harness): keep a
                // private one so `/metrics` still renders.
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            }
        })
        .clone()
}
