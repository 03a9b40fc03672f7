-- name: RunInsert :one
INSERT INTO runs (
    app_id, environment_id, from_version, to_version, strategy, params,
    created_by, idempotency_key, reason, next_eval_at, created_at, updated_at
) VALUES (
    @app_id, @environment_id, sqlc.narg('from_version'), @to_version, @strategy, @params,
    @created_by, sqlc.narg('idempotency_key'), @reason, sqlc.narg('next_eval_at'), @now, @now
)
RETURNING *;

-- name: RunGet :one
SELECT * FROM runs WHERE id = @id;

-- name: RunGetByIdempotencyKey :one
SELECT * FROM runs
WHERE environment_id = @environment_id AND idempotency_key = @idempotency_key;

-- name: RunList :many
SELECT * FROM runs
WHERE (sqlc.narg('app_id')::bigint IS NULL OR app_id = sqlc.narg('app_id'))
  AND (sqlc.narg('environment_id')::bigint IS NULL OR environment_id = sqlc.narg('environment_id'))
  AND (sqlc.narg('states')::text[] IS NULL OR state = ANY (sqlc.narg('states')::text[]))
  AND (sqlc.narg('before_id')::bigint IS NULL OR id < sqlc.narg('before_id'))
ORDER BY id DESC
LIMIT @max;

-- name: RunUpdate :one
-- Compare-and-swap: the update only happens when the caller saw the newest
-- version, so a stale writer can never overwrite a newer state.
UPDATE runs
SET state = @state,
    from_version = sqlc.narg('from_version'),
    phase_index = @phase_index,
    generation = @generation,
    plan = @plan,
    next_eval_at = sqlc.narg('next_eval_at'),
    lease_owner = sqlc.narg('lease_owner'),
    lease_expires_at = sqlc.narg('lease_expires_at'),
    reason = @reason,
    desired = @desired,
    applied_generation = @applied_generation,
    phase_started_at = sqlc.narg('phase_started_at'),
    bake_extension_seconds = @bake_extension_seconds,
    extensions = @extensions,
    paused_at = sqlc.narg('paused_at'),
    resume_state = sqlc.narg('resume_state'),
    final_state = sqlc.narg('final_state'),
    rollback_step = @rollback_step,
    consecutive_errors = @consecutive_errors,
    started_at = sqlc.narg('started_at'),
    finished_at = sqlc.narg('finished_at'),
    version = version + 1,
    updated_at = @now
WHERE id = @id AND version = @expected_version
RETURNING *;

-- name: RunVersion :one
SELECT version FROM runs WHERE id = @id;

-- name: RunClaimDue :many
-- Claims due runs whose lease is free; SKIP LOCKED lets several engines
-- claim side by side without waiting on each other. The lease is not a
-- state change, so it does not bump the version.
WITH due AS (
    SELECT r.id FROM runs r
    WHERE r.next_eval_at <= @now
      AND (r.lease_expires_at IS NULL OR r.lease_expires_at < @now)
    ORDER BY r.next_eval_at
    LIMIT @max
    FOR UPDATE SKIP LOCKED
)
UPDATE runs
SET lease_owner = @owner, lease_expires_at = @lease_until
FROM due
WHERE runs.id = due.id
RETURNING runs.*;

-- name: RunReleaseLease :exec
UPDATE runs
SET lease_owner = NULL, lease_expires_at = NULL
WHERE id = @id AND lease_owner = @owner;

-- name: RunWakeNextPending :execrows
-- Wakes the oldest pending run of an environment once it is free.
UPDATE runs
SET next_eval_at = @now
WHERE id = (
    SELECT p.id FROM runs p
    WHERE p.environment_id = @environment_id AND p.state = 'pending'
    ORDER BY p.id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
);


-- name: RunReschedule :execrows
-- Moves the next evaluation without changing the run's state, and gives up
-- the lease: used when a step found nothing to change, such as a run still
-- queued behind another.
UPDATE runs
SET next_eval_at = sqlc.narg('next_eval_at'), lease_owner = NULL, lease_expires_at = NULL
WHERE id = @id AND lease_owner = @owner AND version = @expected_version;

-- name: RunNextDue :one
-- When the earliest scheduled evaluation is, so a caller can sleep (or a
-- test can move its clock) exactly until then.
SELECT next_eval_at FROM runs WHERE next_eval_at IS NOT NULL ORDER BY next_eval_at LIMIT 1;

-- name: RunHasOlderPending :one
-- Runs of an environment start in the order they were created.
SELECT EXISTS (
    SELECT 1 FROM runs
    WHERE environment_id = @environment_id AND state = 'pending' AND id < @id
);

-- name: RunNextClaimable :one
-- When the next run becomes claimable: due and not leased by a live engine.
SELECT next_eval_at FROM runs
WHERE next_eval_at IS NOT NULL
  AND (lease_expires_at IS NULL OR lease_expires_at < @now)
ORDER BY next_eval_at
LIMIT 1;
