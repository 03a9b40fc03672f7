-- +goose Up

-- What the engine needs to step a run safely: the desired state of the
-- current generation (re-sent unchanged after a crash), how far the driver
-- confirmed it, when the bake started, and where a pause or rollback returns.
ALTER TABLE runs
    ADD COLUMN desired                jsonb,
    ADD COLUMN applied_generation     bigint NOT NULL DEFAULT 0,
    ADD COLUMN phase_started_at       timestamptz,
    ADD COLUMN bake_extension_seconds bigint NOT NULL DEFAULT 0 CHECK (bake_extension_seconds >= 0),
    ADD COLUMN extensions             integer NOT NULL DEFAULT 0 CHECK (extensions >= 0),
    ADD COLUMN paused_at              timestamptz,
    ADD COLUMN resume_state           text CHECK (resume_state IN ('running', 'awaiting_approval')),
    ADD COLUMN final_state            text CHECK (final_state IN ('rolled_back', 'aborted', 'failed')),
    ADD COLUMN rollback_step          integer NOT NULL DEFAULT 0 CHECK (rollback_step >= 0),
    ADD COLUMN consecutive_errors     integer NOT NULL DEFAULT 0 CHECK (consecutive_errors >= 0),
    ADD CONSTRAINT runs_applied_not_ahead CHECK (applied_generation <= generation),
    ADD CONSTRAINT runs_paused_has_resume CHECK ((state = 'paused') = (paused_at IS NOT NULL AND resume_state IS NOT NULL)),
    ADD CONSTRAINT runs_rolling_back_has_outcome CHECK (state <> 'rolling_back' OR final_state IS NOT NULL),
    -- Active runs always have a plan.
    ADD CONSTRAINT runs_active_has_plan CHECK (state IN ('pending', 'aborted', 'failed') OR plan IS NOT NULL);

-- +goose Down
ALTER TABLE runs
    DROP CONSTRAINT runs_active_has_plan,
    DROP CONSTRAINT runs_rolling_back_has_outcome,
    DROP CONSTRAINT runs_paused_has_resume,
    DROP CONSTRAINT runs_applied_not_ahead,
    DROP COLUMN consecutive_errors,
    DROP COLUMN rollback_step,
    DROP COLUMN final_state,
    DROP COLUMN resume_state,
    DROP COLUMN paused_at,
    DROP COLUMN extensions,
    DROP COLUMN bake_extension_seconds,
    DROP COLUMN phase_started_at,
    DROP COLUMN applied_generation,
    DROP COLUMN desired;
