-- +goose Up

-- The records of who did what (run_events, audit_events, flag_events,
-- approvals and decisions) are written once and never changed. Two locks
-- hold them:
--
-- 1. Triggers refuse UPDATE, DELETE and TRUNCATE on each of them for every
--    role, the owner included, with an error that names the table. Only an
--    owner who first disables the triggers can get past them, and doing so
--    is itself a schema change an operator would see.
-- 2. Privileges. Run the server as a role that does not own the tables and
--    holds only INSERT and SELECT on them; then UPDATE, DELETE and TRUNCATE
--    fail by privilege even with the triggers disabled. The server itself
--    only ever inserts into and reads these tables. An operator sets it up
--    once, migrating as the owner and serving as the application role:
--
--        CREATE ROLE flightdeck_app LOGIN PASSWORD '...';
--        GRANT USAGE ON SCHEMA public TO flightdeck_app;
--        GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO flightdeck_app;
--        GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO flightdeck_app;
--        REVOKE UPDATE, DELETE, TRUNCATE
--            ON run_events, audit_events, flag_events, approvals, decisions
--            FROM flightdeck_app;
--
--    and runs the same statements again, the REVOKE last, after migrations
--    that add tables (the GRANT on all tables would otherwise give the
--    audit tables back their UPDATE and DELETE). The server then needs
--    DATABASE_URL for the application role and migrations run as the
--    owner. The retention job removes old metric windows, idempotency keys
--    and sessions only, never these tables. Users are disabled rather than
--    deleted: deleting a user who approved a phase would have to change an
--    approvals row, and is refused.
--
-- Here PUBLIC loses any UPDATE, DELETE or TRUNCATE a database default may
-- have given it on these tables.
REVOKE UPDATE, DELETE, TRUNCATE ON run_events, audit_events, flag_events, approvals, decisions FROM PUBLIC;

-- +goose StatementBegin
CREATE FUNCTION audit_record_immutable() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is an audit record and append-only: % is not allowed', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'restrict_violation',
              HINT = 'Records of who did what are never changed or removed.';
END;
$$;
-- +goose StatementEnd

CREATE TRIGGER approvals_append_only
    BEFORE UPDATE OR DELETE ON approvals
    FOR EACH ROW EXECUTE FUNCTION audit_record_immutable();
CREATE TRIGGER decisions_append_only
    BEFORE UPDATE OR DELETE ON decisions
    FOR EACH ROW EXECUTE FUNCTION audit_record_immutable();

CREATE TRIGGER run_events_no_truncate
    BEFORE TRUNCATE ON run_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_record_immutable();
CREATE TRIGGER audit_events_no_truncate
    BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_record_immutable();
CREATE TRIGGER flag_events_no_truncate
    BEFORE TRUNCATE ON flag_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_record_immutable();
CREATE TRIGGER approvals_no_truncate
    BEFORE TRUNCATE ON approvals
    FOR EACH STATEMENT EXECUTE FUNCTION audit_record_immutable();
CREATE TRIGGER decisions_no_truncate
    BEFORE TRUNCATE ON decisions
    FOR EACH STATEMENT EXECUTE FUNCTION audit_record_immutable();

-- Where a run or flag event came from: the address and user agent of the
-- request that caused it, for people in the browser and for API tokens.
-- The engine's own steps have neither.
ALTER TABLE run_events
    ADD COLUMN remote_addr text CHECK (length(remote_addr) BETWEEN 1 AND 100),
    ADD COLUMN user_agent  text CHECK (length(user_agent) BETWEEN 1 AND 300);
ALTER TABLE flag_events
    ADD COLUMN remote_addr text CHECK (length(remote_addr) BETWEEN 1 AND 100),
    ADD COLUMN user_agent  text CHECK (length(user_agent) BETWEEN 1 AND 300);

-- The audit log's time range reads newest first within each table.
CREATE INDEX run_events_at ON run_events (at DESC, id DESC);
CREATE INDEX flag_events_at ON flag_events (at DESC, id DESC);

-- +goose Down
DROP INDEX flag_events_at;
DROP INDEX run_events_at;
ALTER TABLE flag_events DROP COLUMN user_agent, DROP COLUMN remote_addr;
ALTER TABLE run_events DROP COLUMN user_agent, DROP COLUMN remote_addr;
DROP TRIGGER decisions_no_truncate ON decisions;
DROP TRIGGER approvals_no_truncate ON approvals;
DROP TRIGGER flag_events_no_truncate ON flag_events;
DROP TRIGGER audit_events_no_truncate ON audit_events;
DROP TRIGGER run_events_no_truncate ON run_events;
DROP TRIGGER decisions_append_only ON decisions;
DROP TRIGGER approvals_append_only ON approvals;
DROP FUNCTION audit_record_immutable;
