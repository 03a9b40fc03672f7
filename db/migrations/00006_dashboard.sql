-- +goose Up

-- Sessions of people signed in to the dashboard, kept in the database so
-- that every replica knows every session.
CREATE TABLE sessions (
    token  text PRIMARY KEY,
    data   bytea NOT NULL,
    expiry timestamptz NOT NULL
);

CREATE INDEX sessions_expiry ON sessions (expiry);

-- What a person may do, per app and environment. "*" stands for every app
-- or every environment name. Roles include the ones below them: viewer <
-- deployer < approver < admin.
CREATE TABLE role_bindings (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id     bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    app         text NOT NULL DEFAULT '*'
                CHECK (app = '*' OR app ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
    environment text NOT NULL DEFAULT '*'
                CHECK (environment = '*' OR environment ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
    role        text NOT NULL CHECK (role IN ('viewer', 'deployer', 'approver', 'admin')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, app, environment)
);

-- Changes that are not steps of a run: sign-ins, settings, users and
-- roles. Run changes are in run_events; the audit log shows both.
CREATE TABLE audit_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text NOT NULL CHECK (actor <> ''),
    action      text NOT NULL CHECK (action ~ '^[a-z][a-z_.]{0,63}$'),
    app         text NOT NULL DEFAULT '',
    environment text NOT NULL DEFAULT '',
    -- The run the change was about, if any (an approval, say).
    run_id      bigint REFERENCES runs (id) ON DELETE RESTRICT,
    detail      text NOT NULL DEFAULT '',
    remote_addr text NOT NULL DEFAULT '',
    user_agent  text NOT NULL DEFAULT ''
);

CREATE INDEX audit_events_at ON audit_events (at DESC, id DESC);

-- +goose StatementBegin
CREATE FUNCTION audit_events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$;
-- +goose StatementEnd

CREATE TRIGGER audit_events_append_only
    BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();

-- The audit log filters run events by person.
CREATE INDEX run_events_actor ON run_events (actor, id DESC);

-- +goose Down
DROP INDEX run_events_actor;
DROP TABLE audit_events;
DROP FUNCTION audit_events_append_only;
DROP TABLE role_bindings;
DROP TABLE sessions;
