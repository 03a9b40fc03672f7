-- name: RunEventInsert :one
INSERT INTO run_events (run_id, at, type, actor, payload, remote_addr, user_agent)
VALUES (@run_id, @at, @type, @actor, @payload, sqlc.narg(remote_addr), sqlc.narg(user_agent))
RETURNING *;

-- name: RunEventList :many
SELECT * FROM run_events
WHERE run_id = @run_id AND id > @after_id
ORDER BY id
LIMIT @max;
