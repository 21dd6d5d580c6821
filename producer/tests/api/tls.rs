//! Uploads, the producer's one use of Postgres, on a TLS-only Postgres of
//! this binary's own (`test_support::postgres_process`): recorded with
//! `sslmode=verify-full`, a CA file and a client certificate; refused,
//! visibly, when the server's certificate names another host: uploads
//! answer 503 with the cause, one error line, the gauge
//! `database_waiting{service="producer"}` is 1.

use platform::settings::Settings;
use test_support::kafka_process::free_ports;
use test_support::postgres_process::{PostgresProcess, CERT_ROLE};
use test_support::service_process::WatchedService;
use test_support::unique;

use crate::helpers::spawn_app_with;

#[tokio::test]
async fn uploads_are_recorded_over_verify_full_with_a_client_certificate() {
    let tls = PostgresProcess::shared().database_settings();
    let app = spawn_app_with(|s| s.database = tls).await;
    let answer = app
        .upload_csv("?filename=tls.csv", "model,outcome\nglobe,w\nglobe,l\n")
        .await;
    assert_eq!(answer.status, 202, "{}", answer.text);
    let id = answer.json()["id"].as_str().unwrap().to_owned();
    let done = app.upload_with_status(&id, "produced").await;
    assert_eq!(done["rows_produced"], 2, "{done}");
}

#[tokio::test]
async fn a_server_certificate_for_another_host_closes_uploads_saying_why() {
    let server = PostgresProcess::shared();
    let database = server.create_database(CERT_ROLE);
    let client = server.client_cert(CERT_ROLE);
    let mut settings = Settings::default();
    // 127.0.0.2 is the server, under an address its certificate does not name.
    settings.database.url = server
        .cert_url(
            "127.0.0.2",
            &database,
            "verify-full",
            server.ca_file(),
            Some(&client),
        )
        .into();
    settings.kafka.topic = unique("observations");
    if let Some(brokers) = test_support::TestEnvironment::from_env().kafka_brokers {
        settings.kafka.brokers = brokers;
    }
    let port = free_ports(1)[0];
    let mut service = WatchedService::start(
        env!("CARGO_BIN_EXE_producer"),
        &settings,
        &[("BAYES__PRODUCER__PORT", port.to_string())],
        &std::env::temp_dir().join(format!("{}.log", unique("producer-tls"))),
    );
    let body = service
        .wait_for_answer(
            &format!("http://127.0.0.1:{port}/uploads"),
            503,
            "not valid for name",
        )
        .await;
    assert!(body.contains("database_unavailable"), "{body}");
    service
        .assert_waiting_for_database(
            &format!("http://127.0.0.1:{port}/metrics"),
            "producer",
            "not valid for name",
        )
        .await;
}
