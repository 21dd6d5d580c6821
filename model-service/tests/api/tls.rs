//! The model service on a TLS-only Postgres of this binary's own
//! (`test_support::postgres_process`): with `sslmode=verify-full`, a CA file
//! and a client certificate it migrates, listens and serves; with a CA
//! that did not sign the server's certificate it keeps its port, says why
//! on `/readyz` and in one error line, and starts once the CA file is
//! fixed, without a restart.

use platform::settings::Settings;
use serde_json::{json, Value};
use test_support::certs::CertificateAuthority;
use test_support::kafka_process::free_ports;
use test_support::postgres_process::{PostgresProcess, CERT_ROLE};
use test_support::service_process::WatchedService;
use test_support::unique;

use crate::helpers::spawn_app_with;

#[tokio::test]
async fn reads_and_writes_work_over_verify_full_with_a_client_certificate() {
    let tls = PostgresProcess::shared().database_settings();
    let app = spawn_app_with(|s| s.database = tls).await;
    let put = app
        .put_json(
            "/models/over-tls",
            &json!({"prior": {"type": "beta", "a": 2.0, "b": 2.0}, "grid_size": 101}),
        )
        .await;
    assert!(put.status().is_success(), "{}", put.status());
    let model = app.get_json("/models/over-tls", 200).await;
    assert_eq!(model["grid_size"], 101, "{model}");
    let ready = app.get_json("/readyz", 200).await;
    assert_eq!(ready["status"], "ready");
}

#[tokio::test]
async fn a_server_certificate_from_another_ca_keeps_the_port_says_why_and_heals_when_the_ca_file_is_fixed(
) {
    let server = PostgresProcess::shared();
    let database = server.create_database(CERT_ROLE);
    let client = server.client_cert(CERT_ROLE);
    // The CA file the service trusts holds another CA at first.
    let ca_file = server.client_dir().join(unique("ca-file"));
    std::fs::write(&ca_file, CertificateAuthority::new("another CA").pem()).unwrap();
    let mut settings = Settings::default();
    settings.database.url = server
        .cert_url(
            "127.0.0.1",
            &database,
            "verify-full",
            &ca_file,
            Some(&client),
        )
        .into();
    let port = free_ports(1)[0];
    let mut service = WatchedService::start(
        env!("CARGO_BIN_EXE_model-service"),
        &settings,
        &[
            ("BAYES__MODEL_SERVICE__PORT", port.to_string()),
            ("BAYES__TELEMETRY__LOG_FILTER", "info".to_owned()),
        ],
        &std::env::temp_dir().join(format!("{}.log", unique("model-service-tls"))),
    );
    let base = format!("http://127.0.0.1:{port}");
    let body = service
        .wait_for_answer(&format!("{base}/readyz"), 503, "UnknownIssuer")
        .await;
    let ready: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ready["checks"][0]["name"], "database", "{ready}");
    assert_eq!(ready["checks"][0]["ok"], false, "{ready}");
    service
        .wait_for_answer(&format!("{base}/healthz"), 200, "ok")
        .await;
    service
        .wait_for_answer(&format!("{base}/models"), 503, "database_unavailable")
        .await;
    // Retried (a warning each), reported once at error level, alive.
    test_support::eventually("the service retried twice", async || {
        (service.log_lines_at("WARN").len() >= 2).then_some(())
    })
    .await;
    service
        .assert_waiting_for_database(&format!("{base}/metrics"), "model-service", "UnknownIssuer")
        .await;
    // Certificate files are read at every attempt: fixing the file heals it.
    std::fs::copy(server.ca_file(), &ca_file).unwrap();
    service
        .wait_for_answer(&format!("{base}/readyz"), 200, "\"ready\"")
        .await;
    service
        .wait_for_answer(&format!("{base}/models"), 200, "[")
        .await;
}
