-- name: DriverDeliveryBegin :one
-- Returns the delivery of a run's generation, creating it on first use.
-- The no-op update makes the row come back whether or not it existed.
INSERT INTO driver_deliveries (run_id, generation, driver, first_attempt_at, updated_at)
VALUES (@run_id, @generation, @driver, @now, @now)
ON CONFLICT (run_id, generation) DO UPDATE SET run_id = EXCLUDED.run_id
RETURNING *;

-- name: DriverDeliveryNewestGeneration :one
-- The newest generation delivered for a run, 0 when none was.
SELECT coalesce(max(generation), 0)::bigint FROM driver_deliveries WHERE run_id = @run_id;

-- name: DriverDeliveryClaimAttempt :one
-- Claims the next attempt of a delivery that is still sending and due,
-- holding it until hold_until so no other replica sends at the same time.
UPDATE driver_deliveries
SET attempts = attempts + 1, next_attempt_at = @hold_until, updated_at = @now
WHERE run_id = @run_id AND generation = @generation AND status = 'sending'
  AND (next_attempt_at IS NULL OR next_attempt_at <= @now)
RETURNING *;

-- name: DriverDeliveryFinishAttempt :one
-- Records the outcome of an attempt. A completion reported meanwhile wins:
-- only a delivery still sending changes.
UPDATE driver_deliveries
SET status = @status, next_attempt_at = sqlc.narg('next_attempt_at'), last_error = @last_error, updated_at = @now
WHERE run_id = @run_id AND generation = @generation AND status = 'sending'
RETURNING *;

-- name: DriverDeliveryGet :one
SELECT * FROM driver_deliveries WHERE run_id = @run_id AND generation = @generation;

-- name: DriverDeliveryReport :one
-- Records a receiver's report of completion for a delivery that is still
-- open; one already finished stays as it is.
UPDATE driver_deliveries
SET status = @status, message = @message, reported_by = @reported_by, reported_at = @now,
    next_attempt_at = NULL, updated_at = @now
WHERE run_id = @run_id AND generation = @generation AND status IN ('sending', 'accepted')
RETURNING *;

-- name: RunWakeForDriver :exec
-- Makes a run that waits for its driver due now, so the engine of any
-- replica picks up the reported completion at once. The next evaluation is
-- a schedule, not a state, so the version stays.
UPDATE runs
SET next_eval_at = @now
WHERE id = @id AND next_eval_at IS NOT NULL AND next_eval_at > @now;
