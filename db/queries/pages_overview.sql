-- name: OverviewList :many
-- Every app with each of its environments, the run in flight there with
-- the latest decision on it, and the last deployment that finished: the
-- whole overview in one query. Apps without environments come with NULL
-- environment columns. The run in flight is the active one, or else the
-- oldest run waiting in line; each lookup is one index probe per
-- environment.
SELECT
    a.id AS app_id,
    a.slug AS app_slug,
    a.name AS app_name,
    e.id AS environment_id,
    e.name AS environment_name,
    e.tier AS environment_tier,
    e.stable_version,
    e.previous_stable_version,
    cur.id AS run_id,
    cur.state AS run_state,
    cur.from_version AS run_from_version,
    cur.to_version AS run_to_version,
    cur.strategy AS run_strategy,
    cur.phase_index AS run_phase_index,
    coalesce(cur.plan -> 'phases' -> cur.phase_index ->> 'name', '')::text AS run_phase_name,
    coalesce(jsonb_array_length(cur.plan -> 'phases'), 0)::integer AS run_phase_count,
    cur.created_by AS run_created_by,
    cur.started_at AS run_started_at,
    cur.reason AS run_reason,
    (SELECT count(*) FROM runs q WHERE q.environment_id = e.id AND q.state = 'pending') AS queued,
    d.verdict AS decision_verdict,
    d.phase_index AS decision_phase_index,
    d.explanation AS decision_explanation,
    d.at AS decision_at,
    last.id AS last_run_id,
    last.state AS last_state,
    last.to_version AS last_to_version,
    last.created_by AS last_created_by,
    last.finished_at AS last_finished_at
FROM apps a
LEFT JOIN environments e ON e.app_id = a.id
LEFT JOIN runs cur ON cur.id = (
    SELECT r.id FROM runs r
    WHERE r.environment_id = e.id
      AND r.state IN ('pending', 'running', 'awaiting_approval', 'paused', 'rolling_back')
    ORDER BY r.state = 'pending', r.id
    LIMIT 1
)
LEFT JOIN decisions d ON d.id = (
    SELECT max(dd.id) FROM decisions dd WHERE dd.run_id = cur.id
)
LEFT JOIN runs last ON last.id = (
    SELECT f.id FROM runs f
    WHERE f.environment_id = e.id
      AND f.finished_at IS NOT NULL
      AND f.started_at IS NOT NULL
    ORDER BY f.finished_at DESC, f.id DESC
    LIMIT 1
)
ORDER BY a.slug,
    CASE e.tier WHEN 'development' THEN 0 WHEN 'staging' THEN 1 WHEN 'production' THEN 2 ELSE 3 END,
    e.name;

-- name: EnvironmentNameList :many
-- Every environment with its app's slug, for pickers.
SELECT a.slug AS app_slug, e.name AS environment_name, e.tier AS environment_tier, e.default_strategy
FROM environments e
JOIN apps a ON a.id = e.app_id
ORDER BY a.slug,
    CASE e.tier WHEN 'development' THEN 0 WHEN 'staging' THEN 1 WHEN 'production' THEN 2 ELSE 3 END,
    e.name;
