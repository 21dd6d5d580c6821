//! The store against a real Postgres: migrations, the exactly-once batch
//! transaction and its compare-and-set.

use shared::bayes::Counts;
use shared::settings::ModelDefaults;
use shared::store::testing::TestDatabase;
use shared::store::write::{apply_batch, load_offset, BatchWrite, ModelDelta};
use shared::store::{migrate, StoreError};
use shared::ModelId;

fn delta(model: &str, s: u64, f: u64, last_offset: i64) -> ModelDelta {
    ModelDelta {
        model: ModelId::parse(model).unwrap(),
        counts: Counts::new(s, f),
        last_offset,
    }
}

fn batch<'a>(expected: Option<i64>, next: i64, deltas: &'a [ModelDelta]) -> BatchWrite<'a> {
    BatchWrite {
        group_id: "g",
        topic: "observations",
        partition: 0,
        expected_next_offset: expected,
        next_offset: next,
        deltas,
    }
}

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
    assert_eq!(applied.len(), 2);
    let second = [delta("globe", 1, 1, 12)];
    let applied = apply_batch(&db, &batch(Some(9), 13, &second), &defaults, "chan")
        .await
        .unwrap();
    assert_eq!(applied[0].state.counts, Counts::new(7, 4));
    assert_eq!(applied[0].state.version, 2);
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

    use sea_orm::{EntityTrait, QueryOrder};
    use shared::store::entities::model_history;
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
        (applied[0].state.counts, applied[0].state.version),
        (Counts::new(2, 0), 2)
    );
}
