-- name: FlagInsert :one
INSERT INTO flags (app_id, key, type, definition, created_at, updated_at)
VALUES (@app_id, @key, @type, @definition, @now, @now)
RETURNING *;

-- name: FlagGet :one
SELECT * FROM flags WHERE app_id = @app_id AND key = @key;

-- name: FlagGetByID :one
SELECT * FROM flags WHERE id = @id;

-- name: FlagListByApp :many
SELECT * FROM flags WHERE app_id = @app_id ORDER BY key;

-- name: FlagUpdate :one
UPDATE flags
SET type = @type,
    definition = @definition,
    version = version + 1,
    updated_at = @now
WHERE id = @id AND version = @expected_version
RETURNING *;

-- name: FlagVersion :one
SELECT version FROM flags WHERE id = @id;

-- name: FlagStateGet :one
SELECT * FROM flag_states WHERE flag_id = @flag_id AND environment_id = @environment_id;

-- name: FlagStateGetForUpdate :one
SELECT * FROM flag_states WHERE flag_id = @flag_id AND environment_id = @environment_id
FOR UPDATE;

-- name: FlagStateListByFlag :many
SELECT * FROM flag_states WHERE flag_id = @flag_id ORDER BY environment_id;

-- name: FlagStateInsert :one
-- Creates the state of a flag in an environment; returns no row when one
-- exists already, which the caller reports as a lost compare-and-swap.
INSERT INTO flag_states (flag_id, environment_id, state, updated_at, updated_by)
VALUES (@flag_id, @environment_id, @state, @now, @updated_by)
ON CONFLICT (flag_id, environment_id) DO NOTHING
RETURNING *;

-- name: FlagStateUpdate :one
UPDATE flag_states
SET state = @state,
    version = version + 1,
    updated_at = @now,
    updated_by = @updated_by
WHERE flag_id = @flag_id AND environment_id = @environment_id AND version = @expected_version
RETURNING *;

-- name: FlagStateListByEnvironment :many
-- Every flag of the app with its state in the environment, if it has one.
SELECT sqlc.embed(f),
       fs.state AS state,
       fs.version AS state_version,
       fs.updated_at AS state_updated_at,
       fs.updated_by AS state_updated_by
FROM flags f
LEFT JOIN flag_states fs ON fs.flag_id = f.id AND fs.environment_id = @environment_id
WHERE f.app_id = @app_id
ORDER BY f.key;

-- name: FlagScopeList :many
-- The environments whose flags a cache keeps, all of them when app_id and
-- environment_id are 0.
SELECT a.id AS app_id, a.slug AS app_slug, e.id AS environment_id, e.name AS environment_name
FROM environments e
JOIN apps a ON a.id = e.app_id
WHERE (@app_id::bigint = 0 OR e.app_id = @app_id::bigint)
  AND (@environment_id::bigint = 0 OR e.id = @environment_id::bigint)
ORDER BY e.id;

-- name: FlagScopeEntries :many
-- Every flag of the selected environments with its state there, if any.
SELECT e.id AS environment_id, f.definition, fs.state AS state, fs.version AS state_version
FROM environments e
JOIN flags f ON f.app_id = e.app_id
LEFT JOIN flag_states fs ON fs.flag_id = f.id AND fs.environment_id = e.id
WHERE (@app_id::bigint = 0 OR e.app_id = @app_id::bigint)
  AND (@environment_id::bigint = 0 OR e.id = @environment_id::bigint)
ORDER BY e.id, f.key;

-- name: SegmentScopeList :many
SELECT app_id, definition FROM segments
WHERE (@app_id::bigint = 0 OR app_id = @app_id::bigint)
ORDER BY app_id, key;

-- name: SegmentInsert :one
INSERT INTO segments (app_id, key, definition, created_at, updated_at)
VALUES (@app_id, @key, @definition, @now, @now)
ON CONFLICT (app_id, key) DO NOTHING
RETURNING *;

-- name: SegmentUpdate :one
UPDATE segments
SET definition = @definition,
    version = version + 1,
    updated_at = @now
WHERE app_id = @app_id AND key = @key AND version = @expected_version
RETURNING *;

-- name: SegmentVersion :one
SELECT version FROM segments WHERE app_id = @app_id AND key = @key;

-- name: SegmentListByApp :many
SELECT * FROM segments WHERE app_id = @app_id ORDER BY key;

-- name: FlagEventInsert :one
INSERT INTO flag_events (app_id, flag_id, environment_id, at, actor, type, payload, remote_addr, user_agent)
VALUES (@app_id, sqlc.narg('flag_id'), sqlc.narg('environment_id'), @at, @actor, @type, @payload,
        sqlc.narg('remote_addr'), sqlc.narg('user_agent'))
RETURNING *;

-- name: FlagEventList :many
SELECT * FROM flag_events
WHERE flag_id = @flag_id AND id > @after_id
ORDER BY id
LIMIT @max;

-- name: FlagNotify :exec
-- Postgres delivers the notification when the transaction commits, and
-- never when it rolls back.
SELECT pg_notify(@channel::text, @payload::text);

-- name: FlagEventListBefore :many
-- One flag's events newest first, with ids below before_id, for paging
-- back through its history.
SELECT * FROM flag_events
WHERE flag_id = @flag_id AND id < @before_id
ORDER BY id DESC
LIMIT @max;

-- name: FlagEventListByEnvironment :many
-- One environment's flag events newest first, with ids below before_id,
-- with the key and default variant of the flag each is about. The app's
-- index finds them: flag_events are read per app, newest first, and the
-- environment filters.
SELECT sqlc.embed(fe), f.key AS flag_key,
       coalesce(f.definition ->> 'default_variant', '')::text AS flag_default_variant
FROM flag_events fe
JOIN flags f ON f.id = fe.flag_id
WHERE fe.app_id = (SELECT en.app_id FROM environments en WHERE en.id = @environment_id)
  AND fe.environment_id = @environment_id
  AND fe.id < @before_id
ORDER BY fe.id DESC
LIMIT @max;
