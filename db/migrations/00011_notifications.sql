-- +goose Up

-- Outgoing notifications: webhooks that tell chat rooms and other systems
-- about run and flag events. A subscription names which events it wants
-- (app, environment, event types with wildcards) and where to send them,
-- signed with its secret. The secret is kept in clear because every
-- delivery is signed with it; it is shown once, when the subscription is
-- created, and never returned again.
CREATE TABLE notification_subscriptions (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 100),
    -- An app slug or '*' for every app.
    app          text NOT NULL CHECK (app = '*' OR app ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
    -- An environment name or '*' for every environment.
    environment  text NOT NULL CHECK (environment = '*' OR environment ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
    -- Event types or patterns such as 'run.*'.
    event_types  text[] NOT NULL CHECK (cardinality(event_types) BETWEEN 1 AND 50),
    url          text NOT NULL CHECK (url ~ '^https?://' AND length(url) <= 2048),
    secret       text NOT NULL CHECK (length(secret) >= 16),
    format       text NOT NULL CHECK (format IN ('json', 'slack', 'teams')),
    enabled      boolean NOT NULL DEFAULT true,
    created_by   text NOT NULL CHECK (created_by <> ''),
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL
);

-- Where the dispatcher stopped reading each append-only event table. The
-- dispatcher of one replica at a time holds the row's lock while it turns
-- the events after last_id into deliveries and moves last_id on, so every
-- event is enqueued once however many replicas run.
CREATE TABLE notification_cursors (
    source   text PRIMARY KEY CHECK (source IN ('run_events', 'flag_events')),
    last_id  bigint NOT NULL CHECK (last_id >= 0),
    updated_at timestamptz NOT NULL
);

-- One event to send to one subscription, with the body rendered in the
-- subscription's format when the event was enqueued.
--   pending:   to be sent at next_attempt_at (an attempt in flight holds it
--              until its timeout has passed, so two replicas never send it
--              at once);
--   delivered: the receiver answered 2xx;
--   failed:    the receiver refused it, or every attempt failed.
CREATE TABLE notification_deliveries (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_key     text NOT NULL UNIQUE DEFAULT gen_random_uuid()::text,
    subscription_id  bigint NOT NULL REFERENCES notification_subscriptions (id) ON DELETE CASCADE,
    -- 'run_events' or 'flag_events' with the event's id, or 'test' for a
    -- test sent by an admin (event_id 0).
    event_source     text NOT NULL CHECK (event_source IN ('run_events', 'flag_events', 'test')),
    event_id         bigint NOT NULL CHECK (event_id >= 0),
    event_type       text NOT NULL CHECK (event_type <> ''),
    summary          text NOT NULL DEFAULT '',
    body             text NOT NULL,
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at  timestamptz,
    last_status_code integer,
    last_error       text NOT NULL DEFAULT '',
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    CHECK ((status = 'pending') = (next_attempt_at IS NOT NULL))
);

-- An event reaches a subscription once.
CREATE UNIQUE INDEX notification_deliveries_event
    ON notification_deliveries (subscription_id, event_source, event_id) WHERE event_source <> 'test';
CREATE INDEX notification_deliveries_due ON notification_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX notification_deliveries_subscription ON notification_deliveries (subscription_id, id);

-- Every attempt to send a delivery, for the delivery log.
CREATE TABLE notification_attempts (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id  bigint NOT NULL REFERENCES notification_deliveries (id) ON DELETE CASCADE,
    attempt      integer NOT NULL CHECK (attempt > 0),
    at           timestamptz NOT NULL,
    -- The HTTP status the receiver answered; NULL when no answer came.
    status_code  integer,
    -- The first 300 bytes of the answer.
    response     text NOT NULL DEFAULT '',
    error        text NOT NULL DEFAULT '',
    duration_ms  integer NOT NULL CHECK (duration_ms >= 0),
    UNIQUE (delivery_id, attempt)
);

-- +goose Down
DROP TABLE notification_attempts;
DROP TABLE notification_deliveries;
DROP TABLE notification_cursors;
DROP TABLE notification_subscriptions;
