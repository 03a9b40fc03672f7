-- +goose Up

-- How an environment's approval gates are decided: how many different
-- people must approve, and what happens when nobody does in time. An
-- environment without a row needs one approver and waits forever.
CREATE TABLE approval_policies (
    environment_id bigint PRIMARY KEY REFERENCES environments (id) ON DELETE RESTRICT,
    min_approvers  integer NOT NULL DEFAULT 1 CHECK (min_approvers BETWEEN 1 AND 10),
    timeout_ms     bigint CHECK (timeout_ms > 0),
    on_timeout     text NOT NULL DEFAULT 'reject' CHECK (on_timeout IN ('reject', 'escalate')),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    updated_by     text NOT NULL CHECK (updated_by <> '')
);

-- A gate may now need several people: each answers a phase once, and the
-- run's version keeps two answers from moving it on twice.
ALTER TABLE approvals DROP CONSTRAINT approvals_run_id_phase_index_key;
ALTER TABLE approvals ADD CONSTRAINT approvals_one_answer_per_person UNIQUE (run_id, phase_index, actor);

-- +goose Down
ALTER TABLE approvals DROP CONSTRAINT approvals_one_answer_per_person;
ALTER TABLE approvals ADD CONSTRAINT approvals_run_id_phase_index_key UNIQUE (run_id, phase_index);
DROP TABLE approval_policies;
