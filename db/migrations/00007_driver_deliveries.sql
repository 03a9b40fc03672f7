-- +goose Up

-- Deliveries of a run's desired states to drivers that confirm them later,
-- such as a deploy system behind a webhook. One row per run and generation,
-- kept in the database so that a completion reported to any replica is seen
-- by the replica whose engine steps the run, and so that a delivery's
-- attempts and deadline survive a restart.
--   sending:   being delivered, or to be delivered again at next_attempt_at;
--   accepted:  the receiver took it and will report completion;
--   succeeded: the desired state is in place;
--   failed:    the receiver reported that it could not apply it.
CREATE TABLE driver_deliveries (
    run_id           bigint NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    generation       bigint NOT NULL CHECK (generation > 0),
    driver           text NOT NULL CHECK (driver <> ''),
    status           text NOT NULL DEFAULT 'sending'
                     CHECK (status IN ('sending', 'accepted', 'succeeded', 'failed')),
    attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    first_attempt_at timestamptz NOT NULL,
    -- While sending: when the next attempt may start. An attempt in flight
    -- holds it at the end of its timeout, so two replicas never send at once.
    next_attempt_at  timestamptz,
    last_error       text NOT NULL DEFAULT '',
    -- What the receiver reported with its completion.
    message          text NOT NULL DEFAULT '',
    reported_by      text NOT NULL DEFAULT '',
    reported_at      timestamptz,
    updated_at       timestamptz NOT NULL,
    PRIMARY KEY (run_id, generation)
);

-- +goose Down
DROP TABLE driver_deliveries;
