-- name: TokenInsert :one
INSERT INTO api_tokens (name, token_hash, prefix, scopes, user_id, apps, environments, created_at, expires_at)
VALUES (@name, @token_hash, @prefix, @scopes, @user_id, @apps, @environments, @now, sqlc.narg('expires_at'))
RETURNING *;

-- name: TokenGetUsable :one
-- A token authenticates only while it is neither revoked nor expired and
-- its user is not disabled.
SELECT * FROM api_tokens t
WHERE t.token_hash = @token_hash
  AND t.revoked_at IS NULL
  AND (t.expires_at IS NULL OR t.expires_at > @now::timestamptz)
  AND EXISTS (SELECT 1 FROM users u WHERE u.id = t.user_id AND u.disabled_at IS NULL);

-- name: TokenGetActiveByName :one
SELECT * FROM api_tokens WHERE name = @name AND revoked_at IS NULL;

-- name: TokenListActive :many
SELECT * FROM api_tokens WHERE revoked_at IS NULL ORDER BY name;

-- name: TokenRevoke :execrows
UPDATE api_tokens SET revoked_at = @now::timestamptz WHERE id = @id AND revoked_at IS NULL;

-- name: TokenTouch :exec
-- Writes at most once a minute per token, so busy pipelines do not turn
-- every request into a row update.
UPDATE api_tokens SET last_used_at = @now::timestamptz
WHERE id = @id AND (last_used_at IS NULL OR last_used_at + interval '1 minute' < @now::timestamptz);
