-- name: UserIdentityGet :one
SELECT * FROM user_identities WHERE issuer = @issuer AND subject = @subject;

-- name: UserIdentityCreate :one
INSERT INTO user_identities (user_id, issuer, subject, created_at)
VALUES (@user_id, @issuer, @subject, @now)
RETURNING *;

-- name: UserIdentityTouch :exec
UPDATE user_identities SET last_login_at = @now::timestamptz WHERE id = @id;

-- name: UserIdentityListByUser :many
SELECT * FROM user_identities WHERE user_id = @user_id ORDER BY issuer, subject;

-- name: UserGetForUpdate :one
SELECT * FROM users WHERE id = @id FOR UPDATE;

-- name: UserSetProfileFromProvider :one
UPDATE users SET display_name = @display_name, is_admin = @is_admin
WHERE id = @id
RETURNING *;

-- name: UserClearPassword :exec
UPDATE users SET password_hash = NULL WHERE id = @id;

-- name: RoleBindingDeleteByUser :exec
DELETE FROM role_bindings WHERE user_id = @user_id;
