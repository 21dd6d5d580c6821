//! The store's model lifecycle and API keys on a real Postgres: a batch
//! with `models.auto_create` off (refused whole, never creating a model,
//! even for one deleted while the batch waited for its lock), deleting
//! models and experiments, and the `api_keys` table.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use chrono::Utc;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement, TransactionTrait};

use common::{apply, batch, delta};
use domain::ModelId;
use platform::settings::ModelDefaults;
use platform::store::{
    self, apply_batch, configure_model, create_key, delete_model, existing_models, get_model,
    keys_in_force, load_offset, put_experiment, record_key_use, revoke_key, BanditConfig,
    ChangeLimit, Deleted, ExperimentSpec, KeyCreated, ModelConfig, NewKey, StoreError,
};
use test_support::database::TestDatabase;
use test_support::eventually;

fn id(text: &str) -> ModelId {
    ModelId::parse(text).unwrap()
}

fn closed() -> ModelDefaults {
    ModelDefaults {
        auto_create: false,
        ..ModelDefaults::default()
    }
}

async fn create(db: &DatabaseConnection, model: &str) {
    configure_model(
        db,
        &id(model),
        &ModelConfig::default(),
        &ModelDefaults::default(),
        ChangeLimit::UNLIMITED,
        "c",
    )
    .await
    .unwrap();
}

async fn trials(db: &DatabaseConnection, model: &str) -> Option<u64> {
    get_model(db, &id(model))
        .await
        .unwrap()
        .map(|m| m.state.counts.successes + m.state.counts.failures)
}

#[tokio::test]
async fn with_auto_create_off_a_batch_naming_a_missing_model_writes_nothing_and_creates_nothing() {
    let (_test_db, db) = TestDatabase::create().await.unwrap();
    create(&db, "a").await;
    let deltas = [delta("a", 1, 0, 0), delta("b", 2, 0, 0)];
    let err = apply_batch(&db, &batch(None, 2, &deltas), &closed(), "c")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::UnknownModels(_)), "{err:?}");
    assert_eq!(
        load_offset(&db, "g", "observations", 0).await.unwrap(),
        None
    );
    assert_eq!(trials(&db, "a").await, Some(0));
    assert_eq!(trials(&db, "b").await, None);
    let existing = existing_models(&db, &["a", "b"]).await.unwrap();
    assert_eq!(existing.into_iter().collect::<Vec<_>>(), ["a"]);

    apply_batch(&db, &batch(None, 2, &deltas[..1]), &closed(), "c")
        .await
        .unwrap();
    assert_eq!(trials(&db, "a").await, Some(1));
    // With auto_create on, as before: the data creates its model.
    apply(&db, &batch(Some(2), 3, &deltas[1..]), "c")
        .await
        .unwrap();
    assert_eq!(trials(&db, "b").await, Some(2));
}

/// Deletes `model` in a transaction that holds its lock until `release`
/// is sent, while a batch for it waits on that lock: the batch's statement
/// began (and took its snapshot) before the deletion committed.
async fn batch_racing_a_delete(auto_create: bool) -> Result<(), StoreError> {
    let (_test_db, db) = TestDatabase::create().await.unwrap();
    create(&db, "raced").await;
    let deleter = db.begin().await.unwrap();
    deleter
        .execute(Statement::from_string(
            DbBackend::Postgres,
            "SELECT pg_advisory_xact_lock(1836016748, hashtext('raced'))",
        ))
        .await
        .unwrap();
    deleter
        .execute(Statement::from_string(
            DbBackend::Postgres,
            "DELETE FROM models WHERE id = 'raced'",
        ))
        .await
        .unwrap();
    let defaults = ModelDefaults {
        auto_create,
        ..ModelDefaults::default()
    };
    let writer = tokio::spawn({
        let db = db.clone();
        async move {
            let deltas = [delta("raced", 4, 1, 0)];
            apply_batch(&db, &batch(None, 1, &deltas), &defaults, "c")
                .await
                .map(|_| ())
        }
    });
    eventually("the batch waits for the model's lock", async || {
        let row = db
            .query_one(Statement::from_string(
                DbBackend::Postgres,
                "SELECT count(*) AS n FROM pg_stat_activity
                 WHERE wait_event_type = 'Lock' AND wait_event = 'advisory'
                   AND datname = current_database()",
            ))
            .await
            .unwrap()
            .unwrap();
        (row.try_get::<i64>("", "n").unwrap() > 0).then_some(())
    })
    .await;
    deleter.commit().await.unwrap();
    let written = tokio::time::timeout(Duration::from_secs(30), writer)
        .await
        .unwrap()
        .unwrap();
    let after = trials(&db, "raced").await;
    match (&written, auto_create) {
        (Err(StoreError::UnknownModels(_)), false) => assert_eq!(after, None),
        (Ok(()), true) => assert_eq!(after, Some(5), "created anew, from this batch alone"),
        other => panic!("{other:?}"),
    }
    written
}

#[tokio::test]
async fn a_model_deleted_while_a_batch_waits_for_its_lock_is_refused_not_created_again() {
    let written = batch_racing_a_delete(false).await;
    assert!(
        matches!(written, Err(StoreError::UnknownModels(_))),
        "{written:?}"
    );
}

#[tokio::test]
async fn with_auto_create_on_a_model_deleted_under_a_batch_starts_anew_from_it() {
    batch_racing_a_delete(true).await.unwrap();
}

#[tokio::test]
async fn deleting_a_model_takes_its_history_and_spares_the_arms_of_experiments() {
    let (_test_db, db) = TestDatabase::create().await.unwrap();
    let deltas = [delta("gone", 3, 1, 0), delta("arm", 1, 1, 0)];
    apply(&db, &batch(None, 1, &deltas), "c").await.unwrap();
    assert_eq!(
        delete_model(&db, &id("gone"), "c").await.unwrap(),
        Deleted::Deleted
    );
    assert_eq!(trials(&db, "gone").await, None);
    for table in ["model_states", "model_history", "model_configs"] {
        let row = db
            .query_one(Statement::from_string(
                DbBackend::Postgres,
                format!("SELECT count(*) AS n FROM {table} WHERE model_id = 'gone'"),
            ))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.try_get::<i64>("", "n").unwrap(), 0, "{table}");
    }
    assert_eq!(
        delete_model(&db, &id("gone"), "c").await.unwrap(),
        Deleted::NotFound
    );

    let spec = ExperimentSpec {
        arms: vec![id("arm"), id("other")],
        control: id("arm"),
        threshold_of_caring: 0.001,
        rope: 0.01,
        planned_weights: None,
        bandit: BanditConfig {
            min_trials: 0,
            floor: 0.0,
            top_two: false,
        },
    };
    put_experiment(&db, &id("exp"), &spec, &ModelDefaults::default(), "c")
        .await
        .unwrap();
    assert_eq!(
        delete_model(&db, &id("arm"), "c").await.unwrap(),
        Deleted::InExperiments(vec!["exp".to_owned()])
    );
    assert!(store::delete_experiment(&db, &id("exp"), "chan")
        .await
        .unwrap());
    assert!(!store::delete_experiment(&db, &id("exp"), "chan")
        .await
        .unwrap());
    assert_eq!(
        delete_model(&db, &id("arm"), "c").await.unwrap(),
        Deleted::Deleted
    );
}

#[tokio::test]
async fn keys_are_unique_by_name_in_force_bounded_in_number_and_revoked_for_good() {
    let (_test_db, db) = TestDatabase::create().await.unwrap();
    let (a, b) = ("a".repeat(64), "b".repeat(64));
    let key = |id: &'static str, name: &'static str| NewKey {
        id,
        name,
        scopes: "ingest read",
        token_sha256: if id == "aaaaaaaaaaaa" { &a } else { &b },
        rate_limit: Some(5),
    };
    let created = create_key(&db, &key("aaaaaaaaaaaa", "k"), 2, "keys")
        .await
        .unwrap();
    let KeyCreated::Created(record) = created else {
        panic!("{created:?}")
    };
    assert_eq!(
        (record.scopes.as_str(), record.rate_limit),
        ("ingest read", Some(5))
    );
    assert_eq!(
        create_key(&db, &key("bbbbbbbbbbbb", "k"), 2, "keys")
            .await
            .unwrap(),
        KeyCreated::NameTaken
    );
    assert_eq!(
        create_key(&db, &key("bbbbbbbbbbbb", "k2"), 1, "keys")
            .await
            .unwrap(),
        KeyCreated::TooMany
    );
    let later = Utc::now();
    let earlier = later - chrono::Duration::minutes(5);
    record_key_use(&db, &[("aaaaaaaaaaaa".to_owned(), later)])
        .await
        .unwrap();
    record_key_use(&db, &[("aaaaaaaaaaaa".to_owned(), earlier)])
        .await
        .unwrap();
    let in_force = keys_in_force(&db).await.unwrap();
    let used = in_force[0].last_used_at.unwrap();
    assert!(
        (used - later).num_milliseconds().abs() < 1,
        "{used} {later}"
    );

    assert!(revoke_key(&db, "aaaaaaaaaaaa", "keys")
        .await
        .unwrap()
        .is_some());
    assert!(revoke_key(&db, "aaaaaaaaaaaa", "keys")
        .await
        .unwrap()
        .is_none());
    assert!(keys_in_force(&db).await.unwrap().is_empty());
    // The name is free again once its key is revoked.
    assert!(matches!(
        create_key(&db, &key("bbbbbbbbbbbb", "k"), 1, "keys")
            .await
            .unwrap(),
        KeyCreated::Created(_)
    ));
}
