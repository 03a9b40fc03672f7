-- name: UserEnsureAdmin :one
-- Creates the user as an administrator, or makes the existing user one.
-- Whether the user is disabled is left alone: that is a person's decision.
INSERT INTO users (username, is_admin, created_at)
VALUES (@username, true, @now)
ON CONFLICT (username) DO UPDATE SET is_admin = true
RETURNING *;

-- name: UserGetByID :one
SELECT * FROM users WHERE id = @id;
