-- name: SessionsDeleteExpired :execrows
-- Sessions are read only while unexpired; retention removes the rest.
DELETE FROM sessions WHERE expiry < @now;
