//! Schema migrations, applied in order by [`super::migrate`].

use sea_orm_migration::prelude::*;

#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(CreateTables),
            Box::new(AppliedIds),
            Box::new(RecordConsumerSource),
            Box::new(PriorHistory),
        ]
    }
}

#[derive(Debug, DeriveMigrationName)]
struct CreateTables;

#[async_trait::async_trait]
impl MigrationTrait for CreateTables {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Plain SQL: the schema is Postgres-only and reads best as the DDL it is.
        manager
            .get_connection()
            .execute_unprepared(
                r#"
CREATE TABLE models (
    id          VARCHAR(64) PRIMARY KEY,
    prior       JSONB       NOT NULL,
    grid_size   INTEGER     NOT NULL CHECK (grid_size BETWEEN 2 AND 100000),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE model_states (
    model_id    VARCHAR(64) PRIMARY KEY REFERENCES models (id) ON DELETE CASCADE,
    successes   BIGINT      NOT NULL CHECK (successes >= 0),
    failures    BIGINT      NOT NULL CHECK (failures >= 0),
    version     BIGINT      NOT NULL CHECK (version >= 0),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- One row a model a committed batch that touched it: version N holds the
-- cumulative counts after the N-th update and the delta that update added.
CREATE TABLE model_history (
    model_id          VARCHAR(64) NOT NULL REFERENCES models (id) ON DELETE CASCADE,
    version           BIGINT      NOT NULL CHECK (version >= 1),
    successes         BIGINT      NOT NULL,
    failures          BIGINT      NOT NULL,
    delta_successes   BIGINT      NOT NULL,
    delta_failures    BIGINT      NOT NULL,
    source_partition  INTEGER     NOT NULL,
    source_offset     BIGINT      NOT NULL,
    applied_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (model_id, version)
);
CREATE INDEX model_history_applied_at ON model_history (model_id, applied_at);

-- Where each consumer group resumes: the source of truth, not Kafka's commits.
CREATE TABLE consumer_offsets (
    group_id     VARCHAR(255) NOT NULL,
    topic        VARCHAR(255) NOT NULL,
    partition    INTEGER      NOT NULL,
    next_offset  BIGINT       NOT NULL CHECK (next_offset >= 0),
    updated_at   TIMESTAMPTZ  NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, topic, partition)
);
"#,
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("DROP TABLE consumer_offsets, model_history, model_states, models")
            .await?;
        Ok(())
    }
}

/// The ids of applied observations, for the consumer's deduplication.
#[derive(Debug)]
struct AppliedIds;

// Named by hand: every migration in this file would otherwise take the
// file's name, and a second one with the same name would never run.
impl MigrationName for AppliedIds {
    fn name(&self) -> &str {
        "m0002_applied_ids"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for AppliedIds {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                r#"
-- The ids of the observations applied (within the retention): a record whose
-- id is here is a client's retry, skipped by the batch statement.
CREATE TABLE applied_ids (
    id                VARCHAR(255) PRIMARY KEY,
    model_id          VARCHAR(64)  NOT NULL,
    source_partition  INTEGER      NOT NULL,
    source_offset     BIGINT       NOT NULL,
    applied_at        TIMESTAMPTZ  NOT NULL DEFAULT now()
);
CREATE INDEX applied_ids_applied_at ON applied_ids (applied_at);
"#,
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("DROP TABLE applied_ids")
            .await?;
        Ok(())
    }
}

/// The group and topic the state was built from, so a consumer started with
/// another one is refused instead of mixing two logs into the counts.
#[derive(Debug)]
struct RecordConsumerSource;

// Named by hand, like `AppliedIds`.
impl MigrationName for RecordConsumerSource {
    fn name(&self) -> &str {
        "m0003_consumer_source"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for RecordConsumerSource {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                r#"
CREATE TABLE consumer_source (
    id          BOOLEAN      PRIMARY KEY DEFAULT TRUE CHECK (id),
    group_id    VARCHAR(255) NOT NULL,
    topic       VARCHAR(255) NOT NULL,
    claimed_at  TIMESTAMPTZ  NOT NULL DEFAULT now()
);

-- A database that already holds the offsets of exactly one group and topic
-- was built from them; with several, none is presumed and the consumer's
-- start-up check refuses any of them until a person decides.
INSERT INTO consumer_source (group_id, topic)
SELECT min(group_id), min(topic) FROM consumer_offsets
HAVING count(DISTINCT (group_id, topic)) = 1;
"#,
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("DROP TABLE consumer_source")
            .await?;
        Ok(())
    }
}

/// The prior history: each configuration a model has had and the version
/// from which it holds, so time travel answers with the prior in force
/// then. Models configured before this table existed keep their current
/// configuration for all of their past (nothing older is known), which is
/// what reading a model with no rows here means.
#[derive(Debug)]
struct PriorHistory;

// Named by hand, like `AppliedIds`.
impl MigrationName for PriorHistory {
    fn name(&self) -> &str {
        "m0004_prior_history"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for PriorHistory {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                r#"
-- Written by PUT /models/{id} under the model's lock, so `seq` and
-- `configured_at` (clock_timestamp() under that lock) follow commit order
-- within a model, as model_history's `version` and `applied_at` do.
CREATE TABLE model_configs (
    model_id       VARCHAR(64) NOT NULL REFERENCES models (id) ON DELETE CASCADE,
    seq            BIGSERIAL   NOT NULL,
    from_version   BIGINT      NOT NULL CHECK (from_version >= 0),
    prior          JSONB       NOT NULL,
    grid_size      INTEGER     NOT NULL CHECK (grid_size BETWEEN 2 AND 100000),
    configured_at  TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (model_id, seq)
);
"#,
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("DROP TABLE model_configs")
            .await?;
        Ok(())
    }
}
