-- name: EnvironmentInsert :one
INSERT INTO environments (
    app_id, name, tier, driver, metrics, default_strategy, strategy_defaults,
    thresholds, require_approval, approver_not_starter, failure_policy,
    created_at, updated_at
) VALUES (
    @app_id, @name, @tier, @driver, @metrics, @default_strategy, @strategy_defaults,
    @thresholds, @require_approval, @approver_not_starter, @failure_policy,
    @now, @now
)
RETURNING *;

-- name: EnvironmentGet :one
SELECT * FROM environments WHERE app_id = @app_id AND name = @name;

-- name: EnvironmentGetByID :one
SELECT * FROM environments WHERE id = @id;

-- name: EnvironmentListByApp :many
SELECT * FROM environments WHERE app_id = @app_id ORDER BY name;

-- name: EnvironmentUpdate :one
UPDATE environments
SET tier = @tier,
    driver = @driver,
    metrics = @metrics,
    default_strategy = @default_strategy,
    strategy_defaults = @strategy_defaults,
    thresholds = @thresholds,
    stable_version = @stable_version,
    previous_stable_version = @previous_stable_version,
    require_approval = @require_approval,
    approver_not_starter = @approver_not_starter,
    failure_policy = @failure_policy,
    version = version + 1,
    updated_at = @now
WHERE id = @id AND version = @expected_version
RETURNING *;

-- name: EnvironmentVersion :one
SELECT version FROM environments WHERE id = @id;

-- name: EnvironmentSetStable :exec
-- Records a released version; the previous stable version is kept so that
-- "roll back to previous" knows where to return.
UPDATE environments
SET previous_stable_version = CASE WHEN stable_version IS DISTINCT FROM @stable_version::text THEN stable_version ELSE previous_stable_version END,
    stable_version = @stable_version::text,
    version = version + 1,
    updated_at = @now
WHERE id = @id;
