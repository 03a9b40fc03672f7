-- +goose Up

-- The answers to POST requests sent with an Idempotency-Key header, so a
-- client retrying after a lost response gets the first answer again
-- instead of starting a second run or acting twice. A key belongs to one
-- token and one method and path, so two CI systems choosing the same key
-- never see each other's answers. The row is written before the request
-- is handled (completed_at NULL), which makes a concurrent duplicate see
-- the request in flight rather than doing it again.
CREATE TABLE idempotency_keys (
    token_id      bigint NOT NULL,
    method        text NOT NULL CHECK (method <> ''),
    path          text NOT NULL CHECK (path <> ''),
    key           text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    request_hash  bytea NOT NULL,
    status        integer CHECK (status BETWEEN 100 AND 599),
    location      text NOT NULL DEFAULT '',
    response_body bytea,
    created_at    timestamptz NOT NULL,
    completed_at  timestamptz,
    PRIMARY KEY (token_id, method, path, key),
    -- A finished request has its answer; one in flight has none yet.
    CHECK ((completed_at IS NULL) = (status IS NULL)),
    CHECK ((completed_at IS NULL) = (response_body IS NULL))
);

-- Expired keys are removed by age.
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

-- +goose Down
DROP TABLE idempotency_keys;
