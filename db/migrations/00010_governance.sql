-- +goose Up

-- Deploy windows of an environment and what happens to a run asked to start
-- outside them (or during a freeze): it waits, or it is refused. An
-- environment without a row, or with no windows, may deploy at any time.
CREATE TABLE deploy_windows (
    environment_id  bigint PRIMARY KEY REFERENCES environments (id) ON DELETE CASCADE,
    -- [{"days": ["mon", ...], "start": "09:00", "end": "16:00", "time_zone": "Europe/Berlin"}]
    windows         jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(windows) = 'array'),
    outside         text NOT NULL DEFAULT 'wait' CHECK (outside IN ('wait', 'refuse')),
    updated_by      text NOT NULL,
    updated_at      timestamptz NOT NULL
);

-- A freeze stops runs from starting in an environment from starts_at until
-- ends_at, or until it is ended early (ended_at).
CREATE TABLE freezes (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    environment_id  bigint NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    reason          text NOT NULL CHECK (reason <> ''),
    starts_at       timestamptz NOT NULL,
    ends_at         timestamptz NOT NULL CHECK (ends_at > starts_at),
    created_by      text NOT NULL,
    created_at      timestamptz NOT NULL,
    ended_at        timestamptz,
    ended_by        text
);
CREATE INDEX freezes_environment_idx ON freezes (environment_id, ends_at);

-- The installation-wide halt ("stop the line"): one row, active or not.
CREATE TABLE halt (
    id          boolean PRIMARY KEY DEFAULT true CHECK (id),
    active      boolean NOT NULL DEFAULT false,
    reason      text NOT NULL DEFAULT '',
    halted_by   text NOT NULL DEFAULT '',
    halted_at   timestamptz,
    lifted_by   text NOT NULL DEFAULT '',
    lifted_at   timestamptz
);
INSERT INTO halt (id) VALUES (true);

-- Runs paused by a closed window, a freeze or the halt rather than by a
-- person. A hold counts only while the run is still paused at paused_at: a
-- run resumed (or paused again) by a person is no longer the gate's.
CREATE TABLE governance_holds (
    run_id      bigint PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
    cause       text NOT NULL CHECK (cause IN ('window', 'freeze', 'halt')),
    paused_at   timestamptz NOT NULL
);

-- An admin's override lets one run start and move on despite closed windows
-- and freezes (never despite a halt).
CREATE TABLE governance_overrides (
    run_id      bigint PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
    reason      text NOT NULL CHECK (reason <> ''),
    actor       text NOT NULL,
    created_at  timestamptz NOT NULL
);

-- +goose Down
DROP TABLE governance_overrides;
DROP TABLE governance_holds;
DROP TABLE halt;
DROP TABLE freezes;
DROP TABLE deploy_windows;
