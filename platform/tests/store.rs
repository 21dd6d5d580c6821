//! The store against a real Postgres: migrations, the exactly-once batch
//! transaction and its compare-and-set, and how database errors are classified.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement, TransactionTrait};

use common::{apply, batch, delta};
use domain::bayes::Counts;
use domain::ModelId;
use platform::settings::{DatabaseSettings, ModelDefaults};
use platform::store::{
    apply_batch, conflicting_ids, load_offset, purge_applied_ids, try_batch, BatchWrite,
    IdConflict, IdentifiedDelta, ModelDelta,
};
use platform::store::{connect, migrate, StoreError};
use test_support::database::TestDatabase;

#[tokio::test]
async fn migrations_run_twice_and_concurrently_without_harm() {
    let (_test_db, db) = TestDatabase::create().await.unwrap();
    let (a, b) = tokio::join!(migrate(&db), migrate(&db));
    a.unwrap();
    b.unwrap();
}

#[tokio::test]
async fn batches_add_up_and_write_consecutive_history() {
    let (_test_db, db) = TestDatabase::create().await.unwrap();
    let defaults = ModelDefaults::default();
    assert_eq!(
        load_offset(&db, "g", "observations", 0).await.unwrap(),
        None
    );

    let first = [delta("globe", 6, 3, 8), delta("coin", 1, 0, 5)];
    let applied = apply_batch(&db, &batch(None, 9, &first), &defaults, "chan")
        .await
        .unwrap();
    assert_eq!(applied.states.len(), 2);
    let second = [delta("globe", 1, 1, 12)];
    let applied = apply_batch(&db, &batch(Some(9), 13, &second), &defaults, "chan")
        .await
        .unwrap();
    assert_eq!(applied.states[0].state.counts, Counts::new(7, 4));
    assert_eq!(applied.states[0].state.version, 2);
    assert_eq!(
        load_offset(&db, "g", "observations", 0).await.unwrap(),
        Some(13)
    );

    // A batch of poison records only still moves the offset.
    apply_batch(&db, &batch(Some(13), 20, &[]), &defaults, "chan")
        .await
        .unwrap();
    assert_eq!(
        load_offset(&db, "g", "observations", 0).await.unwrap(),
        Some(20)
    );

    use platform::store::entities::model_history;
    use sea_orm::{EntityTrait, QueryOrder};
    let history = model_history::Entity::find()
        .order_by_asc(model_history::Column::ModelId)
        .order_by_asc(model_history::Column::Version)
        .all(&db)
        .await
        .unwrap();
    let rows: Vec<_> = history
        .iter()
        .map(|h| {
            (
                h.model_id.as_str(),
                h.version,
                h.successes,
                h.failures,
                h.delta_successes,
                h.source_offset,
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            ("coin", 1, 1, 0, 1, 5),
            ("globe", 1, 6, 3, 6, 8),
            ("globe", 2, 7, 4, 1, 12)
        ]
    );
}

#[tokio::test]
async fn a_stale_offset_is_rejected_and_changes_nothing() {
    let (_test_db, db) = TestDatabase::create().await.unwrap();
    let defaults = ModelDefaults::default();
    let deltas = [delta("globe", 1, 0, 0)];
    apply_batch(&db, &batch(None, 1, &deltas), &defaults, "chan")
        .await
        .unwrap();

    // A zombie that still believes the partition has no row, or is at 0.
    for stale in [None, Some(0)] {
        let err = apply_batch(&db, &batch(stale, 1, &deltas), &defaults, "chan")
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    }
    let applied = apply_batch(&db, &batch(Some(1), 2, &deltas), &defaults, "chan")
        .await
        .unwrap();
    assert_eq!(
        (
            applied.states[0].state.counts,
            applied.states[0].state.version
        ),
        (Counts::new(2, 0), 2)
    );
}

/// Polls `check` until it is true or ten seconds passed.
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn count(db: &DatabaseConnection, sql: &str) -> i64 {
    db.query_one(Statement::from_string(DbBackend::Postgres, sql))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index::<i64>(0)
        .unwrap()
}

#[tokio::test]
async fn a_model_listed_twice_in_one_batch_is_summed_into_one_version() {
    let (_test_db, db) = TestDatabase::create().await.unwrap();
    let deltas = [delta("globe", 2, 1, 3), delta("globe", 1, 1, 7)];
    let applied = apply(&db, &batch(None, 8, &deltas), "c").await.unwrap();
    assert_eq!(applied.states.len(), 1);
    assert_eq!(
        (
            applied.states[0].state.counts,
            applied.states[0].state.version
        ),
        (Counts::new(3, 2), 1)
    );
    assert_eq!(
        count(&db, "SELECT max(source_offset) FROM model_history").await,
        7
    );
}

#[tokio::test]
async fn a_model_configured_before_its_data_keeps_its_prior_and_grid() {
    let (_test_db, db) = TestDatabase::create().await.unwrap();
    db.execute_unprepared(
        r#"INSERT INTO models (id, prior, grid_size) VALUES ('coin', '{"beta":{"a":2.0,"b":2.0}}', 50);
           INSERT INTO model_states (model_id, successes, failures, version) VALUES ('coin', 0, 0, 0)"#,
    )
    .await
    .unwrap();
    let deltas = [delta("coin", 1, 0, 0), delta("fresh", 0, 1, 0)];
    let applied = apply(&db, &batch(None, 1, &deltas), "c").await.unwrap();
    let versions: Vec<_> = applied
        .states
        .iter()
        .map(|a| (a.model.as_str(), a.state.version))
        .collect();
    assert_eq!(versions, vec![("coin", 1), ("fresh", 1)]);
    assert_eq!(
        count(
            &db,
            "SELECT grid_size::bigint FROM models WHERE id = 'coin'"
        )
        .await,
        50
    );
    assert_eq!(
        count(
            &db,
            "SELECT grid_size::bigint FROM models WHERE id = 'fresh'"
        )
        .await,
        i64::from(ModelDefaults::default().default_grid_size)
    );
}

#[tokio::test]
async fn listeners_hear_the_changed_models_once_the_batch_commits() {
    use sea_orm::sqlx::postgres::PgListener;
    let (test_db, db) = TestDatabase::create().await.unwrap();
    let mut listener = PgListener::connect(&test_db.url()).await.unwrap();
    listener.listen("updates").await.unwrap();

    let deltas = [delta("globe", 1, 0, 0), delta("coin", 0, 1, 1)];
    apply(&db, &batch(None, 2, &deltas), "updates")
        .await
        .unwrap();
    let heard = tokio::time::timeout(Duration::from_secs(10), listener.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(heard.payload(), "coin,globe");

    // A batch of poison records only, and a rejected batch, say nothing.
    apply(&db, &batch(Some(2), 3, &[]), "updates")
        .await
        .unwrap();
    apply(&db, &batch(Some(2), 4, &deltas), "updates")
        .await
        .unwrap_err();
    // More models than one payload holds: the payload says "*".
    let many: Vec<_> = (0..200)
        .map(|i| {
            delta(
                &format!("model-with-a-long-name-{i:04}-{}", "x".repeat(30)),
                1,
                0,
                3,
            )
        })
        .collect();
    apply(&db, &batch(Some(3), 4, &many), "updates")
        .await
        .unwrap();
    let heard = tokio::time::timeout(Duration::from_secs(10), listener.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(heard.payload(), "*");
}

#[tokio::test]
async fn a_zombie_waits_for_the_owner_and_then_applies_nothing() {
    let (_test_db, db) = TestDatabase::create().await.unwrap();
    let defaults = ModelDefaults::default();
    let first = [delta("globe", 1, 0, 0)];
    apply_batch(&db, &batch(None, 1, &first), &defaults, "c")
        .await
        .unwrap();

    // The new owner is mid-transaction: it holds the offset row.
    let owner = db.begin().await.unwrap();
    let moved = owner
        .execute_unprepared(
            "UPDATE consumer_offsets SET next_offset = 5 WHERE group_id = 'g' AND next_offset = 1",
        )
        .await
        .unwrap();
    assert_eq!(moved.rows_affected(), 1);

    // The zombie still believes the offset is 1.
    let zombie_db = db.clone();
    let zombie = tokio::spawn(async move {
        let deltas = [delta("globe", 100, 0, 4)];
        apply(&zombie_db, &batch(Some(1), 5, &deltas), "c").await
    });
    eventually("the zombie waits on the offset row's lock", async || {
        count(
            &db,
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()",
        )
        .await
            == 1
    })
    .await;
    owner.commit().await.unwrap();

    let err = zombie.await.unwrap().unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(
        count(
            &db,
            "SELECT successes FROM model_states WHERE model_id = 'globe'"
        )
        .await,
        1
    );
    assert_eq!(count(&db, "SELECT count(*) FROM model_history").await, 1);
}

#[tokio::test]
async fn a_count_past_bigint_is_rejected_as_permanent_and_moves_no_offset() {
    let (_test_db, db) = TestDatabase::create().await.unwrap();
    let defaults = ModelDefaults::default();
    let full = [delta("globe", i64::MAX as u64, 0, 0)];
    apply_batch(&db, &batch(None, 1, &full), &defaults, "c")
        .await
        .unwrap();

    // Postgres refuses the sum (22003, bigint out of range): the same batch
    // would fail the same way again, so it is not worth a retry.
    let one_more = [delta("globe", 1, 0, 1)];
    let err = apply_batch(&db, &batch(Some(1), 2, &one_more), &defaults, "c")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Rejected(_)), "{err:?}");
    assert!(!err.is_transient());
    assert_eq!(
        load_offset(&db, "g", "observations", 0).await.unwrap(),
        Some(1)
    );
    assert_eq!(count(&db, "SELECT count(*) FROM model_history").await, 1);
}

#[tokio::test]
async fn a_notify_channel_postgres_refuses_is_rejected_and_writes_nothing() {
    let (_test_db, db) = TestDatabase::create().await.unwrap();
    let deltas = [delta("globe", 1, 0, 0)];
    // An empty channel name is an invalid parameter value (22023).
    let err = apply(&db, &batch(None, 1, &deltas), "").await.unwrap_err();
    assert!(matches!(err, StoreError::Rejected(_)), "{err:?}");
    assert_eq!(
        load_offset(&db, "g", "observations", 0).await.unwrap(),
        None
    );
}

#[tokio::test]
async fn a_database_on_a_closed_port_is_unavailable() {
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let settings = DatabaseSettings {
        url: format!("postgres://postgres@127.0.0.1:{port}/postgres").into(),
        max_connections: 1,
        connect_timeout: Duration::from_millis(500),
        ..DatabaseSettings::default()
    };
    let err = connect(&settings).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(err.is_transient());
}

#[tokio::test]
async fn history_is_read_by_version_by_time_by_page_and_by_sample() {
    use platform::store::{history_at, history_page, history_sample, history_version};
    let (_test_db, db) = TestDatabase::create().await.unwrap();
    let defaults = ModelDefaults::default();
    let globe = ModelId::parse("globe").unwrap();
    let mut expected = None;
    for version in 1..=10 {
        let deltas = [delta("globe", 1, 0, version)];
        apply_batch(&db, &batch(expected, version + 1, &deltas), &defaults, "c")
            .await
            .unwrap();
        expected = Some(version + 1);
    }
    let versions = |rows: Vec<platform::store::HistoryRecord>| {
        rows.iter().map(|r| r.version).collect::<Vec<_>>()
    };

    let third = history_version(&db, &globe, 3).await.unwrap().unwrap();
    assert_eq!(
        (third.counts, third.delta),
        (Counts::new(3, 0), Counts::new(1, 0))
    );
    assert_eq!(history_version(&db, &globe, 11).await.unwrap(), None);

    let now = chrono::Utc::now();
    assert_eq!(
        history_at(&db, &globe, now)
            .await
            .unwrap()
            .map(|r| r.version),
        Some(10)
    );
    assert_eq!(
        history_at(&db, &globe, third.applied_at)
            .await
            .unwrap()
            .map(|r| r.version),
        Some(3)
    );
    let before = third.applied_at - chrono::Duration::days(1);
    assert_eq!(history_at(&db, &globe, before).await.unwrap(), None);

    assert_eq!(
        versions(history_page(&db, &globe, None, 3).await.unwrap()),
        [1, 2, 3]
    );
    assert_eq!(
        versions(history_page(&db, &globe, Some(8), 3).await.unwrap()),
        [9, 10]
    );

    // Every step-th version up to the last, and the last: ceil(10 / 3) = 4.
    assert_eq!(
        versions(history_sample(&db, &globe, 10, 3).await.unwrap()),
        [4, 8, 10]
    );
    assert_eq!(
        versions(history_sample(&db, &globe, 7, 3).await.unwrap()),
        [3, 6, 7]
    );
}

fn identified(id: &str, model: &str, s: u64, f: u64, offset: i64) -> IdentifiedDelta {
    IdentifiedDelta {
        id: id.to_owned(),
        delta: delta(model, s, f, offset),
    }
}

fn batch_with<'a>(
    partition: i32,
    expected: Option<i64>,
    next: i64,
    deltas: &'a [ModelDelta],
    identified: &'a [IdentifiedDelta],
) -> BatchWrite<'a> {
    BatchWrite {
        partition,
        identified,
        ..batch(expected, next, deltas)
    }
}

async fn state_of(db: &DatabaseConnection, model: &str) -> (i64, i64, i64) {
    let row = db
        .query_one(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT successes, failures, version FROM model_states WHERE model_id = $1",
            [model.into()],
        ))
        .await
        .unwrap()
        .unwrap();
    (
        row.try_get("", "successes").unwrap(),
        row.try_get("", "failures").unwrap(),
        row.try_get("", "version").unwrap(),
    )
}

#[tokio::test]
async fn an_observation_whose_id_was_applied_is_skipped_and_counted_as_a_duplicate() {
    let (_test_db, db) = TestDatabase::create().await.unwrap();
    let defaults = ModelDefaults::default();
    // An upload's line ids on both sides of a chunk boundary (1023 | 1024),
    // and a plain id: the two tables deduplicate alike.
    let first = [
        identified("9f86d081884c7d659a2f:1023", "globe", 1, 0, 0),
        identified("9f86d081884c7d659a2f:1024", "globe", 0, 1, 1),
        identified("order-1", "globe", 0, 3, 2),
    ];
    let plain = [delta("globe", 2, 0, 3)];
    let applied = apply_batch(&db, &batch_with(0, None, 4, &plain, &first), &defaults, "c")
        .await
        .unwrap();
    assert_eq!((applied.duplicates, applied.duplicate_trials), (0, 0));
    assert_eq!(state_of(&db, "globe").await, (3, 4, 1));

    // The whole batch again, plus new ids, one of them `<upload>:01024`,
    // which is not `<upload>:1024` (and not a line id at all).
    let retry = [
        identified("9f86d081884c7d659a2f:1023", "globe", 1, 0, 4),
        identified("9f86d081884c7d659a2f:1024", "globe", 0, 1, 5),
        identified("order-1", "globe", 0, 3, 6),
        identified("9f86d081884c7d659a2f:2", "globe", 5, 0, 7),
        identified("9f86d081884c7d659a2f:01024", "globe", 0, 7, 8),
    ];
    let applied = apply_batch(&db, &batch_with(0, Some(4), 9, &[], &retry), &defaults, "c")
        .await
        .unwrap();
    assert_eq!((applied.duplicates, applied.duplicate_trials), (3, 5));
    assert_eq!(state_of(&db, "globe").await, (8, 11, 2));

    // A batch of nothing but repeats moves the offset and touches no model.
    let applied = apply_batch(
        &db,
        &batch_with(0, Some(9), 10, &[], &retry[..3]),
        &defaults,
        "c",
    )
    .await
    .unwrap();
    assert_eq!(applied.duplicates, 3);
    assert!(applied.states.is_empty(), "{applied:?}");
    assert_eq!(state_of(&db, "globe").await, (8, 11, 2));
    assert_eq!(
        load_offset(&db, "g", "observations", 0).await.unwrap(),
        Some(10)
    );
    assert_eq!(count(&db, "SELECT count(*) FROM applied_ids").await, 2);
    assert_eq!(count(&db, "SELECT count(*) FROM applied_id_bits").await, 2);
}

#[tokio::test]
async fn a_rejected_batch_remembers_none_of_its_ids() {
    let (_test_db, db) = TestDatabase::create().await.unwrap();
    let defaults = ModelDefaults::default();
    let ids = [
        identified("k", "globe", 1, 0, 0),
        identified("9f86d081884c7d659a2f:5", "globe", 1, 0, 0),
    ];
    apply_batch(&db, &batch(None, 1, &[]), &defaults, "c")
        .await
        .unwrap();
    // A zombie's batch: the compare-and-set fails, so both ids must stay unknown.
    let err = apply_batch(&db, &batch_with(0, Some(0), 1, &[], &ids), &defaults, "c")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    let applied = apply_batch(&db, &batch_with(0, Some(1), 2, &[], &ids), &defaults, "c")
        .await
        .unwrap();
    assert_eq!(applied.duplicates, 0);
    assert_eq!(state_of(&db, "globe").await, (2, 0, 1));
}

#[tokio::test]
async fn two_partitions_applying_the_same_id_at_once_count_it_once() {
    let (_test_db, db) = TestDatabase::create().await.unwrap();
    let defaults = ModelDefaults::default();
    for round in 0..20i64 {
        // The same ids on both partitions, in opposite orders: plain ones,
        // and an upload's line ids over three chunks.
        let ids: Vec<_> = (0..50)
            .map(|i| {
                let id = if i % 2 == 0 {
                    format!("r{round}-{i}")
                } else {
                    format!("{round:020x}:{}", i * 97)
                };
                identified(&id, "globe", 1, 0, round)
            })
            .collect();
        let reversed: Vec<_> = ids.iter().rev().cloned().collect();
        let expected = (round > 0).then_some(round);
        let on_0 = batch_with(0, expected, round + 1, &[], &ids);
        let on_1 = batch_with(1, expected, round + 1, &[], &reversed);
        let (a, b) = tokio::join!(
            apply_batch(&db, &on_0, &defaults, "c"),
            apply_batch(&db, &on_1, &defaults, "c"),
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(a.duplicates + b.duplicates, 50, "round {round}");
    }
    assert_eq!(state_of(&db, "globe").await.0, 20 * 50);
}

#[tokio::test]
async fn ids_older_than_the_retention_are_forgotten() {
    let (_test_db, db) = TestDatabase::create().await.unwrap();
    let defaults = ModelDefaults::default();
    let ids = [
        identified("old", "globe", 1, 0, 0),
        identified("9f86d081884c7d659a2f:3", "globe", 1, 0, 0),
    ];
    apply_batch(&db, &batch_with(0, None, 1, &[], &ids), &defaults, "c")
        .await
        .unwrap();
    assert_eq!(
        purge_applied_ids(&db, Duration::from_secs(3600))
            .await
            .unwrap(),
        0,
        "a fresh id is kept"
    );
    db.execute_unprepared(
        "UPDATE applied_ids SET applied_at = now() - interval '2 hours';
         UPDATE applied_id_bits SET applied_at = now() - interval '2 hours';",
    )
    .await
    .unwrap();
    assert_eq!(
        purge_applied_ids(&db, Duration::from_secs(3600))
            .await
            .unwrap(),
        2,
        "an id and a chunk of an upload's line ids"
    );
    // Past the retention the same id counts again, as documented.
    let applied = apply_batch(&db, &batch_with(0, Some(1), 2, &[], &ids), &defaults, "c")
        .await
        .unwrap();
    assert_eq!(applied.duplicates, 0);
    assert_eq!(state_of(&db, "globe").await, (4, 0, 2));
    // A retention beyond the calendar keeps everything.
    assert_eq!(purge_applied_ids(&db, Duration::MAX).await.unwrap(), 0);
}

/// A small deterministic generator (xorshift64*), so a failure reproduces.
fn next_random(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

#[tokio::test]
async fn random_batches_of_repeated_ids_count_each_id_once() {
    let (_test_db, db) = TestDatabase::create().await.unwrap();
    let defaults = ModelDefaults::default();
    // Ids drawn with repeats from a pool: line ids of two uploads over
    // several chunks, and plain ones, on two models with counts that vary
    // by id.
    let pool: Vec<(String, &str, u64, u64)> = (0..3000u64)
        .map(|i| {
            let id = match i % 3 {
                0 => format!("9f86d081884c7d659a2f:{}", i * 7),
                1 => format!("9f86d081884c7d659a2f-2:{i}"),
                _ => format!("plain-{i}"),
            };
            let model = if i % 5 == 0 { "globe" } else { "coin" };
            (id, model, i % 4, (i / 4) % 3)
        })
        .collect();
    let mut seen = std::collections::HashSet::new();
    let mut expected = std::collections::HashMap::from([("globe", (0, 0)), ("coin", (0, 0))]);
    let mut random = 0x5eed_u64;
    let mut offset = 0i64;
    for round in 0..40 {
        let mut in_batch = std::collections::HashSet::new();
        let mut ids = Vec::new();
        let mut duplicates = 0;
        for _ in 0..150 {
            let pick = (next_random(&mut random) % pool.len() as u64) as usize;
            let (id, model, s, f) = &pool[pick];
            // Ids are distinct within a batch (the consumer drops repeats).
            if !in_batch.insert(pick) {
                continue;
            }
            ids.push(identified(id, model, *s, *f, offset));
            offset += 1;
            if seen.insert(pick) {
                let e = expected.get_mut(model).unwrap();
                *e = (e.0 + *s as i64, e.1 + *f as i64);
            } else {
                duplicates += 1;
            }
        }
        let expected_offset = (round > 0).then_some(round);
        let applied = apply_batch(
            &db,
            &batch_with(0, expected_offset, round + 1, &[], &ids),
            &defaults,
            "c",
        )
        .await
        .unwrap();
        assert_eq!(applied.duplicates, duplicates, "round {round}");
    }
    for (model, (s, f)) in expected {
        let (got_s, got_f, _) = state_of(&db, model).await;
        assert_eq!((got_s, got_f), (s, f), "{model}");
    }
}

/// Rolls the schema back to just before the migration `name`, with every
/// migration added after it.
async fn down_to_before(db: &DatabaseConnection, name: &str) {
    use platform::store::migration::Migrator;
    use sea_orm_migration::MigratorTrait;
    let names: Vec<String> = Migrator::migrations()
        .iter()
        .map(|m| m.name().to_owned())
        .collect();
    let position = names.iter().position(|n| n == name).unwrap();
    let steps = u32::try_from(names.len() - position).unwrap();
    Migrator::down(db, Some(steps)).await.unwrap();
}

#[tokio::test]
async fn numbered_ids_applied_before_the_bits_table_are_still_recognised() {
    use platform::store::migration::Migrator;
    use sea_orm_migration::MigratorTrait;

    let (_test_db, db) = TestDatabase::create().await.unwrap();
    let defaults = ModelDefaults::default();
    // Back to the schema before `applied_id_bits`, with ids applied then.
    down_to_before(&db, "m0007_applied_id_bits").await;
    db.execute_unprepared(
        "INSERT INTO applied_ids (id, model_id, source_partition, source_offset) VALUES
            ('0123456789abcdef0123:1', 'globe', 0, 0),
            ('0123456789abcdef0123:2048', 'globe', 0, 1),
            ('a:b:7', 'globe', 0, 2),
            ('a:07', 'globe', 0, 3),
            ('plain', 'globe', 0, 4)",
    )
    .await
    .unwrap();
    Migrator::up(&db, Some(1)).await.unwrap();
    assert_eq!(
        count(&db, "SELECT count(*) FROM applied_ids").await,
        2,
        "a:07 and plain stay, the numbered ones move"
    );
    assert_eq!(count(&db, "SELECT count(*) FROM applied_id_bits").await, 3);
    // m0008 keeps only an upload's line ids as bits: a:b:7 is a row again.
    Migrator::up(&db, None).await.unwrap();
    assert_eq!(count(&db, "SELECT count(*) FROM applied_ids").await, 3);
    assert_eq!(count(&db, "SELECT count(*) FROM applied_id_bits").await, 2);

    let retry: Vec<_> = [
        "0123456789abcdef0123:1",
        "0123456789abcdef0123:2048",
        "a:b:7",
        "a:07",
        "plain",
        "a:7",
    ]
    .iter()
    .map(|id| identified(id, "globe", 1, 0, 0))
    .collect();
    let applied = apply_batch(&db, &batch_with(0, None, 1, &[], &retry), &defaults, "c")
        .await
        .unwrap();
    assert_eq!(applied.duplicates, 5, "only a:7 is new");
    assert_eq!(state_of(&db, "globe").await, (1, 0, 1));

    // And down again: the numbered ids go back to `applied_ids`.
    down_to_before(&db, "m0007_applied_id_bits").await;
    assert_eq!(count(&db, "SELECT count(*) FROM applied_ids").await, 6);
    Migrator::up(&db, None).await.unwrap();
}

#[tokio::test]
async fn configuring_a_model_while_two_partitions_create_it_never_deadlocks_or_fails() {
    use platform::store::{configure_model, get_model, ChangeLimit, ModelConfig};
    let (_test_db, db) = TestDatabase::create().await.unwrap();
    let defaults = ModelDefaults::default();
    let prior = domain::Prior::Beta { a: 2.0, b: 2.0 };
    for round in 0..100i64 {
        let model = format!("race-{round}");
        let id = ModelId::parse(model.clone()).unwrap();
        // Each partition's batch also creates a model of its own, so each
        // statement locks rows of more than one model.
        let on_0 = [
            delta(&format!("{model}-a"), 1, 0, round),
            delta(&model, 1, 0, round),
        ];
        let on_1 = [
            delta(&model, 0, 1, round),
            delta(&format!("{model}-z"), 0, 1, round),
        ];
        let expected = (round > 0).then_some(round);
        let batch_0 = batch(expected, round + 1, &on_0);
        let batch_1 = BatchWrite {
            partition: 1,
            ..batch(expected, round + 1, &on_1)
        };
        let config = ModelConfig {
            prior: Some(prior.clone()),
            grid_size: None,
        };
        let (a, b, put) = tokio::join!(
            apply_batch(&db, &batch_0, &defaults, "chan"),
            apply_batch(&db, &batch_1, &defaults, "chan"),
            configure_model(&db, &id, &config, &defaults, ChangeLimit::UNLIMITED, "chan"),
        );
        a.unwrap_or_else(|e| panic!("round {round}: partition 0: {e}"));
        b.unwrap_or_else(|e| panic!("round {round}: partition 1: {e}"));
        put.unwrap_or_else(|e| panic!("round {round}: PUT: {e}"));
        let record = get_model(&db, &id).await.unwrap().unwrap();
        assert_eq!(
            (record.state.counts, record.state.version, &*record.prior),
            (Counts::new(1, 1), 2, &prior),
            "round {round}"
        );
    }
}

fn spec(arms: &[&str]) -> platform::store::ExperimentSpec {
    let arms: Vec<ModelId> = arms.iter().map(|a| ModelId::parse(*a).unwrap()).collect();
    platform::store::ExperimentSpec {
        control: arms[0].clone(),
        arms,
        threshold_of_caring: 0.001,
        rope: 0.01,
        planned_weights: None,
        bandit: platform::store::BanditConfig {
            min_trials: 100,
            floor: 0.01,
            top_two: false,
        },
    }
}

#[tokio::test]
async fn an_experiment_creates_its_arms_and_is_redefined_in_place() {
    use platform::store::{
        get_experiment, get_models, list_experiments, put_experiment, PriorPool,
    };
    let (_test_db, db) = TestDatabase::create().await.unwrap();
    let defaults = ModelDefaults::default();
    let id = ModelId::parse("checkout").unwrap();
    let (record, created) = put_experiment(&db, &id, &spec(&["a", "b"]), &defaults, "chan")
        .await
        .unwrap();
    assert!(created);
    assert_eq!(record.spec, spec(&["a", "b"]));
    let mut pool = PriorPool::default();
    let arms = get_models(&db, &record.spec.arms, &mut pool).await.unwrap();
    assert!(arms.iter().all(Option::is_some), "{arms:?}");

    let mut wider = spec(&["a", "b", "c"]);
    wider.planned_weights = Some(vec![0.5, 0.25, 0.25]);
    let (record, created) = put_experiment(&db, &id, &wider, &defaults, "chan")
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(get_experiment(&db, &id).await.unwrap(), Some(record));
    let missing = ModelId::parse("nope").unwrap();
    let found = get_models(&db, &[missing, ModelId::parse("c").unwrap()], &mut pool)
        .await
        .unwrap();
    assert!(found[0].is_none() && found[1].is_some());
    // Every arm has the default prior: the pool read it once, and shares it.
    assert_eq!(pool.len(), 1);
    let shared = found[1].as_ref().unwrap();
    assert!(std::sync::Arc::ptr_eq(
        &shared.prior,
        &arms[0].as_ref().unwrap().prior
    ));
    put_experiment(
        &db,
        &ModelId::parse("alpha").unwrap(),
        &spec(&["a", "b"]),
        &defaults,
        "chan",
    )
    .await
    .unwrap();
    let page = list_experiments(&db, None, 1).await.unwrap();
    assert_eq!(page[0].id.as_str(), "alpha");
    let next = list_experiments(&db, Some(&page[0].id), 10).await.unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].id.as_str(), "checkout");
}

#[tokio::test]
async fn the_arms_histories_merge_into_one_sequence_of_every_arms_state() {
    use platform::store::{merged_history, Points};
    let (_test_db, db) = TestDatabase::create().await.unwrap();
    let defaults = ModelDefaults::default();
    // a: +1/+0, b: +0/+2, a: +3/+1, both (one batch): a +1/+1, b +2/+0.
    let batches: [&[ModelDelta]; 4] = [
        &[delta("a", 1, 0, 0)],
        &[delta("b", 0, 2, 1)],
        &[delta("a", 3, 1, 2)],
        &[delta("a", 1, 1, 3), delta("b", 2, 0, 4)],
    ];
    let mut expected = None;
    for (i, deltas) in batches.iter().enumerate() {
        let next = i as i64 + 1;
        apply_batch(&db, &batch(expected, next, deltas), &defaults, "chan")
            .await
            .unwrap();
        expected = Some(next);
    }
    let arms = [ModelId::parse("a").unwrap(), ModelId::parse("b").unwrap()];
    let all = merged_history(
        &db,
        &arms,
        Points::Page {
            after: 0,
            limit: 100,
        },
    )
    .await
    .unwrap();
    assert_eq!(all.len(), 5);
    assert!(all.iter().all(|p| p.total == 5));
    let positions: Vec<u64> = all.iter().map(|p| p.position).collect();
    assert_eq!(positions, [1, 2, 3, 4, 5]);
    let last = &all[4].states;
    assert_eq!(last[0].counts, Counts::new(5, 2));
    assert_eq!(last[0].version, 3);
    assert_eq!(last[1].counts, Counts::new(2, 2));
    assert_eq!(last[1].version, 2);
    // After the second commit: a at 1/0 (version 1), b at 0/2 (version 1).
    let second = &all[1].states;
    assert_eq!(second[0].counts, Counts::new(1, 0));
    assert_eq!(second[1].counts, Counts::new(0, 2));
    assert_eq!(all[1].arm, 1);

    let page = merged_history(&db, &arms, Points::Page { after: 3, limit: 1 })
        .await
        .unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0], all[3]);
    let at = merged_history(&db, &arms, Points::At(2)).await.unwrap();
    assert_eq!(at, vec![all[1].clone()]);
    let by_time = merged_history(&db, &arms, Points::AtOrBefore(all[2].applied_at))
        .await
        .unwrap();
    assert_eq!(by_time[0].position, 3);
    let sample = merged_history(&db, &arms, Points::Sample { max: 2 })
        .await
        .unwrap();
    let sampled: Vec<u64> = sample.iter().map(|p| p.position).collect();
    assert_eq!(sampled, [1, 4, 5]);
}

#[tokio::test]
async fn a_unit_keeps_its_first_arm_even_under_concurrent_assignments() {
    use platform::store::{assign_units, assignment_counts, put_experiment, NewAssignment};
    let (_test_db, db) = TestDatabase::create().await.unwrap();
    let id = ModelId::parse("exp").unwrap();
    let s = spec(&["a", "b"]);
    put_experiment(&db, &id, &s, &ModelDefaults::default(), "chan")
        .await
        .unwrap();
    let wanted = |unit: &str, arm: usize| NewAssignment {
        experiment: id.clone(),
        unit: unit.to_owned(),
        arm: s.arms[arm].clone(),
    };
    for round in 0..20 {
        let unit = format!("user-{round}");
        let (to_a, to_b) = ([wanted(&unit, 0)], [wanted(&unit, 1)]);
        let (x, y) = tokio::join!(
            assign_units(&db, &to_a, "chan"),
            assign_units(&db, &to_b, "chan"),
        );
        let first = |a: Result<Vec<Option<_>>, _>| a.unwrap().pop().flatten().unwrap();
        let (x, y): (platform::store::Assignment, _) = (first(x), first(y));
        assert_eq!(x.arm, y.arm, "round {round}");
        assert!(x.created != y.created, "round {round}: exactly one insert");
        let again = assign_units(&db, &[wanted(&unit, 1)], "chan")
            .await
            .unwrap();
        assert_eq!(again[0].as_ref().unwrap().arm, x.arm);
        assert!(!again[0].as_ref().unwrap().created);
    }
    // One statement: new units, a unit twice (the first arm asked wins, and
    // only its first answer created it) and a unit assigned before.
    let batch = [
        wanted("new-1", 1),
        wanted("new-2", 0),
        wanted("new-1", 0),
        wanted("user-0", 0),
    ];
    let answers = assign_units(&db, &batch, "chan").await.unwrap();
    let answers: Vec<_> = answers.into_iter().map(Option::unwrap).collect();
    assert_eq!(answers[0].arm, s.arms[1]);
    assert_eq!(answers[2].arm, s.arms[1]);
    assert!(answers[0].created && answers[1].created);
    assert!(!answers[2].created && !answers[3].created);
    let counts = assignment_counts(&db, &id, &s.arms).await.unwrap();
    assert_eq!(counts.iter().sum::<u64>(), 22);
    // Units of an experiment that is gone are not stored, and fail nothing else.
    let gone = NewAssignment {
        experiment: ModelId::parse("gone").unwrap(),
        ..wanted("u", 0)
    };
    let answers = assign_units(&db, &[gone, wanted("new-3", 0)], "chan")
        .await
        .unwrap();
    assert!(answers[0].is_none() && answers[1].as_ref().unwrap().created);
}

#[tokio::test]
async fn an_id_applied_with_other_content_refuses_the_whole_batch_and_is_named() {
    let (_test_db, db) = TestDatabase::create().await.unwrap();
    let defaults = ModelDefaults::default();
    let first = [identified("k", "a", 1, 0, 0)];
    apply_batch(&db, &batch_with(0, None, 1, &[], &first), &defaults, "c")
        .await
        .unwrap();
    // The same id for model b, with another fresh id and a plain delta.
    let second = [
        identified("fresh", "a", 1, 0, 1),
        identified("k", "b", 3, 2, 2),
    ];
    let plain = [delta("a", 5, 0, 3)];
    let err = apply_batch(
        &db,
        &batch_with(0, Some(1), 4, &plain, &second),
        &defaults,
        "c",
    )
    .await
    .unwrap_err();
    assert!(matches!(err, StoreError::IdConflict(_)), "{err:?}");
    // Nothing of it was written: not the offset, not the fresh id, not b.
    assert_eq!(
        load_offset(&db, "g", "observations", 0).await.unwrap(),
        Some(1)
    );
    assert_eq!(state_of(&db, "a").await, (1, 0, 1));
    assert_eq!(
        count(&db, "SELECT count(*) FROM models WHERE id = 'b'").await,
        0
    );
    assert_eq!(
        conflicting_ids(&db, &second).await.unwrap(),
        [IdConflict {
            id: "k".into(),
            applied_model: Some("a".into()),
            applied_counts: Some(Counts::new(1, 0)),
        }]
    );
    // The same model with other counts conflicts too; the same content is a retry.
    let recount = [identified("k", "a", 0, 1, 5)];
    assert_eq!(conflicting_ids(&db, &recount).await.unwrap().len(), 1);
    assert!(conflicting_ids(&db, &first).await.unwrap().is_empty());
    // Without it, the rest is written.
    let applied = apply_batch(
        &db,
        &batch_with(0, Some(1), 4, &plain, &second[..1]),
        &defaults,
        "c",
    )
    .await
    .unwrap();
    assert_eq!(applied.duplicates, 0);
    assert_eq!(state_of(&db, "a").await, (7, 0, 2));
}

#[tokio::test]
async fn an_id_applied_before_its_content_was_kept_is_a_retry_whatever_it_carries() {
    let (_test_db, db) = TestDatabase::create().await.unwrap();
    let defaults = ModelDefaults::default();
    // As migrations leave ids applied before m0008: no counts, maybe no model.
    db.execute_unprepared(
        "INSERT INTO applied_ids (id, model_id, source_partition, source_offset) VALUES
            ('old-a', 'a', 0, 0), ('old-any', '', -1, -1)",
    )
    .await
    .unwrap();
    let retry = [
        identified("old-a", "a", 7, 7, 0),
        identified("old-any", "b", 1, 0, 1),
    ];
    let applied = apply_batch(&db, &batch_with(0, None, 2, &[], &retry), &defaults, "c")
        .await
        .unwrap();
    assert_eq!(applied.duplicates, 2);
    // A known model still tells a conflict.
    let other_model = [identified("old-a", "b", 1, 0, 2)];
    let err = apply_batch(
        &db,
        &batch_with(0, Some(2), 3, &[], &other_model),
        &defaults,
        "c",
    )
    .await
    .unwrap_err();
    assert!(matches!(err, StoreError::IdConflict(_)), "{err:?}");
}

#[tokio::test]
async fn two_partitions_racing_one_id_with_other_contents_commit_exactly_one() {
    let (_test_db, db) = TestDatabase::create().await.unwrap();
    let defaults = ModelDefaults::default();
    for round in 0..20i64 {
        let id = format!("race-{round}");
        let on_a = [identified(&id, "a", 1, 0, round)];
        let on_b = [identified(&id, "b", 0, 1, round)];
        // Each partition's offset moves only when its batch commits.
        let (a_next, b_next) = (
            load_offset(&db, "g", "observations", 0).await.unwrap(),
            load_offset(&db, "g", "observations", 1).await.unwrap(),
        );
        let write_a = batch_with(0, a_next, a_next.unwrap_or(0) + 1, &[], &on_a);
        let write_b = batch_with(1, b_next, b_next.unwrap_or(0) + 1, &[], &on_b);
        let (a, b) = tokio::join!(
            apply_batch(&db, &write_a, &defaults, "c"),
            apply_batch(&db, &write_b, &defaults, "c"),
        );
        let refused = [&a, &b]
            .iter()
            .filter(|r| matches!(r, Err(StoreError::IdConflict(_))))
            .count();
        assert_eq!(refused, 1, "round {round}: {a:?} {b:?}");
    }
    let counted = |state: Option<(i64, i64, i64)>| state.map_or(0, |(s, f, _)| s + f);
    let (a, b) = (state_if_any(&db, "a").await, state_if_any(&db, "b").await);
    assert_eq!(
        counted(a) + counted(b),
        20,
        "each id counted once: {a:?} {b:?}"
    );
}

async fn state_if_any(db: &DatabaseConnection, model: &str) -> Option<(i64, i64, i64)> {
    let known = count(
        db,
        &format!("SELECT count(*) FROM model_states WHERE model_id = '{model}'"),
    )
    .await;
    if known == 0 {
        None
    } else {
        Some(state_of(db, model).await)
    }
}

#[tokio::test]
async fn a_character_the_databases_encoding_lacks_is_unstorable_and_found_by_a_trial() {
    let (_test_db, db) = TestDatabase::create_with_encoding("LATIN1").await.unwrap();
    let defaults = ModelDefaults::default();
    let ids = [
        identified("caf\u{e9}", "a", 1, 0, 0),
        identified("\u{65e5}\u{672c}", "a", 1, 0, 1),
    ];
    let write = batch_with(0, None, 2, &[], &ids);
    let err = apply_batch(&db, &write, &defaults, "c").await.unwrap_err();
    assert!(matches!(err, StoreError::Unstorable(_)), "{err:?}");
    // A trial says the same and writes nothing, whatever it says.
    let err = try_batch(&db, &write, &defaults, "c").await.unwrap_err();
    assert!(matches!(err, StoreError::Unstorable(_)), "{err:?}");
    try_batch(&db, &batch_with(0, None, 2, &[], &ids[..1]), &defaults, "c")
        .await
        .unwrap();
    assert_eq!(
        load_offset(&db, "g", "observations", 0).await.unwrap(),
        None
    );
    assert_eq!(count(&db, "SELECT count(*) FROM applied_ids").await, 0);
    // What LATIN1 holds is stored as it came.
    apply_batch(&db, &batch_with(0, None, 2, &[], &ids[..1]), &defaults, "c")
        .await
        .unwrap();
    let stored = db
        .query_one(Statement::from_string(
            DbBackend::Postgres,
            "SELECT id FROM applied_ids",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.try_get::<String>("", "id").unwrap(), "caf\u{e9}");
}

#[tokio::test]
async fn other_numbered_ids_leave_the_bits_for_rows_and_come_back_on_the_way_down() {
    use platform::store::migration::Migrator;
    use sea_orm_migration::MigratorTrait;

    let (_test_db, db) = TestDatabase::create().await.unwrap();
    let defaults = ModelDefaults::default();
    down_to_before(&db, "m0008_applied_id_content").await;
    // Bits as m0007 kept them: an upload's lines 1 and 1025, and a client's
    // own `order:3` and `order:4`.
    db.execute_unprepared(
        "INSERT INTO applied_id_bits (prefix, chunk, bits, fresh) VALUES
            ('9f86d081884c7d659a2f', 0, set_bit(B'0'::bit(1024), 1, 1), B'0'::bit(1024)),
            ('9f86d081884c7d659a2f', 1, set_bit(B'0'::bit(1024), 1, 1), B'0'::bit(1024)),
            ('order', 0, set_bit(set_bit(B'0'::bit(1024), 3, 1), 4, 1), B'0'::bit(1024))",
    )
    .await
    .unwrap();
    Migrator::up(&db, None).await.unwrap();
    assert_eq!(count(&db, "SELECT count(*) FROM applied_id_bits").await, 2);
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM applied_ids
             WHERE id IN ('order:3', 'order:4') AND model_id = '' AND successes IS NULL"
        )
        .await,
        2
    );
    // Each is still recognised, whatever it carries: its content is not known.
    let retry = [
        identified("9f86d081884c7d659a2f:1", "a", 1, 0, 0),
        identified("9f86d081884c7d659a2f:1025", "a", 1, 0, 1),
        identified("order:3", "a", 1, 0, 2),
        identified("order:4", "b", 0, 9, 3),
        identified("order:5", "a", 1, 0, 4),
    ];
    let applied = apply_batch(&db, &batch_with(0, None, 5, &[], &retry), &defaults, "c")
        .await
        .unwrap();
    assert_eq!(applied.duplicates, 4, "only order:5 is new");
    down_to_before(&db, "m0008_applied_id_content").await;
    assert_eq!(count(&db, "SELECT count(*) FROM applied_ids").await, 0);
    assert_eq!(count(&db, "SELECT count(*) FROM applied_id_bits").await, 3);
    Migrator::up(&db, None).await.unwrap();
}

/// Strings as a hostile client would send them: any Unicode scalar value,
/// with NUL, other control characters, non-characters and lengths around
/// the limit overrepresented.
fn hostile_string() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    let edge = prop_oneof![
        Just('\0'),
        Just('\u{1f}'),
        Just('\u{7f}'),
        Just('\u{9f}'),
        Just('\u{fffe}'),
        Just('\u{ffff}'),
        Just('\u{10ffff}'),
        Just('\u{2028}'),
        Just('\u{e9}'),
        Just('x'),
    ];
    let char = prop_oneof![3 => any::<char>(), 2 => edge];
    prop_oneof![
        proptest::collection::vec(char.clone(), 0..8),
        proptest::collection::vec(char, 150..170),
    ]
    .prop_map(|chars| chars.into_iter().collect())
}

#[test]
fn any_id_the_edge_accepts_is_stored_and_read_back_unchanged() {
    use proptest::prelude::*;

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (_test_db, db) = runtime.block_on(TestDatabase::create()).unwrap();
    let defaults = ModelDefaults::default();
    let next = std::cell::Cell::new(0i64);
    let config = ProptestConfig {
        cases: 200,
        ..ProptestConfig::default()
    };
    proptest!(config, |(id in hostile_string())| {
        let accepted = domain::observation::check_id(&id).is_ok();
        prop_assert_eq!(
            accepted,
            !id.is_empty() && id.chars().count() <= 160 && !id.chars().any(char::is_control),
            "{:?}", id
        );
        // The edge refuses the rest (400 or 422); an upload's line ids go
        // to the bits and are not this test's.
        if accepted && domain::observation::upload_line_id(&id).is_none() {
            let offset = next.get();
            next.set(offset + 1);
            let ids = [identified(&id, "m", 1, 0, offset)];
            let expected = (offset > 0).then_some(offset);
            let write = batch_with(0, expected, offset + 1, &[], &ids);
            runtime
                .block_on(apply_batch(&db, &write, &defaults, "c"))
                .map_err(|e| TestCaseError::fail(format!("{id:?}: {e}")))?;
            // Found by its own value (a shrinking run sends one id twice,
            // and the second is a retry that writes no row).
            let row = runtime
                .block_on(db.query_one(Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    "SELECT id FROM applied_ids WHERE id = $1",
                    [id.clone().into()],
                )))
                .unwrap();
            let stored: Option<String> = row.map(|r| r.try_get("", "id").unwrap());
            prop_assert_eq!(stored.as_deref(), Some(id.as_str()));
        }
    });
}

/// `configure_model` as `PUT /models/{id}` calls it.
async fn put(
    db: &DatabaseConnection,
    model: &str,
    prior: Option<domain::Prior>,
    grid_size: Option<u32>,
    per_hour: u32,
) -> platform::store::Configured {
    use platform::store::{configure_model, ChangeLimit, ModelConfig};
    let config = ModelConfig {
        prior,
        grid_size: grid_size.map(|g| domain::bayes::GridSize::parse(g).unwrap()),
    };
    let id = ModelId::parse(model).unwrap();
    configure_model(
        db,
        &id,
        &config,
        &ModelDefaults::default(),
        ChangeLimit { per_hour },
        "chan",
    )
    .await
    .unwrap()
}

fn big_grid(seed: u64) -> domain::Prior {
    domain::Prior::Grid {
        weights: (0..100_000u64).map(|i| ((i + seed) % 7) as f64).collect(),
    }
}

#[tokio::test]
async fn a_prior_is_stored_once_however_many_models_and_versions_use_it() {
    use platform::store::Configured;
    let (_test_db, db) = TestDatabase::create().await.unwrap();
    let beta = domain::Prior::Beta { a: 2.0, b: 3.0 };
    // Three models on one 100 000-weight prior, each switched to a beta
    // prior and back: 9 configurations, 2 priors (and the default).
    for model in ["a", "b", "c"] {
        assert!(matches!(
            put(&db, model, Some(big_grid(0)), None, 0).await,
            Configured::Created(_)
        ));
        assert!(matches!(
            put(&db, model, Some(beta.clone()), None, 0).await,
            Configured::Changed(_)
        ));
        assert!(matches!(
            put(&db, model, Some(big_grid(0)), None, 0).await,
            Configured::Changed(_)
        ));
    }
    assert_eq!(count(&db, "SELECT count(*) FROM model_configs").await, 9);
    assert_eq!(count(&db, "SELECT count(*) FROM priors").await, 3);
    // A configuration row holds a key, not a prior: a hundred bytes or so.
    let widest = "SELECT max(pg_column_size(c.*))::bigint FROM model_configs c";
    assert!(
        count(&db, widest).await < 200,
        "{}",
        count(&db, widest).await
    );
    // Every read path sees the priors.
    let record = platform::store::get_model(&db, &ModelId::parse("b").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(*record.prior, big_grid(0));
    let page = platform::store::list_models(&db, None, 10).await.unwrap();
    assert!(
        page.iter().all(|r| *r.prior == big_grid(0)),
        "{}",
        page.len()
    );
    let then = platform::store::config_at_version(&db, &record.id, 0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(then.prior, big_grid(0));
    // The consumer's batch statement still creates models with the
    // default prior written as JSON: it lands in `priors` too.
    apply(&db, &batch(None, 1, &[delta("fresh", 1, 0, 0)]), "c")
        .await
        .unwrap();
    let fresh = platform::store::get_model(&db, &ModelId::parse("fresh").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(*fresh.prior, domain::Prior::Uniform);
    assert_eq!(count(&db, "SELECT count(*) FROM priors").await, 3);
    assert_eq!(
        count(&db, "SELECT count(*) FROM models WHERE prior IS NOT NULL").await,
        0
    );
}

#[tokio::test]
async fn a_configuration_that_changes_nothing_writes_nothing_and_tells_no_one() {
    use platform::store::Configured;
    use sea_orm::sqlx::postgres::PgListener;
    let (test_db, db) = TestDatabase::create().await.unwrap();
    let mut listener = PgListener::connect(&test_db.url()).await.unwrap();
    listener.listen("chan").await.unwrap();
    let prior = big_grid(3);
    assert!(matches!(
        put(&db, "m", Some(prior.clone()), Some(50), 1).await,
        Configured::Created(_)
    ));
    let created = listener.recv().await.unwrap();
    assert_eq!(created.payload(), "m");
    let stamp = "SELECT (extract(epoch from updated_at) * 1e6)::bigint FROM models";
    let (configs, configured_at) = (
        count(&db, "SELECT count(*) FROM model_configs").await,
        count(&db, stamp).await,
    );

    // The same prior and grid, either or both, and nothing at all: as it is.
    // (The bound of one change an hour does not apply to what is no change.)
    for (prior, grid) in [
        (Some(prior.clone()), Some(50)),
        (Some(prior.clone()), None),
        (None, Some(50)),
        (None, None),
    ] {
        match put(&db, "m", prior, grid, 1).await {
            Configured::Unchanged(record) => {
                assert_eq!(
                    (domain::Prior::clone(&record.prior), record.grid_size.get()),
                    (big_grid(3), 50)
                )
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        count(&db, "SELECT count(*) FROM model_configs").await,
        configs
    );
    assert_eq!(count(&db, stamp).await, configured_at);
    assert_eq!(
        count(&db, "SELECT count(*) FROM priors").await,
        2,
        "the default and the grid"
    );
    // No notification was sent: the next one heard is the next change's.
    assert!(matches!(
        put(&db, "m", None, Some(51), 1).await,
        Configured::Changed(_)
    ));
    let heard = tokio::time::timeout(Duration::from_secs(10), listener.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(heard.payload(), "m");
    assert!(
        tokio::time::timeout(Duration::from_millis(200), listener.recv())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn changes_past_the_hourly_bound_wait_for_the_oldest_to_age_an_hour() {
    use platform::store::Configured;
    let (_test_db, db) = TestDatabase::create().await.unwrap();
    let beta = |a: f64| Some(domain::Prior::Beta { a, b: 1.0 });
    // Creating is no change; then two changes an hour.
    assert!(matches!(
        put(&db, "m", beta(1.0), None, 2).await,
        Configured::Created(_)
    ));
    assert!(matches!(
        put(&db, "m", beta(2.0), None, 2).await,
        Configured::Changed(_)
    ));
    assert!(matches!(
        put(&db, "m", beta(3.0), None, 2).await,
        Configured::Changed(_)
    ));
    match put(&db, "m", beta(4.0), None, 2).await {
        Configured::Limited { retry_after } => {
            assert!(
                (3590..=3600).contains(&retry_after.as_secs()),
                "{retry_after:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(count(&db, "SELECT count(*) FROM model_configs").await, 3);
    assert_eq!(
        count(&db, "SELECT count(*) FROM priors").await,
        4,
        "the refused prior was not kept"
    );
    let record = platform::store::get_model(&db, &ModelId::parse("m").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(*record.prior, beta(3.0).unwrap());
    // An hour later for the first change (and the creation), half an hour
    // for the second: one change is allowed again, the next is not.
    db.execute_unprepared(
        "UPDATE model_configs SET configured_at = configured_at - interval '61 minutes' WHERE seq <= 2;
         UPDATE model_configs SET configured_at = configured_at - interval '30 minutes' WHERE seq = 3",
    )
    .await
    .unwrap();
    assert!(matches!(
        put(&db, "m", beta(4.0), None, 2).await,
        Configured::Changed(_)
    ));
    match put(&db, "m", beta(5.0), None, 2).await {
        Configured::Limited { retry_after } => {
            assert!(
                (1790..=1800).contains(&retry_after.as_secs()),
                "{retry_after:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    // 0: no bound.
    assert!(matches!(
        put(&db, "m", beta(5.0), None, 0).await,
        Configured::Changed(_)
    ));
}

#[tokio::test]
async fn the_hourly_bound_holds_across_two_replicas_writing_at_once() {
    use platform::store::Configured;
    let (test_db, db) = TestDatabase::create().await.unwrap();
    // A second pool: another replica of the model service.
    let other = connect(&test_db.settings).await.unwrap();
    put(&db, "m", None, None, 3).await;
    let mut changes = tokio::task::JoinSet::new();
    for i in 0..10u32 {
        let pool = if i % 2 == 0 {
            db.clone()
        } else {
            other.clone()
        };
        changes.spawn(async move { put(&pool, "m", None, Some(100 + i), 3).await });
    }
    let outcomes = changes.join_all().await;
    let changed = outcomes
        .iter()
        .filter(|o| matches!(o, Configured::Changed(_)))
        .count();
    let limited = outcomes
        .iter()
        .filter(|o| matches!(o, Configured::Limited { .. }))
        .count();
    assert_eq!((changed, limited), (3, 7), "{outcomes:?}");
    assert_eq!(count(&db, "SELECT count(*) FROM model_configs").await, 4);
}

#[tokio::test]
async fn the_priors_migration_moves_every_prior_out_and_back() {
    use platform::store::{config_at_version, get_model, list_models};
    let (_test_db, db) = TestDatabase::create().await.unwrap();
    down_to_before(&db, "m0009_priors").await;
    let grid = serde_json::to_string(&big_grid(1)).unwrap();
    // Two models on one big prior (one changed from it since), one by its
    // data, and priors the parser now refuses: a step ending at 5e-324, a
    // step one double wide, a grid weight 1e-320 of the largest.
    db.execute_unprepared(&format!(
        r#"INSERT INTO models (id, prior, grid_size) VALUES
               ('a', '{grid}', 100), ('b', '{grid}', 100), ('c', '{{"type":"beta","a":2.0,"b":2.0}}', 50),
               ('tiny', '{{"type":"step","lower":0.0,"upper":5e-324}}', 10),
               ('thin', '{{"type":"step","lower":0.3,"upper":0.30000000000000004}}', 10),
               ('wide', '{{"type":"grid","weights":[1e300,0.0,1e-20]}}', 10),
               ('data', '{{"type":"uniform"}}', 1000);
           INSERT INTO model_states (model_id, successes, failures, version)
               SELECT id, 3, 4, 1 FROM models;
           INSERT INTO model_configs (model_id, from_version, prior, grid_size) VALUES
               ('a', 0, '{grid}', 100), ('b', 0, '{grid}', 100),
               ('c', 0, '{grid}', 100), ('c', 1, '{{"type":"beta","a":2.0,"b":2.0}}', 50),
               ('tiny', 0, '{{"type":"step","lower":1e-310,"upper":1e-305}}', 10);"#
    ))
    .await
    .unwrap();

    platform::store::migrate(&db).await.unwrap();
    assert_eq!(
        count(&db, "SELECT count(*) FROM priors").await,
        7,
        "grid, beta, uniform and 4 repaired"
    );
    let widest = "SELECT max(pg_column_size(c.*))::bigint FROM model_configs c";
    assert!(
        count(&db, widest).await < 200,
        "{}",
        count(&db, widest).await
    );
    let id = |s: &str| ModelId::parse(s).unwrap();
    assert_eq!(
        *get_model(&db, &id("a")).await.unwrap().unwrap().prior,
        big_grid(1)
    );
    assert_eq!(
        config_at_version(&db, &id("c"), 0)
            .await
            .unwrap()
            .unwrap()
            .prior,
        big_grid(1)
    );
    assert_eq!(
        config_at_version(&db, &id("c"), 1)
            .await
            .unwrap()
            .unwrap()
            .prior,
        domain::Prior::Beta { a: 2.0, b: 2.0 }
    );
    // The refused priors became the nearest the engine computes, and read.
    let models = list_models(&db, None, 100).await.unwrap();
    let prior_of = |name: &str| {
        models
            .iter()
            .find(|r| r.id.as_str() == name)
            .unwrap()
            .prior
            .as_ref()
            .clone()
    };
    assert_eq!(
        prior_of("tiny"),
        domain::Prior::Step {
            lower: 0.0,
            upper: 1e-300
        }
    );
    match prior_of("thin") {
        domain::Prior::Step { lower, upper } => {
            assert_eq!(lower, 0.3);
            assert!((upper - 0.3 - 6e-10).abs() < 1e-15, "{upper}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        prior_of("wide"),
        domain::Prior::Grid {
            weights: vec![1e300, 0.0, 0.0]
        }
    );
    assert_eq!(
        config_at_version(&db, &id("tiny"), 0)
            .await
            .unwrap()
            .unwrap()
            .prior,
        domain::Prior::Step {
            lower: 0.0,
            upper: 1e-300
        }
    );
    for record in &models {
        domain::bayes::Posterior::new(&record.prior, record.state.counts).unwrap();
    }

    // Down: every prior back in its rows, the table gone; and up again.
    down_to_before(&db, "m0009_priors").await;
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'priors'"
        )
        .await,
        0
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM models WHERE prior IS NULL").await,
        0
    );
    assert_eq!(
        count(
            &db,
            &format!("SELECT count(*) FROM models WHERE prior = '{grid}'::jsonb")
        )
        .await,
        2
    );
    assert_eq!(
        count(
            &db,
            &format!("SELECT count(*) FROM model_configs WHERE prior = '{grid}'::jsonb")
        )
        .await,
        3
    );
    platform::store::migrate(&db).await.unwrap();
    assert_eq!(
        *get_model(&db, &id("b")).await.unwrap().unwrap().prior,
        big_grid(1)
    );
    assert_eq!(count(&db, "SELECT count(*) FROM priors").await, 7);
}
