//! The current state in memory: reads without a database round trip, the
//! consistency rule (an event means the change is readable), and nothing
//! left stale when notifications are lost (the audit, a dropped listener).

use std::time::Duration;

use model_service::Application;
use sea_orm::{ConnectionTrait, DbBackend, Statement, TransactionTrait};
use serde_json::json;

use crate::events::{events_data, EventStream};
use crate::helpers::{spawn_app, spawn_app_with, TestApp};

/// The value of one sample of `/metrics` (0 when absent), e.g.
/// `model_service_current_resyncs_total{reason="audit"}`. The recorder is
/// the process's, shared by the tests running at once: compare values
/// before and after, never with a fixed number.
async fn metric(app: &TestApp, sample: &str) -> f64 {
    let text = app.get("/metrics").await.text().await.unwrap();
    text.lines()
        .find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == sample).then(|| value.parse().unwrap())
        })
        .unwrap_or(0.0)
}

#[tokio::test]
async fn current_reads_make_no_database_round_trip() {
    let app = spawn_app().await;
    app.publish("globe", 6, 3).await;
    let experiment = json!({"arms": ["a", "b"], "control": "a"});
    let response = app.put_json("/experiments/checkout", &experiment).await;
    assert_eq!(response.status().as_u16(), 201);
    let assign = |status: u16| {
        let app = &app;
        async move {
            let response = app
                .client
                .post(app.url("/experiments/checkout/assignments"))
                .json(&json!({"unit": "user-1"}))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status().as_u16(), status, "assignment");
            response.json::<serde_json::Value>().await.unwrap()
        }
    };
    let first = assign(201).await;
    // Hold every table a current read would need, so that a read that
    // went to the database would wait, and time out.
    let locks = app.db.begin().await.unwrap();
    locks
        .execute_unprepared(
            "LOCK TABLE models, model_states, priors, experiments, experiment_assignments, \
             experiment_arm_units IN ACCESS EXCLUSIVE MODE",
        )
        .await
        .unwrap();
    for path in [
        "/models/globe/posterior",
        "/models/globe",
        "/models",
        "/experiments/checkout",
        "/experiments",
        "/models/globe/posterior.png",
    ] {
        let response = app
            .client
            .get(app.url(path))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path} waited for the database: {e}"));
        assert_eq!(response.status().as_u16(), 200, "{path}");
    }
    // A unit asked again is answered from memory, with the same arm.
    let again = assign(200).await;
    assert_eq!(again["arm"], first["arm"]);
    assert_eq!(again["new"], false);
    // The past is read from the database: it waits for the locks.
    let past = app
        .client
        .get(app.url("/models/globe/posterior?version=0"))
        .timeout(Duration::from_millis(500))
        .send()
        .await;
    assert!(
        past.is_err_and(|e| e.is_timeout()),
        "time travel reads the database"
    );
    locks.rollback().await.unwrap();
}

#[tokio::test]
async fn without_the_assignment_cache_a_repeat_reads_the_database() {
    let app = spawn_app_with(|s| s.model_service.assignment_cache_entries = 0).await;
    let experiment = json!({"arms": ["a", "b"], "control": "a"});
    let response = app.put_json("/experiments/checkout", &experiment).await;
    assert_eq!(response.status().as_u16(), 201);
    let assign = |timeout: Duration| {
        app.client
            .post(app.url("/experiments/checkout/assignments"))
            .json(&json!({"unit": "user-1"}))
            .timeout(timeout)
            .send()
    };
    let first = assign(Duration::from_secs(10)).await.unwrap();
    assert_eq!(first.status().as_u16(), 201);
    let locks = app.db.begin().await.unwrap();
    locks
        .execute_unprepared("LOCK TABLE experiment_assignments IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let again = assign(Duration::from_millis(500)).await;
    assert!(
        again.is_err_and(|e| e.is_timeout()),
        "the repeat waited for the table"
    );
    locks.rollback().await.unwrap();
    let again = assign(Duration::from_secs(10)).await.unwrap();
    assert_eq!(again.status().as_u16(), 200);
}

#[tokio::test]
async fn a_change_is_readable_once_its_event_arrived() {
    let app = spawn_app().await;
    app.publish("globe", 1, 1).await;
    let mut events = EventStream::open(&app).await;
    for round in 2..6u64 {
        // A commit as the consumer makes it, and a second session that asks
        // for the lock the service's reload needs while the commit is still
        // open: Postgres grants locks in the order asked, so once the
        // commit is done the lock holder goes first and the reload waits.
        // No event may announce the change before the reload.
        let writer = app.db.begin().await.unwrap();
        let channel = app.settings.database.notify_channel.clone();
        app.write_batch(&writer, &[("globe", 1, 0)], &channel).await;
        let blocker = app.db.begin().await.unwrap();
        let locking = tokio::spawn(async move {
            blocker
                .execute_unprepared("LOCK TABLE models IN ACCESS EXCLUSIVE MODE")
                .await
                .unwrap();
            blocker
        });
        test_support::eventually("the lock is asked for", async || {
            let waiting = app
                .db
                .query_one(Statement::from_string(
                    DbBackend::Postgres,
                    "SELECT count(*) AS n FROM pg_locks \
                     WHERE relation = 'models'::regclass AND NOT granted",
                ))
                .await
                .unwrap()
                .unwrap()
                .try_get::<i64>("", "n")
                .unwrap();
            (waiting > 0).then_some(())
        })
        .await;
        writer.commit().await.unwrap();
        let blocker = locking.await.unwrap();
        let early = events
            .try_read_until("event: update", Duration::from_millis(300))
            .await;
        assert!(
            early.is_none(),
            "round {round}: announced before applied: {early:?}"
        );
        blocker.rollback().await.unwrap();
        let event = events
            .read_until("event: update", Duration::from_secs(10))
            .await;
        let data = events_data(&event, &mut events).await;
        assert!(data.contains("globe"), "{data}");
        // No polling: the event promises the change is applied.
        let posterior = app.get_json("/models/globe/posterior", 200).await;
        assert_eq!(posterior["version"], round, "round {round}");
    }
}

#[tokio::test]
async fn a_lost_notification_is_repaired_by_the_audit() {
    let app = spawn_app_with(|s| s.model_service.audit_interval_seconds = 1).await;
    app.publish("globe", 1, 1).await;
    let repaired = r#"model_service_current_repaired_total{reason="audit"}"#;
    let repaired_before = metric(&app, repaired).await;
    let audits = r#"model_service_current_resyncs_total{reason="audit"}"#;
    let audits_before = metric(&app, audits).await;
    // Committed, but notified on a channel the service does not hear: as
    // if the notification were lost.
    app.commit(&[("globe", 5, 0), ("unheard", 1, 0)], "elsewhere")
        .await;
    let posterior = app.get_json("/models/globe/posterior", 200).await;
    assert_eq!(posterior["version"], 1, "stale until the audit");
    test_support::eventually_within(Duration::from_secs(10), "the audit repairs", async || {
        let posterior = app.get_json("/models/globe/posterior", 200).await;
        (posterior["version"] == 2).then_some(())
    })
    .await;
    app.get_json("/models/unheard/posterior", 200).await;
    assert!(
        metric(&app, repaired).await >= repaired_before + 2.0,
        "both models counted as repaired"
    );
    assert!(metric(&app, audits).await > audits_before);
}

#[tokio::test]
async fn a_dropped_listener_is_followed_by_a_full_reload() {
    let app = spawn_app().await;
    app.publish("globe", 1, 1).await;
    let reconnects = r#"model_service_current_resyncs_total{reason="reconnect"}"#;
    let before = metric(&app, reconnects).await;
    // End the service's listening connection, as a restart of Postgres or a
    // network cut would, then commit while it is gone.
    let ended = app
        .db
        .query_one(Statement::from_string(
            DbBackend::Postgres,
            "SELECT count(pg_terminate_backend(pid))::bigint AS n FROM pg_stat_activity \
             WHERE datname = current_database() AND query LIKE 'LISTEN%'",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get::<i64>("", "n")
        .unwrap();
    assert_eq!(ended, 1, "one listening connection");
    app.commit(&[("globe", 3, 0)], &app.settings.database.notify_channel)
        .await;
    test_support::eventually("the listener is back and reloaded", async || {
        (metric(&app, reconnects).await > before).then_some(())
    })
    .await;
    test_support::eventually("the commit is readable", async || {
        let posterior = app.get_json("/models/globe/posterior", 200).await;
        (posterior["version"] == 2).then_some(())
    })
    .await;
    let ready = app.get_json("/readyz", 200).await;
    assert_eq!(ready["checks"][1]["ok"], true, "{ready}");
}

#[tokio::test]
async fn a_second_replica_loads_at_start_and_answers_the_same() {
    let app = spawn_app().await;
    app.publish_many(&[("globe", 6, 3), ("coin", 2, 2)]).await;
    let experiment = json!({"arms": ["globe", "coin"], "control": "globe"});
    let response = app.put_json("/experiments/pair", &experiment).await;
    assert_eq!(response.status().as_u16(), 201);
    let replica = Application::build(app.settings.clone()).await.unwrap();
    let address = format!("http://127.0.0.1:{}", replica.port());
    let state = replica.state().clone();
    let server = tokio::spawn(replica.run_until_stopped(std::future::pending()));
    let there = async |path: &str| -> serde_json::Value {
        let response = app.client.get(format!("{address}{path}")).send().await;
        response.unwrap().json().await.unwrap()
    };
    for path in [
        "/models/globe/posterior",
        "/models",
        "/experiments/pair",
        "/experiments",
    ] {
        let here = app.get_json(path, 200).await;
        assert_eq!(here, there(path).await, "{path}");
    }
    // A change made through one replica reaches the other.
    app.publish("coin", 1, 0).await;
    state.caught_up().await.unwrap();
    assert_eq!(there("/models/coin/posterior").await["version"], 2);
    server.abort();
}
