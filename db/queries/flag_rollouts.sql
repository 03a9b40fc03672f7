-- name: FlagRolloutInsert :one
INSERT INTO flag_rollouts (flag_id, environment_id, variant, control_variant, steps, step_bake_ms,
                           step_started_at, next_check_at, started_by, created_at)
VALUES (@flag_id, @environment_id, @variant, @control_variant, @steps::float8[], @step_bake_ms,
        @now, @next_check_at, @started_by, @now)
RETURNING *;

-- name: FlagRolloutGet :one
SELECT * FROM flag_rollouts WHERE id = @id;

-- name: FlagRolloutGetForUpdate :one
SELECT * FROM flag_rollouts WHERE id = @id FOR UPDATE;

-- name: FlagRolloutRunningForUpdate :one
SELECT * FROM flag_rollouts
WHERE flag_id = @flag_id AND environment_id = @environment_id AND state = 'running'
FOR UPDATE;

-- name: FlagRolloutLatest :one
-- The running rollout of a flag in an environment, or else the latest one.
SELECT * FROM flag_rollouts
WHERE flag_id = @flag_id AND environment_id = @environment_id
ORDER BY (state = 'running') DESC, id DESC
LIMIT 1;

-- name: FlagRolloutListByFlag :many
SELECT * FROM flag_rollouts WHERE flag_id = @flag_id ORDER BY id DESC LIMIT @max_rows;

-- name: FlagRolloutClaimDue :many
-- Leases the running rollouts that are due, skipping those another replica
-- holds.
UPDATE flag_rollouts
SET lease_until = @lease_until
WHERE id IN (
    SELECT r.id FROM flag_rollouts r
    WHERE r.state = 'running' AND r.next_check_at <= @now
      AND (r.lease_until IS NULL OR r.lease_until < @now)
    ORDER BY r.next_check_at
    LIMIT @max_rows
    FOR UPDATE SKIP LOCKED
)
RETURNING *;

-- name: FlagRolloutNextDue :one
SELECT next_check_at FROM flag_rollouts WHERE state = 'running' ORDER BY next_check_at LIMIT 1;

-- name: FlagRolloutUpdate :one
UPDATE flag_rollouts
SET state = @state,
    step_index = @step_index,
    step_started_at = @step_started_at,
    next_check_at = @next_check_at,
    lease_until = NULL,
    finished_at = @finished_at,
    outcome = @outcome,
    last_decision = @last_decision
WHERE id = @id
RETURNING *;

-- name: FlagRolloutWindowsInsert :copyfrom
INSERT INTO flag_rollout_windows (rollout_id, cohort, metric, window_start, window_end, count, sum, p50, p95, p99)
VALUES (@rollout_id, @cohort, @metric, @window_start, @window_end, @count, @sum, @p50, @p95, @p99);

-- name: FlagRolloutWindowsList :many
SELECT window_start, window_end, count, sum, p50, p95, p99
FROM flag_rollout_windows
WHERE rollout_id = @rollout_id AND cohort = @cohort AND metric = @metric
  AND window_start >= @from_start AND window_start < @to_start
ORDER BY window_start;
