-- +goose Up

-- A schema change of an app made safely in three deployments: expand (add
-- the new), migrate (write both, backfill, read the new), contract (drop
-- the old). Each environment reaches the phases in order.
CREATE TABLE schema_changes (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    app_id      bigint NOT NULL REFERENCES apps (id) ON DELETE RESTRICT,
    key         text NOT NULL CHECK (key ~ '^[a-z0-9][a-z0-9_.-]{0,127}$'),
    description text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    created_by  text NOT NULL CHECK (created_by <> ''),
    UNIQUE (app_id, key)
);

-- The phases each environment has reached, with who and which run did it.
CREATE TABLE schema_change_phases (
    change_id      bigint NOT NULL REFERENCES schema_changes (id) ON DELETE RESTRICT,
    environment_id bigint NOT NULL REFERENCES environments (id) ON DELETE RESTRICT,
    phase          text NOT NULL CHECK (phase IN ('expand', 'migrate', 'contract')),
    reached_at     timestamptz NOT NULL DEFAULT now(),
    reached_by     text NOT NULL CHECK (reached_by <> ''),
    run_id         bigint REFERENCES runs (id) ON DELETE RESTRICT,
    PRIMARY KEY (change_id, environment_id, phase)
);

-- The phase of a schema change a version of the app needs before it may
-- be deployed: a version that reads the new column needs "migrate".
CREATE TABLE version_schema_needs (
    app_id    bigint NOT NULL REFERENCES apps (id) ON DELETE RESTRICT,
    version   text NOT NULL CHECK (length(version) BETWEEN 1 AND 128),
    change_id bigint NOT NULL REFERENCES schema_changes (id) ON DELETE RESTRICT,
    phase     text NOT NULL CHECK (phase IN ('expand', 'migrate', 'contract')),
    set_at    timestamptz NOT NULL DEFAULT now(),
    set_by    text NOT NULL CHECK (set_by <> ''),
    PRIMARY KEY (app_id, version, change_id)
);

-- +goose Down
DROP TABLE version_schema_needs;
DROP TABLE schema_change_phases;
DROP TABLE schema_changes;
