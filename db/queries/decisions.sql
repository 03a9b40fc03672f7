-- name: DecisionInsert :one
INSERT INTO decisions (run_id, phase_index, at, verdict, explanation, record)
VALUES (@run_id, @phase_index, @at, @verdict, @explanation, @record)
RETURNING *;

-- name: DecisionListByRun :many
SELECT * FROM decisions
WHERE run_id = @run_id AND id > @after_id
ORDER BY id
LIMIT @max;

-- name: DecisionLatestByRun :one
SELECT * FROM decisions WHERE run_id = @run_id ORDER BY id DESC LIMIT 1;
