-- name: UserEnsureAdmin :one
-- Creates the user as an administrator, or makes the existing user one.
-- Whether the user is disabled is left alone: that is a person's decision.
INSERT INTO users (username, is_admin, created_at)
VALUES (@username, true, @now)
ON CONFLICT (username) DO UPDATE SET is_admin = true
RETURNING *;

-- name: UserGetByID :one
SELECT * FROM users WHERE id = @id;

-- name: UserGetByUsername :one
SELECT * FROM users WHERE username = @username;

-- name: UserCreate :one
INSERT INTO users (username, display_name, password_hash, is_admin, created_at)
VALUES (@username, @display_name, @password_hash, @is_admin, @now)
RETURNING *;

-- name: UserSetPassword :exec
UPDATE users SET password_hash = @password_hash WHERE id = @id;

-- name: UserPasswordHash :one
SELECT password_hash FROM users WHERE id = @id;

-- name: UserList :many
SELECT * FROM users ORDER BY username;

-- name: RoleBindingUpsert :one
INSERT INTO role_bindings (user_id, app, environment, role, created_at)
VALUES (@user_id, @app, @environment, @role, @now)
ON CONFLICT (user_id, app, environment) DO UPDATE SET role = EXCLUDED.role
RETURNING *;

-- name: RoleBindingDelete :execrows
DELETE FROM role_bindings WHERE id = @id;

-- name: RoleBindingListByUser :many
SELECT * FROM role_bindings WHERE user_id = @user_id ORDER BY app, environment;

-- name: RoleBindingListAll :many
SELECT * FROM role_bindings ORDER BY user_id, app, environment;

-- name: UserSetDisabled :one
UPDATE users
SET disabled_at = CASE WHEN @disabled::boolean THEN coalesce(disabled_at, @now::timestamptz) ELSE NULL END
WHERE id = @id
RETURNING *;
