//! The consumer on a TLS-only Postgres of this binary's own
//! (`test_support::postgres_process`): with `sslmode=verify-full`, a CA
//! file and a client certificate it migrates and commits batches; without
//! its client certificate it keeps its admin port, says why on `/readyz`
//! and in one error line, and waits instead of exiting.

use consumer::Assignment;
use platform::settings::Settings;
use platform::store;
use serde_json::Value;
use test_support::kafka_process::free_ports;
use test_support::postgres_process::{PostgresProcess, CERT_ROLE};
use test_support::service_process::WatchedService;
use test_support::{eventually, unique};

use crate::helpers::{Rec, TestEnv};

#[tokio::test(flavor = "multi_thread")]
async fn batches_commit_over_verify_full_with_a_client_certificate() {
    let env = TestEnv::new(1).await;
    let mut settings = env.settings();
    settings.database = PostgresProcess::shared().database_settings();
    settings.database.notify_channel = env.channel.clone();
    let db = store::connect(&settings.database).await.unwrap();
    let running = env.spawn(settings, Assignment::Subscribe, None).await;
    let records: Vec<Rec> = (0..7)
        .map(|i| Rec::new(Some("tls"), if i % 2 == 0 { "w" } else { "l" }))
        .collect();
    env.publish(&records).await;
    eventually("the batches are committed over TLS", async || {
        let stored = store::load_offset(&db, &env.group, &env.topic, 0)
            .await
            .unwrap();
        (stored == Some(7)).then_some(())
    })
    .await;
    let ready: Value = reqwest::get(running.url("/readyz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "ready", "{ready}");
    running.stop().await.unwrap();
}

#[tokio::test]
async fn a_missing_client_certificate_keeps_the_admin_port_and_says_why_without_exiting() {
    let server = PostgresProcess::shared();
    let database = server.create_database(CERT_ROLE);
    let mut settings = Settings::default();
    settings.database.url = server.verify_full_url(&database, None).into();
    settings.kafka.topic = unique("observations");
    settings.kafka.dlq_topic = format!("{}.dlq", settings.kafka.topic);
    settings.consumer.group_id = unique("group");
    let port = free_ports(1)[0];
    let mut service = WatchedService::start(
        env!("CARGO_BIN_EXE_consumer"),
        &settings,
        &[
            ("BAYES__CONSUMER__ADMIN_PORT", port.to_string()),
            ("BAYES__CONSUMER__RETRY_BACKOFF_MAX", "500ms".to_owned()),
        ],
        &std::env::temp_dir().join(format!("{}.log", unique("consumer-tls"))),
    );
    let body = service
        .wait_for_answer(
            &format!("http://127.0.0.1:{port}/readyz"),
            503,
            "connection requires a valid client certificate",
        )
        .await;
    let ready: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ready["checks"][0]["name"], "database", "{ready}");
    eventually("the consumer retried twice", async || {
        (service.log_lines_at("WARN").len() >= 2).then_some(())
    })
    .await;
    service
        .assert_waiting_for_database(
            &format!("http://127.0.0.1:{port}/metrics"),
            "consumer",
            "valid client certificate",
        )
        .await;
}
