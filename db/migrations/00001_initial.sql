-- +goose Up

-- Users log in to the dashboard; API tokens belong to them.
CREATE TABLE users (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username      text NOT NULL UNIQUE
                  CHECK (username ~ '^[a-z0-9][a-z0-9._@-]{0,63}$'),
    display_name  text NOT NULL DEFAULT '',
    password_hash text,
    is_admin      boolean NOT NULL DEFAULT false,
    disabled_at   timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE apps (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slug        text NOT NULL UNIQUE
                CHECK (slug ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE environments (
    id                      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    app_id                  bigint NOT NULL REFERENCES apps (id) ON DELETE RESTRICT,
    name                    text NOT NULL
                            CHECK (name ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
    tier                    text NOT NULL DEFAULT 'development'
                            CHECK (tier IN ('development', 'staging', 'production')),
    driver                  jsonb NOT NULL DEFAULT '{"type": "simulator"}'
                            CHECK (jsonb_typeof(driver) = 'object'
                                   AND driver ->> 'type' IN ('simulator', 'webhook', 'nginx', 'kubernetes')),
    metrics                 jsonb NOT NULL DEFAULT '{"type": "simulator"}'
                            CHECK (jsonb_typeof(metrics) = 'object'
                                   AND metrics ->> 'type' IN ('simulator', 'push', 'prometheus')),
    default_strategy        text NOT NULL DEFAULT 'canary'
                            CHECK (default_strategy IN ('recreate', 'rolling', 'blue_green', 'canary', 'shadow', 'ab_test', 'ring')),
    strategy_defaults       jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(strategy_defaults) = 'object'),
    thresholds              jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(thresholds) = 'object'),
    stable_version          text CHECK (stable_version <> ''),
    previous_stable_version text CHECK (previous_stable_version <> ''),
    -- Policy fields.
    require_approval        boolean NOT NULL DEFAULT false,
    approver_not_starter    boolean NOT NULL DEFAULT false,
    failure_policy          text NOT NULL DEFAULT 'rollback'
                            CHECK (failure_policy IN ('rollback', 'pause')),
    version                 bigint NOT NULL DEFAULT 1,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    UNIQUE (app_id, name),
    -- Lets runs reference (environment, app) together, so a run can never
    -- belong to one app while pointing at another app's environment.
    UNIQUE (id, app_id)
);

CREATE TABLE runs (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    app_id          bigint NOT NULL,
    environment_id  bigint NOT NULL,
    from_version    text CHECK (from_version <> ''),
    to_version      text NOT NULL CHECK (length(to_version) BETWEEN 1 AND 128),
    strategy        text NOT NULL
                    CHECK (strategy IN ('recreate', 'rolling', 'blue_green', 'canary', 'shadow', 'ab_test', 'ring')),
    params          jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(params) = 'object'),
    plan            jsonb,
    state           text NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'running', 'awaiting_approval', 'paused', 'rolling_back',
                                     'succeeded', 'rolled_back', 'aborted', 'failed')),
    phase_index     integer NOT NULL DEFAULT 0 CHECK (phase_index >= 0),
    generation      bigint NOT NULL DEFAULT 0 CHECK (generation >= 0),
    next_eval_at    timestamptz,
    lease_owner     text,
    lease_expires_at timestamptz,
    version         bigint NOT NULL DEFAULT 1 CHECK (version >= 1),
    created_by      text NOT NULL CHECK (created_by <> ''),
    idempotency_key text CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    reason          text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    finished_at     timestamptz,
    FOREIGN KEY (environment_id, app_id) REFERENCES environments (id, app_id) ON DELETE RESTRICT,
    CHECK (to_version IS DISTINCT FROM from_version),
    -- A run is finished exactly when it is in a terminal state.
    CHECK ((finished_at IS NOT NULL) = (state IN ('succeeded', 'rolled_back', 'aborted', 'failed'))),
    -- Terminal runs are never evaluated again.
    CHECK (next_eval_at IS NULL OR state NOT IN ('succeeded', 'rolled_back', 'aborted', 'failed'))
);

-- At most one active run per app and environment. Pending runs wait in line
-- and are not active yet.
CREATE UNIQUE INDEX runs_one_active_per_environment
    ON runs (app_id, environment_id)
    WHERE state IN ('running', 'awaiting_approval', 'paused', 'rolling_back');

CREATE UNIQUE INDEX runs_idempotency_key
    ON runs (environment_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

CREATE INDEX runs_due ON runs (next_eval_at) WHERE next_eval_at IS NOT NULL;
CREATE INDEX runs_environment_created ON runs (environment_id, id DESC);
CREATE INDEX runs_state ON runs (state, id DESC);

CREATE TABLE run_phases (
    run_id      bigint NOT NULL REFERENCES runs (id) ON DELETE RESTRICT,
    phase_index integer NOT NULL CHECK (phase_index >= 0),
    name        text NOT NULL,
    kind        text NOT NULL,
    status      text NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'applying', 'baking', 'awaiting_approval',
                                  'succeeded', 'failed', 'skipped', 'rolled_back')),
    desired     jsonb NOT NULL DEFAULT '{}',
    bake_seconds bigint NOT NULL DEFAULT 0 CHECK (bake_seconds >= 0),
    started_at  timestamptz,
    finished_at timestamptz,
    PRIMARY KEY (run_id, phase_index)
);

-- Every change to a run is one row here, written in the same transaction as
-- the change. The timeline, the live pages and the audit log read from it.
CREATE TABLE run_events (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id  bigint NOT NULL REFERENCES runs (id) ON DELETE RESTRICT,
    at      timestamptz NOT NULL DEFAULT now(),
    type    text NOT NULL CHECK (type ~ '^[a-z][a-z_.]{0,63}$'),
    actor   text NOT NULL CHECK (actor <> ''),
    payload jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(payload) = 'object')
);

CREATE INDEX run_events_run ON run_events (run_id, id);

-- +goose StatementBegin
CREATE FUNCTION run_events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'run_events is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$;
-- +goose StatementEnd

CREATE TRIGGER run_events_append_only
    BEFORE UPDATE OR DELETE ON run_events
    FOR EACH ROW EXECUTE FUNCTION run_events_append_only();

-- One row per analysis verdict, with the full explanation kept for audit.
CREATE TABLE decisions (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id      bigint NOT NULL REFERENCES runs (id) ON DELETE RESTRICT,
    phase_index integer NOT NULL CHECK (phase_index >= 0),
    at          timestamptz NOT NULL DEFAULT now(),
    verdict     text NOT NULL
                CHECK (verdict IN ('warming_up', 'continue', 'monitor_longer', 'rollback', 'inconclusive')),
    explanation text NOT NULL,
    record      jsonb NOT NULL CHECK (jsonb_typeof(record) = 'object')
);

CREATE INDEX decisions_run ON decisions (run_id, id);

-- Aggregated metric samples per window; the table that grows fastest, so it
-- stays narrow and has no per-request rows.
CREATE TABLE metric_windows (
    run_id       bigint NOT NULL REFERENCES runs (id) ON DELETE RESTRICT,
    cohort       text NOT NULL CHECK (length(cohort) BETWEEN 1 AND 64),
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

CREATE INDEX metric_windows_lookup ON metric_windows (run_id, cohort, metric, window_start);
-- Time-based retention deletes in batches by window_start; BRIN keeps that cheap.
CREATE INDEX metric_windows_retention ON metric_windows USING brin (window_start);

CREATE TABLE approvals (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id      bigint NOT NULL REFERENCES runs (id) ON DELETE RESTRICT,
    phase_index integer NOT NULL CHECK (phase_index >= 0),
    outcome     text NOT NULL CHECK (outcome IN ('approved', 'rejected')),
    actor       text NOT NULL CHECK (actor <> ''),
    user_id     bigint REFERENCES users (id) ON DELETE SET NULL,
    comment     text NOT NULL DEFAULT '',
    at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (run_id, phase_index)
);

CREATE TABLE api_tokens (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    token_hash   bytea NOT NULL UNIQUE,
    prefix       text NOT NULL,
    scopes       text[] NOT NULL DEFAULT '{}'
                 CHECK (scopes <@ ARRAY['read', 'deploy', 'approve', 'metrics', 'admin', 'flags']::text[]),
    user_id      bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    last_used_at timestamptz,
    revoked_at   timestamptz
);

-- +goose Down
DROP TABLE api_tokens;
DROP TABLE approvals;
DROP TABLE metric_windows;
DROP TABLE decisions;
DROP TABLE run_events;
DROP FUNCTION run_events_append_only;
DROP TABLE run_phases;
DROP TABLE runs;
DROP TABLE environments;
DROP TABLE apps;
DROP TABLE users;
