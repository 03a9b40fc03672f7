-- +goose Up

-- Keys the server signs links with (approval links for chat messages),
-- shared by every replica. A key is made once, by whichever replica needs
-- it first, and never leaves the database.
CREATE TABLE signing_keys (
    name       text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9-]{0,63}$'),
    key        bytea NOT NULL CHECK (length(key) >= 32),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE signing_keys;
