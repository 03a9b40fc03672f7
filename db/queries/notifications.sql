-- name: NotificationSubscriptionInsert :one
INSERT INTO notification_subscriptions (name, app, environment, event_types, url, secret, format, enabled, created_by, created_at, updated_at)
VALUES (@name, @app, @environment, @event_types, @url, @secret, @format, @enabled, @created_by, @now, @now)
RETURNING *;

-- name: NotificationSubscriptionGet :one
SELECT * FROM notification_subscriptions WHERE id = @id;

-- name: NotificationSubscriptionList :many
SELECT * FROM notification_subscriptions ORDER BY name;

-- name: NotificationSubscriptionListEnabled :many
SELECT * FROM notification_subscriptions WHERE enabled ORDER BY id;

-- name: NotificationSubscriptionUpdate :one
UPDATE notification_subscriptions
SET name = @name, app = @app, environment = @environment, event_types = @event_types, url = @url,
    format = @format, enabled = @enabled, updated_at = @now
WHERE id = @id
RETURNING *;

-- name: NotificationSubscriptionDelete :execrows
DELETE FROM notification_subscriptions WHERE id = @id;

-- name: NotificationCursorInit :exec
-- Starts a cursor at the newest event of its table, so a first start does
-- not replay the history. An existing cursor stays where it is.
INSERT INTO notification_cursors (source, last_id, updated_at)
VALUES (@source, @last_id, @now)
ON CONFLICT (source) DO NOTHING;

-- name: NotificationCursorLock :one
-- Locks the cursor for the transaction that moves it; another replica
-- doing the same skips it rather than wait.
SELECT last_id FROM notification_cursors WHERE source = @source FOR UPDATE SKIP LOCKED;

-- name: NotificationCursorAdvance :exec
UPDATE notification_cursors SET last_id = @last_id, updated_at = @now WHERE source = @source;

-- name: NotificationNewestRunEvent :one
SELECT coalesce(max(id), 0)::bigint FROM run_events;

-- name: NotificationNewestFlagEvent :one
SELECT coalesce(max(id), 0)::bigint FROM flag_events;

-- name: NotificationRunEventsAfter :many
-- Run events after a cursor with the app, environment and version of the
-- run each is about.
SELECT e.id, e.run_id, e.at, e.type, e.actor, e.payload,
       a.slug AS app, en.name AS environment, r.to_version AS version
FROM run_events e
JOIN runs r ON r.id = e.run_id
JOIN apps a ON a.id = r.app_id
JOIN environments en ON en.id = r.environment_id
WHERE e.id > @after_id
ORDER BY e.id
LIMIT @max;

-- name: NotificationFlagEventsAfter :many
-- Flag events after a cursor with the app, environment (empty for every
-- environment) and flag key (empty for segments) each is about.
SELECT fe.id, fe.at, fe.type, fe.actor, fe.payload, a.slug AS app,
       coalesce(en.name, '')::text AS environment, coalesce(f.key, '')::text AS flag_key
FROM flag_events fe
JOIN apps a ON a.id = fe.app_id
LEFT JOIN environments en ON en.id = fe.environment_id
LEFT JOIN flags f ON f.id = fe.flag_id
WHERE fe.id > @after_id
ORDER BY fe.id
LIMIT @max;

-- name: NotificationDeliveryInsert :one
-- Enqueues an event for a subscription; an event enqueued already for the
-- subscription is left as it is and nothing comes back.
INSERT INTO notification_deliveries (subscription_id, event_source, event_id, event_type, summary, body,
                                     next_attempt_at, created_at, updated_at)
VALUES (@subscription_id, @event_source, @event_id, @event_type, @summary, @body, @now, @now, @now)
ON CONFLICT (subscription_id, event_source, event_id) WHERE event_source <> 'test' DO NOTHING
RETURNING *;

-- name: NotificationDeliveryClaim :many
-- Claims due deliveries of enabled subscriptions, counts an attempt for
-- each and holds them until hold_until, so no other replica sends them
-- meanwhile.
WITH due AS (
    SELECT d.id
    FROM notification_deliveries d
    JOIN notification_subscriptions s ON s.id = d.subscription_id
    WHERE d.status = 'pending' AND d.next_attempt_at <= @now AND s.enabled
    ORDER BY d.next_attempt_at, d.id
    LIMIT @max
    FOR UPDATE OF d SKIP LOCKED
)
UPDATE notification_deliveries d
SET attempts = d.attempts + 1, next_attempt_at = @hold_until, updated_at = @now
FROM due, notification_subscriptions s
WHERE d.id = due.id AND s.id = d.subscription_id
RETURNING d.id, d.delivery_key, d.subscription_id, d.event_type, d.body, d.attempts, s.url, s.secret;

-- name: NotificationDeliveryFinish :one
-- Records the outcome of a claimed attempt; a delivery claimed again since
-- (its hold ran out) keeps the newer attempt's state.
UPDATE notification_deliveries
SET status = @status, next_attempt_at = sqlc.narg('next_attempt_at'), last_status_code = sqlc.narg('last_status_code'),
    last_error = @last_error, updated_at = @now
WHERE id = @id AND attempts = @attempt AND status = 'pending'
RETURNING *;

-- name: NotificationAttemptInsert :exec
INSERT INTO notification_attempts (delivery_id, attempt, at, status_code, response, error, duration_ms)
VALUES (@delivery_id, @attempt, @at, sqlc.narg('status_code'), @response, @error, @duration_ms)
ON CONFLICT (delivery_id, attempt) DO NOTHING;

-- name: NotificationDeliveryGet :one
SELECT * FROM notification_deliveries WHERE id = @id;

-- name: NotificationDeliveryList :many
-- A subscription's deliveries newest first, with ids below before_id.
SELECT * FROM notification_deliveries
WHERE subscription_id = @subscription_id AND id < @before_id
ORDER BY id DESC
LIMIT @max;

-- name: NotificationAttemptList :many
SELECT * FROM notification_attempts WHERE delivery_id = ANY(@delivery_ids::bigint[]) ORDER BY delivery_id, attempt;
