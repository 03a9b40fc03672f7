-- name: DeployWindowsGet :one
SELECT * FROM deploy_windows WHERE environment_id = @environment_id;

-- name: DeployWindowsPut :one
INSERT INTO deploy_windows (environment_id, windows, outside, updated_by, updated_at)
VALUES (@environment_id, @windows, @outside, @updated_by, @now)
ON CONFLICT (environment_id) DO UPDATE
SET windows = EXCLUDED.windows, outside = EXCLUDED.outside,
    updated_by = EXCLUDED.updated_by, updated_at = EXCLUDED.updated_at
RETURNING *;

-- name: FreezeInsert :one
INSERT INTO freezes (environment_id, reason, starts_at, ends_at, created_by, created_at)
VALUES (@environment_id, @reason, @starts_at, @ends_at, @created_by, @now)
RETURNING *;

-- name: FreezeGet :one
SELECT * FROM freezes WHERE id = @id;

-- name: FreezeListCurrent :many
-- Freezes not over at @now: active ones and those still to come.
SELECT * FROM freezes
WHERE environment_id = @environment_id AND ended_at IS NULL AND ends_at > @now
ORDER BY starts_at, id;

-- name: FreezeListRecent :many
SELECT * FROM freezes
WHERE environment_id = @environment_id
ORDER BY starts_at DESC, id DESC
LIMIT @max;

-- name: FreezeEnd :one
UPDATE freezes SET ended_at = @now, ended_by = @ended_by
WHERE id = @id AND ended_at IS NULL AND ends_at > @now
RETURNING *;

-- name: HaltGet :one
SELECT * FROM halt WHERE id;

-- name: HaltSet :one
UPDATE halt SET active = true, reason = @reason, halted_by = @halted_by, halted_at = @now,
    lifted_by = '', lifted_at = NULL
WHERE id AND NOT active
RETURNING *;

-- name: HaltLift :one
UPDATE halt SET active = false, lifted_by = @lifted_by, lifted_at = @now
WHERE id AND active
RETURNING *;

-- name: GovernanceHoldPut :exec
INSERT INTO governance_holds (run_id, cause, paused_at) VALUES (@run_id, @cause, @paused_at)
ON CONFLICT (run_id) DO UPDATE SET cause = EXCLUDED.cause, paused_at = EXCLUDED.paused_at;

-- name: GovernanceHoldGet :one
SELECT h.* FROM governance_holds h JOIN runs r ON r.id = h.run_id
WHERE h.run_id = @run_id AND r.state = 'paused' AND r.paused_at = h.paused_at;

-- name: GovernanceHoldListByCause :many
-- Runs still paused by the cause (a person has not resumed them since).
SELECT h.run_id FROM governance_holds h JOIN runs r ON r.id = h.run_id
WHERE h.cause = @cause AND r.state = 'paused' AND r.paused_at = h.paused_at
ORDER BY h.run_id;

-- name: GovernanceHoldDelete :exec
DELETE FROM governance_holds WHERE run_id = @run_id;

-- name: GovernanceOverrideInsert :one
INSERT INTO governance_overrides (run_id, reason, actor, created_at)
VALUES (@run_id, @reason, @actor, @now)
ON CONFLICT (run_id) DO UPDATE SET reason = EXCLUDED.reason, actor = EXCLUDED.actor, created_at = EXCLUDED.created_at
RETURNING *;

-- name: GovernanceOverrideGet :one
SELECT * FROM governance_overrides WHERE run_id = @run_id;

-- name: RunIDsByStates :many
SELECT id FROM runs WHERE state = ANY(@states::text[]) ORDER BY id;
