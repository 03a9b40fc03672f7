-- name: ApprovalInsert :one
INSERT INTO approvals (run_id, phase_index, outcome, actor, comment, at)
VALUES (@run_id, @phase_index, @outcome, @actor, @comment, @at)
RETURNING *;

-- name: ApprovalListByRun :many
SELECT * FROM approvals WHERE run_id = @run_id ORDER BY id;
