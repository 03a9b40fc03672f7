-- name: RunInsert :one
INSERT INTO runs (
    app_id, environment_id, from_version, to_version, strategy, params,
    created_by, idempotency_key, reason, created_at, updated_at
) VALUES (
    @app_id, @environment_id, sqlc.narg('from_version'), @to_version, @strategy, @params,
    @created_by, sqlc.narg('idempotency_key'), @reason, @now, @now
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
    phase_index = @phase_index,
    generation = @generation,
    plan = @plan,
    next_eval_at = sqlc.narg('next_eval_at'),
    lease_owner = sqlc.narg('lease_owner'),
    lease_expires_at = sqlc.narg('lease_expires_at'),
    reason = @reason,
    started_at = sqlc.narg('started_at'),
    finished_at = sqlc.narg('finished_at'),
    version = version + 1,
    updated_at = @now
WHERE id = @id AND version = @expected_version
RETURNING *;

-- name: RunVersion :one
SELECT version FROM runs WHERE id = @id;
