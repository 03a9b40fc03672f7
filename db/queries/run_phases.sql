-- name: RunPhasesInsert :copyfrom
INSERT INTO run_phases (run_id, phase_index, name, kind, status, desired, bake_seconds)
VALUES (@run_id, @phase_index, @name, @kind, @status, @desired, @bake_seconds);

-- name: RunPhaseSetStatus :exec
UPDATE run_phases
SET status = @status,
    started_at = COALESCE(started_at, sqlc.narg('started_at')),
    finished_at = sqlc.narg('finished_at')
WHERE run_id = @run_id AND phase_index = @phase_index;

-- name: RunPhasesSetStatusFrom :exec
-- Marks every phase from an index on, e.g. skipped by a promotion or left
-- pending by a rollback.
UPDATE run_phases
SET status = @status, finished_at = sqlc.narg('finished_at')
WHERE run_id = @run_id AND phase_index >= @from_index AND status IN ('pending', 'applying', 'baking', 'awaiting_approval');

-- name: RunPhaseList :many
SELECT * FROM run_phases WHERE run_id = @run_id ORDER BY phase_index;
