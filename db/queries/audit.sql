-- name: AuditInsert :one
INSERT INTO audit_events (at, actor, action, app, environment, run_id, detail, remote_addr, user_agent)
VALUES (@at, @actor, @action, @app, @environment, sqlc.narg(run_id), @detail, @remote_addr, @user_agent)
RETURNING *;

-- name: AuditList :many
-- The audit log: changes outside runs and every run event, newest first,
-- filtered by app, environment and actor when those are not empty. The
-- cursor is (at, kind, id) of the last entry of the previous page: ids
-- are unique only within a kind.
SELECT * FROM (
    SELECT a.at, 'audit'::text AS kind, a.id, a.actor, a.action, a.app, a.environment,
           coalesce(a.run_id, 0)::bigint AS run_id, a.detail, a.remote_addr
    FROM audit_events a
    WHERE (@app::text = '' OR a.app = @app)
      AND (@environment::text = '' OR a.environment = @environment)
      AND (@actor::text = '' OR a.actor = @actor)
    UNION ALL
    SELECT e.at, 'run'::text AS kind, e.id, e.actor, e.type AS action, ap.slug AS app, en.name AS environment,
           e.run_id, coalesce(e.payload ->> 'reason', e.payload ->> 'comment', e.payload ->> 'explanation', '') AS detail,
           ''::text AS remote_addr
    FROM run_events e
    JOIN runs r ON r.id = e.run_id
    JOIN apps ap ON ap.id = r.app_id
    JOIN environments en ON en.id = r.environment_id
    WHERE (@app::text = '' OR ap.slug = @app)
      AND (@environment::text = '' OR en.name = @environment)
      AND (@actor::text = '' OR e.actor = @actor)
      AND NOT (@hide_engine::boolean AND e.actor = 'engine')
) entries
WHERE @first_page::boolean
   OR (entries.at, entries.kind, entries.id) < (@before_at::timestamptz, @before_kind::text, @before_id::bigint)
ORDER BY entries.at DESC, entries.kind DESC, entries.id DESC
LIMIT @max_rows;
