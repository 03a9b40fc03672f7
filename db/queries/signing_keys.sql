-- name: SigningKeyInsert :exec
INSERT INTO signing_keys (name, key) VALUES (@name, @key) ON CONFLICT (name) DO NOTHING;

-- name: SigningKeyGet :one
SELECT key FROM signing_keys WHERE name = @name;
