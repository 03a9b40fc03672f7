-- name: ApprovalPolicyGet :one
SELECT * FROM approval_policies WHERE environment_id = @environment_id;

-- name: ApprovalPolicyUpsert :one
INSERT INTO approval_policies (environment_id, min_approvers, timeout_ms, on_timeout, in_window_only, updated_at, updated_by)
VALUES (@environment_id, @min_approvers, @timeout_ms, @on_timeout, @in_window_only, @now, @updated_by)
ON CONFLICT (environment_id) DO UPDATE
SET min_approvers = EXCLUDED.min_approvers,
    in_window_only = EXCLUDED.in_window_only,
    timeout_ms = EXCLUDED.timeout_ms,
    on_timeout = EXCLUDED.on_timeout,
    updated_at = EXCLUDED.updated_at,
    updated_by = EXCLUDED.updated_by
RETURNING *;

-- name: RunLockForEscalation :one
SELECT id FROM runs WHERE id = @id FOR UPDATE;

-- name: RunEventExistsForPhase :one
-- Whether the run has an event of the type about the phase.
SELECT EXISTS (
    SELECT 1 FROM run_events
    WHERE run_id = @run_id AND type = @type AND (payload ->> 'phase')::int = @phase::int
) AS found;
