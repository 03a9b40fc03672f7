-- name: IdempotencyClaim :one
-- Claims a key for a request about to be handled. A key older than
-- @expired_before is claimed anew as if it had never been used; any other
-- existing key is left alone and nothing is returned.
INSERT INTO idempotency_keys (token_id, method, path, key, request_hash, created_at)
VALUES (@token_id, @method, @path, @key, @request_hash, @now)
ON CONFLICT (token_id, method, path, key) DO UPDATE
SET request_hash = EXCLUDED.request_hash, created_at = EXCLUDED.created_at,
    status = NULL, location = '', response_body = NULL, completed_at = NULL
WHERE idempotency_keys.created_at < @expired_before
RETURNING *;

-- name: IdempotencyGet :one
SELECT * FROM idempotency_keys
WHERE token_id = @token_id AND method = @method AND path = @path AND key = @key;

-- name: IdempotencyComplete :execrows
UPDATE idempotency_keys
SET status = @status, location = @location, response_body = @response_body, completed_at = @now
WHERE token_id = @token_id AND method = @method AND path = @path AND key = @key AND completed_at IS NULL;

-- name: IdempotencyRelease :exec
-- Gives up the claim of a request that failed on the server's side, so a
-- retry with the same key is handled afresh.
DELETE FROM idempotency_keys
WHERE token_id = @token_id AND method = @method AND path = @path AND key = @key AND completed_at IS NULL;

-- name: IdempotencyDeleteExpired :execrows
DELETE FROM idempotency_keys WHERE created_at < @expired_before;
