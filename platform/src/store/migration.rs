//! Schema migrations, applied in order by [`super::migrate`].

use sea_orm_migration::prelude::*;

#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(CREATE_TABLES),
            Box::new(APPLIED_IDS),
            Box::new(CONSUMER_SOURCE),
            Box::new(PRIOR_HISTORY),
            Box::new(EXPERIMENTS),
            Box::new(UPLOADS),
            Box::new(APPLIED_ID_BITS),
            Box::new(APPLIED_ID_CONTENT),
            Box::new(PRIORS),
            Box::new(API_KEYS),
            Box::new(ARM_UNITS),
        ]
    }
}

/// A migration written as the SQL it runs: the schema is Postgres-only and
/// reads best as the DDL it is. Each has its own name, recorded in
/// `seaql_migrations` when it has run.
#[derive(Debug)]
struct Sql {
    name: &'static str,
    up: &'static str,
    down: &'static str,
}

impl MigrationName for Sql {
    fn name(&self) -> &str {
        self.name
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Sql {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared(self.up).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(self.down)
            .await?;
        Ok(())
    }
}

/// The first schema. Its name is the one the derive gave it (the file's),
/// as databases created then recorded it.
const CREATE_TABLES: Sql = Sql {
    name: "migration",
    up: r#"
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
    down: "DROP TABLE consumer_offsets, model_history, model_states, models",
};

/// The ids of applied observations, for the consumer's deduplication.
const APPLIED_IDS: Sql = Sql {
    name: "m0002_applied_ids",
    up: r#"
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
    down: "DROP TABLE applied_ids",
};

/// The group and topic the state was built from, so a consumer started with
/// another one is refused instead of mixing two logs into the counts.
const CONSUMER_SOURCE: Sql = Sql {
    name: "m0003_consumer_source",
    up: r#"
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
    down: "DROP TABLE consumer_source",
};

/// The prior history: each configuration a model has had and the version
/// from which it holds, so time travel answers with the prior in force
/// then. Models configured before this table existed keep their current
/// configuration for all of their past (nothing older is known), which is
/// what reading a model with no rows here means.
const PRIOR_HISTORY: Sql = Sql {
    name: "m0004_prior_history",
    up: r#"
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
    down: "DROP TABLE model_configs",
};

/// Experiments over models (their arms), and the units a bandit assigned.
const EXPERIMENTS: Sql = Sql {
    name: "m0005_experiments",
    up: r#"
-- An experiment names its arms (ordinary models, in order) and its control;
-- the figures are computed from the arms' states when asked.
CREATE TABLE experiments (
    id                   VARCHAR(64)      PRIMARY KEY,
    arms                 JSONB            NOT NULL,
    control              VARCHAR(64)      NOT NULL,
    threshold_of_caring  DOUBLE PRECISION NOT NULL CHECK (threshold_of_caring > 0),
    rope                 DOUBLE PRECISION NOT NULL CHECK (rope >= 0),
    planned_weights      JSONB,
    bandit               JSONB            NOT NULL,
    created_at           TIMESTAMPTZ      NOT NULL DEFAULT now(),
    updated_at           TIMESTAMPTZ      NOT NULL DEFAULT now()
);

-- One row a unit: the primary key makes an assignment sticky, and a second
-- concurrent insert of the same unit a no-op.
CREATE TABLE experiment_assignments (
    experiment_id  VARCHAR(64)  NOT NULL REFERENCES experiments (id) ON DELETE CASCADE,
    unit           VARCHAR(255) NOT NULL,
    arm            VARCHAR(64)  NOT NULL,
    assigned_at    TIMESTAMPTZ  NOT NULL DEFAULT now(),
    PRIMARY KEY (experiment_id, unit)
);
CREATE INDEX experiment_assignments_arm ON experiment_assignments (experiment_id, arm);
"#,
    down: "DROP TABLE experiment_assignments, experiments",
};

/// Bulk CSV uploads (`POST /uploads`): one row a file accepted, with what
/// the producer found in it, how far producing it got, and the Kafka
/// offsets its records span, so `GET /uploads/{id}` can say when the
/// consumer has applied all of it.
const UPLOADS: Sql = Sql {
    name: "m0006_uploads",
    up: r#"
-- `id` is derived from the content's SHA-256 (see the producer's uploads
-- module), so a file re-sent after a crash gets the same id, and its records
-- the same `<upload>:<line>` ids, which the consumer's deduplication skips.
-- `applied` is written the first time a reader finds the consumer's stored
-- offsets past `offsets` in every partition.
CREATE TABLE uploads (
    id             VARCHAR(64)  PRIMARY KEY,
    sha256         CHAR(64)     NOT NULL,
    filename       VARCHAR(255),
    bytes          BIGINT       NOT NULL CHECK (bytes >= 0),
    rows           BIGINT       NOT NULL CHECK (rows >= 0),
    trials         BIGINT       NOT NULL CHECK (trials >= 0),
    models         JSONB        NOT NULL,
    model_count    BIGINT       NOT NULL CHECK (model_count >= 0),
    topic          VARCHAR(255) NOT NULL,
    status         VARCHAR(16)  NOT NULL
                   CHECK (status IN ('producing', 'produced', 'applied', 'failed')),
    reason         TEXT,
    rows_produced  BIGINT       NOT NULL DEFAULT 0 CHECK (rows_produced >= 0),
    offsets        JSONB        NOT NULL DEFAULT '[]',
    received_at    TIMESTAMPTZ  NOT NULL,
    validated_at   TIMESTAMPTZ  NOT NULL,
    produced_at    TIMESTAMPTZ,
    applied_at     TIMESTAMPTZ,
    updated_at     TIMESTAMPTZ  NOT NULL DEFAULT now()
);
CREATE INDEX uploads_sha256 ON uploads (sha256, validated_at);
CREATE INDEX uploads_validated_at ON uploads (validated_at);
"#,
    down: "DROP TABLE uploads",
};

/// Numbered ids (`<prefix>:<n>`, as an upload's `<upload>:<line>`) kept as
/// bits: one row a prefix and 1024 consecutive numbers instead of one row an
/// id, so a 50-million-row upload costs some 50 000 small rows, not 50
/// million index entries. See `store::batch` for which ids go here.
const APPLIED_ID_BITS: Sql = Sql {
    name: "m0007_applied_id_bits",
    up: r#"
-- Bit k of `bits` (counted from the left, as get_bit does) is set when the id
-- `<prefix>:<chunk * 1024 + k>` was applied. `fresh` is the batch
-- statement's scratch: the bits its own upsert added, computed under the
-- row lock, so two batches racing on one id cannot both count it.
-- `applied_at` is the last time a bit was added: the row is forgotten a
-- retention after that.
CREATE TABLE applied_id_bits (
    prefix      VARCHAR(255) NOT NULL,
    chunk       BIGINT       NOT NULL CHECK (chunk >= 0),
    bits        BIT(1024)    NOT NULL,
    fresh       BIT(1024)    NOT NULL,
    applied_at  TIMESTAMPTZ  NOT NULL DEFAULT now(),
    PRIMARY KEY (prefix, chunk)
);
CREATE INDEX applied_id_bits_applied_at ON applied_id_bits (applied_at);

-- The numbered ids applied so far move over, so a retry of one of them is
-- still recognised. The pattern is the one store::batch uses: a canonical
-- decimal of at most 18 digits after the last colon.
WITH numbered AS (
    SELECT m[1] AS prefix, m[2]::bigint AS n, applied_at
    FROM applied_ids, regexp_match(id, '^(.*):(0|[1-9][0-9]{0,17})$') AS m
    WHERE m IS NOT NULL
)
INSERT INTO applied_id_bits (prefix, chunk, bits, fresh, applied_at)
SELECT prefix, n / 1024,
       bit_or(set_bit(B'0'::bit(1024), (n % 1024)::integer, 1)),
       B'0'::bit(1024),
       max(applied_at)
FROM numbered
GROUP BY prefix, n / 1024;
DELETE FROM applied_ids WHERE id ~ '^(.*):(0|[1-9][0-9]{0,17})$';
"#,
    down: r#"
INSERT INTO applied_ids (id, model_id, source_partition, source_offset, applied_at)
SELECT prefix || ':' || (chunk * 1024 + k), '', -1, -1, applied_at
FROM applied_id_bits, generate_series(0, 1023) AS k
WHERE get_bit(bits, k) = 1
ON CONFLICT (id) DO NOTHING;
DROP TABLE applied_id_bits;
"#,
};

/// An id names one observation: `applied_ids` keeps what each id carried, so
/// a record with a known id and other content is a conflict, not a retry.
/// Only an upload's line ids stay as bits (their upload's hash fixes what
/// they hold); other numbered ids, which m0007 moved to bits, become rows
/// again, their content unknown.
const APPLIED_ID_CONTENT: Sql = Sql {
    name: "m0008_applied_id_content",
    up: r#"
-- NULL (and a model_id of ''): applied before content was kept; any content
-- is then taken for a retry, as it was.
ALTER TABLE applied_ids ADD COLUMN successes BIGINT, ADD COLUMN failures BIGINT;

INSERT INTO applied_ids (id, model_id, source_partition, source_offset, applied_at)
SELECT prefix || ':' || (chunk * 1024 + k), '', -1, -1, applied_at
FROM applied_id_bits, generate_series(0, 1023) AS k
WHERE prefix !~ '^[0-9a-f]{20}(-[1-9][0-9]*)?$' AND get_bit(bits, k) = 1
ON CONFLICT (id) DO NOTHING;
DELETE FROM applied_id_bits WHERE prefix !~ '^[0-9a-f]{20}(-[1-9][0-9]*)?$';

-- The one rule for "same id, other content", used by the batch statement
-- and by the consumer's look-up of a refused batch's conflicts. What is not
-- known (an empty model, NULL counts) differs from nothing.
CREATE FUNCTION id_content_differs(
    stored_model text, stored_successes bigint, stored_failures bigint,
    model text, successes bigint, failures bigint
) RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (stored_model <> '' AND stored_model <> model)
        OR (stored_successes IS NOT NULL
            AND (stored_successes, stored_failures) IS DISTINCT FROM (successes, failures))
$$;

-- Raised by the batch statement when any of its ids conflicts, so that the
-- whole statement is undone; the constraint name tells the caller why.
CREATE FUNCTION refuse_id_conflicts(conflicts bigint) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
    IF conflicts > 0 THEN
        RAISE EXCEPTION '% observation id(s) of the batch were applied before with other content', conflicts
            USING ERRCODE = 'unique_violation', CONSTRAINT = 'applied_ids_content';
    END IF;
    RETURN conflicts;
END
$$;
"#,
    down: r#"
DROP FUNCTION refuse_id_conflicts(bigint);
DROP FUNCTION id_content_differs(text, bigint, bigint, text, bigint, bigint);
WITH numbered AS (
    SELECT m[1] AS prefix, m[2]::bigint AS n, applied_at
    FROM applied_ids, regexp_match(id, '^(.*):(0|[1-9][0-9]{0,17})$') AS m
    WHERE m IS NOT NULL
)
INSERT INTO applied_id_bits AS b (prefix, chunk, bits, fresh, applied_at)
SELECT prefix, n / 1024,
       bit_or(set_bit(B'0'::bit(1024), (n % 1024)::integer, 1)),
       B'0'::bit(1024),
       max(applied_at)
FROM numbered
GROUP BY prefix, n / 1024
ON CONFLICT (prefix, chunk) DO UPDATE SET
    bits = b.bits | EXCLUDED.bits,
    applied_at = greatest(b.applied_at, EXCLUDED.applied_at);
DELETE FROM applied_ids WHERE id ~ '^(.*):(0|[1-9][0-9]{0,17})$';
ALTER TABLE applied_ids DROP COLUMN successes, DROP COLUMN failures;
"#,
};

/// Each distinct prior stored once, keyed by the SHA-256 of its canonical
/// JSON, and referenced from `models` and `model_configs`: a 100 000-weight
/// grid prior is ~2 MB, and every configuration row copied it, so re-putting
/// one model added ~2 MB of history each time.
///
/// The canonical JSON is Postgres's own text form of the `jsonb` value
/// (keys sorted, spacing and number forms fixed), hashed in SQL by
/// `prior_sha256`, so the key is the same whichever writer stores the prior:
/// the model service through `store_prior`, this migration, or the
/// consumer's batch statement, which still inserts a new model with its
/// default prior as JSON into `models.prior`: a trigger moves that value
/// into `priors` and leaves the column NULL (it stays only for that
/// statement, which this migration does not change).
///
/// Stored priors that the parser now refuses (see `domain::prior`: a step
/// bound other than 0 below 1e-300, a step narrower than 1e-9 of its
/// distance from 0 or 1, a grid weight below 2.2e-308 times the largest)
/// made every read of their model fail; they are first moved to the
/// nearest prior the engine computes: such a bound to 0 (lower) or 1e-300
/// (upper), such a step widened upwards to twice the least width, such a
/// weight to 0. That repair is not undone by `down`.
const PRIORS: Sql = Sql {
    name: "m0009_priors",
    up: r#"
CREATE FUNCTION prior_sha256(prior jsonb) RETURNS char(64)
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT encode(sha256(convert_to(prior::text, 'UTF8')), 'hex') $$;

CREATE TABLE priors (
    sha256      CHAR(64)    PRIMARY KEY CHECK (sha256 = prior_sha256(prior)),
    prior       JSONB       NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Stores a prior unless it is there, and returns its key.
CREATE FUNCTION store_prior(prior jsonb) RETURNS char(64)
LANGUAGE plpgsql STRICT
AS $$
DECLARE
    key char(64) := prior_sha256(prior);
BEGIN
    INSERT INTO priors (sha256, prior) VALUES (key, prior) ON CONFLICT (sha256) DO NOTHING;
    RETURN key;
END
$$;

-- The nearest prior the engine computes, for the stored ones the parser
-- now refuses (the margins keep a bound the parser's doubles would read a
-- hair the other side of its limit on the safe side). Anything else,
-- including what is no prior at all, is left as it is.
CREATE FUNCTION pg_temp.computable_prior(prior jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE
AS $$
DECLARE
    lower numeric;
    upper numeric;
    least_width numeric;
    largest numeric;
BEGIN
    IF prior->>'type' = 'step'
       AND jsonb_typeof(prior->'lower') = 'number'
       AND jsonb_typeof(prior->'upper') = 'number' THEN
        lower := (prior->>'lower')::numeric;
        upper := (prior->>'upper')::numeric;
        IF NOT (0 <= lower AND lower < upper AND upper <= 1) THEN
            RETURN prior;
        END IF;
        IF lower > 0 AND lower < 1e-300 THEN
            lower := 0;
        END IF;
        IF upper < 1e-300 THEN
            upper := 1e-300;
        END IF;
        least_width := 1e-9 * least(upper, 1 - lower);
        IF upper - lower < 1.001 * least_width THEN
            upper := least(lower + 2 * least_width, 1);
        END IF;
        RETURN jsonb_set(jsonb_set(prior, '{lower}', to_jsonb(lower)), '{upper}', to_jsonb(upper));
    END IF;
    IF prior->>'type' = 'grid' AND jsonb_typeof(prior->'weights') = 'array'
       AND NOT EXISTS (
           SELECT 1 FROM jsonb_array_elements(prior->'weights') AS w
           WHERE jsonb_typeof(w) <> 'number') THEN
        SELECT max(w::text::numeric) INTO largest
        FROM jsonb_array_elements(prior->'weights') AS w;
        IF largest IS NULL OR largest <= 0 THEN
            RETURN prior;
        END IF;
        RETURN jsonb_set(prior, '{weights}', (
            SELECT jsonb_agg(
                       CASE WHEN w::text::numeric > 0
                                 AND w::text::numeric / largest < 1.000001 * 2.2250738585072014e-308
                            THEN to_jsonb(0) ELSE w END
                       ORDER BY i)
            FROM jsonb_array_elements(prior->'weights') WITH ORDINALITY AS e(w, i)));
    END IF;
    RETURN prior;
END
$$;

UPDATE models SET prior = pg_temp.computable_prior(prior)
WHERE prior IS DISTINCT FROM pg_temp.computable_prior(prior);
UPDATE model_configs SET prior = pg_temp.computable_prior(prior)
WHERE prior IS DISTINCT FROM pg_temp.computable_prior(prior);
DROP FUNCTION pg_temp.computable_prior(jsonb);

-- The default prior, which the consumer gives every model it creates.
SELECT store_prior('{"type": "uniform"}');

ALTER TABLE models ADD COLUMN prior_sha256 CHAR(64) REFERENCES priors (sha256);
ALTER TABLE models ALTER COLUMN prior DROP NOT NULL;
UPDATE models SET prior_sha256 = store_prior(prior), prior = NULL;
ALTER TABLE models ALTER COLUMN prior_sha256 SET NOT NULL;
ALTER TABLE models ADD CONSTRAINT models_prior_is_in_priors CHECK (prior IS NULL);

-- The history's copies of the priors become keys in one rewrite of the
-- table (a dropped column would keep its data on disk until each row was
-- rewritten: the copies would only be hidden, not gone).
ALTER TABLE model_configs ALTER COLUMN prior TYPE CHAR(64) USING store_prior(prior);
ALTER TABLE model_configs RENAME COLUMN prior TO prior_sha256;
ALTER TABLE model_configs ADD FOREIGN KEY (prior_sha256) REFERENCES priors (sha256);

-- A prior written into `models.prior` (the consumer's batch statement
-- creating a model) goes to `priors`; the row keeps its key only.
CREATE FUNCTION models_store_prior() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    NEW.prior_sha256 := store_prior(NEW.prior);
    NEW.prior := NULL;
    RETURN NEW;
END
$$;
CREATE TRIGGER models_store_prior BEFORE INSERT OR UPDATE OF prior ON models
FOR EACH ROW WHEN (NEW.prior IS NOT NULL) EXECUTE FUNCTION models_store_prior();
"#,
    down: r#"
DROP TRIGGER models_store_prior ON models;
DROP FUNCTION models_store_prior();

ALTER TABLE model_configs ADD COLUMN prior JSONB;
UPDATE model_configs c SET prior = p.prior FROM priors p WHERE p.sha256 = c.prior_sha256;
ALTER TABLE model_configs ALTER COLUMN prior SET NOT NULL;
ALTER TABLE model_configs DROP COLUMN prior_sha256;

ALTER TABLE models DROP CONSTRAINT models_prior_is_in_priors;
UPDATE models m SET prior = p.prior FROM priors p WHERE p.sha256 = m.prior_sha256;
ALTER TABLE models ALTER COLUMN prior SET NOT NULL;
ALTER TABLE models DROP COLUMN prior_sha256;

DROP TABLE priors;
DROP FUNCTION store_prior(jsonb);
DROP FUNCTION prior_sha256(jsonb);
"#,
};

/// The HTTP API keys (`platform::http::auth`), and what the batch statement
/// raises when `models.auto_create` is off and a batch names a model that
/// does not exist.
const API_KEYS: Sql = Sql {
    name: "m0010_api_keys",
    up: r#"
-- A key is shown once, when it is created: only the SHA-256 of the whole
-- token is kept (the token is 256 random bits, so a fast hash is enough; no
-- password hashing is needed). `id` is public: it is part of the token, so
-- a service finds the key's row without a search and compares the hashes
-- in constant time. A revoked key keeps its row (and its name, taken only
-- among the keys that are not revoked) for the record.
CREATE TABLE api_keys (
    id            VARCHAR(16)  PRIMARY KEY,
    name          VARCHAR(64)  NOT NULL,
    -- Space-separated, as OAuth writes scopes.
    scopes        VARCHAR(32)  NOT NULL
                  CHECK (scopes ~ '^(ingest|read|admin)( (ingest|read|admin))*$'),
    token_sha256  CHAR(64)     NOT NULL UNIQUE,
    rate_limit    INTEGER      CHECK (rate_limit >= 1),
    created_at    TIMESTAMPTZ  NOT NULL DEFAULT now(),
    last_used_at  TIMESTAMPTZ,
    revoked_at    TIMESTAMPTZ
);
CREATE UNIQUE INDEX api_keys_name ON api_keys (name) WHERE revoked_at IS NULL;

-- Raised by the batch statement when models.auto_create is off and the batch
-- names models that do not exist, so that nothing of it is written; the
-- constraint name tells the consumer why (it dead-letters their records).
CREATE FUNCTION refuse_unknown_models(unknown bigint) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
    IF unknown > 0 THEN
        RAISE EXCEPTION '% model(s) of the batch do not exist and models.auto_create is off', unknown
            USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'models_unknown';
    END IF;
    RETURN unknown;
END
$$;
"#,
    down: r#"
DROP FUNCTION refuse_unknown_models(bigint);
DROP TABLE api_keys;
"#,
};

/// How many units each arm of an experiment holds, kept by the statement
/// that assigns them (`assign_units`): a model service reloads an
/// experiment's counts by reading its arms' rows, however many units it has.
const ARM_UNITS: Sql = Sql {
    name: "m0011_arm_units",
    up: r#"
CREATE TABLE experiment_arm_units (
    experiment_id  VARCHAR(64)  NOT NULL REFERENCES experiments (id) ON DELETE CASCADE,
    arm            VARCHAR(64)  NOT NULL,
    units          BIGINT       NOT NULL CHECK (units >= 0),
    PRIMARY KEY (experiment_id, arm)
);
INSERT INTO experiment_arm_units (experiment_id, arm, units)
SELECT experiment_id, arm, count(*) FROM experiment_assignments GROUP BY experiment_id, arm;
"#,
    down: "DROP TABLE experiment_arm_units",
};
