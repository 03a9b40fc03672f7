-- name: AuditInsert :one
INSERT INTO audit_events (at, actor, action, app, environment, run_id, detail, remote_addr, user_agent)
VALUES (@at, @actor, @action, @app, @environment, sqlc.narg(run_id), @detail, @remote_addr, @user_agent)
RETURNING *;

-- name: AuditList :many
-- The audit log: changes outside runs, every run event and every flag
-- and segment change, newest first, filtered by app, environment and actor
-- when those are not empty, and by time when from_at (inclusive) or to_at
-- (exclusive) are given. The cursor is (at, kind, id) of the last entry
-- of the previous page: ids are unique only within a kind. Flag events
-- carry their payload and flag so that the store can describe them. Run
-- and flag events caused by the engine, or written before their origin was
-- recorded, have no address or user agent.
SELECT * FROM (
    SELECT a.at, 'audit'::text AS kind, a.id, a.actor, a.action, a.app, a.environment,
           coalesce(a.run_id, 0)::bigint AS run_id, a.detail, a.remote_addr, a.user_agent,
           NULL::jsonb AS flag_payload, ''::text AS flag_key, ''::text AS flag_default_variant
    FROM audit_events a
    WHERE (@app::text = '' OR a.app = @app)
      AND (@environment::text = '' OR a.environment = @environment)
      AND (@actor::text = '' OR a.actor = @actor)
      AND (sqlc.narg(from_at)::timestamptz IS NULL OR a.at >= sqlc.narg(from_at))
      AND (sqlc.narg(to_at)::timestamptz IS NULL OR a.at < sqlc.narg(to_at))
    UNION ALL
    SELECT e.at, 'run'::text AS kind, e.id, e.actor, e.type AS action, ap.slug AS app, en.name AS environment,
           e.run_id, coalesce(e.payload ->> 'reason', e.payload ->> 'comment', e.payload ->> 'explanation', '') AS detail,
           coalesce(e.remote_addr, '')::text AS remote_addr, coalesce(e.user_agent, '')::text AS user_agent,
           NULL::jsonb AS flag_payload, ''::text AS flag_key, ''::text AS flag_default_variant
    FROM run_events e
    JOIN runs r ON r.id = e.run_id
    JOIN apps ap ON ap.id = r.app_id
    JOIN environments en ON en.id = r.environment_id
    WHERE (@app::text = '' OR ap.slug = @app)
      AND (@environment::text = '' OR en.name = @environment)
      AND (@actor::text = '' OR e.actor = @actor)
      AND NOT (@hide_engine::boolean AND e.actor = 'engine')
      AND (sqlc.narg(from_at)::timestamptz IS NULL OR e.at >= sqlc.narg(from_at))
      AND (sqlc.narg(to_at)::timestamptz IS NULL OR e.at < sqlc.narg(to_at))
    UNION ALL
    SELECT fe.at, 'flag'::text AS kind, fe.id, fe.actor, fe.type AS action, ap.slug AS app,
           coalesce(fen.name, '')::text AS environment, 0::bigint AS run_id, ''::text AS detail,
           coalesce(fe.remote_addr, '')::text AS remote_addr, coalesce(fe.user_agent, '')::text AS user_agent,
           fe.payload AS flag_payload, coalesce(f.key, '')::text AS flag_key,
           coalesce(f.definition ->> 'default_variant', '')::text AS flag_default_variant
    FROM flag_events fe
    JOIN apps ap ON ap.id = fe.app_id
    LEFT JOIN environments fen ON fen.id = fe.environment_id
    LEFT JOIN flags f ON f.id = fe.flag_id
    WHERE (@app::text = '' OR ap.slug = @app)
      AND (@environment::text = '' OR fen.name = @environment)
      AND (@actor::text = '' OR fe.actor = @actor)
      AND NOT (@hide_engine::boolean AND fe.actor = 'engine')
      AND (sqlc.narg(from_at)::timestamptz IS NULL OR fe.at >= sqlc.narg(from_at))
      AND (sqlc.narg(to_at)::timestamptz IS NULL OR fe.at < sqlc.narg(to_at))
) entries
WHERE @first_page::boolean
   OR (entries.at, entries.kind, entries.id) < (@before_at::timestamptz, @before_kind::text, @before_id::bigint)
ORDER BY entries.at DESC, entries.kind DESC, entries.id DESC
LIMIT @max_rows;
