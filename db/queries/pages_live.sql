-- name: InFlightRunList :many
-- Runs in the given states across every app, each with its app and
-- environment, the phase it is in and the one after it (taken from the
-- plan, so a long plan is never read whole), the newest decision on it and,
-- for a run waiting for a person, when it began to wait. The incident view
-- and the approvals page read the whole picture in this one query.
SELECT
    r.id,
    r.app_id,
    a.slug AS app_slug,
    a.name AS app_name,
    r.environment_id,
    e.name AS environment_name,
    e.tier AS environment_tier,
    e.approver_not_starter,
    r.from_version,
    r.to_version,
    r.strategy,
    r.state,
    r.phase_index,
    coalesce(jsonb_array_length(r.plan -> 'phases'), 0)::integer AS phase_count,
    (r.plan -> 'phases' -> r.phase_index)::jsonb AS phase,
    (r.plan -> 'phases' -> (r.phase_index + 1))::jsonb AS next_phase,
    r.phase_started_at,
    r.bake_extension_seconds,
    r.extensions,
    r.created_by,
    r.created_at,
    r.started_at,
    r.updated_at,
    r.reason,
    d.id AS decision_id,
    d.phase_index AS decision_phase_index,
    d.at AS decision_at,
    d.verdict AS decision_verdict,
    d.explanation AS decision_explanation,
    d.record AS decision_record,
    w.at AS waiting_since
FROM runs r
JOIN apps a ON a.id = r.app_id
JOIN environments e ON e.id = r.environment_id
LEFT JOIN decisions d ON d.id = (
    SELECT max(dd.id) FROM decisions dd WHERE dd.run_id = r.id
)
LEFT JOIN run_events w ON r.state = 'awaiting_approval' AND w.id = (
    SELECT max(ev.id) FROM run_events ev
    WHERE ev.run_id = r.id AND ev.type = 'phase.awaiting_approval'
)
WHERE r.state = ANY (@states::text[])
ORDER BY r.id DESC
LIMIT @max_rows;
