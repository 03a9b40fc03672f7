-- name: SchemaChangeInsert :one
INSERT INTO schema_changes (app_id, key, description, created_at, created_by)
VALUES (@app_id, @key, @description, @now, @created_by)
RETURNING *;

-- name: SchemaChangeGet :one
SELECT * FROM schema_changes WHERE app_id = @app_id AND key = @key;

-- name: SchemaChangeList :many
SELECT * FROM schema_changes WHERE app_id = @app_id ORDER BY key;

-- name: SchemaPhaseList :many
-- Every phase reached by the app's schema changes, in every environment.
SELECT p.* FROM schema_change_phases p
JOIN schema_changes c ON c.id = p.change_id
WHERE c.app_id = @app_id
ORDER BY p.change_id, p.environment_id, p.reached_at;

-- name: SchemaPhaseInsert :one
INSERT INTO schema_change_phases (change_id, environment_id, phase, reached_at, reached_by, run_id)
VALUES (@change_id, @environment_id, @phase, @now, @reached_by, @run_id)
ON CONFLICT (change_id, environment_id, phase) DO NOTHING
RETURNING *;

-- name: SchemaChangeLock :one
SELECT id FROM schema_changes WHERE id = @id FOR UPDATE;

-- name: VersionNeedsDelete :exec
DELETE FROM version_schema_needs WHERE app_id = @app_id AND version = @version;

-- name: VersionNeedInsert :exec
INSERT INTO version_schema_needs (app_id, version, change_id, phase, set_at, set_by)
VALUES (@app_id, @version, @change_id, @phase, @now, @set_by);

-- name: VersionNeedsList :many
SELECT n.*, c.key AS change_key FROM version_schema_needs n
JOIN schema_changes c ON c.id = n.change_id
WHERE n.app_id = @app_id AND n.version = @version
ORDER BY c.key;

-- name: VersionDeployedBefore :one
-- Whether the version served users in the environment before the moment:
-- a run put it in place, or a run started from it.
SELECT count(*) > 0 AS deployed FROM runs r
WHERE r.environment_id = @environment_id AND r.created_at < @before
  AND ((r.to_version = @version AND r.state = 'succeeded') OR r.from_version = @version);
