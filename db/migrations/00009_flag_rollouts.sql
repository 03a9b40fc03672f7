-- +goose Up

-- A guarded rollout releases one variant of a flag in one environment step
-- by step (5%, 25%, 50%, 100% of users by default), judging every step with
-- the same decision as a canary: the users served the variant are the
-- candidate, the others the baseline. A rollback turns the flag off.
CREATE TABLE flag_rollouts (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    flag_id          bigint NOT NULL REFERENCES flags (id) ON DELETE RESTRICT,
    environment_id   bigint NOT NULL REFERENCES environments (id) ON DELETE RESTRICT,
    variant          text NOT NULL CHECK (variant <> ''),
    control_variant  text NOT NULL CHECK (control_variant <> '' AND control_variant <> variant),
    -- Percentages of users served the variant, strictly increasing, the
    -- last one 100.
    steps            double precision[] NOT NULL
                     CHECK (cardinality(steps) BETWEEN 1 AND 20 AND steps[cardinality(steps)] = 100),
    -- How long each step is watched before the next one.
    step_bake_ms     bigint NOT NULL CHECK (step_bake_ms > 0),
    state            text NOT NULL DEFAULT 'running'
                     CHECK (state IN ('running', 'completed', 'rolled_back', 'cancelled')),
    step_index       integer NOT NULL DEFAULT 0 CHECK (step_index >= 0),
    step_started_at  timestamptz NOT NULL,
    next_check_at    timestamptz NOT NULL,
    -- A replica judging the rollout holds it until lease_until; leases are
    -- not changes.
    lease_until      timestamptz,
    started_by       text NOT NULL CHECK (started_by <> ''),
    created_at       timestamptz NOT NULL,
    finished_at      timestamptz,
    -- The sentence that ended the rollout, and the latest decision record
    -- (analysis.Decision JSON).
    outcome          text NOT NULL DEFAULT '',
    last_decision    jsonb,
    CHECK ((state = 'running') = (finished_at IS NULL))
);

-- One rollout at a time per flag and environment.
CREATE UNIQUE INDEX flag_rollouts_one_running ON flag_rollouts (flag_id, environment_id) WHERE state = 'running';
CREATE INDEX flag_rollouts_due ON flag_rollouts (next_check_at) WHERE state = 'running';
CREATE INDEX flag_rollouts_flag ON flag_rollouts (flag_id, environment_id, id DESC);

-- Metrics pushed for a rollout, split by variant: the same 10-second
-- windows as a run's metric_windows.
CREATE TABLE flag_rollout_windows (
    rollout_id   bigint NOT NULL REFERENCES flag_rollouts (id) ON DELETE RESTRICT,
    cohort       text NOT NULL CHECK (cohort IN ('candidate', 'baseline')),
    metric       text NOT NULL CHECK (metric ~ '^[a-z][a-z0-9_]{0,63}$'),
    window_start timestamptz NOT NULL,
    window_end   timestamptz NOT NULL,
    count        bigint NOT NULL CHECK (count >= 0),
    sum          double precision NOT NULL DEFAULT 0,
    p50          double precision,
    p95          double precision,
    p99          double precision,
    CHECK (window_end > window_start)
);

CREATE INDEX flag_rollout_windows_lookup ON flag_rollout_windows (rollout_id, cohort, metric, window_start);

-- +goose Down
DROP TABLE flag_rollout_windows;
DROP TABLE flag_rollouts;
