-- +goose Up

-- Feature flags of an app. The definition is the flags.Flag JSON; key and
-- type are copied into columns so that they are unique and searchable.
CREATE TABLE flags (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    app_id      bigint NOT NULL REFERENCES apps (id) ON DELETE RESTRICT,
    key         text NOT NULL CHECK (key ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$'),
    type        text NOT NULL CHECK (type IN ('boolean', 'string', 'number', 'object')),
    definition  jsonb NOT NULL
                CHECK (jsonb_typeof(definition) = 'object' AND definition ->> 'key' = key),
    version     bigint NOT NULL DEFAULT 1 CHECK (version > 0),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (app_id, key)
);

-- A flag's configuration in one environment (flags.EnvState JSON): the kill
-- switch, the targeting rules and the default rollout. A flag without a row
-- here is off in that environment.
CREATE TABLE flag_states (
    flag_id        bigint NOT NULL REFERENCES flags (id) ON DELETE RESTRICT,
    environment_id bigint NOT NULL REFERENCES environments (id) ON DELETE RESTRICT,
    state          jsonb NOT NULL CHECK (jsonb_typeof(state) = 'object'),
    version        bigint NOT NULL DEFAULT 1 CHECK (version > 0),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    updated_by     text NOT NULL CHECK (updated_by <> ''),
    PRIMARY KEY (flag_id, environment_id)
);

CREATE INDEX flag_states_environment ON flag_states (environment_id);

-- Groups of users shared by the flags of an app (flags.Segment JSON).
CREATE TABLE segments (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    app_id      bigint NOT NULL REFERENCES apps (id) ON DELETE RESTRICT,
    key         text NOT NULL CHECK (key ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$'),
    definition  jsonb NOT NULL
                CHECK (jsonb_typeof(definition) = 'object' AND definition ->> 'key' = key),
    version     bigint NOT NULL DEFAULT 1 CHECK (version > 0),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (app_id, key)
);

-- The history of every flag and segment change, written in the same
-- transaction as the change. Segment changes have no flag.
CREATE TABLE flag_events (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    app_id         bigint NOT NULL REFERENCES apps (id) ON DELETE RESTRICT,
    flag_id        bigint REFERENCES flags (id) ON DELETE RESTRICT,
    environment_id bigint REFERENCES environments (id) ON DELETE RESTRICT,
    at             timestamptz NOT NULL DEFAULT now(),
    actor          text NOT NULL CHECK (actor <> ''),
    type           text NOT NULL CHECK (type ~ '^[a-z][a-z_.]{0,63}$'),
    payload        jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(payload) = 'object')
);

CREATE INDEX flag_events_flag ON flag_events (flag_id, id);
CREATE INDEX flag_events_app ON flag_events (app_id, id);

-- +goose StatementBegin
CREATE FUNCTION flag_events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'flag_events is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$;
-- +goose StatementEnd

CREATE TRIGGER flag_events_append_only
    BEFORE UPDATE OR DELETE ON flag_events
    FOR EACH ROW EXECUTE FUNCTION flag_events_append_only();

-- +goose Down
DROP TABLE flag_events;
DROP FUNCTION flag_events_append_only;
DROP TABLE segments;
DROP TABLE flag_states;
DROP TABLE flags;
