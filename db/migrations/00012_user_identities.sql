-- +goose Up

-- A user identity ties a person's account at a single sign-on provider
-- (the issuer and the subject of its ID tokens, which never change for
-- that person) to a Flightdeck user. Users are found by identity, never by
-- name, so that a local account is not taken over by a provider account
-- that happens to carry the same name.
CREATE TABLE user_identities (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id       bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    issuer        text NOT NULL CHECK (issuer <> ''),
    subject       text NOT NULL CHECK (subject <> '' AND length(subject) <= 255),
    created_at    timestamptz NOT NULL,
    last_login_at timestamptz,
    UNIQUE (issuer, subject)
);

CREATE INDEX user_identities_user ON user_identities (user_id);

-- A user who signs in through single sign-on never has a password: the
-- provider decides who they are, and a password would be a second way in
-- that the provider cannot revoke.
-- +goose StatementBegin
CREATE FUNCTION users_sso_without_password() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.password_hash IS NOT NULL AND EXISTS (SELECT 1 FROM user_identities WHERE user_id = NEW.id) THEN
        RAISE EXCEPTION 'user % signs in through single sign-on and cannot have a password', NEW.username
            USING ERRCODE = 'check_violation', CONSTRAINT = 'users_sso_without_password';
    END IF;
    RETURN NEW;
END;
$$;
-- +goose StatementEnd

CREATE TRIGGER users_sso_without_password
    BEFORE UPDATE OF password_hash ON users
    FOR EACH ROW EXECUTE FUNCTION users_sso_without_password();

-- +goose Down
DROP TRIGGER users_sso_without_password ON users;
DROP FUNCTION users_sso_without_password;
DROP TABLE user_identities;
