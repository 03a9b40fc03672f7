-- +goose Up

-- A list of app slugs or environment names; both follow the same rule.
-- +goose StatementBegin
CREATE FUNCTION is_slug_list(names text[]) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT coalesce(bool_and(n IS NOT NULL AND n ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'), true)
    FROM unnest(names) AS n
$$;
-- +goose StatementEnd

-- A token can be limited to some apps and some environments; empty means
-- no limit. Environments are names, such as "staging", and apply in every
-- app the token may reach, so "only staging" is one entry however many
-- apps there are.
ALTER TABLE api_tokens
    ADD COLUMN apps         text[] NOT NULL DEFAULT '{}',
    ADD COLUMN environments text[] NOT NULL DEFAULT '{}',
    ADD CONSTRAINT api_tokens_apps_are_slugs CHECK (is_slug_list(apps)),
    ADD CONSTRAINT api_tokens_environments_are_names CHECK (is_slug_list(environments)),
    -- A token without scopes could do nothing; refusing it catches a
    -- caller that forgot them.
    ADD CONSTRAINT api_tokens_has_scopes CHECK (cardinality(scopes) > 0),
    ADD CONSTRAINT api_tokens_expires_after_creation CHECK (expires_at IS NULL OR expires_at > created_at);

-- Names identify tokens in lists and audit records ("token:ci"), so two
-- live tokens never share one. A revoked token gives its name up, which
-- lets a leaked token be replaced under the same name.
CREATE UNIQUE INDEX api_tokens_active_name ON api_tokens (name) WHERE revoked_at IS NULL;

-- +goose Down
DROP INDEX api_tokens_active_name;
ALTER TABLE api_tokens
    DROP CONSTRAINT api_tokens_expires_after_creation,
    DROP CONSTRAINT api_tokens_has_scopes,
    DROP CONSTRAINT api_tokens_environments_are_names,
    DROP CONSTRAINT api_tokens_apps_are_slugs,
    DROP COLUMN environments,
    DROP COLUMN apps;
DROP FUNCTION is_slug_list;
